//! `hqx sql QUERY`: the journal as an analyst's database.
//!
//! Runs one SQL statement on a read-only connection to the journal and
//! prints the rows as a table, CSV, JSON, JSON lines or Markdown (the
//! vocabulary of sqlite-utils' `query`). The exact decimal functions of
//! [`crate::sql_functions`] are registered, so fees and quantities, which
//! the journal keeps as TEXT, can be summed without passing through floats.
//!
//! The journal belongs to hqx: nothing typed here may change it. Four
//! fences, each enough on its own for what it covers:
//! 1. the file is opened `SQLITE_OPEN_READ_ONLY` (not `immutable`: other
//!    hqx processes may be writing, and a WAL reader sees their commits);
//! 2. an authorizer allows only reads (SELECT, reading tables, functions,
//!    recursive CTEs, and pragmas that only report); anything else, ATTACH
//!    and DETACH included, fails the statement while it is prepared;
//! 3. a statement SQLite itself does not call read-only
//!    (`sqlite3_stmt_readonly`) is refused before it runs, and at most zero
//!    databases may be attached (`SQLITE_LIMIT_ATTACHED`);
//! 4. `PRAGMA query_only` is on.
//!
//! This module opens its own connection instead of going through
//! [`crate::journal::Journal`], which creates, migrates and writes. The
//! only SQL of hqx's own here is `PRAGMA query_only = 1`, set through
//! rusqlite's pragma call; every other statement is the user's.

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::ValueEnum;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Batch, Connection, ErrorCode, OpenFlags, Statement};

use super::Failure;
use crate::executor::exit;
use crate::output::json::Record;
use crate::output::Shell;

/// Options of `hqx sql`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["query", "file"])))]
pub struct Args {
    /// One SQL statement: SELECT, WITH, VALUES, EXPLAIN, or a PRAGMA that only reports.
    #[arg(allow_hyphen_values = true)]
    pub query: Option<String>,
    /// Read the statement from FILE instead (`-` reads standard input).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Bind VALUE, as TEXT, to :NAME, @NAME and $NAME in the statement (repeatable).
    #[arg(
        short = 'p',
        long = "param",
        num_args = 2,
        value_names = ["NAME", "VALUE"],
        allow_hyphen_values = true,
        action = clap::ArgAction::Append
    )]
    pub params: Vec<String>,
}

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people; NULL shows as nothing.
    Table,
    /// RFC 4180: a header row, CRLF line ends, quotes where needed; NULL is an empty field.
    Csv,
    /// One JSON array of objects, one object per column name.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// A GitHub Markdown table.
    Markdown,
}

