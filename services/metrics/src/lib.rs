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

use ics_proto::metrics::v1::metrics_service_server::MetricsServiceServer;
use ics_service_kit::{CommonConfig, Log, ServiceHost};
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
    let mut host =
        ServiceHost::start(common, SERVICE, Log::Recorded(MIGRATIONS), &shutdown).await?;
    // Nothing watches the references: their changes are not announced.
    let references = host.runner_config(&["trusts"]).without_change_notices();
    host.supervise(|supervisor| {
        supervisor.supervise(
            Arc::new(ics_references::ReferencesProjection::named(REFERENCES)),
            references,
        )
    })
    .await;
    let api = MetricsApi::new(host.store()?.clone(), host.pool.clone());
    host.add_service(MetricsServiceServer::new(api).max_decoding_message_size(MAX_MESSAGE_BYTES));
    host.serve(config.listen).await
}
