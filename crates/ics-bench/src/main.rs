//! `ics-bench`: measures a running deployment the way a hospital system and a board use it.
//!
//! 1. **Command latency** — single write commands (`RenameOrganisation` across many trusts) sent
//!    at a constant arrival rate (open model: a slow reply does not delay the next send, and
//!    latency counts from the scheduled send time), reported as p50/p95/p99 — and also from the
//!    actual send, to show how late the generator itself was.
//! 2. **Freshness** — at a lower constant rate, the time from a command's ack to the moment a
//!    board's live watch of the ICS overview shows its effect.
//!
//! 3. **Bulk ingest** — observations acknowledged as durable per second over client-streaming
//!    calls, against `COPY` of the same rows into a plain table, and the time until all of it
//!    is visible in the ICS measure view ([`ingest`]).
//!
//! `scripts/bench` starts a fresh deployment and runs this against it; pointed at an existing
//! deployment it needs an operator and board token secret (`ICS_TOKEN_SECRET`).

mod backlog;
mod flood;
mod ingest;
mod reads;
mod scale;
mod throughput;
mod workshops;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use ics_auth::{Principal, mint_token};
use ics_client::{ClientTls, RetryingChannel};
use ics_proto::events::v1::{CommandOptions, Date, OrganisationKind};
use ics_proto::reporting::v1::{
    GetOverviewRequest, Overview, Scope, WatchOverviewRequest,
    reporting_service_client::ReportingServiceClient, scope,
};
use ics_proto::trusts::v1::{
    LinkOrganisationRequest, RegisterOrganisationRequest, RenameOrganisationRequest,
    trusts_service_client::TrustsServiceClient,
};
use tokio::sync::Mutex;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The ICS the benchmark's trusts belong to: a made-up ODS code, not a real ICB.
pub(crate) const BENCH_ICS: &str = "QZB";

#[derive(Debug, Parser)]
#[command(
    name = "ics-bench",
    about = "Command latency, freshness and bulk ingest benchmark"
)]
struct Cli {
    #[arg(long, env = "ICS_TRUSTS_URL", default_value = "http://127.0.0.1:50051")]
    trusts_url: String,
    #[command(flatten)]
    tls: ics_client::ClientTlsArgs,
    #[arg(
        long,
        env = "ICS_REPORTING_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    reporting_url: String,
    #[arg(
        long,
        env = "ICS_WORKSHOPS_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    workshops_url: String,
    #[arg(
        long,
        env = "ICS_METRICS_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    metrics_url: String,
    #[arg(long, env = "ICS_TOKEN_SECRET", hide_env_values = true)]
    token_secret: String,
    #[arg(long, env = "ICS_TOKEN_ISSUER", default_value = "ics")]
    token_issuer: String,
    #[arg(long, env = "ICS_TOKEN_AUDIENCE", default_value = "ics-platform")]
    token_audience: String,
    /// Trusts the commands are spread over.
    #[arg(long, default_value_t = 100)]
    trusts: usize,
    /// Arrival rate of the latency run (commands per second).
    #[arg(long, default_value_t = 500)]
    latency_rate: u32,
    /// Arrival rate of the freshness run.
    #[arg(long, default_value_t = 200)]
    freshness_rate: u32,
    /// Length of each measured run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Arrival rate of the workshop command runs.
    #[arg(long, default_value_t = 200)]
    workshop_rate: u32,
    /// Skip the workshop runs (e.g. against a deployment without the workshops service).
    #[arg(long)]
    no_workshops: bool,
    /// Run only the workshop runs, then the board reads (over the workshops they leave).
    #[arg(long, conflicts_with = "no_workshops")]
    workshops_only: bool,
    /// Workshops reported out in the ICS before the outcome freshness is measured (the
    /// measured run adds its own): 18,000 puts 20,000 in the ICS.
    #[arg(long, default_value_t = 18_000)]
    workshop_background: usize,
    /// Skip the bulk ingest run.
    #[arg(long)]
    no_ingest: bool,
    /// Run only the bulk ingest (after setting up the trusts).
    #[arg(long, conflicts_with = "no_ingest")]
    ingest_only: bool,
    #[command(flatten)]
    ingest: ingest::IngestArgs,
    #[command(flatten)]
    flood: flood::FloodArgs,
    #[command(flatten)]
    throughput: throughput::ThroughputArgs,
    #[command(flatten)]
    reads: reads::ReadArgs,
    #[command(flatten)]
    backlog: backlog::BacklogArgs,
    #[command(flatten)]
    scale: scale::ScaleArgs,
    /// Only delete the JetStream streams of this subject prefix and exit: `scripts/bench` cleans
    /// up its throw-away deployment with it. Never point it at a real deployment's prefix.
    #[arg(long)]
    delete_streams_of_prefix: Option<String>,
    #[arg(long, env = "ICS_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Unmeasured warm-up before each run.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
}

