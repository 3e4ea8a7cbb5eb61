//! `hqx validate FILE`: check a batch; send and write nothing.

use std::path::PathBuf;

use super::{load_batch, queries_word, Failure};
use crate::executor::exit;

/// Options of `hqx validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The batch file.
    pub file: PathBuf,
}

/// Check the batch and say what it holds.
pub fn run(args: &Args) -> Result<i32, Failure> {
    let b = load_batch(&args.file)?;
    println!(
        "{}: batch `{}` is valid: {} order(s), {} {}",
        args.file.display(),
        b.id,
        b.orders.len(),
        b.queries.len(),
        queries_word(b.queries.len())
    );
    Ok(exit::OK)
}
