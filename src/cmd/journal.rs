//! `hqx journal init|backup|check|rebuild`: look after the journal itself.
//!
//! A journal lost between CI runs must never lead to orders placed twice,
//! yet a run on a fresh journal sends its whole batch again. So a
//! scheduled job can fail closed: `--journal-must-exist` (or
//! `HQX_JOURNAL_MUST_EXIST=1`) refuses to create one, and `hqx journal
//! init` creates it once, on purpose.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::Failure;
use crate::executor::exit;
use crate::journal::Journal;
use crate::output::json::Record;
use crate::output::Shell;

/// Options of `hqx journal`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do with the journal.
    #[command(subcommand)]
    pub action: Action,
}

/// `hqx journal` actions.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Create the journal (the first time; with --journal-must-exist,
    /// nothing else will).
    Init,
    /// Copy the journal, consistent, while other hqx processes write to it
    /// (SQLite's VACUUM INTO).
    Backup {
        /// Where to write the copy (must not exist).
        path: PathBuf,
    },
    /// Check the journal's integrity and schema version.
    Check,
    /// Recompute every position's figures (the `positions` and
    /// `position_fees` views) from the journaled trades, in one
    /// transaction. hqx keeps them up to date itself; this mends them after
    /// a by-hand edit of `trades`, or checks that they agree.
    Rebuild,
}

/// Refuse to go on without a journal when the user asked for that.
pub fn require(journal_path: &Path, must_exist: bool) -> Result<(), Failure> {
    if must_exist && !journal_path.exists() {
        return Err(Failure::usage(format!(
            "no journal at {} and --journal-must-exist (HQX_JOURNAL_MUST_EXIST) is set: nothing was sent. If the journal was lost, restore it from its backup (a fresh journal would place every order of a batch again). If this is the first time, create it with `hqx journal init`.",
            journal_path.display()
        )));
    }
    Ok(())
}

/// Run the action; returns the exit code.
pub fn run(journal_path: &Path, args: &Args, sh: &mut Shell) -> Result<i32, Failure> {
    match &args.action {
        Action::Init => {
            let existed = journal_path.exists();
            Journal::open(journal_path)?;
            sh.say(&format!(
                "{} {} (schema {})",
                if existed {
                    "journal exists:"
                } else {
                    "created journal"
                },
                journal_path.display(),
                Journal::schema_version()
            ));
            sh.record(
                record("init", journal_path)
                    .field("created", !existed)
                    .field("schema", Journal::schema_version()),
            );
            Ok(exit::OK)
        }
        Action::Backup { path } => {
            require(journal_path, true).map_err(|_| {
                Failure::usage(format!(
                    "no journal at {}; pass --journal",
                    journal_path.display()
                ))
            })?;
            if path.exists() {
                return Err(Failure::usage(format!(
                    "{} exists; hqx does not overwrite a backup: choose a new path",
                    path.display()
                )));
            }
            let j = Journal::open(journal_path)?;
            j.backup_to(path)?;
            sh.say(&format!("{} -> {}", journal_path.display(), path.display()));
            sh.record(record("backup", journal_path).field("backup", path.display().to_string()));
            Ok(exit::OK)
        }
        Action::Rebuild => {
            require(journal_path, true).map_err(|_| {
                Failure::usage(format!(
                    "no journal at {}; pass --journal",
                    journal_path.display()
                ))
            })?;
            let mut j = Journal::open(journal_path)?;
            let (positions, trades) = j.rebuild_figures()?;
            sh.say(&format!(
                "{}: figures of {positions} position(s) recomputed from {trades} trade(s)",
                journal_path.display()
            ));
            sh.record(
                record("rebuild", journal_path)
                    .field("positions", positions)
                    .field("trades", trades),
            );
            Ok(exit::OK)
        }
        Action::Check => {
            require(journal_path, true).map_err(|_| {
                Failure::usage(format!(
                    "no journal at {}; pass --journal",
                    journal_path.display()
                ))
            })?;
            let found = Journal::file_schema_version(journal_path)?;
            let j = Journal::open(journal_path)?;
            let problems = j.integrity_check()?;
            sh.say(&format!(
                "{}: schema {found}{}, this hqx writes {}",
                journal_path.display(),
                if found < Journal::schema_version() {
                    " (upgraded now)"
                } else {
                    ""
                },
                Journal::schema_version()
            ));
            sh.record(
                record("check", journal_path)
                    .field("schema", found)
                    .field("integrity", &problems),
            );
            if problems.is_empty() {
                sh.say("integrity: ok");
                Ok(exit::OK)
            } else {
                for p in &problems {
                    sh.say(&format!("integrity: {p}"));
                }
                Err(Failure::failed(format!(
                    "{} integrity problem(s): restore the journal from a backup (hqx journal backup) and keep this file for inspection",
                    problems.len()
                )))
            }
        }
    }
}

/// A `journal` record: what was done to which journal.
fn record(action: &str, path: &Path) -> Record {
    Record::new("journal")
        .field("action", action)
        .field("path", path.display().to_string())
}
