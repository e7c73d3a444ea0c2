//! Aggregate states folded from their streams, kept in memory by stream, so that deciding a
//! command on a long-lived aggregate (an organisation renamed, rated and linked over years)
//! folds only the events after the last fold rather than its whole history.
//!
//! A snapshot answers only a history that still holds the very event it was folded up to, at
//! the same version: events are immutable, so the history before that event is the one the
//! snapshot folded. Any other history (a shorter one, a stream restored and appended to
//! differently, another stream) is folded from the start. The fold's result never depends on
//! whether a snapshot was used.

use std::sync::Mutex;

use lru::LruCache;
use uuid::Uuid;

use crate::store::RecordedEvent;

/// Streams whose folded state is kept when the owner does not say otherwise.
pub const DEFAULT_SNAPSHOT_STREAMS: usize = 10_000;

/// Folded states of up to a number of streams, least recently used dropped first.
#[derive(Debug)]
pub struct Snapshots<S> {
    streams: Mutex<LruCache<String, Snapshot<S>>>,
}

#[derive(Debug)]
struct Snapshot<S> {
    /// The stream version and event the state was folded up to.
    version: u64,
    event_id: Uuid,
    state: S,
}

impl<S: Clone> Snapshots<S> {
    /// Keeps the folded state of at most `streams` streams (at least one).
    pub fn new(streams: usize) -> Self {
        Snapshots {
            streams: Mutex::new(LruCache::new(
                std::num::NonZeroUsize::new(streams).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        }
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, LruCache<String, Snapshot<S>>> {
        // A panic elsewhere cannot leave the map inconsistent: each operation is one call.
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `history` (one stream's events in version order) folded with `step` from `initial`:
    /// from the stream's snapshot when `history` still holds the event it was folded up to,
    /// from `initial` otherwise. The result is kept as the stream's snapshot.
    pub fn fold<E>(
        &self,
        history: &[RecordedEvent],
        initial: S,
        step: impl Fn(S, &RecordedEvent) -> Result<S, E>,
    ) -> Result<S, E> {
        let Some(last) = history.last() else {
            return Ok(initial);
        };
        let resumed = self.streams().get(&last.stream_id).and_then(|snapshot| {
            let index = usize::try_from(snapshot.version).ok()?.checked_sub(1)?;
            let event = history.get(index)?;
            (event.stream_version == snapshot.version && event.event_id == snapshot.event_id)
                .then(|| (snapshot.state.clone(), index + 1))
        });
        let (mut state, from) = resumed.unwrap_or((initial, 0));
        for event in &history[from..] {
            state = step(state, event)?;
        }
        if from < history.len() {
            self.streams().put(
                last.stream_id.clone(),
                Snapshot {
                    version: last.stream_version,
                    event_id: last.event_id,
                    state: state.clone(),
                },
            );
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::cell::Cell;

    /// The fold under test: the payload bytes in order, counting each step taken.
    fn folding(
        steps: &Cell<usize>,
    ) -> impl Fn(Vec<u8>, &RecordedEvent) -> Result<Vec<u8>, ()> + '_ {
        move |mut state, event| {
            steps.set(steps.get() + 1);
            state.extend_from_slice(&event.payload);
            Ok(state)
        }
    }

    fn plain(history: &[RecordedEvent]) -> Vec<u8> {
        history
            .iter()
            .flat_map(|event| event.payload.clone())
            .collect()
    }

    #[test]
    fn a_longer_history_of_the_same_stream_folds_only_its_new_events() {
        let snapshots = Snapshots::new(10);
        let steps = Cell::new(0);
        let stream = RecordedEvent::example_stream("organisation-RTP", 300);
        assert_eq!(
            snapshots.fold(&stream[..200], Vec::new(), folding(&steps)),
            Ok(plain(&stream[..200]))
        );
        assert_eq!(steps.get(), 200);
        steps.set(0);
        assert_eq!(
            snapshots.fold(&stream, Vec::new(), folding(&steps)),
            Ok(plain(&stream))
        );
        assert_eq!(steps.get(), 100, "only the events after the snapshot");
        steps.set(0);
        assert_eq!(
            snapshots.fold(&stream, Vec::new(), folding(&steps)),
            Ok(plain(&stream))
        );
        assert_eq!(steps.get(), 0, "nothing new to fold");
    }

    #[test]
    fn a_history_without_the_snapshots_event_folds_from_the_start() {
        let snapshots = Snapshots::new(10);
        let steps = Cell::new(0);
        let stream = RecordedEvent::example_stream("organisation-RTP", 50);
        snapshots
            .fold(&stream, Vec::new(), folding(&steps))
            .unwrap();

        // Shorter: read through an earlier version.
        steps.set(0);
        assert_eq!(
            snapshots.fold(&stream[..20], Vec::new(), folding(&steps)),
            Ok(plain(&stream[..20]))
        );
        assert_eq!(steps.get(), 20);

        // The same stream restored to version 10 and appended to differently: as long, but
        // another event at the snapshot's version (20, from the shorter fold).
        let mut restored = stream[..10].to_vec();
        restored.extend(RecordedEvent::example_stream("organisation-RTP", 50).split_off(10));
        steps.set(0);
        assert_eq!(
            snapshots.fold(&restored, Vec::new(), folding(&steps)),
            Ok(plain(&restored))
        );
        assert_eq!(steps.get(), 50);

        // Another stream under the same name (histories built in tests have no stream id).
        let other = RecordedEvent::example_stream("organisation-RTP", 60);
        steps.set(0);
        assert_eq!(
            snapshots.fold(&other, Vec::new(), folding(&steps)),
            Ok(plain(&other))
        );
        assert_eq!(steps.get(), 60);
    }

    #[test]
    fn a_failed_step_keeps_nothing_and_the_least_recently_used_stream_goes_first() {
        let snapshots = Snapshots::new(2);
        let steps = Cell::new(0);
        let a = RecordedEvent::example_stream("a", 5);
        let refused = snapshots.fold(&a, Vec::new(), |state, event| {
            if event.stream_version == 3 {
                Err(())
            } else {
                folding(&steps)(state, event)
            }
        });
        assert_eq!(refused, Err(()));
        steps.set(0);
        snapshots.fold(&a, Vec::new(), folding(&steps)).unwrap();
        assert_eq!(steps.get(), 5, "no snapshot of a failed fold");

        let (b, c) = (
            RecordedEvent::example_stream("b", 5),
            RecordedEvent::example_stream("c", 5),
        );
        snapshots.fold(&b, Vec::new(), folding(&steps)).unwrap();
        snapshots.fold(&c, Vec::new(), folding(&steps)).unwrap();
        steps.set(0);
        snapshots.fold(&a, Vec::new(), folding(&steps)).unwrap();
        assert_eq!(steps.get(), 5, "a, least recently used, was dropped");
        steps.set(0);
        snapshots.fold(&c, Vec::new(), folding(&steps)).unwrap();
        assert_eq!(steps.get(), 0, "c is kept");
    }
}
