//! The metrics service: measure definitions, observations per measure and organisation (and
//! optionally value stream) with unary and client-streaming bulk ingest, corrections that
//! supersede without erasing, ghosting, partition marks and targets; the Making Data Count SPC
//! signals new data causes (`SpecialCauseDetected`, `VariationIconChanged`,
//! `AssuranceIconChanged`); and versioned peer groups.
//!
//! Organisations and value streams are checked against the service's own read model of the
//! trusts service's events ([`ics_references`]); the rules shared with the reporting service
//! live in [`ics_measures`].

mod api;
pub mod ingest;
pub mod measure;
pub mod peer_group;
mod references;
pub mod series;

use std::net::SocketAddr;
use std::sync::Arc;

use ics_projection::RunnerConfig;
use ics_proto::admin::v1::admin_service_server::AdminServiceServer;
use ics_proto::metrics::v1::metrics_service_server::MetricsServiceServer;
use ics_service_kit::admin::AdminApi;
use ics_service_kit::supervisor::Supervisor;
use ics_service_kit::{Authenticator, CommonConfig, EventLog, ServeOptions, serve};
use tokio_util::sync::CancellationToken;

pub use api::MetricsApi;

pub const SERVICE: &str = "metrics";

/// The metrics service's read model of organisations and value streams (a projection name must
/// be unique in a deployment: it names the durable consumer).
pub const REFERENCES: &str = "metrics_references";

pub const MIGRATIONS: &[(&str, &str)] = &[("metrics_0001_references", ics_references::MIGRATION)];

/// Largest gRPC message accepted: an ingest chunk of 5,000 observations is about 300 KB.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct MetricsConfig {
    /// Address the metrics gRPC API listens on.
    #[arg(
        id = "metrics_listen",
        long = "metrics-listen",
        env = "ICS_METRICS_LISTEN",
        default_value = "127.0.0.1:50053"
    )]
    pub listen: SocketAddr,
}

/// Runs the metrics service until `shutdown` is cancelled.
pub async fn run(
    common: &CommonConfig,
    config: &MetricsConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let log = EventLog::start(common, SERVICE, MIGRATIONS, &shutdown).await?;

    let supervisor = Supervisor::new(log.pool.clone(), log.nats.clone(), shutdown.clone())
        .supervise(
            Arc::new(ics_references::ReferencesProjection::named(REFERENCES)),
            RunnerConfig {
                continue_trace: Some(ics_service_kit::telemetry::continue_stored_trace),
                ..RunnerConfig::new(&common.subject_prefix, &["trusts"])
            },
        )
        .start()
        .await;

    let authenticator = Authenticator::new(&common.auth)?;
    let admin = AdminApi::new(shutdown.clone())
        .with_event_log(log.store.clone(), log.relay.clone())
        .with_projections(supervisor.clone());
    let metrics = MetricsServiceServer::new(MetricsApi::new(log.store.clone(), log.pool.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let routes = tonic::service::Routes::new(tonic::service::interceptor::InterceptedService::new(
        metrics,
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
        vec!["ics.metrics.v1.MetricsService", "ics.admin.v1.AdminService"],
    )
    .with_grace(common.shutdown_grace());
    serve(options, routes, shutdown).await?;
    supervisor.stopped().await;
    log.stopped().await;
    Ok(())
}
