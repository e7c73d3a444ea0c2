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
//! After an append the events as stored are kept beside the state and folded in by the next
//! command on the stream, not at once: a stream commanded once (a series back-loaded in one
//! call) never pays for a fold nobody reads, and the decision already made the state after it
//! its own way. A state is taken out for the length of a command and put back after it; a
//! second command on the same stream meanwhile reads and folds the stream whole.
//!
//! The cache is bounded in bytes, by the states' weights as their folds estimate them (a series
//! weighs its observations; other aggregates count a kilobyte) and the events not yet folded
//! in, least recently used first.

use std::any::Any;
use std::sync::Mutex;

use lru::LruCache;
use uuid::Uuid;

use crate::store::RecordedEvent;

/// Bytes of states a process keeps when its operator does not say otherwise.
pub const DEFAULT_STATE_CACHE_BYTES: usize = 64 << 20;

/// What a state weighs when its fold does not say: an aggregate of a few strings and lists.
pub const DEFAULT_STATE_BYTES: usize = 1 << 10;

/// What an event not yet folded in weighs besides its payload: its metadata and bookkeeping.
const EVENT_OVERHEAD_BYTES: usize = 512;

/// How a stream's events fold into the state its commands are decided on: the state before the
/// first event, the step that takes in one more, and what a state weighs in memory. The
/// state's type names the fold in the cache, so each stream is folded with one state type; a
/// state of another type found for a stream is dropped, never handed to a decision.
#[derive(Debug)]
pub struct Fold<S, E> {
    initial: S,
    step: fn(S, &RecordedEvent) -> Result<S, E>,
    weigh: fn(&S) -> usize,
}

impl<S, E> Fold<S, E> {
    /// A fold whose states weigh [`DEFAULT_STATE_BYTES`] each.
    pub fn new(initial: S, step: fn(S, &RecordedEvent) -> Result<S, E>) -> Self {
        Fold {
            initial,
            step,
            weigh: |_| DEFAULT_STATE_BYTES,
        }
    }

    /// The fold with states weighed by `weigh` (their approximate bytes in memory): for
    /// aggregates whose states grow, such as a series with its observations.
    pub fn weighed(self, weigh: fn(&S) -> usize) -> Self {
        Fold { weigh, ..self }
    }

    /// The state of a stream with no events.
    pub(crate) fn initial(&self) -> S
    where
        S: Clone,
    {
        self.initial.clone()
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
        .weighed(|history| history.iter().map(event_bytes).sum())
    }
}

fn event_bytes(event: &RecordedEvent) -> usize {
    event.payload.len() + EVENT_OVERHEAD_BYTES
}

/// A stream's state as held: the state, the events after it not yet folded in, and the version
/// and event the two reach together.
#[derive(Debug)]
pub(crate) struct Held<S> {
    /// The stream version and event the state and `unfolded` reach (0 and `None`: no events).
    pub(crate) version: u64,
    pub(crate) event_id: Option<Uuid>,
    state: S,
    unfolded: Vec<RecordedEvent>,
}

impl<S> Held<S> {
    /// The state of a stream with no events.
    pub(crate) fn empty(state: S) -> Self {
        Held {
            version: 0,
            event_id: None,
            state,
            unfolded: Vec::new(),
        }
    }

    /// The state with every event held folded in: what a decision is made on.
    pub(crate) fn settled<E>(mut self, fold: &Fold<S, E>) -> Result<Held<S>, E> {
        for event in std::mem::take(&mut self.unfolded) {
            self.state = (fold.step)(self.state, &event)?;
        }
        Ok(self)
    }

    /// The settled state (see [`settled`](Self::settled)).
    pub(crate) fn state(&self) -> &S {
        &self.state
    }

    /// Folds `event`, the stream's next, into the state (settled first).
    pub(crate) fn fold_in<E>(self, fold: &Fold<S, E>, event: &RecordedEvent) -> Result<Held<S>, E> {
        let settled = self.settled(fold)?;
        Ok(Held {
            version: event.stream_version,
            event_id: Some(event.event_id),
            state: (fold.step)(settled.state, event)?,
            unfolded: Vec::new(),
        })
    }

    /// `events`, the stream's next as stored, kept to be folded in by whoever needs them next.
    pub(crate) fn appended(mut self, events: Vec<RecordedEvent>) -> Held<S> {
        if let Some(last) = events.last() {
            self.version = last.stream_version;
            self.event_id = Some(last.event_id);
        }
        self.unfolded.extend(events);
        self
    }
}

struct Entry {
    version: u64,
    event_id: Uuid,
    state: Box<dyn Any + Send>,
    unfolded: Vec<RecordedEvent>,
    weight: usize,
}

pub(crate) struct StateCache {
    inner: Mutex<Inner>,
    budget: usize,
}

