//! One way to start a service (architecture decision 8): every service's `run()` is a
//! [`ServiceHost`] that
//!
//! 1. connects to its schema (created if missing, pool sized by `ICS_DB_MAX_CONNECTIONS`),
//!    applies the event store's, the projection runner's and the service's migrations, and
//!    records the schema's identity (a restored backup is recognised, `ics_eventstore::identity`);
//! 2. connects to NATS and, for a service that records events, starts the relay of its log;
//! 3. runs the service's projections under a [`Supervisor`], replaying them from the start of
//!    their streams after a restore;
//! 4. serves the service's gRPC APIs behind authentication, plus the admin API, health and
//!    reflection, with health names taken from the generated servers' types;
//! 5. on shutdown drains (health `NOT_SERVING` for `ICS_SHUTDOWN_DRAIN_SECS`, then in-flight calls
//!    for `ICS_SHUTDOWN_GRACE_SECS`) and stops its background tasks, projections and relay.
//!
//! ```ignore
//! let mut host = ServiceHost::start(common, SERVICE, Log::Recorded(MIGRATIONS), &shutdown).await?;
//! host.add_service(TrustsServiceServer::new(TrustsApi::new(host.store()?.clone())));
//! host.serve(config.listen).await
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ics_eventstore::identity::{Identity, record_identity};
use ics_eventstore::{EventStore, migrate};
use ics_projection::RunnerConfig;
use ics_proto::admin::v1::admin_service_server::AdminServiceServer;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::admin::AdminApi;
use crate::audit::AuditTrail;
use crate::auth::Authenticator;
use crate::config::CommonConfig;
use crate::db::{connect_postgres, grant_log_readers};
use crate::nats::connect_nats;
use crate::server::{ServeOptions, serve};
use crate::startup::EventLog;
use crate::supervisor::Supervisor;

/// Whether a service records events of its own.
#[derive(Debug, Clone, Copy)]
pub enum Log<'a> {
    /// It owns an event log (and relay); these are its own migrations.
    Recorded(&'a [(&'a str, &'a str)]),
    /// It keeps only projections (the reporting service); these are its migrations.
    ProjectionsOnly(&'a [(&'a str, &'a str)]),
}

/// A service being started: see the module documentation.
pub struct ServiceHost {
    common: CommonConfig,
    service: &'static str,
    shutdown: CancellationToken,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    /// Whether the schema was restored from a backup taken elsewhere.
    pub identity: Identity,
    log: Option<EventLog>,
    supervisor: Option<Arc<Supervisor>>,
    authenticator: Authenticator,
    audit: AuditTrail,
    routes: Routes,
    service_names: Vec<&'static str>,
    max_message_bytes: usize,
    background: Vec<JoinHandle<()>>,
    /// Pages this service adds to the process's HTTP surface (the reporting dashboard).
    http_routes: Option<axum::Router>,
}

impl std::fmt::Debug for ServiceHost {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServiceHost")
            .field("service", &self.service)
            .field("identity", &self.identity)
            .field("service_names", &self.service_names)
            .finish()
    }
}

impl ServiceHost {
    /// Steps 1 and 2 of the module documentation.
    pub async fn start(
        common: &CommonConfig,
        service: &'static str,
        log: Log<'_>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<ServiceHost> {
        let authenticator = Authenticator::start(&common.auth, shutdown).await?;
        let migrations = match log {
            Log::Recorded(migrations) | Log::ProjectionsOnly(migrations) => migrations,
        };
        let pool = connect_postgres(
            &common.database,
            service,
            common.db_max_connections,
            shutdown,
        )
        .await?;
        migrate(
            &pool,
            &[
                ics_projection::MIGRATIONS,
                crate::audit::MIGRATIONS,
                migrations,
            ]
            .concat(),
        )
        .await?;
        let (audit, audit_writer) = AuditTrail::start(service, pool.clone(), shutdown);
        // Before anything is served or relayed: a restored schema must be recognised first.
        let identity = record_identity(&pool).await?;
        if matches!(log, Log::Recorded(_)) {
            grant_log_readers(&pool).await?;
        }
        let nats = connect_nats(&common.nats, service).await?;
        let log = match log {
            Log::Recorded(_) => Some(EventLog::start(
                common,
                service,
                pool.clone(),
                nats.clone(),
                shutdown,
            )),
            Log::ProjectionsOnly(_) => None,
        };
        Ok(ServiceHost {
            common: common.clone(),
            service,
            shutdown: shutdown.clone(),
            pool,
            nats,
            identity,
            log,
            supervisor: None,
            authenticator,
            audit,
            routes: Routes::default(),
            service_names: Vec::new(),
            max_message_bytes: crate::server::DEFAULT_MAX_MESSAGE_BYTES,
            background: vec![audit_writer],
            http_routes: None,
        })
    }

    /// The service's event store.
    pub fn store(&self) -> anyhow::Result<&EventStore> {
        self.log
            .as_ref()
            .map(|log| &log.store)
            .ok_or_else(|| anyhow::anyhow!("service {} records no events", self.service))
    }

