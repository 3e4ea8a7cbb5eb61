//! `hqx reconcile`: bring the journal up to date with the exchange account
//! and report drift. Made for a CI schedule: exit 5 means "something does
//! not add up", `--output json` speaks JSON lines, and under GitHub Actions
//! a Markdown report is appended to the step summary.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::Failure;
use crate::account::{Account, ReadOptions, Stop};
use crate::client::now_ms;
use crate::connect::{lock_batch, Connection, Exchange};
use crate::executor::exit;
use crate::journal::{FindingRow, Journal, JournalWriter};
use crate::reconcile::{Reconcile, ReconcileOptions, ReconcileReport};

use crate::output::github::{self, SUMMARY_ROWS};
use crate::output::json::Record;
use crate::output::{paint, style, Shell};

/// Options of `hqx reconcile`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How to reach the exchange (the account is the key's).
    #[command(flatten)]
    pub conn: Connection,
    /// Count known findings not yet acknowledged as drift too (exit 5
    /// until each is acknowledged with `hqx ack`).
    #[arg(long)]
    pub strict: bool,
    /// How long (ms) after its last send an order not seen on the
    /// exchange counts as absent.
    #[arg(long, default_value_t = 30_000)]
    pub absent_grace_ms: u64,
}

/// Reconcile the account; returns the exit code.
pub fn run(
    journal_path: &Path,
    must_exist: bool,
    args: &Args,
    sh: &mut Shell,
) -> Result<i32, Failure> {
    super::journal::require(journal_path, must_exist)?;
    let mut ex = Exchange::open(journal_path, &args.conn)?;
    let (binding, api_key) = (ex.binding.clone(), ex.creds.api_key.clone());
    sh.group(&format!("hqx reconcile {binding}"));
    let mut journal = Journal::open(journal_path)?;
    let account_id = journal.account(&binding, &api_key, now_ms())?;

    // A batch that a `run` holds is left to that run: its orders are on
    // their way. Skipped with a note; the next reconcile takes it.
    let mut locks = Vec::new();
    let (mut batches, mut busy) = (Vec::new(), Vec::new());
    for b in journal.account_batches(account_id)? {
        match lock_batch(journal_path, &b) {
            Ok(l) => {
                locks.push(l);
                batches.push(b);
            }
            Err(f) if f.code == exit::BUSY => busy.push(b),
            Err(f) => return Err(f),
        }
    }
    let run_id = journal.begin_account_run(account_id, "reconcile", now_ms())?;
    let client = ex.client(&args.conn)?;
    let progress = sh.progress("reconcile", None, client.current_rate());
    client.observe(progress.observer());
    let (writer, thread) = JournalWriter::spawn(journal);
    let stop = Arc::new(Stop::default());
    let read = ReadOptions {
        absent_grace: Duration::from_millis(args.absent_grace_ms),
        ..ReadOptions::default()
    };
    let acct = Account::new(
        client,
        writer.clone(),
        account_id,
        run_id,
        None,
        read,
        stop.clone(),
    );
    let rec = Reconcile::new(
        acct,
        batches,
        busy,
        ReconcileOptions {
            strict: args.strict,
        },
    );
    let report = ex.rt.block_on(async {
        super::run::watch_ctrl_c(stop.clone(), progress.clone());
        rec.run().await
    });
    progress.finish();
    ex.shutdown();
    drop(rec);
    drop(writer);
    let mut journal = thread
        .join()
        .map_err(|_| Failure::failed("the journal thread panicked"))?;
    drop(locks);
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = journal.finish_run(run_id, exit::FAILED, &format!("error: {e}"), now_ms());
            return Err(e.into());
        }
    };
    let summary = summary_line(&report);
    sh.say(human(&binding, &report).trim_end());
    let mut records = json_records(&binding, &api_key, run_id, &report);
    let last = records.pop();
    for r in records {
        sh.record(r);
    }
    let warn = github::step_summary(&markdown(&binding, &report));
    let warn2 = github::outputs(&[
        ("drift", report.drift.to_string()),
        ("known", report.known.to_string()),
        ("unresolved", report.unresolved.len().to_string()),
        ("synced_trades", report.synced_trades.to_string()),
        ("exit_code", report.exit_code.to_string()),
    ]);
    for w in [warn, warn2].into_iter().flatten() {
        sh.warn(&w);
    }
    if let Some(last) = last {
        sh.summary(last, report.exit_code);
    }
    journal.finish_run(run_id, report.exit_code, &summary, now_ms())?;
    Ok(report.exit_code)
}

