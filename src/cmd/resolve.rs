//! `hqx resolve BATCH ORDER --as placed|absent`: a person settles an order
//! whose outcome hqx could not prove.

use std::path::Path;

use clap::ValueEnum;

use super::Failure;
use crate::client::now_ms;
use crate::connect::lock_batch;
use crate::executor::exit;
use crate::journal::{Journal, StateChange, Write};
use crate::order::{transition, Event};
use crate::output::json::Record;
use crate::output::Shell;

/// Options of `hqx resolve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The batch id.
    pub batch: String,
    /// The order id within the batch.
    pub order: String,
    /// What happened: `placed` (it is on the exchange) or `absent` (it is not; it will be sent again).
    #[arg(long = "as", value_enum)]
    pub outcome: Outcome,
    /// The exchange's order id (required with --as placed: hqx tracks the order by it).
    #[arg(long)]
    pub exchange_id: Option<String>,
}

/// A person's verdict on an unknown order.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Outcome {
    /// The order is on the exchange.
    Placed,
    /// The order is not on the exchange.
    Absent,
}

/// Journal the verdict as `declared_placed` / `declared_absent`.
pub fn run(journal_path: &Path, args: &Args, sh: &mut Shell) -> Result<i32, Failure> {
    let (batch_id, order_id, outcome) = (args.batch.as_str(), args.order.as_str(), args.outcome);
    let exchange_id = args.exchange_id.as_deref();
    if !journal_path.exists() {
        return Err(Failure::usage(format!(
            "no journal at {}; pass --journal",
            journal_path.display()
        )));
    }
    let _lock = lock_batch(journal_path, batch_id)?;
    let mut j = Journal::open(journal_path)?;
    let rows = j.orders(batch_id)?;
    let Some(o) = rows.iter().find(|o| o.order_id == order_id) else {
        return Err(Failure::usage(format!(
            "batch `{batch_id}` has no order `{order_id}` in {}",
            journal_path.display()
        )));
    };
    let event = match outcome {
        Outcome::Placed => Event::DeclaredPlaced,
        Outcome::Absent => Event::DeclaredAbsent,
    };
    let to = transition(o.state, event).map_err(|_| {
        Failure::usage(format!(
            "order `{order_id}` is `{}`, not `unknown`: there is nothing to resolve",
            o.state
        ))
    })?;
    match (outcome, exchange_id) {
        (Outcome::Placed, None) => {
            return Err(Failure::usage(format!(
                "--as placed needs --exchange-id: the exchange's id of order `{order_id}`, from the account's order history; hqx follows the order by it"
            )))
        }
        (Outcome::Absent, Some(_)) => {
            return Err(Failure::usage(
                "--exchange-id goes with --as placed; an absent order has none (drop it, or say --as placed)",
            ))
        }
        (Outcome::Placed, Some(x))
            if j.exchange_ids_in_use(j.batch_account(batch_id)?.unwrap_or_default())?
                .contains(x) =>
        {
            return Err(Failure::usage(format!(
                "exchange order `{x}` already belongs to another journal order; one exchange order cannot be two batch orders: check the id (SELECT batch_id, order_id FROM orders WHERE exchange_order_id = '{x}')"
            )))
        }
        _ => {}
    }
    let run_id = j.begin_run(batch_id, "resolve", now_ms())?;
    let change = StateChange {
        batch_id: batch_id.into(),
        order_id: order_id.into(),
        run_id: Some(run_id),
        at_ms: now_ms(),
        event: event.name(),
        from: Some(o.state),
        to: Some(to),
        detail: Some(format!("declared by hand ({outcome:?})")),
        exchange_order_id: exchange_id.map(str::to_string),
        last_error: Some(None),
        ..Default::default()
    };
    for r in j.apply(&[Write::State(change)])? {
        r?;
    }
    let msg = format!(
        "order `{order_id}` of batch `{batch_id}`: {} -> {to}",
        o.state
    );
    j.finish_run(run_id, exit::OK, &msg, now_ms())?;
    sh.say(&msg);
    sh.record(
        Record::new("change")
            .field("kind", event.name())
            .field("batch_id", batch_id)
            .field("order_id", order_id)
            .field("detail", format!("{} -> {to}", o.state)),
    );
    sh.summary(Record::new("summary").field("run_id", run_id), exit::OK);
    Ok(exit::OK)
}
