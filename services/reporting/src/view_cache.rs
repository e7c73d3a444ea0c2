//! Views computed once and served again until a projection they read changes: a board's
//! overview, outcomes or measure view asked a thousand times between two changes is computed
//! once. An entry holds the [`ChangeHub::generation`] of the projections its view reads, taken
//! before computing it, so a change during the computation outdates it at once. Nothing is
//! cached while changes could go unheard, and no entry is served after [`MAX_AGE`].
//!
//! A read between a projection's commit and its notification (milliseconds) may still get the
//! view from just before: the same answer as a read that came a moment earlier.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ics_service_kit::error::ServiceError;

use crate::watch::ChangeHub;

/// The longest an entry is served, whatever the notifications say: a bound on any staleness a
/// lost notification could cause.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// Entries held at most; beyond, the cache starts again empty (scopes × dates × peer groups
/// are few in practice).
const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
struct Entry<V> {
    generation: u64,
    computed_at: Instant,
    view: V,
}

#[derive(Debug)]
pub struct ViewCache<K, V> {
    changes: ChangeHub,
    /// The projections every view of this cache reads.
    projections: &'static [&'static str],
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: Eq + Hash, V: Clone> ViewCache<K, V> {
    pub fn new(changes: ChangeHub, projections: &'static [&'static str]) -> Self {
        ViewCache {
            changes,
            projections,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The view of `key`: the cached one while no projection it reads has changed, else
    /// `compute`d (and kept).
    pub async fn get_or_compute<F, Fut>(&self, key: K, compute: F) -> Result<V, ServiceError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, ServiceError>>,
    {
        let generation = self.changes.generation(self.projections);
        if let Some(generation) = generation
            && let Some(entry) = self.entries().get(&key)
            && entry.generation == generation
            && entry.computed_at.elapsed() < MAX_AGE
        {
            return Ok(entry.view.clone());
        }
        let computed_at = Instant::now();
        let view = compute().await?;
        if let Some(generation) = generation {
            let mut entries = self.entries();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                key,
                Entry {
                    generation,
                    computed_at,
                    view: view.clone(),
                },
            );
        }
        Ok(view)
    }
}
