//! `hqx plan FILE`: what `run` would do; place and write nothing. The
//! pre-trade limits are checked as `run` checks them, reading reference
//! prices from the exchange's ticker when a limit needs one.

use std::collections::HashMap;
use std::io::Write as _;
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
    /// How to reach the exchange, used only for the reference prices that
    /// limits need.
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
    let (rows, conflicts) = if journal_path.exists() {
        let j = Journal::open(journal_path)?;
        let conflicts: HashMap<String, String> = match j.check(&b, None)? {
            Err(BatchRefusal::Conflicts(c)) => c
                .into_iter()
                .map(|c| (c.order_id, c.journal_body))
                .collect(),
            _ => HashMap::new(),
        };
        (j.orders(&b.id)?, conflicts)
    } else {
        (Vec::new(), HashMap::new())
    };
    let by_id: HashMap<&str, &OrderRow> = rows.iter().map(|r| (r.order_id.as_str(), r)).collect();
    let (mut place, mut done, mut other) = (0, 0, 0);
    // One buffered writer, not a write per line: a plan lists every order.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = writeln!(out, "batch `{}` ({}):", b.id, file.display());
    if let Some(line) = checked {
        let _ = writeln!(out, "  {line}");
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
        let _ = writeln!(
            out,
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
    let _ = writeln!(
        out,
        "{place} to place, {done} already placed or rejected, {other} to resolve, {} conflict(s); {} {} to run",
        conflicts.len(),
        b.queries.len(),
        queries_word(b.queries.len())
    );
    let _ = out.flush();
    drop(out);
    Ok(if conflicts.is_empty() {
        exit::OK
    } else {
        exit::USAGE
    })
}
