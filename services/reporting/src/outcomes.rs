//! Programme outcomes arithmetic: plain workshop records in, one [`KindOutcome`] per
//! improvement kind out. Kept free of storage so the definitions in `reporting.proto` can be
//! checked against hand-computed figures.

use ics_proto::events::v1::{FollowUpCheckpoint, MetricKind, MetricUnit};
use ics_proto::reporting::v1::{CheckpointSustainment, KindOutcome};

/// Every improvement kind, in the headline table's order.
pub const KINDS: [MetricKind; 3] = [
    MetricKind::ProcessTime,
    MetricKind::ErrorCount,
    MetricKind::ErrorRate,
];

/// Every follow-up checkpoint, in time order.
pub const CHECKPOINTS: [FollowUpCheckpoint; 4] = [
    FollowUpCheckpoint::Day30,
    FollowUpCheckpoint::Day60,
    FollowUpCheckpoint::Day90,
    FollowUpCheckpoint::Day365,
];

/// One line of a workshop's target sheet with what was measured against it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRecord {
    pub kind: MetricKind,
    pub unit: MetricUnit,
    pub baseline: f64,
    pub target: f64,
    /// The report-out value; `None` until the report-out names this metric.
    pub after: Option<f64>,
    /// Values measured at recorded follow-ups.
    pub follow_ups: Vec<(FollowUpCheckpoint, f64)>,
}

/// A workshop as the outcomes see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkshopRecord {
    pub reported_out: bool,
    pub cancelled: bool,
    pub metrics: Vec<MetricRecord>,
    /// Checkpoints whose follow-up was recorded as missed.
    pub missed: Vec<FollowUpCheckpoint>,
}

impl WorkshopRecord {
    /// Only workshops that delivered a report-out and were not cancelled count.
    pub fn counts(&self) -> bool {
        self.reported_out && !self.cancelled
    }

    fn metrics_of(&self, kind: MetricKind) -> impl Iterator<Item = &MetricRecord> {
        self.metrics
            .iter()
            .filter(move |metric| metric.kind == kind)
    }
}

/// The unit a kind is reported in.
pub fn reporting_unit(kind: MetricKind) -> MetricUnit {
    match kind {
        MetricKind::ProcessTime => MetricUnit::Hours,
        MetricKind::ErrorCount => MetricUnit::Count,
        MetricKind::ErrorRate => MetricUnit::Percent,
        MetricKind::Unspecified => MetricUnit::Unspecified,
    }
}

/// `value` measured in `unit`, in the unit its kind is reported in. Process times are summed
/// across workshops that measured in minutes, hours or days, so they must share one unit first;
/// counts and percentages already do.
pub fn to_reporting_unit(kind: MetricKind, unit: MetricUnit, value: f64) -> f64 {
    match (kind, unit) {
        (MetricKind::ProcessTime, MetricUnit::Minutes) => value / 60.0,
        (MetricKind::ProcessTime, MetricUnit::Days) => value * 24.0,
        _ => value,
    }
}

/// Baseline and report-out sums of one workshop's metrics of a kind, in the reporting unit.
/// Metrics without a report-out value are left out of both sums.
fn sums(workshop: &WorkshopRecord, kind: MetricKind) -> (f64, f64) {
    workshop
        .metrics_of(kind)
        .filter_map(|metric| {
            let after = metric.after?;
            Some((
                to_reporting_unit(kind, metric.unit, metric.baseline),
                to_reporting_unit(kind, metric.unit, after),
            ))
        })
        .fold(
            (0.0, 0.0),
            |(baseline, after), (metric_baseline, metric_after)| {
                (baseline + metric_baseline, after + metric_after)
            },
        )
}

/// `1 − after ÷ baseline`; `None` when there is no baseline to reduce.
fn reduction(baseline: f64, after: f64) -> Option<f64> {
    (baseline > 0.0).then(|| 1.0 - after / baseline)
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// The middle value, or the mean of the two middle values of an even count; 0 when empty.
fn median(mut sorted: Vec<f64>) -> f64 {
    sorted.sort_unstable_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => 0.0,
        length if length % 2 == 0 => (sorted[middle - 1] + sorted[middle]) / 2.0,
        _ => sorted[middle],
    }
}

