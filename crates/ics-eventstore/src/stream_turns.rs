//! Commands on one stream take turns within a process.
//!
//! Two commands of one stream decided at once both decide on the same head, and all but one
//! must read and decide again; a stream many clients command (a programme everyone reports to)
//! could then refuse a command that takes any version after [`MAX_DECIDE_ATTEMPTS`] lost
//! races. Taking turns costs nothing the database would not serialise anyway, and each
//! command decides on the state the previous one left in the state cache. Other processes
//! (replicas) still race, and the head guard and unique keys settle that.
//!
//! [`MAX_DECIDE_ATTEMPTS`]: crate::store

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// One lock per stream that some command holds or waits for; none for the others.
#[derive(Debug, Default)]
pub(crate) struct StreamTurns {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A command's turn on its stream, until dropped.
pub(crate) struct Turn {
    turns: Arc<StreamTurns>,
    stream_id: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    held: Option<OwnedMutexGuard<()>>,
}

impl StreamTurns {
    /// Waits for `stream_id`'s turn. Dropping the future while it waits gives up the place.
    pub(crate) async fn take(self: &Arc<Self>, stream_id: &str) -> Turn {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(stream_id.to_owned())
            .or_default()
            .clone();
        // Built before waiting, so that a command cancelled while it waits still lets the
        // stream's lock go (in `drop`).
        let mut turn = Turn {
            turns: self.clone(),
            stream_id: stream_id.to_owned(),
            lock,
            held: None,
        };
        turn.held = Some(turn.lock.clone().lock_owned().await);
        turn
    }

    #[cfg(test)]
    fn streams(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.held.take());
        let mut locks = self
            .turns
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Everyone waiting holds a clone, taken under this mutex: the map's and this one left
        // means nobody waits.
        if Arc::strong_count(&self.lock) == 2 {
            locks.remove(&self.stream_id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_command_of_a_stream_at_a_time_and_no_lock_is_kept_once_nobody_waits() {
        let turns = Arc::new(StreamTurns::default());
        let first = turns.take("organisation-A").await;
        let other = turns.take("organisation-B").await;
        let waiting = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take("organisation-A").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "A's second command waits for the first"
        );
        drop(other);
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("A's second command gets its turn")
            .unwrap();
        assert_eq!(turns.streams(), 1);
        drop(second);
        assert_eq!(turns.streams(), 0);

        // A command cancelled while it waits gives its place up.
        let held = turns.take("organisation-A").await;
        let cancelled =
            tokio::time::timeout(Duration::from_millis(20), turns.take("organisation-A")).await;
        assert!(cancelled.is_err());
        drop(held);
        assert_eq!(turns.streams(), 0);
    }
}
