//! The workshops service: improvement events — rapid process improvement workshops (RPIW) by
//! default, and kaizen, 3P and value-stream analysis — from charter through the workshop days,
//! report-out and follow-ups at 30, 60, 90 and 365 days, to close.
//!
//! References to trusts and value streams are checked against the service's own read model of
//! the trusts service's events ([`ics_references`]). Follow-ups that fall due without a measurement
//! are recorded as missed by the service itself, exactly once ([`schedule`]).

mod api;
pub mod schedule;
pub mod workshop;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ics_projection::RunnerConfig;
use ics_proto::admin::v1::admin_service_server::AdminServiceServer;
use ics_proto::workshops::v1::workshops_service_server::WorkshopsServiceServer;
use ics_service_kit::admin::AdminApi;
use ics_service_kit::supervisor::Supervisor;
use ics_service_kit::{Authenticator, CommonConfig, EventLog, ServeOptions, serve};
use tokio_util::sync::CancellationToken;

pub use api::WorkshopsApi;

pub const SERVICE: &str = "workshops";

pub const MIGRATIONS: &[(&str, &str)] = &[
    ("workshops_0001_references", ics_references::MIGRATION),
    (
        "workshops_0002_follow_up_schedule",
        include_str!("../migrations/0002_follow_up_schedule.sql"),
    ),
];

#[derive(Debug, Clone, clap::Args)]
pub struct WorkshopsConfig {
    /// Address the workshops gRPC API listens on.
    #[arg(
        id = "workshops_listen",
        long = "workshops-listen",
        env = "ICS_WORKSHOPS_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    pub listen: SocketAddr,

    /// Longest workshop, in days, accepted without a duration override reason.
    #[arg(long, env = "ICS_WORKSHOP_MAX_DAYS", default_value_t = 5)]
    pub workshop_max_days: u32,

    /// Seconds between the follow-up scheduler's passes.
    #[arg(long, env = "ICS_FOLLOW_UP_SCAN_SECS", default_value_t = 60)]
    pub follow_up_scan_secs: u64,

    /// Days a follow-up may still be recorded after it fell due — counted from the later of its
    /// due date and the day the report-out was recorded — before it is recorded as missed.
    #[arg(long, env = "ICS_FOLLOW_UP_GRACE_DAYS", default_value_t = 7)]
    pub follow_up_grace_days: u32,
}

/// Runs the workshops service until `shutdown` is cancelled.
pub async fn run(
    common: &CommonConfig,
    config: &WorkshopsConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let log = EventLog::start(common, SERVICE, MIGRATIONS, &shutdown).await?;
    let (pool, store) = (log.pool.clone(), log.store.clone());

    let runner_config = |sources: &[&str]| RunnerConfig {
        continue_trace: Some(ics_service_kit::telemetry::continue_stored_trace),
        ..RunnerConfig::new(&common.subject_prefix, sources)
    };
    let supervisor = Supervisor::new(pool.clone(), log.nats.clone(), shutdown.clone())
        .supervise(
            Arc::new(ics_references::ReferencesProjection::named(
                ics_references::REFERENCES,
            )),
            runner_config(&["trusts"]),
        )
        .supervise(
            Arc::new(schedule::FollowUpProjection),
            runner_config(&[SERVICE]),
        )
        .start()
        .await;
    let scheduler = tokio::spawn(schedule::run_scheduler(
        store.clone(),
        pool.clone(),
        Arc::new(schedule::SystemClock),
        Duration::from_secs(config.follow_up_scan_secs.max(1)),
        config.follow_up_grace_days,
        shutdown.clone(),
    ));

    let authenticator = Authenticator::new(&common.auth)?;
    let admin = AdminApi::new(shutdown.clone())
        .with_event_log(store.clone(), log.relay.clone())
        .with_projections(supervisor.clone());
    let routes = tonic::service::Routes::new(WorkshopsServiceServer::with_interceptor(
        WorkshopsApi::new(store, pool, config.workshop_max_days),
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
            "ics.workshops.v1.WorkshopsService",
            "ics.admin.v1.AdminService",
        ],
    )
    .with_grace(common.shutdown_grace());
    serve(options, routes, shutdown).await?;
    supervisor.stopped().await;
    let _ = scheduler.await;
    log.stopped().await;
    Ok(())
}
