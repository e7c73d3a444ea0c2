//! The ICS-scale data set, generated through the API as hospital systems would send it, and the
//! board reads measured against it.
//!
//! By default: 42 ICSs of five trusts each (210 trusts), 50 monthly measures with ten years of
//! figures for every trust (1,260,000 observations, bulk-ingested), and 50,000 workshops
//! chartered, scheduled, held and reported out across the trusts (200,000 commands). The reads
//! then ask for each of the 42 ICSs in turn, as 42 boards would.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ics_proto::events::v1::{
    Date, ImprovementDirection, MeasureDefinition, MeasureFrequency, MeasureScoring,
    OrganisationKind, SpcConflictRule, SpcRuleSet,
};
use ics_proto::metrics::v1::{
    DefineMeasureRequest, ObservationInput, metrics_service_client::MetricsServiceClient,
};
use ics_proto::reporting::v1::GetOutcomesRequest;
use ics_proto::trusts::v1::{LinkOrganisationRequest, RegisterOrganisationRequest};
use ics_proto::workshops::v1::{
    DeliverReportOutRequest, workshops_service_client::WorkshopsServiceClient,
};

use crate::{Clients, authorized, options, scope_of};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ScaleArgs {
    /// Build the ICS-scale data set and run the board reads against it, and nothing else.
    #[arg(long)]
    pub scale_only: bool,
    /// Skip the ICS-scale data set in a whole run (the reads then use the benchmark ICS).
    #[arg(long, conflicts_with = "scale_only")]
    pub no_scale: bool,
    #[arg(long, default_value_t = 42)]
    pub scale_icss: usize,
    #[arg(long, default_value_t = 5)]
    pub scale_trusts_per_ics: usize,
    #[arg(long, default_value_t = 50)]
    pub scale_measures: usize,
    /// Monthly figures per trust and measure.
    #[arg(long, default_value_t = 120)]
    pub scale_months: usize,
    #[arg(long, default_value_t = 50_000)]
    pub scale_workshops: usize,
}

/// Requests in flight while the data set is built.
const CONCURRENCY: usize = 32;
/// Observations per streamed ingest message.
const CHUNK: usize = 5_000;

pub(crate) fn ics_code(index: usize) -> String {
    format!("QS{index:02}")
}

fn trust_code(index: usize) -> String {
    format!("S{index:04}")
}

fn measure_code(index: usize) -> String {
    format!("SCALE_{index:02}")
}

fn first_of_month(offset: usize) -> (Date, Date) {
    let start = chrono::NaiveDate::from_ymd_opt(2015, 1, 1).unwrap_or_default()
        + chrono::Months::new(u32::try_from(offset).unwrap_or(0));
    let end = start + chrono::Months::new(1) - chrono::Days::new(1);
    (
        ics_proto::date::from_naive(start),
        ics_proto::date::from_naive(end),
    )
}

