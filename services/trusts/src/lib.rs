//! The trusts service: organisations (trusts, ICBs, regions) with dated links, CQC ratings,
//! executive appointments, value streams, leadership-training cohorts, and programmes with
//! their guiding boards. It owns these aggregates, records them as events in its own schema,
//! and publishes them to JetStream for the other services.

mod api;
mod organisation;
mod programme;
mod training;
mod value_stream;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use ics_proto::trusts::v1::trusts_service_server::TrustsServiceServer;
use ics_service_kit::{CommonConfig, Log, ServiceHost};
use tokio_util::sync::CancellationToken;

pub use api::TrustsApi;

/// The service's name: its Postgres schema, its event log and its JetStream stream.
pub const SERVICE: &str = "trusts";

/// Flags of the trusts service.
#[derive(Debug, Clone, clap::Args)]
pub struct TrustsConfig {
    /// Address the trusts gRPC API listens on.
    #[arg(
        id = "trusts_listen",
        long = "trusts-listen",
        env = "ICS_TRUSTS_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,
}

/// Runs the trusts service until `shutdown` is cancelled.
pub async fn run(
    common: &CommonConfig,
    config: &TrustsConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut host = ServiceHost::start(common, SERVICE, Log::Recorded(&[]), &shutdown).await?;
    let api = TrustsApi::new(host.store()?.clone());
    host.add_service(TrustsServiceServer::new(api));
    host.serve(config.listen).await
}
