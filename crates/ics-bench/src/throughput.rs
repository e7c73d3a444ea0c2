//! Throughput of single commands: closed loops at fixed concurrency, a sweep of arrival rates
//! for the highest one whose p99 stays within 10 ms, and what each 1,000 commands cost in CPU
//! seconds of the server, PostgreSQL and NATS, read from `/proc` so that the figure survives a
//! noisy machine. The rebuild of a projection from the record, timed through the admin API, is
//! measured after the backlog ([`crate::backlog`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ics_proto::admin::v1::admin_service_client::AdminServiceClient;
use ics_proto::admin::v1::{RebuildProjectionRequest, VerifyRequest};
use ics_proto::trusts::v1::RenameOrganisationRequest;

use anyhow::Context;
use sqlx::Connection;

use crate::{Clients, Sample, authorized, micros, open_loop, options, trust_code};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ThroughputArgs {
    /// Run only the throughput measures (closed loops, sweep, CPU cost, rebuild).
    #[arg(long)]
    pub throughput_only: bool,
    /// Skip the throughput measures.
    #[arg(long, conflicts_with = "throughput_only")]
    pub no_throughput: bool,
    /// Concurrencies of the closed loops.
    #[arg(long, value_delimiter = ',', default_value = "8,32")]
    pub concurrency: Vec<usize>,
    /// Arrival rates the sweep tries, in order, until p99 exceeds the bound.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "250,500,750,1000,1500,2000,3000,4000,5000"
    )]
    pub sweep_rates: Vec<u32>,
    /// The p99 the sweep holds to, in milliseconds.
    #[arg(long, default_value_t = 10.0)]
    pub sweep_p99_ms: f64,
    /// Seconds of each sweep step: at 250/s, 10 s puts 25 commands above p99, so that one
    /// stall of the machine does not decide a step alone.
    #[arg(long, default_value_t = 10)]
    pub sweep_seconds: u64,
    /// Seconds the sweep's highest rate is then held from one quiet start (0: not held).
    #[arg(long, default_value_t = 60)]
    pub hold_seconds: u64,
    /// The services' process ids, comma-separated, for their CPU seconds (`scripts/bench`
    /// passes them).
    #[arg(long, env = "ICS_BENCH_SERVER_PIDS", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
}

/// `1000000` as `1,000,000`.
fn thousands(number: usize) -> String {
    let digits = number.to_string();
    let mut written = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            written.push(',');
        }
        written.push(digit);
    }
    written
}

/// CPU seconds (user + system) of the processes that do the work, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSeconds {
    server: f64,
    postgres: f64,
    nats: f64,
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux this runs on; /proc reports CPU time in it.
    100.0
}

fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count after the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn processes_named(prefix: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim().starts_with(prefix))
        })
        .collect()
}

impl CpuSeconds {
    pub(crate) fn now(server_pids: &[u32]) -> CpuSeconds {
        let sum = |pids: Vec<u32>| pids.into_iter().filter_map(process_cpu).sum::<f64>();
        CpuSeconds {
            server: if server_pids.is_empty() {
                f64::NAN
            } else {
                sum(server_pids.to_vec())
            },
            postgres: sum(processes_named("postgres")),
            nats: sum(processes_named("nats-server")),
        }
    }

    pub(crate) fn since(self, before: CpuSeconds) -> CpuSeconds {
        CpuSeconds {
            server: self.server - before.server,
            postgres: self.postgres - before.postgres,
            nats: self.nats - before.nats,
        }
    }

    pub(crate) fn print_per_thousand(self, commands: usize, what: &str) {
        self.print_per(commands, 1_000, what);
    }

    /// CPU seconds per `unit` of `count` things done.
    pub(crate) fn print_per(self, count: usize, unit: usize, what: &str) {
        let per = |seconds: f64| seconds * unit as f64 / count.max(1) as f64;
        println!(
            "  CPU per {} {what}: icsd {:.3} s, PostgreSQL {:.3} s, NATS {:.3} s, total {:.3} s",
            thousands(unit),
            per(self.server),
            per(self.postgres),
            per(self.nats),
            per(self.server + self.postgres + self.nats)
        );
    }

    /// PostgreSQL's CPU seconds alone.
    pub(crate) fn postgres(self) -> f64 {
        self.postgres
    }
}

