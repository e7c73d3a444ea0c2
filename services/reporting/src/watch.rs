//! Fans committed projection changes out to live watches.
//!
//! The projection runner NOTIFYs inside each applying transaction; one listener per process
//! turns those notifications into a broadcast. Because the signal travels through Postgres, a
//! watch on any replica hears changes applied by any other.

use std::time::Duration;

use ics_projection::change_channel;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// One applied event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub organisation: String,
    pub event_type: String,
    pub event_id: String,
}

impl Change {
    fn parse(payload: &str) -> Self {
        let mut parts = payload.splitn(3, '\t');
        Change {
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
    /// Starts listening for changes of `projection` until `shutdown`.
    pub fn start(pool: PgPool, projection: &str, shutdown: CancellationToken) -> Self {
        // Slow watchers lag rather than hold memory; a lagged watcher recomputes its view.
        let (sender, _) = broadcast::channel(1024);
        let channel = change_channel(projection);
        let hub = ChangeHub { sender };
        let sender = hub.sender.clone();
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                if let Err(error) = listen(&pool, &channel, &sender, &shutdown).await {
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

async fn listen(
    pool: &PgPool,
    channel: &str,
    sender: &broadcast::Sender<Change>,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    loop {
        let notification = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            notification = listener.recv() => notification?,
        };
        // Nobody watching is fine: the send only fails without receivers.
        let _ = sender.send(Change::parse(notification.payload()));
    }
}
