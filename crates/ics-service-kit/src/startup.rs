//! The event log of a service that records events: its store and the relay publishing it, with
//! the stream settings (replicas, duplicate window) from the one configuration every service
//! shares. Started by [`crate::host::ServiceHost`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ics_eventstore::EventStore;
use ics_eventstore::relay::{Relay, RelayConfig};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::CommonConfig;
use crate::supervisor::keep_running;

/// A service's event store, with its relay running (and restarted if it dies) until shutdown.
#[derive(Debug)]
pub struct EventLog {
    pub store: EventStore,
    /// For the admin API (re-publishing, verifying); already running.
    pub relay: Relay,
    relay_task: JoinHandle<()>,
}

impl EventLog {
    /// The store of the log in the pool's schema, and its relay, started.
    pub fn start(
        common: &CommonConfig,
        service: &str,
        pool: PgPool,
        nats: async_nats::Client,
        shutdown: &CancellationToken,
    ) -> EventLog {
        let store = EventStore::new(pool, service)
            .with_state_cache(usize::try_from(common.state_cache_mb << 20).unwrap_or(usize::MAX));
        let relay_config = RelayConfig {
            replicas: usize::from(common.stream_replicas),
            duplicate_window: std::time::Duration::from_secs(common.duplicate_window_secs),
            trace: Some(ics_eventstore::relay::TraceHooks {
                continue_trace: crate::telemetry::continue_stored_trace,
                current_traceparent: crate::telemetry::current_traceparent,
            }),
            ..RelayConfig::new(&common.subject_prefix)
        };
        let relay = Relay::new(store.clone(), nats, relay_config);
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
        EventLog {
            store,
            relay,
            relay_task,
        }
    }

    /// Waits for the relay to stop (after shutdown was cancelled).
    pub async fn stopped(self) {
        let _ = self.relay_task.await;
    }
}
