//! Bulk observation ingest: how fast a trust's back-load is acknowledged as durable, against how
//! fast `COPY` loads the same observations one row each into a plain table on the same Postgres
//! in the same run; and how soon after the last acknowledgement all of it is visible in the
//! ICS measure view.
//!
//! The data: every benchmark trust × `measures` proportion measures × `periods` consecutive days
//! (numerator and denominator, value derived), sent as chunks of `chunk` observations over
//! `streams` concurrent client-streaming calls, each carrying whole trusts in period order — the
//! shape of a warehouse export.

use std::time::{Duration, Instant};

use anyhow::Context;
use ics_client::RetryingChannel;
use ics_proto::events::v1::{
    Date, ImprovementDirection, MeasureDefinition, MeasureFrequency, MeasureScoring,
    SpcConflictRule, SpcRuleSet,
};
use ics_proto::metrics::v1::{
    DefineMeasureRequest, IngestObservationsRequest, IngestSummary, ObservationInput,
    metrics_service_client::MetricsServiceClient,
};
use ics_proto::reporting::v1::GetMeasureViewRequest;
use prost::Message;
use sqlx::Connection;

use crate::throughput::CpuSeconds;
use crate::{BENCH_ICS, Clients, authorized, options, trust_code};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Proportion measures per trust in the ingest run.
    #[arg(long = "ingest-measures", default_value_t = 10)]
    pub measures: usize,
    /// Daily periods per series in the ingest run: by default ten years of daily figures, the
    /// back-load a hospital system sends when it joins (3,650,000 observations for 100 trusts
    /// and 10 measures). Smaller runs weigh the per-series cost (one append and SPC pass per
    /// series and batch) more than the per-observation cost.
    #[arg(long = "ingest-periods", default_value_t = 3_650)]
    pub periods: usize,
    /// Concurrent client-streaming calls.
    #[arg(long = "ingest-streams", default_value_t = 2)]
    pub streams: usize,
    /// Observations per streamed message.
    #[arg(long = "ingest-chunk", default_value_t = 5_000)]
    pub chunk: usize,
    /// The deployment's database, for the `COPY` comparison (a scratch table is created and
    /// dropped there).
    #[arg(long, env = "ICS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Ingest and `COPY` pairs, each pair on measures of its own; the ratio given is their
    /// median, since on two shared cores one pair's ratio moved from 0.79 to 1.44 between runs.
    #[arg(long = "ingest-pairs", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub pairs: u16,
}

fn measure_code(index: usize) -> String {
    format!("BENCH_PROPORTION_{index:02}")
}

fn day(offset: usize) -> Date {
    let start = chrono::NaiveDate::from_ymd_opt(2019, 1, 1).unwrap_or_default();
    ics_proto::date::from_naive(start + chrono::Days::new(offset as u64))
}

/// The observations of one trust on the measures from `first_measure` on, deterministic, in
/// measure then period order.
fn observations_of(trust: usize, first_measure: usize, args: &IngestArgs) -> Vec<ObservationInput> {
    let ods_code = trust_code(trust);
    let mut observations = Vec::with_capacity(args.measures * args.periods);
    for measure in first_measure..first_measure + args.measures {
        let measure_code = measure_code(measure);
        for period in 0..args.periods {
            let denominator = 400.0 + ((trust * 7 + measure * 13 + period * 31) % 200) as f64;
            let numerator =
                (denominator * (0.85 + ((period * 17 + trust) % 10) as f64 / 100.0)).floor();
            let date = day(period);
            observations.push(ObservationInput {
                measure_code: measure_code.clone(),
                ods_code: ods_code.clone(),
                value_stream_id: String::new(),
                period_start: Some(date),
                period_end: Some(date),
                value: None,
                numerator: Some(numerator),
                denominator: Some(denominator),
                source: String::new(),
            });
        }
    }
    observations
}

