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
    /// How to reach the exchange, used only for the reference prices that
    /// limits need.
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
    let mut md = String::new();
    sh.say(&format!("batch `{}` ({}):", b.id, file.display()));
    if let Some(line) = checked {
        sh.say(&format!("  {line}"));
    }
    for spec in &b.orders {
        let row = by_id.get(spec.id.as_str());
        let (what, action, extra) = match (conflicts.get(&spec.id), row) {
            (Some(journal_body), _) => (
                "CONFLICT",
                "conflict",
                format!(" (journal has {journal_body})"),
            ),
            (None, None) => {
                place += 1;
                ("to place", "to_place", String::new())
            }
            (None, Some(r)) if r.state == OrderState::Pending => {
                place += 1;
                (
                    "to place",
                    "to_place",
                    " (journaled, not yet placed)".into(),
                )
            }
            (None, Some(r)) if r.state.is_placed() || r.state == OrderState::Rejected => {
                done += 1;
                ("already", "already", format!(" ({})", r.state))
            }
            (None, Some(r)) => {
                other += 1;
                (
                    "to resolve",
                    "to_resolve",
                    format!(" ({}: will be looked up on the exchange first)", r.state),
                )
            }
        };
        let i = &spec.intent;
        let price = i
            .price
            .as_ref()
            .map(|p| format!(" @ {p}"))
            .unwrap_or_default();
        sh.say(&format!(
            "  {} {:<16} {} {} {} {}{price}{extra}",
            paint(state_style(what), format!("{what:<10}")),
            spec.id,
            i.side,
            i.quantity,
            i.pair,
            i.kind,
        ));
        let state = row.map(|r| r.state.as_str());
        sh.record(json::order(&OrderRecord {
            batch_id: &b.id,
            order_id: &spec.id,
            action,
            state,
            exchange_order_id: row.and_then(|r| r.exchange_order_id.as_deref()),
            filled_quantity: row.and_then(|r| r.filled_quantity.as_deref()),
            detail: conflicts.get(&spec.id).map(String::as_str),
        }));
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
    let line = format!(
        "{place} to place, {done} already placed or rejected, {other} to resolve, {} conflict(s); {} {} to run",
        conflicts.len(),
        b.queries.len(),
        queries_word(b.queries.len())
    );
    sh.say(&paint(style::HEADER, &line));
    let code = if !conflicts.is_empty() {
        exit::USAGE
    } else if args.detailed_exitcode && place + other > 0 {
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
            ("conflicts", conflicts.len().to_string()),
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
            .field("conflicts", conflicts.len())
            .field("queries", b.queries.len()),
        code,
    );
    Ok(code)
}
