//! Views computed once and served again until a projection they read changes: a board's
//! overview, outcomes or measure view asked a thousand times between two changes is computed
//! once. An entry holds the [`ChangeHub::generation`] of the projections its view reads, taken
//! before computing it, so a change during the computation outdates it at once. Nothing is
//! cached while changes could go unheard, and no entry is served after [`MAX_AGE`].
//!
//! A read between a projection's commit and its notification (milliseconds) may still get the
//! view from just before: the same answer as a read that came a moment earlier.
//!
//! One computation per view at a time: reads that miss while it runs take the view it replaces
//! when no projection has changed since (it only grew old), and otherwise wait for it and take
//! its result, rather than each computing the same view at once (which, for an ICS with 20,000
//! workshops read 2,000 times a second, would exhaust the database pool).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ics_service_kit::error::ServiceError;

use crate::watch::ChangeHub;

/// The longest an entry is served, whatever the notifications say: a bound on any staleness a
/// lost notification could cause. Notifications are transactional and a reconnect outdates
/// every entry, so this is a backstop, not how views follow changes; each expiry costs one
/// read the view's computation (tens of milliseconds for an ICS-scale measure view).
pub const MAX_AGE: Duration = Duration::from_secs(60);

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
    /// Held while a view is computed.
    computing: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> ViewCache<K, V> {
    pub fn new(changes: ChangeHub, projections: &'static [&'static str]) -> Self {
        ViewCache {
            changes,
            projections,
            entries: Mutex::new(HashMap::new()),
            computing: Mutex::new(HashMap::new()),
        }
    }

    /// The cached view of `key` when it is of `generation` and young enough.
    fn cached(&self, key: &K, generation: Option<u64>) -> Option<V> {
        self.of_generation(key, generation, MAX_AGE)
    }

    /// The cached view of `key` when it is of `generation` and younger than `age`.
    fn of_generation(&self, key: &K, generation: Option<u64>, age: Duration) -> Option<V> {
        let generation = generation?;
        let entries = self.entries();
        let entry = entries.get(key)?;
        (entry.generation == generation && entry.computed_at.elapsed() < age)
            .then(|| entry.view.clone())
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The view of `key`: the cached one while no projection it reads has changed, else
    /// `compute`d (and kept), once however many ask at the same time.
    pub async fn get_or_compute<F, Fut>(&self, key: K, compute: F) -> Result<V, ServiceError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, ServiceError>>,
    {
        if let Some(view) = self.cached(&key, self.changes.generation(self.projections)) {
            return Ok(view);
        }
        let lock = self
            .computing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _computing = match lock.try_lock() {
            Ok(computing) => computing,
            Err(_) => {
                // Another read is computing it. When nothing has changed since the view held
                // (it only grew old), that view is still the answer; after a change, wait.
                let generation = self.changes.generation(self.projections);
                if let Some(view) = self.of_generation(&key, generation, MAX_AGE * 2) {
                    return Ok(view);
                }
                lock.lock().await
            }
        };
        // Whoever held the lock may have just computed it.
        let generation = self.changes.generation(self.projections);
        if let Some(view) = self.cached(&key, generation) {
            return Ok(view);
        }
        let computed_at = Instant::now();
        let view = compute().await?;
        if let Some(generation) = generation {
            let mut entries = self.entries();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
                self.computing
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .clear();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ics_testing::TestDatabase;
    use tokio_util::sync::CancellationToken;

    use super::*;

    const PROJECTION: &str = "overview";

    /// Fifty reads at once compute the view once; a change of the projection it reads makes
    /// the next read compute it again, and a change of another projection does not.
    #[tokio::test]
    async fn a_view_is_computed_once_for_many_readers_and_again_after_a_change() {
        let database = TestDatabase::create().await;
        let pool = database.pool("reporting").await;
        let shutdown = CancellationToken::new();
        let changes = ChangeHub::start(pool.clone(), &[PROJECTION, "outcomes"], shutdown.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while changes.generation(&[PROJECTION]).is_none() {
            assert!(Instant::now() < deadline, "the listener never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cache = Arc::new(ViewCache::<&str, usize>::new(
            changes.clone(),
            &[PROJECTION],
        ));
        let computed = Arc::new(AtomicUsize::new(0));
        let read = || {
            let (cache, computed) = (cache.clone(), computed.clone());
            async move {
                cache
                    .get_or_compute("ics:QWO", || async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(computed.fetch_add(1, Ordering::SeqCst) + 1)
                    })
                    .await
                    .unwrap()
            }
        };
        let readers: Vec<_> = (0..50).map(|_| tokio::spawn(read())).collect();
        for reader in readers {
            assert_eq!(reader.await.unwrap(), 1);
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1);

        let notify = |projection: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT pg_notify($1, 'QWO\tics.events.v1.OrganisationRenamed\tid')")
                    .bind(ics_projection::change_channel(projection))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        };
        // Another projection's change: the view stands.
        notify("outcomes").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(read().await, 1);
        // Its own projection's change: computed again, once.
        let before = changes.generation(&[PROJECTION]);
        notify(PROJECTION).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while changes.generation(&[PROJECTION]) == before {
            assert!(Instant::now() < deadline, "the change was never heard");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(read().await, 2);
        assert_eq!(read().await, 2);
        shutdown.cancel();
        database.drop_database().await;
    }
}