/// What one workshop adds to the outcome of one improvement kind: worked out once when the
/// workshop is read, so that a view over 20,000 workshops only adds numbers up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KindContribution {
    baseline: f64,
    after: f64,
    /// `1 − after ÷ baseline`; `None` without a baseline to reduce.
    reduction: Option<f64>,
    /// Per checkpoint (in [`CHECKPOINTS`] order): follow-ups measured, how many of them held
    /// the target, and whether the checkpoint was recorded as missed.
    checkpoints: [(u32, u32, bool); 4],
}

/// The workshop's contribution to `kind`; `None` when it does not count or has no metric of
/// that kind.
pub fn contribution(workshop: &WorkshopRecord, kind: MetricKind) -> Option<KindContribution> {
    if !workshop.counts() || workshop.metrics_of(kind).next().is_none() {
        return None;
    }
    let (baseline, after) = sums(workshop, kind);
    let checkpoints = CHECKPOINTS.map(|checkpoint| {
        let mut measured = 0u32;
        let mut sustained = 0u32;
        for metric in workshop.metrics_of(kind) {
            for &(_, value) in metric.follow_ups.iter().filter(|(at, _)| *at == checkpoint) {
                measured += 1;
                // Both are in the metric's own unit, so no conversion is needed.
                if value <= metric.target {
                    sustained += 1;
                }
            }
        }
        (measured, sustained, workshop.missed.contains(&checkpoint))
    });
    Some(KindContribution {
        baseline,
        after,
        reduction: reduction(baseline, after),
        checkpoints,
    })
}

/// A workshop's contributions to every kind, in [`KINDS`] order.
pub type Contributions = [Option<KindContribution>; 3];

/// The workshop's contributions to every kind, in [`KINDS`] order.
pub fn contributions(workshop: &WorkshopRecord) -> Contributions {
    KINDS.map(|kind| contribution(workshop, kind))
}

/// The contributions of a set of workshops to one kind, gathered in the order they were added:
/// counts summed, and the numbers to be added up kept as contiguous columns. A view adds up
/// the tallies of each trust or value stream in turn rather than following one workshop
/// record after another through memory, and gets the same sums, to the last bit, as adding
/// the workshops one by one in that order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindTally {
    workshops: u32,
    baselines: Vec<f64>,
    afters: Vec<f64>,
    reductions: Vec<f64>,
    /// Per checkpoint: follow-ups measured, sustained, and workshops that missed it.
    checkpoints: [(u32, u32, u32); 4],
}

impl KindTally {
    fn add(&mut self, contribution: &KindContribution) {
        self.workshops = self.workshops.saturating_add(1);
        self.baselines.push(contribution.baseline);
        self.afters.push(contribution.after);
        self.reductions.extend(contribution.reduction);
        for (total, (measured, sustained, missed)) in
            self.checkpoints.iter_mut().zip(contribution.checkpoints)
        {
            total.0 += measured;
            total.1 += sustained;
            total.2 += u32::from(missed);
        }
    }
}

/// A set of workshops' contributions to every kind, in [`KINDS`] order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally([KindTally; 3]);

impl Tally {
    /// Adds one workshop's contributions.
    pub fn add(&mut self, contributions: &Contributions) {
        for (tally, contribution) in self.0.iter_mut().zip(contributions) {
            if let Some(contribution) = contribution {
                tally.add(contribution);
            }
        }
    }
}

/// The outcome of one improvement kind over `workshops` (those that do not count are skipped).
pub fn kind_outcome(kind: MetricKind, workshops: &[&WorkshopRecord]) -> KindOutcome {
    let mut tally = KindTally::default();
    for contribution in workshops
        .iter()
        .filter_map(|workshop| contribution(workshop, kind))
    {
        tally.add(&contribution);
    }
    kind_outcome_of(kind, &[&tally])
}

