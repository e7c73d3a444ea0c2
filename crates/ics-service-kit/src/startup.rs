//! The start-up every event-sourced service shares: its schema (created and migrated), its event
//! store, NATS, and the relay publishing its log — one place, so a setting such as the stream
//! replicas reaches every service.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ics_eventstore::identity::{Identity, record_identity};
use ics_eventstore::relay::{Relay, RelayConfig};
use ics_eventstore::{EventStore, migrate};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::CommonConfig;
use crate::db::connect_postgres;
use crate::nats::connect_nats;
use crate::supervisor::keep_running;

/// A service's storage and event log, with its relay running until shutdown.
#[derive(Debug)]
pub struct EventLog {
    pub pool: PgPool,
    pub store: EventStore,
    pub nats: async_nats::Client,
    /// For the admin API (re-publishing); already running.
    pub relay: Relay,
    /// Whether the schema was restored from a backup taken elsewhere: the service's
    /// projections must then replay their streams (see `ics_eventstore::identity`).
    pub identity: Identity,
    relay_task: JoinHandle<()>,
}

impl EventLog {
    /// Connects to the service's schema, applies the projection runner's and the service's
    /// `migrations`, connects to NATS and starts the relay.
    pub async fn start(
        common: &CommonConfig,
        service: &str,
        migrations: &[(&str, &str)],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<EventLog> {
        let pool = connect_postgres(
            &common.database_url,
            service,
            common.db_max_connections,
            shutdown,
        )
        .await?;
        migrate(&pool, &[ics_projection::MIGRATIONS, migrations].concat()).await?;
        let identity = record_identity(&pool).await?;
        let store = EventStore::new(pool.clone(), service);
        let nats = connect_nats(&common.nats_url).await?;
        let relay_config = RelayConfig {
            replicas: usize::from(common.stream_replicas),
            duplicate_window: std::time::Duration::from_secs(common.duplicate_window_secs),
            ..RelayConfig::new(&common.subject_prefix)
        };
        let relay = Relay::new(store.clone(), nats.clone(), relay_config);
        let relay_task = {
            let relay = relay.clone();
            let stop = shutdown.clone();
            tokio::spawn(keep_running(
                format!("relay {service}"),
                shutdown.clone(),
                Arc::new(AtomicU64::new(0)),
                move || relay.clone().run(stop.clone()),
            ))
        };
        Ok(EventLog {
            pool,
            store,
            nats,
            relay,
            identity,
            relay_task,
        })
    }

    /// Waits for the relay to stop (after shutdown was cancelled).
    pub async fn stopped(self) {
        let _ = self.relay_task.await;
    }
}
