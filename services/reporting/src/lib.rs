//! The reporting service: cross-trust views for ICS and programme boards, built only from the
//! other services' events (it owns no records of its own). Queries, live watches, and operator
//! functions to inspect dead letters and rebuild projections.
//!
//! # Projections
//!
//! - `overview`, from the `trusts` stream: organisations and their dated links, CQC ratings,
//!   executive departures, value streams, training and programme membership.
//! - `outcomes`, from the `workshops` stream: each workshop's trust, value stream, status and
//!   dates, and its target sheet with report-out and follow-up values. Membership and names are
//!   read from the overview's tables in the same schema.
//!
//! - `measures`, from the `metrics` stream: measure definitions, peer groups, and each series
//!   with its SPC state (see [`measures`] for the ICS measure view and peer comparison).
//!
//! One [`Supervisor`] runs them; operators list dead letters and rebuild by projection name
//! (`overview`, `outcomes`, `measures`). A projection whose source stream does not exist yet (its service
//! is not deployed) says so once and starts when the stream appears.
//!
//! # Programme outcomes
//!
//! `GetOutcomes(scope, as_of)` and `WatchOutcomes(scope)` reproduce the programme's headline
//! table ("process time: 82 workshops, 62% = 3,020 hours") for an ICS or a programme, overall
//! (`headline`), per member trust (`by_trust`) and per value stream (`by_value_stream`), with one
//! row per improvement kind — process time, error count, error rate — always all three.
//!
//! - **Which workshops count**: those that delivered a report-out and were not cancelled
//!   (closed ones still count). A workshop counts under a kind when its target sheet has a metric
//!   of that kind. In an ICS, the workshops of the trusts that belong to it on `as_of` (today by
//!   default); in a programme, those of its trusts (joined by `as_of`) held, first to last day,
//!   within the programme's dates.
//! - **Units**: process time in hours (minutes ÷ 60, days × 24), error counts as counts, error
//!   rates in percentage points; `unit` says which.
//! - **Reductions** are fractions (0.62 is 62%): `pooled_reduction = 1 − Σ after ÷ Σ baseline`
//!   over all the kind's metrics; `mean_reduction` and `median_reduction` of each workshop's own
//!   `1 − Σ after ÷ Σ baseline` (the median of an even count is the mean of the middle two; a
//!   workshop with no baseline counts but has no reduction of its own);
//!   `absolute_reduction = Σ (baseline − after)` in `unit`. A metric with no report-out value is
//!   left out of the sums. With no baseline at all, reductions are 0.
//! - **Sustainment**, at 30, 60, 90 and 365 days: `measured` metrics of the kind with a value at
//!   that follow-up, `sustained` those at or better than (≤) their target, `share_sustained` the
//!   ratio (0 when nothing was measured). `missed` counts the workshops whose follow-up at that
//!   checkpoint was recorded as missed; they are not in the share. A measurement recorded after a
//!   follow-up was declared missed replaces the miss.
//! - **Groups**: every member trust appears in `by_trust` (zeros when it has no workshops), in
//!   ODS-code order; `by_value_stream` lists the value streams with at least one counted
//!   workshop, by name.
//!
//! The arithmetic lives in [`outcomes`], free of storage; [`views::outcomes`] reads the scope
//! over the counted workshops each process holds in memory ([`OutcomeRecords`]), which a view
//! brings up to date by reading only the workshops changed since the last one.
//!
//! # Board packs
//!
//! `GetBoardPack(scope, as_of, format, table)` renders the scope's outcomes and, for an ICS, its
//! measures with `ics-board-pack`: one HTML page with its charts inline, or CSV with one file
//! per table (see [`board_pack`]). Tenancy is the overview's.

mod api;
pub mod board_pack;
mod fhir;
/// The service's gRPC server, generated over `ics-proto`'s types (see `build.rs`).
pub mod grpc {
    #![allow(clippy::large_enum_variant)]
    tonic::include_proto!("ics.reporting.v1");
}
mod lookups;
pub mod measures;
mod measures_projection;
mod outcome_records;
pub mod outcomes;
mod outcomes_projection;
mod projection;
mod view_cache;
pub mod views;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use grpc::reporting_service_server::ReportingServiceServer;
use ics_eventstore::identity::Identity;
use ics_service_kit::limits::OpenCallLimit;
use ics_service_kit::{CommonConfig, Log, ServiceHost};
use tokio_util::sync::CancellationToken;

