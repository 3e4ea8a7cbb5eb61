//! How hqx speaks: one [`Shell`] per process owns stdout and stderr, the
//! colour choice, the output format and the CI dialect, as cargo's `Shell`
//! does. Commands never `println!`; they hand the shell what they have to
//! say:
//!
//! - [`Shell::say`]: the human report (stdout; stderr under `--output json`);
//! - [`Shell::status`]: notes for people on stderr (not with `--quiet`);
//! - [`Shell::record`]: one typed JSON record (JSON lines on stdout, only
//!   under `--output json`);
//! - [`Shell::summary`]: the last record, carrying `exit_code`;
//! - [`Shell::fail`]: an error, rendered for the mode: a source snippet with
//!   a caret for people, `error` records for JSON, `::error` annotations
//!   under GitHub Actions;
//! - [`Shell::progress`]: a progress bar on a terminal ([`progress`]);
//! - [`Shell::github`]: step summary and outputs under GitHub Actions
//!   ([`github`]).
//!
//! # Adding a record type
//! 1. Add a constructor in [`json`] that builds it with [`json::Record::new`]
//!    (`type` first, then its fields; decimals as the exact text).
//! 2. Describe it in `schemas/output.schema.json` (a `$defs` entry and a
//!    line in `record.oneOf`); fields not in the schema fail the schema
//!    test, so the schema stays true.
//! 3. Add a row to the README's table of record types.
//! 4. Emit it with `sh.record(json::your_record(..))` and say the same
//!    thing to people with `sh.say(..)`.
//!
//! A limit error that points into a file is a [`Diagnostic`]: put it in a
//! [`crate::cmd::Failure`] with [`crate::cmd::Failure::with_diagnostics`]
//! and it becomes a snippet, an `error` record and an annotation.

pub mod github;
pub mod json;
pub mod progress;
mod snippet;

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;

use anstream::{AutoStream, ColorChoice};
use anstyle::{AnsiColor, Style};
use clap::ValueEnum;

use crate::cmd::Failure;
pub use progress::Progress;

/// The format of standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Text for people on stdout.
    #[default]
    Human,
    /// JSON lines on stdout (a `version` record, typed records, a
    /// `summary`); text for people on stderr.
    Json,
}

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it).
    #[default]
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

/// The CI dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ci {
    /// GitHub Actions: `::error` annotations and `::group::`s.
    Github,
    /// None, even under GitHub Actions.
    None,
}

/// The options every command takes (global: before or after the subcommand).
#[derive(Debug, Clone, clap::Args, Default)]
pub struct Options {
    /// Output: `human`, or `json` (JSON lines on stdout, human text on stderr).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "HQX_OUTPUT",
        default_value = "human"
    )]
    pub output: Format,
    /// Colour: `auto` (on a terminal; NO_COLOR and CLICOLOR_FORCE honoured), `always`, `never`.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    pub color: ColorWhen,
    /// No progress bar and no notes on stderr; results and errors still print.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// CI dialect: `github` (the default when GITHUB_ACTIONS=true) or `none`.
    #[arg(long, global = true, value_enum, value_name = "CI")]
    pub ci: Option<Ci>,
    /// Read environment variables from FILE (dotenv format) first; variables
    /// already set win. Values are never printed.
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

/// The version of the JSON lines format. Readers ignore fields they do
/// not know; a change that breaks them raises this.
pub const JSON_FORMAT: u32 = 1;

/// Styles, one per meaning.
pub mod style {
    use super::*;
    /// Errors and failed states.
    pub const ERROR: Style = AnsiColor::Red.on_default().effects(anstyle::Effects::BOLD);
    /// Warnings, unknown states, drift.
    pub const WARN: Style = AnsiColor::Yellow
        .on_default()
        .effects(anstyle::Effects::BOLD);
    /// Done and good.
    pub const GOOD: Style = AnsiColor::Green.on_default();
    /// Waiting on the book.
    pub const OPEN: Style = AnsiColor::Cyan.on_default();
    /// Headers.
    pub const HEADER: Style = Style::new().effects(anstyle::Effects::BOLD);
    /// Less important.
    pub const DIM: Style = Style::new().effects(anstyle::Effects::DIMMED);
}

