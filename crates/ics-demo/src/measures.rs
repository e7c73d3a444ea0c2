//! SYNTHETIC monthly measures for the demo's trusts: the reference measures of
//! [`ics_measures::reference`], then 36 months (April 2022 – March 2025) of Friends and Family
//! Test responses and staff leavers for every demo trust, sent through the metrics service's
//! bulk ingest, and the West Yorkshire ICS's measure view once the reporting service shows them.
//!
//! The figures are generated, deterministically (a fixed-seed hash, no random source), to tell
//! two stories the charts should show:
//! - FFT % positive is stable at every trust — common cause variation — except at
//!   [`CONCERN_TRUST`], whose last month falls below its lower process limit: a special cause
//!   concern.
//! - The staff leaver rate falls at every trust by a similar amount: each has improved, but not
//!   distinctly from its peers.
//!
//! Sending them again is safe: an observation is keyed by its series and period, and the same
//! figures again are left unchanged, so a second demo run records nothing.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{Months, NaiveDate};
use ics_measures::reference;
use ics_proto::date::from_naive;
use ics_proto::events::v1::Date;
use ics_proto::metrics::v1::{IngestObservationsRequest, ObservationInput};
use ics_proto::reporting::v1::{GetMeasureViewRequest, MeasureView};
use tonic::Code;

use crate::data::{self, Organisation};
use crate::{Metrics, POLL_INTERVAL, Reporting};

pub const NOTICE: &str = "SYNTHETIC measure data: the monthly Friends and Family Test and staff \
leaver figures below are generated to show Making Data Count charts, not real performance data.";

pub const REMINDER: &str = "Reminder: the measure figures above are SYNTHETIC, generated for \
the demo, not real performance data.";

/// Written into every observation as where it came from.
pub const SOURCE: &str = "icsctl demo (SYNTHETIC)";

pub const FFT: &str = "FFT_POSITIVE";
pub const LEAVERS: &str = "STAFF_LEAVER_RATE";

/// Months of data per series, from [`first_month`].
pub const MONTHS: u32 = 36;

/// The trust whose last FFT month is a special cause concern.
pub const CONCERN_TRUST: &str = "RAE";

/// Fixed, so that every run sends the same figures.
const SEED: u64 = 0x1c5d_e307;

/// Observations per ingest message.
const CHUNK: usize = 500;

/// How long the demo waits for the metrics service to learn of the organisations it just
/// registered (from the trusts service's events).
const ORGANISATIONS_WAIT: Duration = Duration::from_secs(30);

fn first_month() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 4, 1).unwrap_or_default()
}

/// The first and last day of month `offset` from [`first_month`].
pub fn month(offset: u32) -> (NaiveDate, NaiveDate) {
    let start = first_month()
        .checked_add_months(Months::new(offset))
        .unwrap_or_default();
    let end = start
        .checked_add_months(Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(start);
    (start, end)
}

/// Every trust of the demo: the programme's five, then West Yorkshire's others.
pub fn trusts() -> impl Iterator<Item = &'static Organisation> {
    data::PROGRAMME_TRUSTS
        .iter()
        .chain(data::OTHER_WEST_YORKSHIRE_TRUSTS)
}

/// The trusts of the demo's ICS, whose view the demo prints.
pub fn ics_trusts() -> impl Iterator<Item = &'static Organisation> {
    trusts().filter(|trust| trust.parent == Some(data::ICS))
}

