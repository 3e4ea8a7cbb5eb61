//! `hqx plan FILE`: what `run` would do; place and write nothing. The
//! pre-trade limits are checked as `run` checks them, reading reference
//! prices from the exchange's ticker when a limit needs one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{load_batch, load_limits, pre_trade, queries_word, Failure};
use crate::connect::{Connection, Exchange};
use crate::executor::exit;
use crate::journal::{BatchRefusal, Journal, OrderRow};
use crate::order::OrderState;
use crate::output::json::{self, OrderRecord, Record};
use crate::output::{github, paint, state_style, style, Shell};

/// Options of `hqx plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The batch file.
    pub file: PathBuf,
    /// Exit 0 when there is nothing to do and 6 when `run` would place or
    /// resolve something (a conflict is still 2, an error 1).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// A limits file shared by many batches; with the batch's own
    /// `limits:`, the stricter rule wins.
    #[arg(long, env = "HQX_LIMITS", value_name = "FILE")]
    pub limits: Option<PathBuf>,
    /// Read the exchange (GETs only) to count the orders each `all_open`
    /// cancel would cancel now. Without it, plan reaches the exchange only
    /// for the reference prices that limits need.
    #[arg(long)]
    pub online: bool,
    /// How to reach the exchange: for the reference prices that limits
    /// need, and with --online.
    #[command(flatten)]
    pub conn: Connection,
}

