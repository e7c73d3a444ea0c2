//! Aggregates' folded states kept in memory between commands, so that a command on a
//! long-lived aggregate (an organisation renamed, rated and linked over years) folds only the
//! events appended since the last command on it, and reads none when this process made them.
//!
//! What is held per stream is the state its [`Fold`] came to, with the version and event id it
//! was folded up to, never the history: a state's size follows the aggregate, not the length of
//! its stream, so streams commanded in turn keep their states however long they grow (a cache
//! of histories, which this replaced, was emptied by exactly that: each stream pushed out the
//! one needed next, and every command read its whole stream).
//!
//! A command on a stream this process holds is decided on the held state, without reading, and
//! its append is guarded: it writes only if the stream's head in the database is still the
//! held version, and the unique keys on `(stream_id, stream_version)` and
//! `(principal, request_id)` refuse a concurrent append or a retried request id. Anything the
//! held state cannot settle (an expected version it does not meet, a refusal, a stopped append)
//! is settled again on the stream as read: the request's recorded result, if any, and the
//! events after the held version, folded on. The read also checks that the database still holds
//! the held event at the held version; a state folded from events the database no longer holds
//! (a restored backup, appended to since) is dropped and the stream folded from its start.
//! After an append the state is folded on with the events as stored. A state is taken out for
//! the length of a command and put back after it; a second command on the same stream
//! meanwhile reads and folds the stream whole.

use std::any::Any;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use uuid::Uuid;

use crate::store::RecordedEvent;

/// Streams whose states a process keeps when its operator does not say otherwise.
pub const DEFAULT_STATE_CACHE_STREAMS: usize = 10_000;

/// How a stream's events fold into the state its commands are decided on: the state before the
/// first event, and the step that takes in one more. The state's type names the fold in the
/// cache, so each stream is folded with one state type; a state of another type found for a
/// stream is dropped, never handed to a decision.
#[derive(Debug)]
pub struct Fold<S, E> {
    initial: S,
    step: fn(S, &RecordedEvent) -> Result<S, E>,
}

impl<S, E> Fold<S, E> {
    pub fn new(initial: S, step: fn(S, &RecordedEvent) -> Result<S, E>) -> Self {
        Fold { initial, step }
    }

    /// The state of a stream with no events.
    pub(crate) fn initial(&self) -> S
    where
        S: Clone,
    {
        self.initial.clone()
    }

    /// `state` after `event`.
    pub(crate) fn apply(&self, state: S, event: &RecordedEvent) -> Result<S, E> {
        (self.step)(state, event)
    }

    /// The fold of a whole history, without the cache.
    pub fn over(self, history: &[RecordedEvent]) -> Result<S, E> {
        let mut state = self.initial;
        for event in history {
            state = (self.step)(state, event)?;
        }
        Ok(state)
    }
}

impl<E> Fold<Vec<RecordedEvent>, E> {
    /// The history itself as the state: for decisions that look at the events (tests of the
    /// store). Its state grows with the stream, so aggregates fold to states of their own.
    pub fn history() -> Self {
        Fold::new(Vec::new(), |mut history, event| {
            history.push(event.clone());
            Ok(history)
        })
    }
}

/// A stream's state as held: what it was folded up to, and the state.
#[derive(Debug)]
pub(crate) struct Held<S> {
    /// The stream version and event the state was folded up to (0 and `None`: no events).
    pub(crate) version: u64,
    pub(crate) event_id: Option<Uuid>,
    pub(crate) state: S,
}

impl<S> Held<S> {
    /// The state of a stream with no events.
    pub(crate) fn empty(state: S) -> Self {
        Held {
            version: 0,
            event_id: None,
            state,
        }
    }

    /// Folds `event`, the stream's next, into the state.
    pub(crate) fn fold_in<E>(self, fold: &Fold<S, E>, event: &RecordedEvent) -> Result<Held<S>, E> {
        Ok(Held {
            version: event.stream_version,
            event_id: Some(event.event_id),
            state: fold.apply(self.state, event)?,
        })
    }
}

