//! The `analyse` entry point and its result.

use std::ops::Range;

use crate::rules::{self, Position};
use crate::ruleset::{ConflictRule, MinimumPointsScope, RuleSet, TwoInThree};
use crate::types::{AssuranceIcon, Classification, Direction, Flags, Point, Sides, VariationIcon};
use crate::xmr::{self, Limits};

/// Something the caller should know about the analysis; none of these stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Warning {
    /// A point's value is NaN or infinite; it is treated as ghosted.
    NonFiniteValue {
        /// Index of the point.
        index: usize,
    },
    /// The target is NaN or infinite; it is ignored.
    NonFiniteTarget,
    /// A run-length setting is outside the range the MDC tool allows (6–8).
    SettingOutOfRange {
        /// `"shift_points"` or `"trend_points"`.
        setting: &'static str,
        /// The value used.
        value: usize,
    },
    /// Fewer non-ghosted points in the chart than the minimum: the chart is a run
    /// chart (mean only, no limits, flags or icons).
    TooFewPoints {
        /// Non-ghosted points in the chart.
        points: usize,
        /// The rule set's minimum.
        minimum: usize,
    },
    /// With [`MinimumPointsScope::Partition`], a partition under the minimum: it has no
    /// limits, flags or classifications.
    PartitionTooFewPoints {
        /// Partition index.
        partition: usize,
        /// Non-ghosted points in the partition.
        points: usize,
        /// The rule set's minimum.
        minimum: usize,
    },
    /// A partition's limits rest on fewer points than the rule set's warning
    /// threshold (12). With fewer than 2 points there is no moving range and the
    /// partition has no limits (its points are still classified).
    ShortPartition {
        /// Partition index.
        partition: usize,
        /// Non-ghosted points the limits are computed from (the baseline, if any).
        points: usize,
        /// The rule set's warning threshold.
        threshold: usize,
    },
    /// A baseline on a point that does not start a partition; ignored.
    BaselineIgnored {
        /// Index of the point.
        index: usize,
    },
    /// A baseline of zero points; ignored (limits from the whole partition).
    EmptyBaseline {
        /// Partition index.
        partition: usize,
    },
    /// A baseline longer than its partition's non-ghosted points; the whole
    /// partition is used.
    BaselineExceedsPartition {
        /// Partition index.
        partition: usize,
        /// Points the baseline asked for.
        requested: usize,
        /// Non-ghosted points in the partition.
        available: usize,
    },
    /// The point the variation icon comes from triggered improvement and concern
    /// rules; the conflict rule picked one (MDC warns about this by default).
    VariationIconConflict {
        /// Index of the point.
        index: usize,
    },
}

/// One partition: a run of points between rebases, with its own centre and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionSummary {
    /// Partition index, from 0.
    pub index: usize,
    /// Indices (into the input) of the partition's points, ghosted ones included.
    pub points: Range<usize>,
    /// Non-ghosted points in the partition.
    pub non_ghosted: usize,
    /// Non-ghosted points the mean and limits are computed from: the baseline's
    /// length when a baseline applies, otherwise all of them.
    pub basis_points: usize,
    /// Whether a baseline fixed the mean and limits (the partition's first point
    /// carried a non-empty [`Baseline`](crate::Baseline)).
    pub baseline: bool,
    /// Centre line, `None` if the partition has no non-ghosted points.
    pub mean: Option<f64>,
    /// Limits, `None` for a run chart, a partition under the minimum, or fewer than
    /// two basis points.
    pub limits: Option<Limits>,
    /// Moving ranges dropped by outlier screening.
    pub moving_ranges_screened_out: usize,
}

