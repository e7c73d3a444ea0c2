//! A backlog of a million events, and how fast the platform works through it: the relay's
//! publishing, a projection's catch-up after an outage, and a projection's rebuild from the
//! record.
//!
//! The events are renames of the benchmark's trusts, appended straight into the trusts log in
//! chunks (what a long outage of the bus, or a back-load, leaves behind), because a million
//! commands through the API would take the benchmark a quarter of an hour. They are the events
//! the API would have recorded: one per rename, each the next version of its trust's stream.
//! With the reporting service's process id the reporting service is frozen (SIGSTOP) while the
//! backlog is appended and published, and its catch-up timed from when it resumes (SIGCONT):
//! a projection outage. Without it the catch-up runs alongside the relay.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use async_nats::jetstream::context::ConsumerInfoErrorKind;

use ics_proto::admin::v1::VerifyRequest;
use ics_proto::admin::v1::admin_service_client::AdminServiceClient;
use ics_proto::events::v1::OrganisationRenamed;
use prost::Message as _;
use sqlx::Row as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::throughput::CpuSeconds;
use crate::{Clients, authorized, trust_code};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BacklogArgs {
    /// Run only the backlog measures (relay, catch-up, rebuild over --backlog-events).
    #[arg(long)]
    pub backlog_only: bool,
    /// Events appended to the log for the backlog measures; 0 skips them.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog_events: usize,
    /// The reporting service's process id: it is stopped (SIGSTOP) while the backlog is
    /// appended and published, then resumed, so its catch-up is measured after a projection
    /// outage. Without it the catch-up runs alongside the relay (`scripts/bench` passes it).
    #[arg(long, env = "ICS_BENCH_REPORTING_PID")]
    pub reporting_pid: Option<u32>,
    /// The deployment's subject prefix, naming its streams and consumers: the waits read
    /// JetStream's counters for the trusts stream and the overview's consumer.
    #[arg(long, env = "ICS_SUBJECT_PREFIX")]
    pub subject_prefix: Option<String>,
}

/// The projection whose catch-up is timed.
const OVERVIEW: &str = "overview";

const CHUNK: usize = 10_000;