struct Entry {
    version: u64,
    event_id: Uuid,
    state: Box<dyn Any + Send>,
}

pub(crate) struct StateCache {
    /// `None` when the budget is 0: nothing is kept.
    streams: Option<Mutex<LruCache<String, Entry>>>,
    budget: usize,
}

impl std::fmt::Debug for StateCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StateCache")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl StateCache {
    /// A cache of the states of at most `budget` streams; 0 keeps none.
    pub(crate) fn new(budget: usize) -> Self {
        StateCache {
            streams: NonZeroUsize::new(budget).map(|capacity| Mutex::new(LruCache::new(capacity))),
            budget,
        }
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    fn streams(&self) -> Option<std::sync::MutexGuard<'_, LruCache<String, Entry>>> {
        // A panic elsewhere cannot leave the map inconsistent: each operation is one call.
        self.streams.as_ref().map(|streams| {
            streams
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        })
    }

    /// The stream's held state, removed from the cache until [`put`](Self::put); `None` when
    /// none is held, or one of another type.
    pub(crate) fn take<S: Send + 'static>(&self, stream_id: &str) -> Option<Held<S>> {
        let entry = self.streams()?.pop(stream_id)?;
        let state = entry.state.downcast::<S>().ok()?;
        Some(Held {
            version: entry.version,
            event_id: Some(entry.event_id),
            state: *state,
        })
    }

    /// Keeps `held` as the stream's state, dropping the least recently used stream beyond the
    /// budget. The state of a stream with no events is not kept: it costs nothing to fold.
    pub(crate) fn put<S: Send + 'static>(&self, stream_id: &str, held: Held<S>) {
        let Some(event_id) = held.event_id else {
            return;
        };
        if let Some(mut streams) = self.streams() {
            streams.put(
                stream_id.to_owned(),
                Entry {
                    version: held.version,
                    event_id,
                    state: Box::new(held.state),
                },
            );
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.streams().map_or(0, |streams| streams.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn held(stream: &str, length: u64) -> Held<Vec<RecordedEvent>> {
        let fold = Fold::<_, ()>::history();
        let mut held = Held::empty(Vec::new());
        for event in RecordedEvent::example_stream(stream, length) {
            held = held.fold_in(&fold, &event).unwrap();
        }
        held
    }

    #[test]
    fn the_least_recently_used_stream_goes_first_and_the_budget_holds() {
        let cache = StateCache::new(3);
        cache.put("a", held("a", 10));
        cache.put("b", held("b", 10));
        cache.put("c", held("c", 10));
        // "a" used again: "b" is now the oldest.
        let a = cache.take::<Vec<RecordedEvent>>("a").unwrap();
        assert_eq!((a.version, a.state.len()), (10, 10));
        cache.put("a", a);
        cache.put("d", held("d", 1));
        assert_eq!(cache.len(), 3);
        assert!(cache.take::<Vec<RecordedEvent>>("b").is_none());
        assert!(cache.take::<Vec<RecordedEvent>>("a").is_some());
        assert!(cache.take::<Vec<RecordedEvent>>("d").is_some());
    }

    #[test]
    fn a_state_is_taken_out_while_a_command_uses_it_and_only_as_its_own_type() {
        let cache = StateCache::new(10);
        cache.put("a", held("a", 3));
        let taken = cache.take::<Vec<RecordedEvent>>("a").unwrap();
        assert_eq!(
            taken.event_id,
            taken.state.last().map(|event| event.event_id)
        );
        assert!(
            cache.take::<Vec<RecordedEvent>>("a").is_none(),
            "a second command folds the stream whole"
        );
        cache.put("a", taken);
        assert!(
            cache.take::<String>("a").is_none(),
            "another type is dropped"
        );
        assert!(cache.take::<Vec<RecordedEvent>>("a").is_none());

        cache.put("empty", Held::empty(Vec::<RecordedEvent>::new()));
        assert_eq!(cache.len(), 0, "a stream with no events is not kept");
        let none = StateCache::new(0);
        none.put("a", held("a", 1));
        assert!(none.take::<Vec<RecordedEvent>>("a").is_none());
    }
}
