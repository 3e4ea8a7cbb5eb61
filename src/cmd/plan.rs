//! `hqx plan FILE`: what `run` would do; place and write nothing. The
//! pre-trade limits are checked as `run` checks them, reading reference
//! prices from the exchange's ticker when a limit needs one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{load_batch, load_limits, pre_trade, queries_word, Failure};
use crate::connect::{Connection, Exchange};
use crate::executor::exit;
use crate::journal::{BatchRefusal, Journal, OrderRow};
use crate::order::OrderState;

/// Options of `hqx plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The batch file.
    pub file: PathBuf,
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
pub fn run(journal_path: &Path, args: &Args) -> Result<i32, Failure> {
    let file = &args.file;
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
        (j.orders(&b.id)?, conflicts, Some(j))
    } else {
        (Vec::new(), HashMap::new(), None)
    };
    let by_id: HashMap<&str, &OrderRow> = rows.iter().map(|r| (r.order_id.as_str(), r)).collect();
    let (mut place, mut done, mut other) = (0, 0, 0);
    println!("batch `{}` ({}):", b.id, file.display());
    if let Some(line) = checked {
        println!("  {line}");
    }
    for spec in &b.orders {
        let (what, extra) = match (conflicts.get(&spec.id), by_id.get(spec.id.as_str())) {
            (Some(journal_body), _) => ("CONFLICT", format!(" (journal has {journal_body})")),
            (None, None) => {
                place += 1;
                ("to place", String::new())
            }
            (None, Some(r)) if r.state == OrderState::Pending => {
                place += 1;
                ("to place", " (journaled, not yet placed)".into())
            }
            (None, Some(r)) if r.state.is_placed() || r.state == OrderState::Rejected => {
                done += 1;
                ("already", format!(" ({})", r.state))
            }
            (None, Some(r)) => {
                other += 1;
                (
                    "to resolve",
                    format!(" ({}: will be looked up on the exchange first)", r.state),
                )
            }
        };
        let i = &spec.intent;
        println!(
            "  {what:<10} {:<16} {} {} {} {}{}{extra}",
            spec.id,
            i.side,
            i.quantity,
            i.pair,
            i.kind,
            i.price
                .as_ref()
                .map(|p| format!(" @ {p}"))
                .unwrap_or_default()
        );
    }
    let mut cancel_conflicts = 0;
    let cancels_line = if b.cancels.is_empty() {
        String::new()
    } else {
        let open_counts = if args.online {
            Some(count_open(journal_path, args, &b)?)
        } else {
            None
        };
        let planned = crate::cancels::plan(&b, journal.as_ref(), open_counts.as_ref())?;
        println!("cancels (run before any placement):");
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for p in &planned {
            *counts.entry(p.what).or_default() += 1;
            cancel_conflicts += usize::from(p.what == "CONFLICT");
            println!("  {:<12} {:<16} {}{}", p.what, p.id, p.target, p.note);
        }
        for m in &cancel_problems {
            println!("  CONFLICT     {m}");
        }
        let text = counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("; {} cancel(s): {text}", planned.len())
    };
    println!(
        "{place} to place, {done} already placed or rejected, {other} to resolve, {} conflict(s); {} {} to run{cancels_line}",
        conflicts.len() + cancel_problems.len() + cancel_conflicts,
        b.queries.len(),
        queries_word(b.queries.len())
    );
    Ok(
        if conflicts.is_empty() && cancel_problems.is_empty() && cancel_conflicts == 0 {
            exit::OK
        } else {
            exit::USAGE
        },
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
