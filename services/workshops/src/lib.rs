//! The workshops service: improvement events — rapid process improvement workshops (RPIW) by
//! default, and kaizen, 3P and value-stream analysis — from charter through the workshop days,
//! report-out and follow-ups at 30, 60, 90 and 365 days, to close.
//!
//! References to trusts and value streams are checked against the service's own read model of
//! the trusts service's events ([`ics_references`]). Follow-ups that fall due without a measurement
//! are recorded as missed by the service itself, exactly once ([`schedule`]). ListWorkshops
//! pages through a read model of the service's own stream ([`workshop_list`]).

mod api;
pub mod schedule;
pub mod workshop;
pub mod workshop_list;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ics_proto::workshops::v1::workshops_service_server::WorkshopsServiceServer;
use ics_service_kit::{CommonConfig, Log, ServiceHost};
use tokio_util::sync::CancellationToken;

pub use api::WorkshopsApi;

pub const SERVICE: &str = "workshops";

pub const MIGRATIONS: &[(&str, &str)] = &[
    ("workshops_0001_references", ics_references::MIGRATION),
    (
        "workshops_0002_follow_up_schedule",
        include_str!("../migrations/0002_follow_up_schedule.sql"),
    ),
    (
        "workshops_0003_workshop_list",
        include_str!("../migrations/0003_workshop_list.sql"),
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
    let mut host =
        ServiceHost::start(common, SERVICE, Log::Recorded(MIGRATIONS), &shutdown).await?;
    // Nothing watches these read models: their changes are not announced.
    let (references, follow_ups, workshop_list) = (
        host.runner_config(&["trusts"]).without_change_notices(),
        host.runner_config(&[SERVICE]).without_change_notices(),
        host.runner_config(&[SERVICE]).without_change_notices(),
    );
    host.supervise(|supervisor| {
        supervisor
            .supervise(
                Arc::new(ics_references::ReferencesProjection::named(
                    ics_references::REFERENCES,
                )),
                references,
            )
            .supervise(Arc::new(schedule::FollowUpProjection), follow_ups)
            .supervise(
                Arc::new(workshop_list::WorkshopListProjection),
                workshop_list,
            )
    })
    .await;
    let store = host.store()?.clone();
    host.spawn(schedule::run_scheduler(
        store.clone(),
        host.pool.clone(),
        Arc::new(schedule::SystemClock),
        Duration::from_secs(config.follow_up_scan_secs.max(1)),
        config.follow_up_grace_days,
        shutdown.clone(),
    ));
    let api = WorkshopsApi::new(store, host.pool.clone(), config.workshop_max_days);
    host.add_service(WorkshopsServiceServer::new(api));
    host.serve(config.listen).await
}
