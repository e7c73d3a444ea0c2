//! The process's Prometheus metrics, served at `GET /metrics` on the HTTP surface
//! (`ICS_HTTP_LISTEN`) in the OpenMetrics text format, which Prometheus scrapes natively.
//!
//! One registry per process, so that `icsd all` serves every service's figures from its one
//! HTTP listener, each labelled with its `service`:
//!
//! - `ics_rpc_requests_total` and `ics_rpc_duration_seconds` by service, method and gRPC code,
//!   counted by the gRPC server as each call's response head is ready;
//! - `ics_relay_unpublished_events` and `ics_relay_oldest_unpublished_age_seconds`: what the
//!   relay has yet to publish to JetStream, read from the log after its stored checkpoint at
//!   each scrape (so up to the checkpoint interval of published events may count);
//! - `ics_relay_held_back_events` and `ics_relay_oldest_held_back_age_seconds`: those of them
//!   already committed but waiting behind an older transaction still running anywhere in the
//!   PostgreSQL cluster, which the relay must not overtake. A transaction left open stalls
//!   every service's relay on that server; these say so, where the unpublished count alone
//!   would look like a slow relay;
//! - `ics_projection_lag_events`, `ics_projection_consumer_pending`,
//!   `ics_projection_parked_events` and `ics_projection_dead_letters` by service, projection
//!   and source service, from the same check `Verify` runs;
//! - `ics_db_pool_connections` (by state: `idle`, `in_use`) and
//!   `ics_db_pool_max_connections`.
//!
//! The page names no tenant and holds no data of one: labels are services, methods,
//! projections and codes only. An unknown method is counted as `unknown`, so a caller cannot
//! grow the label set.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ics_eventstore::EventStore;
use ics_eventstore::relay::Relay;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::admin::{ProjectionAdmin, relay_lag, waited_since};

/// The content type of the page (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets, in seconds: from half a millisecond (a cached read) to ten seconds (a
/// board pack of a large ICS).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    service: String,
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectionLabels {
    service: String,
    projection: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    service: String,
    state: String,
}

/// What a service exposes to the scrape: its pool, and its log and projections when it has
/// them.
#[derive(Clone)]
pub struct Source {
    pub service: &'static str,
    pub pool: PgPool,
    pub log: Option<(EventStore, Relay)>,
    pub projections: Option<Arc<dyn ProjectionAdmin>>,
}