/// One input point with its results.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointResult {
    /// The input value.
    pub value: f64,
    /// Ghosted (in the input, or because the value is not finite).
    pub ghosted: bool,
    /// Index of the partition the point belongs to.
    pub partition: usize,
    /// The partition's centre line (also shown on ghosted points and run charts).
    pub mean: Option<f64>,
    /// The partition's limits, if it has any.
    pub limits: Option<Limits>,
    /// Rules triggered; always none for ghosted points and points of a partition that
    /// is not assessed (a run chart, or under the minimum per partition). A point of an
    /// assessed partition too short for limits (one point) can still be part of a
    /// trend, but triggers no rule that needs limits.
    pub flags: Flags,
    /// `None` for ghosted points and points of a partition that is not assessed; a
    /// point of an assessed partition too short for limits is classified all the same.
    pub classification: Option<Classification>,
    /// The point triggered both high-side and low-side rules (improvement and
    /// concern, or neither-high and neither-low), resolved as documented on
    /// [`Classification`].
    pub conflict: bool,
}

/// The result of [`analyse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The rule set (name, version and settings) that produced this result.
    pub rules: RuleSet,
    /// The improvement direction analysed under.
    pub direction: Direction,
    /// The target, if any (a non-finite target is dropped, with a warning).
    pub target: Option<f64>,
    /// One result per input point, in input order.
    pub points: Vec<PointResult>,
    /// One summary per partition, in order.
    pub partitions: Vec<PartitionSummary>,
    /// No partition has limits: show as a run chart.
    pub run_chart: bool,
    /// From the last non-ghosted point; `None` when there is none or it is not
    /// classified (a run chart, or its partition under the minimum per partition). A
    /// last partition of a single point, too short for limits, still has one.
    pub variation: Option<VariationIcon>,
    /// From the target against the last non-ghosted point's partition's limits;
    /// `None` without a target, without a direction, or without limits.
    pub assurance: Option<AssuranceIcon>,
    /// Everything worth telling the user.
    pub warnings: Vec<Warning>,
}

impl Analysis {
    /// Name of the rule set that produced this result.
    pub fn rule_set_name(&self) -> &'static str {
        self.rules.name
    }

    /// Version of the rule set that produced this result.
    pub fn rule_set_version(&self) -> &'static str {
        self.rules.version
    }
}

/// Classify a point's combined rule sides under `direction`.
///
/// Returns the classification and whether high and low both triggered. For a
/// direction, high is improvement (increase) or concern (decrease) and a conflict
/// is settled by `conflict_rule`; without a direction a conflict shows as
/// neither-high, as the MDC tool does.
pub fn classify(
    sides: Sides,
    direction: Direction,
    conflict_rule: ConflictRule,
) -> (Classification, bool) {
    let conflict = sides.high && sides.low;
    let classification = match direction {
        Direction::Neither => {
            if sides.high {
                Classification::NeitherHigh
            } else if sides.low {
                Classification::NeitherLow
            } else {
                Classification::CommonCause
            }
        }
        Direction::Increase | Direction::Decrease => {
            let (improvement, concern) = if direction == Direction::Increase {
                (sides.high, sides.low)
            } else {
                (sides.low, sides.high)
            };
            match (improvement, concern) {
                (true, true) => match conflict_rule {
                    ConflictRule::Improvement => Classification::Improvement,
                    ConflictRule::Concern => Classification::Concern,
                },
                (true, false) => Classification::Improvement,
                (false, true) => Classification::Concern,
                (false, false) => Classification::CommonCause,
            }
        }
    };
    (classification, conflict)
}