/// The one line kept in `runs.summary`.
fn summary_line(r: &ReconcileReport) -> String {
    format!(
        "drift {}, known {}, synced trades {}, changed orders {}, new external orders {}{}{}",
        r.drift,
        r.known,
        r.synced_trades,
        changed_orders(r),
        r.new_external_orders,
        if r.incomplete.is_empty() {
            String::new()
        } else {
            format!(", INCOMPLETE: {}", r.incomplete.len())
        },
        if r.unresolved.is_empty() {
            String::new()
        } else {
            format!(", unresolved {}", r.unresolved.len())
        }
    )
}

fn changed_orders(r: &ReconcileReport) -> usize {
    r.changes.iter().filter(|c| c.batch_id.is_some()).count()
}

fn label(f: &FindingRow) -> &'static str {
    match f.seen {
        crate::journal::Seen::New => "NEW",
        crate::journal::Seen::Reopened => "AGAIN",
        crate::journal::Seen::Known => "known",
        crate::journal::Seen::Acknowledged => "acked",
        crate::journal::Seen::Cleared => "cleared",
    }
}

fn painted_label(f: &FindingRow) -> String {
    let l = label(f);
    let st = if f.seen.is_drift() {
        style::WARN
    } else {
        style::DIM
    };
    paint(st, format!("{l:<7}"))
}

/// The report for people.
fn human(account: &str, r: &ReconcileReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "reconcile of {account}: {} batch(es){}",
        r.batches.len(),
        if r.busy_batches.is_empty() {
            String::new()
        } else {
            format!(
                ", {} skipped (a run holds them: {})",
                r.busy_batches.len(),
                r.busy_batches.join(", ")
            )
        }
    );
    if !r.changes.is_empty() || r.synced_trades > 0 {
        let _ = writeln!(o, "synced (routine, not drift):");
        for c in &r.changes {
            let who = match &c.batch_id {
                Some(b) => format!("{b}/{}", c.order_id),
                None => format!("external {}", c.order_id),
            };
            let _ = writeln!(o, "  {:<22} {:<34} {}", c.kind, who, c.detail);
        }
        if r.synced_trades > 0 {
            let _ = writeln!(
                o,
                "  {:<22} {} new trade(s) journaled",
                "trades", r.synced_trades
            );
        }
    }
    if !r.findings.is_empty() || !r.cleared.is_empty() {
        let _ = writeln!(o, "findings:");
        for f in &r.findings {
            let _ = writeln!(
                o,
                "  {} #{:<4} {:<20} {:<28} {}{}",
                painted_label(f),
                f.id,
                f.kind,
                f.subject,
                f.detail,
                f.ack_note
                    .as_deref()
                    .map(|n| format!(" [ack: {n}]"))
                    .unwrap_or_default()
            );
        }
        for f in &r.cleared {
            let _ = writeln!(o, "  cleared #{:<4} {:<20} {}", f.id, f.kind, f.subject);
        }
    }
    for (b, ord) in &r.unresolved {
        let _ = writeln!(
            o,
            "unresolved: {b}/{ord}: its outcome could not be proven; run reconcile again when the exchange answers, or settle it with `hqx resolve {b} {ord} --as placed|absent`"
        );
    }
    for i in &r.incomplete {
        let _ = writeln!(o, "NOT READ COMPLETELY: {i}");
    }
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    let _ = writeln!(o, "{}; exit {}", summary_line(r), r.exit_code);
    if r.drift > 0 {
        let _ = writeln!(
            o,
            "drift: look into each NEW finding; when it is understood, `hqx ack ID --note \"why\"` keeps it from alerting again"
        );
    }
    o
}