/// The measures run on their own (`--…-only`) or as part of the whole benchmark.
impl Cli {
    async fn throughput(&self, clients: &Clients) -> anyhow::Result<()> {
        let admin_urls = self.admin_urls();
        throughput::run(
            clients,
            &admin_urls,
            self.ingest.database_url.as_deref(),
            self.trusts,
            self.seconds,
            &self.throughput,
        )
        .await
    }

    /// Board reads of the ICSs given, each request for the next in turn.
    async fn reads(&self, clients: &Clients, icss: &[String]) -> anyhow::Result<()> {
        reads::run(
            clients,
            &self.reporting_url,
            icss,
            self.seconds,
            &self.reads,
        )
        .await
    }

    /// The ICS-scale data set; returns its ICSs.
    async fn scale(&self, clients: &Clients) -> anyhow::Result<Vec<String>> {
        scale::build(clients, &self.metrics_url, &self.workshops_url, &self.scale).await
    }

    async fn workshops(&self, clients: &Clients) -> anyhow::Result<()> {
        workshops::run(
            clients,
            &self.workshops_url,
            &self.admin_urls(),
            self.workshop_rate,
            self.seconds,
            self.workshop_background,
        )
        .await
    }

    async fn backlog(&self, clients: &Clients) -> anyhow::Result<()> {
        let admin_urls = self.admin_urls();
        let database_url = self.ingest.database_url.as_deref();
        backlog::run(
            clients,
            &admin_urls,
            &self.nats_url,
            self.trusts,
            database_url,
            &self.throughput.server_pids,
            &self.backlog,
        )
        .await
    }

    async fn ingest(&self, clients: &Clients) -> anyhow::Result<()> {
        ingest::run(
            clients,
            &self.metrics_url,
            &self.admin_urls(),
            self.trusts,
            &self.ingest,
            &self.throughput.server_pids,
        )
        .await
    }

    /// The quiet start every timed window gets ([`throughput::quiet`]), on this deployment.
    async fn quiet(&self, clients: &Clients) -> anyhow::Result<()> {
        throughput::quiet(
            clients,
            &self.admin_urls(),
            self.ingest.database_url.as_deref(),
        )
        .await
    }

    /// Every service's URL, reporting first: where the admin API of each is.
    fn admin_urls(&self) -> Vec<&str> {
        vec![
            self.reporting_url.as_str(),
            self.trusts_url.as_str(),
            self.workshops_url.as_str(),
            self.metrics_url.as_str(),
        ]
    }
}

#[derive(Clone)]
pub(crate) struct Clients {
    channel: RetryingChannel,
    tls: ClientTls,
    trusts: TrustsServiceClient<RetryingChannel>,
    reporting: ReportingServiceClient<RetryingChannel>,
    /// The reporting service's channel, for calls made without the generated client.
    reporting_channel: RetryingChannel,
    operator: String,
    board: String,
}

