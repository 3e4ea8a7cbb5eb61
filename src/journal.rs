//! The SQLite journal: the single source of truth about what hqx did.
//!
//! All SQL lives here and in `migrations/`. [`Journal`] owns the
//! connection, its pragmas and its transactions; everyone else calls typed
//! functions. During a run, the journal lives on its own thread
//! ([`JournalWriter`]) so that SQLite never blocks the async executor, and
//! writes that arrive together are committed together (group commit): a
//! thousand orders marked `sending` at once cost one transaction, not a
//! thousand. While writes pour in, a group waits a moment for more
//! ([`GROUP_WINDOW`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension, ToSql};
use rusqlite_migration::{Migrations, M};

use crate::batch::Batch;
use crate::client::ExchangeOrder;
use crate::order::OrderState;

/// The migrations, in order. Only ever append.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_send_deadline.sql"),
    include_str!("../migrations/0003_accounts_and_reconcile.sql"),
    include_str!("../migrations/0004_views_and_positions.sql"),
    include_str!("../migrations/0005_cancels.sql"),
    include_str!("../migrations/0006_balance_read_window.sql"),
    include_str!("../migrations/0007_orders_checks.sql"),
    include_str!("../migrations/0008_orders_unsettled.sql"),
];

/// The schema that added `position_figures`: a journal upgraded to it has
/// its figures computed from its trades when it is opened.
const FIGURES_SCHEMA: i64 = 4;

mod cancels;
mod figures;
pub use cancels::{CancelChange, CancelItem, CancelRow, NewItem};

/// What went wrong with the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite failed.
    #[error("journal {path}: {source}")]
    Sqlite {
        /// The journal file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The journal was written by a newer hqx.
    #[error("journal {path} has schema version {found}, but this hqx knows only up to {known}; use a newer hqx, or point --journal at another file")]
    TooNew {
        /// The journal file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this binary knows.
        known: i64,
    },
    /// Migrating failed.
    #[error("journal {path}: cannot migrate: {message}")]
    Migration {
        /// The journal file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A state change did not find the order in the state it expected:
    /// someone else changed it, or the caller is wrong.
    #[error("order {batch_id}/{order_id} was expected in state `{expected}` but the journal holds `{found}`")]
    StateMismatch {
        /// The batch.
        batch_id: String,
        /// The order.
        order_id: String,
        /// What the caller expected.
        expected: String,
        /// What the journal holds.
        found: String,
    },
    /// The journal thread is gone.
    #[error("the journal writer stopped: {0}")]
    WriterGone(String),
}

type Result<T> = std::result::Result<T, JournalError>;

/// A batch as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRow {
    /// Batch id.
    pub id: String,
    /// Exchange base URL it is bound to.
    pub base_url: String,
    /// Public key it is bound to.
    pub api_key: String,
}

/// An order as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// Batch id.
    pub batch_id: String,
    /// Order id within the batch.
    pub order_id: String,
    /// Position in the batch file.
    pub seq: i64,
    /// Pair, side, type, quantity, price as written.
    pub pair: String,
    /// `buy` / `sell`.
    pub side: String,
    /// `limit` / `market`.
    pub kind: String,
    /// Quantity text.
    pub quantity: String,
    /// Price text.
    pub price: Option<String>,
    /// The exact body sent.
    pub body: String,
    /// Current state.
    pub state: OrderState,
    /// Placement requests sent so far.
    pub attempts: i64,
    /// The exchange's id, once known.
    pub exchange_order_id: Option<String>,
    /// The exchange's status text.
    pub exchange_status: Option<String>,
    /// Filled quantity as reported.
    pub filled_quantity: Option<String>,
    /// Client order id sent, where the venue supports one.
    pub client_order_id: Option<String>,
    /// Last error seen.
    pub last_error: Option<String>,
    /// When the intent was journaled.
    pub created_ms: i64,
    /// First send.
    pub first_sent_ms: Option<i64>,
    /// Latest send.
    pub last_sent_ms: Option<i64>,
    /// When the latest send stops waiting for an answer.
    pub last_deadline_ms: Option<i64>,
}

/// What a run reports of an order (and needs to decide its exit code):
/// not the whole row, whose body a report never shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// Order id within the batch.
    pub order_id: String,
    /// Current state.
    pub state: OrderState,
    /// Placement requests sent so far.
    pub attempts: i64,
    /// The exchange's id, once known.
    pub exchange_order_id: Option<String>,
    /// Filled quantity as reported.
    pub filled_quantity: Option<String>,
    /// Last error seen.
    pub last_error: Option<String>,
}

/// A placed order whose status a run or a reconcile refreshes: only what
/// comparing it with the exchange's answer needs (not the whole row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOrder {
    /// Batch id.
    pub batch_id: String,
    /// Order id within the batch.
    pub order_id: String,
    /// The exchange's id.
    pub exchange_order_id: String,
    /// Filled quantity as last reported.
    pub filled_quantity: Option<String>,
}

impl OpenOrder {
    /// The order of `row`, if it is `open` with an exchange id.
    pub fn of(row: &OrderRow) -> Option<OpenOrder> {
        if row.state != OrderState::Open {
            return None;
        }
        Some(OpenOrder {
            batch_id: row.batch_id.clone(),
            order_id: row.order_id.clone(),
            exchange_order_id: row.exchange_order_id.clone()?,
            filled_quantity: row.filled_quantity.clone(),
        })
    }
}

/// How registering a batch went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Registration {
    /// Orders newly journaled as pending.
    pub added: usize,
    /// Orders already journaled with the same text.
    pub known: usize,
    /// Journaled orders no longer in the file (left as they are).
    pub missing_from_file: Vec<String>,
    /// Cancels newly journaled.
    pub cancels_added: usize,
}

/// An order whose text in the file differs from the journal's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The order id.
    pub order_id: String,
    /// The body the journal holds (the one sent, or to be sent).
    pub journal_body: String,
    /// The body the file now gives.
    pub file_body: String,
}

/// Why a batch cannot run against this journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRefusal {
    /// The batch is bound to another exchange account.
    Bound(BatchRow),
    /// Orders changed under ids already journaled.
    Conflicts(Vec<Conflict>),
    /// Cancels changed under ids already journaled, or naming orders of
    /// other batches the journal does not hold: one message each.
    Cancels(Vec<String>),
}

/// One state change of one order, with what the exchange said.
#[derive(Debug, Clone, Default)]
pub struct StateChange {
    /// Batch id.
    pub batch_id: String,
    /// Order id.
    pub order_id: String,
    /// The run making the change.
    pub run_id: Option<i64>,
    /// When.
    pub at_ms: i64,
    /// Event name (from [`crate::order::Event::name`]).
    pub event: &'static str,
    /// The state the order must be in (checked).
    pub from: Option<OrderState>,
    /// The new state.
    pub to: Option<OrderState>,
    /// Free text for the event log.
    pub detail: Option<String>,
    /// Set the exchange order id.
    pub exchange_order_id: Option<String>,
    /// Set the exchange status.
    pub exchange_status: Option<String>,
    /// Set the filled quantity.
    pub filled_quantity: Option<String>,
    /// Set the average price.
    pub average_price: Option<String>,
    /// Set (Some(Some)) or clear (Some(None)) the last error.
    pub last_error: Option<Option<String>>,
    /// This change is a send: count an attempt and stamp the send time.
    pub is_send: bool,
    /// With a send: when its request stops waiting for an answer.
    pub send_deadline_ms: Option<i64>,
    /// Take back the attempt counted by the send just journaled: its
    /// request never left (it waited for a slot and was interrupted or ran
    /// out of time).
    pub unsent: bool,
    /// Client order id for this attempt.
    pub client_order_id: Option<String>,
    /// The order's rowid in `orders`, when the writer read it: the UPDATE
    /// then finds the row by it (still checking both ids), without a
    /// search of the primary key's index.
    pub row: Option<i64>,
}

/// One HTTP exchange, for the `http_log` table.
#[derive(Debug, Clone, Default)]
pub struct HttpRecord {
    /// The run.
    pub run_id: Option<i64>,
    /// When the request started.
    pub at_ms: i64,
    /// GET, POST, DELETE.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Status, if an answer was seen.
    pub status: Option<u16>,
    /// Time to the answer or the error.
    pub latency_us: i64,
    /// Error text, if any (never contains secrets).
    pub error: Option<String>,
    /// Batch.
    pub batch_id: Option<String>,
    /// Batch order for placements.
    pub order_id: Option<String>,
}

/// A trade as the exchange reported it.
#[derive(Debug, Clone, Default)]
pub struct TradeRow {
    /// Exchange trade id.
    pub trade_id: String,
    /// Exchange order id.
    pub exchange_order_id: Option<String>,
    /// Pair.
    pub pair: Option<String>,
    /// Side.
    pub side: Option<String>,
    /// Price text.
    pub price: Option<String>,
    /// Quantity text.
    pub quantity: Option<String>,
    /// Fee text.
    pub fee: Option<String>,
    /// Fee currency.
    pub fee_currency: Option<String>,
    /// Trade time.
    pub traded_ms: Option<i64>,
    /// The JSON as received.
    pub raw: String,
}

/// A query answer, for the `query_results` table.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The run.
    pub run_id: i64,
    /// Batch.
    pub batch_id: String,
    /// Query id.
    pub query_id: String,
    /// trades / orders / balances / deposit_address.
    pub kind: &'static str,
    /// When.
    pub fetched_ms: i64,
    /// The JSON answer, or the error.
    pub result: std::result::Result<String, String>,
}

/// One currency's balance as the exchange reported it (decimal text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    /// Currency.
    pub currency: String,
    /// Available.
    pub available: String,
    /// Locked in open orders.
    pub locked: String,
    /// available + locked, exact.
    pub total: String,
}

/// A balance snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Its id.
    pub id: i64,
    /// When the balances were read (ms).
    pub taken_ms: i64,
    /// Per currency.
    pub balances: Vec<BalanceRow>,
}

/// Something reconcile found that a routine sync does not explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `external_order`, `missing_fills`, `excess_fills`, `unexplained_balance`.
    pub kind: String,
    /// What it is about (an order, a currency between two snapshots).
    pub subject: String,
    /// The figures, for people.
    pub detail: String,
    /// The figures, for comparing: a change re-opens an acknowledged finding.
    pub fingerprint: String,
}

/// How a finding stood in this reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First seen now: drift.
    New,
    /// Seen before, went away or was acknowledged with other figures, and
    /// is back: drift.
    Reopened,
    /// Seen before and still open: listed, not new drift.
    Known,
    /// Acknowledged by a person, same figures: listed, never drift.
    Acknowledged,
    /// No longer true.
    Cleared,
}

impl Seen {
    /// The spelling in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Seen::New => "new",
            Seen::Reopened => "reopened",
            Seen::Known => "known",
            Seen::Acknowledged => "acknowledged",
            Seen::Cleared => "cleared",
        }
    }

    /// New drift: it alerts.
    pub fn is_drift(self) -> bool {
        matches!(self, Seen::New | Seen::Reopened)
    }
}

/// A finding as journaled.
#[derive(Debug, Clone)]
pub struct FindingRow {
    /// Its id (for `hqx ack ID`).
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// Subject.
    pub subject: String,
    /// Figures.
    pub detail: String,
    /// How this reconcile saw it.
    pub seen: Seen,
    /// First seen (ms).
    pub first_seen_ms: i64,
    /// How many reconciles saw it.
    pub times_seen: i64,
    /// A person's note, when acknowledged.
    pub ack_note: Option<String>,
}

/// Whether findings of this kind clear by themselves when no longer seen
/// (a state of the account), or wait for a person (an event in the past).
pub fn finding_kind_clears(kind: &str) -> bool {
    kind != "unexplained_balance"
}

