//! Bounded retry for startup dependencies that may come up after the service does.

use std::time::Duration;

use tokio::time::Instant;

/// How long a service waits at startup for Postgres or NATS before giving up.
pub const STARTUP_RETRY_WINDOW: Duration = Duration::from_secs(30);

const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Exponential backoff (250 ms doubling to 2 s) that runs out after a fixed window.
pub(crate) struct StartupBackoff {
    deadline: Instant,
    next_delay: Duration,
    pub(crate) attempts: u32,
}

impl StartupBackoff {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            deadline: Instant::now() + window,
            next_delay: FIRST_DELAY,
            attempts: 0,
        }
    }

    /// The pause before the next attempt, or `None` once the window is spent.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        self.attempts += 1;
        let now = Instant::now();
        if now >= self.deadline {
            return None;
        }
        let delay = self.next_delay.min(self.deadline - now);
        self.next_delay = (self.next_delay * 2).min(MAX_DELAY);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_its_cap_and_ends_with_the_window() {
        let mut backoff = StartupBackoff::new(Duration::from_secs(5));
        let mut delays = Vec::new();
        while let Some(delay) = backoff.next_delay() {
            delays.push(delay);
            tokio::time::sleep(delay).await;
        }
        assert_eq!(
            delays[..4],
            [
                Duration::from_millis(250),
                Duration::from_millis(500),
                Duration::from_secs(1),
                Duration::from_secs(2),
            ]
        );
        assert_eq!(delays.iter().sum::<Duration>(), Duration::from_secs(5));
    }
}
