//! A progress bar on stderr (indicatif) for runs and reconciles: requests
//! sent, answered and failed, the rate, and the time left at the rate
//! limit. It appears only after a handful of requests, only on a terminal,
//! never under `--output json` or `--quiet` ([`super::Shell::progress`]
//! decides). [`Progress::finish`] clears it so the report starts on a
//! clean line; [`Progress::println`] prints above it (Ctrl-C notes).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::{Observer, RequestEvent};

/// Requests before the bar appears: below this a run is over before a
/// bar would help.
pub const HANDFUL: u64 = 5;

struct Inner {
    /// Made (with stderr as its target) once a handful of requests went:
    /// never re-targeted while other threads draw.
    bar: OnceLock<ProgressBar>,
    what: String,
    total: Option<u64>,
    draw: bool,
    done: AtomicBool,
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
        Progress(Arc::new(Inner {
            bar: OnceLock::new(),
            what: what.to_string(),
            total,
            draw,
            done: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            rate_limit: rate_limit.max(1),
            started: Instant::now(),
        }))
    }

    fn make_bar(&self) -> ProgressBar {
        let i = &self.0;
        let bar = ProgressBar::with_draw_target(i.total, ProgressDrawTarget::stderr());
        let template = if i.total.is_some() {
            "{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg}"
        } else {
            "{spinner} {prefix} {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(i.what.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A callback for [`crate::client::Client::observe`].
    pub fn observer(&self) -> Observer {
        let p = self.clone();
        Arc::new(move |e| p.event(e))
    }

    fn event(&self, e: RequestEvent) {
        let i = &self.0;
        // A request still finishing after the report began must not draw
        // the bar again.
        if i.done.load(Ordering::SeqCst) {
            return;
        }
        match e {
            RequestEvent::Sent => {
                let n = i.sent.fetch_add(1, Ordering::Relaxed) + 1;
                if i.draw && n > HANDFUL {
                    i.bar.get_or_init(|| self.make_bar());
                }
            }
            RequestEvent::Answered { ok } => {
                i.answered.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    i.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(bar) = i.bar.get() {
            let answered = i.answered.load(Ordering::Relaxed);
            if bar.length().is_some_and(|l| answered > l) {
                bar.set_length(answered);
            }
            bar.set_position(answered);
            bar.set_message(self.message(bar));
        }
    }

    fn message(&self, bar: &ProgressBar) -> String {
        let i = &self.0;
        let (sent, answered, failed) = (
            i.sent.load(Ordering::Relaxed),
            i.answered.load(Ordering::Relaxed),
            i.failed.load(Ordering::Relaxed),
        );
        let secs = i.started.elapsed().as_secs_f64().max(0.001);
        let rate = answered as f64 / secs;
        let mut m = format!("sent {sent}, answered {answered}, failed {failed}, {rate:.1}/s");
        if let Some(len) = bar.length() {
            // The limiter sets the pace: never expect more than it allows.
            let pace = rate.min(f64::from(i.rate_limit)).max(0.1);
            let left = len.saturating_sub(answered) as f64 / pace;
            m.push_str(&format!(", ETA {}s", left.ceil() as u64));
        }
        m
    }

    /// Grow the expected total (more requests than planned).
    pub fn add_total(&self, n: u64) {
        if let Some(bar) = self.0.bar.get() {
            bar.inc_length(n);
        }
    }

    /// Print a line above the bar (or plainly when there is no bar).
    pub fn println(&self, text: &str) {
        match self.0.bar.get() {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Remove the bar, leaving the cursor at the start of a clean line.
    pub fn finish(&self) {
        self.0.done.store(true, Ordering::SeqCst);
        if let Some(bar) = self.0.bar.get() {
            bar.finish_and_clear();
        }
    }

    /// Whether the bar has been drawn.
    pub fn was_shown(&self) -> bool {
        self.0.bar.get().is_some()
    }
}
