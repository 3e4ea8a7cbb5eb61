//! The command line: what the user typed, parsed. Nothing here does I/O:
//! [`run`] hands each subcommand to its own module under [`crate::cmd`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cmd::{self, Failure};
use crate::output::json::Record;
use crate::output::Shell;

/// hqx: run declarative order batches on Haqqex, exactly once, journaled in SQLite.
#[derive(Debug, Parser)]
#[command(name = "hqx", version, about, long_about = None)]
pub struct Cli {
    /// The SQLite journal.
    #[arg(long, global = true, env = "HQX_JOURNAL", default_value = "hqx.db")]
    pub journal: PathBuf,
    /// Refuse to create the journal: `run` and `reconcile` exit 2 when it
    /// is missing (a lost journal would place every order again); create
    /// it once with `hqx journal init`.
    #[arg(long, global = true, env = "HQX_JOURNAL_MUST_EXIST", value_parser = clap::builder::FalseyValueParser::new())]
    pub journal_must_exist: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Output format, colour, quiet, CI dialect, env file.
    #[command(flatten)]
    pub output: crate::output::Options,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a batch file; send and write nothing.
    Validate(cmd::validate::Args),
    /// Show what `run` would do, limits checked; place and write nothing.
    Plan(cmd::plan::Args),
    /// Place the batch's orders, run its queries, journal everything.
    Run(cmd::run::Args),
    /// Serve the sandbox exchange on 127.0.0.1 until interrupted.
    Sandbox(cmd::sandbox::Args),
    /// Settle an order whose outcome is unknown, by what you know.
    Resolve(cmd::resolve::Args),
    /// Bring the journal up to date with the exchange account; exit 5 on drift.
    Reconcile(cmd::reconcile::Args),
    /// Acknowledge a reconcile finding, with a note, so it stops alerting.
    Ack(cmd::ack::Args),
    /// Create, back up, check or rebuild the journal.
    Journal(cmd::journal::Args),
    /// Run one read-only SQL statement on the journal; print its rows.
    Sql(cmd::sql::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::Args),
    /// Print hqx's man page (roff) to stdout.
    Man(cmd::man::Args),
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Validate(_) => "validate",
            Command::Plan(_) => "plan",
            Command::Run(_) => "run",
            Command::Sandbox(_) => "sandbox",
            Command::Resolve(_) => "resolve",
            Command::Reconcile(_) => "reconcile",
            Command::Ack(_) => "ack",
            Command::Journal(_) => "journal",
            Command::Sql(_) => "sql",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        }
    }
}

/// Run the parsed command, speaking through one [`Shell`]; returns the
/// exit code. Under `--output json` the last line is always a `summary`.
pub fn run(cli: Cli) -> i32 {
    // These print their own thing (a server's lines, a script, a page):
    // never JSON lines.
    let mut opts = cli.output.clone();
    if matches!(
        cli.command,
        Command::Sandbox(_) | Command::Completions(_) | Command::Man(_)
    ) {
        opts.output = crate::output::Format::Human;
    }
    let mut sh = Shell::new(&opts, cli.command.name());
    match dispatch(&cli, &mut sh) {
        Ok(code) => {
            sh.end_group();
            if !sh.summarized() {
                sh.summary(Record::new("summary"), code);
            }
            code
        }
        Err(f) => sh.fail(&f),
    }
}

fn dispatch(cli: &Cli, sh: &mut Shell) -> Result<i32, Failure> {
    let journal = &cli.journal;
    match &cli.command {
        Command::Validate(a) => cmd::validate::run(a, sh),
        Command::Plan(a) => cmd::plan::run(journal, a, sh),
        Command::Run(a) => cmd::run::run(journal, cli.journal_must_exist, a, sh),
        Command::Sandbox(a) => cmd::sandbox::run(a),
        Command::Resolve(a) => cmd::resolve::run(journal, a, sh),
        Command::Reconcile(a) => cmd::reconcile::run(journal, cli.journal_must_exist, a, sh),
        Command::Ack(a) => cmd::ack::run(journal, a, sh),
        Command::Journal(a) => cmd::journal::run(journal, a, sh),
        Command::Sql(a) => cmd::sql::run(journal, a, sh),
        Command::Completions(a) => cmd::completions::run(a),
        Command::Man(a) => cmd::man::run(a),
    }
}
