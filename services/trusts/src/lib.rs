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

use ics_proto::admin::v1::admin_service_server::AdminServiceServer;
use ics_proto::trusts::v1::trusts_service_server::TrustsServiceServer;
use ics_service_kit::admin::AdminApi;
use ics_service_kit::{Authenticator, CommonConfig, EventLog, ServeOptions, serve};
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
    let log = EventLog::start(common, SERVICE, &[], &shutdown).await?;

    let authenticator = Authenticator::new(&common.auth)?;
    let admin =
        AdminApi::new(shutdown.clone()).with_event_log(log.store.clone(), log.relay.clone());
    let routes = tonic::service::Routes::new(TrustsServiceServer::with_interceptor(
        TrustsApi::new(log.store.clone()),
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
        vec!["ics.trusts.v1.TrustsService", "ics.admin.v1.AdminService"],
    )
    .with_grace(common.shutdown_grace());
    serve(options, routes, shutdown).await?;
    log.stopped().await;
    Ok(())
}