    /// A projection runner's configuration for the given source services, continuing each
    /// event's stored trace; a batch spans each of its events only when spans are exported.
    pub fn runner_config(&self, source_services: &[&str]) -> RunnerConfig {
        RunnerConfig {
            continue_trace: Some(crate::telemetry::continue_stored_trace),
            span_each_batched_event: self.common.telemetry.otlp_endpoint.is_some(),
            service: self.service.to_owned(),
            ..RunnerConfig::new(&self.common.subject_prefix, source_services)
        }
    }

    /// Starts the projections `build` adds to a supervisor (step 3), and serves their admin
    /// operations.
    pub async fn supervise(
        &mut self,
        build: impl FnOnce(Supervisor) -> Supervisor,
    ) -> Arc<Supervisor> {
        let supervisor = build(Supervisor::new(
            self.pool.clone(),
            self.nats.clone(),
            self.shutdown.clone(),
        ))
        .replay_from_start(self.identity == Identity::Restored)
        .start()
        .await;
        self.supervisor = Some(supervisor.clone());
        supervisor
    }

    /// A task that runs until shutdown (e.g. a scheduler); awaited when the service stops.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.background.push(tokio::spawn(task));
    }

    /// How calls are authenticated, for a surface of the service's own (the dashboard).
    pub fn authenticator(&self) -> Authenticator {
        self.authenticator.clone()
    }

    /// Whether the listeners serve TLS (`ICS_TLS_CERT`).
    pub fn serves_tls(&self) -> bool {
        self.common.tls.tls_cert.is_some()
    }

    /// Adds pages to the process's HTTP surface (`ICS_HTTP_LISTEN`), beside `/healthz`.
    pub fn add_http_routes(&mut self, router: axum::Router) {
        self.http_routes = Some(match self.http_routes.take() {
            Some(routes) => routes.merge(router),
            None => router,
        });
    }

    /// Serves the HTTP surface, with the listeners' TLS, until shutdown; a port that cannot
    /// be bound fails the start.
    async fn start_http(
        &mut self,
        listen: SocketAddr,
        tls: Option<crate::tls::ReloadingTls>,
    ) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen for http on {listen} (ICS_HTTP_LISTEN)"))?;
        // Liveness, and the process's Prometheus metrics (every service's, under `icsd all`).
        let mut router = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok\n" }))
            .merge(crate::prometheus::route());
        if let Some(routes) = self.http_routes.take() {
            router = router.merge(routes);
        }
        let shutdown = self.shutdown.clone();
        self.spawn(async move {
            if let Err(error) = crate::http::serve_http(listener, router, tls, shutdown).await {
                tracing::error!(%error, "http server stopped");
            }
        });
        Ok(())
    }

    /// Largest request message accepted (4 MiB unless raised, e.g. for bulk ingest).
    pub fn with_max_message_bytes(mut self, max_message_bytes: usize) -> Self {
        self.max_message_bytes = max_message_bytes;
        self
    }

    /// Serves a generated gRPC server behind authentication; its health status is reported
    /// under the name its type carries.
    pub fn add_service<S>(&mut self, service: S)
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes = std::mem::take(&mut self.routes).add_service(service);
    }

    /// Steps 4 and 5: serves until shutdown, then stops everything it started.
    pub async fn serve(mut self, listen: SocketAddr) -> anyhow::Result<()> {
        let mut admin = AdminApi::new(self.shutdown.clone()).with_audit_trail(self.audit.clone());
        if let Some(log) = &self.log {
            admin = admin.with_event_log(log.store.clone(), log.relay.clone());
        }
        if let Some(supervisor) = &self.supervisor {
            admin = admin.with_projections(supervisor.clone());
        }
        self.add_service(AdminServiceServer::new(admin));
        crate::prometheus::metrics().watch(crate::prometheus::Source {
            service: self.service,
            pool: self.pool.clone(),
            log: self
                .log
                .as_ref()
                .map(|log| (log.store.clone(), log.relay.clone())),
            projections: self
                .supervisor
                .clone()
                .map(|supervisor| supervisor as Arc<dyn crate::admin::ProjectionAdmin>),
        });
        // One reloading configuration serves both surfaces: the files are watched once.
        let tls = crate::tls::TlsFiles::from_config(&self.common.tls)?
            .map(|files| {
                crate::tls::ReloadingTls::start(
                    files,
                    Duration::from_secs(self.common.tls.tls_reload_secs),
                    &self.shutdown,
                )
            })
            .transpose()?;
        if let Some(http_listen) = self.common.http_listen {
            self.start_http(http_listen, tls.clone()).await?;
        }
        let listener = tokio::net::TcpListener::bind(listen).await?;
        tracing::info!(service = self.service, listen = %listener.local_addr()?, "serving");
        let options = ServeOptions::new(listener, self.service_names.clone())
            .for_service(self.service)
            .with_authenticator(self.authenticator.clone())
            .with_tls(tls)
            .with_grace(self.common.shutdown_grace())
            .with_drain_delay(self.common.shutdown_drain())
            .with_max_message_bytes(self.max_message_bytes);
        let served = serve(options, self.routes, self.shutdown.clone()).await;
        // Whatever ended serving, the rest of the service stops with it.
        self.shutdown.cancel();
        crate::prometheus::metrics().forget(self.service);
        for task in self.background {
            let _ = task.await;
        }
        if let Some(supervisor) = &self.supervisor {
            supervisor.stopped().await;
        }
        if let Some(log) = self.log {
            log.stopped().await;
        }
        served
    }
}