pub(crate) async fn run(
    clients: &Clients,
    admin_urls: &[&str],
    nats_url: &str,
    trusts: usize,
    database_url: Option<&str>,
    server_pids: &[u32],
    args: &BacklogArgs,
) -> anyhow::Result<()> {
    if args.backlog_events == 0 {
        return Ok(());
    }
    let Some(database_url) = database_url else {
        println!("backlog: skipped (no ICS_DATABASE_URL)");
        return Ok(());
    };
    let Some(subject_prefix) = args.subject_prefix.as_deref() else {
        println!("backlog: skipped (no ICS_SUBJECT_PREFIX)");
        return Ok(());
    };
    crate::throughput::settle(clients, admin_urls).await?;
    let mut progress = Progress::new(nats_url, subject_prefix, admin_urls, clients).await?;
    let published_before = progress.last_sequence().await?;
    let options: PgConnectOptions = database_url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.options([("search_path", "trusts")]))
        .await?;
    let mut heads = std::collections::HashMap::new();
    for row in sqlx::query(
        "SELECT stream_id, max(stream_version) AS head FROM events
         WHERE stream_id LIKE 'organisation-B%' GROUP BY stream_id",
    )
    .fetch_all(&pool)
    .await?
    {
        heads.insert(
            row.try_get::<String, _>("stream_id")?,
            row.try_get::<i64, _>("head")?,
        );
    }

    // A projection outage: the reporting service is frozen while the backlog is appended and
    // published, as if it were down, so that its catch-up is measured on its own.
    if let Some(pid) = args.reporting_pid {
        signal(pid, "STOP")?;
    }
    let appending = Instant::now();
    let mut appended = 0;
    while appended < args.backlog_events {
        let size = CHUNK.min(args.backlog_events - appended);
        let mut stream_ids = Vec::with_capacity(size);
        let mut versions = Vec::with_capacity(size);
        let mut event_ids = Vec::with_capacity(size);
        let mut organisations = Vec::with_capacity(size);
        let mut payloads = Vec::with_capacity(size);
        for index in appended..appended + size {
            let ods_code = trust_code(index % trusts);
            let stream_id = format!("organisation-{ods_code}");
            let head = heads.entry(stream_id.clone()).or_insert(0);
            *head += 1;
            versions.push(*head);
            stream_ids.push(stream_id);
            event_ids.push(uuid::Uuid::now_v7());
            payloads.push(
                OrganisationRenamed {
                    ods_code: ods_code.clone(),
                    previous_name: String::new(),
                    name: format!("Backlog trust #{index}"),
                }
                .encode_to_vec(),
            );
            organisations.push(ods_code);
        }
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
                 organisation, payload, request_id, correlation_id, causation_id, traceparent,
                 tracestate, principal)
             SELECT stream_id, version, event_id, $5, 1, organisation, payload, event_id::text,
                 event_id::text, '', '', '', 'operator'
             FROM UNNEST($1::text[], $2::bigint[], $3::uuid[], $4::text[], $6::bytea[])
                 AS backlog (stream_id, version, event_id, organisation, payload)",
        )
        .bind(&stream_ids)
        .bind(&versions)
        .bind(&event_ids)
        .bind(&organisations)
        .bind(<OrganisationRenamed as ics_proto::EventName>::EVENT_TYPE)
        .bind(&payloads)
        .execute(&pool)
        .await?;
        appended += size;
    }
    sqlx::query("SELECT pg_notify('trusts_events_appended', '')")
        .execute(&pool)
        .await?;
    let appended_in = appending.elapsed();
    println!(
        "backlog: {appended} events appended to the trusts log in {:.1} s",
        appended_in.as_secs_f64()
    );

    let rate = |elapsed: Duration| appended as f64 / elapsed.as_secs_f64();
    let published = published_before + appended as u64;
    let started = Instant::now();
    let cpu_before = CpuSeconds::now(server_pids);
    if let Some(pid) = args.reporting_pid {
        progress.wait_published(published).await?;
        let published_in = started.elapsed();
        let cpu = CpuSeconds::now(server_pids).since(cpu_before);
        println!(
            "  relay (reporting stopped): published in {:.1} s = {:.0} events/s",
            published_in.as_secs_f64(),
            rate(published_in)
        );
        cpu.print_per_thousand(
            appended,
            "events published (while the workshops' and metrics' references consume them)",
        );
        // The catch-up starts quiet, as every other timed window does: the other services'
        // projections of the trusts log done with the backlog (reporting, stopped, cannot
        // answer), and the append's and the publication's writes flushed. Otherwise it shared
        // the two cores with the references' own catch-up and met the kernel's writeback of
        // a million events' stream files.
        crate::throughput::settle(clients, &admin_urls[1..]).await?;
        crate::throughput::flush_writes(Some(database_url)).await?;
        let resumed = Instant::now();
        let cpu_before = CpuSeconds::now(server_pids);
        signal(pid, "CONT")?;
        progress.wait_overview_applied(published).await?;
        let caught_up_in = resumed.elapsed();
        let cpu = CpuSeconds::now(server_pids).since(cpu_before);
        println!(
            "  catch-up of the overview projection after its outage: {:.1} s = {:.0} events/s (target >= 50,000/s)",
            caught_up_in.as_secs_f64(),
            rate(caught_up_in)
        );
        cpu.print_per_thousand(appended, "events applied by the overview");
    } else {
        progress.wait_published(published).await?;
        let published_in = started.elapsed();
        progress.wait_overview_applied(published).await?;
        let caught_up_in = started.elapsed();
        let cpu = CpuSeconds::now(server_pids).since(cpu_before);
        println!(
            "  relay: published in {:.1} s = {:.0} events/s",
            published_in.as_secs_f64(),
            rate(published_in)
        );
        println!(
            "  catch-up of the overview projection (relay included): {:.1} s = {:.0} events/s (target >= 50,000/s)",
            caught_up_in.as_secs_f64(),
            rate(caught_up_in)
        );
        cpu.print_per_thousand(appended, "events published and applied");
    }
    crate::throughput::quiet(clients, admin_urls, Some(database_url)).await?;
    let cpu_before = CpuSeconds::now(server_pids);
    let rebuilt = crate::throughput::rebuild(clients, admin_urls[0]).await?;
    CpuSeconds::now(server_pids)
        .since(cpu_before)
        .print_per_thousand(rebuilt, "events rebuilt");
    Ok(())
}