/// Builds the data set; returns the ICS codes, for the reads.
pub(crate) async fn build(
    clients: &Clients,
    metrics_url: &str,
    workshops_url: &str,
    args: &ScaleArgs,
) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let icss: Vec<String> = (0..args.scale_icss).map(ics_code).collect();
    let trusts = args.scale_icss * args.scale_trusts_per_ics;
    println!(
        "ICS-scale data set: {} ICSs, {trusts} trusts, {} monthly measures x {} months, {} workshops",
        args.scale_icss, args.scale_measures, args.scale_months, args.scale_workshops
    );

    // Organisations, each trust linked to its ICS.
    let registrations = icss
        .iter()
        .map(|code| {
            (
                code.clone(),
                OrganisationKind::Icb,
                format!("Scale ICB {code} (synthetic)"),
            )
        })
        .chain((0..trusts).map(|index| {
            let code = trust_code(index);
            let name = format!("Scale trust {code} (synthetic)");
            (code, OrganisationKind::Trust, name)
        }));
    run_all(registrations, |(ods_code, kind, name)| {
        let mut client = clients.trusts.clone();
        let token = clients.operator.clone();
        async move {
            client
                .register_organisation(authorized(
                    &token,
                    RegisterOrganisationRequest {
                        options: options(format!("scale-register-{ods_code}")),
                        ods_code,
                        name,
                        kind: kind as i32,
                    },
                )?)
                .await?;
            Ok(())
        }
    })
    .await?;
    let per_ics = args.scale_trusts_per_ics;
    run_all(0..trusts, |index| {
        let mut client = clients.trusts.clone();
        let token = clients.operator.clone();
        async move {
            let code = trust_code(index);
            client
                .link_organisation(authorized(
                    &token,
                    LinkOrganisationRequest {
                        options: options(format!("scale-link-{code}")),
                        ods_code: code,
                        parent_ods_code: ics_code(index / per_ics),
                        valid_from: Some(Date {
                            year: 2015,
                            month: 1,
                            day: 1,
                        }),
                    },
                )?)
                .await?;
            Ok(())
        }
    })
    .await?;
    println!(
        "  {} organisations registered and linked in {:.0} s",
        args.scale_icss + trusts,
        started.elapsed().as_secs_f64()
    );

    ingest_figures(clients, metrics_url, trusts, args).await?;
    report_out_workshops(clients, workshops_url, trusts, args).await?;
    println!(
        "  data set built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(icss)
}

/// Runs `call` for every item, [`CONCURRENCY`] at a time; the first failure fails the set-up.
async fn run_all<I, F, Fut>(items: I, call: F) -> anyhow::Result<()>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(items)
        .map(call)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Ten years of monthly figures for every trust and measure, over two ingest streams.