/// The style of an order state or a plan action.
pub fn state_style(s: &str) -> Style {
    match s {
        "filled" | "placed" | "open" | "to place" | "found" => {
            if s == "open" {
                style::OPEN
            } else {
                style::GOOD
            }
        }
        "rejected" | "CONFLICT" | "failed" => style::ERROR,
        "unknown" | "sending" | "pending" | "to resolve" | "not sent" => style::WARN,
        _ => Style::new(),
    }
}

/// Wrap `text` in `st` (stripped again by the stream when not colouring).
pub fn paint(st: Style, text: impl std::fmt::Display) -> String {
    format!("{st}{text}{st:#}")
}

/// The process's voice.
pub struct Shell {
    format: Format,
    quiet: bool,
    github: Option<github::Github>,
    out: AutoStream<std::io::Stdout>,
    /// Stdout held back while a listing is written ([`Shell::hold`]): the
    /// same text, styled or stripped as stdout would, written out at once.
    held: Option<AutoStream<Vec<u8>>>,
    err: AutoStream<std::io::Stderr>,
    stderr_terminal: bool,
    command: String,
    summarized: bool,
    group_open: bool,
}

impl Shell {
    /// The shell for `command` with the user's options; under `--output
    /// json` the `version` record is written at once.
    pub fn new(opts: &Options, command: &str) -> Shell {
        let choice = match opts.color {
            ColorWhen::Always => ColorChoice::Always,
            ColorWhen::Never => ColorChoice::Never,
            ColorWhen::Auto => ColorChoice::Auto,
        };
        let github = match opts.ci {
            Some(Ci::Github) => true,
            Some(Ci::None) => false,
            None => std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
        };
        let mut sh = Shell {
            format: opts.output,
            quiet: opts.quiet,
            github: github.then(github::Github::from_env),
            // JSON lines are never coloured.
            out: AutoStream::new(
                std::io::stdout(),
                if opts.output == Format::Json {
                    ColorChoice::Never
                } else {
                    choice
                },
            ),
            held: None,
            err: AutoStream::new(std::io::stderr(), choice),
            stderr_terminal: std::io::stderr().is_terminal(),
            command: command.to_string(),
            summarized: false,
            group_open: false,
        };
        if sh.is_json() {
            let v = json::version(command);
            sh.write_record(&v);
        }
        sh
    }

    /// A shell for library callers and tests: human, plain, no CI.
    pub fn plain(command: &str) -> Shell {
        Shell::new(
            &Options {
                color: ColorWhen::Never,
                ci: Some(Ci::None),
                ..Options::default()
            },
            command,
        )
    }

    /// `--output json`.
    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// `--quiet`.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// The command this shell speaks for.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// GitHub Actions, when hqx runs under it (or `--ci github`).
    pub fn github(&self) -> Option<&github::Github> {
        self.github.as_ref()
    }

    /// Hold stdout back until [`Shell::release`] (or the shell is
    /// dropped): a listing of 100,000 lines is then a few writes, not one
    /// per line (stdout is line-buffered). Anything written to stderr
    /// meanwhile writes what is held first, so the two stay in order; so
    /// does every 64 KiB held. Release it before a progress bar or a wait
    /// on the exchange: a bar draws on stderr by itself, and held lines
    /// would show only after the wait.
    pub fn hold(&mut self) {
        if self.held.is_none() {
            let choice = self.out.current_choice();
            self.held = Some(AutoStream::new(Vec::with_capacity(HELD_BYTES), choice));
        }
    }

    /// Write what [`Shell::hold`] held, and stop holding.
    pub fn release(&mut self) {
        self.flush_held();
        self.held = None;
    }