/// One rename of a trust, as every command measure sends it.
async fn rename(clients: &Clients, trusts: usize, sequence: usize) -> Result<(), tonic::Status> {
    let mut client = clients.trusts.clone();
    let request = authorized(
        &clients.operator,
        RenameOrganisationRequest {
            options: options(uuid::Uuid::now_v7().to_string()),
            ods_code: trust_code(sequence % trusts),
            name: format!("Benchmark trust #{sequence}"),
        },
    )
    .map_err(|error| tonic::Status::internal(error.to_string()))?;
    client.rename_organisation(request).await.map(|_| ())
}

/// `concurrency` workers each sending the next command as soon as the last is answered.
async fn closed_loop(
    clients: &Clients,
    trusts: usize,
    sequence: &Arc<AtomicUsize>,
    concurrency: usize,
    duration: Duration,
) -> (Sample, Duration) {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let clients = clients.clone();
            let sequence = sequence.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match rename(&clients, trusts, sequence.fetch_add(1, Ordering::Relaxed)).await {
                        Ok(()) => latencies.push(micros(sent.elapsed())),
                        Err(status) => {
                            if errors == 0 {
                                eprintln!("first error: {status}");
                            }
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut sample = Sample {
        latencies: Vec::new(),
        from_send: Vec::new(),
        errors: 0,
        sent: 0,
    };
    for worker in workers {
        if let Ok((latencies, errors)) = worker.await {
            sample.errors += errors;
            sample.sent += latencies.len() + errors;
            sample.latencies.extend(latencies);
        }
    }
    (sample, started.elapsed())
}

/// Waits until every relay has published everything and every projection has applied it, so
/// that one measure does not pay for the backlog the one before left.
pub(crate) async fn settle(clients: &Clients, admin_urls: &[&str]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    for url in admin_urls {
        let mut admin = AdminServiceClient::new(crate::connect(url, &clients.tls).await?);
        loop {
            let verified = admin
                .verify(authorized(&clients.operator, VerifyRequest {})?)
                .await?
                .into_inner();
            if verified.caught_up() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{url} has not caught up after 120 s: {verified:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Events in the trusts service's log, which the renames grow by one per command: the sweep's
/// streams are as long as the runs before it left them (commands decide on the states kept in
/// memory, so their length should not matter; this shows that it does not).
async fn trusts_log_events(clients: &Clients, admin_urls: &[&str]) -> anyhow::Result<u64> {
    for url in admin_urls {
        let mut admin = AdminServiceClient::new(crate::connect(url, &clients.tls).await?);
        let verified = admin
            .verify(authorized(&clients.operator, VerifyRequest {})?)
            .await?
            .into_inner();
        if let Some(log) = verified.log.filter(|log| log.service == "trusts") {
            return Ok(log.log_events);
        }
    }
    anyhow::bail!("no service answered Verify for the trusts log")
}

/// Writes out what the measures before left in memory, so that a timed window does not pay for
/// it: PostgreSQL's dirty buffers (`CHECKPOINT`, when the benchmark has the database's URL),
/// then every page the kernel holds dirty (`sync`). JetStream does not sync its files itself
/// (every two minutes by default), and the kernel writes a page back only once it has been
/// dirty for 30 s, all the expired pages at once: a measure that followed the million-event
/// backlog or a minute of commands met a burst of tens of megabytes of writeback, during which
/// every commit's fsync waited 30 to 200 ms (seen on this machine's virtual disk, with an
/// independent fsync probe stalled at the same moments).
pub(crate) async fn flush_writes(database_url: Option<&str>) -> anyhow::Result<()> {
    if let Some(url) = database_url {
        let mut connection = sqlx::PgConnection::connect(url)
            .await
            .context("connecting for a checkpoint")?;
        sqlx::query("CHECKPOINT").execute(&mut connection).await?;
    }
    let synced = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status())
        .await?
        .context("running sync")?;
    anyhow::ensure!(synced.success(), "sync failed: {synced}");
    Ok(())
}

/// [`settle`], then [`flush_writes`]: the quiet start every timed window gets.
pub(crate) async fn quiet(
    clients: &Clients,
    admin_urls: &[&str],
    database_url: Option<&str>,
) -> anyhow::Result<()> {
    settle(clients, admin_urls).await?;
    flush_writes(database_url).await
}

pub(crate) async fn run(
    clients: &Clients,
    admin_urls: &[&str],
    database_url: Option<&str>,
    trusts: usize,
    seconds: u64,
    args: &ThroughputArgs,
) -> anyhow::Result<()> {
    let sequence = Arc::new(AtomicUsize::new(1_000_000));
    // Warm-up: connections, caches and the projections' first batches.
    closed_loop(clients, trusts, &sequence, 8, Duration::from_secs(2)).await;

    for &concurrency in &args.concurrency {
        quiet(clients, admin_urls, database_url).await?;
        let before = CpuSeconds::now(&args.server_pids);
        let (sample, elapsed) = closed_loop(
            clients,
            trusts,
            &sequence,
            concurrency,
            Duration::from_secs(seconds),
        )
        .await;
        let cpu = CpuSeconds::now(&args.server_pids).since(before);
        let rate = sample.latencies.len() as f64 / elapsed.as_secs_f64();
        println!(
            "closed loop, concurrency {concurrency}, {seconds} s: {rate:.0} commands/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
            sample.percentile(0.50),
            sample.percentile(0.99),
            sample.errors
        );
        cpu.print_per_thousand(sample.latencies.len(), "commands");
    }

    println!(
        "sweep: constant arrival rates, {} s each from a quiet start, until p99 > {} ms",
        args.sweep_seconds, args.sweep_p99_ms
    );
    // Each rate's commands at that rate for that long, latency counted from the scheduled send.
    let at_rate = |rate: u32, duration: Duration| {
        open_loop(rate, crate::count(rate, duration), |_| {
            let clients = clients.clone();
            let sequence = sequence.fetch_add(1, Ordering::Relaxed);
            async move { rename(&clients, trusts, sequence).await }
        })
    };
    println!(
        "  the trusts' log holds {} events over {trusts} trusts before the sweep",
        trusts_log_events(clients, admin_urls).await?,
    );
    let mut best = None;
    for &rate in &args.sweep_rates {
        quiet(clients, admin_urls, database_url).await?;
        let sample = at_rate(rate, Duration::from_secs(args.sweep_seconds)).await?;
        let p99 = sample.percentile(0.99);
        println!(
            "  {rate}/s: p50 {:.2} ms, p99 {p99:.2} ms (from the actual send: p99 {:.2} ms), errors {}",
            sample.percentile(0.50),
            sample.send_percentile(0.99),
            sample.errors
        );
        if p99 > args.sweep_p99_ms || sample.errors > 0 {
            break;
        }
        best = Some(rate);
    }
    let Some(rate) = best else {
        println!(
            "  no rate tried kept p99 <= {} ms (target >= 4,000/s)",
            args.sweep_p99_ms
        );
        return Ok(());
    };
    println!(
        "  highest rate with p99 <= {} ms: {rate}/s (target >= 4,000/s)",
        args.sweep_p99_ms
    );
    if args.hold_seconds > 0 {
        // A step is shorter than the 30 s a page stays dirty before the kernel writes it back,
        // so no step meets the writeback of its own writes; the hold does, every few seconds.
        quiet(clients, admin_urls, database_url).await?;
        let sample = at_rate(rate, Duration::from_secs(args.hold_seconds)).await?;
        println!(
            "  {rate}/s held for {} s, the writeback of its own writes included: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}",
            args.hold_seconds,
            sample.percentile(0.50),
            sample.percentile(0.99),
            sample.percentile(1.0),
            sample.errors
        );
    }

    Ok(())
}

/// Rebuilds the reporting overview from its source stream and reports events per second
/// (`admin_url`: the reporting service's).
/// Returns the events the rebuild applied.
pub(crate) async fn rebuild(clients: &Clients, admin_url: &str) -> anyhow::Result<usize> {
    let channel = crate::connect(admin_url, &clients.tls).await?;
    let mut admin = AdminServiceClient::new(channel);
    let started = Instant::now();
    let rebuilt = admin
        .rebuild_projection(authorized(
            &clients.operator,
            RebuildProjectionRequest {
                projection: "overview".to_owned(),
            },
        )?)
        .await?
        .into_inner();
    let elapsed = started.elapsed();
    println!(
        "rebuild of the overview projection: {} events in {:.2} s = {:.0} events/s (target >= 100,000/s over >= 1,000,000 events)",
        rebuilt.events_applied,
        elapsed.as_secs_f64(),
        rebuilt.events_applied as f64 / elapsed.as_secs_f64()
    );
    Ok(usize::try_from(rebuilt.events_applied)?)
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn a_unit_is_written_with_thousands_separated() {
        let written: Vec<String> = [0, 999, 1_000, 12_345, 1_000_000]
            .into_iter()
            .map(thousands)
            .collect();
        assert_eq!(written, ["0", "999", "1,000", "12,345", "1,000,000"]);
    }
}