/// Run the statement and print its rows; returns the exit code.
pub fn run(journal_path: &Path, args: &Args, sh: &mut Shell) -> Result<i32, Failure> {
    let sql = read_query(args)?;
    let params = parse_params(&args.params)?;
    if !journal_path.exists() {
        return Err(Failure::usage(format!(
            "no journal at {}: `hqx run BATCH.yaml` creates one there, or point --journal (or HQX_JOURNAL) at an existing journal",
            journal_path.display()
        )));
    }
    if journal_path.is_dir() {
        return Err(Failure::usage(format!(
            "{} is a directory, not a journal; point --journal at the journal file",
            journal_path.display()
        )));
    }
    let denied: Arc<Mutex<Option<String>>> = Arc::default();
    let conn = open_read_only(journal_path, denied.clone())?;
    // Read the header before the query: `SELECT 1` alone would run on any
    // file at all.
    conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map_err(|e| sql_failure(e, "PRAGMA user_version", &denied, journal_path))?;
    let failure = |e: rusqlite::Error| {
        let mut f = sql_failure(e, &sql, &denied, journal_path);
        f.message.push_str(&older_schema_hint(&conn, &f.message));
        f
    };

    let mut batch = Batch::new(&conn, &sql);
    let mut stmt = match batch.next() {
        Ok(Some(s)) => s,
        Ok(None) => return Err(Failure::usage("the query holds no SQL statement")),
        Err(e) => return Err(failure(e)),
    };
    // One statement per call: its rows are the output, and nothing can
    // hide behind a `;`. Preparing the next one runs nothing.
    match batch.next() {
        Ok(None) => {}
        Ok(Some(_)) | Err(_) => {
            let why = take_denial(&denied)
                .map(|d| format!(" (and the next one would be refused: {d})"))
                .unwrap_or_default();
            return Err(Failure::usage(format!(
                "the query holds more than one statement{why}; hqx sql runs exactly one (a trailing `;` is fine): run them one at a time"
            )));
        }
    }
    if !stmt.readonly() {
        return Err(refusal(&format!(
            "`{}` (SQLite says it writes)",
            first_words(&sql)
        )));
    }
    bind(&mut stmt, &params)?;
    let (names, rows) = fetch(&mut stmt).map_err(failure)?;
    if sh.is_json() {
        // Under --output json the rows are `row` records like every other
        // command's (values as in --format json); --format is for people.
        let keys = json_keys(&names);
        for r in &rows {
            let values: serde_json::Value = serde_json::from_str(&json_object(&keys, r))
                .map_err(|e| Failure::failed(format!("cannot encode a row: {e}")))?;
            sh.record(Record::new("row").field("values", values));
        }
        sh.summary(
            Record::new("summary")
                .field("rows", rows.len())
                .field("columns", keys),
            exit::OK,
        );
        return Ok(exit::OK);
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match render(args.format, &names, &rows, &mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(exit::OK),
        // The reader left (`| head`): what it wanted, it got.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(exit::OK),
        Err(e) => Err(Failure::failed(format!("cannot write the output: {e}"))),
    }
}

fn read_query(args: &Args) -> Result<String, Failure> {
    match (&args.query, &args.file) {
        (Some(q), None) => Ok(q.clone()),
        (None, Some(f)) if f.as_os_str() == "-" => {
            let mut s = String::new();
            io::stdin().read_to_string(&mut s).map_err(|e| {
                Failure::usage(format!("cannot read the query from standard input: {e}"))
            })?;
            Ok(s)
        }
        (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| {
            Failure::usage(format!("cannot read the query from {}: {e}", f.display()))
        }),
        // clap's group makes it exactly one.
        _ => Err(Failure::usage("give the query, or --file FILE, not both")),
    }
}

/// `-p NAME VALUE` pairs; NAME may carry its `:`, `@` or `$`.
fn parse_params(flat: &[String]) -> Result<Vec<(String, String)>, Failure> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in flat.chunks(2) {
        let [name, value] = pair else {
            return Err(Failure::usage("-p takes a NAME and a VALUE"));
        };
        let bare = name.strip_prefix([':', '@', '$']).unwrap_or(name);
        if bare.is_empty() {
            return Err(Failure::usage("-p: the parameter name is empty"));
        }
        if out.iter().any(|(n, _)| n == bare) {
            return Err(Failure::usage(format!(
                "-p {bare} is given twice; a parameter has one value"
            )));
        }
        out.push((bare.to_string(), value.clone()));
    }
    Ok(out)
}

/// The read-only connection, its decimal functions and its fences (see
/// the module documentation). `denied` receives what the authorizer refused.
fn open_read_only(path: &Path, denied: Arc<Mutex<Option<String>>>) -> Result<Connection, Failure> {
    let setup = |e: rusqlite::Error| {
        Failure::failed(format!(
            "cannot open the journal {} read-only: {e}",
            path.display()
        ))
    };
    // No SQLITE_OPEN_CREATE: a missing file stays missing. No
    // SQLITE_OPEN_URI: `file:…?mode=rw` is a file name, not an override.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(setup)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
    conn.pragma_update(None, "query_only", true)
        .map_err(setup)?;
    crate::sql_functions::register(&conn).map_err(setup)?;
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        match refused(&ctx.action) {
            None => Authorization::Allow,
            Some(what) => {
                let mut d = denied.lock().unwrap_or_else(|p| p.into_inner());
                d.get_or_insert(what);
                Authorization::Deny
            }
        }
    }));
    Ok(conn)
}

/// Pragmas that only report, with no argument (`PRAGMA user_version`).
const REPORTING_PRAGMAS: &[&str] = &[
    "application_id",
    "collation_list",
    "compile_options",
    "data_version",
    "database_list",
    "encoding",
    "foreign_key_check",
    "foreign_key_list",
    "foreign_keys",
    "freelist_count",
    "function_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "journal_mode",
    "module_list",
    "page_count",
    "page_size",
    "pragma_list",
    "query_only",
    "quick_check",
    "schema_version",
    "table_info",
    "table_list",
    "table_xinfo",
    "user_version",
];

