//! The trusts service: organisations (trusts, ICBs, regions) with dated links, CQC ratings,
//! executive appointments, value streams, leadership-training cohorts, and programmes with
//! their guiding boards. It owns these aggregates, records them as events in its own schema,
//! and publishes them to JetStream for the other services. ListOrganisations pages through a
//! read model of its own stream ([`organisation_list`]).

mod api;
mod organisation;
pub mod organisation_list;
mod programme;
mod training;
mod value_stream;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use ics_proto::trusts::v1::trusts_service_server::TrustsServiceServer;
use ics_service_kit::{CommonConfig, Log, ServiceHost};
use tokio_util::sync::CancellationToken;

pub use api::TrustsApi;

/// The service's name: its Postgres schema, its event log and its JetStream stream.
pub const SERVICE: &str = "trusts";

pub const MIGRATIONS: &[(&str, &str)] = &[(
    "trusts_0001_organisation_list",
    include_str!("../migrations/0001_organisation_list.sql"),
)];

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
    let mut host =
        ServiceHost::start(common, SERVICE, Log::Recorded(MIGRATIONS), &shutdown).await?;
    // Lists are read a page at a time, never watched: their changes are not announced.
    let organisation_list = host.runner_config(&[SERVICE]).without_change_notices();
    host.supervise(|supervisor| {
        supervisor.supervise(
            Arc::new(organisation_list::OrganisationListProjection),
            organisation_list,
        )
    })
    .await;
    let api = TrustsApi::new(host.store()?.clone(), host.pool.clone());
    host.add_service(TrustsServiceServer::new(api));
    host.serve(config.listen).await
}
