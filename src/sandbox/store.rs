//! The state file: an append-only JSON-lines log of [`Event`]s.
//!
//! Why a log: the sandbox must sustain thousands of placements per second
//! and survive `kill -9` of the process hosting it. Appending one line per
//! change costs O(1) and one `write(2)`; the line is written before the
//! answer is sent, so whatever a client saw acknowledged is in the file
//! (in the kernel's page cache at least, which survives a killed process).
//! A crash can tear only the line being written; replay ignores that last
//! line and cuts it off, so later appends start on a clean line. The
//! file is locked while a sandbox holds it: one file, one sandbox.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::Path;

use rust_decimal::Decimal;

use super::exchange::{Event, Exchange};
use super::{Control, SandboxError};

/// The open state file, positioned for appending.
pub(super) struct StateLog {
    file: File,
    /// Bytes known to hold whole lines: where a failed append is cut back to.
    len: u64,
}

impl StateLog {
    /// Open (or create) the state file at `path`, replay it into `books`,
    /// and cut off a torn last line. Returns the log for appending.
    pub(super) fn open(path: &Path, books: &mut Exchange) -> Result<StateLog, SandboxError> {
        let err = |message: String| SandboxError::State {
            path: path.to_path_buf(),
            message,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| err(format!("cannot open: {e}")))?;
        // Two sandboxes appending to one file would hand out the same ids.
        // The lock goes with the file handle, so a killed process frees it.
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(err(
                    "is in use by another running sandbox (one state file serves one sandbox at a time)"
                        .into(),
                ))
            }
            Err(TryLockError::Error(e)) => {
                tracing::warn!(path = %path.display(), "cannot lock the sandbox state file: {e}");
            }
        }
        let bytes = {
            let mut v = Vec::new();
            io::Read::read_to_end(&mut file, &mut v)
                .map_err(|e| err(format!("cannot read: {e}")))?;
            v
        };
        let good = replay(&bytes, books).map_err(err)?;
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                bytes = bytes.len() - good,
                "sandbox state file ends with a torn line; ignoring it"
            );
            file.set_len(good as u64)
                .map_err(|e| err(format!("cannot cut off the torn last line: {e}")))?;
        }
        Ok(StateLog {
            file,
            len: good as u64,
        })
    }

    /// Append one event as one line, in one write. On failure, cut the
    /// file back so no partial line is left for later lines to follow.
    pub(super) fn append(&mut self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        match self.file.write_all(&line) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}

/// Apply every whole line of `bytes` to `books`; returns how many leading
/// bytes hold good lines. The last line may be torn (no newline, or not
/// valid JSON): it is left out. A bad line before the last is an error.
fn replay(bytes: &[u8], books: &mut Exchange) -> Result<usize, String> {
    let mut good = 0;
    let mut line_no = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        line_no += 1;
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            // No newline: the write was cut short.
            break;
        };
        let line = &rest[..nl];
        let is_last = nl + 1 == rest.len();
        if !line.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Event>(line) {
                Ok(ev) => books
                    .apply(ev)
                    .map_err(|e| format!("line {line_no}: {e}"))?,
                Err(_) if is_last => break,
                Err(e) => {
                    return Err(format!(
                        "line {line_no} is not a sandbox event ({e}); the file is damaged or not a sandbox state file"
                    ))
                }
            }
        }
        good += nl + 1;
        rest = &rest[nl + 1..];
    }
    Ok(good)
}

/// The books and the file that keeps them: the one thing behind the
/// sandbox's state mutex.
pub(super) struct Books {
    /// The books as they stand.
    pub(super) exchange: Exchange,
    log: Option<StateLog>,
    /// Actions waiting for a number of trades pages to be answered
    /// (see `Sandbox::after_trades_pages`); not kept in the state file.
    pub(super) triggers: Vec<Trigger>,
}

/// An action armed to run once `pages` more trades pages are answered.
pub(super) struct Trigger {
    pub(super) pages: u32,
    pub(super) action: Control,
}

impl Books {
    /// Fresh books, or the books replayed from `path`; new fills pay
    /// `fee_rate`.
    pub(super) fn open(path: Option<&Path>, fee_rate: Decimal) -> Result<Books, SandboxError> {
        let mut exchange = Exchange::new(fee_rate);
        let log = path.map(|p| StateLog::open(p, &mut exchange)).transpose()?;
        Ok(Books {
            exchange,
            log,
            triggers: Vec::new(),
        })
    }

    /// Make a decided event durable (written to the state file), then
    /// apply it. Nothing changes if the write fails.
    pub(super) fn commit(&mut self, event: Event) -> Result<(), String> {
        if let Some(log) = &mut self.log {
            log.append(&event)
                .map_err(|e| format!("cannot write the sandbox state file: {e}"))?;
        }
        self.exchange.apply(event)
    }
}
