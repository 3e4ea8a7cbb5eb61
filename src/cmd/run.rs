//! `hqx run FILE`: validate, journal, place, resolve, query; print a summary.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::{load_batch, load_limits, pre_trade, Failure};
use crate::account::{Account, ReadOptions, Stop};
use crate::batch::Batch;
use crate::client::now_ms;
use crate::connect::{lock_batch, Connection, Exchange};
use crate::executor::{exit, Executor, RunOptions, RunReport};
use crate::journal::{BatchRefusal, Journal, JournalWriter, Write};
use crate::order::OrderState;
use crate::output::json::{self, OrderRecord, Record};
use crate::output::{github, paint, state_style, style, Diagnostic, Progress, Shell};

/// Options of `hqx run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The batch file.
    pub file: PathBuf,
    /// How to reach the exchange.
    #[command(flatten)]
    pub conn: Connection,
    /// Don't ask for confirmation before placing orders on a real exchange.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How long (ms) after its last send an order not seen on the
    /// exchange counts as absent, so that it may be sent again.
    #[arg(long, default_value_t = 30_000)]
    pub absent_grace_ms: u64,
    /// A limits file shared by many batches; with the batch's own
    /// `limits:`, the stricter rule wins.
    #[arg(long, env = "HQX_LIMITS", value_name = "FILE")]
    pub limits: Option<PathBuf>,
}

/// The message for a batch the journal refuses.
pub(crate) fn refusal_message(b: &Batch, binding: &str, api_key: &str, r: &BatchRefusal) -> String {
    match r {
        BatchRefusal::Bound(row) => format!(
            "batch `{}` is journaled against {} with key {}, not {} with key {}; an order batch runs against one exchange account. Use another journal (--journal) or another batch id.",
            b.id, row.base_url, row.api_key, binding, api_key
        ),
        BatchRefusal::Conflicts(conflicts) => {
            let mut m = String::new();
            for c in conflicts {
                m.push_str(&format!(
                    "{}: order `{}` was journaled as {} but the file now says {}\n",
                    b.path.display(),
                    c.order_id,
                    c.journal_body,
                    c.file_body
                ));
            }
            m.push_str(&format!(
                "{} order(s) changed under an id already journaled; nothing was sent. An order id names one order forever: restore the original text, or give the changed order a new id.",
                conflicts.len()
            ));
            m
        }
        BatchRefusal::Cancels(problems) => {
            let mut m = problems.join("\n");
            m.push_str(&format!(
                "\n{} cancel(s) cannot run against this journal; nothing was sent.",
                problems.len()
            ));
            m
        }
    }
}

/// The refusal as a failure; a conflict points at each changed order's line.
fn refusal(b: &Batch, binding: &str, api_key: &str, r: &BatchRefusal) -> Failure {
    let f = Failure::usage(refusal_message(b, binding, api_key, r));
    let BatchRefusal::Conflicts(conflicts) = r else {
        return f;
    };
    let diags = conflicts
        .iter()
        .filter_map(|c| {
            let (i, spec) = b.orders.iter().enumerate().find(|(_, o)| o.id == c.order_id)?;
            Some(Diagnostic {
                path: b.path.clone(),
                line: spec.line,
                column: 1,
                field: format!("orders[{i}] ({})", spec.id),
                message: format!(
                    "changed under an id already journaled: the journal has {}, the file now says {}; restore the original text, or give the changed order a new id",
                    c.journal_body, c.file_body
                ),
            })
        })
        .collect();
    let last = f.message.lines().last().unwrap_or_default().to_string();
    Failure::usage(last).with_diagnostics(diags)
}