/// Pragmas whose argument names what to report on (`PRAGMA
/// table_info(orders)`, `pragma_table_info('orders')`), not a new setting.
const PRAGMAS_WITH_A_SUBJECT: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// What the authorizer refuses, described for the user; `None` allows.
fn refused(action: &AuthAction<'_>) -> Option<String> {
    use AuthAction as A;
    Some(match *action {
        A::Select | A::Read { .. } | A::Function { .. } | A::Recursive => return None,
        A::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            let allowed = match pragma_value {
                None => REPORTING_PRAGMAS.contains(&name.as_str()),
                Some(_) => PRAGMAS_WITH_A_SUBJECT.contains(&name.as_str()),
            };
            if allowed {
                return None;
            }
            match pragma_value {
                Some(v) => format!("PRAGMA {pragma_name} = {v}"),
                None => format!("PRAGMA {pragma_name}"),
            }
        }
        A::Insert { table_name } => format!("INSERT into {table_name}"),
        A::Update {
            table_name,
            column_name,
        } => format!("UPDATE of {table_name}.{column_name}"),
        A::Delete { table_name } => format!("DELETE from {table_name}"),
        A::Attach { filename } => format!("ATTACH of '{filename}'"),
        A::Detach { database_name } => format!("DETACH of {database_name}"),
        A::CreateTable { table_name } | A::CreateTempTable { table_name } => {
            format!("CREATE TABLE {table_name}")
        }
        A::DropTable { table_name } | A::DropTempTable { table_name } => {
            format!("DROP TABLE {table_name}")
        }
        A::CreateView { view_name } | A::CreateTempView { view_name } => {
            format!("CREATE VIEW {view_name}")
        }
        A::DropView { view_name } | A::DropTempView { view_name } => {
            format!("DROP VIEW {view_name}")
        }
        A::AlterTable { table_name, .. } => format!("ALTER TABLE {table_name}"),
        A::CreateIndex { index_name, .. } | A::CreateTempIndex { index_name, .. } => {
            format!("CREATE INDEX {index_name}")
        }
        A::DropIndex { index_name, .. } | A::DropTempIndex { index_name, .. } => {
            format!("DROP INDEX {index_name}")
        }
        A::CreateTrigger { trigger_name, .. } | A::CreateTempTrigger { trigger_name, .. } => {
            format!("CREATE TRIGGER {trigger_name}")
        }
        A::DropTrigger { trigger_name, .. } | A::DropTempTrigger { trigger_name, .. } => {
            format!("DROP TRIGGER {trigger_name}")
        }
        A::CreateVtable { table_name, .. } => format!("CREATE VIRTUAL TABLE {table_name}"),
        A::DropVtable { table_name, .. } => format!("DROP VIRTUAL TABLE {table_name}"),
        A::Reindex { index_name } => format!("REINDEX of {index_name}"),
        A::Analyze { table_name } => format!("ANALYZE of {table_name}"),
        A::Transaction { operation } => format!("transaction control ({operation:?})"),
        A::Savepoint { operation, .. } => format!("savepoint ({operation:?})"),
        ref other => format!("{other:?}"),
    })
}

fn take_denial(denied: &Mutex<Option<String>>) -> Option<String> {
    denied.lock().unwrap_or_else(|p| p.into_inner()).take()
}

fn refusal(what: &str) -> Failure {
    Failure::usage(format!(
        "refused: {what}: hqx sql opens the journal read-only and runs only statements that read; nothing was changed. The journal is hqx's own record: change it through hqx (run, resolve), or experiment with sqlite3 on a copy"
    ))
}

/// The statement's first words, to name it in a refusal (after any
/// leading `--` comment lines).
fn first_words(sql: &str) -> String {
    let mut sql = sql.trim_start();
    while let Some(rest) = sql.strip_prefix("--") {
        sql = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
    }
    let words: Vec<&str> = sql.split_whitespace().take(4).collect();
    let mut s = words.join(" ");
    if sql.split_whitespace().count() > 4 {
        s.push_str(" …");
    }
    s
}

