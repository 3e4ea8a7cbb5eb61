//! A progress bar on stderr (indicatif) for runs and reconciles: requests
//! sent, answered and failed, the rate, and the time left at the rate
//! limit. It appears only after a handful of requests, only on a terminal,
//! never under `--output json` or `--quiet` ([`super::Shell::progress`]
//! decides). [`Progress::finish`] clears it so the report starts on a
//! clean line; [`Progress::println`] prints above it (Ctrl-C notes).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::{Observer, RequestEvent};

/// Requests before the bar appears: below this a run is over before a
/// bar would help.
pub const HANDFUL: u64 = 5;

struct Inner {
    bar: ProgressBar,
    draw: bool,
    shown: AtomicBool,
    sent: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
    rate_limit: u32,
    started: Instant,
}

/// A progress display; cheap to clone, a no-op when not drawn.
#[derive(Clone)]
pub struct Progress(Arc<Inner>);

impl Progress {
    pub(super) fn new(what: &str, total: Option<u64>, rate_limit: u32, draw: bool) -> Progress {
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::hidden()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
        };
        let template = if total.is_some() {
            "{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg}"
        } else {
            "{spinner} {prefix} {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        Progress(Arc::new(Inner {
            bar,
            draw,
            shown: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            rate_limit: rate_limit.max(1),
            started: Instant::now(),
        }))
    }

    /// A callback for [`crate::client::Client::observe`].
    pub fn observer(&self) -> Observer {
        let p = self.clone();
        Arc::new(move |e| p.event(e))
    }

    fn event(&self, e: RequestEvent) {
        let i = &self.0;
        match e {
            RequestEvent::Sent => {
                let n = i.sent.fetch_add(1, Ordering::Relaxed) + 1;
                if i.draw && n > HANDFUL && !i.shown.swap(true, Ordering::Relaxed) {
                    i.bar.set_draw_target(ProgressDrawTarget::stderr());
                    i.bar.enable_steady_tick(Duration::from_millis(200));
                }
            }
            RequestEvent::Answered { ok } => {
                i.answered.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    i.failed.fetch_add(1, Ordering::Relaxed);
                }
                i.bar.inc(1);
                if i.bar.length().is_some_and(|l| i.bar.position() > l) {
                    i.bar.inc_length(1);
                }
            }
        }
        if i.shown.load(Ordering::Relaxed) {
            i.bar.set_message(self.message());
        }
    }

    fn message(&self) -> String {
        let i = &self.0;
        let (sent, answered, failed) = (
            i.sent.load(Ordering::Relaxed),
            i.answered.load(Ordering::Relaxed),
            i.failed.load(Ordering::Relaxed),
        );
        let secs = i.started.elapsed().as_secs_f64().max(0.001);
        let rate = answered as f64 / secs;
        let mut m = format!("sent {sent}, answered {answered}, failed {failed}, {rate:.1}/s");
        if let Some(len) = i.bar.length() {
            // The limiter sets the pace: never expect more than it allows.
            let pace = rate.min(f64::from(i.rate_limit)).max(0.1);
            let left = len.saturating_sub(answered) as f64 / pace;
            m.push_str(&format!(", ETA {}s", left.ceil() as u64));
        }
        m
    }

    /// Grow the expected total (more requests than planned).
    pub fn add_total(&self, n: u64) {
        self.0.bar.inc_length(n);
    }

    /// Print a line above the bar (or plainly when there is no bar).
    pub fn println(&self, text: &str) {
        self.0.bar.suspend(|| eprintln!("{text}"));
    }

    /// Remove the bar, leaving the cursor at the start of a clean line.
    pub fn finish(&self) {
        self.0.bar.finish_and_clear();
    }

    /// Whether the bar has been drawn.
    pub fn was_shown(&self) -> bool {
        self.0.shown.load(Ordering::Relaxed)
    }
}
