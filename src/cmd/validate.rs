//! `hqx validate FILE`: check a batch; send and write nothing.

use std::path::PathBuf;

use super::{load_batch, queries_word, Failure};
use crate::executor::exit;
use crate::output::json::Record;
use crate::output::{paint, style, Shell};

/// Options of `hqx validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The batch file.
    pub file: PathBuf,
}

/// Check the batch and say what it holds.
pub fn run(args: &Args, sh: &mut Shell) -> Result<i32, Failure> {
    sh.group(&format!("hqx validate {}", args.file.display()));
    let b = load_batch(&args.file)?;
    sh.say(&format!(
        "{}: batch `{}` is {}: {} order(s), {} {}",
        args.file.display(),
        b.id,
        paint(style::GOOD, "valid"),
        b.orders.len(),
        b.queries.len(),
        queries_word(b.queries.len())
    ));
    sh.record(
        Record::new("batch")
            .field("batch_id", &b.id)
            .field("file", args.file.display().to_string())
            .field("orders", b.orders.len())
            .field("queries", b.queries.len()),
    );
    sh.summary(
        Record::new("summary")
            .field("batch_id", &b.id)
            .field("errors", 0),
        exit::OK,
    );
    Ok(exit::OK)
}
