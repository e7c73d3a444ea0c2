//! Tenant isolation under a flood: another tenant's command latency before and during one
//! tenant's flood of `--flood-loops` closed loops that never back off (each refusal is retried
//! at once). The per-tenant call limit should keep the other tenant's p99 within 2× of its
//! unloaded value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ics_proto::trusts::v1::RenameOrganisationRequest;
use tonic::Code;

use crate::{Clients, Sample, authorized, count, open_loop, options, trust_code};

#[derive(Debug, clap::Args)]
pub struct FloodArgs {
    /// Skip the flood run.
    #[arg(long)]
    pub no_flood: bool,
    /// Run only the flood (after setting up the trusts).
    #[arg(long, conflicts_with = "no_flood")]
    pub flood_only: bool,
    /// Closed loops the flooding tenant runs at once.
    #[arg(long, default_value_t = 8)]
    pub flood_loops: usize,
    /// The other tenant's steady rate (commands per second; within its own call limit).
    #[arg(long, default_value_t = 15)]
    pub victim_rate: u32,
    /// Alone/flooded pairs measured; the figure is their median ratio (the generator shares the
    /// machine, so one pair is noisy).
    #[arg(long, default_value_t = 3)]
    pub flood_repeats: usize,
}

/// One trust writer's renames of its own trust at `rate` for `duration`.
async fn renames(
    clients: &Clients,
    token: &str,
    ods_code: &str,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Sample> {
    open_loop(rate, count(rate, duration), |index| {
        let mut client = clients.trusts.clone();
        let request = authorized(
            token,
            RenameOrganisationRequest {
                options: options(uuid::Uuid::now_v7().to_string()),
                ods_code: ods_code.to_owned(),
                name: format!("Steady trust #{index}"),
            },
        );
        async move {
            let request = request.map_err(|error| tonic::Status::internal(error.to_string()))?;
            client.rename_organisation(request).await.map(|_| ())
        }
    })
    .await
}

#[derive(Default)]
struct FloodCounts {
    accepted: AtomicU64,
    limited: AtomicU64,
    other: AtomicU64,
}

pub async fn run(
    clients: &Clients,
    token: impl Fn(&str) -> anyhow::Result<String>,
    seconds: u64,
    args: &FloodArgs,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs(seconds);
    let (flooder, victim) = (trust_code(0), trust_code(1));
    let (flooder_token, victim_token) = (token(&flooder)?, token(&victim)?);
    // Warm up.
    renames(
        clients,
        &victim_token,
        &victim,
        args.victim_rate,
        Duration::from_secs(2),
    )
    .await?;
    let mut ratios = Vec::with_capacity(args.flood_repeats);
    for repeat in 1..=args.flood_repeats.max(1) {
        let alone = renames(clients, &victim_token, &victim, args.victim_rate, duration).await?;
        let (flooded, flood) = during_flood(
            clients,
            (&flooder, &flooder_token),
            (&victim, &victim_token),
            duration,
            args,
        )
        .await?;
        alone.print(&format!(
            "[{repeat}] other tenant alone: trust writer {victim} renaming itself at {}/s",
            args.victim_rate
        ));
        flooded.print(&format!(
            "[{repeat}] other tenant during a flood by {flooder} ({} loops, no back-off)",
            args.flood_loops
        ));
        println!(
            "  flood: {:.0} calls/s accepted, {:.0} calls/s refused RESOURCE_EXHAUSTED, {:.0} \
             calls/s other errors",
            flood.accepted, flood.limited, flood.other
        );
        let (p99_alone, p99_flooded) = (alone.percentile(0.99), flooded.percentile(0.99));
        let ratio = p99_flooded / p99_alone;
        println!(
            "  other tenant's p99: {p99_alone:.2} ms alone, {p99_flooded:.2} ms during the \
             flood: {ratio:.2}x"
        );
        ratios.push(ratio);
    }
    let (median, written) = crate::median_of_pairs(ratios);
    println!(
        "tenant isolation: other tenant's p99 during an {}-loop flood, median of {} pairs: \
         {median:.2}x its unloaded p99 (target <= 2x); pairs {written:?}",
        args.flood_loops,
        written.len()
    );
    Ok(())
}

/// Calls per second the flood made during the measurement, by outcome.
struct FloodRates {
    accepted: f64,
    limited: f64,
    other: f64,
}

/// The other tenant's renames while the flooder runs its loops.
async fn during_flood(
    clients: &Clients,
    (flooder, flooder_token): (&str, &str),
    (victim, victim_token): (&str, &str),
    duration: Duration,
    args: &FloodArgs,
) -> anyhow::Result<(Sample, FloodRates)> {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(FloodCounts::default());
    let loops: Vec<_> = (0..args.flood_loops)
        .map(|loop_index| {
            let (stop, counts) = (stop.clone(), counts.clone());
            let mut client = clients.trusts.clone();
            let (token, ods_code) = (flooder_token.to_owned(), flooder.to_owned());
            tokio::spawn(async move {
                let mut sequence = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    let Ok(request) = authorized(
                        &token,
                        RenameOrganisationRequest {
                            options: options(uuid::Uuid::now_v7().to_string()),
                            ods_code: ods_code.clone(),
                            name: format!("Flood {loop_index} #{sequence}"),
                        },
                    ) else {
                        return;
                    };
                    let counter = match client.rename_organisation(request).await {
                        Ok(_) => &counts.accepted,
                        Err(status) if status.code() == Code::ResourceExhausted => &counts.limited,
                        Err(_) => &counts.other,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Let the flood spend its burst and reach its pace before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let before = (
        counts.accepted.load(Ordering::Relaxed),
        counts.limited.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed),
    );
    let flooded = renames(clients, victim_token, victim, args.victim_rate, duration).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let rate = |counter: &AtomicU64, before: u64| {
        (counter.load(Ordering::Relaxed) - before) as f64 / elapsed
    };
    let rates = FloodRates {
        accepted: rate(&counts.accepted, before.0),
        limited: rate(&counts.limited, before.1),
        other: rate(&counts.other, before.2),
    };
    stop.store(true, Ordering::Relaxed);
    for flood_loop in loops {
        flood_loop.await?;
    }
    Ok((flooded, rates))
}
