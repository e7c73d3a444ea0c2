//! Streams' histories kept in memory between commands, so that a command on a long-lived
//! aggregate (an organisation renamed, rated and linked over years) reads only the events
//! appended since the last command on it, not its whole stream.
//!
//! A command on a stream this process holds is decided on what it holds, without reading, and
//! its append is guarded: it writes only if the stream's head in the database is still the
//! held history's last version, and the unique keys on `(stream_id, stream_version)` and
//! `(principal, request_id)` refuse a concurrent append or a retried request id. Anything the
//! held history cannot settle (an expected version it does not meet, a refusal, a stopped
//! append) is settled again on the stream as read: the request's recorded result, if any, and
//! the events after the held version, with the stream's head, so another process's appends
//! are always seen and a history that the database no longer holds (a restored backup) is
//! dropped. After an append the history is kept with the events as stored. A history is taken
//! out for the length of a command and put back after it; a second command on the same stream
//! meanwhile reads it whole.

use std::sync::Mutex;

use lru::LruCache;

use crate::store::RecordedEvent;

/// Events held across all streams when the store is not told otherwise: some tens of MB.
pub const DEFAULT_HISTORY_CACHE_EVENTS: usize = 100_000;

#[derive(Debug)]
pub(crate) struct HistoryCache {
    inner: Mutex<Inner>,
    budget: usize,
}

#[derive(Debug)]
struct Inner {
    streams: LruCache<String, Vec<RecordedEvent>>,
    events: usize,
}

impl HistoryCache {
    /// A cache of at most `budget` events in all; 0 keeps nothing.
    pub(crate) fn new(budget: usize) -> Self {
        HistoryCache {
            inner: Mutex::new(Inner {
                streams: LruCache::unbounded(),
                events: 0,
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

    /// The stream's cached history, removed from the cache until [`put`](Self::put).
    pub(crate) fn take(&self, stream_id: &str) -> Option<Vec<RecordedEvent>> {
        let mut inner = self.inner();
        let history = inner.streams.pop(stream_id)?;
        inner.events -= history.len();
        Some(history)
    }

    /// Keeps `history` (in version order, from version 1) as the stream's, dropping the least
    /// recently used streams beyond the budget. A stream of more than a quarter of the budget
    /// is not kept: it would push out everything else.
    pub(crate) fn put(&self, stream_id: &str, history: Vec<RecordedEvent>) {
        if history.is_empty() || history.len() > self.budget / 4 {
            return;
        }
        let mut inner = self.inner();
        inner.events += history.len();
        if let Some(replaced) = inner.streams.put(stream_id.to_owned(), history) {
            inner.events -= replaced.len();
        }
        while inner.events > self.budget {
            match inner.streams.pop_lru() {
                Some((_, dropped)) => inner.events -= dropped.len(),
                None => break,
            }
        }
    }

    #[cfg(test)]
    fn events(&self) -> usize {
        self.inner().events
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_least_recently_used_streams_go_first_and_the_budget_holds() {
        let cache = HistoryCache::new(40);
        cache.put("a", RecordedEvent::example_stream("a", 10));
        cache.put("b", RecordedEvent::example_stream("b", 10));
        cache.put("c", RecordedEvent::example_stream("c", 10));
        // "a" used again: "b" is now the oldest.
        let a = cache.take("a").unwrap();
        cache.put("a", a);
        cache.put("d", RecordedEvent::example_stream("d", 10));
        cache.put("e", RecordedEvent::example_stream("e", 5));
        assert!(cache.events() <= 40);
        assert!(
            cache.take("b").is_none(),
            "the least recently used went first"
        );
        assert_eq!(cache.take("a").unwrap().len(), 10);
        assert_eq!(cache.take("e").unwrap().len(), 5);
    }

    #[test]
    fn a_history_is_taken_out_while_a_command_uses_it_and_long_ones_are_not_kept() {
        let cache = HistoryCache::new(40);
        cache.put("a", RecordedEvent::example_stream("a", 3));
        assert_eq!(cache.take("a").unwrap().len(), 3);
        assert!(
            cache.take("a").is_none(),
            "a second command reads the stream whole"
        );
        cache.put("long", RecordedEvent::example_stream("long", 11));
        assert!(cache.take("long").is_none());
        assert_eq!(cache.events(), 0);
        let none = HistoryCache::new(0);
        none.put("a", RecordedEvent::example_stream("a", 1));
        assert!(none.take("a").is_none());
    }
}