pub(crate) fn authorized<T>(token: &str, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

pub(crate) fn options(request_id: String) -> Option<CommandOptions> {
    Some(CommandOptions {
        request_id,
        expected_version: None,
    })
}

pub(crate) fn trust_code(index: usize) -> String {
    format!("B{index:04}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(prefix) = &cli.delete_streams_of_prefix {
        return delete_streams(&cli.nats_url, prefix).await;
    }
    let token = |principal: &Principal| {
        mint_token(
            &cli.token_secret,
            &cli.token_issuer,
            &cli.token_audience,
            principal,
            Duration::from_secs(3600),
        )
    };
    let tls = ClientTls::from(&cli.tls);
    let trusts_channel = connect(&cli.trusts_url, &tls).await?;
    let reporting_channel = connect(&cli.reporting_url, &tls).await?;
    let clients = Clients {
        channel: trusts_channel.clone(),
        trusts: TrustsServiceClient::new(trusts_channel),
        reporting: ReportingServiceClient::new(reporting_channel.clone()),
        reporting_channel,
        tls,
        operator: token(&Principal::Operator)?,
        board: token(&Principal::BoardReader {
            ics_ods_code: Some(BENCH_ICS.to_string()),
            programme_id: None,
        })?,
    };
    setup(&clients, cli.trusts).await?;
    wait_for_members(&clients, cli.trusts).await?;

    println!("ics-bench: {} trusts in ICS {BENCH_ICS}", cli.trusts);
    if cli.ingest_only {
        return cli.ingest(&clients).await;
    }
    let trust_writer = |ods_code: &str| {
        Ok(token(&Principal::TrustWriter {
            ods_code: ods_code.to_owned(),
        })?)
    };
    if cli.flood.flood_only {
        return flood::run(&clients, trust_writer, cli.seconds, &cli.flood).await;
    }
    if cli.backlog.backlog_only {
        return cli.backlog(&clients).await;
    }
    let bench_ics = [BENCH_ICS.to_owned()];
    if cli.workshops_only {
        cli.workshops(&clients).await?;
        return cli.reads(&clients, &bench_ics).await;
    }
    if cli.reads.reads_only {
        return cli.reads(&clients, &bench_ics).await;
    }
    if cli.scale.scale_only {
        let icss = cli.scale(&clients).await?;
        cli.quiet(&clients).await?;
        return cli.reads(&clients, &icss).await;
    }
    if cli.throughput.throughput_only {
        return cli.throughput(&clients).await;
    }
    let run = Run {
        clients: clients.clone(),
        trusts: cli.trusts,
        sequence: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    };
    let baseline = run
        .health_checks(cli.latency_rate, Duration::from_secs(cli.seconds))
        .await?;
    baseline.print(&format!(
        "transport floor: grpc.health.v1 Check (no database) at {}/s",
        cli.latency_rate
    ));
    if let Some(database_url) = cli.ingest.database_url.as_deref() {
        let commits = durability_floor(
            database_url,
            cli.latency_rate,
            Duration::from_secs(cli.seconds),
        )
        .await?;
        commits.print(&format!(
            "durability floor: one-row INSERT, committed, on the deployment's PostgreSQL (no gRPC) at {}/s",
            cli.latency_rate
        ));
    }

    run.commands(
        cli.latency_rate,
        Duration::from_secs(cli.warmup_seconds),
        None,
    )
    .await?;
    cli.quiet(&clients).await?;
    let latency = run
        .commands(cli.latency_rate, Duration::from_secs(cli.seconds), None)
        .await?;
    latency.print(&format!(
        "single command latency (RenameOrganisation) at {}/s for {} s",
        cli.latency_rate, cli.seconds
    ));
    println!("  target: p50 <= 2 ms, p99 <= 5 ms, 0 errors (at 500/s)");

    run.commands(
        cli.freshness_rate,
        Duration::from_secs(cli.warmup_seconds),
        None,
    )
    .await?;
    cli.quiet(&clients).await?;
    let watcher = Watcher::start(&clients).await?;
    let freshness_run = run
        .commands(
            cli.freshness_rate,
            Duration::from_secs(cli.seconds),
            Some(watcher.clone()),
        )
        .await?;
    // Give the last commands time to reach the projection.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let freshness = watcher.freshness().await;
    drop(watcher);
    freshness_run.print(&format!(
        "command latency during the freshness run at {}/s",
        cli.freshness_rate
    ));
    freshness.print(&format!(
        "freshness (ack -> visible on a board's live watch) at {}/s",
        cli.freshness_rate
    ));
    println!("  target: p99 <= 100 ms (at 1,000/s: --freshness-rate 1000)");

    if !cli.throughput.no_throughput {
        cli.throughput(&clients).await?;
    }
    if !cli.reads.no_reads {
        let icss = if cli.scale.no_scale {
            bench_ics.to_vec()
        } else {
            let icss = cli.scale(&clients).await?;
            // The reads measure a settled deployment, not one still applying the data set or
            // writing it back: the build leaves tens of megabytes of JetStream's files dirty,
            // which the kernel writes back at once 30 s later, inside the reads' window.
            cli.quiet(&clients).await?;
            icss
        };
        cli.reads(&clients, &icss).await?;
    }
    if !cli.no_workshops {
        cli.workshops(&clients).await?;
    }
    if !cli.flood.no_flood {
        flood::run(&clients, trust_writer, cli.seconds, &cli.flood).await?;
    }
    cli.backlog(&clients).await?;
    if !cli.no_ingest {
        cli.ingest(&clients).await?;
    }
    Ok(())
}

/// Deletes the streams `<PREFIX>_*` that a throw-away deployment created.
async fn delete_streams(nats_url: &str, prefix: &str) -> anyhow::Result<()> {
    let nats = async_nats::connect(nats_url).await?;
    let jetstream = async_nats::jetstream::new(nats);
    let wanted = format!("{}_", prefix.to_uppercase());
    let mut names = jetstream.stream_names();
    let mut doomed = Vec::new();
    while let Some(name) = names.next().await {
        let name = name?;
        if name.starts_with(&wanted) {
            doomed.push(name);
        }
    }
    for name in doomed {
        jetstream.delete_stream(&name).await?;
    }
    Ok(())
}

/// A channel that retries calls a restarting or overloaded server could not take, with the
/// same request id; a retried call's latency includes its retries. An https:// URL gets TLS.
pub(crate) async fn connect(url: &str, tls: &ClientTls) -> anyhow::Result<RetryingChannel> {
    let channel = ics_client::endpoint(url, tls)?
        .connect()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    Ok(RetryingChannel::new(channel))
}

/// Registers the benchmark ICS and its trusts; deterministic request ids make it re-runnable.
async fn setup(clients: &Clients, trusts: usize) -> anyhow::Result<()> {
    let mut client = clients.trusts.clone();
    client
        .register_organisation(authorized(
            &clients.operator,
            RegisterOrganisationRequest {
                options: options(format!("bench-register-{BENCH_ICS}")),
                ods_code: BENCH_ICS.to_string(),
                name: "Benchmark ICB (synthetic)".to_string(),
                kind: OrganisationKind::Icb as i32,
            },
        )?)
        .await?;
    for index in 0..trusts {
        let code = trust_code(index);
        client
            .register_organisation(authorized(
                &clients.operator,
                RegisterOrganisationRequest {
                    options: options(format!("bench-register-{code}")),
                    ods_code: code.clone(),
                    name: format!("Benchmark trust {index}"),
                    kind: OrganisationKind::Trust as i32,
                },
            )?)
            .await?;
        client
            .link_organisation(authorized(
                &clients.operator,
                LinkOrganisationRequest {
                    options: options(format!("bench-link-{code}")),
                    ods_code: code,
                    parent_ods_code: BENCH_ICS.to_string(),
                    valid_from: Some(Date {
                        year: 2020,
                        month: 1,
                        day: 1,
                    }),
                },
            )?)
            .await?;
    }
    Ok(())
}

pub(crate) fn ics_scope() -> Option<Scope> {
    scope_of(BENCH_ICS)
}

pub(crate) fn scope_of(ics_ods_code: &str) -> Option<Scope> {
    Some(Scope {
        scope: Some(scope::Scope::IcsOdsCode(ics_ods_code.to_string())),
    })
}

async fn wait_for_members(clients: &Clients, trusts: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reporting = clients.reporting.clone();
    loop {
        let overview = reporting
            .get_overview(authorized(
                &clients.board,
                GetOverviewRequest {
                    scope: ics_scope(),
                    as_of: None,
                },
            )?)
            .await;
        if overview.is_ok_and(|overview| overview.get_ref().trusts.len() == trusts) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "reporting did not show the benchmark trusts within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Run {
    clients: Clients,
    trusts: usize,
    sequence: Arc<std::sync::atomic::AtomicUsize>,
}

/// Latencies of one run, in microseconds.
pub(crate) struct Sample {
    /// From the scheduled send time (open model: includes any delay in sending).
    latencies: Vec<u64>,
    /// From the moment the request was actually handed to the client: the gap between the two
    /// lines is the generator's own lateness (a busy machine delays the sending task too).
    from_send: Vec<u64>,
    errors: usize,
    sent: usize,
}

impl Sample {
    /// A quantile (0.99 for p99) of the latencies from the scheduled send, in milliseconds.
    fn percentile(&self, quantile: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        quantile_ms(&sorted, quantile)
    }

    /// A quantile of the latencies from the actual send (not the scheduled one), in milliseconds.
    fn send_percentile(&self, quantile: f64) -> f64 {
        let mut sorted = self.from_send.clone();
        sorted.sort_unstable();
        quantile_ms(&sorted, quantile)
    }

    fn print(&self, title: &str) {
        println!("{title}");
        println!(
            "  sent {}, ok {}, errors {}",
            self.sent,
            self.latencies.len(),
            self.errors
        );
        if self.from_send.is_empty() {
            print_percentiles("", &self.latencies);
        } else {
            print_percentiles("from scheduled send: ", &self.latencies);
            print_percentiles("from actual send:    ", &self.from_send);
        }
    }
}

/// How many requests `rate` per second makes in `duration`.
pub(crate) fn count(rate: u32, duration: Duration) -> usize {
    (duration.as_secs_f64() * f64::from(rate)) as usize
}

/// Sends `total` requests at `rate` per second (open model): request `index` goes out at
/// start + index ÷ rate whatever happened to earlier ones, each on its own task. `send(index)`
/// prepares it; the future it returns performs it.
pub(crate) async fn open_loop<F, Fut>(rate: u32, total: usize, send: F) -> anyhow::Result<Sample>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    // Tokio's timer wheel rounds sleeps up to whole milliseconds, which would add up to a
    // millisecond of the generator's own lateness to every figure. A thread with the OS timer
    // keeps the schedule instead and hands each tick to the runtime.
    let (ticks, mut scheduled_ticks) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        for index in 0..total {
            let scheduled = start + interval * u32::try_from(index).unwrap_or(u32::MAX);
            let now = Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            if ticks.send((index, scheduled)).is_err() {
                return;
            }
        }
    });
    let mut tasks = Vec::with_capacity(total);
    while let Some((index, scheduled)) = scheduled_ticks.recv().await {
        let request = send(index);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            request
                .await
                .map(|()| (scheduled.elapsed(), sent.elapsed()))
        }));
    }
    let mut sample = Sample {
        latencies: Vec::with_capacity(total),
        from_send: Vec::with_capacity(total),
        errors: 0,
        sent: total,
    };
    for task in tasks {
        match task.await? {
            Ok((from_scheduled, from_send)) => {
                sample.latencies.push(micros(from_scheduled));
                sample.from_send.push(micros(from_send));
            }
            Err(status) => {
                if sample.errors == 0 {
                    eprintln!("first error: {status}");
                }
                sample.errors += 1;
            }
        }
    }
    Ok(sample)
}

pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The median of ratios measured in pairs against the machine's noise, and every ratio to two
/// decimals in ascending order, as the measures that repeat a pair print them (NaN when none).
pub(crate) fn median_of_pairs(mut ratios: Vec<f64>) -> (f64, Vec<String>) {
    ratios.sort_by(f64::total_cmp);
    let median = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
    let written = ratios.iter().map(|ratio| format!("{ratio:.2}")).collect();
    (median, written)
}

/// A quantile of sorted microsecond latencies, in milliseconds (NaN when there are none).
fn quantile_ms(sorted: &[u64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

fn print_percentiles(label: &str, latencies: &[u64]) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let at = |quantile: f64| quantile_ms(&sorted, quantile);
    println!(
        "  {label}p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0)
    );
}

/// One-row INSERTs into a scratch table at a constant rate, each its own transaction: what a
/// durable commit alone costs on this machine's PostgreSQL and disk. Every acknowledged command
/// waits for at least one such commit, so this and the transport floor bound its latency from
/// below. The row is about an event's size.
async fn durability_floor(
    database_url: &str,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(database_url)
        .await
        .context("connecting for the durability floor")?;
    let table = format!("bench_commit_{}", std::process::id());
    sqlx::query(&format!(
        "CREATE TABLE {table} (id bigserial PRIMARY KEY, body bytea NOT NULL)"
    ))
    .execute(&pool)
    .await?;
    let insert: Arc<str> = format!("INSERT INTO {table} (body) VALUES ($1)").into();
    let body = vec![7_u8; 300];
    // Warm the pool's connections and their prepared statements first.
    open_loop(rate, count(rate, Duration::from_secs(1)), |_| {
        commit(pool.clone(), insert.clone(), body.clone())
    })
    .await?;
    // The same quiet start as the commands': nothing of the set-up left to write back.
    throughput::flush_writes(Some(database_url)).await?;
    let sample = open_loop(rate, count(rate, duration), |_| {
        commit(pool.clone(), insert.clone(), body.clone())
    })
    .await;
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await?;
    sample
}

async fn commit(pool: sqlx::PgPool, insert: Arc<str>, body: Vec<u8>) -> Result<(), tonic::Status> {
    sqlx::query(&insert)
        .bind(body)
        .execute(&pool)
        .await
        .map(|_| ())
        .map_err(|error| tonic::Status::unavailable(error.to_string()))
}

impl Run {
    /// Health checks at a constant rate: what the gRPC transport alone costs on this machine.
    async fn health_checks(&self, rate: u32, duration: Duration) -> anyhow::Result<Sample> {
        let channel = self.clients.channel.clone();
        open_loop(rate, count(rate, duration), |_| {
            let mut client = HealthClient::new(channel.clone());
            async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(|_| ())
            }
        })
        .await
    }

    /// Sends renames at a constant rate for `duration`.
    async fn commands(
        &self,
        rate: u32,
        duration: Duration,
        watcher: Option<Watcher>,
    ) -> anyhow::Result<Sample> {
        open_loop(rate, count(rate, duration), |_| {
            let sequence = self
                .sequence
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let code = trust_code(sequence % self.trusts);
            let mut client = self.clients.trusts.clone();
            let request = authorized(
                &self.clients.operator,
                RenameOrganisationRequest {
                    options: options(uuid::Uuid::now_v7().to_string()),
                    ods_code: code.clone(),
                    name: format!("Benchmark trust #{sequence}"),
                },
            );
            let watcher = watcher.clone();
            async move {
                let request =
                    request.map_err(|error| tonic::Status::internal(error.to_string()))?;
                client.rename_organisation(request).await?;
                if let Some(watcher) = watcher {
                    watcher.acked(code, sequence, Instant::now()).await;
                }
                Ok(())
            }
        })
        .await
    }
}