    /// Write out what is held (it stays held).
    fn flush_held(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let choice = held.current_choice();
        let mut bytes = held.into_inner();
        if !bytes.is_empty() {
            // Styled or stripped already: straight to stdout.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes);
            let _ = out.flush();
            bytes.clear();
        }
        self.held = Some(AutoStream::new(bytes, choice));
    }

    /// A line to stdout: held, or written.
    fn out_line(&mut self, line: std::fmt::Arguments<'_>) {
        match &mut self.held {
            Some(held) => {
                let _ = writeln!(held, "{line}");
                if held.as_inner().len() >= HELD_BYTES {
                    self.flush_held();
                }
            }
            None => {
                let _ = writeln!(self.out, "{line}");
            }
        }
    }

    /// A line to stderr, after what stdout holds.
    fn err_line(&mut self, line: std::fmt::Arguments<'_>) {
        self.flush_held();
        let _ = writeln!(self.err, "{line}");
    }

    /// The human report: stdout, or stderr under `--output json` (where
    /// `--quiet` drops it). `text` may hold styles; a newline is added.
    pub fn say(&mut self, text: &str) {
        if self.is_json() {
            if !self.quiet {
                self.err_line(format_args!("{text}"));
            }
        } else {
            self.out_line(format_args!("{text}"));
        }
    }

    /// [`Shell::say`] of formatted text, without building a `String`.
    pub fn say_fmt(&mut self, text: std::fmt::Arguments<'_>) {
        if self.is_json() {
            if !self.quiet {
                self.err_line(text);
            }
        } else {
            self.out_line(text);
        }
    }

    /// A note for people on stderr (dropped with `--quiet`).
    pub fn status(&mut self, text: &str) {
        if !self.quiet {
            self.err_line(format_args!("{text}"));
        }
    }

    /// A warning on stderr, always shown.
    pub fn warn(&mut self, text: &str) {
        self.err_line(format_args!("{}: {text}", paint(style::WARN, "warning")));
    }

    /// One JSON record (only under `--output json`).
    pub fn record(&mut self, r: json::Record) {
        if self.is_json() {
            self.write_record(&r);
        }
    }

    /// The last record: `r` with `exit_code` and `command` added.
    pub fn summary(&mut self, r: json::Record, exit_code: i32) {
        if self.summarized {
            return;
        }
        self.summarized = true;
        if self.is_json() {
            let r = r
                .field("command", self.command.clone())
                .field("exit_code", exit_code);
            self.write_record(&r);
        }
    }

    /// Whether [`Shell::summary`] was called.
    pub fn summarized(&self) -> bool {
        self.summarized
    }

    fn write_record(&mut self, r: &json::Record) {
        self.out_line(format_args!("{}", r.to_line()));
        if self.held.is_none() {
            let _ = self.out.flush();
        }
    }

    /// A CI line (a workflow command): stdout for people, stderr under
    /// `--output json` so stdout stays JSON lines. GitHub reads both.
    fn ci_line(&mut self, line: &str) {
        if self.is_json() {
            self.err_line(format_args!("{line}"));
        } else {
            self.out_line(format_args!("{line}"));
        }
    }

    /// Start a collapsible group in a GitHub Actions log (`::group::`).
    /// A group open is closed first; the last one is closed when the
    /// command ends (after its errors, so they are inside it).
    pub fn group(&mut self, title: &str) {
        self.end_group();
        if self.github.is_some() {
            self.ci_line(&format!("::group::{}", github::escape_data(title)));
            self.group_open = true;
        }
    }

    /// End the group started by [`Shell::group`], if one is open.
    pub fn end_group(&mut self) {
        if self.group_open {
            self.group_open = false;
            self.ci_line("::endgroup::");
        }
    }

