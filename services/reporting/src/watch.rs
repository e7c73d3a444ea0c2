//! Fans committed projection changes out to live watches.
//!
//! The projection runner NOTIFYs inside each applying transaction; one listener per process
//! turns those notifications into a broadcast. Because the signal travels through Postgres, a
//! watch on any replica hears changes applied by any other.

use std::collections::HashMap;
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
        let hub = ChangeHub { sender };
        let sender = hub.sender.clone();
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                if let Err(error) = listen(&pool, &channels, &sender, &shutdown).await {
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
}

/// `channels` maps each LISTEN channel to its projection's name.
async fn listen(
    pool: &PgPool,
    channels: &HashMap<String, String>,
    sender: &broadcast::Sender<Change>,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all(channels.keys().map(String::as_str))
        .await?;
    loop {
        let notification = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            notification = listener.recv() => notification?,
        };
        let projection = channels
            .get(notification.channel())
            .map(String::as_str)
            .unwrap_or_default();
        // Nobody watching is fine: the send only fails without receivers.
        let _ = sender.send(Change::parse(projection, notification.payload()));
    }
}