/// Run the Making Data Count XmR analysis over `points` (in time order).
///
/// See the [crate documentation](crate) for the rules and settings.
pub fn analyse(
    points: &[Point],
    direction: Direction,
    target: Option<f64>,
    rules: &RuleSet,
) -> Analysis {
    let mut warnings = Vec::new();

    for (setting, value) in [
        ("shift_points", rules.shift_points),
        ("trend_points", rules.trend_points),
    ] {
        if !RuleSet::RUN_LENGTH_RANGE.contains(&value) {
            warnings.push(Warning::SettingOutOfRange { setting, value });
        }
    }

    let target = match target {
        Some(t) if !t.is_finite() => {
            warnings.push(Warning::NonFiniteTarget);
            None
        }
        other => other,
    };

    // Ghosting, with non-finite values ghosted too.
    let ghosted: Vec<bool> = points
        .iter()
        .enumerate()
        .map(|(index, p)| {
            if !p.ghosted && !p.value.is_finite() {
                warnings.push(Warning::NonFiniteValue { index });
                true
            } else {
                p.ghosted
            }
        })
        .collect();

    // Partitions: each recalculate-from point (and the first point) starts one.
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut partition_of = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        if i == 0 || p.recalculate_from {
            ranges.push(i..i);
        } else if p.baseline.is_some() {
            warnings.push(Warning::BaselineIgnored { index: i });
        }
        if let Some(r) = ranges.last_mut() {
            r.end = i + 1;
        }
        partition_of.push(ranges.len().saturating_sub(1));
    }

    let total_active = ghosted.iter().filter(|g| !**g).count();
    let is_spc_chart = match rules.minimum_points_scope {
        MinimumPointsScope::Chart => total_active >= rules.minimum_points,
        MinimumPointsScope::Partition => true,
    };
    if !is_spc_chart {
        warnings.push(Warning::TooFewPoints {
            points: total_active,
            minimum: rules.minimum_points,
        });
    }

    // Centre and limits per partition, and whether each is assessed at all.
    let mut partitions = Vec::with_capacity(ranges.len());
    let mut assessed_partitions = Vec::with_capacity(ranges.len());
    for (index, range) in ranges.iter().enumerate() {
        let active: Vec<f64> = range
            .clone()
            .filter(|&i| !ghosted[i])
            .map(|i| points[i].value)
            .collect();
        let baseline = points[range.start].baseline;
        let (basis_len, baseline_applied) = match baseline {
            Some(b) if b.points == 0 => {
                warnings.push(Warning::EmptyBaseline { partition: index });
                (active.len(), false)
            }
            Some(b) if b.points > active.len() => {
                warnings.push(Warning::BaselineExceedsPartition {
                    partition: index,
                    requested: b.points,
                    available: active.len(),
                });
                (active.len(), true)
            }
            Some(b) => (b.points, true),
            None => (active.len(), false),
        };
        let basis = &active[..basis_len];
        let computed = xmr::xmr(basis, rules.screen_moving_range_outliers);

        let meets_partition_minimum = match rules.minimum_points_scope {
            MinimumPointsScope::Chart => true,
            MinimumPointsScope::Partition => active.len() >= rules.minimum_points,
        };
        if !meets_partition_minimum {
            warnings.push(Warning::PartitionTooFewPoints {
                partition: index,
                points: active.len(),
                minimum: rules.minimum_points,
            });
        }
        let assessed = is_spc_chart && meets_partition_minimum;
        assessed_partitions.push(assessed);
        if assessed && basis_len < rules.partition_warning_points.max(2) {
            warnings.push(Warning::ShortPartition {
                partition: index,
                points: basis_len,
                threshold: rules.partition_warning_points,
            });
        }
        partitions.push(PartitionSummary {
            index,
            points: range.clone(),
            non_ghosted: active.len(),
            basis_points: basis_len,
            baseline: baseline_applied,
            mean: xmr::mean(basis),
            limits: if assessed {
                computed.map(|x| x.limits)
            } else {
                None
            },
            moving_ranges_screened_out: computed.map_or(0, |x| x.moving_ranges_screened_out),
        });
    }

    let run_chart = partitions.iter().all(|p| p.limits.is_none());
    // A partition is classified when it is assessed, even if it has too few points for
    // limits of its own (a one-point partition), as long as the chart is not a run
    // chart: MDC's SQL tool still runs every rule on such points — those needing
    // limits cannot fire — and gives the last one a variation icon. (With no limits
    // anywhere there is nothing to show special cause against, so it stays a run chart.)
    let classified: Vec<bool> = assessed_partitions
        .iter()
        .map(|&assessed| assessed && !run_chart)
        .collect();

    let mut results: Vec<PointResult> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let part = &partitions[partition_of[i]];
            PointResult {
                value: p.value,
                ghosted: ghosted[i],
                partition: part.index,
                mean: part.mean,
                limits: part.limits,
                flags: Flags::NONE,
                classification: None,
                conflict: false,
            }
        })
        .collect();

    // Shift, two-in-three and astronomical points within each classified partition.
    for part in &partitions {
        let Some(mean) = part.mean.filter(|_| classified[part.index]) else {
            continue;
        };
        let idx: Vec<usize> = part.points.clone().filter(|&i| !ghosted[i]).collect();
        // MDC's SQL tool puts a baseline's points in a partition of their own (the rest
        // sharing its mean and limits) and counts shifts and two-in-three within a
        // partition, so neither run continues across the baseline's end.
        let runs_split_at = if rules.baseline_restarts_runs && part.baseline {
            part.basis_points.min(idx.len())
        } else {
            idx.len()
        };
        for run in [&idx[..runs_split_at], &idx[runs_split_at..]] {
            let values: Vec<f64> = run.iter().map(|&i| points[i].value).collect();
            let positions: Vec<Position> = values.iter().map(|&v| Position::of(v, mean)).collect();
            let shift = rules::shift(&positions, rules.shift_points);
            for (k, &i) in run.iter().enumerate() {
                results[i].flags.shift = shift[k];
            }
            // The other rules need limits, which a one-point partition does not have.
            let Some(limits) = part.limits else { continue };
            let beyond: Vec<bool> = values
                .iter()
                .map(|&v| {
                    let upper = v > limits.upper_two_sigma
                        && (rules.two_in_three == TwoInThree::IncludeBeyondProcessLimit
                            || v <= limits.upper_process_limit);
                    let lower = v < limits.lower_two_sigma
                        && (rules.two_in_three == TwoInThree::IncludeBeyondProcessLimit
                            || v >= limits.lower_process_limit);
                    upper || lower
                })
                .collect();
            let astronomical = rules::astronomical(&values, &limits);
            let two_in_three = rules::two_in_three(&positions, &beyond);
            for (k, &i) in run.iter().enumerate() {
                let flags = &mut results[i].flags;
                flags.astronomical = astronomical[k];
                flags.two_in_three = two_in_three[k];
            }
        }
    }

    // Trends: over the whole chart's non-ghosted points, or within each partition. A
    // baseline's end never breaks one: MDC counts trends over the whole chart, and
    // NHSRplotthedots over a rebase group, which fixing its limits does not split.
    let trend_sequences: Vec<Vec<usize>> = if rules.trend_crosses_rebase {
        vec![(0..points.len()).filter(|&i| !ghosted[i]).collect()]
    } else {
        ranges
            .iter()
            .map(|r| r.clone().filter(|&i| !ghosted[i]).collect())
            .collect()
    };
    for seq in &trend_sequences {
        let values: Vec<f64> = seq.iter().map(|&i| points[i].value).collect();
        let trend = rules::trend(&values, rules.trend_points);
        for (k, &i) in seq.iter().enumerate() {
            if classified[partition_of[i]] {
                results[i].flags.trend = trend[k];
            }
        }
    }

    // Classification of every non-ghosted point of a classified partition.
    for r in &mut results {
        if r.ghosted || !classified[r.partition] {
            continue;
        }
        let (classification, conflict) =
            classify(r.flags.combined(), direction, rules.conflict_rule);
        r.classification = Some(classification);
        r.conflict = conflict;
    }

    // Icons from the last non-ghosted point.
    let last = (0..points.len()).rev().find(|&i| !ghosted[i]);
    let mut variation = None;
    let mut assurance = None;
    if let Some(i) = last {
        let r = &results[i];
        if let Some(classification) = r.classification {
            variation = Some(VariationIcon::from_classification(
                classification,
                direction,
            ));
            let two_sided = direction != Direction::Neither;
            if r.conflict && two_sided {
                warnings.push(Warning::VariationIconConflict { index: i });
            }
            // MDC compares the target with the point's limits; without limits (a
            // one-point partition) there is no assurance icon.
            assurance = r.limits.zip(target).and_then(|(limits, t)| {
                AssuranceIcon::assess(
                    t,
                    limits.lower_process_limit,
                    limits.upper_process_limit,
                    direction,
                )
            });
        }
    }

    Analysis {
        rules: *rules,
        direction,
        target,
        points: results,
        partitions,
        run_chart,
        variation,
        assurance,
        warnings,
    }
}