    /// A progress bar on stderr for `total` requests (spinner when
    /// `None`), drawn only on a terminal, not under `--output json` or
    /// `--quiet`, and only after a handful of requests.
    pub fn progress(&self, what: &str, total: Option<u64>, rate_limit: u32) -> Progress {
        let draw = self.stderr_terminal && !self.is_json() && !self.quiet;
        Progress::new(what, total, rate_limit, draw)
    }

    /// Report a failure the way the mode wants it; returns its exit code.
    pub fn fail(&mut self, f: &Failure) -> i32 {
        if let Some(gh) = &self.github {
            let lines: Vec<String> = if f.diagnostics.is_empty() {
                vec![gh.annotation("error", None, &f.message)]
            } else {
                f.diagnostics
                    .iter()
                    .map(|d| gh.annotation("error", Some(d), &d.message))
                    .collect()
            };
            for l in lines {
                self.ci_line(&l);
            }
        }
        if self.is_json() {
            if f.diagnostics.is_empty() {
                let r = json::error(&f.message, None);
                self.write_record(&r);
            } else {
                for d in &f.diagnostics {
                    let r = json::error(&d.message, Some(d));
                    self.write_record(&r);
                }
            }
            // With diagnostics, the message's last line is the overall one.
            let message = match f.diagnostics.is_empty() {
                true => f.message.as_str(),
                false => f.message.lines().last().unwrap_or_default(),
            };
            let s = json::Record::new("summary")
                .field("errors", f.diagnostics.len().max(1))
                .field("message", message);
            self.summary(s, f.code);
        }
        // People read errors on stderr in every mode.
        let text = if f.diagnostics.is_empty() {
            format!("{}: {}", paint(style::ERROR, "error"), f.message)
        } else {
            snippet::render(&f.diagnostics, &f.message)
        };
        self.err_line(format_args!("{text}"));
        self.end_group();
        self.flush_held();
        f.code
    }
}

/// How much [`Shell::hold`] holds before writing it out.
const HELD_BYTES: usize = 64 * 1024;

impl Drop for Shell {
    /// What is held is written when the shell goes: at the end of the
    /// command, on an early return, and when a panic unwinds past it.
    fn drop(&mut self) {
        self.flush_held();
    }
}

/// A problem at a place in a file: a batch error, a limit breached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// 1-based line; 0 for the file as a whole.
    pub line: usize,
    /// 1-based column (characters); 0 with line 0.
    pub column: usize,
    /// The field at fault (`orders[1] (buy-1).price`), or empty.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Diagnostic {
    /// The order the field belongs to (`buy-1` for `orders[1] (buy-1).price`).
    pub fn order_id(&self) -> Option<&str> {
        let rest = self.field.strip_prefix("orders[")?;
        let open = rest.find(" (")?;
        let close = rest[open..].find(')')?;
        Some(&rest[open + 2..open + close])
    }

    /// The group a diagnostic is shown under: `orders[1] (buy-1)`, or the
    /// field's first part.
    pub fn group(&self) -> &str {
        match self.field.find(").") {
            Some(i) if self.field.starts_with("orders[") || self.field.starts_with("queries[") => {
                &self.field[..=i]
            }
            _ => self.field.split('.').next().unwrap_or(""),
        }
    }
}

impl From<&crate::batch::BatchError> for Diagnostic {
    fn from(e: &crate::batch::BatchError) -> Self {
        Diagnostic {
            path: e.path.clone(),
            line: e.line,
            column: e.column,
            field: e.field.clone(),
            message: e.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_a_field() {
        let d = |f: &str| Diagnostic {
            path: "b.yaml".into(),
            line: 1,
            column: 1,
            field: f.into(),
            message: String::new(),
        };
        assert_eq!(d("orders[1] (buy-1).price").order_id(), Some("buy-1"));
        assert_eq!(d("orders[1] (buy-1).price").group(), "orders[1] (buy-1)");
        assert_eq!(d("defaults.pair").order_id(), None);
        assert_eq!(d("defaults.pair").group(), "defaults");
        assert_eq!(d("").group(), "");
    }
}
