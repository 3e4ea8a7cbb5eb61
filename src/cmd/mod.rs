//! One module per subcommand, each with its `Args` (what clap parses) and
//! a `run` that sets things up and hands over to the library.
//!
//! Errors that reach the user are [`Failure`]s: an exit code and a message
//! that says what to do next. `main` maps them to the process exit code.

pub mod ack;
pub mod completions;
pub mod journal;
pub mod man;
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
use crate::output::Diagnostic;

/// An error for the user: exit code and message.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: i32,
    /// What went wrong and what to do.
    pub message: String,
    /// Where in a file, when it is about a file (batch errors, limits):
    /// shown as snippets, `error` records and CI annotations.
    pub diagnostics: Vec<Diagnostic>,
}

impl Failure {
    /// Bad input or usage (exit 2): nothing was sent or written.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
            diagnostics: Vec::new(),
        }
    }

    /// Something failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::FAILED,
            message: message.into(),
            diagnostics: Vec::new(),
        }
    }

    /// A failure with this exit code.
    pub fn with_code(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            diagnostics: Vec::new(),
        }
    }

    /// The same failure, pointing at places in files.
    pub fn with_diagnostics(mut self, d: Vec<Diagnostic>) -> Failure {
        self.diagnostics = d;
        self
    }
}

impl From<crate::journal::JournalError> for Failure {
    fn from(e: crate::journal::JournalError) -> Self {
        Failure::failed(e.to_string())
    }
}

/// Read and validate a batch file; any error is a usage error (exit 2).
pub(crate) fn load_batch(file: &Path) -> Result<Batch, Failure> {
    batch::load(file).map_err(|e| {
        Failure::usage(e.to_string()).with_diagnostics(e.0.iter().map(Diagnostic::from).collect())
    })
}

/// "query" or "queries".
pub(crate) fn queries_word(n: usize) -> &'static str {
    if n == 1 {
        "query"
    } else {
        "queries"
    }
}
