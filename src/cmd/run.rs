//! `hqx run FILE`: validate, journal, place, resolve, query; print a summary.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{load_batch, load_limits, pre_trade, Failure};
use crate::account::{Account, ReadOptions, Stop};
use crate::batch::Batch;
use crate::client::now_ms;
use crate::connect::{lock_batch, Connection, Exchange};
use crate::executor::{exit, Executor, RunOptions, RunReport};
use crate::journal::{BatchRefusal, Journal, JournalWriter, Write};
use crate::order::OrderState;

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
    }
}

/// Run the batch; returns the exit code.
pub fn run(journal_path: &Path, must_exist: bool, args: &Args) -> Result<i32, Failure> {
    // Everything that can be refused is checked before anything is
    // written or sent.
    let b = Arc::new(load_batch(&args.file)?);
    let limits = load_limits(&b, args.limits.as_deref())?;
    super::journal::require(journal_path, must_exist)?;
    let _lock = lock_batch(journal_path, &b.id)?;
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
    if ask && !journal_existed && !b.orders.is_empty() {
        confirm(&b, b.orders.len(), &ex.base_url, &api_key)?;
    }
    let mut journal = Journal::open(journal_path)?;
    // `register` checks the batch again inside its transaction (and
    // refuses the same way): check first only to ask about new orders.
    if ask && journal_existed {
        let reg = journal
            .check(&b, Some((&binding, &api_key)))?
            .map_err(|r| Failure::usage(refusal_message(&b, &binding, &api_key, &r)))?;
        if reg.added > 0 {
            confirm(&b, reg.added, &ex.base_url, &api_key)?;
        }
    }
    journal
        .register(&b, &binding, &api_key, now_ms())?
        .map_err(|r| Failure::usage(refusal_message(&b, &binding, &api_key, &r)))?;
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
        watch_ctrl_c(stop.clone());
        exec.run().await
    });
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
    let summary = print_report(&b, &report, journal_path);
    journal.finish_run(run_id, report.exit_code, &summary, now_ms())?;
    Ok(report.exit_code)
}

/// Ctrl-C once: stop sending and let requests in flight finish. Twice:
/// exit at once (as safe as a crash, which the next run recovers from).
pub(crate) fn watch_ctrl_c(stop: Arc<Stop>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: no new requests will be sent; waiting for requests in flight");
            stop.set();
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "interrupted again: exiting now; the next run resolves what was in flight"
                );
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
}

fn confirm(b: &Batch, n: usize, base_url: &str, api_key: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "about to place {n} order(s) of batch `{}` on {base_url}; standard input is not a terminal, so pass --yes to confirm",
            b.id
        )));
    }
    eprint!(
        "Place {n} order(s) of batch `{}` on {base_url} with key {api_key}? [y/N] ",
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

/// Print the run's summary to stdout; returns a one-line summary for the journal.
fn print_report(b: &Batch, r: &RunReport, journal_path: &Path) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<18} {:<10} {:<14} {:<14} {}\n",
        "ORDER", "STATE", "EXCHANGE ID", "FILLED", "NOTE"
    ));
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let show_each = r.orders.len() <= 200;
    for o in &r.orders {
        *counts.entry(o.state.as_str()).or_default() += 1;
        if show_each || !matches!(o.state, OrderState::Open | OrderState::Filled) {
            out.push_str(&format!(
                "{:<18} {:<10} {:<14} {:<14} {}\n",
                o.order_id,
                o.state.as_str(),
                o.exchange_order_id.as_deref().unwrap_or("-"),
                o.filled_quantity.as_deref().unwrap_or("-"),
                o.last_error.as_deref().unwrap_or("")
            ));
        }
    }
    for (id, q) in &r.queries {
        match q {
            Ok(s) => out.push_str(&format!("query {id}: {s}\n")),
            Err(e) => out.push_str(&format!("query {id}: FAILED: {e}\n")),
        }
    }
    let counts_text = counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let line = format!(
        "batch `{}`: {} order(s): {}",
        b.id,
        r.orders.len(),
        if counts_text.is_empty() {
            "none".into()
        } else {
            counts_text
        }
    );
    out.push_str(&line);
    out.push_str(&format!("; journal: {}\n", journal_path.display()));
    print!("{out}");
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    if !r.unresolved.is_empty() {
        eprintln!(
            "{} order(s) have an outcome hqx could not prove: {}. Nothing more was sent for this batch. Run again once the exchange answers, or check the exchange's order history and settle each with `hqx resolve {} ORDER --as placed|absent`.",
            r.unresolved.len(),
            r.unresolved.join(", "),
            b.id
        );
    }
    if r.interrupted {
        eprintln!(
            "interrupted: orders not yet sent stay pending; run the same file again to continue"
        );
    }
    line
}