async fn ingest_figures(
    clients: &Clients,
    metrics_url: &str,
    trusts: usize,
    args: &ScaleArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let channel = crate::connect(metrics_url, &clients.tls).await?;
    let mut metrics =
        MetricsServiceClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    for index in 0..args.scale_measures {
        let code = measure_code(index);
        // Half proportions (numerator and denominator), half continuous values.
        let proportion = index % 2 == 0;
        metrics
            .define_measure(authorized(
                &clients.operator,
                DefineMeasureRequest {
                    options: options(format!("scale-define-{code}")),
                    definition: Some(MeasureDefinition {
                        code,
                        name: format!("Scale measure {index} (synthetic)"),
                        description: String::new(),
                        unit: if proportion {
                            "%".into()
                        } else {
                            "days".into()
                        },
                        direction: if proportion {
                            ImprovementDirection::Increase as i32
                        } else {
                            ImprovementDirection::Decrease as i32
                        },
                        scoring: if proportion {
                            MeasureScoring::Proportion as i32
                        } else {
                            MeasureScoring::Continuous as i32
                        },
                        frequency: MeasureFrequency::Monthly as i32,
                        target: proportion.then_some(0.9),
                        rule_set: SpcRuleSet::MdcV25 as i32,
                        conflict_rule: SpcConflictRule::Improvement as i32,
                        display_scale: if proportion { 100.0 } else { 1.0 },
                    }),
                },
            )?)
            .await?;
    }
    let mut calls: Vec<Vec<Vec<ObservationInput>>> = vec![Vec::new(), Vec::new()];
    let mut total = 0;
    for trust in 0..trusts {
        let observations = figures_of(trust, args);
        total += observations.len();
        for chunk in observations.chunks(CHUNK) {
            calls[trust % 2].push(chunk.to_vec());
        }
    }
    if let Some(probe) = calls
        .iter()
        .flatten()
        .last()
        .and_then(|chunk| chunk.first())
    {
        crate::ingest::wait_for_organisations(&metrics, &clients.operator, probe.clone()).await?;
    }
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|chunks| {
            tokio::spawn(crate::ingest::send(
                metrics.clone(),
                clients.operator.clone(),
                chunks,
            ))
        })
        .collect();
    let mut rejected = 0;
    for task in tasks {
        rejected += task.await??.rejected;
    }
    anyhow::ensure!(rejected == 0, "{rejected} scale observations were rejected");
    println!(
        "  {total} observations ingested in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One trust's figures: every measure, every month, deterministic.
fn figures_of(trust: usize, args: &ScaleArgs) -> Vec<ObservationInput> {
    let ods_code = trust_code(trust);
    let mut observations = Vec::with_capacity(args.scale_measures * args.scale_months);
    for measure in 0..args.scale_measures {
        let measure_code = measure_code(measure);
        for month in 0..args.scale_months {
            let (start, end) = first_of_month(month);
            let wobble = ((trust * 7 + measure * 13 + month * 31) % 200) as f64;
            let (value, numerator, denominator) = if measure % 2 == 0 {
                let denominator = 400.0 + wobble;
                let numerator =
                    (denominator * (0.85 + ((month * 17 + trust) % 10) as f64 / 100.0)).floor();
                (None, Some(numerator), Some(denominator))
            } else {
                (Some(5.0 + wobble / 40.0), None, None)
            };
            observations.push(ObservationInput {
                measure_code: measure_code.clone(),
                ods_code: ods_code.clone(),
                value_stream_id: String::new(),
                period_start: Some(start),
                period_end: Some(end),
                value,
                numerator,
                denominator,
                source: String::new(),
            });
        }
    }
    observations
}

/// A value stream per trust, then the workshops spread over the trusts, each chartered,
/// scheduled, held and reported out.
async fn report_out_workshops(
    clients: &Clients,
    workshops_url: &str,
    trusts: usize,
    args: &ScaleArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let value_streams =
        crate::workshops::define_value_streams(clients, (0..trusts).map(trust_code)).await?;
    let channel = crate::connect(workshops_url, &clients.tls).await?;
    let workshops = WorkshopsServiceClient::new(channel);
    let done = std::sync::atomic::AtomicUsize::new(0);
    run_all(0..args.scale_workshops, |index| {
        let mut client = workshops.clone();
        let token = clients.operator.clone();
        let (code, value_stream_id) = value_streams[index % value_streams.len()].clone();
        let done = &done;
        async move {
            let workshop_id =
                crate::workshops::prepare_one(&mut client, &token, &code, &value_stream_id).await?;
            client
                .deliver_report_out(authorized(
                    &token,
                    DeliverReportOutRequest {
                        options: options(uuid::Uuid::now_v7().to_string()),
                        workshop_id,
                        delivered_on: Some(Date {
                            year: 2019,
                            month: 2,
                            day: 8,
                        }),
                        after: crate::workshops::value(10.0 + (index % 20) as f64),
                    },
                )?)
                .await?;
            let finished = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if finished.is_multiple_of(10_000) {
                println!(
                    "  {finished} workshops reported out ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
    })
    .await?;
    // The outcomes of the last ICS count its share: the projections have caught up.
    let last = args.scale_icss.saturating_sub(1);
    let expected = (0..args.scale_workshops)
        .filter(|index| (index % trusts) / args.scale_trusts_per_ics == last)
        .count();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let outcomes = clients
            .reporting
            .clone()
            .get_outcomes(authorized(
                &clients.operator,
                GetOutcomesRequest {
                    scope: scope_of(&ics_code(last)),
                    as_of: None,
                },
            )?)
            .await?
            .into_inner();
        let counted = outcomes
            .by_trust
            .iter()
            .flat_map(|group| group.kinds.iter())
            .map(|kind| kind.workshops as usize)
            .sum::<usize>();
        if counted >= expected {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the outcomes of {} show {counted} of {expected} workshops after 300 s",
            ics_code(last)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "  {} workshops reported out ({} commands) in {:.0} s",
        args.scale_workshops,
        args.scale_workshops * 4 + trusts,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