/// List each order as to place, already placed, to resolve, or CONFLICT.
pub fn run(journal_path: &Path, args: &Args, sh: &mut Shell) -> Result<i32, Failure> {
    let file = &args.file;
    sh.group(&format!("hqx plan {}", file.display()));
    let b = load_batch(file)?;
    let lim = load_limits(&b, args.limits.as_deref())?;
    let (_, checked) = pre_trade(journal_path, &b, lim.as_ref(), |pairs| {
        // Without the exchange, each price is missing for that reason:
        // the orders that need one are refused along with every other breach.
        let mut ex = match Exchange::open(journal_path, &args.conn) {
            Ok(ex) => ex,
            Err(f) => {
                let why = format!("plan cannot reach the exchange: {}", f.message);
                let prices = pairs.into_iter().map(|p| (p, Err(why.clone()))).collect();
                return Ok((prices, Vec::new()));
            }
        };
        let client = ex.client(&args.conn)?;
        let got = ex.rt.block_on(crate::reference::fetch(&client, pairs));
        ex.shutdown();
        Ok(got)
    })?;
    let mut cancel_problems = Vec::new();
    let (rows, conflicts, journal) = if journal_path.exists() {
        let j = Journal::open(journal_path)?;
        let conflicts: HashMap<String, String> = match j.check(&b, None)? {
            Err(BatchRefusal::Conflicts(c)) => c
                .into_iter()
                .map(|c| (c.order_id, c.journal_body))
                .collect(),
            Err(BatchRefusal::Cancels(problems)) => {
                // Orders the journal lacks show on their cancel's own line
                // (CONFLICT) below; changed cancels are listed here.
                cancel_problems = problems
                    .into_iter()
                    .filter(|m| !m.contains("which this journal does not hold"))
                    .collect();
                HashMap::new()
            }
            _ => HashMap::new(),
        };
        // People see each order's state only; JSON records also carry the
        // exchange's id and the filled quantity, read from whole rows.
        let rows = if sh.is_json() {
            Known::Rows(j.orders(&b.id)?)
        } else {
            Known::States(j.order_states(&b.id)?)
        };
        (rows, conflicts, Some(j))
    } else {
        (Known::States(Vec::new()), HashMap::new(), None)
    };
    let by_id: HashMap<&str, KnownOrder<'_>> = match &rows {
        Known::Rows(rows) => rows
            .iter()
            .map(|r| {
                let known = KnownOrder {
                    state: r.state,
                    exchange_order_id: r.exchange_order_id.as_deref(),
                    filled_quantity: r.filled_quantity.as_deref(),
                };
                (r.order_id.as_str(), known)
            })
            .collect(),
        Known::States(states) => states
            .iter()
            .map(|(id, state)| {
                let known = KnownOrder {
                    state: *state,
                    exchange_order_id: None,
                    filled_quantity: None,
                };
                (id.as_str(), known)
            })
            .collect(),
    };
    let (mut place, mut done, mut other) = (0, 0, 0);
    let mut md = String::new();
    let mut labels: Vec<(&str, String)> = Vec::new();
    // One line per order: written out together, not a write(2) each.
    sh.hold();
    sh.say(&format!("batch `{}` ({}):", b.id, file.display()));
    if let Some(line) = checked {
        sh.say(&format!("  {line}"));
    }
    for spec in &b.orders {
        let row = by_id.get(spec.id.as_str());
        let (what, action, extra) = match (conflicts.get(&spec.id), row) {
            (Some(journal_body), _) => ("CONFLICT", "conflict", Extra::Journal(journal_body)),
            (None, None) => {
                place += 1;
                ("to place", "to_place", Extra::None)
            }
            (None, Some(r)) if r.state == OrderState::Pending => {
                place += 1;
                ("to place", "to_place", Extra::NotYetPlaced)
            }
            (None, Some(r)) if r.state.is_placed() || r.state == OrderState::Rejected => {
                done += 1;
                ("already", "already", Extra::State(r.state))
            }
            (None, Some(r)) => {
                other += 1;
                ("to resolve", "to_resolve", Extra::Resolve(r.state))
            }
        };
        let i = &spec.intent;
        let price = Price(i.price.as_ref());
        // Styled once per kind of line, not once per order.
        let label = match labels.iter().find(|(w, _)| *w == what) {
            Some((_, l)) => l,
            None => {
                labels.push((what, paint(state_style(what), format!("{what:<10}"))));
                &labels[labels.len() - 1].1
            }
        };
        sh.say_fmt(format_args!(
            "  {label} {:<16} {} {} {} {}{price}{extra}",
            spec.id, i.side, i.quantity, i.pair, i.kind,
        ));
        let state = row.map(|r| r.state.as_str());
        // A record per order is built only for JSON output: it is a map
        // of seven fields, and a human summary throws it away.
        if sh.is_json() {
            sh.record(json::order(&OrderRecord {
                batch_id: &b.id,
                order_id: &spec.id,
                action,
                state,
                exchange_order_id: row.and_then(|r| r.exchange_order_id),
                filled_quantity: row.and_then(|r| r.filled_quantity),
                detail: conflicts.get(&spec.id).map(String::as_str),
            }));
        }
        if action != "already" && md.len() < github::SUMMARY_LIMIT / 4 {
            let _ = writeln!(
                md,
                "| {what} | `{}` | {} {} {} {}{price} |",
                spec.id, i.side, i.quantity, i.pair, i.kind
            );
        }
    }
    for q in &b.queries {
        sh.record(
            Record::new("query")
                .field("batch_id", &b.id)
                .field("query_id", &q.id)
                .field("action", "to_run"),
        );
    }
    // Counting open orders below may wait on the exchange.
    sh.release();
    let (cancels_line, cancel_conflicts, cancels_to_send) = if b.cancels.is_empty() {
        (String::new(), 0, 0)
    } else {
        let open_counts = if args.online {
            Some(count_open(journal_path, args, &b)?)
        } else {
            None
        };
        let planned = crate::cancels::plan(&b, journal.as_ref(), open_counts.as_ref())?;
        report_cancels(sh, &b, &planned, &cancel_problems)
    };
    let conflict_count = conflicts.len() + cancel_problems.len() + cancel_conflicts;
    let line = format!(
        "{place} to place, {done} already placed or rejected, {other} to resolve, {conflict_count} conflict(s); {} {} to run{cancels_line}",
        b.queries.len(),
        queries_word(b.queries.len())
    );
    sh.say(&paint(style::HEADER, &line));
    let code = if conflict_count > 0 {
        exit::USAGE
    } else if args.detailed_exitcode && place + other + cancels_to_send > 0 {
        exit::CHANGES
    } else {
        exit::OK
    };
    if !conflicts.is_empty() {
        sh.status(&format!(
            "{} order(s) changed under an id already journaled: `hqx run` would refuse the batch. Restore the original text, or give the changed order a new id.",
            conflicts.len()
        ));
    }
    {
        let table = if md.is_empty() {
            String::new()
        } else {
            format!("| | order | what |\n|---|---|---|\n{md}\n")
        };
        let warn = github::step_summary(&format!("## hqx plan `{}`\n\n{line}\n\n{table}", b.id));
        let warn2 = github::outputs(&[
            ("to_place", place.to_string()),
            ("to_resolve", other.to_string()),
            ("conflicts", conflict_count.to_string()),
            ("exit_code", code.to_string()),
        ]);
        for w in [warn, warn2].into_iter().flatten() {
            sh.warn(&w);
        }
    }
    sh.summary(
        Record::new("summary")
            .field("batch_id", &b.id)
            .field("to_place", place)
            .field("already", done)
            .field("to_resolve", other)
            .field("conflicts", conflict_count)
            .field("cancels_to_send", cancels_to_send)
            .field("queries", b.queries.len()),
        code,
    );
    Ok(code)
}