/// Bind each named parameter of `stmt` to its `-p` value, as TEXT.
fn bind(stmt: &mut Statement<'_>, params: &[(String, String)]) -> Result<(), Failure> {
    let mut used = vec![false; params.len()];
    let mut names = Vec::new();
    for i in 1..=stmt.parameter_count() {
        let Some(full) = stmt.parameter_name(i).map(str::to_string) else {
            return Err(Failure::usage(
                "the query has a positional parameter (`?`); name it (:name) and pass -p name VALUE",
            ));
        };
        let Some(bare) = full.strip_prefix([':', '@', '$']) else {
            return Err(Failure::usage(format!(
                "the query has a positional parameter ({full}); name it (:name) and pass -p name VALUE"
            )));
        };
        let Some(k) = params.iter().position(|(n, _)| n == bare) else {
            return Err(Failure::usage(format!(
                "the query uses {full} but no value was given: add -p {bare} VALUE"
            )));
        };
        used[k] = true;
        names.push(full.clone());
        stmt.raw_bind_parameter(i, params[k].1.as_str())
            .map_err(|e| Failure::usage(format!("cannot bind {full}: {e}")))?;
    }
    if let Some(k) = used.iter().position(|u| !u) {
        let has = if names.is_empty() {
            "no parameters".to_string()
        } else {
            format!("only {}", names.join(", "))
        };
        return Err(Failure::usage(format!(
            "-p {}: the query has no parameter :{0} (it has {has})",
            params[k].0
        )));
    }
    Ok(())
}

/// A value as SQLite returned it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

type Rows = Vec<Vec<Value>>;

/// Run the statement to the end. Rows are printed only once all of them
/// were read: a query that fails half-way prints nothing to stdout.
fn fetch(stmt: &mut Statement<'_>) -> rusqlite::Result<(Vec<String>, Rows)> {
    let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let n = names.len();
    let mut out = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Integer(v),
                ValueRef::Real(v) => Value::Real(v),
                ValueRef::Text(t) => Value::Text(
                    String::from_utf8(t.to_vec())
                        .map_err(|e| rusqlite::Error::Utf8Error(e.utf8_error()))?,
                ),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(values);
    }
    Ok((names, out))
}

/// When a table or column is missing and the journal was written by an
/// older schema (hqx sql never upgrades it: it only reads), say how to
/// upgrade; otherwise nothing.
fn older_schema_hint(conn: &Connection, message: &str) -> String {
    if !message.contains("no such table") && !message.contains("no such column") {
        return String::new();
    }
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap_or(0);
    let known = crate::journal::Journal::schema_version();
    if found >= known {
        return String::new();
    }
    if found == 0 {
        return "\nthis file has no hqx schema: it is not an hqx journal; check --journal".into();
    }
    format!(
        "\nthis journal has schema {found} and this hqx writes {known} (the views, such as `positions`, came with schema 4): `hqx journal check` upgrades it, keeping a copy of the old file beside it"
    )
}

/// A failed statement as the user's error: refusals name what was
/// refused; SQLite's message otherwise, with where in the query it points.
fn sql_failure(
    e: rusqlite::Error,
    sql: &str,
    denied: &Mutex<Option<String>>,
    journal: &Path,
) -> Failure {
    if let Some(what) = take_denial(denied) {
        return refusal(&format!("`{}` ({what})", first_words(sql)));
    }
    match e {
        rusqlite::Error::SqlInputError { msg, offset, .. } => {
            Failure::usage(format!("{msg}{}", point_at(sql, offset)))
        }
        rusqlite::Error::SqliteFailure(err, msg) => {
            let msg = msg.unwrap_or_else(|| err.to_string());
            match err.code {
                ErrorCode::NotADatabase => Failure::usage(format!(
                    "{} is not a SQLite journal ({msg}); check --journal",
                    journal.display()
                )),
                // The journal could not be read: not the query's fault.
                ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::CannotOpen => {
                    Failure::failed(format!("reading the journal {}: {msg}", journal.display()))
                }
                _ => Failure::usage(msg),
            }
        }
        rusqlite::Error::Utf8Error(_) => Failure::usage(
            "a TEXT value is not valid UTF-8; select hex(column) or CAST(column AS BLOB) instead",
        ),
        other => Failure::usage(other.to_string()),
    }
}