async fn define_measures(
    metrics: &mut MetricsServiceClient<RetryingChannel>,
    operator: &str,
    measures: usize,
) -> anyhow::Result<()> {
    for index in 0..measures {
        let code = measure_code(index);
        metrics
            .define_measure(authorized(
                operator,
                DefineMeasureRequest {
                    options: options(format!("bench-define-{code}")),
                    definition: Some(MeasureDefinition {
                        code,
                        name: format!("Benchmark proportion {index}"),
                        description: String::new(),
                        unit: "%".into(),
                        direction: ImprovementDirection::Increase as i32,
                        scoring: MeasureScoring::Proportion as i32,
                        frequency: MeasureFrequency::Daily as i32,
                        target: Some(0.9),
                        rule_set: SpcRuleSet::MdcV25 as i32,
                        conflict_rule: SpcConflictRule::Improvement as i32,
                        display_scale: 100.0,
                    }),
                },
            )?)
            .await?;
    }
    Ok(())
}

pub(crate) async fn send(
    mut metrics: MetricsServiceClient<RetryingChannel>,
    operator: String,
    chunks: Vec<Vec<ObservationInput>>,
) -> anyhow::Result<IngestSummary> {
    let requests = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|observations| IngestObservationsRequest { observations }),
    );
    Ok(metrics
        .ingest_observations(authorized(&operator, requests)?)
        .await?
        .into_inner())
}

/// The ingest call's codec for messages encoded before the clock starts: each item is the
/// protobuf encoding of one `IngestObservationsRequest`, written to the wire as it is, so that
/// the timed run does not include the generator encoding millions of observations on the same
/// two cores (the `COPY` beside it sends a buffer built beforehand too). The summary is decoded
/// as the generated client decodes it.
struct PreEncoded;

struct PreEncodedEncoder;

impl tonic::codec::Encoder for PreEncodedEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buffer: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(buffer, &item);
        Ok(())
    }
}

impl tonic::codec::Codec for PreEncoded {
    type Encode = Vec<u8>;
    type Decode = IngestSummary;
    type Encoder = PreEncodedEncoder;
    type Decoder = tonic_prost::ProstDecoder<IngestSummary>;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// `IngestObservations` with messages already encoded (see [`PreEncoded`]).
async fn send_encoded(
    channel: RetryingChannel,
    operator: String,
    messages: Vec<Vec<u8>>,
) -> anyhow::Result<IngestSummary> {
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    grpc.ready()
        .await
        .map_err(|error| anyhow::anyhow!("the metrics service was not ready: {error}"))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/ics.metrics.v1.MetricsService/IngestObservations",
    );
    let requests = futures_util::stream::iter(messages);
    Ok(grpc
        .client_streaming(authorized(&operator, requests)?, path, PreEncoded)
        .await?
        .into_inner())
}