/// Watches the ICS overview and matches what it shows to acknowledged commands. The watch ends
/// when the last clone is dropped.
#[derive(Clone)]
struct Watcher {
    state: Arc<Mutex<WatchState>>,
    _watching: Arc<Watching>,
}

/// A task reading a watch, cancelled when dropped: a watch left open into the later runs would
/// have the server recompute its view after every change they make, and time that work as
/// theirs (a million-event catch-up with the earlier runs' watches open cost twice the CPU).
pub(crate) struct Watching(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Default)]
struct WatchState {
    /// Per trust: commands acked but not yet seen, by sequence number.
    pending: HashMap<String, Vec<(usize, Instant)>>,
    /// Per trust: the highest sequence number the watch has shown, and when.
    shown: HashMap<String, (usize, Instant)>,
    freshness: Vec<u64>,
}

fn sequence_of(name: &str) -> Option<usize> {
    name.rsplit_once('#')?.1.parse().ok()
}

impl Watcher {
    async fn start(clients: &Clients) -> anyhow::Result<Self> {
        let mut reporting = clients.reporting.clone();
        let mut updates = reporting
            .watch_overview(authorized(
                &clients.board,
                WatchOverviewRequest { scope: ics_scope() },
            )?)
            .await?
            .into_inner();
        let state = Arc::new(Mutex::new(WatchState::default()));
        let observed = state.clone();
        let watching = tokio::spawn(async move {
            while let Some(Ok(update)) = updates.next().await {
                let seen = Instant::now();
                if let Some(overview) = update.overview {
                    observed.lock().await.observe(&overview, seen);
                }
            }
        });
        let watcher = Watcher {
            state,
            _watching: Arc::new(Watching(watching)),
        };
        Ok(watcher)
    }