/// Run the batch; returns the exit code.
pub fn run(
    journal_path: &Path,
    must_exist: bool,
    args: &Args,
    sh: &mut Shell,
) -> Result<i32, Failure> {
    // Everything that can be refused is checked before anything is
    // written or sent.
    sh.group(&format!("hqx run {}", args.file.display()));
    let b = Arc::new(load_batch(&args.file)?);
    let limits = load_limits(&b, args.limits.as_deref())?;
    super::journal::require(journal_path, must_exist)?;
    let _lock = lock_batch(journal_path, &b.id)?;
    // The batches whose orders the cancels name are changed by this run
    // too (a never-sent order is journaled as cancelled): lock them.
    let _cancel_locks = crate::cancels::batches_touched(&b)
        .iter()
        .skip(1)
        .map(|id| lock_batch(journal_path, id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ex = Exchange::open(journal_path, &args.conn)?;
    let (binding, api_key) = (ex.binding.clone(), ex.creds.api_key.clone());
    let client = ex.client(&args.conn)?;
    let (ticker_log, _) = pre_trade(journal_path, &b, limits.as_ref(), |pairs| {
        Ok(ex.rt.block_on(crate::reference::fetch(&client, pairs)))
    })?;

    // A refusal at the prompt leaves no journal behind: with no journal
    // yet, every order is to place, so ask before creating it.
    let ask = !args.yes && !ex.is_local;
    let journal_existed = journal_path.exists();
    if ask && !journal_existed && (!b.orders.is_empty() || !b.cancels.is_empty()) {
        confirm(&b, b.orders.len(), b.cancels.len(), &ex.base_url, &api_key)?;
    }
    let mut journal = Journal::open(journal_path)?;
    // `register` checks the batch again inside its transaction (and
    // refuses the same way): check first only to ask about new orders
    // and cancels.
    if ask && journal_existed {
        let reg = journal
            .check(&b, Some((&binding, &api_key)))?
            .map_err(|r| refusal(&b, &binding, &api_key, &r))?;
        if reg.added > 0 || reg.cancels_added > 0 {
            confirm(&b, reg.added, reg.cancels_added, &ex.base_url, &api_key)?;
        }
    }
    journal
        .register(&b, &binding, &api_key, now_ms())?
        .map_err(|r| refusal(&b, &binding, &api_key, &r))?;
    let run_id = journal.begin_run(&b.id, "run", now_ms())?;
    let ticker_log: Vec<Write> = ticker_log
        .into_iter()
        .map(|mut r| {
            r.run_id = Some(run_id);
            r.batch_id = Some(b.id.clone());
            Write::Http(r)
        })
        .collect();
    journal.apply(&ticker_log)?;
    // What the journal held before this run: "already placed" is told
    // from "placed now" by it.
    let before: HashMap<String, OrderState> = journal.order_states(&b.id)?.into_iter().collect();

    let to_send = before
        .values()
        .filter(|s| !(s.is_placed() || **s == OrderState::Rejected))
        .count();
    let progress = sh.progress(
        &format!("run {}", b.id),
        Some((to_send + b.queries.len() + 2) as u64),
        client.current_rate(),
    );
    client.observe(progress.observer());
    let account_id = journal
        .batch_account(&b.id)?
        .ok_or_else(|| Failure::failed("the batch was just registered but has no account"))?;
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
        Some(b.id.clone()),
        read,
        stop.clone(),
    );
    let exec = Executor::new(acct, b.clone(), RunOptions::default());
    let report = ex.rt.block_on(async {
        watch_ctrl_c(stop.clone(), progress.clone());
        exec.run().await
    });
    progress.finish();
    ex.shutdown();
    // Whatever the run's outcome, let the journal thread write everything
    // still queued (answers of requests that completed) before leaving.
    drop(exec);
    drop(writer);
    let mut journal = thread
        .join()
        .map_err(|_| Failure::failed("the journal thread panicked"))?;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = journal.finish_run(run_id, exit::FAILED, &format!("error: {e}"), now_ms());
            return Err(e.into());
        }
    };
    let summary = report_run(sh, &b, &before, &report, journal_path, run_id);
    journal.finish_run(run_id, report.exit_code, &summary, now_ms())?;
    Ok(report.exit_code)
}