/// SplitMix64: a well-mixed 64-bit hash of its input.
fn mix(mut state: u64) -> u64 {
    state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    state = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    state = (state ^ (state >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    state ^ (state >> 31)
}

/// A deterministic draw in [-1, 1) for a trust, a stream and a month.
fn draw(trust: usize, stream: u64, month: u32) -> f64 {
    let key = SEED ^ ((trust as u64) << 40) ^ (stream << 32) ^ u64::from(month);
    let bits = mix(key) >> 11;
    (bits as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// Roughly normal noise with a standard deviation of about 1 (the sum of three draws).
fn noise(trust: usize, stream: u64, month: u32) -> f64 {
    draw(trust, stream, month) + draw(trust, stream + 100, month) + draw(trust, stream + 200, month)
}

fn observation(
    measure_code: &str,
    ods_code: &str,
    offset: u32,
    numerator: f64,
    denominator: f64,
) -> ObservationInput {
    let (start, end) = month(offset);
    ObservationInput {
        measure_code: measure_code.to_owned(),
        ods_code: ods_code.to_owned(),
        value_stream_id: String::new(),
        period_start: Some(from_naive(start)),
        period_end: Some(from_naive(end)),
        value: None,
        numerator: Some(numerator),
        denominator: Some(denominator),
        source: SOURCE.to_owned(),
    }
}

/// One trust's months of FFT responses: `positive` of `responses`.
fn fft(index: usize, ods_code: &str) -> Vec<ObservationInput> {
    let level = 0.905 + 0.004 * (index % 6) as f64;
    let typical_responses = 1100.0 + 230.0 * (index % 7) as f64;
    (0..MONTHS)
        .map(|offset| {
            let responses = (typical_responses * (1.0 + 0.08 * draw(index, 1, offset))).round();
            let mut share = level + 0.0045 * noise(index, 2, offset);
            if ods_code == CONCERN_TRUST && offset == MONTHS - 1 {
                share = level - 0.075;
            }
            let positive = (responses * share).round();
            observation(FFT, ods_code, offset, positive, responses)
        })
        .collect()
}

/// How far each trust's monthly leaver rate falls over the 36 months, in the order of
/// [`trusts`]. West Yorkshire's six fall by one of two amounts, three trusts each, so that no
/// trust's change stands out from its peers' (a lone extreme would be "distinct").
const LEAVER_RATE_FALLS: [f64; 10] = [
    0.0022, // RTP
    0.0019, // RR8
    0.0024, // RKB
    0.0021, // RXW
    0.0023, // RF4
    0.0027, // RCF
    0.0019, // RAE
    0.0027, // RWY
    0.0019, // RCD
    0.0027, // RXF
];

/// One trust's months of leavers over mean headcount, falling steadily.
fn leavers(index: usize, ods_code: &str) -> Vec<ObservationInput> {
    let headcount = 5200.0 + 1300.0 * (index % 8) as f64;
    let start_rate = 0.0118 + 0.0003 * (index % 5) as f64;
    let fall = LEAVER_RATE_FALLS.get(index).copied().unwrap_or(0.0022);
    (0..MONTHS)
        .map(|offset| {
            let progress = f64::from(offset) / f64::from(MONTHS - 1);
            // The first and last months sit on the trend line, so that the change a peer
            // comparison reads between them is the trend's own rather than the noise's.
            let wobble = if offset == 0 || offset == MONTHS - 1 {
                0.0
            } else {
                0.00012 * noise(index, 3, offset)
            };
            let rate = start_rate - fall * progress + wobble;
            // Mean of the month's opening and closing headcounts: whole or half staff.
            let mean_headcount = headcount + 2.5 * f64::from(offset);
            let leavers = (mean_headcount * rate).round();
            observation(LEAVERS, ods_code, offset, leavers, mean_headcount)
        })
        .collect()
}

/// Every observation the demo sends, series by series.
pub fn observations() -> Vec<ObservationInput> {
    trusts()
        .enumerate()
        .flat_map(|(index, trust)| {
            let mut series = fft(index, trust.ods_code);
            series.extend(leavers(index, trust.ods_code));
            series
        })
        .collect()
}

/// What installing the reference measures did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    pub measures: usize,
    /// Newly defined (an event written).
    pub defined: usize,
    /// Replayed from an earlier run, or the same definition already there.
    pub present: usize,
}

/// Defines the reference measures with the very requests `measure install-reference` sends
/// ([`reference::install_requests`], the same request ids), so that the demo and that command
/// never define them twice.
pub async fn install(metrics: &mut Metrics) -> anyhow::Result<Installed> {
    let mut installed = Installed::default();
    for request in reference::install_requests() {
        let code = request
            .definition
            .as_ref()
            .map(|definition| definition.code.clone())
            .unwrap_or_default();
        let result = metrics
            .define_measure(request)
            .await
            .with_context(|| format!("demo step: install the reference measure {code}"))?
            .into_inner();
        installed.measures += 1;
        if reference::Installed::of(&result) == reference::Installed::Defined {
            installed.defined += 1;
        } else {
            installed.present += 1;
        }
    }
    Ok(installed)
}

/// What back-loading the SYNTHETIC observations did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub series: usize,
    pub observations: usize,
    pub recorded: u64,
    pub unchanged: u64,
    /// Rounds sent while the metrics service did not yet know every trust.
    pub retries: usize,
}

fn series_count(observations: &[ObservationInput]) -> usize {
    let mut keys: Vec<(&str, &str)> = observations
        .iter()
        .map(|observation| {
            (
                observation.measure_code.as_str(),
                observation.ods_code.as_str(),
            )
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.len()
}

/// Sends every observation on one ingest call. Observations of a trust the metrics service has
/// not yet heard of (NOT_FOUND on `ods_code`: it learns organisations from the trusts service's
/// events, a moment after they are registered) are sent again until it has, or for
/// [`ORGANISATIONS_WAIT`]; any other rejection means the data set and the server disagree.
pub async fn load(metrics: &mut Metrics) -> anyhow::Result<Loaded> {
    let observations = observations();
    let mut loaded = Loaded {
        series: series_count(&observations),
        observations: observations.len(),
        ..Loaded::default()
    };
    let deadline = Instant::now() + ORGANISATIONS_WAIT;
    let mut pending = observations;
    loop {
        let messages: Vec<IngestObservationsRequest> = pending
            .chunks(CHUNK)
            .map(|chunk| IngestObservationsRequest {
                observations: chunk.to_vec(),
            })
            .collect();
        let summary = metrics
            .ingest_observations(tokio_stream::iter(messages))
            .await
            .context("demo step: send the SYNTHETIC measure observations")?
            .into_inner();
        loaded.recorded += summary.recorded;
        loaded.unchanged += summary.unchanged;
        if summary.rejected > summary.rejections.len() as u64 {
            bail!(
                "demo step: the metrics service rejected {} SYNTHETIC observations",
                summary.rejected
            );
        }
        let mut unknown = Vec::new();
        for rejection in &summary.rejections {
            let observation = usize::try_from(rejection.index)
                .ok()
                .and_then(|index| pending.get(index));
            match observation {
                Some(observation)
                    if rejection.code == "NOT_FOUND" && rejection.field == "ods_code" =>
                {
                    unknown.push(observation.clone());
                }
                _ => bail!(
                    "demo step: the metrics service rejected a SYNTHETIC observation ({} {}: \
                     {}: {}) — the database may hold other figures for the demo's trusts; \
                     use a fresh database",
                    rejection.code,
                    observation
                        .map(|observation| format!(
                            "{} at {} from {}",
                            observation.measure_code,
                            observation.ods_code,
                            observation
                                .period_start
                                .as_ref()
                                .map(ics_proto::date::iso)
                                .unwrap_or_default()
                        ))
                        .unwrap_or_else(|| format!("observation {}", rejection.index)),
                    rejection.field,
                    rejection.reason
                ),
            }
        }
        if unknown.is_empty() {
            return Ok(loaded);
        }
        if Instant::now() >= deadline {
            bail!(
                "demo step: the metrics service had not learnt of every demo trust after {} s \
                 ({} observations still refused as NOT_FOUND); run the demo again",
                ORGANISATIONS_WAIT.as_secs(),
                unknown.len()
            );
        }
        loaded.retries += 1;
        pending = unknown;
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// What the view must show before the demo trusts it has caught up: every series of the ICS's
/// trusts with all its months.
pub fn missing(view: &MeasureView) -> Vec<String> {
    let (last, _) = month(MONTHS - 1);
    let last: Date = from_naive(last);
    let mut gaps = Vec::new();
    for trust in ics_trusts() {
        for measure_code in [FFT, LEAVERS] {
            let row = view
                .rows
                .iter()
                .find(|row| row.ods_code == trust.ods_code && row.measure_code == measure_code);
            match row {
                None => gaps.push(format!("{measure_code} at {}: not listed", trust.ods_code)),
                Some(row)
                    if row.points < MONTHS || row.latest_period_start.as_ref() != Some(&last) =>
                {
                    gaps.push(format!(
                        "{measure_code} at {}: {} of {MONTHS} months",
                        trust.ods_code, row.points
                    ));
                }
                Some(_) => {}
            }
        }
    }
    gaps
}

/// The ICS's measure view once it shows every series (or as it stood at `deadline`), with what
/// it still lacked.
pub async fn wait_for_view(
    reporting: &mut Reporting,
    deadline: Instant,
) -> anyhow::Result<(Option<MeasureView>, Vec<String>)> {
    let mut latest: Option<MeasureView> = None;
    loop {
        let reply = reporting
            .get_measure_view(GetMeasureViewRequest {
                ics_ods_code: data::ICS.to_owned(),
                peer_group_id: String::new(),
                as_of: None,
            })
            .await;
        match reply {
            Ok(view) => {
                let view = view.into_inner();
                if missing(&view).is_empty() {
                    return Ok((Some(view), Vec::new()));
                }
                latest = Some(view);
            }
            Err(status)
                if matches!(
                    status.code(),
                    Code::NotFound | Code::Unavailable | Code::DeadlineExceeded
                ) => {}
            Err(status) => {
                return Err(anyhow::Error::new(status).context("reading the ICS's measure view"));
            }
        }
        if Instant::now() >= deadline {
            let gaps = latest.as_ref().map(missing).unwrap_or_else(|| {
                vec![format!(
                    "the reporting service gave no measure view of {}",
                    data::ICS
                )]
            });
            return Ok((latest, gaps));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::events::v1::{MeasureDefinition, MeasureScoring};
    use ics_spc::{Classification, Point, VariationIcon};

    fn definition(code: &str) -> MeasureDefinition {
        reference::definitions()
            .into_iter()
            .find(|definition| definition.code == code)
            .unwrap_or_default()
    }

    fn values(measure_code: &str, ods_code: &str) -> Vec<f64> {
        observations()
            .iter()
            .filter(|o| o.measure_code == measure_code && o.ods_code == ods_code)
            .map(|o| o.numerator.unwrap_or(f64::NAN) / o.denominator.unwrap_or(f64::NAN))
            .collect()
    }

    fn analysis(measure_code: &str, ods_code: &str) -> ics_spc::Analysis {
        let measure = definition(measure_code);
        let points: Vec<Point> = values(measure_code, ods_code)
            .into_iter()
            .map(Point::new)
            .collect();
        ics_spc::analyse(
            &points,
            ics_measures::direction(&measure),
            measure.target,
            &ics_measures::rule_set(&measure),
        )
    }

    #[test]
    fn every_trust_has_36_months_of_both_measures_and_the_figures_are_plausible() {
        let observations = observations();
        let trusts = trusts().count();
        assert_eq!(trusts, 10);
        assert_eq!(observations.len(), trusts * 2 * MONTHS as usize);
        assert_eq!(series_count(&observations), trusts * 2);
        assert_eq!(month(0).0.to_string(), "2022-04-01");
        assert_eq!(month(MONTHS - 1).0.to_string(), "2025-03-01");
        assert_eq!(month(10).1.to_string(), "2023-02-28");
        for observation in &observations {
            let numerator = observation.numerator.unwrap_or(-1.0);
            let denominator = observation.denominator.unwrap_or(0.0);
            assert!(
                numerator >= 0.0 && numerator <= denominator,
                "{observation:?}"
            );
            let share = numerator / denominator;
            if observation.measure_code == FFT {
                assert!((0.8..0.96).contains(&share), "{observation:?}");
            } else {
                assert!((0.008..0.0145).contains(&share), "{observation:?}");
            }
            assert_eq!(observation.source, SOURCE);
        }
        // The same figures every time: a second run sends exactly the first one's.
        assert_eq!(observations, super::observations());
    }

    #[test]
    fn the_measures_sent_are_reference_measures_with_counts() {
        for code in [FFT, LEAVERS] {
            let measure = definition(code);
            assert_eq!(measure.code, code);
            assert_ne!(measure.scoring, MeasureScoring::Continuous as i32);
        }
    }

    #[test]
    fn fft_is_common_cause_everywhere_but_one_trust_whose_last_month_is_a_concern() {
        for trust in trusts() {
            let analysis = analysis(FFT, trust.ods_code);
            assert!(!analysis.run_chart);
            let last = analysis.points.last().expect("points");
            if trust.ods_code == CONCERN_TRUST {
                assert_eq!(analysis.variation, Some(VariationIcon::ConcernLow));
                let limits = last.limits.expect("limits");
                assert!(last.value < limits.lower_process_limit, "{last:?}");
                assert!(last.flags.astronomical.low);
            } else {
                assert_eq!(
                    analysis.variation,
                    Some(VariationIcon::CommonCause),
                    "{}",
                    trust.ods_code
                );
            }
        }
    }

    #[test]
    fn leaver_rates_improve_everywhere_but_not_distinctly_from_peers() {
        for trust in trusts() {
            let analysis = analysis(LEAVERS, trust.ods_code);
            assert_eq!(
                analysis.variation,
                Some(VariationIcon::ImprovementLow),
                "{}",
                trust.ods_code
            );
            assert_eq!(
                analysis
                    .points
                    .last()
                    .and_then(|point| point.classification),
                Some(Classification::Improvement)
            );
        }
        let units: Vec<ics_peers::ChangeUnit> = ics_trusts()
            .map(|trust| {
                let values = values(LEAVERS, trust.ods_code);
                ics_peers::ChangeUnit::new(trust.ods_code, values[0], values[MONTHS as usize - 1])
            })
            .collect();
        assert_eq!(units.len(), 6);
        for unit in &units {
            let comparison =
                ics_peers::compare_change(&units, ics_peers::Direction::Decrease, &unit.id)
                    .expect("compares");
            assert_eq!(
                comparison.label.text(),
                "improved, not distinctly from peers",
                "{}: {comparison:?}",
                unit.id
            );
        }
    }

    #[test]
    fn the_view_is_complete_only_with_every_month_of_every_series() {
        use ics_proto::reporting::v1::MeasureRow;
        let last = from_naive(month(MONTHS - 1).0);
        let mut view = MeasureView {
            rows: ics_trusts()
                .flat_map(|trust| {
                    [FFT, LEAVERS].map(|measure_code| MeasureRow {
                        ods_code: trust.ods_code.to_owned(),
                        measure_code: measure_code.to_owned(),
                        points: MONTHS,
                        latest_period_start: Some(last),
                        ..MeasureRow::default()
                    })
                })
                .collect(),
            ..MeasureView::default()
        };
        assert!(missing(&view).is_empty());
        view.rows[0].points = 20;
        view.rows.pop();
        assert_eq!(
            missing(&view),
            [
                "FFT_POSITIVE at RR8: 20 of 36 months",
                "STAFF_LEAVER_RATE at RXF: not listed"
            ]
        );
    }
}