/// The outcome of one improvement kind over the workshops of `tallies`, in their order.
fn kind_outcome_of(kind: MetricKind, tallies: &[&KindTally]) -> KindOutcome {
    let mut workshops = 0u32;
    let mut baseline_total = 0.0;
    let mut after_total = 0.0;
    let mut reductions = Vec::with_capacity(tallies.iter().map(|t| t.reductions.len()).sum());
    let mut checkpoints = [(0u32, 0u32, 0u32); 4];
    for tally in tallies {
        workshops = workshops.saturating_add(tally.workshops);
        // One workshop at a time, in order: the same sums as adding the records up.
        for baseline in &tally.baselines {
            baseline_total += baseline;
        }
        for after in &tally.afters {
            after_total += after;
        }
        reductions.extend_from_slice(&tally.reductions);
        for (total, part) in checkpoints.iter_mut().zip(tally.checkpoints) {
            total.0 += part.0;
            total.1 += part.1;
            total.2 += part.2;
        }
    }
    let sustainment = CHECKPOINTS
        .iter()
        .zip(checkpoints)
        .map(
            |(&checkpoint, (measured, sustained, missed))| CheckpointSustainment {
                checkpoint: checkpoint as i32,
                measured,
                sustained,
                share_sustained: if measured == 0 {
                    0.0
                } else {
                    f64::from(sustained) / f64::from(measured)
                },
                missed,
            },
        )
        .collect();

    KindOutcome {
        kind: kind as i32,
        workshops,
        baseline_total,
        after_total,
        pooled_reduction: reduction(baseline_total, after_total).unwrap_or(0.0),
        mean_reduction: mean(&reductions),
        median_reduction: median(reductions),
        absolute_reduction: baseline_total - after_total,
        unit: reporting_unit(kind) as i32,
        sustainment,
    }
}

/// One outcome per improvement kind, always all three (zeros where no workshop counts).
pub fn kind_outcomes(workshops: &[&WorkshopRecord]) -> Vec<KindOutcome> {
    KINDS
        .iter()
        .map(|&kind| kind_outcome(kind, workshops))
        .collect()
}