/// Ctrl-C once: stop sending and let requests in flight finish. Twice:
/// exit at once (as safe as a crash, which the next run recovers from).
/// The progress bar is cleared first, so each note starts a clean line.
pub(crate) fn watch_ctrl_c(stop: Arc<Stop>, progress: Progress) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            progress.println(
                "interrupted: no new requests will be sent; waiting for requests in flight",
            );
            stop.set();
            if tokio::signal::ctrl_c().await.is_ok() {
                progress.finish();
                eprintln!(
                    "interrupted again: exiting now; the next run resolves what was in flight"
                );
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
}

fn confirm(
    b: &Batch,
    n: usize,
    cancels: usize,
    base_url: &str,
    api_key: &str,
) -> Result<(), Failure> {
    let what = match (n, cancels) {
        (n, 0) => format!("place {n} order(s)"),
        (0, c) => format!("run {c} cancel(s)"),
        (n, c) => format!("place {n} order(s) and run {c} cancel(s)"),
    };
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "about to {what} of batch `{}` on {base_url}; standard input is not a terminal, so pass --yes to confirm",
            b.id
        )));
    }
    let mut what = what;
    what.replace_range(..1, &what[..1].to_ascii_uppercase());
    eprint!(
        "{what} of batch `{}` on {base_url} with key {api_key}? [y/N] ",
        b.id
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::usage("not confirmed; nothing was sent"))
    }
}

/// What this run did with one order, from its state before and after.
fn action(before: Option<OrderState>, now: OrderState) -> &'static str {
    use OrderState::*;
    match (before, now) {
        (Some(b), _) if b.is_placed() => "already_placed",
        (Some(Rejected), _) => "already_rejected",
        (Some(Unknown | Sending), n) if n.is_placed() => "found",
        (_, n) if n.is_placed() => "placed",
        (_, Rejected) => "rejected",
        (_, Pending) => "not_sent",
        _ => "unknown",
    }
}