struct Inner {
    streams: LruCache<String, Entry>,
    bytes: usize,
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
    /// A cache of states weighing at most `budget` bytes in all; 0 keeps none.
    pub(crate) fn new(budget: usize) -> Self {
        StateCache {
            inner: Mutex::new(Inner {
                streams: LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
        }
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the map inconsistent: each operation is one call.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stream's held state, removed from the cache until [`put`](Self::put); `None` when
    /// none is held, or one of another type.
    pub(crate) fn take<S: Send + 'static>(&self, stream_id: &str) -> Option<Held<S>> {
        let entry = {
            let mut inner = self.inner();
            let entry = inner.streams.pop(stream_id)?;
            inner.bytes -= entry.weight;
            entry
        };
        let state = entry.state.downcast::<S>().ok()?;
        Some(Held {
            version: entry.version,
            event_id: Some(entry.event_id),
            state: *state,
            unfolded: entry.unfolded,
        })
    }

    /// Keeps `held` as the stream's state, weighed by `fold`, dropping the least recently used
    /// streams beyond the budget. The state of a stream with no events is not kept (it costs
    /// nothing to fold), nor one weighing more than a quarter of the budget (it would push out
    /// everything else).
    pub(crate) fn put<S: Send + 'static, E>(
        &self,
        stream_id: &str,
        held: Held<S>,
        fold: &Fold<S, E>,
    ) {
        let Some(event_id) = held.event_id else {
            return;
        };
        let weight =
            (fold.weigh)(&held.state) + held.unfolded.iter().map(event_bytes).sum::<usize>();
        if weight > self.budget / 4 {
            return;
        }
        let mut inner = self.inner();
        inner.bytes += weight;
        let entry = Entry {
            version: held.version,
            event_id,
            state: Box::new(held.state),
            unfolded: held.unfolded,
            weight,
        };
        if let Some(replaced) = inner.streams.put(stream_id.to_owned(), entry) {
            inner.bytes -= replaced.weight;
        }
        while inner.bytes > self.budget {
            match inner.streams.pop_lru() {
                Some((_, dropped)) => inner.bytes -= dropped.weight,
                None => break,
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner().streams.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A fold counting its events, each state weighing 100 bytes.
    fn counting() -> Fold<u64, ()> {
        Fold::new(0, |count, _| Ok(count + 1)).weighed(|_| 100)
    }

    fn held(stream: &str, length: u64) -> Held<u64> {
        let fold = counting();
        let mut held = Held::empty(0);
        for event in RecordedEvent::example_stream(stream, length) {
            held = held.fold_in(&fold, &event).unwrap();
        }
        held
    }

    #[test]
    fn the_least_recently_used_stream_goes_first_and_the_budget_holds() {
        let fold = counting();
        let cache = StateCache::new(400);
        cache.put("a", held("a", 10), &fold);
        cache.put("b", held("b", 10), &fold);
        cache.put("c", held("c", 10), &fold);
        // "a" used again: "b" is now the oldest.
        let a = cache.take::<u64>("a").unwrap();
        assert_eq!((a.version, *a.state()), (10, 10));
        cache.put("a", a, &fold);
        cache.put("d", held("d", 1), &fold);
        cache.put("e", held("e", 1), &fold);
        assert_eq!(cache.len(), 4, "400 bytes hold four states of 100");
        assert!(cache.take::<u64>("b").is_none());
        assert!(cache.take::<u64>("a").is_some());
        assert!(cache.take::<u64>("e").is_some());
    }

    #[test]
    fn appended_events_are_folded_in_when_the_state_is_next_needed_and_weigh_meanwhile() {
        let fold = counting();
        let cache = StateCache::new(20_000);
        let stream = RecordedEvent::example_stream("a", 15);
        let mut first = Held::empty(0);
        for event in &stream[..2] {
            first = first.fold_in(&fold, event).unwrap();
        }
        let held = first.appended(stream[2..5].to_vec());
        assert_eq!((held.version, held.event_id), (5, Some(stream[4].event_id)));
        assert_eq!(*held.state(), 2, "not folded yet");
        cache.put("a", held, &fold);
        let taken = cache.take::<u64>("a").unwrap().settled(&fold).unwrap();
        assert_eq!((taken.version, *taken.state()), (5, 5));
        // Ten events not folded in (513 bytes each here) and the state weigh more than a
        // quarter of the budget.
        let heavy = taken.appended(stream[5..].to_vec());
        cache.put("a", heavy, &fold);
        assert_eq!(
            cache.len(),
            0,
            "a state weighing over a quarter of the budget is not kept"
        );
    }

    #[test]
    fn a_state_is_taken_out_while_a_command_uses_it_and_only_as_its_own_type() {
        let fold = counting();
        let cache = StateCache::new(1_000);
        cache.put("a", held("a", 3), &fold);
        let taken = cache.take::<u64>("a").unwrap();
        assert!(
            cache.take::<u64>("a").is_none(),
            "a second command folds the stream whole"
        );
        cache.put("a", taken, &fold);
        assert!(
            cache.take::<String>("a").is_none(),
            "another type is dropped"
        );
        assert!(cache.take::<u64>("a").is_none());

        cache.put("empty", Held::empty(0), &fold);
        assert_eq!(cache.len(), 0, "a stream with no events is not kept");
        let none = StateCache::new(0);
        none.put("a", held("a", 1), &fold);
        assert!(none.take::<u64>("a").is_none());
    }
}