/// Waits until the metrics service knows every benchmark trust (it learns them from the trusts
/// service's events) by sending the last trust's first observation until it is accepted.
pub(crate) async fn wait_for_organisations(
    metrics: &MetricsServiceClient<RetryingChannel>,
    operator: &str,
    probe: ObservationInput,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let summary = send(
            metrics.clone(),
            operator.to_string(),
            vec![vec![probe.clone()]],
        )
        .await?;
        if summary.rejected == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the metrics service never accepted the probe: {:?}",
            summary.rejections
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn observations_in_view(clients: &Clients) -> anyhow::Result<u64> {
    // Polled every few milliseconds: a board's token would meet its own call rate
    // (ICS_TENANT_CALLS_PER_SEC) and fail the run, so the operator's is used; the read is the same.
    let view = clients
        .reporting
        .clone()
        .get_measure_view(authorized(
            &clients.operator,
            GetMeasureViewRequest {
                ics_ods_code: BENCH_ICS.to_string(),
                peer_group_id: String::new(),
                as_of: None,
            },
        )?)
        .await?
        .into_inner();
    Ok(view.observations)
}

fn csv_number(value: Option<f64>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

/// Loads the same observations with `COPY` into a plain table; returns rows per second, the
/// rows, and PostgreSQL's CPU seconds for them.
async fn copy_rate(
    database_url: &str,
    all: &[Vec<ObservationInput>],
) -> anyhow::Result<(f64, usize, f64)> {
    let mut connection = sqlx::PgConnection::connect(database_url)
        .await
        .context("connecting for the COPY comparison")?;
    let table = format!("bench_copy_{}", std::process::id());
    sqlx::query(&format!(
        "CREATE TABLE {table} (ods_code text, measure_code text, value_stream_id text,
             period_start date, period_end date, value double precision,
             numerator double precision, denominator double precision)"
    ))
    .execute(&mut connection)
    .await?;
    let mut data = String::new();
    let mut rows = 0;
    for observations in all {
        for observation in observations {
            let date =
                |date: &Option<Date>| date.as_ref().map(ics_proto::date::iso).unwrap_or_default();
            let value = match (observation.numerator, observation.denominator) {
                (Some(numerator), Some(denominator)) => Some(numerator / denominator),
                _ => observation.value,
            };
            data.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                observation.ods_code,
                observation.measure_code,
                observation.value_stream_id,
                date(&observation.period_start),
                date(&observation.period_end),
                csv_number(value),
                csv_number(observation.numerator),
                csv_number(observation.denominator),
            ));
            rows += 1;
        }
    }
    // The same quiet start as the ingest's: nothing of the ingest's writes left to write back.
    crate::throughput::flush_writes(Some(database_url)).await?;
    let started = Instant::now();
    let cpu_before = CpuSeconds::now(&[]);
    let mut copy = connection
        .copy_in_raw(&format!("COPY {table} FROM STDIN (FORMAT csv)"))
        .await?;
    copy.send(data.into_bytes()).await?;
    let copied = copy.finish().await?;
    let elapsed = started.elapsed();
    let cpu = CpuSeconds::now(&[]).since(cpu_before).postgres();
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&mut connection)
        .await?;
    anyhow::ensure!(
        copied as usize == rows,
        "COPY loaded {copied} of {rows} rows"
    );
    Ok((rows as f64 / elapsed.as_secs_f64(), rows, cpu))
}