/// ` (line L, column C)` and the line with a caret under the offset.
fn point_at(sql: &str, offset: i32) -> String {
    let Ok(offset) = usize::try_from(offset) else {
        return String::new();
    };
    if offset > sql.len() || !sql.is_char_boundary(offset) {
        return String::new();
    }
    let before = &sql[..offset];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = sql[offset..].find('\n').map_or(sql.len(), |i| offset + i);
    let line = sql[line_start..line_end].trim_end_matches('\r');
    let col = sql[line_start..offset].chars().count();
    format!(
        " (line {line_no}, column {})\n  {line}\n  {:>width$}",
        col + 1,
        "^",
        width = col + 1
    )
}

// ---- Rendering: one function per format, over the fetched rows. ----

fn render(
    format: Format,
    names: &[String],
    rows: &Rows,
    out: &mut impl io::Write,
) -> io::Result<()> {
    match format {
        Format::Table => table(names, rows, out),
        Format::Csv => csv(names, rows, out),
        Format::Json => json(names, rows, out),
        Format::Jsonl => jsonl(names, rows, out),
        Format::Markdown => markdown(names, rows, out),
    }
}

/// A REAL's text: the shortest that reads back as the same double, as in JSON.
fn real_text(v: f64) -> String {
    match serde_json::Number::from_f64(v) {
        Some(n) => n.to_string(),
        None if v > 0.0 => "Inf".into(),
        None => "-Inf".into(),
    }
}

/// A value as text for table, CSV and Markdown: NULL is empty, a BLOB
/// lowercase hex.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => real_text(*r),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => hex::encode(b),
    }
}

/// Control characters (newlines, tabs) escaped, so a row stays one line.
fn one_line(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            o.extend(c.escape_default());
        } else {
            o.push(c);
        }
    }
    o
}

fn table(names: &[String], rows: &Rows, out: &mut impl io::Write) -> io::Result<()> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|v| one_line(&plain(v))).collect())
        .collect();
    let heads: Vec<String> = names.iter().map(|n| one_line(n)).collect();
    let mut widths: Vec<usize> = heads.iter().map(|h| h.chars().count()).collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |items: Vec<(String, bool)>| {
        let mut s = String::new();
        for (i, ((text, right), w)) in items.into_iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            if right {
                let _ = write!(s, "{text:>w$}");
            } else {
                let _ = write!(s, "{text:<w$}");
            }
        }
        s.trim_end().to_string()
    };
    writeln!(
        out,
        "{}",
        line(heads.into_iter().map(|h| (h, false)).collect())
    )?;
    writeln!(
        out,
        "{}",
        line(widths.iter().map(|w| ("-".repeat(*w), false)).collect())
    )?;
    for (r, values) in cells.into_iter().zip(rows) {
        // Numbers right-aligned, so that their digits line up.
        let items = r
            .into_iter()
            .zip(values)
            .map(|(c, v)| (c, matches!(v, Value::Integer(_) | Value::Real(_))))
            .collect();
        writeln!(out, "{}", line(items))?;
    }
    Ok(())
}

/// RFC 4180: fields with a comma, quote, CR or LF are quoted, quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(names: &[String], rows: &Rows, out: &mut impl io::Write) -> io::Result<()> {
    let head: Vec<String> = names.iter().map(|n| csv_field(n)).collect();
    write!(out, "{}\r\n", head.join(","))?;
    for r in rows {
        let fields: Vec<String> = r.iter().map(|v| csv_field(&plain(v))).collect();
        write!(out, "{}\r\n", fields.join(","))?;
    }
    Ok(())
}

/// Column names made unique for JSON keys: a repeated `x` becomes `x_2`, `x_3`…
fn json_keys(names: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        let mut k = n.clone();
        let mut i = 2;
        while keys.contains(&k) || (k != *n && names.contains(&k)) {
            k = format!("{n}_{i}");
            i += 1;
        }
        keys.push(k);
    }
    keys
}