/// [`kind_outcomes`] of the workshops tallied beforehand ([`Tally`]), in the order of
/// `tallies`.
pub fn kind_outcomes_of(tallies: &[&Tally]) -> Vec<KindOutcome> {
    KINDS
        .iter()
        .enumerate()
        .map(|(index, &kind)| {
            let of_kind: Vec<&KindTally> = tallies.iter().map(|tally| &tally.0[index]).collect();
            kind_outcome_of(kind, &of_kind)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(
        kind: MetricKind,
        unit: MetricUnit,
        baseline: f64,
        target: f64,
        after: f64,
    ) -> MetricRecord {
        MetricRecord {
            kind,
            unit,
            baseline,
            target,
            after: Some(after),
            follow_ups: Vec::new(),
        }
    }

    fn reported(metrics: Vec<MetricRecord>) -> WorkshopRecord {
        WorkshopRecord {
            reported_out: true,
            cancelled: false,
            metrics,
            missed: Vec::new(),
        }
    }

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "expected {expected}, got {actual}"
        );
    }

    fn refs(workshops: &[WorkshopRecord]) -> Vec<&WorkshopRecord> {
        workshops.iter().collect()
    }

    #[test]
    fn process_time_is_pooled_in_hours_with_the_median_of_an_even_count() {
        use MetricKind::ProcessTime;
        // A: 600 min → 300 min = 10 h → 5 h (reduction 0.5).
        // B: 2 days → 0.5 day = 48 h → 12 h (0.75).
        // C: 10 h → 9 h (0.1).
        // D: 20 h → 12 h (0.4).
        let workshops = vec![
            reported(vec![metric(
                ProcessTime,
                MetricUnit::Minutes,
                600.0,
                300.0,
                300.0,
            )]),
            reported(vec![metric(ProcessTime, MetricUnit::Days, 2.0, 1.0, 0.5)]),
            reported(vec![metric(ProcessTime, MetricUnit::Hours, 10.0, 8.0, 9.0)]),
            reported(vec![metric(
                ProcessTime,
                MetricUnit::Hours,
                20.0,
                15.0,
                12.0,
            )]),
        ];
        let outcome = kind_outcome(ProcessTime, &refs(&workshops));
        assert_eq!(outcome.workshops, 4);
        assert_eq!(outcome.unit, MetricUnit::Hours as i32);
        // Baselines 10 + 48 + 10 + 20 = 88 h; afters 5 + 12 + 9 + 12 = 38 h.
        close(outcome.baseline_total, 88.0);
        close(outcome.after_total, 38.0);
        close(outcome.absolute_reduction, 50.0);
        close(outcome.pooled_reduction, 1.0 - 38.0 / 88.0);
        // Per workshop: 0.5, 0.75, 0.1, 0.4 → mean 1.75 / 4, median (0.4 + 0.5) / 2.
        close(outcome.mean_reduction, 0.4375);
        close(outcome.median_reduction, 0.45);
    }

    #[test]
    fn two_metrics_of_one_kind_make_one_workshop_with_a_pooled_reduction() {
        use MetricKind::ErrorCount;
        let workshops = vec![
            // 10 + 30 errors → 5 + 15: one workshop, reduction 1 − 20/40 = 0.5.
            reported(vec![
                metric(ErrorCount, MetricUnit::Count, 10.0, 5.0, 5.0),
                metric(ErrorCount, MetricUnit::Count, 30.0, 10.0, 15.0),
                metric(MetricKind::ErrorRate, MetricUnit::Percent, 8.0, 4.0, 2.0),
            ]),
            // 10 → 9: reduction 0.1.
            reported(vec![metric(ErrorCount, MetricUnit::Count, 10.0, 5.0, 9.0)]),
            // 4 → 1: reduction 0.75 (an odd count: the median is the middle one).
            reported(vec![metric(ErrorCount, MetricUnit::Count, 4.0, 2.0, 1.0)]),
        ];
        let outcome = kind_outcome(ErrorCount, &refs(&workshops));
        assert_eq!(outcome.workshops, 3);
        assert_eq!(outcome.unit, MetricUnit::Count as i32);
        close(outcome.baseline_total, 54.0);
        close(outcome.after_total, 30.0);
        close(outcome.absolute_reduction, 24.0);
        close(outcome.pooled_reduction, 1.0 - 30.0 / 54.0);
        close(outcome.mean_reduction, (0.5 + 0.1 + 0.75) / 3.0);
        close(outcome.median_reduction, 0.5);

        let rate = kind_outcome(MetricKind::ErrorRate, &refs(&workshops));
        assert_eq!(rate.workshops, 1);
        assert_eq!(rate.unit, MetricUnit::Percent as i32);
        close(rate.absolute_reduction, 6.0);
        close(rate.pooled_reduction, 0.75);
    }

    #[test]
    fn cancelled_and_unreported_workshops_are_left_out() {
        use MetricKind::ErrorRate;
        let mut cancelled = reported(vec![metric(
            ErrorRate,
            MetricUnit::Percent,
            50.0,
            10.0,
            0.0,
        )]);
        cancelled.cancelled = true;
        let mut unreported = reported(vec![metric(
            ErrorRate,
            MetricUnit::Percent,
            40.0,
            10.0,
            0.0,
        )]);
        unreported.reported_out = false;
        let counted = reported(vec![metric(ErrorRate, MetricUnit::Percent, 12.0, 6.0, 9.0)]);
        let workshops = vec![cancelled, unreported, counted];
        let outcome = kind_outcome(ErrorRate, &refs(&workshops));
        assert_eq!(outcome.workshops, 1);
        close(outcome.baseline_total, 12.0);
        close(outcome.after_total, 9.0);
        close(outcome.absolute_reduction, 3.0);
        close(outcome.pooled_reduction, 0.25);
        close(outcome.mean_reduction, 0.25);
        close(outcome.median_reduction, 0.25);
    }

    #[test]
    fn sustainment_counts_metrics_at_or_below_target_and_missed_follow_ups_apart() {
        use FollowUpCheckpoint::{Day30, Day60, Day90, Day365};
        use MetricKind::ProcessTime;
        let mut first = reported(vec![
            metric(ProcessTime, MetricUnit::Minutes, 120.0, 60.0, 50.0),
            metric(ProcessTime, MetricUnit::Minutes, 90.0, 45.0, 40.0),
        ]);
        // Day 30: 60 (= target, sustained) and 50 (above 45, not). Day 60: 55 (sustained).
        first.metrics[0].follow_ups = vec![(Day30, 60.0), (Day60, 55.0)];
        first.metrics[1].follow_ups = vec![(Day30, 50.0)];
        let mut second = reported(vec![metric(ProcessTime, MetricUnit::Hours, 3.0, 2.0, 1.5)]);
        // Day 30: 1.9 ≤ 2 (sustained); day 60 missed; day 90: 2.5 (not sustained).
        second.metrics[0].follow_ups = vec![(Day30, 1.9), (Day90, 2.5)];
        second.missed = vec![Day60];
        let mut cancelled = reported(vec![metric(ProcessTime, MetricUnit::Hours, 3.0, 2.0, 1.0)]);
        cancelled.cancelled = true;
        cancelled.metrics[0].follow_ups = vec![(Day30, 1.0)];
        cancelled.missed = vec![Day90];

        let workshops = vec![first, second, cancelled];
        let outcome = kind_outcome(ProcessTime, &refs(&workshops));
        let rows: Vec<(i32, u32, u32, u32)> = outcome
            .sustainment
            .iter()
            .map(|row| (row.checkpoint, row.measured, row.sustained, row.missed))
            .collect();
        assert_eq!(
            rows,
            vec![
                (Day30 as i32, 3, 2, 0),
                (Day60 as i32, 1, 1, 1),
                (Day90 as i32, 1, 0, 0),
                (Day365 as i32, 0, 0, 0),
            ]
        );
        close(outcome.sustainment[0].share_sustained, 2.0 / 3.0);
        close(outcome.sustainment[1].share_sustained, 1.0);
        close(outcome.sustainment[2].share_sustained, 0.0);
        close(outcome.sustainment[3].share_sustained, 0.0);
        // 120 + 90 min = 3.5 h and 3 h of baseline; 50 + 40 min = 1.5 h and 1.5 h after.
        close(outcome.baseline_total, 6.5);
        close(outcome.after_total, 3.0);
        close(outcome.absolute_reduction, 3.5);

        // A view adds up tallies of contributions worked out when each workshop was read,
        // a trust's at a time: the same outcomes, to the last bit, as from the records.
        let mut first = Tally::default();
        let mut rest = Tally::default();
        for (index, workshop) in workshops.iter().enumerate() {
            let tally = if index < 2 { &mut first } else { &mut rest };
            tally.add(&contributions(workshop));
        }
        assert_eq!(
            kind_outcomes_of(&[&first, &rest]),
            kind_outcomes(&refs(&workshops))
        );
    }

    #[test]
    fn every_kind_has_a_row_of_zeros_when_nothing_counts() {
        let outcomes = kind_outcomes(&[]);
        let kinds: Vec<i32> = outcomes.iter().map(|outcome| outcome.kind).collect();
        assert_eq!(
            kinds,
            vec![
                MetricKind::ProcessTime as i32,
                MetricKind::ErrorCount as i32,
                MetricKind::ErrorRate as i32,
            ]
        );
        for outcome in &outcomes {
            assert_eq!(outcome.workshops, 0);
            close(outcome.pooled_reduction, 0.0);
            close(outcome.mean_reduction, 0.0);
            close(outcome.median_reduction, 0.0);
            close(outcome.absolute_reduction, 0.0);
            assert_eq!(outcome.sustainment.len(), 4);
        }
        let units: Vec<i32> = outcomes.iter().map(|outcome| outcome.unit).collect();
        assert_eq!(
            units,
            vec![
                MetricUnit::Hours as i32,
                MetricUnit::Count as i32,
                MetricUnit::Percent as i32,
            ]
        );
    }

    #[test]
    fn a_workshop_without_baseline_counts_but_has_no_reduction_of_its_own() {
        use MetricKind::ErrorCount;
        let workshops = vec![
            reported(vec![metric(ErrorCount, MetricUnit::Count, 0.0, 0.0, 0.0)]),
            reported(vec![metric(ErrorCount, MetricUnit::Count, 8.0, 4.0, 2.0)]),
        ];
        let outcome = kind_outcome(ErrorCount, &refs(&workshops));
        assert_eq!(outcome.workshops, 2);
        close(outcome.pooled_reduction, 0.75);
        close(outcome.mean_reduction, 0.75);
        close(outcome.median_reduction, 0.75);
    }
}
