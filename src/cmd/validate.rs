//! `hqx validate FILE`: check a batch; send and write nothing.

use std::path::PathBuf;

use super::{batch_failure, load_batch, load_limits, queries_word, Failure};
use crate::executor::exit;
use crate::limits::{self, Prices};
use crate::output::json::Record;
use crate::output::{paint, style, Shell};

/// Options of `hqx validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The batch file.
    pub file: PathBuf,
    /// A limits file shared by many batches; with the batch's own
    /// `limits:`, the stricter rule wins.
    #[arg(long, env = "HQX_LIMITS", value_name = "FILE")]
    pub limits: Option<PathBuf>,
}

/// Check the batch, and its limits as far as no exchange is needed, and
/// say what it holds.
pub fn run(args: &Args, sh: &mut Shell) -> Result<i32, Failure> {
    sh.group(&format!("hqx validate {}", args.file.display()));
    let b = load_batch(&args.file)?;
    let lim = load_limits(&b, args.limits.as_deref())?;
    if let Some(l) = &lim {
        limits::check(&b, l, |_| true, Prices::Offline).map_err(batch_failure)?;
    }
    sh.say(&format!(
        "{}: batch `{}` is {}: {} order(s), {} {}",
        args.file.display(),
        b.id,
        paint(style::GOOD, "valid"),
        b.orders.len(),
        b.queries.len(),
        queries_word(b.queries.len())
    ));
    let mut later = 0;
    if let Some(l) = &lim {
        later = b.orders.iter().filter(|o| l.needs_reference(o)).count();
        if later > 0 {
            sh.say(&format!(
                "limits: {later} order(s) need the exchange's reference price (price band, or a market order under a notional limit): `plan` and `run` check them"
            ));
        }
    }
    sh.record(
        Record::new("batch")
            .field("batch_id", &b.id)
            .field("file", args.file.display().to_string())
            .field("orders", b.orders.len())
            .field("queries", b.queries.len())
            .field("limits_need_reference", later),
    );
    sh.summary(
        Record::new("summary")
            .field("batch_id", &b.id)
            .field("errors", 0),
        exit::OK,
    );
    Ok(exit::OK)
}