/// Show each cancel as `run` would treat it; returns the text for the
/// summary line, the number of conflicts and of cancels to send.
fn report_cancels(
    sh: &mut Shell,
    b: &crate::batch::Batch,
    planned: &[crate::cancels::PlannedCancel],
    problems: &[String],
) -> (String, usize, usize) {
    sh.say("cancels (run before any placement):");
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for p in planned {
        *counts.entry(p.what).or_default() += 1;
        sh.say(&format!(
            "  {} {:<16} {}{}",
            paint(state_style(p.what), format!("{:<12}", p.what)),
            p.id,
            p.target,
            p.note
        ));
        sh.record(
            Record::new("cancel")
                .field("batch_id", &b.id)
                .field("cancel_id", &p.id)
                .field("action", p.what.replace(' ', "_"))
                .field("target", &p.target)
                .field("detail", p.note.trim()),
        );
    }
    for m in problems {
        sh.say(&format!(
            "  {} {m}",
            paint(state_style("CONFLICT"), "CONFLICT    ")
        ));
    }
    let text = counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let n = |k: &str| counts.get(k).copied().unwrap_or(0);
    (
        format!("; {} cancel(s): {text}", planned.len()),
        n("CONFLICT"),
        n("to send"),
    )
}

/// For `--online`: the number of orders open now on each pair an
/// `all_open` cancel names, read with GETs (paged, as `run` reads them);
/// nothing is written to the journal.
fn count_open(
    journal_path: &Path,
    args: &Args,
    b: &crate::batch::Batch,
) -> Result<HashMap<String, Result<usize, String>>, Failure> {
    use crate::account::{Account, ReadOptions, Stop};
    use crate::journal::JournalWriter;
    let mut ex = crate::connect::Exchange::open(journal_path, &args.conn)?;
    let client = ex.client(&args.conn)?;
    // The reads' http_log rows go to a journal in memory, thrown away.
    let (writer, thread) = JournalWriter::spawn(Journal::open(Path::new(":memory:"))?);
    let acct = Account::new(
        client,
        writer.clone(),
        0,
        0,
        None,
        ReadOptions::default(),
        std::sync::Arc::new(Stop::default()),
    );
    let pairs: std::collections::BTreeSet<String> = b
        .cancels
        .iter()
        .filter_map(|c| match &c.target {
            crate::batch::CancelTarget::AllOpen { pair } => Some(pair.as_str().to_string()),
            _ => None,
        })
        .collect();
    let out = ex.rt.block_on(async {
        let mut out = HashMap::new();
        for p in pairs {
            let n = acct
                .list_orders(Some(&p), "open", None, None)
                .await
                .map(|l| l.len());
            out.insert(p, n);
        }
        out
    });
    ex.shutdown();
    drop(acct);
    drop(writer);
    let _ = thread.join();
    Ok(out)
}

/// What the journal holds of a batch's orders: whole rows (for JSON
/// records), or ids and states (all a person is shown).
enum Known {
    Rows(Vec<OrderRow>),
    States(Vec<(String, OrderState)>),
}

/// One journaled order, as the plan shows it.
struct KnownOrder<'r> {
    state: OrderState,
    exchange_order_id: Option<&'r str>,
    filled_quantity: Option<&'r str>,
}

/// What a plan line adds after the order.
enum Extra<'a> {
    None,
    Journal(&'a str),
    NotYetPlaced,
    State(OrderState),
    Resolve(OrderState),
}

impl std::fmt::Display for Extra<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Extra::None => Ok(()),
            Extra::Journal(body) => write!(f, " (journal has {body})"),
            Extra::NotYetPlaced => f.write_str(" (journaled, not yet placed)"),
            Extra::State(s) => write!(f, " ({s})"),
            Extra::Resolve(s) => write!(f, " ({s}: will be looked up on the exchange first)"),
        }
    }
}

/// ` @ price`, or nothing for a market order.
struct Price<'a>(Option<&'a crate::model::Amount>);

impl std::fmt::Display for Price<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(p) => write!(f, " @ {p}"),
            None => Ok(()),
        }
    }
}