fn json_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => match serde_json::Number::from_f64(*r) {
            Some(n) => n.to_string(),
            None => serde_json::Value::String(real_text(*r)).to_string(),
        },
        Value::Text(s) => serde_json::Value::String(s.clone()).to_string(),
        Value::Blob(b) => serde_json::Value::String(hex::encode(b)).to_string(),
    }
}

fn json_object(keys: &[String], row: &[Value]) -> String {
    let fields: Vec<String> = keys
        .iter()
        .zip(row)
        .map(|(k, v)| format!("{}:{}", serde_json::Value::String(k.clone()), json_value(v)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn json(names: &[String], rows: &Rows, out: &mut impl io::Write) -> io::Result<()> {
    let keys = json_keys(names);
    let objects: Vec<String> = rows.iter().map(|r| json_object(&keys, r)).collect();
    writeln!(out, "[{}]", objects.join(",\n "))
}

fn jsonl(names: &[String], rows: &Rows, out: &mut impl io::Write) -> io::Result<()> {
    let keys = json_keys(names);
    for r in rows {
        writeln!(out, "{}", json_object(&keys, r))?;
    }
    Ok(())
}

fn markdown(names: &[String], rows: &Rows, out: &mut impl io::Write) -> io::Result<()> {
    let cell = |s: &str| one_line(s).replace('|', "\\|");
    let heads: Vec<String> = names.iter().map(|n| cell(n)).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|v| cell(&plain(v))).collect())
        .collect();
    let mut widths: Vec<usize> = heads.iter().map(|h| h.chars().count().max(3)).collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |items: &[String]| {
        let mut s = String::from("|");
        for (t, w) in items.iter().zip(&widths) {
            let _ = write!(s, " {t:<w$} |");
        }
        s
    };
    writeln!(out, "{}", line(&heads))?;
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    writeln!(out, "{}", line(&dashes))?;
    for r in &cells {
        writeln!(out, "{}", line(r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_rfc_4180_says() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn repeated_column_names_get_distinct_json_keys() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(json_keys(&n(&["a", "a", "b"])), n(&["a", "a_2", "b"]));
        assert_eq!(json_keys(&n(&["a", "a", "a_2"])), n(&["a", "a_3", "a_2"]));
    }

    #[test]
    fn errors_point_at_the_offset() {
        assert_eq!(
            point_at("SELECT 1\nFORM x", 9),
            " (line 2, column 1)\n  FORM x\n  ^"
        );
        assert_eq!(
            point_at("SELECT x", 7),
            " (line 1, column 8)\n  SELECT x\n         ^"
        );
    }

    /// The fences behind the authorizer hold on their own.
    #[test]
    fn without_the_authorizer_the_other_fences_still_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x)")
            .unwrap();
        let conn = open_read_only(&path, Arc::default()).unwrap();
        conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
        let q: i64 = conn
            .query_row("PRAGMA query_only", [], |r| r.get(0))
            .unwrap();
        assert_eq!(q, 1);
        // query_only: not even a temporary table.
        let e = conn.execute_batch("CREATE TEMP TABLE x (y)").unwrap_err();
        assert!(e.to_string().contains("readonly"), "{e}");
        // No database may be attached.
        let e = conn.execute_batch("ATTACH ':memory:' AS m").unwrap_err();
        assert!(e.to_string().contains("too many attached databases"), "{e}");
        // And with query_only off, the read-only open still refuses.
        conn.execute_batch("PRAGMA query_only = 0").unwrap();
        let e = conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert!(e.to_string().contains("readonly database"), "{e}");
        // SQLite's own judgement, used before running.
        assert!(!conn.prepare("DELETE FROM t").unwrap().readonly());
        assert!(conn.prepare("SELECT x FROM t").unwrap().readonly());
    }

    #[test]
    fn only_reporting_pragmas_pass() {
        let p = |name, value| {
            refused(&AuthAction::Pragma {
                pragma_name: name,
                pragma_value: value,
            })
        };
        assert_eq!(p("user_version", None), None);
        assert_eq!(p("table_info", Some("orders")), None);
        assert_eq!(
            p("user_version", Some("5")).as_deref(),
            Some("PRAGMA user_version = 5")
        );
        assert!(p("journal_mode", Some("delete")).is_some());
        assert!(p("query_only", Some("0")).is_some());
        assert!(p("wal_checkpoint", None).is_some());
    }
}