pub use api::ReportingApi;
pub use ics_service_kit::supervisor::Supervisor;
pub mod dashboard;
pub mod encoded;
pub use measures_projection::{MEASURES, MeasuresProjection};
pub use outcome_records::OutcomeRecords;
pub use outcomes_projection::{OUTCOMES, OutcomesProjection};
pub use projection::{OVERVIEW, OverviewProjection};
pub use watch::{Change, ChangeHub};

pub const SERVICE: &str = "reporting";

/// The services whose events feed the overview projection.
pub const OVERVIEW_SOURCES: &[&str] = &["trusts"];

/// The services whose events feed the outcomes projection. Membership and names are read from
/// the overview's tables in the same schema, so trusts events are not needed here.
pub const OUTCOMES_SOURCES: &[&str] = &["workshops"];

/// The services whose events feed the measures projection (membership again from the overview).
pub const MEASURES_SOURCES: &[&str] = &["metrics"];

/// Every service whose events feed a reporting projection.
pub const SOURCES: &[&str] = &["trusts", "workshops", "metrics"];

/// The reporting schema's migrations, after `ics_projection::MIGRATIONS`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "reporting_0001_overview",
        include_str!("../migrations/0001_overview.sql"),
    ),
    (
        "reporting_0002_outcomes",
        include_str!("../migrations/0002_outcomes.sql"),
    ),
    (
        "reporting_0003_measures",
        include_str!("../migrations/0003_measures.sql"),
    ),
    (
        "reporting_0004_outcome_marks",
        include_str!("../migrations/0004_outcome_marks.sql"),
    ),
    (
        "reporting_0005_series_record_compression",
        include_str!("../migrations/0005_series_record_compression.sql"),
    ),
];

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

    /// A notice every dashboard page shows, for a deployment holding demonstration data
    /// (`scripts/demo` sets one saying the data is SAMPLE and SYNTHETIC).
    #[arg(long, env = "ICS_DATA_LABEL")]
    pub data_label: Option<String>,

    /// The root of the canonical URLs of the FHIR resources this deployment serves
    /// (`<base>/Measure/<id>`): the public address of its `/fhir` endpoint. The default is a
    /// placeholder to replace.
    #[arg(long, env = "ICS_FHIR_BASE_URL", default_value = ics_fhir::EXAMPLE_BASE)]
    pub fhir_base_url: String,
}

/// Runs the reporting service until `shutdown` is cancelled.
pub async fn run(
    common: &CommonConfig,
    config: &ReportingConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut host =
        ServiceHost::start(common, SERVICE, Log::ProjectionsOnly(MIGRATIONS), &shutdown).await?;
    if host.identity == Identity::Restored {
        let restamped = OutcomeRecords::restamp_restored(&host.pool).await?;
        tracing::info!(restamped, "restamped the restored workshops for outcomes");
    }
    let (overview, outcomes, measures) = (
        host.runner_config(OVERVIEW_SOURCES),
        host.runner_config(OUTCOMES_SOURCES),
        host.runner_config(MEASURES_SOURCES),
    );
    host.supervise(|supervisor| {
        supervisor
            .supervise(Arc::new(OverviewProjection), overview)
            .supervise(Arc::new(OutcomesProjection), outcomes)
            .supervise(Arc::new(MeasuresProjection), measures)
    })
    .await;
    let changes = ChangeHub::start(
        host.pool.clone(),
        &[OVERVIEW, OUTCOMES, MEASURES],
        shutdown.clone(),
    );
    let watches = OpenCallLimit::new(common.auth.tenant_watches);
    // One set of counted workshops for every outcomes view of the process.
    let outcome_records = Arc::new(OutcomeRecords::new(host.pool.clone()));
    let dashboard = dashboard::Dashboard::new(
        host.pool.clone(),
        changes.clone(),
        host.authenticator(),
        host.serves_tls(),
        config.data_label.clone(),
        shutdown.clone(),
    )
    .with_fhir_base(&config.fhir_base_url)
    .with_outcome_records(outcome_records.clone());
    // On the process's HTTP surface (ICS_HTTP_LISTEN).
    host.add_http_routes(dashboard.router());
    let api = ReportingApi::new(host.pool.clone(), changes, watches, shutdown.clone())
        .with_data_label(config.data_label.clone())
        .with_fhir_base(&config.fhir_base_url)
        .with_outcome_records(outcome_records);
    host.add_service(ReportingServiceServer::new(api));
    host.serve(config.listen).await
}