/// Sends a signal to a process by its id (`kill -STOP` / `kill -CONT`).
fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// JetStream's own counters for the trusts stream and the overview's consumer on it: one small
/// request each. The waits poll these, not `Verify`, which counts the whole log and every
/// projection's streams: polled every 100 ms through a catch-up over a full run's logs, each
/// call took the database 0.2-0.5 s of parallel scans, as much of this two-core machine as the
/// catch-up it was timing. `Verify` is asked once, to confirm what the counters showed.
struct Progress {
    stream: jetstream::stream::Stream,
    overview_consumer: String,
    trusts_admin: AdminServiceClient<ics_client::RetryingChannel>,
    reporting_admin: AdminServiceClient<ics_client::RetryingChannel>,
    operator: String,
    deadline: Instant,
}

impl Progress {
    async fn new(
        nats_url: &str,
        subject_prefix: &str,
        admin_urls: &[&str],
        clients: &Clients,
    ) -> anyhow::Result<Self> {
        let jetstream = jetstream::new(async_nats::connect(nats_url).await?);
        let stream_name = ics_eventstore::subject::stream_name(subject_prefix, "trusts");
        let stream = jetstream
            .get_stream(&stream_name)
            .await
            .with_context(|| format!("no stream {stream_name}"))?;
        let admin = |url| async move {
            anyhow::Ok(AdminServiceClient::new(
                crate::connect(url, &clients.tls).await?,
            ))
        };
        Ok(Progress {
            stream,
            overview_consumer: ics_projection::consumer_name(subject_prefix, OVERVIEW),
            trusts_admin: admin(admin_urls[1]).await?,
            reporting_admin: admin(admin_urls[0]).await?,
            operator: clients.operator.clone(),
            deadline: Instant::now() + Duration::from_secs(1800),
        })
    }

    /// The sequence of the stream's last message.
    async fn last_sequence(&self) -> anyhow::Result<u64> {
        Ok(self.stream.get_info().await?.state.last_sequence)
    }

    /// Whether the overview has acknowledged every message up to `sequence`: it acks a batch
    /// only after the batch's transaction committed.
    async fn overview_acked(&self, sequence: u64) -> anyhow::Result<bool> {
        match self.stream.consumer_info(&self.overview_consumer).await {
            Ok(info) => Ok(info.ack_floor.stream_sequence >= sequence
                && info.num_ack_pending == 0
                && info.num_pending == 0),
            // The runner recreates its consumer after an interruption.
            Err(error) if error.kind() == ConsumerInfoErrorKind::NotFound => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Waits until the stream holds `sequence` (the relay has published the backlog), then has
    /// `Verify` confirm that nothing of the log is unpublished.
    async fn wait_published(&mut self, sequence: u64) -> anyhow::Result<()> {
        while self.last_sequence().await? < sequence {
            anyhow::ensure!(
                Instant::now() < self.deadline,
                "the backlog is not published after 30 min"
            );
            tokio::time::sleep(POLL).await;
        }
        let log = self
            .trusts_admin
            .verify(authorized(&self.operator, VerifyRequest {})?)
            .await?
            .into_inner()
            .log
            .unwrap_or_default();
        anyhow::ensure!(
            log.unpublished_events == 0,
            "the stream holds sequence {sequence} but Verify counts {} events unpublished",
            log.unpublished_events
        );
        Ok(())
    }

    /// Waits until the overview has acknowledged the stream up to `sequence`, then has `Verify`
    /// confirm that it is behind on no stream.
    async fn wait_overview_applied(&mut self, sequence: u64) -> anyhow::Result<()> {
        while !self.overview_acked(sequence).await? {
            anyhow::ensure!(
                Instant::now() < self.deadline,
                "the backlog is not applied after 30 min"
            );
            tokio::time::sleep(POLL).await;
        }
        let behind: u64 = self
            .reporting_admin
            .verify(authorized(&self.operator, VerifyRequest {})?)
            .await?
            .into_inner()
            .projections
            .iter()
            .filter(|check| check.projection == OVERVIEW)
            .map(|check| check.behind())
            .sum();
        anyhow::ensure!(
            behind == 0,
            "the overview acknowledged sequence {sequence} but Verify finds it {behind} behind"
        );
        Ok(())
    }
}

const POLL: Duration = Duration::from_millis(10);
