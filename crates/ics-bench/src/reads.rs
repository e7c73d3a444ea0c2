//! Board reads at a constant arrival rate (open model): GetOverview, GetOutcomes and
//! GetMeasureView, each on its own, with p50/p95/p99. Each request asks for the next of the
//! ICSs given, as that many boards would: the 42 of the ICS-scale data set ([`crate::scale`]),
//! or the benchmark ICS alone.

use std::time::Duration;

use ics_proto::reporting::v1::{GetMeasureViewRequest, GetOutcomesRequest, GetOverviewRequest};

use crate::{Clients, authorized, count, open_loop, scope_of};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReadArgs {
    /// Run only the read benchmarks.
    #[arg(long)]
    pub reads_only: bool,
    /// Skip the read benchmarks.
    #[arg(long, conflicts_with = "reads_only")]
    pub no_reads: bool,
    /// Arrival rate of each read benchmark.
    #[arg(long, default_value_t = 2000)]
    pub read_rate: u32,
}

pub(crate) async fn run(
    clients: &Clients,
    icss: &[String],
    seconds: u64,
    args: &ReadArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(!icss.is_empty(), "no ICS to read");
    let total = count(args.read_rate, Duration::from_secs(seconds));
    let warmup = count(args.read_rate, Duration::from_secs(1));
    for read in ["GetOverview", "GetOutcomes", "GetMeasureView"] {
        for (measured, requests) in [(false, warmup), (true, total)] {
            let sample = open_loop(args.read_rate, requests, |index| {
                let ics = icss[index % icss.len()].clone();
                let mut reporting = clients.reporting.clone();
                // 2,000 reads a second is many boards' load: one board's token would meet its
                // own call rate (ICS_TENANT_CALLS_PER_SEC) first, so the operator's is used; the
                // read path is the same.
                let board = clients.operator.clone();
                async move {
                    let status = |error: anyhow::Error| tonic::Status::internal(error.to_string());
                    match read {
                        "GetOverview" => reporting
                            .get_overview(
                                authorized(
                                    &board,
                                    GetOverviewRequest {
                                        scope: scope_of(&ics),
                                        as_of: None,
                                    },
                                )
                                .map_err(status)?,
                            )
                            .await
                            .map(|_| ()),
                        "GetOutcomes" => reporting
                            .get_outcomes(
                                authorized(
                                    &board,
                                    GetOutcomesRequest {
                                        scope: scope_of(&ics),
                                        as_of: None,
                                    },
                                )
                                .map_err(status)?,
                            )
                            .await
                            .map(|_| ()),
                        _ => reporting
                            .get_measure_view(
                                authorized(
                                    &board,
                                    GetMeasureViewRequest {
                                        ics_ods_code: ics,
                                        peer_group_id: String::new(),
                                        as_of: None,
                                    },
                                )
                                .map_err(status)?,
                            )
                            .await
                            .map(|_| ()),
                    }
                }
            })
            .await?;
            if measured {
                sample.print(&format!(
                    "{read} of {} ICS(s) in turn at {}/s for {seconds} s (target p99 <= 5 ms at 2,000/s on the ICS-scale data set)",
                    icss.len(),
                    args.read_rate
                ));
            }
        }
    }
    Ok(())
}