pub async fn run(
    clients: &Clients,
    metrics_url: &str,
    admin_urls: &[&str],
    trusts: usize,
    args: &IngestArgs,
    server_pids: &[u32],
) -> anyhow::Result<()> {
    let channel = crate::connect(metrics_url, &clients.tls).await?;
    let mut metrics =
        MetricsServiceClient::new(channel.clone()).max_encoding_message_size(64 * 1024 * 1024);
    let pairs = usize::from(args.pairs);
    define_measures(&mut metrics, &clients.operator, pairs * args.measures).await?;
    if let Some(probe) = observations_of(trusts.saturating_sub(1), 0, args).first() {
        wait_for_organisations(&metrics, &clients.operator, probe.clone()).await?;
    }
    let mut ratios = Vec::with_capacity(pairs);
    for pair in 1..=pairs {
        let first_measure = (pair - 1) * args.measures;
        let load = ingest(
            clients,
            &channel,
            admin_urls,
            trusts,
            first_measure,
            args,
            server_pids,
            &format!("[{pair}] "),
        )
        .await?;
        // Visible: the ICS view counts every observation of its trusts (the probe included),
        // this pair's and the pairs' before it.
        let expected = (pair * load.total) as u64;
        let visible = loop {
            let seen = observations_in_view(clients).await?;
            if seen >= expected {
                break load.acked.elapsed();
            }
            anyhow::ensure!(
                load.acked.elapsed() < Duration::from_secs(120),
                "only {seen} of {expected} observations visible after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        println!(
            "  all of it visible in the ICS measure view {:.0} ms after the last ack (target: <= 2,000 ms)",
            visible.as_secs_f64() * 1000.0
        );
        CpuSeconds::now(server_pids)
            .since(load.cpu_before)
            .print_per(
                load.total,
                1_000_000,
                "observations, until all of it is visible",
            );

        let Some(url) = &args.database_url else {
            println!("  COPY comparison skipped: no --database-url / ICS_DATABASE_URL");
            return Ok(());
        };
        let (copy_rate, rows, copy_cpu) = copy_rate(url, &load.per_trust).await?;
        println!(
            "  COPY of the same {rows} observations, one row each, into a plain table: \
             {copy_rate:.0} rows/s, PostgreSQL {:.3} s CPU per 1,000,000 rows",
            copy_cpu * 1_000_000.0 / rows.max(1) as f64
        );
        let ratio = load.rate / copy_rate;
        println!("  ingest / COPY = {ratio:.2}");
        ratios.push(ratio);
    }
    let (median, written) = crate::median_of_pairs(ratios);
    println!(
        "bulk ingest / COPY, median of {} pairs: {median:.2} (target: >= 1.0); pairs {written:?}",
        written.len()
    );
    Ok(())
}

/// One timed ingest: what it sent, how fast, and when.
struct Load {
    per_trust: Vec<Vec<ObservationInput>>,
    total: usize,
    rate: f64,
    acked: Instant,
    cpu_before: CpuSeconds,
}

/// Sends every trust's observations on the `args.measures` measures from `first_measure` on,
/// from a quiet start, and reports how fast they were acknowledged as durable.
#[allow(clippy::too_many_arguments)]
async fn ingest(
    clients: &Clients,
    channel: &RetryingChannel,
    admin_urls: &[&str],
    trusts: usize,
    first_measure: usize,
    args: &IngestArgs,
    server_pids: &[u32],
    label: &str,
) -> anyhow::Result<Load> {
    // Build everything before the clock starts: the run measures the service, not the generator.
    let per_trust: Vec<Vec<ObservationInput>> = (0..trusts)
        .map(|trust| observations_of(trust, first_measure, args))
        .collect();
    let total: usize = per_trust.iter().map(Vec::len).sum();
    let streams = args.streams.max(1);
    let mut calls: Vec<Vec<Vec<u8>>> = vec![Vec::new(); streams];
    for (trust, observations) in per_trust.iter().enumerate() {
        for chunk in observations.chunks(args.chunk.max(1)) {
            let message = IngestObservationsRequest {
                observations: chunk.to_vec(),
            };
            calls[trust % streams].push(message.encode_to_vec());
        }
    }
    // Both loads start from the same quiet machine: nothing left to publish or apply from the
    // measures before, and none of their writes left to write back inside the timed window.
    crate::throughput::quiet(clients, admin_urls, args.database_url.as_deref()).await?;

    println!(
        "{label}bulk ingest: {total} observations ({trusts} trusts x {} measures x {} days) over \
         {streams} client streams, {} per message",
        args.measures, args.periods, args.chunk
    );
    let started = Instant::now();
    let cpu_before = CpuSeconds::now(server_pids);
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|messages| {
            tokio::spawn(send_encoded(
                channel.clone(),
                clients.operator.clone(),
                messages,
            ))
        })
        .collect();
    let mut recorded = 0;
    let mut unchanged = 0;
    let mut rejected = 0;
    for task in tasks {
        let summary = task.await??;
        recorded += summary.recorded;
        unchanged += summary.unchanged;
        rejected += summary.rejected;
    }
    let acked = Instant::now();
    let elapsed = acked - started;
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "  acknowledged as durable: {total} in {:.2} s = {rate:.0} observations/s \
         (recorded {recorded}, already there {unchanged}, rejected {rejected})",
        elapsed.as_secs_f64()
    );
    println!("  target: >= 100,000 observations/s");
    CpuSeconds::now(server_pids).since(cpu_before).print_per(
        total,
        1_000_000,
        "observations, until the last acknowledgement",
    );
    Ok(Load {
        per_trust,
        total,
        rate,
        acked,
        cpu_before,
    })
}