fn finding_row(conn: &Connection, path: &Path, id: i64, seen: Seen) -> Result<FindingRow> {
    conn.query_row(
        "SELECT id, kind, subject, detail, first_seen_ms, times_seen, ack_note FROM findings WHERE id = ?1",
        [id],
        |r| {
            Ok(FindingRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                subject: r.get(2)?,
                detail: r.get(3)?,
                seen,
                first_seen_ms: r.get(4)?,
                times_seen: r.get(5)?,
                ack_note: r.get(6)?,
            })
        },
    )
    .map_err(|e| sqlite_err(path, e))
}

/// The journal: one SQLite connection and the typed operations on it.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    /// The trades of the pair whose figures were last computed (see
    /// [`figures::Memo`]).
    memo: Option<figures::Memo>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

/// The page size of a journal this hqx creates: 8 KiB, not SQLite's 4.
///
/// Every commit writes each page it changed to the WAL whole (a 24-byte
/// header and the page, two `pwrite`s) and then fsyncs. A placement's
/// commit changes rows of the orders and their events in two places (the
/// orders marked `sending` ahead, the orders answered), and index pages
/// beside them; with 8 KiB pages the same rows sit on half as many pages.
/// A 10,000-order run: `pwrite`s 16,600 -> 9,200, `pread`s 6,200 -> 2,700,
/// fsyncs 204 -> 163; hqx's CPU 2.2 µs per order lower (median of 20
/// alternated pairs, lower in 14). Larger pages were no better.
const PAGE_SIZE: i64 = 8192;

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

