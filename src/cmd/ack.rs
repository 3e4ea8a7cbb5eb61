//! `hqx ack ID --note TEXT`: a person takes note of a reconcile finding,
//! so a schedule stops alerting on it. The note and the time are
//! journaled with the finding; it is still listed (as acknowledged), and
//! alerts again only if its figures change.

use std::path::Path;

use super::Failure;
use crate::client::now_ms;
use crate::executor::exit;
use crate::journal::Journal;
use crate::output::json::Record;
use crate::output::Shell;

/// Options of `hqx ack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The finding's id (`#ID` in reconcile's report, `id` in its JSON).
    pub id: i64,
    /// Why it is fine, or what was done about it (journaled).
    #[arg(long)]
    pub note: String,
}

/// Acknowledge the finding.
pub fn run(journal_path: &Path, args: &Args, sh: &mut Shell) -> Result<i32, Failure> {
    super::journal::require(journal_path, true).map_err(|_| {
        Failure::usage(format!(
            "no journal at {}; pass --journal",
            journal_path.display()
        ))
    })?;
    if args.note.trim().is_empty() {
        return Err(Failure::usage(
            "--note must say why the finding is fine or what was done about it: it is the record",
        ));
    }
    let mut j = Journal::open(journal_path)?;
    match j.ack_finding(args.id, args.note.trim(), now_ms())? {
        Some(f) => {
            sh.say(&format!(
                "finding #{} ({} {}) acknowledged: {}",
                f.id,
                f.kind,
                f.subject,
                args.note.trim()
            ));
            sh.record(
                Record::new("finding")
                    .field("id", f.id)
                    .field("kind", &f.kind)
                    .field("subject", &f.subject)
                    .field("status", "acknowledged")
                    .field("drift", false)
                    .field("ack_note", args.note.trim()),
            );
            Ok(exit::OK)
        }
        None => Err(Failure::usage(format!(
            "no finding #{} in {}; see `hqx sql \"SELECT id, kind, subject, status FROM findings\"`",
            args.id,
            journal_path.display()
        ))),
    }
}
