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

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use crate::batch::{self, Batch, OrderSpec};
use crate::executor::exit;
use crate::journal::{HttpRecord, Journal};
use crate::limits::{self, Limits, Prices, ReferencePrices};
use crate::model::Pair;
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

/// Errors in a file (a batch, limits) as a usage error (exit 2) that
/// points at each: snippets, `error` records, CI annotations.
pub(crate) fn batch_failure(e: batch::BatchErrors) -> Failure {
    Failure::usage(e.to_string()).with_diagnostics(e.0.iter().map(Diagnostic::from).collect())
}

/// Read and validate a batch file; any error is a usage error (exit 2).
pub(crate) fn load_batch(file: &Path) -> Result<Batch, Failure> {
    batch::load(file).map_err(batch_failure)
}

/// "query" or "queries".
pub(crate) fn queries_word(n: usize) -> &'static str {
    if n == 1 {
        "query"
    } else {
        "queries"
    }
}

/// The limits in force for a batch: its own `limits:` and those of the
/// `--limits` file (`file`), the stricter winning rule by rule. A limits
/// file that cannot be read is a usage error pointing into it.
pub(crate) fn load_limits(b: &Batch, file: Option<&Path>) -> Result<Option<Limits>, Failure> {
    let shared = file
        .map(limits::load_file)
        .transpose()
        .map_err(batch_failure)?;
    Ok(limits::merge(b.limits.as_ref(), shared.as_ref()))
}

/// The pre-trade check of `plan` and `run`, before anything is journaled
/// or sent: the batch's orders that this command may send (every order the
/// journal does not hold as placed or rejected) against `limits`, with the
/// reference prices `fetch` gets for the pairs that need one. Returns the
/// ticker requests made, for the journal's `http_log`, and a line saying
/// what was checked (none without limits).
pub(crate) fn pre_trade(
    journal_path: &Path,
    b: &Batch,
    limits: Option<&Limits>,
    fetch: impl FnOnce(BTreeSet<Pair>) -> Result<(ReferencePrices, Vec<HttpRecord>), Failure>,
) -> Result<(Vec<HttpRecord>, Option<String>), Failure> {
    let Some(limits) = limits else {
        return Ok((Vec::new(), None));
    };
    let settled: HashSet<String> = if journal_path.exists() {
        Journal::open(journal_path)?
            .orders(&b.id)?
            .into_iter()
            .filter(|r| r.state.is_placed() || r.state == crate::order::OrderState::Rejected)
            .map(|r| r.order_id)
            .collect()
    } else {
        HashSet::new()
    };
    let is_new = |o: &OrderSpec| !settled.contains(&o.id);
    let need = limits::needs_reference(limits, b.orders.iter().filter(|o| is_new(o)));
    let (prices, log) = if need.is_empty() {
        (ReferencePrices::new(), Vec::new())
    } else {
        fetch(need)?
    };
    limits::check(b, limits, is_new, Prices::Reference(&prices)).map_err(batch_failure)?;
    let n = b.orders.iter().filter(|o| is_new(o)).count();
    let mut line = format!("limits: {n} order(s) to send, all within the limits");
    if !prices.is_empty() {
        let refs: Vec<String> = prices
            .iter()
            .filter_map(|(p, r)| r.as_ref().ok().map(|r| format!("{p} {r}")))
            .collect();
        line.push_str(&format!(" (reference prices: {})", refs.join(", ")));
    }
    Ok((log, Some(line)))
}