impl Journal {
    /// Open (creating if needed) and migrate the journal at `path`.
    ///
    /// Pragmas are set here, outside the migrations, because they are
    /// per-connection: WAL so readers (`sqlite3` while a run is going) never
    /// block the writer; `synchronous=FULL` because an order intent must
    /// survive power loss, not only a crash, once we say it is journaled;
    /// a busy timeout so two hqx processes on one journal wait for each
    /// other instead of failing.
    pub fn open(path: &Path) -> Result<Journal> {
        let err = |source| JournalError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(err)?;
        // Before anything is written: a new journal gets PAGE_SIZE pages;
        // an existing one keeps its own (SQLite changes it only in an
        // empty file).
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        let known = MIGRATIONS.len() as i64;
        if found > known {
            return Err(JournalError::TooNew {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
        // A journal about to be upgraded is copied first, whole and
        // consistent: an upgrade is the one write hqx cannot take back.
        if found > 0 && found < known {
            let bak = format!("{}.schema-{found}.bak", path.display());
            if !Path::new(&bak).exists() {
                conn.execute("VACUUM INTO ?1", [&bak]).map_err(err)?;
            }
        }
        // Each migration runs in a transaction and records user_version.
        // Foreign keys are off while they run: a migration that rebuilds a
        // table (SQLite's way to change a column's constraints) drops the
        // old one, which foreign keys would refuse. What they would have
        // protected is checked right after.
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(err)?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| JournalError::Migration {
                path: path.to_path_buf(),
                // Its own text carries the whole migration's SQL.
                message: match e {
                    rusqlite_migration::Error::RusqliteError { err, .. } => err.to_string(),
                    e => e.to_string(),
                },
            })?;
        if found < FIGURES_SCHEMA {
            let tx = conn.transaction().map_err(err)?;
            figures::rebuild(&tx, path)?;
            tx.commit().map_err(err)?;
        }
        if found < known {
            let broken: i64 = conn
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .map_err(err)?;
            if broken > 0 {
                return Err(JournalError::Migration {
                    path: path.to_path_buf(),
                    message: format!("{broken} row(s) refer to rows that do not exist (PRAGMA foreign_key_check); restore the journal from its backup and report this"),
                });
            }
        }
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        Ok(Journal {
            conn,
            path: path.to_path_buf(),
            memo: None,
        })
    }

    /// The schema version of the journal file at `path`, without upgrading it.
    pub fn file_schema_version(path: &Path) -> Result<i64> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| sqlite_err(path, e))?;
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| sqlite_err(path, e))
    }

    /// A consistent copy of the journal at `dest`, taken while other hqx
    /// processes may be writing (VACUUM INTO reads one snapshot).
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let dest = dest.to_str().ok_or_else(|| JournalError::Migration {
            path: dest.to_path_buf(),
            message: "the backup path is not UTF-8".into(),
        })?;
        self.conn
            .execute("VACUUM INTO ?1", [dest])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// SQLite's integrity check: an empty list when all is well.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        let mut fk = self
            .conn
            .prepare("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check")
            .map_err(|e| self.err(e))?;
        let broken = fk
            .query_map([], |r| {
                Ok(format!(
                    "{} row {} refers to a missing {} row",
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?.unwrap_or_default(),
                    r.get::<_, String>(2)?
                ))
            })
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .filter(|r| r != "ok")
            .chain(broken)
            .collect())
    }

    /// The schema version this binary writes.
    pub fn schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> JournalError {
        JournalError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The batch row, if the batch was ever run.
    pub fn batch(&self, id: &str) -> Result<Option<BatchRow>> {
        batch_row(&self.conn, &self.path, id)
    }

    /// Check a batch against the journal without writing: which orders
    /// are new and which are known, or why it cannot run here. This is the
    /// one place that decides it, for `plan`, `run` and [`Journal::register`].
    ///
    /// `account` is the (binding, public key) the run would use; `None`
    /// (for `plan`, which has no connection) skips the binding check.
    pub fn check(
        &self,
        batch: &Batch,
        account: Option<(&str, &str)>,
    ) -> Result<std::result::Result<Registration, BatchRefusal>> {
        check_batch(&self.conn, &self.path, batch, account)
    }

    /// Record the batch and journal every new order as `pending`, in one
    /// transaction, before anything is sent. Checks first, inside the same
    /// transaction, with [`Journal::check`]: writes nothing when the batch
    /// is bound to another account or any order conflicts.
    pub fn register(
        &mut self,
        batch: &Batch,
        base_url: &str,
        api_key: &str,
        now_ms: i64,
    ) -> Result<std::result::Result<Registration, BatchRefusal>> {
        let path = self.path.clone();
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = write_tx(&mut self.conn, &path)?;
        let (reg, existing) = check_batch_known(&tx, &path, batch, Some((base_url, api_key)))?;
        let known: HashSet<&str> = existing.iter().map(|(_, id, _)| id.as_str()).collect();
        let reg = match reg {
            Ok(reg) => reg,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let account_id = account_row(&tx, &path, base_url, api_key, now_ms)?;
        tx.execute(
            "INSERT INTO batches (id, file_path, file_sha256, base_url, api_key, created_ms, account_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET file_path = excluded.file_path,
                                           file_sha256 = excluded.file_sha256",
            params![
                batch.id,
                batch.path.display().to_string(),
                batch.file_sha256,
                base_url,
                api_key,
                now_ms,
                account_id
            ],
        )
        .map_err(err)?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, price,
                                         body, state, created_ms, updated_ms, account_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?10, ?11)
                     ON CONFLICT(batch_id, order_id) DO NOTHING",
                )
                .map_err(err)?;
            let mut ev = tx
                .prepare(
                    "INSERT INTO order_events (batch_id, order_id, at_ms, event, from_state, to_state, detail)
                     VALUES (?1, ?2, ?3, 'journaled', NULL, 'pending', ?4)",
                )
                .map_err(err)?;
            // What every order of the batch shares is bound once:
            // `sqlite3_reset` keeps bindings, so each order binds only its own.
            ins.raw_bind_parameter(1, &batch.id).map_err(err)?;
            ins.raw_bind_parameter(10, now_ms).map_err(err)?;
            ins.raw_bind_parameter(11, account_id).map_err(err)?;
            ev.raw_bind_parameter(1, &batch.id).map_err(err)?;
            ev.raw_bind_parameter(3, now_ms).map_err(err)?;
            let file = batch.path.display().to_string();
            let mut detail = String::with_capacity(file.len() + 12);
            for (seq, spec) in batch.orders.iter().enumerate() {
                // Known with the same text (checked above): nothing to add.
                if known.contains(spec.id.as_str()) {
                    continue;
                }
                let i = &spec.intent;
                ins.raw_bind_parameter(2, spec.id.as_str()).map_err(err)?;
                ins.raw_bind_parameter(3, seq as i64).map_err(err)?;
                ins.raw_bind_parameter(4, i.pair.as_str()).map_err(err)?;
                ins.raw_bind_parameter(5, i.side.as_str()).map_err(err)?;
                ins.raw_bind_parameter(6, i.kind.as_str()).map_err(err)?;
                ins.raw_bind_parameter(7, i.quantity.text()).map_err(err)?;
                ins.raw_bind_parameter(8, i.price.as_ref().map(|p| p.text()))
                    .map_err(err)?;
                ins.raw_bind_parameter(9, i.body(None)).map_err(err)?;
                let n = ins.raw_execute().map_err(err)?;
                if n == 1 {
                    use std::fmt::Write as _;
                    detail.clear();
                    let _ = write!(detail, "{file}:{}", spec.line);
                    ev.raw_bind_parameter(2, spec.id.as_str()).map_err(err)?;
                    ev.raw_bind_parameter(4, detail.as_str()).map_err(err)?;
                    ev.raw_execute().map_err(err)?;
                }
            }
        }
        cancels::register(&tx, &path, batch, now_ms)?;
        tx.commit().map_err(err)?;
        Ok(Ok(reg))
    }

    /// Every order of a batch, in file order.
    pub fn orders(&self, batch_id: &str) -> Result<Vec<OrderRow>> {
        order_rows(&self.conn, &self.path, batch_id)
    }

    /// Every order of a batch, in file order, with only what a run report
    /// shows ([`ReportRow`]).
    pub fn report_rows(&self, batch_id: &str) -> Result<Vec<ReportRow>> {
        self.batch_rows_by_seq(
            "SELECT seq, order_id, state, attempts, exchange_order_id,
                    filled_quantity, last_error
             FROM orders WHERE batch_id = ?1",
            batch_id,
            |r| {
                Ok(ReportRow {
                    order_id: r.get(1)?,
                    state: parsed(r.get(2)?, 2)?,
                    attempts: r.get(3)?,
                    exchange_order_id: r.get(4)?,
                    filled_quantity: r.get(5)?,
                    last_error: r.get(6)?,
                })
            },
        )
    }

    /// The rows `sql` selects for a batch (its `?1`), in file order
    /// ([`by_seq`]): the first column is the order's `seq`, and `row`
    /// reads the rest.
    fn batch_rows_by_seq<T>(
        &self,
        sql: &str,
        batch_id: &str,
        mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([batch_id], |r| Ok((r.get::<_, i64>(0)?, row(r)?)))
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(by_seq(rows))
    }

    /// The id and state of every order of a batch, in no given order:
    /// what a run compares its outcome with, without reading whole rows.
    pub fn order_states(&self, batch_id: &str) -> Result<Vec<(String, OrderState)>> {
        let path = &self.path;
        let mut st = self
            .conn
            .prepare_cached("SELECT order_id, state FROM orders WHERE batch_id = ?1")
            .map_err(|e| sqlite_err(path, e))?;
        let rows = st
            .query_map([batch_id], |r| Ok((r.get(0)?, parsed(r.get(1)?, 1)?)))
            .map_err(|e| sqlite_err(path, e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| sqlite_err(path, e))
    }

    /// The batch's `pending` orders, in file order, with only what placing
    /// one needs (not whole rows: a run places every order of its batch).
    pub fn orders_to_place(&self, batch_id: &str) -> Result<Vec<ToPlace>> {
        self.batch_rows_by_seq(
            "SELECT seq, order_id, body, attempts, rowid FROM orders
             WHERE batch_id = ?1 AND state = 'pending'",
            batch_id,
            |r| {
                Ok(ToPlace {
                    batch_id: batch_id.to_string(),
                    order_id: r.get(1)?,
                    body: r.get(2)?,
                    attempts: r.get(3)?,
                    row: r.get(4)?,
                })
            },
        )
    }

    /// The orders of a batch in one state, in file order.
    pub fn orders_in(&self, batch_id: &str, state: OrderState) -> Result<Vec<OrderRow>> {
        order_rows_in(&self.conn, &self.path, batch_id, state)
    }

    /// The batch's `open` orders that have an exchange id, in file order,
    /// with only what a refresh compares ([`OpenOrder`]): a run reads them
    /// all at its end.
    pub fn open_orders(&self, batch_id: &str) -> Result<Vec<OpenOrder>> {
        self.batch_rows_by_seq(
            "SELECT seq, order_id, exchange_order_id, filled_quantity FROM orders
             WHERE batch_id = ?1 AND state = 'open' AND exchange_order_id IS NOT NULL",
            batch_id,
            |r| {
                Ok(OpenOrder {
                    batch_id: batch_id.to_string(),
                    order_id: r.get(1)?,
                    exchange_order_id: r.get(2)?,
                    filled_quantity: r.get(3)?,
                })
            },
        )
    }

    /// Every exchange order id of the account adopted by a journal order.
    pub fn exchange_ids_in_use(&self, account_id: i64) -> Result<HashSet<String>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT exchange_order_id FROM orders
                 WHERE account_id = ?1 AND exchange_order_id IS NOT NULL",
            )
            .map_err(|e| self.err(e))?;
        let ids = st
            .query_map([account_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<HashSet<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// The account of a batch, if the batch was ever run.
    pub fn batch_account(&self, batch_id: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT account_id FROM batches WHERE id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Start a run of a batch command; returns its id.
    pub fn begin_run(&mut self, batch_id: &str, command: &str, now_ms: i64) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO runs (batch_id, account_id, command, started_ms)
                 VALUES (?1, (SELECT account_id FROM batches WHERE id = ?1), ?2, ?3)",
                params![batch_id, command, now_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Journal trades of an account in one transaction; returns how many
    /// were new (the others were known by (account, trade id)).
    pub fn insert_trades(
        &mut self,
        account_id: i64,
        run_id: i64,
        trades: &[TradeRow],
    ) -> Result<usize> {
        let path = self.path.clone();
        let tx = write_tx(&mut self.conn, &path)?;
        let n = insert_trades(&tx, &path, account_id, run_id, trades, &mut self.memo)?;
        tx.commit().map_err(|e| sqlite_err(&path, e))?;
        Ok(n)
    }

    /// Recompute every position's figures from the journaled trades, in
    /// one transaction; returns (positions, trades).
    pub fn rebuild_figures(&mut self) -> Result<(usize, i64)> {
        let path = self.path.clone();
        let tx = write_tx(&mut self.conn, &path)?;
        let n = figures::rebuild(&tx, &path)?;
        tx.commit().map_err(|e| sqlite_err(&path, e))?;
        Ok(n)
    }

    /// How many of the account's journaled trades (of `pair`, or all) the
    /// exchange stamped within `from..=to` ms: what a trade window read
    /// again should hold if nothing is new.
    pub fn count_trades(
        &self,
        account_id: i64,
        pair: Option<&str>,
        from: Option<i64>,
        to: i64,
    ) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM trades
                 WHERE account_id = ?1 AND (?2 IS NULL OR pair = ?2)
                   AND traded_ms >= coalesce(?3, traded_ms) AND traded_ms <= ?4",
                params![account_id, pair, from, to],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Where an incremental read of the account stands (`stream`: trades
    /// or orders; `pair` '' for all pairs): everything up to this time
    /// (ms) was read completely. `None` before the first complete read.
    pub fn cursor(&self, account_id: i64, stream: &str, pair: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT synced_to_ms FROM sync_cursors
                 WHERE account_id = ?1 AND stream = ?2 AND pair = ?3",
                params![account_id, stream, pair],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Move a cursor forward to `to_ms` (never back: two readers of one
    /// account may finish in any order).
    pub fn advance_cursor(
        &mut self,
        account_id: i64,
        stream: &str,
        pair: &str,
        to_ms: i64,
        run_id: i64,
        now_ms: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO sync_cursors (account_id, stream, pair, synced_to_ms, run_id, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(account_id, stream, pair) DO UPDATE SET
                    synced_to_ms = max(synced_to_ms, excluded.synced_to_ms),
                    run_id = CASE WHEN excluded.synced_to_ms > synced_to_ms
                                  THEN excluded.run_id ELSE run_id END,
                    updated_ms = excluded.updated_ms",
                params![account_id, stream, pair, to_ms, run_id, now_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Exchange order ids of the account's external orders.
    pub fn external_ids(&self, account_id: i64) -> Result<HashSet<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT exchange_order_id FROM external_orders WHERE account_id = ?1")
            .map_err(|e| self.err(e))?;
        let ids = st
            .query_map([account_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<HashSet<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// The account's external orders as last journaled, by exchange id.
    pub fn external_orders(
        &self,
        account_id: i64,
    ) -> Result<HashMap<String, crate::client::ExchangeOrder>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT exchange_order_id, pair, side, type, quantity, price, status,
                        filled_quantity, average_price, created_ms, raw
                 FROM external_orders WHERE account_id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([account_id], |r| {
                Ok(crate::client::ExchangeOrder {
                    id: r.get(0)?,
                    pair: r.get(1)?,
                    side: r.get(2)?,
                    kind: r.get(3)?,
                    quantity: r.get(4)?,
                    price: r.get(5)?,
                    status: r.get(6)?,
                    filled_quantity: r.get(7)?,
                    average_price: r.get(8)?,
                    created_ms: r.get(9)?,
                    client_order_id: None,
                    raw: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?
            .map(|r| r.map(|o| (o.id.clone(), o)))
            .collect::<std::result::Result<HashMap<_, _>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Finish a run with its exit code and a one-line summary.
    pub fn finish_run(
        &mut self,
        run_id: i64,
        exit_code: i32,
        summary: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET finished_ms = ?2, exit_code = ?3, summary = ?4 WHERE id = ?1",
                params![run_id, now_ms, exit_code, summary],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ---- reconcile: accounts, external orders, balances, findings ----

    /// The id of an account (binding, public key), created if new.
    pub fn account(&mut self, base_url: &str, api_key: &str, now_ms: i64) -> Result<i64> {
        account_row(&self.conn, &self.path, base_url, api_key, now_ms)
    }

    /// The ids of the batches bound to an account.
    pub fn account_batches(&self, account_id: i64) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM batches WHERE account_id = ?1 ORDER BY created_ms, id")
            .map_err(|e| self.err(e))?;
        let ids = st
            .query_map([account_id], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// Start a run of an account command (`reconcile`); returns its id.
    pub fn begin_account_run(
        &mut self,
        account_id: i64,
        command: &str,
        now_ms: i64,
    ) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO runs (account_id, command, started_ms) VALUES (?1, ?2, ?3)",
                params![account_id, command, now_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record an order of the account that no journal order holds. Returns
    /// whether it was new to the journal.
    pub fn record_external(
        &mut self,
        account_id: i64,
        run_id: i64,
        e: &ExchangeOrder,
    ) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO external_orders (account_id, exchange_order_id, pair, side, type,
                    quantity, price, status, filled_quantity, average_price, created_ms,
                    first_run_id, last_run_id, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)
                 ON CONFLICT(account_id, exchange_order_id) DO NOTHING",
            )
            .map_err(|e| self.err(e))?
            .execute(params![
                account_id,
                e.id,
                e.pair,
                e.side,
                e.kind,
                e.quantity,
                e.price,
                e.status,
                e.filled_quantity,
                e.average_price,
                e.created_ms,
                run_id,
                e.raw
            ])
            .map_err(|e| self.err(e))?;
        if n == 0 {
            self.conn
                .prepare_cached(
                    "UPDATE external_orders SET status = ?3, filled_quantity = ?4,
                        average_price = ?5, last_run_id = ?6, raw = ?7
                     WHERE account_id = ?1 AND exchange_order_id = ?2",
                )
                .map_err(|e| self.err(e))?
                .execute(params![
                    account_id,
                    e.id,
                    e.status,
                    e.filled_quantity,
                    e.average_price,
                    run_id,
                    e.raw
                ])
                .map_err(|e| self.err(e))?;
        }
        Ok(n == 1)
    }

    /// External orders of the account still open as last seen.
    pub fn external_open(&self, account_id: i64) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT exchange_order_id FROM external_orders
                 WHERE account_id = ?1 AND coalesce(status, 'open') NOT IN
                    ('filled', 'cancelled', 'canceled', 'rejected', 'expired', 'done', 'closed')",
            )
            .map_err(|e| self.err(e))?;
        let ids = st
            .query_map([account_id], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// The quantities of the account's journaled trades, by exchange order id.
    pub fn trade_quantities(&self, account_id: i64) -> Result<Vec<(String, Option<String>)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT exchange_order_id, quantity FROM trades
                 WHERE account_id = ?1 AND exchange_order_id IS NOT NULL",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The account's trades stamped after `after_ms` and at or before `upto_ms`.
    pub fn trades_between(
        &self,
        account_id: i64,
        after_ms: i64,
        upto_ms: i64,
    ) -> Result<Vec<TradeRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT trade_id, exchange_order_id, pair, side, price, quantity, fee,
                        fee_currency, traded_ms, raw
                 FROM trades WHERE account_id = ?1 AND traded_ms > ?2 AND traded_ms <= ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![account_id, after_ms, upto_ms], |r| {
                Ok(TradeRow {
                    trade_id: r.get(0)?,
                    exchange_order_id: r.get(1)?,
                    pair: r.get(2)?,
                    side: r.get(3)?,
                    price: r.get(4)?,
                    quantity: r.get(5)?,
                    fee: r.get(6)?,
                    fee_currency: r.get(7)?,
                    traded_ms: r.get(8)?,
                    raw: r.get(9)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The account's latest balance snapshot, if any.
    /// The latest snapshot of the account before snapshot `before_id` that
    /// no journaled trade straddles: none stamped between its read's send
    /// and its answer, widened by `skew_ms` on both sides. Its balances
    /// hold exactly the trades stamped before it.
    pub fn last_settled_snapshot(
        &self,
        account_id: i64,
        before_id: i64,
        skew_ms: i64,
    ) -> Result<Option<Snapshot>> {
        self.snapshot_where(account_id, before_id, skew_ms)
    }

    /// How many of the account's journaled trades are stamped within
    /// `from..=to` ms.
    pub fn trades_stamped_within(&self, account_id: i64, from: i64, to: i64) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM trades
                 WHERE account_id = ?1 AND traded_ms >= ?2 AND traded_ms <= ?3",
                params![account_id, from, to],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    fn snapshot_where(
        &self,
        account_id: i64,
        before_id: i64,
        skew_ms: i64,
    ) -> Result<Option<Snapshot>> {
        let head: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT s.id, s.taken_ms FROM balance_snapshots s
                 WHERE s.account_id = ?1 AND s.id < ?2
                   AND (NOT EXISTS (
                        SELECT 1 FROM trades t WHERE t.account_id = s.account_id
                          AND t.traded_ms >= coalesce(s.sent_ms, s.taken_ms) - ?3
                          AND t.traded_ms <= s.taken_ms + ?3))
                 ORDER BY s.id DESC LIMIT 1",
                params![account_id, before_id, skew_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((id, taken_ms)) = head else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare(
                "SELECT currency, available, locked, total FROM balances
                 WHERE snapshot_id = ?1 ORDER BY currency",
            )
            .map_err(|e| self.err(e))?;
        let balances = st
            .query_map([id], |r| {
                Ok(BalanceRow {
                    currency: r.get(0)?,
                    available: r.get(1)?,
                    locked: r.get(2)?,
                    total: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(Some(Snapshot {
            id,
            taken_ms,
            balances,
        }))
    }

    /// Journal a balance snapshot, read between `sent_ms` and `taken_ms`;
    /// returns its id.
    pub fn insert_snapshot(
        &mut self,
        account_id: i64,
        run_id: i64,
        (sent_ms, taken_ms): (i64, i64),
        balances: &[BalanceRow],
    ) -> Result<i64> {
        let path = self.path.clone();
        let err = |e| sqlite_err(&path, e);
        let tx = write_tx(&mut self.conn, &path)?;
        tx.execute(
            "INSERT INTO balance_snapshots (account_id, run_id, sent_ms, taken_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![account_id, run_id, sent_ms, taken_ms],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO balances (snapshot_id, currency, available, locked, total)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            for b in balances {
                st.execute(params![id, b.currency, b.available, b.locked, b.total])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Record what this reconcile found, against what earlier ones did, in
    /// one transaction: new and re-opened findings are drift; open ones
    /// seen again are known; acknowledged ones with the same figures stay
    /// acknowledged. With `clear_stale` (the reconcile read everything),
    /// state findings not seen this time are cleared.
    pub fn record_findings(
        &mut self,
        account_id: i64,
        run_id: i64,
        now_ms: i64,
        found: &[Finding],
        clear_stale: bool,
    ) -> Result<(Vec<FindingRow>, Vec<FindingRow>)> {
        let path = self.path.clone();
        let err = |e| sqlite_err(&path, e);
        let tx = write_tx(&mut self.conn, &path)?;
        let mut seen = Vec::new();
        let mut subjects = HashSet::new();
        for f in found {
            subjects.insert((f.kind.clone(), f.subject.clone()));
            let old: Option<(i64, String, String)> = tx
                .query_row(
                    "SELECT id, status, fingerprint FROM findings
                     WHERE account_id = ?1 AND kind = ?2 AND subject = ?3",
                    params![account_id, f.kind, f.subject],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(err)?;
            let (id, seen_as) = match old {
                None => {
                    tx.execute(
                        "INSERT INTO findings (account_id, kind, subject, detail, fingerprint,
                            first_run_id, last_run_id, first_seen_ms, last_seen_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?7)",
                        params![
                            account_id,
                            f.kind,
                            f.subject,
                            f.detail,
                            f.fingerprint,
                            run_id,
                            now_ms
                        ],
                    )
                    .map_err(err)?;
                    (tx.last_insert_rowid(), Seen::New)
                }
                Some((id, status, fingerprint)) => {
                    let seen_as = match status.as_str() {
                        "cleared" => Seen::Reopened,
                        "acknowledged" if fingerprint == f.fingerprint => Seen::Acknowledged,
                        "acknowledged" => Seen::Reopened,
                        _ => Seen::Known,
                    };
                    tx.execute(
                        "UPDATE findings SET detail = ?2, fingerprint = ?3, last_run_id = ?4,
                            last_seen_ms = ?5, times_seen = times_seen + 1,
                            status = CASE WHEN ?6 THEN 'open' ELSE status END,
                            cleared_ms = NULL
                         WHERE id = ?1",
                        params![
                            id,
                            f.detail,
                            f.fingerprint,
                            run_id,
                            now_ms,
                            seen_as == Seen::Reopened
                        ],
                    )
                    .map_err(err)?;
                    (id, seen_as)
                }
            };
            seen.push(finding_row(&tx, &path, id, seen_as)?);
        }
        // State findings that are no longer true are cleared; event
        // findings stay until a person acknowledges them.
        let mut cleared = Vec::new();
        let stale: Vec<(i64, String, String)> = {
            let mut st = tx
                .prepare(
                    "SELECT id, kind, subject FROM findings
                     WHERE account_id = ?1 AND status IN ('open', 'acknowledged')",
                )
                .map_err(err)?;
            let rows = st
                .query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(err)?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(err)?;
            rows
        };
        for (id, kind, subject) in stale {
            if !clear_stale
                || subjects.contains(&(kind.clone(), subject))
                || !finding_kind_clears(&kind)
            {
                continue;
            }
            tx.execute(
                "UPDATE findings SET status = 'cleared', cleared_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )
            .map_err(err)?;
            cleared.push(finding_row(&tx, &path, id, Seen::Cleared)?);
        }
        tx.commit().map_err(err)?;
        Ok((seen, cleared))
    }

    /// Open findings of the account not seen by this run (event findings
    /// waiting for a person), so that reports can list them as known.
    pub fn findings_waiting(&self, account_id: i64, run_id: i64) -> Result<Vec<FindingRow>> {
        let ids: Vec<i64> = {
            let mut st = self
                .conn
                .prepare(
                    "SELECT id FROM findings WHERE account_id = ?1 AND status = 'open'
                     AND last_run_id <> ?2 ORDER BY id",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map(params![account_id, run_id], |r| r.get(0))
                .map_err(|e| self.err(e))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?;
            rows
        };
        ids.into_iter()
            .map(|id| finding_row(&self.conn, &self.path, id, Seen::Known))
            .collect()
    }

    /// A person acknowledges a finding, with a note. Returns the finding
    /// as it now stands, or `None` if there is no such finding.
    pub fn ack_finding(&mut self, id: i64, note: &str, now_ms: i64) -> Result<Option<FindingRow>> {
        let n = self
            .conn
            .execute(
                "UPDATE findings SET status = 'acknowledged', ack_ms = ?3,
                        ack_note = CASE WHEN ack_note IS NULL OR ack_note = '' THEN ?2
                                        ELSE ack_note || char(10) || ?2 END
                 WHERE id = ?1",
                params![id, note, now_ms],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Ok(None);
        }
        finding_row(&self.conn, &self.path, id, Seen::Acknowledged).map(Some)
    }

    /// Apply writes in one transaction, as if each item had its own
    /// savepoint: one refused state change does not undo the others.
    /// Returns one result per item.
    ///
    /// Savepoints are costly when they are many (each copies every page it
    /// first touches to the statement journal, and each is parsed SQL), and
    /// items are almost never refused. So the group is first applied
    /// without them; if any item fails, that transaction is rolled back
    /// whole and the group applied again with one savepoint per item.
    pub fn apply(&mut self, items: &[Write]) -> Result<Vec<Result<()>>> {
        if let Some(out) = self.apply_all_or_none(items)? {
            return Ok(out);
        }
        let path = self.path.clone();
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut tx = write_tx(&mut self.conn, &path)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let sp = tx.savepoint().map_err(err)?;
            let r = apply_one(&mut Statements::new(&sp, &mut self.memo), item, &path);
            if r.is_ok() {
                sp.commit().map_err(err)?;
            } // else dropped: rolled back
            out.push(r);
        }
        tx.commit().map_err(err)?;
        Ok(out)
    }

    /// Apply every item in one transaction and commit, or, if any item
    /// fails, roll the transaction back (nothing of it stays) and return
    /// `None`.
    fn apply_all_or_none(&mut self, items: &[Write]) -> Result<Option<Vec<Result<()>>>> {
        let path = self.path.clone();
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = write_tx(&mut self.conn, &path)?;
        {
            let mut st = Statements::new(&tx, &mut self.memo);
            for item in items {
                if apply_one(&mut st, item, &path).is_err() {
                    // Dropped: rolled back.
                    return Ok(None);
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(Some(items.iter().map(|_| Ok(())).collect()))
    }
}

/// The id of the account (base URL or binding, public key), created if new.
fn account_row(
    conn: &Connection,
    path: &Path,
    base_url: &str,
    api_key: &str,
    now_ms: i64,
) -> Result<i64> {
    conn.execute(
        "INSERT INTO accounts (base_url, api_key, created_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(base_url, api_key) DO NOTHING",
        params![base_url, api_key, now_ms],
    )
    .map_err(|e| sqlite_err(path, e))?;
    conn.query_row(
        "SELECT id FROM accounts WHERE base_url = ?1 AND api_key = ?2",
        params![base_url, api_key],
        |r| r.get(0),
    )
    .map_err(|e| sqlite_err(path, e))
}

/// Journal trades of an account: new ones are inserted, known ones (same
/// account and trade id) only get `last_run_id`. Returns how many were new.
fn insert_trades(
    conn: &Connection,
    path: &Path,
    account_id: i64,
    run_id: i64,
    trades: &[TradeRow],
    memo: &mut Option<figures::Memo>,
) -> Result<usize> {
    let err = |e| sqlite_err(path, e);
    let mut ins = conn
        .prepare_cached(
            "INSERT INTO trades (account_id, trade_id, exchange_order_id, pair, side, price,
                                 quantity, fee, fee_currency, traded_ms, first_run_id,
                                 last_run_id, seen_ms, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13)
             ON CONFLICT(account_id, trade_id) DO NOTHING",
        )
        .map_err(err)?;
    let mut seen = conn
        .prepare_cached(
            "UPDATE trades SET last_run_id = ?3 WHERE account_id = ?1 AND trade_id = ?2",
        )
        .map_err(err)?;
    let now = crate::client::now_ms();
    let mut new = Vec::new();
    for t in trades {
        let n = ins
            .execute(params![
                account_id,
                t.trade_id,
                t.exchange_order_id,
                t.pair,
                t.side,
                t.price,
                t.quantity,
                t.fee,
                t.fee_currency,
                t.traded_ms,
                run_id,
                now,
                t.raw
            ])
            .map_err(err)?;
        if n == 0 {
            seen.execute(params![account_id, t.trade_id, run_id])
                .map_err(err)?;
        } else {
            new.push(t);
        }
    }
    // The positions' figures change with the trades, in this transaction.
    figures::apply_new(conn, path, account_id, &new, memo)?;
    Ok(new.len())
}

/// A write transaction, IMMEDIATE: it takes the write lock up front. A
/// deferred transaction that reads first cannot wait for another writer
/// (SQLite returns BUSY at once on the upgrade), and two batches, or a run
/// and a reconcile, may share a journal.
fn write_tx<'c>(conn: &'c mut Connection, path: &Path) -> Result<rusqlite::Transaction<'c>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| sqlite_err(path, e))
}

fn sqlite_err(path: &Path, source: rusqlite::Error) -> JournalError {
    JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// The batch row, if the batch was ever run.
fn batch_row(conn: &Connection, path: &Path, id: &str) -> Result<Option<BatchRow>> {
    conn.query_row(
        "SELECT id, base_url, api_key FROM batches WHERE id = ?1",
        [id],
        |r| {
            Ok(BatchRow {
                id: r.get(0)?,
                base_url: r.get(1)?,
                api_key: r.get(2)?,
            })
        },
    )
    .optional()
    .map_err(|e| sqlite_err(path, e))
}

/// See [`Journal::check`]; also used inside `register`'s transaction.
fn check_batch(
    conn: &Connection,
    path: &Path,
    batch: &Batch,
    account: Option<(&str, &str)>,
) -> Result<std::result::Result<Registration, BatchRefusal>> {
    Ok(check_batch_known(conn, path, batch, account)?.0)
}

/// A journaled order as [`check_batch_known`] reads it: (seq, id, body).
type KnownOrder = (i64, String, String);

/// [`check_batch`], and the batch's orders already journaled, in no given
/// order.
///
/// Reads only each journaled order's seq, id and body (not whole rows): a
/// rerun of a large batch checks every order against the journal.
fn check_batch_known(
    conn: &Connection,
    path: &Path,
    batch: &Batch,
    account: Option<(&str, &str)>,
) -> Result<(
    std::result::Result<Registration, BatchRefusal>,
    Vec<KnownOrder>,
)> {
    if let (Some((base_url, api_key)), Some(row)) = (account, batch_row(conn, path, &batch.id)?) {
        if row.base_url != base_url || row.api_key != api_key {
            return Ok((Err(BatchRefusal::Bound(row)), Default::default()));
        }
    }
    let mut reg = Registration::default();
    let err = |e| sqlite_err(path, e);
    // No `ORDER BY seq`: no index has `seq`, so SQLite would copy every
    // (id, body) through a temporary sorter; only the few orders missing
    // from the file are put in file order, below.
    let mut st = conn
        .prepare_cached("SELECT seq, order_id, body FROM orders WHERE batch_id = ?1")
        .map_err(err)?;
    let existing: Vec<KnownOrder> = st
        .query_map([&batch.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(err)?
        .collect::<std::result::Result<_, _>>()
        .map_err(err)?;
    let mut in_file = HashSet::with_capacity(batch.orders.len());
    let mut conflicts = Vec::new();
    {
        let by_id: std::collections::HashMap<&str, &str> = existing
            .iter()
            .map(|(_, id, body)| (id.as_str(), body.as_str()))
            .collect();
        for spec in &batch.orders {
            in_file.insert(spec.id.as_str());
            match by_id.get(spec.id.as_str()) {
                None => reg.added += 1,
                Some(&journal_body) => {
                    let body = spec.intent.body(None);
                    if journal_body == body {
                        reg.known += 1;
                    } else {
                        conflicts.push(Conflict {
                            order_id: spec.id.clone(),
                            journal_body: journal_body.to_string(),
                            file_body: body,
                        });
                    }
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Ok((Err(BatchRefusal::Conflicts(conflicts)), existing));
    }
    let bad_cancels = cancels::check(conn, path, batch)?;
    if !bad_cancels.is_empty() {
        return Ok((Err(BatchRefusal::Cancels(bad_cancels)), existing));
    }
    reg.cancels_added = cancels::count_new(conn, path, batch)?;
    let mut missing: Vec<(i64, &str)> = existing
        .iter()
        .filter(|(_, id, _)| !in_file.contains(id.as_str()))
        .map(|(seq, id, _)| (*seq, id.as_str()))
        .collect();
    missing.sort_unstable();
    reg.missing_from_file = missing.into_iter().map(|(_, id)| id.to_string()).collect();
    Ok((Ok(reg), existing))
}

/// The columns [`order_row`] reads, in its order.
const ORDER_COLUMNS: &str =
    "batch_id, order_id, seq, pair, side, type, quantity, price, body, state,
                    attempts, exchange_order_id, exchange_status, filled_quantity,
                    client_order_id, last_error, created_ms, first_sent_ms, last_sent_ms,
                    last_deadline_ms";

/// Every order of a batch, in file order.
fn order_rows(conn: &Connection, path: &Path, batch_id: &str) -> Result<Vec<OrderRow>> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE batch_id = ?1"
        ))
        .map_err(|e| sqlite_err(path, e))?;
    let rows = st
        .query_map([batch_id], order_row)
        .map_err(|e| sqlite_err(path, e))?;
    in_file_order(rows.collect::<std::result::Result<Vec<_>, _>>()).map_err(|e| sqlite_err(path, e))
}

/// Rows sorted by `seq` here rather than by an `ORDER BY`: no index has
/// `seq`, so SQLite would copy every whole row (bodies included) through a
/// temporary sorter.
fn in_file_order(rows: rusqlite::Result<Vec<OrderRow>>) -> rusqlite::Result<Vec<OrderRow>> {
    rows.map(|mut rows| {
        rows.sort_by_key(|o| o.seq);
        rows
    })
}

/// Rows read with their `seq` first, in file order, without it (sorted
/// here for the reason of [`in_file_order`]).
fn by_seq<T>(mut rows: Vec<(i64, T)>) -> Vec<T> {
    rows.sort_unstable_by_key(|(seq, _)| *seq);
    rows.into_iter().map(|(_, row)| row).collect()
}

/// A TEXT column read as one of hqx's states (an order's, a cancel's):
/// a value it does not know is a conversion error naming the column.
fn parsed<T: std::str::FromStr<Err = String>>(text: String, col: usize) -> rusqlite::Result<T> {
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, e.into())
    })
}

/// The orders of a batch in one state, in file order. `sending` and
/// `unknown` orders, which a run asks for first and which are few, are
/// read through the partial index `orders_unsettled`; `pending` and `open`
/// ones through the batch's part of the primary key.
fn order_rows_in(
    conn: &Connection,
    path: &Path,
    batch_id: &str,
    state: OrderState,
) -> Result<Vec<OrderRow>> {
    // The state as a literal, not a parameter: for `sending` and `unknown`
    // SQLite then reads the partial index `orders_unsettled` (schema 8),
    // which it cannot prove a bound value falls under.
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE batch_id = ?1 AND state = '{}'",
            state.as_str()
        ))
        .map_err(|e| sqlite_err(path, e))?;
    let rows = st
        .query_map(params![batch_id], order_row)
        .map_err(|e| sqlite_err(path, e))?;
    in_file_order(rows.collect::<std::result::Result<Vec<_>, _>>()).map_err(|e| sqlite_err(path, e))
}

/// One row of [`ORDER_COLUMNS`].
fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        batch_id: r.get(0)?,
        order_id: r.get(1)?,
        seq: r.get(2)?,
        pair: r.get(3)?,
        side: r.get(4)?,
        kind: r.get(5)?,
        quantity: r.get(6)?,
        price: r.get(7)?,
        body: r.get(8)?,
        state: parsed(r.get(9)?, 9)?,
        attempts: r.get(10)?,
        exchange_order_id: r.get(11)?,
        exchange_status: r.get(12)?,
        filled_quantity: r.get(13)?,
        client_order_id: r.get(14)?,
        last_error: r.get(15)?,
        created_ms: r.get(16)?,
        first_sent_ms: r.get(17)?,
        last_sent_ms: r.get(18)?,
        last_deadline_ms: r.get(19)?,
    })
}

/// A `pending` order as placing it needs it ([`Journal::orders_to_place`]).
#[derive(Debug, Clone)]
pub struct ToPlace {
    /// Batch id.
    pub batch_id: String,
    /// Order id within the batch.
    pub order_id: String,
    /// The exact body to send (before a client order id is added).
    pub body: String,
    /// Placement requests sent so far.
    pub attempts: i64,
    /// Its rowid in `orders` ([`StateChange::row`]).
    pub row: i64,
}

/// One write the journal thread can group with others.
#[derive(Debug, Clone)]
pub enum Write {
    /// An order state change.
    State(StateChange),
    /// An HTTP exchange.
    Http(HttpRecord),
    /// Trades fetched by a run.
    Trades {
        /// The account they belong to.
        account_id: i64,
        /// The run.
        run_id: i64,
        /// The trades.
        trades: Vec<TradeRow>,
    },
    /// A query result.
    Query(QueryResult),
}

/// The statements [`apply_one`] runs for every order, each prepared (or
/// taken from the connection's cache) once per group rather than once per
/// write: taking a statement from rusqlite's cache and putting it back
/// hashes its whole SQL text each time.
struct Statements<'c> {
    conn: &'c Connection,
    update: Option<Bound<'c>>,
    update_row: Option<Bound<'c>>,
    event: Option<Bound<'c>>,
    http: Option<Bound<'c>>,
    memo: &'c mut Option<figures::Memo>,
}

impl<'c> Statements<'c> {
    fn new(conn: &'c Connection, memo: &'c mut Option<figures::Memo>) -> Statements<'c> {
        Statements {
            conn,
            update: None,
            update_row: None,
            event: None,
            http: None,
            memo,
        }
    }
}

/// A statement of the group, with the value last bound to each of its
/// parameters, so that a value already bound is not bound again.
///
/// Running a statement keeps its bindings (`sqlite3_reset`), and binding a
/// text copies it into SQLite (rusqlite binds with `SQLITE_TRANSIENT`):
/// about 280 instructions, for values that are mostly the same from one
/// write of a group to the next (the batch, the run, the states, the
/// placement's path). The statement's bindings are cleared when rusqlite
/// takes it back at the end of the group, with this record.
struct Bound<'c> {
    st: rusqlite::CachedStatement<'c>,
    /// By parameter index - 1; `None` until bound, or when a bound value
    /// is not remembered.
    last: Vec<Option<Last>>,
}

/// A value bound to a parameter of a [`Bound`] statement.
enum Last {
    Null,
    Integer(i64),
    /// Its buffer is reused for the next text bound there.
    Text(Vec<u8>),
}

impl<'c> Bound<'c> {
    /// The statement in `slot`, prepared on first use.
    fn of<'a>(
        conn: &'c Connection,
        slot: &'a mut Option<Bound<'c>>,
        sql: &str,
    ) -> rusqlite::Result<&'a mut Bound<'c>> {
        if slot.is_none() {
            let st = conn.prepare_cached(sql)?;
            let last = std::iter::repeat_with(|| None)
                .take(st.parameter_count())
                .collect();
            *slot = Some(Bound { st, last });
        }
        Ok(slot.as_mut().expect("just prepared"))
    }

    /// Bind `value` to parameter `i` (from 1) unless it is bound already.
    fn bind(&mut self, i: usize, value: &dyn ToSql) -> rusqlite::Result<()> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        let out = value.to_sql()?;
        let now = match &out {
            ToSqlOutput::Borrowed(v) => *v,
            ToSqlOutput::Owned(v) => ValueRef::from(v),
            // Not used by the journal: bind, and remember nothing.
            _ => {
                self.last[i - 1] = None;
                return self.st.raw_bind_parameter(i, &out);
            }
        };
        let same = match (&self.last[i - 1], now) {
            (Some(Last::Null), ValueRef::Null) => true,
            (Some(Last::Integer(a)), ValueRef::Integer(b)) => *a == b,
            (Some(Last::Text(a)), ValueRef::Text(b)) => a.as_slice() == b,
            _ => false,
        };
        if same {
            return Ok(());
        }
        // Nothing is remembered while binding: a failed bind leaves the
        // parameter to be bound again.
        let old = self.last[i - 1].take();
        self.st.raw_bind_parameter(i, &out)?;
        self.last[i - 1] = match now {
            ValueRef::Null => Some(Last::Null),
            ValueRef::Integer(n) => Some(Last::Integer(n)),
            ValueRef::Text(t) => {
                let mut buf = match old {
                    Some(Last::Text(mut b)) => {
                        b.clear();
                        b
                    }
                    _ => Vec::with_capacity(t.len()),
                };
                buf.extend_from_slice(t);
                Some(Last::Text(buf))
            }
            // Reals and blobs: bound each time.
            _ => None,
        };
        Ok(())
    }

    /// Bind every value of `values` (parameters 1, 2, ...) and run.
    fn execute(&mut self, values: &[&dyn ToSql]) -> rusqlite::Result<usize> {
        for (i, v) in values.iter().enumerate() {
            self.bind(i + 1, *v)?;
        }
        self.st.raw_execute()
    }
}

/// The UPDATE of an order's state change, finding the row by `$row`
/// (parameters: see `apply_one`).
macro_rules! update_order {
    ($row:literal) => {
        concat!(
            "UPDATE orders SET
                state = ?3,
                updated_ms = ?4,
                exchange_order_id = COALESCE(?5, exchange_order_id),
                exchange_status = COALESCE(?6, exchange_status),
                filled_quantity = COALESCE(?7, filled_quantity),
                average_price = COALESCE(?8, average_price),
                last_error = CASE WHEN ?9 THEN ?10 ELSE last_error END,
                attempts = attempts + ?11,
                first_sent_ms = CASE WHEN ?11 = 1 THEN COALESCE(first_sent_ms, ?4) ELSE first_sent_ms END,
                last_sent_ms = CASE WHEN ?11 = 1 THEN ?4 ELSE last_sent_ms END,
                last_deadline_ms = CASE WHEN ?11 = 1 THEN ?13 ELSE last_deadline_ms END,
                client_order_id = COALESCE(?12, client_order_id)
             WHERE ",
            $row
        )
    };
}

fn apply_one(st: &mut Statements<'_>, item: &Write, path: &Path) -> Result<()> {
    let tx = st.conn;
    let err = |source| JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    match item {
        Write::State(c) => {
            let read_state = || -> Result<String> {
                let current: Option<String> = tx
                    .prepare_cached(
                        "SELECT state FROM orders WHERE batch_id = ?1 AND order_id = ?2",
                    )
                    .map_err(err)?
                    .query_row(params![c.batch_id, c.order_id], |r| r.get(0))
                    .optional()
                    .map_err(err)?;
                Ok(current.unwrap_or_else(|| "<absent>".into()))
            };
            // With an expected state, the UPDATE itself checks it (one
            // statement, not a read and a write); the state is read only to
            // explain a refusal, or when no state is expected.
            let current: std::borrow::Cow<'static, str> = match c.from {
                Some(from) => from.as_str().into(),
                None => read_state()?.into(),
            };
            let to: &str = match c.to {
                Some(s) => s.as_str(),
                None => &current,
            };
            let (clear_error, error) = match &c.last_error {
                None => (false, None),
                Some(e) => (true, e.as_deref()),
            };
            let values = params![
                c.batch_id,
                c.order_id,
                to,
                c.at_ms,
                c.exchange_order_id,
                c.exchange_status,
                c.filled_quantity,
                c.average_price,
                clear_error,
                error,
                c.is_send as i64 - c.unsent as i64,
                c.client_order_id,
                c.send_deadline_ms,
                current,
            ];
            // By rowid when the writer read it; by the primary key when it
            // did not, or when that row is not this order in that state
            // (a VACUUM between the read and now may renumber rows).
            let mut n = 0;
            if let Some(row) = c.row {
                let up = Bound::of(
                    tx,
                    &mut st.update_row,
                    update_order!(
                        "rowid = ?15 AND batch_id = ?1 AND order_id = ?2 AND state = ?14"
                    ),
                )
                .map_err(err)?;
                up.bind(15, &row).map_err(err)?;
                n = up.execute(values).map_err(err)?;
            }
            if n == 0 {
                n = Bound::of(
                    tx,
                    &mut st.update,
                    update_order!("batch_id = ?1 AND order_id = ?2 AND state = ?14"),
                )
                .map_err(err)?
                .execute(values)
                .map_err(err)?;
            }
            if n == 0 {
                if let Some(from) = c.from {
                    return Err(JournalError::StateMismatch {
                        batch_id: c.batch_id.clone(),
                        order_id: c.order_id.clone(),
                        expected: from.as_str().into(),
                        found: read_state()?,
                    });
                }
            }
            if c.to.is_some() && (to != current || c.from.is_some()) {
                Bound::of(
                    tx,
                    &mut st.event,
                    "INSERT INTO order_events (batch_id, order_id, run_id, at_ms, event, from_state, to_state, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err)?
                .execute(params![
                    c.batch_id, c.order_id, c.run_id, c.at_ms, c.event, current, to, c.detail
                ])
                .map_err(err)?;
            }
        }
        Write::Http(h) => {
            Bound::of(
                tx,
                &mut st.http,
                "INSERT INTO http_log (run_id, at_ms, method, path, status, latency_us, error, batch_id, order_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(err)?
            .execute(params![
                h.run_id, h.at_ms, h.method, h.path, h.status, h.latency_us, h.error, h.batch_id, h.order_id
            ])
            .map_err(err)?;
        }
        Write::Trades {
            account_id,
            run_id,
            trades,
        } => {
            insert_trades(tx, path, *account_id, *run_id, trades, st.memo)?;
        }
        Write::Query(q) => {
            let (ok, result, error) = match &q.result {
                Ok(r) => (1, Some(r.as_str()), None),
                Err(e) => (0, None, Some(e.as_str())),
            };
            tx.prepare_cached(
                "INSERT INTO query_results (run_id, batch_id, query_id, kind, fetched_ms, ok, result, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(err)?
            .execute(params![q.run_id, q.batch_id, q.query_id, q.kind, q.fetched_ms, ok, result, error])
            .map_err(err)?;
        }
    }
    Ok(())
}

type Call = Box<dyn FnOnce(&mut Journal) + Send>;

enum Msg {
    Write(Vec<Write>, Option<tokio::sync::oneshot::Sender<Result<()>>>),
    Call(Call),
}

/// A handle to the journal thread. Cheap to clone.
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Msg>,
}

/// Most writes grouped into one transaction.
const GROUP_MAX: usize = 4096;

/// A group of at least this many writes means orders are being placed as
/// fast as the exchange answers: the next group waits [`GROUP_WINDOW`] for
/// more writes before it commits. (A placement makes two; at a rate limit
/// of a few requests a second a group holds a few.)
const BUSY_GROUP: usize = 32;

/// How long a group waits for more writes while busy ([`BUSY_GROUP`]). A
/// placement's `sending` mark waits that much longer for its commit; orders
/// are marked ahead of their request slot (`client::AHEAD_PER_SLOT`), so
/// the requests in flight do not wait for it. 10,000 orders at concurrency
/// 16 against the sandbox: hqx's CPU per order 99.7 -> 87.5 us (medians of
/// 12 alternated runs; 1 ms, 4 ms and a threshold of 16 measured worse).
const GROUP_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

impl JournalWriter {
    /// Move the journal onto its own thread.
    pub fn spawn(mut journal: Journal) -> (JournalWriter, JoinHandle<Journal>) {
        let (tx, rx) = mpsc::channel::<Msg>();
        let handle = std::thread::Builder::new()
            .name("hqx-journal".into())
            .spawn(move || {
                let mut pending: Vec<Msg> = Vec::new();
                // Group commit: everything waiting goes into one
                // transaction. While a run places orders as fast as the
                // exchange answers, a group also waits a moment for more
                // (PostgreSQL's commit_delay): each commit costs an fsync
                // and rewrites the same pages (the last page of each table
                // and index), whatever it holds. A call (a read someone
                // waits on) never waits; a lone write never does.
                let mut busy = false;
                while let Ok(first) = rx.recv() {
                    pending.push(first);
                    drain(&rx, &mut pending);
                    if busy && !pending.iter().any(|m| matches!(m, Msg::Call(_))) {
                        std::thread::sleep(GROUP_WINDOW);
                        drain(&rx, &mut pending);
                    }
                    busy = writes_in(&pending) >= BUSY_GROUP;
                    run_group(&mut journal, &mut pending);
                }
                journal
            })
            .expect("spawn the journal thread");
        (JournalWriter { tx }, handle)
    }

    /// Write and wait until committed. Use before anything that must only
    /// happen once the write is durable (sending an order).
    pub async fn write_durable(&self, items: Vec<Write>) -> Result<()> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Write(items, Some(ack)))
            .map_err(|_| JournalError::WriterGone("channel closed".into()))?;
        rx.await
            .map_err(|_| JournalError::WriterGone("no answer".into()))?
    }

    /// Write without waiting (it is committed with the next group).
    pub fn write(&self, items: Vec<Write>) {
        let _ = self.tx.send(Msg::Write(items, None));
    }

    /// Run a function on the journal thread and return its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Journal) -> T + Send + 'static,
    ) -> Result<T> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Call(Box::new(move |j| {
                let _ = ack.send(f(j));
            })))
            .map_err(|_| JournalError::WriterGone("channel closed".into()))?;
        rx.await
            .map_err(|_| JournalError::WriterGone("no answer".into()))
    }
}

/// Take what else is waiting, up to [`GROUP_MAX`] messages.
fn drain(rx: &mpsc::Receiver<Msg>, pending: &mut Vec<Msg>) {
    while pending.len() < GROUP_MAX {
        match rx.try_recv() {
            Ok(m) => pending.push(m),
            Err(_) => break,
        }
    }
}

/// How many writes the messages carry.
fn writes_in(pending: &[Msg]) -> usize {
    pending
        .iter()
        .map(|m| match m {
            Msg::Write(items, _) => items.len(),
            Msg::Call(_) => 0,
        })
        .sum()
}

fn run_group(journal: &mut Journal, pending: &mut Vec<Msg>) {
    // Writes before a call are committed before it runs, so a call sees
    // everything sent before it.
    let mut writes: Vec<Write> = Vec::new();
    let mut acks: Vec<(usize, usize, tokio::sync::oneshot::Sender<Result<()>>)> = Vec::new();
    let flush =
        |journal: &mut Journal,
         writes: &mut Vec<Write>,
         acks: &mut Vec<(usize, usize, tokio::sync::oneshot::Sender<Result<()>>)>| {
            if writes.is_empty() && acks.is_empty() {
                return;
            }
            match journal.apply(writes) {
                Ok(results) => {
                    let mut results: Vec<Option<Result<()>>> =
                        results.into_iter().map(Some).collect();
                    for (start, end, ack) in acks.drain(..) {
                        let mut r = Ok(());
                        for slot in &mut results[start..end] {
                            if let Some(Err(e)) = slot.take() {
                                r = Err(e);
                                break;
                            }
                        }
                        let _ = ack.send(r);
                    }
                    for r in results.into_iter().flatten() {
                        if let Err(e) = r {
                            tracing::error!("journal write refused: {e}");
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("journal transaction failed: {e}");
                    for (_, _, ack) in acks.drain(..) {
                        let _ = ack.send(Err(JournalError::WriterGone(e.to_string())));
                    }
                }
            }
            writes.clear();
        };
    for msg in pending.drain(..) {
        match msg {
            Msg::Write(items, ack) => {
                let start = writes.len();
                writes.extend(items);
                if let Some(ack) = ack {
                    acks.push((start, writes.len(), ack));
                }
            }
            Msg::Call(f) => {
                flush(journal, &mut writes, &mut acks);
                f(journal);
            }
        }
    }
    flush(journal, &mut writes, &mut acks);
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH_B: &str =
        "INSERT INTO accounts (id, base_url, api_key, created_ms) VALUES (1, 'u', 'k', 1);
         INSERT INTO batches (id, file_path, file_sha256, base_url, api_key, created_ms, account_id)
         VALUES ('b', 'f', 'h', 'u', 'k', 1, 1)";

    /// Batch `b` ([`BATCH_B`]) with a pending market order for each id, in
    /// that order.
    fn with_pending(j: &Journal, ids: &[&str]) {
        let rows: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(seq, id)| {
                format!("('b', '{id}', {seq}, 'BTC-USDC', 'buy', 'market', '1', '{{}}', 'pending', 1, 1)")
            })
            .collect();
        j.conn
            .execute_batch(&format!(
                "{BATCH_B};
                 INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, body, state, created_ms, updated_ms)
                 VALUES {};",
                rows.join(", ")
            ))
            .unwrap();
    }

    /// Order `id` of batch `b` sent, `pending` to `sending`, at 5 ms.
    fn sending(id: &str) -> StateChange {
        StateChange {
            batch_id: "b".into(),
            order_id: id.into(),
            at_ms: 5,
            event: "send",
            from: Some(OrderState::Pending),
            to: Some(OrderState::Sending),
            is_send: true,
            ..Default::default()
        }
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn the_settled_snapshot_is_the_latest_that_no_trade_straddles() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        let acct = j.account("u", "k", 1).unwrap();
        let run = j.begin_account_run(acct, "reconcile", 1).unwrap();
        let usdc = [BalanceRow {
            currency: "USDC".into(),
            available: "1".into(),
            locked: "0".into(),
            total: "1".into(),
        }];
        // Reads of (sent, answered): 100..110, 200..210, 300..310.
        let a = j.insert_snapshot(acct, run, (100, 110), &usdc).unwrap();
        let b = j.insert_snapshot(acct, run, (200, 210), &usdc).unwrap();
        let c = j.insert_snapshot(acct, run, (300, 310), &usdc).unwrap();
        let trade = |id: &str, at: i64| TradeRow {
            trade_id: id.into(),
            traded_ms: Some(at),
            raw: "{}".into(),
            ..Default::default()
        };
        // A trade stamped while b was read; one 15 ms after a's answer.
        j.insert_trades(acct, run, &[trade("T1", 205), trade("T2", 125)])
            .unwrap();
        let settled = |before, skew| {
            j.last_settled_snapshot(acct, before, skew)
                .unwrap()
                .map(|s| s.id)
        };
        assert_eq!(settled(c + 1, 0), Some(c));
        assert_eq!(settled(c, 0), Some(a), "b is straddled by T1");
        assert_eq!(settled(b, 0), Some(a));
        // With 20 ms of skew T2 straddles a too: nothing before c settles.
        assert_eq!(settled(c, 20), None);
        assert_eq!(j.trades_stamped_within(acct, 190, 230).unwrap(), 1);
    }

    /// A value is left bound only when it is the same value of the same
    /// type; anything else is bound again.
    #[test]
    fn a_bound_statement_binds_again_what_changed() {
        use rusqlite::types::Value;
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, x, y)")
            .unwrap();
        let series: Vec<(Value, Value)> = vec![
            (Value::Text("a".into()), Value::Null),
            (Value::Text("a".into()), Value::Null),
            (Value::Text("b".into()), Value::Null),
            (Value::Text("ab".into()), Value::Integer(1)),
            (Value::Text("a".into()), Value::Integer(1)),
            (Value::Null, Value::Text("1".into())),
            (Value::Text("".into()), Value::Text("1".into())),
            (Value::Null, Value::Integer(1)),
            (Value::Integer(7), Value::Real(1.5)),
            (Value::Text("7".into()), Value::Real(1.5)),
            (Value::Integer(7), Value::Blob(vec![1])),
            (Value::Text("a longer text than before".into()), Value::Null),
            (Value::Text("a".into()), Value::Null),
        ];
        {
            let mut slot = None;
            for (x, y) in &series {
                let st = Bound::of(&c, &mut slot, "INSERT INTO t (x, y) VALUES (?1, ?2)").unwrap();
                assert_eq!(st.execute(&[x as &dyn ToSql, y]).unwrap(), 1);
            }
        }
        let rows: Vec<(Value, Value)> = c
            .prepare("SELECT x, y FROM t ORDER BY n")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, series);
    }

    /// `.cargo/config.toml` builds the bundled SQLite without memory
    /// statistics and without one page cache shared by every connection
    /// (and with fdatasync, which SQLite does not list).
    #[test]
    fn the_bundled_sqlite_is_built_with_the_repository_s_options() {
        let c = Connection::open_in_memory().unwrap();
        let options: Vec<String> = c
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }

    #[test]
    fn a_new_journal_has_8_kib_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let size = |p: &Path| -> i64 {
            Connection::open(p)
                .unwrap()
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .unwrap()
        };
        let new = dir.path().join("new.db");
        drop(Journal::open(&new).unwrap());
        assert_eq!(size(&new), PAGE_SIZE);
        // A journal made with SQLite's default pages, as hqx made them.
        let old = dir.path().join("old.db");
        {
            let c = Connection::open(&old).unwrap();
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
            c.execute_batch("CREATE TABLE t (x); DROP TABLE t;")
                .unwrap();
        }
        assert_eq!(size(&old), 4096);
        let mut j = Journal::open(&old).unwrap();
        let acct = j.account("u", "k", 1).unwrap();
        drop(j);
        assert_eq!(size(&old), 4096);
        assert_eq!(
            Journal::open(&old).unwrap().account("u", "k", 2).unwrap(),
            acct
        );
    }

    #[test]
    fn a_journal_from_a_newer_hqx_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.db");
        Journal::open(&p).unwrap();
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = Journal::open(&p).unwrap_err();
        assert!(matches!(e, JournalError::TooNew { found: 99, .. }), "{e}");
        assert!(e.to_string().contains("newer hqx"));
    }

    #[test]
    fn reopening_keeps_data_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.db");
        let j = Journal::open(&p).unwrap();
        j.conn.execute_batch(BATCH_B).unwrap();
        drop(j);
        let j = Journal::open(&p).unwrap();
        assert!(j.batch("b").unwrap().is_some());
        let v: i64 = j
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, Journal::schema_version());
        let mode: String = j
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_state_change_from_the_wrong_state_is_refused_and_others_still_apply() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        with_pending(&j, &["x", "y"]);
        let ch = |id: &str, from| {
            Write::State(StateChange {
                from: Some(from),
                send_deadline_ms: Some(10_005),
                ..sending(id)
            })
        };
        let r = j
            .apply(&[ch("x", OrderState::Open), ch("y", OrderState::Pending)])
            .unwrap();
        assert!(matches!(r[0], Err(JournalError::StateMismatch { .. })));
        assert!(r[1].is_ok());
        let rows = j.orders("b").unwrap();
        assert_eq!(rows[0].state, OrderState::Pending);
        assert_eq!(rows[1].state, OrderState::Sending);
        assert_eq!(rows[1].attempts, 1);
        assert_eq!(rows[1].last_sent_ms, Some(5));
        assert_eq!(rows[1].last_deadline_ms, Some(10_005));
    }

    /// A change addressed by rowid applies to that order; a rowid that
    /// names another order (rows renumbered since the read) changes
    /// nothing there and the change still applies by the order's ids.
    #[test]
    fn a_change_by_rowid_checks_the_ids_and_falls_back_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        with_pending(&j, &["x", "y"]);
        let placing = j.orders_to_place("b").unwrap();
        let row = |id: &str| placing.iter().find(|o| o.order_id == id).unwrap().row;
        let send = |id: &str, row: i64| {
            Write::State(StateChange {
                row: Some(row),
                ..sending(id)
            })
        };
        // x by its own rowid; y by x's rowid (x is no longer pending).
        let r = j
            .apply(&[send("x", row("x")), send("y", row("x"))])
            .unwrap();
        assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
        let rows = j.orders("b").unwrap();
        assert_eq!(
            rows.iter()
                .map(|o| (o.state, o.attempts))
                .collect::<Vec<_>>(),
            [(OrderState::Sending, 1), (OrderState::Sending, 1)]
        );
        // A rowid that names no row at all: by the ids, and a wrong state
        // is still refused.
        let r = j.apply(&[send("y", 999)]).unwrap();
        assert!(
            matches!(r[0], Err(JournalError::StateMismatch { .. })),
            "{r:?}"
        );
        assert_eq!(j.orders("b").unwrap()[1].attempts, 1);
    }

    /// A run reads its `sending` and `unknown` orders through the partial
    /// index of unsettled orders (schema 8), and changes of order state
    /// find the row by rowid.
    #[test]
    fn unsettled_orders_are_read_through_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        let plan = |sql: &str| -> String {
            let mut st = j
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let nulls = vec![rusqlite::types::Null; st.parameter_count()];
            st.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect::<Vec<_>>()
                .join("; ")
        };
        for state in [OrderState::Sending, OrderState::Unknown] {
            let sql = format!(
                "SELECT * FROM orders WHERE batch_id = ?1 AND state = '{}'",
                state.as_str()
            );
            assert!(
                plan(&sql).contains("USING INDEX orders_unsettled"),
                "{sql}: {}",
                plan(&sql)
            );
        }
        let by_row = plan(update_order!(
            "rowid = ?15 AND batch_id = ?1 AND order_id = ?2 AND state = ?14"
        ));
        assert!(by_row.contains("INTEGER PRIMARY KEY (rowid=?)"), "{by_row}");
    }

    /// After a busy group (one that makes the next wait for more writes),
    /// writes are still committed in order, each acknowledged once durable,
    /// and a call still sees every write sent before it.
    #[test]
    fn the_writer_keeps_order_and_durability_after_a_busy_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let j = Journal::open(&path).unwrap();
        with_pending(&j, &["x"]);
        let (writer, thread) = JournalWriter::spawn(j);
        let http = |i: i64| {
            Write::Http(HttpRecord {
                at_ms: i,
                method: "GET",
                path: format!("/p/{i}"),
                ..Default::default()
            })
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (seen, state) = rt.block_on(async {
            writer
                .write_durable((0..BUSY_GROUP as i64 * 2).map(http).collect())
                .await
                .unwrap();
            writer.write(vec![http(1000)]);
            writer
                .write_durable(vec![Write::State(sending("x"))])
                .await
                .unwrap();
            writer.write(vec![http(1001)]);
            writer
                .call(|j| {
                    let n: i64 = j
                        .conn
                        .query_row("SELECT count(*) FROM http_log", [], |r| r.get(0))
                        .unwrap();
                    (n, j.orders("b").unwrap()[0].state)
                })
                .await
                .unwrap()
        });
        assert_eq!(seen, BUSY_GROUP as i64 * 2 + 2);
        assert_eq!(state, OrderState::Sending);
        drop(writer);
        thread.join().unwrap();
        // Durable: another connection sees it all.
        let other = Connection::open(&path).unwrap();
        let paths: Vec<String> = other
            .prepare("SELECT path FROM http_log ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(paths.len(), BUSY_GROUP * 2 + 2);
        assert_eq!(paths[0], "/p/0");
        assert_eq!(paths[BUSY_GROUP * 2..], ["/p/1000", "/p/1001"]);
    }

    #[test]
    fn report_rows_are_whole_rows_narrowed_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        j.conn
            .execute_batch(
                &format!("{BATCH_B};
                 INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, body, state, attempts, exchange_order_id, filled_quantity, last_error, created_ms, updated_ms)
                 VALUES ('b', 'y', 2, 'BTC-USDC', 'buy', 'market', '1', '{{}}', 'rejected', 1, NULL, NULL, 'HTTP 400: no', 1, 1),
                        ('b', 'z', 0, 'BTC-USDC', 'buy', 'market', '1', '{{}}', 'filled', 1, 'E1', '1', NULL, 1, 1),
                        ('b', 'x', 1, 'BTC-USDC', 'buy', 'market', '1', '{{}}', 'pending', 0, NULL, NULL, NULL, 1, 1);"),
            )
            .unwrap();
        let whole: Vec<ReportRow> = j
            .orders("b")
            .unwrap()
            .into_iter()
            .map(|o| ReportRow {
                order_id: o.order_id,
                state: o.state,
                attempts: o.attempts,
                exchange_order_id: o.exchange_order_id,
                filled_quantity: o.filled_quantity,
                last_error: o.last_error,
            })
            .collect();
        let narrow = j.report_rows("b").unwrap();
        assert_eq!(narrow, whole);
        // File order: neither the order of insertion (y, z, x) nor of ids.
        let ids: Vec<&str> = narrow.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(ids, ["z", "x", "y"]);
        assert_eq!(narrow[0].exchange_order_id.as_deref(), Some("E1"));
        assert_eq!(narrow[2].last_error.as_deref(), Some("HTTP 400: no"));
    }

    #[test]
    fn open_orders_are_whole_rows_narrowed_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        j.conn
            .execute_batch(
                &format!("{BATCH_B};
                 INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, body, state, attempts, exchange_order_id, filled_quantity, created_ms, updated_ms)
                 VALUES ('b', 'y', 3, 'BTC-USDC', 'buy', 'limit', '1', '{{}}', 'open', 1, 'E3', '0.5', 1, 1),
                        ('b', 'a', 2, 'BTC-USDC', 'buy', 'limit', '1', '{{}}', 'filled', 1, 'E2', '1', 1, 1),
                        ('b', 'z', 0, 'BTC-USDC', 'buy', 'limit', '1', '{{}}', 'open', 1, 'E0', NULL, 1, 1),
                        ('b', 'x', 1, 'BTC-USDC', 'buy', 'limit', '1', '{{}}', 'sending', 1, NULL, NULL, 1, 1),
                        ('b', 'w', 4, 'BTC-USDC', 'buy', 'limit', '1', '{{}}', 'open', 1, NULL, NULL, 1, 1);"),
            )
            .unwrap();
        let whole: Vec<OpenOrder> = j
            .orders("b")
            .unwrap()
            .iter()
            .filter_map(OpenOrder::of)
            .collect();
        let narrow = j.open_orders("b").unwrap();
        assert_eq!(narrow, whole);
        let ids: Vec<(&str, &str)> = narrow
            .iter()
            .map(|o| (o.order_id.as_str(), o.exchange_order_id.as_str()))
            .collect();
        // File order: neither the order of insertion (y, z) nor of ids.
        assert_eq!(ids, [("z", "E0"), ("y", "E3")]);
        assert_eq!(narrow[1].filled_quantity.as_deref(), Some("0.5"));
    }

    #[test]
    fn a_schema_1_journal_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.db");
        {
            let mut c = Connection::open(&p).unwrap();
            Migrations::new(vec![M::up(MIGRATIONS[0])])
                .to_latest(&mut c)
                .unwrap();
            c.execute_batch(
                "INSERT INTO batches (id, file_path, file_sha256, base_url, api_key, created_ms) VALUES ('b', 'f', 'h', 'u', 'k', 1);
                 INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, body, state, created_ms, updated_ms, last_sent_ms)
                 VALUES ('b', 'x', 0, 'BTC-USDC', 'buy', 'market', '1', '{}', 'unknown', 1, 1, 7);",
            )
            .unwrap();
        }
        let j = Journal::open(&p).unwrap();
        let rows = j.orders("b").unwrap();
        assert_eq!(
            (rows[0].last_sent_ms, rows[0].last_deadline_ms),
            (Some(7), None)
        );
        let v: i64 = j
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, Journal::schema_version());
    }

    /// Schema 7 rewrote the CHECKs of `orders` (IN lists became ORs): they
    /// accept exactly what schema 6's accepted, for inserts and updates.
    #[test]
    fn the_orders_checks_accept_what_they_accepted_before_schema_7() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        {
            let mut c = Connection::open(&old).unwrap();
            Migrations::new(MIGRATIONS[..6].iter().map(|sql| M::up(sql)).collect())
                .to_latest(&mut c)
                .unwrap();
        }
        let new = Journal::open(&dir.path().join("new.db")).unwrap();
        let old = Connection::open(&old).unwrap();
        for c in [&old, &new.conn] {
            c.execute_batch(BATCH_B).unwrap();
        }
        let values = [
            "pending",
            "sending",
            "open",
            "filled",
            "cancelled",
            "rejected",
            "unknown",
            "buy",
            "sell",
            "limit",
            "market",
            "Pending",
            "OPEN",
            "pending ",
            " open",
            "",
            "canceled",
            "new",
            "BUY",
            "Market",
        ];
        let mut n = 0;
        for (column, ok) in [("state", 7), ("side", 2), ("type", 2)] {
            let mut accepted = 0;
            for v in values {
                n += 1;
                let insert = |c: &Connection| {
                    let (mut state, mut side, mut kind) = ("pending", "buy", "limit");
                    match column {
                        "state" => state = v,
                        "side" => side = v,
                        _ => kind = v,
                    }
                    c.execute(
                        "INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, body, state, created_ms, updated_ms)
                         VALUES ('b', ?1, 0, 'BTC-USDC', ?2, ?3, '1', '{}', ?4, 1, 1)",
                        params![format!("o{n}"), side, kind, state],
                    )
                    .is_ok()
                };
                let was = insert(&old);
                assert_eq!(insert(&new.conn), was, "insert with {column} = {v:?}");
                accepted += was as usize;
                if column == "state" {
                    // An update to the value, from an order that holds a good one.
                    let update = |c: &Connection| {
                        c.execute(
                            "INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, body, state, created_ms, updated_ms)
                             VALUES ('b', ?1, 0, 'BTC-USDC', 'buy', 'limit', '1', '{}', 'pending', 1, 1)",
                            [format!("u{n}")],
                        )
                        .unwrap();
                        c.execute(
                            "UPDATE orders SET state = ?2 WHERE batch_id = 'b' AND order_id = ?1",
                            params![format!("u{n}"), v],
                        )
                        .is_ok()
                    };
                    assert_eq!(update(&new.conn), update(&old), "update to {v:?}");
                }
            }
            assert_eq!(accepted, ok, "{column}: values accepted");
        }
        // A refusal names the constraint, as before.
        let e = new
            .conn
            .execute(
                "UPDATE orders SET state = 'lost' WHERE batch_id = 'b' AND order_id = 'o1'",
                [],
            )
            .unwrap_err();
        assert!(e.to_string().contains("CHECK constraint failed"), "{e}");
    }

    /// The statements a run repeats per order build no temporary b-tree
    /// (SQLite's code for an IN list of constants in a CHECK): their plans
    /// open no ephemeral table.
    #[test]
    fn order_writes_build_no_temporary_btree() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        for sql in [
            "UPDATE orders SET state = ?3, updated_ms = ?4 WHERE batch_id = ?1 AND order_id = ?2 AND state = ?5",
            "INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, price, body, state, created_ms, updated_ms, account_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?10, ?11)
             ON CONFLICT(batch_id, order_id) DO NOTHING",
        ] {
            let mut st = j.conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Null; st.parameter_count()];
            let ops: Vec<String> = st
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get(1))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            assert!(ops.iter().any(|o| o == "Insert"), "{ops:?}");
            assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{sql}: {ops:?}");
        }
    }

    /// The `open_orders` view, for one account or all, reads the orders
    /// through the index of open orders, not by scanning every order.
    #[test]
    fn open_orders_are_read_through_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        for sql in [
            "SELECT * FROM open_orders WHERE account_id = 1",
            "SELECT * FROM open_orders",
        ] {
            let mut st = j
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let plan: Vec<String> = st
                .query_map([], |r| r.get(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            assert!(
                plan.iter().any(|p| p.contains("USING INDEX orders_open")),
                "{sql}: {plan:?}"
            );
        }
    }

    #[test]
    fn one_exchange_order_cannot_be_adopted_twice_within_an_account() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        j.conn
            .execute_batch(
                &format!("{BATCH_B};
                 INSERT INTO accounts (id, base_url, api_key, created_ms) VALUES (2, 'u', 'k2', 1);
                 INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, body, state, created_ms, updated_ms, exchange_order_id, account_id)
                 VALUES ('b', 'x', 0, 'BTC-USDC', 'buy', 'market', '1', '{{}}', 'open', 1, 1, 'E1', 1);"),
            )
            .unwrap();
        let insert = |order: &str, account: i64| {
            j.conn.execute(
                "INSERT INTO orders (batch_id, order_id, seq, pair, side, type, quantity, body, state, created_ms, updated_ms, exchange_order_id, account_id)
                 VALUES ('b', ?1, 1, 'BTC-USDC', 'buy', 'market', '1', '{}', 'open', 1, 1, 'E1', ?2)",
                params![order, account],
            )
        };
        assert!(insert("y", 1).is_err(), "same account, same exchange order");
        // Another account has its own order ids: E1 there is another order.
        assert!(insert("z", 2).is_ok());
    }

    #[test]
    fn trades_are_unique_per_account_and_counted_when_new() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        j.conn
            .execute_batch(
                "INSERT INTO accounts (id, base_url, api_key, created_ms) VALUES (1, 'u', 'k', 1), (2, 'u', 'k2', 1);",
            )
            .unwrap();
        let t = |id: &str| TradeRow {
            trade_id: id.into(),
            quantity: Some("1".into()),
            raw: "{}".into(),
            ..Default::default()
        };
        assert_eq!(j.insert_trades(1, 7, &[t("T1"), t("T2")]).unwrap(), 2);
        assert_eq!(j.insert_trades(1, 8, &[t("T2"), t("T3")]).unwrap(), 1);
        assert_eq!(j.insert_trades(2, 8, &[t("T1")]).unwrap(), 1);
        let n: i64 = j
            .conn
            .query_row("SELECT count(*) FROM trades", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4);
        let last: i64 = j
            .conn
            .query_row(
                "SELECT last_run_id FROM trades WHERE account_id = 1 AND trade_id = 'T2'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(last, 8);
    }

    fn trade(id: &str, ms: i64, side: &str, price: &str, qty: &str) -> TradeRow {
        TradeRow {
            trade_id: id.into(),
            pair: Some("BTC-USDC".into()),
            side: Some(side.into()),
            price: Some(price.into()),
            quantity: Some(qty.into()),
            fee: Some("0.01".into()),
            fee_currency: Some("USDC".into()),
            traded_ms: Some(ms),
            raw: "{}".into(),
            ..Default::default()
        }
    }

    /// The figures as stored, and as a rebuild from the trades computes them.
    fn figures_and_rebuilt(j: &mut Journal) -> (Vec<String>, Vec<String>) {
        let read = |j: &Journal| -> Vec<String> {
            let mut st = j
                .conn
                .prepare(
                    "SELECT pair, trades, bought, sold, net_quantity, average_cost, open_cost,
                            realized_pnl, fees, first_traded_ms, last_traded_ms, last_trade_id
                     FROM position_figures ORDER BY account_id, pair",
                )
                .unwrap();
            let n = st.column_count();
            let rows = st
                .query_map([], |r| {
                    Ok((0..n)
                        .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            rows
        };
        let stored = read(j);
        j.rebuild_figures().unwrap();
        (stored, read(j))
    }

    /// Trades read newest first (every page late): the figures are those of
    /// all the pair's trades in order, also when a write of trades on this
    /// connection was rolled back, and when another connection journaled
    /// trades of the pair in between.
    #[test]
    fn late_trades_apply_to_exactly_the_trades_the_journal_holds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.db");
        let mut j = Journal::open(&p).unwrap();
        j.conn
            .execute_batch(
                "INSERT INTO accounts (id, base_url, api_key, created_ms) VALUES (1, 'u', 'k', 1)",
            )
            .unwrap();
        assert_eq!(
            j.insert_trades(
                1,
                1,
                &[
                    trade("T5", 50, "sell", "12", "1"),
                    trade("T6", 60, "buy", "9", "2")
                ]
            )
            .unwrap(),
            2
        );
        // A page journaled, then rolled back: its trades are not the pair's.
        {
            let path = j.path.clone();
            let tx = j.conn.transaction().unwrap();
            insert_trades(
                &tx,
                &path,
                1,
                1,
                &[trade("T3", 30, "buy", "10", "3")],
                &mut j.memo,
            )
            .unwrap();
        }
        assert_eq!(
            j.insert_trades(1, 1, &[trade("T4", 40, "buy", "11", "1")])
                .unwrap(),
            1
        );
        let (stored, rebuilt) = figures_and_rebuilt(&mut j);
        assert_eq!(stored, rebuilt);
        assert!(
            stored[0].starts_with("Text(\"BTC-USDC\")|Integer(3)|"),
            "{stored:?}"
        );

        // Another process journals an earlier trade of the pair.
        let mut other = Journal::open(&p).unwrap();
        assert_eq!(
            other
                .insert_trades(1, 2, &[trade("T2", 20, "buy", "8", "1")])
                .unwrap(),
            1
        );
        drop(other);
        assert_eq!(
            j.insert_trades(1, 1, &[trade("T1", 10, "sell", "7", "0.5")])
                .unwrap(),
            1
        );
        let (stored, rebuilt) = figures_and_rebuilt(&mut j);
        assert_eq!(stored, rebuilt);
        assert!(
            stored[0].starts_with("Text(\"BTC-USDC\")|Integer(5)|"),
            "{stored:?}"
        );

        // Someone mends a trade's price by hand and rebuilds the figures
        // (as many trades as before): a late trade applies to the new price.
        let eth = |id: &str, ms, side, price| TradeRow {
            pair: Some("ETH-USDC".into()),
            ..trade(id, ms, side, price, "1")
        };
        assert_eq!(
            j.insert_trades(
                1,
                1,
                &[eth("E3", 30, "buy", "10"), eth("E4", 40, "sell", "12")]
            )
            .unwrap(),
            2
        );
        assert_eq!(
            j.insert_trades(1, 1, &[eth("E2", 20, "buy", "9")]).unwrap(),
            1
        );
        let mut other = Journal::open(&p).unwrap();
        other
            .conn
            .execute("UPDATE trades SET price = '11' WHERE trade_id = 'E3'", [])
            .unwrap();
        other.rebuild_figures().unwrap();
        drop(other);
        assert_eq!(
            j.insert_trades(1, 1, &[eth("E1", 10, "sell", "8")])
                .unwrap(),
            1
        );
        let (stored, rebuilt) = figures_and_rebuilt(&mut j);
        assert_eq!(stored, rebuilt);
    }

    #[test]
    fn cursors_only_move_forward() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.db")).unwrap();
        j.conn
            .execute_batch(
                "INSERT INTO accounts (id, base_url, api_key, created_ms) VALUES (1, 'u', 'k', 1);",
            )
            .unwrap();
        assert_eq!(j.cursor(1, "trades", "").unwrap(), None);
        j.advance_cursor(1, "trades", "", 100, 1, 1).unwrap();
        j.advance_cursor(1, "trades", "", 50, 2, 2).unwrap();
        assert_eq!(j.cursor(1, "trades", "").unwrap(), Some(100));
        assert_eq!(j.cursor(1, "orders", "").unwrap(), None);
    }
}
