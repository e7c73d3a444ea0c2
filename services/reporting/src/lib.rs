//! The reporting service: cross-trust views for ICS and programme boards, built only from the
//! other services' events (it owns no records of its own). Queries, live watches, and operator
//! functions to inspect dead letters and rebuild projections.

mod api;
mod projection;
mod supervisor;
mod views;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use ics_eventstore::migrate;
use ics_projection::{ProjectionRunner, RunnerConfig};
use ics_proto::admin::v1::admin_service_server::AdminServiceServer;
use ics_proto::reporting::v1::reporting_service_server::ReportingServiceServer;
use ics_service_kit::admin::AdminApi;
use ics_service_kit::{
    Authenticator, CommonConfig, ServeOptions, connect_nats, connect_postgres, serve,
};
use tokio_util::sync::CancellationToken;

pub use api::ReportingApi;
pub use projection::{OVERVIEW, OverviewProjection};
pub use supervisor::Supervisor;
pub use watch::ChangeHub;

pub const SERVICE: &str = "reporting";

/// The services whose events feed the reporting projections.
pub const SOURCES: &[&str] = &["trusts"];

const MIGRATIONS: &[(&str, &str)] = &[(
    "reporting_0001_overview",
    include_str!("../migrations/0001_overview.sql"),
)];

#[derive(Debug, Clone, clap::Args)]
pub struct ReportingConfig {
    /// Address the reporting gRPC API listens on.
    #[arg(
        id = "reporting_listen",
        long = "reporting-listen",
        env = "ICS_REPORTING_LISTEN",
        default_value = "127.0.0.1:50054"
    )]
    pub listen: SocketAddr,
}

/// Runs the reporting service until `shutdown` is cancelled.
pub async fn run(
    common: &CommonConfig,
    config: &ReportingConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = connect_postgres(&common.database_url, SERVICE, &shutdown).await?;
    migrate(&pool, &[ics_projection::MIGRATIONS, MIGRATIONS].concat()).await?;
    let nats = connect_nats(&common.nats_url).await?;
    let runner = ProjectionRunner::new(
        pool.clone(),
        nats,
        Arc::new(OverviewProjection),
        RunnerConfig {
            continue_trace: Some(ics_service_kit::telemetry::continue_stored_trace),
            ..RunnerConfig::new(&common.subject_prefix, SOURCES)
        },
    );
    let supervisor = Supervisor::new(pool.clone(), runner, shutdown.clone());
    supervisor.start().await;
    let changes = ChangeHub::start(pool.clone(), OVERVIEW, shutdown.clone());

    let authenticator = Authenticator::new(&common.auth)?;
    let admin = AdminApi::new(shutdown.clone()).with_projections(supervisor.clone());
    let routes = tonic::service::Routes::new(ReportingServiceServer::with_interceptor(
        ReportingApi::new(pool, changes, shutdown.clone()),
        authenticator.interceptor(),
    ))
    .add_service(AdminServiceServer::with_interceptor(
        admin,
        authenticator.interceptor(),
    ));
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(service = SERVICE, listen = %listener.local_addr()?, "serving");
    let options = ServeOptions::new(
        listener,
        vec![
            "ics.reporting.v1.ReportingService",
            "ics.admin.v1.AdminService",
        ],
    )
    .with_grace(common.shutdown_grace());
    serve(options, routes, shutdown).await?;
    supervisor.stopped().await;
    Ok(())
}