    async fn acked(&self, code: String, sequence: usize, acked: Instant) {
        let mut state = self.state.lock().await;
        // The watch may already have shown it (the update can overtake the ack).
        if let Some((shown, _)) = state.shown.get(&code)
            && *shown >= sequence
        {
            state.freshness.push(0);
            return;
        }
        state
            .pending
            .entry(code)
            .or_default()
            .push((sequence, acked));
    }

    async fn freshness(&self) -> Sample {
        let state = self.state.lock().await;
        let unseen: usize = state.pending.values().map(Vec::len).sum();
        Sample {
            latencies: state.freshness.clone(),
            from_send: Vec::new(),
            errors: unseen,
            sent: state.freshness.len() + unseen,
        }
    }
}

impl WatchState {
    fn observe(&mut self, overview: &Overview, seen: Instant) {
        for trust in &overview.trusts {
            let Some(sequence) = sequence_of(&trust.name) else {
                continue;
            };
            let newest = self
                .shown
                .get(&trust.ods_code)
                .is_none_or(|(shown, _)| sequence > *shown);
            if newest {
                self.shown.insert(trust.ods_code.clone(), (sequence, seen));
            }
            if let Some(pending) = self.pending.get_mut(&trust.ods_code) {
                let (visible, still): (Vec<_>, Vec<_>) = pending
                    .drain(..)
                    .partition(|(pending_sequence, _)| *pending_sequence <= sequence);
                *pending = still;
                for (_, acked) in visible {
                    let delay = seen.saturating_duration_since(acked);
                    self.freshness
                        .push(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::median_of_pairs;

    #[test]
    fn the_median_of_pairs_is_the_middle_ratio_and_every_ratio_is_written_in_order() {
        let (median, written) = median_of_pairs(vec![1.28, 1.244, 1.27]);
        assert_eq!(median, 1.27);
        assert_eq!(written, ["1.24", "1.27", "1.28"]);
        assert!(median_of_pairs(Vec::new()).0.is_nan());
    }
}