/// The records: one per change, finding and problem, then the summary
/// (the version record is the shell's).
fn json_records(account: &str, api_key: &str, run_id: i64, r: &ReconcileReport) -> Vec<Record> {
    let mut lines = Vec::new();
    for c in &r.changes {
        lines.push(json!({
            "type": "change",
            "kind": c.kind,
            "batch_id": c.batch_id,
            "order_id": c.order_id,
            "detail": c.detail,
        }));
    }
    for f in r.findings.iter().chain(&r.cleared) {
        lines.push(json!({
            "type": "finding",
            "id": f.id,
            "kind": f.kind,
            "subject": f.subject,
            "status": f.seen.as_str(),
            "drift": f.seen.is_drift(),
            "detail": f.detail,
            "first_seen_ms": f.first_seen_ms,
            "times_seen": f.times_seen,
            "ack_note": f.ack_note,
        }));
    }
    for (b, o) in &r.unresolved {
        lines.push(json!({"type": "unresolved", "batch_id": b, "order_id": o}));
    }
    for i in &r.incomplete {
        lines.push(json!({"type": "incomplete", "what": i}));
    }
    for n in &r.notes {
        lines.push(json!({"type": "note", "message": n}));
    }
    lines.push(json!({
        "type": "summary",
        "run_id": run_id,
        "account": account,
        "api_key": api_key,
        "batches": r.batches.len(),
        "busy_batches": r.busy_batches,
        "drift": r.drift,
        "known": r.known,
        "cleared": r.cleared.len(),
        "synced_trades": r.synced_trades,
        "trade_requests": r.trade_requests,
        "changed_orders": changed_orders(r),
        "external_orders": r.new_external_orders,
        "unresolved": r.unresolved.len(),
        "incomplete": r.incomplete.len(),
        "snapshot_id": r.snapshot_id,
    }));
    lines.into_iter().map(Record::from_json).collect()
}

/// Markdown for `$GITHUB_STEP_SUMMARY`: at most a few hundred rows.
fn markdown(account: &str, r: &ReconcileReport) -> String {
    let mut o = String::new();
    let verdict = match r.exit_code {
        exit::OK => "in sync",
        exit::DRIFT => "DRIFT",
        exit::UNRESOLVED => "unresolved orders",
        exit::INTERRUPTED => "interrupted",
        _ => "incomplete",
    };
    let _ = writeln!(o, "## hqx reconcile: {verdict}\n");
    let _ = writeln!(o, "Account `{account}`: {}\n", summary_line(r));
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    if !r.findings.is_empty() {
        let _ = writeln!(
            o,
            "| | id | kind | subject | detail |\n|---|---|---|---|---|"
        );
        for f in r.findings.iter().take(SUMMARY_ROWS) {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                label(f),
                f.id,
                f.kind,
                cell(&f.subject),
                cell(&f.detail)
            );
        }
        if r.findings.len() > SUMMARY_ROWS {
            let _ = writeln!(
                o,
                "\n…and {} more findings.",
                r.findings.len() - SUMMARY_ROWS
            );
        }
        o.push('\n');
    }
    if !r.changes.is_empty() {
        let _ = writeln!(
            o,
            "<details><summary>{} routine change(s)</summary>\n",
            r.changes.len()
        );
        let _ = writeln!(o, "| kind | order | detail |\n|---|---|---|");
        for c in r.changes.iter().take(SUMMARY_ROWS) {
            let who = match &c.batch_id {
                Some(b) => format!("{b}/{}", c.order_id),
                None => c.order_id.clone(),
            };
            let _ = writeln!(o, "| {} | {} | {} |", c.kind, cell(&who), cell(&c.detail));
        }
        if r.changes.len() > SUMMARY_ROWS {
            let _ = writeln!(o, "\n…and {} more.", r.changes.len() - SUMMARY_ROWS);
        }
        let _ = writeln!(o, "\n</details>\n");
    }
    for i in &r.incomplete {
        let _ = writeln!(o, "- **not read completely**: {}", cell(i));
    }
    o
}
