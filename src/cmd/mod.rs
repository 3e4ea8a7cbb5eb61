//! One module per subcommand, each with its `Args` (what clap parses) and
//! a `run` that sets things up and hands over to the library.
//!
//! Errors that reach the user are [`Failure`]s: an exit code and a message
//! that says what to do next. `main` maps them to the process exit code.

pub mod ack;
pub mod journal;
pub mod plan;
pub mod reconcile;
pub mod resolve;
pub mod run;
pub mod sandbox;
pub mod sql;
pub mod validate;

use std::path::Path;

use crate::batch::{self, Batch};
use crate::executor::exit;

/// An error for the user: exit code and message.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: i32,
    /// What went wrong and what to do.
    pub message: String,
}

impl Failure {
    /// Bad input or usage (exit 2): nothing was sent or written.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    /// Something failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::FAILED,
            message: message.into(),
        }
    }
}

impl From<crate::journal::JournalError> for Failure {
    fn from(e: crate::journal::JournalError) -> Self {
        Failure::failed(e.to_string())
    }
}

/// Read and validate a batch file; any error is a usage error (exit 2).
pub(crate) fn load_batch(file: &Path) -> Result<Batch, Failure> {
    batch::load(file).map_err(|e| Failure::usage(e.to_string()))
}

/// "query" or "queries".
pub(crate) fn queries_word(n: usize) -> &'static str {
    if n == 1 {
        "query"
    } else {
        "queries"
    }
}