pub struct Metrics {
    registry: Registry,
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_duration: Family<RpcLabels, Histogram>,
    relay_unpublished: Family<ServiceLabels, Gauge>,
    relay_oldest_age: Family<ServiceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    relay_held_back: Family<ServiceLabels, Gauge>,
    relay_oldest_held_back_age: Family<ServiceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    projection_lag: Family<ProjectionLabels, Gauge>,
    projection_pending: Family<ProjectionLabels, Gauge>,
    projection_parked: Family<ProjectionLabels, Gauge>,
    projection_dead_letters: Family<ProjectionLabels, Gauge>,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_max: Family<ServiceLabels, Gauge>,
    sources: Mutex<Vec<Source>>,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        registry.register(
            "ics_rpc_requests",
            "gRPC calls answered, by service, method and gRPC code",
            rpc_requests.clone(),
        );
        let rpc_duration =
            Family::<RpcLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "ics_rpc_duration_seconds",
            "Time from a call's arrival to its response head (a stream's first message)",
            rpc_duration.clone(),
        );
        let relay_unpublished = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "ics_relay_unpublished_events",
            "Events committed to the log that the relay has not yet published to JetStream",
            relay_unpublished.clone(),
        );
        let relay_oldest_age = Family::default();
        registry.register(
            "ics_relay_oldest_unpublished_age_seconds",
            "Age of the oldest event not yet published (0 when none is waiting)",
            relay_oldest_age.clone(),
        );
        let relay_held_back = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "ics_relay_held_back_events",
            "Committed events the relay cannot publish yet: an older transaction is still running",
            relay_held_back.clone(),
        );
        let relay_oldest_held_back_age = Family::default();
        registry.register(
            "ics_relay_oldest_held_back_age_seconds",
            "Age of the oldest event held back behind a running transaction (0 when none is)",
            relay_oldest_held_back_age.clone(),
        );
        let projection_lag = Family::<ProjectionLabels, Gauge>::default();
        registry.register(
            "ics_projection_lag_events",
            "Events in the source service's log that the projection has not applied",
            projection_lag.clone(),
        );
        let projection_pending = Family::<ProjectionLabels, Gauge>::default();
        registry.register(
            "ics_projection_consumer_pending",
            "Messages of the source stream not yet delivered to or acknowledged by the projection",
            projection_pending.clone(),
        );
        let projection_parked = Family::<ProjectionLabels, Gauge>::default();
        registry.register(
            "ics_projection_parked_events",
            "Events parked until an earlier event of their stream arrives",
            projection_parked.clone(),
        );
        let projection_dead_letters = Family::<ProjectionLabels, Gauge>::default();
        registry.register(
            "ics_projection_dead_letters",
            "Events the projection could not apply, kept for an operator",
            projection_dead_letters.clone(),
        );
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "ics_db_pool_connections",
            "PostgreSQL connections the service's pool holds, by state",
            pool_connections.clone(),
        );
        let pool_max = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "ics_db_pool_max_connections",
            "The most connections the service's pool may open",
            pool_max.clone(),
        );
        Metrics {
            registry,
            rpc_requests,
            rpc_duration,
            relay_unpublished,
            relay_oldest_age,
            relay_held_back,
            relay_oldest_held_back_age,
            projection_lag,
            projection_pending,
            projection_parked,
            projection_dead_letters,
            pool_connections,
            pool_max,
            sources: Mutex::new(Vec::new()),
        }
    }

    /// Counts one call. `path` is the gRPC path (`/ics.trusts.v1.TrustsService/GetOrganisation`);
    /// `code` the gRPC status code the response head carries.
    pub fn observe_call(&self, service: &str, path: &str, code: i32, elapsed: Duration) {
        // UNIMPLEMENTED is only answered for a method that does not exist.
        let method = if code == tonic::Code::Unimplemented as i32 {
            "unknown"
        } else {
            path.trim_start_matches('/')
        };
        let labels = RpcLabels {
            service: service.to_owned(),
            method: method.to_owned(),
            code: format!("{:?}", tonic::Code::from_i32(code)),
        };
        self.rpc_requests.get_or_create(&labels).inc();
        self.rpc_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Reads `source` at every scrape until [`forget`](Self::forget) is called for its service.
    pub fn watch(&self, source: Source) {
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        sources.retain(|known| known.service != source.service);
        sources.push(source);
    }

    pub fn forget(&self, service: &str) {
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        sources.retain(|known| known.service != service);
    }

    /// The page: gauges read afresh from every watched service, then everything encoded.
    pub async fn render(&self) -> String {
        let sources = self
            .sources
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        for source in &sources {
            self.refresh(source).await;
        }
        let mut page = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut page, &self.registry) {
            tracing::warn!(%error, "cannot encode the metrics page");
        }
        page
    }

    async fn refresh(&self, source: &Source) {
        let service = source.service.to_owned();
        let idle = source.pool.num_idle() as i64;
        let open = i64::from(source.pool.size());
        for (state, value) in [("idle", idle), ("in_use", (open - idle).max(0))] {
            self.pool_connections
                .get_or_create(&PoolLabels {
                    service: service.clone(),
                    state: state.to_owned(),
                })
                .set(value);
        }
        self.pool_max
            .get_or_create(&ServiceLabels {
                service: service.clone(),
            })
            .set(i64::from(source.pool.options().get_max_connections()));

        if let Some((store, relay)) = &source.log {
            let labels = ServiceLabels {
                service: service.clone(),
            };
            let count = |events: u64| i64::try_from(events).unwrap_or(i64::MAX);
            match relay_lag(store, relay).await {
                Ok((unpublished, oldest_age)) => {
                    self.relay_unpublished
                        .get_or_create(&labels)
                        .set(count(unpublished));
                    self.relay_oldest_age
                        .get_or_create(&labels)
                        .set(oldest_age.as_secs_f64());
                }
                Err(error) => tracing::warn!(service, %error, "cannot read the relay's lag"),
            }
            match store.held_back().await {
                Ok(held) => {
                    self.relay_held_back
                        .get_or_create(&labels)
                        .set(count(held.events));
                    self.relay_oldest_held_back_age
                        .get_or_create(&labels)
                        .set(waited_since(held.oldest_recorded_at).as_secs_f64());
                }
                Err(error) => {
                    tracing::warn!(service, %error, "cannot read what the relay holds back")
                }
            }
        }
        if let Some(projections) = &source.projections {
            match projections.verify().await {
                Ok(checks) => {
                    for check in checks {
                        let labels = ProjectionLabels {
                            service: service.clone(),
                            projection: check.projection.clone(),
                            source: check.source_service.clone(),
                        };
                        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
                        self.projection_lag
                            .get_or_create(&labels)
                            .set(gauge(check.log_events.saturating_sub(check.applied_events)));
                        self.projection_pending
                            .get_or_create(&labels)
                            .set(gauge(check.consumer_pending));
                        self.projection_parked
                            .get_or_create(&labels)
                            .set(gauge(check.parked_events));
                        self.projection_dead_letters
                            .get_or_create(&labels)
                            .set(gauge(check.dead_letters));
                    }
                }
                Err(error) => tracing::warn!(service, %error, "cannot read the projections' lag"),
            }
        }
    }
}

/// The route serving the page.
pub fn route() -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                metrics().render().await,
            )
        }),
    )
}
