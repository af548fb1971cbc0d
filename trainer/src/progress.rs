//! Progress of long loops: a bar on a terminal; in a log (stderr is not a terminal), a line when
//! the loop starts and then one at most every [`LOG_EVERY`]. A slow first step (kernels compiled
//! and tuned on a GPU, say) then shows in a log as a start without an end, not as silence.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a log gets a line.
pub const LOG_EVERY: Duration = Duration::from_secs(30);
/// How often the bar's message is renewed (asking for it may wait for a GPU).
const MESSAGE_EVERY: Duration = Duration::from_millis(250);

/// One loop's progress.
pub struct Progress {
    bar: ProgressBar,
    /// When the bar's message was last renewed.
    message_at: Option<Instant>,
    log: Option<LogLines>,
}

struct LogLines {
    label: String,
    unit: &'static str,
    total: u64,
    done: u64,
    start: Instant,
    last: Instant,
}

impl LogLines {
    fn print(&self, message: &str) {
        let sep = if message.is_empty() { "" } else { ", " };
        eprintln!(
            "{}: {}/{} {}{sep}{message} ({:.0} s)",
            self.label,
            self.done,
            self.total,
            self.unit,
            self.start.elapsed().as_secs_f64()
        );
    }
}

impl Progress {
    /// A loop of `total` steps counted in `unit` ("batches"), called `label` ("epoch 1/3");
    /// nothing is shown unless `show`.
    pub fn new(show: bool, label: String, total: u64, unit: &'static str) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = if show && terminal {
            ProgressBar::new(total)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(label.clone());
        let log = (show && !terminal).then(|| {
            let now = Instant::now();
            let lines = LogLines {
                label,
                unit,
                total,
                done: 0,
                start: now,
                last: now,
            };
            lines.print("");
            lines
        });
        Progress {
            bar,
            message_at: None,
            log,
        }
    }

    /// `steps` more done; `message` (the running loss, say) is asked for only when shown.
    pub fn advance(&mut self, steps: u64, message: impl FnOnce() -> String) {
        self.bar.inc(steps);
        let show_bar = !self.bar.is_hidden()
            && self
                .message_at
                .is_none_or(|at| at.elapsed() >= MESSAGE_EVERY);
        let log_due = self.log.as_mut().is_some_and(|log| {
            log.done += steps;
            log.last.elapsed() >= LOG_EVERY
        });
        if !show_bar && !log_due {
            return;
        }
        let message = message();
        if let Some(log) = self.log.as_mut().filter(|_| log_due) {
            log.last = Instant::now();
            log.print(&message);
        }
        if show_bar {
            self.message_at = Some(Instant::now());
            self.bar.set_message(message);
        }
    }

    /// Clears the bar; the caller prints its own summary.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
