//! `hqx validate FILE`: check a batch; send and write nothing.

use std::path::PathBuf;

use super::{load_batch, load_limits, queries_word, Failure};
use crate::executor::exit;
use crate::limits::{self, Prices};

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
pub fn run(args: &Args) -> Result<i32, Failure> {
    let b = load_batch(&args.file)?;
    let lim = load_limits(&b, args.limits.as_deref())?;
    if let Some(l) = &lim {
        limits::check(&b, l, |_| true, Prices::Offline)
            .map_err(|e| Failure::usage(e.to_string()))?;
    }
    println!(
        "{}: batch `{}` is valid: {} order(s), {} {}",
        args.file.display(),
        b.id,
        b.orders.len(),
        b.queries.len(),
        queries_word(b.queries.len())
    );
    if let Some(l) = &lim {
        let later = b.orders.iter().filter(|o| l.needs_reference(o)).count();
        if later > 0 {
            println!(
                "limits: {later} order(s) need the exchange's reference price (price band, or a market order under a notional limit): `plan` and `run` check them"
            );
        }
    }
    Ok(exit::OK)
}