/// Tell people, JSON readers and CI what the run did; returns the one
/// line kept in `runs.summary`.
fn report_run(
    sh: &mut Shell,
    b: &Batch,
    before: &HashMap<String, OrderState>,
    r: &RunReport,
    journal_path: &Path,
    run_id: i64,
) -> String {
    let mut did: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    let actions: Vec<&'static str> = r
        .orders
        .iter()
        .map(|o| action(before.get(&o.order_id).copied(), o.state))
        .collect();
    for (o, a) in r.orders.iter().zip(&actions) {
        *did.entry(a).or_default() += 1;
        *states.entry(o.state.as_str()).or_default() += 1;
    }
    let n = |k: &str| did.get(k).copied().unwrap_or(0);
    let already = n("already_placed") + n("already_rejected");
    let nothing_sent = already == r.orders.len();

    // What this run did, in one line, the most important first.
    let did_line = if nothing_sent {
        let mut s = format!(
            "nothing to send: {} order{} already placed",
            n("already_placed"),
            if n("already_placed") == 1 { "" } else { "s" }
        );
        if n("already_rejected") > 0 {
            s.push_str(&format!(", {} already rejected", n("already_rejected")));
        }
        s
    } else {
        [
            ("placed", "placed"),
            ("found", "found placed"),
            ("rejected", "rejected"),
            ("unknown", "unknown"),
            ("not_sent", "not sent"),
            ("already_placed", "already placed"),
            ("already_rejected", "already rejected"),
        ]
        .iter()
        .filter(|(k, _)| n(k) > 0)
        .map(|(k, words)| format!("{words} {}", n(k)))
        .collect::<Vec<_>>()
        .join(", ")
    };

    let mut md_rows = String::new();
    if !nothing_sent {
        sh.say(&paint(
            style::HEADER,
            format!(
                "{:<18} {:<10} {:<16} {:<14} {:<14} {}",
                "ORDER", "STATE", "THIS RUN", "EXCHANGE ID", "FILLED", "NOTE"
            ),
        ));
    }
    let show_each = r.orders.len() <= 200;
    for (o, a) in r.orders.iter().zip(&actions) {
        // A record per order is built only for JSON output: it is a map
        // of seven fields, and a human summary throws it away.
        if sh.is_json() {
            sh.record(json::order(&OrderRecord {
                batch_id: &b.id,
                order_id: &o.order_id,
                action: a,
                state: Some(o.state.as_str()),
                exchange_order_id: o.exchange_order_id.as_deref(),
                filled_quantity: o.filled_quantity.as_deref(),
                detail: o.last_error.as_deref(),
            }));
        }
        let interesting = !matches!(o.state, OrderState::Open | OrderState::Filled);
        if !nothing_sent && (show_each || interesting) {
            sh.say(
                format!(
                    "{:<18} {} {:<16} {:<14} {:<14} {}",
                    o.order_id,
                    paint(
                        state_style(o.state.as_str()),
                        format!("{:<10}", o.state.as_str())
                    ),
                    a.replace('_', " "),
                    o.exchange_order_id.as_deref().unwrap_or("-"),
                    o.filled_quantity.as_deref().unwrap_or("-"),
                    o.last_error.as_deref().unwrap_or("")
                )
                .trim_end(),
            );
        }
        if !a.starts_with("already") && md_rows.len() < github::SUMMARY_LIMIT / 4 {
            let _ = writeln!(
                md_rows,
                "| `{}` | {} | {} | {} | {} |",
                o.order_id,
                a.replace('_', " "),
                o.state,
                o.exchange_order_id.as_deref().unwrap_or("-"),
                github::cell(o.last_error.as_deref().unwrap_or(""))
            );
        }
    }
    let cancel_counts = report_cancels(sh, b, r);
    let did_line = if cancel_counts.is_empty() {
        did_line
    } else {
        let text = cancel_counts
            .iter()
            .map(|(k, v)| format!("{} {v}", k.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{}; cancels: {text}",
            did_line.replacen("nothing to send", "nothing to place", 1)
        )
    };
    for (id, q) in &r.queries {
        match q {
            Ok(s) => sh.say(&format!("query {id}: {s}")),
            Err(e) => sh.say(&format!(
                "query {id}: {}: {e}",
                paint(style::ERROR, "FAILED")
            )),
        }
        sh.record(json::query(
            &b.id,
            id,
            q.as_ref().map(String::as_str).map_err(String::as_str),
        ));
    }
    let counts_text = states
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut line = format!(
        "batch `{}`: {} order(s): {}",
        b.id,
        r.orders.len(),
        if counts_text.is_empty() {
            "none".into()
        } else {
            counts_text
        }
    );
    if !r.cancels.cancels.is_empty() {
        let text = cancel_counts
            .iter()
            .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ");
        line.push_str(&format!(
            "; {} cancel(s) of {} order(s): {}",
            r.cancels.cancels.len(),
            cancel_counts.values().sum::<usize>(),
            if text.is_empty() { "none".into() } else { text }
        ));
    }
    sh.say(&format!("{}; journal: {}", line, journal_path.display()));
    sh.say(&paint(
        if nothing_sent {
            style::GOOD
        } else {
            style::HEADER
        },
        &did_line,
    ));
    for note in &r.notes {
        sh.status(&format!("note: {note}"));
        sh.record(json::note(note));
    }
    if !r.unresolved.is_empty() {
        sh.warn(&format!(
            "{} order(s) have an outcome hqx could not prove: {}. Nothing more was sent for this batch. Run again once the exchange answers, or check the exchange's order history and settle each with `hqx resolve {} ORDER --as placed|absent`.",
            r.unresolved.len(),
            r.unresolved.join(", "),
            b.id
        ));
    }
    if !r.cancels.unresolved.is_empty() {
        sh.warn(&format!(
            "{} cancel(s) not settled: {}. Their orders' outcome is not known yet; nothing was sent for them that could not be checked. Run the same file again (a cancel whose order is `unknown` waits for it to be resolved).",
            r.cancels.unresolved.len(),
            r.cancels.unresolved.join(", ")
        ));
    }
    if !r.cancels.failed.is_empty() {
        sh.warn(&format!(
            "{} cancel(s) failed: {}; the CANCEL lines above say why. A failed cancel is final under its id: fix it under a new id.",
            r.cancels.failed.len(),
            r.cancels.failed.join(", ")
        ));
    }
    if r.interrupted {
        sh.warn(
            "interrupted: orders not yet sent stay pending; run the same file again to continue",
        );
    }

    let table = if md_rows.is_empty() {
        String::new()
    } else {
        format!(
            "| order | this run | state | exchange id | note |\n|---|---|---|---|---|\n{md_rows}\n"
        )
    };
    let warn = github::step_summary(&format!(
        "## hqx run `{}`: exit {}\n\n{did_line}\n\n{line}\n\n{table}",
        b.id, r.exit_code
    ));
    let placed = n("placed") + n("found");
    let warn2 = github::outputs(&[
        ("placed", placed.to_string()),
        ("already_placed", n("already_placed").to_string()),
        ("rejected", n("rejected").to_string()),
        ("unresolved", r.unresolved.len().to_string()),
        ("exit_code", r.exit_code.to_string()),
    ]);
    for w in [warn, warn2].into_iter().flatten() {
        sh.warn(&w);
    }
    sh.summary(
        Record::new("summary")
            .field("batch_id", &b.id)
            .field("run_id", run_id)
            .field("orders", r.orders.len())
            .field("placed", placed)
            .field("already_placed", n("already_placed"))
            .field("rejected", n("rejected"))
            .field("not_sent", n("not_sent"))
            .field("unresolved", r.unresolved.len())
            .field(
                "queries_failed",
                r.queries.iter().filter(|(_, q)| q.is_err()).count(),
            )
            .field("cancels", r.cancels.cancels.len())
            .field("cancels_unsettled", r.cancels.unresolved.len())
            .field("cancels_failed", r.cancels.failed.len())
            .field("interrupted", r.interrupted)
            .field("message", &did_line),
        r.exit_code,
    );
    format!("{line}; {did_line}")
}

/// Tell people and JSON readers what became of each cancel (one line per
/// order it is about); returns the count of each cancel state.
fn report_cancels<'a>(sh: &mut Shell, b: &Batch, r: &'a RunReport) -> BTreeMap<&'a str, usize> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    if r.cancels.cancels.is_empty() {
        return counts;
    }
    sh.say(&paint(
        style::HEADER,
        format!(
            "{:<18} {:<18} {:<14} {}",
            "CANCEL", "STATE", "EXCHANGE ID", "TARGET / NOTE"
        ),
    ));
    for c in &r.cancels.cancels {
        let target = format!("{}: {}", c.target_kind, c.target);
        let line = |sh: &mut Shell, state: &str, id: Option<&str>, rest: String| {
            sh.say(
                format!(
                    "{:<18} {:<18} {:<14} {target}{rest}",
                    c.cancel_id,
                    state.replace('_', " "),
                    id.unwrap_or("-"),
                )
                .trim_end(),
            );
            sh.record(
                Record::new("cancel")
                    .field("batch_id", &b.id)
                    .field("cancel_id", &c.cancel_id)
                    .field("target", &target)
                    .field("state", state)
                    .field("exchange_order_id", id),
            );
        };
        if c.items.is_empty() {
            *counts.entry(c.state.as_str()).or_default() += 1;
            let rest = c
                .detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            line(sh, &c.state, None, rest);
        }
        for it in &c.items {
            *counts.entry(it.state.as_str()).or_default() += 1;
            let order = it
                .order
                .as_ref()
                .filter(|_| c.target_kind != "order")
                .map(|(b, o)| format!(" = {b}/{o}"))
                .unwrap_or_default();
            let err = it
                .last_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            line(
                sh,
                it.state.as_str(),
                it.exchange_order_id.as_deref(),
                format!("{order}{err}"),
            );
        }
    }
    counts
}
