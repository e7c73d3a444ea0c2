//! Fans committed projection changes out to live watches.
//!
//! The projection runner NOTIFYs inside each applying transaction; one listener per process
//! turns those notifications into a broadcast. Because the signal travels through Postgres, a
//! watch on any replica hears changes applied by any other.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ics_projection::change_channel;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// One applied event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The projection that applied it.
    pub projection: String,
    pub organisation: String,
    pub event_type: String,
    pub event_id: String,
}

impl Change {
    fn parse(projection: &str, payload: &str) -> Self {
        let mut parts = payload.splitn(3, '\t');
        Change {
            projection: projection.to_string(),
            organisation: parts.next().unwrap_or_default().to_string(),
            event_type: parts.next().unwrap_or_default().to_string(),
            event_id: parts.next().unwrap_or_default().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChangeHub {
    sender: broadcast::Sender<Change>,
    generations: Arc<Generations>,
}

/// How many changes each projection has had since the process started, for caches of views
/// computed from them ([`crate::view_cache`]). Counted only while the listener listens: a
/// change it may have missed (it was reconnecting) moves the epoch, which every view counts.
#[derive(Debug, Default)]
struct Generations {
    listening: AtomicBool,
    epoch: AtomicU64,
    by_projection: HashMap<String, AtomicU64>,
}

impl ChangeHub {
    /// Starts listening for changes of `projections` until `shutdown`, on one connection.
    pub fn start(pool: PgPool, projections: &[&str], shutdown: CancellationToken) -> Self {
        // Slow watchers lag rather than hold memory; a lagged watcher recomputes its view.
        let (sender, _) = broadcast::channel(1024);
        let channels: HashMap<String, String> = projections
            .iter()
            .map(|projection| (change_channel(projection), projection.to_string()))
            .collect();
        let generations = Arc::new(Generations {
            by_projection: projections
                .iter()
                .map(|projection| (projection.to_string(), AtomicU64::new(0)))
                .collect(),
            ..Generations::default()
        });
        let hub = ChangeHub {
            sender,
            generations: generations.clone(),
        };
        let sender = hub.sender.clone();
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                let listened = listen(&pool, &channels, &sender, &generations, &shutdown).await;
                generations.listening.store(false, Ordering::SeqCst);
                if let Err(error) = listened {
                    tracing::warn!(%error, "change listener interrupted; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        });
        hub
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// A number that changes whenever one of `projections` changes; `None` while changes
    /// could go unheard (the listener is not connected), when nothing may be cached.
    pub fn generation(&self, projections: &[&str]) -> Option<u64> {
        let generations = &self.generations;
        if !generations.listening.load(Ordering::SeqCst) {
            return None;
        }
        let changes: u64 = projections
            .iter()
            .filter_map(|projection| generations.by_projection.get(*projection))
            .map(|count| count.load(Ordering::SeqCst))
            .sum();
        // Epochs weigh more than any count of changes could add up to between two reads.
        Some(
            generations
                .epoch
                .load(Ordering::SeqCst)
                .wrapping_mul(1 << 40)
                .wrapping_add(changes),
        )
    }
}

/// `channels` maps each LISTEN channel to its projection's name.
async fn listen(
    pool: &PgPool,
    channels: &HashMap<String, String>,
    sender: &broadcast::Sender<Change>,
    generations: &Generations,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all(channels.keys().map(String::as_str))
        .await?;
    // Changes while it was not listening were not counted: a new epoch outdates every view,
    // and after a reconnection every watch recomputes, as it would on a change it missed.
    let reconnected = generations.epoch.fetch_add(1, Ordering::SeqCst) > 0;
    generations.listening.store(true, Ordering::SeqCst);
    if reconnected {
        for projection in channels.values() {
            let _ = sender.send(Change {
                projection: projection.clone(),
                ..Change::default()
            });
        }
    }
    loop {
        // `try_recv` rather than `recv`: the latter reconnects by itself and loses, without a
        // word, what was notified meanwhile. A lost connection ends this listener instead, and
        // the next one starts a new epoch.
        let notification = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            notification = listener.try_recv() => match notification? {
                Some(notification) => notification,
                None => return Ok(()),
            },
        };
        let projection = channels
            .get(notification.channel())
            .map(String::as_str)
            .unwrap_or_default();
        if let Some(count) = generations.by_projection.get(projection) {
            count.fetch_add(1, Ordering::SeqCst);
        }
        // Nobody watching is fine: the send only fails without receivers.
        let _ = sender.send(Change::parse(projection, notification.payload()));
    }
}
