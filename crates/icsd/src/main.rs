//! `icsd`: runs one ICS service, or all of them in one process for a laptop or a small site.
//!
//! ```text
//! icsd trusts       # the trusts service alone
//! icsd workshops    # the workshops service alone
//! icsd metrics      # the metrics service alone
//! icsd reporting    # the reporting service alone
//! icsd all          # every service in one process
//! icsd healthcheck --url http://127.0.0.1:50051   # exit 0 when that server is SERVING
//! ```
//!
//! Every flag can also be set with its `ICS_*` environment variable (`icsd --help`).

use std::time::Duration;

use clap::{Parser, Subcommand};
use ics_metrics::MetricsConfig;
use ics_reporting::ReportingConfig;
use ics_service_kit::{CommonConfig, shutdown_on_signals, telemetry};
use ics_trusts::TrustsConfig;
use ics_workshops::WorkshopsConfig;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[derive(Debug, Parser)]
#[command(
    name = "icsd",
    version,
    about = "The ICS improvement-programme platform server"
)]
struct Cli {
    #[command(flatten)]
    common: CommonConfig,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Organisations, CQC ratings, executives, value streams, training and programmes.
    Trusts(TrustsConfig),
    /// Improvement workshops from charter to 365-day follow-up.
    Workshops(WorkshopsConfig),
    /// Measures, observations (bulk ingest), SPC signals and peer groups.
    Metrics(MetricsConfig),
    /// Cross-trust views for ICS and programme boards.
    Reporting(ReportingConfig),
    /// Every service in one process.
    All {
        #[command(flatten)]
        trusts: TrustsConfig,
        #[command(flatten)]
        workshops: WorkshopsConfig,
        #[command(flatten)]
        metrics: MetricsConfig,
        #[command(flatten)]
        reporting: ReportingConfig,
    },
    /// Probes a server's grpc.health.v1 (for container healthchecks and scripts): exits 0 when
    /// it answers SERVING, 1 otherwise.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        url: String,
        /// Keep trying for this long before giving up.
        #[arg(long, default_value_t = 0)]
        wait_secs: u64,
        #[command(flatten)]
        tls: ics_client::ClientTlsArgs,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Command::Healthcheck {
        url,
        wait_secs,
        tls,
    } = &cli.command
    {
        let tls = ics_client::ClientTls::from(tls);
        let serving = runtime.block_on(healthcheck(url, &tls, Duration::from_secs(*wait_secs)));
        std::process::exit(if serving { 0 } else { 1 });
    }
    runtime.block_on(run(cli))
}

async fn healthcheck(url: &str, tls: &ics_client::ClientTls, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if probe(url, tls).await {
            println!("SERVING");
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("{url} is not serving");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn probe(url: &str, tls: &ics_client::ClientTls) -> bool {
    let endpoint = match ics_client::endpoint(url, tls) {
        Ok(endpoint) => endpoint,
        Err(error) => {
            eprintln!("{error}");
            return false;
        }
    };
    let Ok(channel) = endpoint
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
    else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    matches!(
        client.check(HealthCheckRequest { service: String::new() }).await,
        Ok(response) if response.get_ref().status == ServingStatus::Serving as i32
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let service_name = match &cli.command {
        Command::Trusts(_) => "ics-trusts",
        Command::Workshops(_) => "ics-workshops",
        Command::Metrics(_) => "ics-metrics",
        Command::Reporting(_) => "ics-reporting",
        Command::All { .. } | Command::Healthcheck { .. } => "ics-all",
    };
    let telemetry = telemetry::init(&cli.common.telemetry, service_name)?;
    let shutdown = shutdown_on_signals();
    // Every process serves HTTP; when services run apart on one host, each has its own port.
    let http = |default: &str| {
        let default = default.parse().expect("a socket address");
        cli.common
            .with_http_listen(Some(cli.common.http_listen.unwrap_or(default)))
    };
    let outcome = match &cli.command {
        Command::Trusts(config) => ics_trusts::run(&http(HTTP_TRUSTS), config, shutdown).await,
        Command::Workshops(config) => {
            ics_workshops::run(&http(HTTP_WORKSHOPS), config, shutdown).await
        }
        Command::Metrics(config) => ics_metrics::run(&http(HTTP_METRICS), config, shutdown).await,
        Command::Reporting(config) => {
            ics_reporting::run(&http(HTTP_REPORTING), config, shutdown).await
        }
        Command::All {
            trusts,
            workshops,
            metrics,
            reporting,
        } => {
            let services = Services {
                trusts,
                workshops,
                metrics,
                reporting,
            };
            run_all(&http(HTTP_REPORTING), &services, shutdown).await
        }
        Command::Healthcheck { .. } => Ok(()),
    };
    if let Err(error) = &outcome {
        tracing::error!(error = format!("{error:#}"), "service failed");
    }
    telemetry.shutdown().await;
    outcome
}

/// Default HTTP addresses (`ICS_HTTP_LISTEN`) by command.
const HTTP_REPORTING: &str = "127.0.0.1:8080";
const HTTP_TRUSTS: &str = "127.0.0.1:8081";
const HTTP_WORKSHOPS: &str = "127.0.0.1:8082";
const HTTP_METRICS: &str = "127.0.0.1:8083";

/// The configuration of every service, for `all`.
struct Services<'a> {
    trusts: &'a TrustsConfig,
    workshops: &'a WorkshopsConfig,
    metrics: &'a MetricsConfig,
    reporting: &'a ReportingConfig,
}

/// Runs every service; when one fails, the others are shut down too.
async fn run_all(
    common: &CommonConfig,
    services: &Services<'_>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Services {
        trusts,
        workshops,
        metrics,
        reporting,
    } = *services;
    let stop_on_failure = |result: anyhow::Result<()>| {
        if result.is_err() {
            shutdown.cancel();
        }
        result
    };
    // The connection budget is the process's: each service gets its share. One HTTP surface
    // for the process: the reporting service's, with the dashboard.
    let with_http = &common.shared_by(4);
    let share = &with_http.with_http_listen(None);
    let (trusts, workshops, metrics, reporting) = tokio::join!(
        async { stop_on_failure(ics_trusts::run(share, trusts, shutdown.clone()).await) },
        async { stop_on_failure(ics_workshops::run(share, workshops, shutdown.clone()).await) },
        async { stop_on_failure(ics_metrics::run(share, metrics, shutdown.clone()).await) },
        async { stop_on_failure(ics_reporting::run(with_http, reporting, shutdown.clone()).await) },
    );
    trusts.and(workshops).and(metrics).and(reporting)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_mode_parses_with_distinct_flags() {
        Cli::command().debug_assert();
        let all = Cli::try_parse_from([
            "icsd",
            "all",
            "--trusts-listen",
            "127.0.0.1:1",
            "--reporting-listen",
            "127.0.0.1:2",
            "--workshops-listen",
            "127.0.0.1:3",
            "--metrics-listen",
            "127.0.0.1:4",
        ]);
        assert!(matches!(
            all.map(|cli| cli.command),
            Ok(Command::All { .. })
        ));
    }
}
