//! A one-line progress bar on stderr, redrawn with `\r`, for long uploads. It draws only when
//! stderr is a terminal, so logs and pipes get no control characters.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

const WIDTH: usize = 30;
const REDRAW_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    total: usize,
    done: usize,
    started: Instant,
    last_drawn: Option<Instant>,
    enabled: bool,
    finished: bool,
}

impl Progress {
    /// A bar for `total` `what`s (e.g. "rows"), shown only if stderr is a terminal.
    pub fn new(what: &'static str, total: usize) -> Self {
        Self::with_output(what, total, io::stderr().is_terminal())
    }

    pub fn with_output(what: &'static str, total: usize, enabled: bool) -> Self {
        Self {
            what,
            total,
            done: 0,
            started: Instant::now(),
            last_drawn: None,
            enabled,
            finished: false,
        }
    }

    pub fn advance(&mut self, count: usize) {
        self.done = self.done.saturating_add(count).min(self.total);
        let now = Instant::now();
        let due = self
            .last_drawn
            .is_none_or(|last| now.duration_since(last) >= REDRAW_EVERY);
        if due || self.done == self.total {
            self.last_drawn = Some(now);
            self.draw(false);
        }
    }

    /// Ends the bar's line, once; later calls do nothing.
    pub fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.draw(true);
        }
    }

    fn draw(&self, last: bool) {
        if !self.enabled {
            return;
        }
        let line = bar_line(self.what, self.done, self.total, self.started.elapsed());
        let mut stderr = io::stderr().lock();
        // A progress bar that cannot be drawn is not worth failing an upload for.
        let _ = write!(stderr, "\r{line}");
        if last {
            let _ = writeln!(stderr);
        }
        let _ = stderr.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `[#########---------------------]  1500/5000 rows  30%  1234 rows/s`.
pub fn bar_line(what: &str, done: usize, total: usize, elapsed: Duration) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = ((fraction * WIDTH as f64).round() as usize).min(WIDTH);
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        format!("{:.0} {what}/s", done as f64 / seconds)
    } else {
        format!("- {what}/s")
    };
    format!(
        "[{}{}] {done}/{total} {what} {:>3.0}% {rate}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        fraction * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_count_share_and_rate() {
        assert_eq!(
            bar_line("rows", 1500, 5000, Duration::from_secs(2)),
            "[#########---------------------] 1500/5000 rows  30% 750 rows/s"
        );
        assert_eq!(
            bar_line("rows", 0, 0, Duration::ZERO),
            "[##############################] 0/0 rows 100% - rows/s"
        );
    }

    #[test]
    fn a_bar_off_a_terminal_counts_but_draws_nothing() {
        let mut progress = Progress::with_output("rows", 10, false);
        progress.advance(4);
        progress.advance(40);
        assert_eq!(progress.done, 10);
        progress.finish();
        assert!(progress.finished);
    }
}
