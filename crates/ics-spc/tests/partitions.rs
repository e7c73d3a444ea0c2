//! Rebasing, baselines, ghosting and the minimum-point rules.

#![allow(clippy::unwrap_used)]

mod common;

use common::{baseline_then, plain};
use ics_spc::{
    Classification, Direction, MinimumPointsScope, Point, RuleSet, Sides, Warning, analyse,
};

fn alternating(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| if i % 2 == 0 { a } else { b }).collect()
}

#[test]
fn recalculate_from_starts_a_partition_with_its_own_limits() {
    let mut values = alternating(9.0, 11.0, 20);
    values.extend(alternating(49.0, 51.0, 20));

    // Without a rebase the second half is one long shift above the mean.
    let one = analyse(
        &plain(&values),
        Direction::Increase,
        None,
        &RuleSet::MDC_V2_5,
    );
    assert_eq!(one.partitions.len(), 1);
    assert!(one.points[20..].iter().all(|p| p.flags.shift.high));

    let mut points = plain(&values);
    points[20] = points[20].recalculate();
    let a = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    assert_eq!(a.partitions.len(), 2);
    assert_eq!(a.partitions[0].points, 0..20);
    assert_eq!(a.partitions[1].points, 20..40);
    let (l0, l1) = (
        a.partitions[0].limits.unwrap(),
        a.partitions[1].limits.unwrap(),
    );
    assert_eq!(l0.mean, 10.0);
    assert_eq!(l1.mean, 50.0);
    // The jump 11 -> 49 is not a moving range of either partition.
    assert_eq!(l0.average_moving_range, 2.0);
    assert_eq!(l1.average_moving_range, 2.0);
    for (i, p) in a.points.iter().enumerate() {
        assert_eq!(p.partition, usize::from(i >= 20));
        assert_eq!(p.limits, Some(if i < 20 { l0 } else { l1 }));
        assert!(!p.flags.any(), "point {i}: {:?}", p.flags);
        assert_eq!(p.classification, Some(Classification::CommonCause));
    }
}

#[test]
fn a_ghosted_point_can_start_a_partition() {
    let mut values = alternating(9.0, 11.0, 20);
    values.extend(alternating(49.0, 51.0, 20));
    let mut points = plain(&values);
    points[20] = Point::ghost(1000.0).recalculate();
    let a = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    assert_eq!(a.partitions[1].points, 20..40);
    assert_eq!(a.partitions[1].non_ghosted, 19);
    // The ghosted 49 is dropped: 10 × 51 and 9 × 49 remain.
    let mean = a.partitions[1].mean.unwrap();
    assert!((mean - 951.0 / 19.0).abs() < 1e-12, "{mean}");
    assert!(a.points[20].ghosted);
    assert!(!a.points[20].flags.any());
    assert_eq!(a.points[20].classification, None);
    assert_eq!(a.points[20].limits, a.partitions[1].limits);
}

#[test]
fn baseline_fixes_limits_and_carries_them_forward() {
    // After the baseline the process jumps to 20: all beyond the fixed limit.
    let a = analyse(
        &baseline_then(&[20.0; 10]),
        Direction::Increase,
        None,
        &RuleSet::MDC_V2_5,
    );
    let part = &a.partitions[0];
    assert!(part.baseline);
    assert_eq!(part.basis_points, 16);
    assert_eq!(part.non_ghosted, 26);
    let l = part.limits.unwrap();
    assert_eq!(l.mean, 10.0);
    assert_eq!(l.average_moving_range, 2.0);
    assert!(
        a.points
            .iter()
            .all(|p| p.limits == Some(l) && p.mean == Some(10.0))
    );
    for p in &a.points[16..] {
        assert_eq!(
            p.flags.astronomical,
            Sides {
                high: true,
                low: false
            }
        );
        assert!(p.flags.shift.high);
        assert_eq!(p.classification, Some(Classification::Improvement));
    }
    // Without the baseline the jump is absorbed into the limits.
    let mut plain_points = baseline_then(&[20.0; 10]);
    plain_points[0].baseline = None;
    let b = analyse(&plain_points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    assert!(!b.partitions[0].baseline);
    assert_ne!(b.partitions[0].limits.unwrap().mean, 10.0);
}

#[test]
fn baseline_counts_non_ghosted_points() {
    let mut points = baseline_then(&[20.0; 10]);
    // A ghost inside the baseline does not shorten it.
    points.insert(3, Point::ghost(500.0));
    let a = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    assert_eq!(a.partitions[0].basis_points, 16);
    assert_eq!(a.partitions[0].limits.unwrap().mean, 10.0);
}

#[test]
fn baseline_on_a_later_partition() {
    let mut values = alternating(9.0, 11.0, 20);
    values.extend(alternating(49.0, 51.0, 16));
    values.extend([70.0; 4]);
    let mut points = plain(&values);
    points[20] = points[20].recalculate().with_baseline(16);
    let a = analyse(&points, Direction::Decrease, None, &RuleSet::MDC_V2_5);
    assert!(!a.partitions[0].baseline);
    assert!(a.partitions[1].baseline);
    assert_eq!(a.partitions[1].limits.unwrap().mean, 50.0);
    for p in &a.points[36..] {
        assert!(p.flags.astronomical.high);
        assert_eq!(p.classification, Some(Classification::Concern));
    }
}

#[test]
fn the_end_of_a_baseline_restarts_a_shift_in_mdc_but_not_in_nhsr() {
    // The baseline ends ..., 9, 11 (mean 10); six 12s follow. The 11 and the 12s are
    // seven in a row above the mean, but only six of them come after the baseline.
    let points = baseline_then(&[12.0; 6]);
    let mdc = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    assert_eq!(mdc.partitions[0].limits.unwrap().mean, 10.0);
    assert!(
        mdc.points.iter().all(|p| !p.flags.shift.any()),
        "{:?}",
        mdc.points.iter().map(|p| p.flags.shift).collect::<Vec<_>>()
    );
    // NHSRplotthedots fixes the limits without splitting the rules' runs: the seven
    // straddling the baseline's end are a shift.
    let nhsr = analyse(
        &points,
        Direction::Increase,
        None,
        &RuleSet::NHSR_PLOTTHEDOTS,
    );
    for (i, p) in nhsr.points.iter().enumerate() {
        assert_eq!(p.flags.shift.high, i >= 15, "point {i}");
    }
    // The setting alone makes the difference.
    let runs_on = RuleSet {
        name: "mdc-sql/runs-past-baseline",
        baseline_restarts_runs: false,
        ..RuleSet::MDC_V2_5
    };
    let a = analyse(&points, Direction::Increase, None, &runs_on);
    for (i, p) in a.points.iter().enumerate() {
        assert_eq!(p.flags.shift.high, i >= 15, "point {i}");
    }
    // Seven 12s after the baseline are a shift either way.
    let after = analyse(
        &baseline_then(&[12.0; 7]),
        Direction::Increase,
        None,
        &RuleSet::MDC_V2_5,
    );
    for (i, p) in after.points.iter().enumerate() {
        assert_eq!(p.flags.shift.high, i >= 16, "point {i}");
    }
}

/// A 16-point baseline of mean 10 whose last point (15) lies between the upper 2σ
/// line and the upper process limit, then `tail`.
fn baseline_ending_high(tail: &[f64]) -> Vec<Point> {
    let mut values = alternating(9.0, 11.0, 14);
    values.extend([5.0, 15.0]);
    values.extend(tail);
    let mut points = plain(&values);
    points[0] = points[0].with_baseline(16);
    points
}

#[test]
fn the_end_of_a_baseline_restarts_two_in_three_in_mdc_but_not_in_nhsr() {
    // 15 (the baseline's last point), 15.5, 10.5: three above the mean, the first two
    // beyond the upper 2σ line — but the three straddle the baseline's end.
    let points = baseline_ending_high(&[15.5, 10.5, 9.0]);
    for rules in [RuleSet::MDC_V2_5, RuleSet::NHSR_PLOTTHEDOTS] {
        let a = analyse(&points, Direction::Increase, None, &rules);
        let l = a.partitions[0].limits.unwrap();
        assert_eq!(l.mean, 10.0);
        for v in [15.0, 15.5] {
            assert!(v > l.upper_two_sigma && v <= l.upper_process_limit, "{l:?}");
        }
        assert!(10.5 > l.mean && 10.5 < l.upper_two_sigma);
        let flagged: Vec<usize> = (0..a.points.len())
            .filter(|&i| a.points[i].flags.two_in_three.any())
            .collect();
        if rules.name == RuleSet::MDC_V2_5.name {
            assert_eq!(flagged, Vec::<usize>::new());
            assert_eq!(
                a.points[16].classification,
                Some(Classification::CommonCause)
            );
        } else {
            assert_eq!(flagged, [15, 16]);
            assert_eq!(
                a.points[16].classification,
                Some(Classification::Improvement)
            );
        }
    }
}

#[test]
fn the_end_of_a_baseline_does_not_break_a_trend() {
    // The baseline ends 9, 11 (mean 10); 11.5, 12, 12.5, 13, 13.5 follow: with the
    // 9 and the 11, seven strictly increasing points across the baseline's end.
    let points = baseline_then(&[11.5, 12.0, 12.5, 13.0, 13.5]);
    for rules in [RuleSet::MDC_V2_5, RuleSet::NHSR_PLOTTHEDOTS] {
        let a = analyse(&points, Direction::Increase, None, &rules);
        for (i, p) in a.points.iter().enumerate() {
            assert_eq!(p.flags.trend.high, i >= 14, "{}: point {i}", rules.name);
        }
    }
}

#[test]
fn misplaced_empty_and_oversized_baselines_are_warned_about() {
    let mut points = plain(&alternating(9.0, 11.0, 20));
    points[5] = points[5].with_baseline(3);
    let a = analyse(&points, Direction::Neither, None, &RuleSet::MDC_V2_5);
    assert!(a.warnings.contains(&Warning::BaselineIgnored { index: 5 }));
    assert!(!a.partitions[0].baseline);

    let mut points = plain(&alternating(9.0, 11.0, 20));
    points[0] = points[0].with_baseline(0);
    let a = analyse(&points, Direction::Neither, None, &RuleSet::MDC_V2_5);
    assert!(
        a.warnings
            .contains(&Warning::EmptyBaseline { partition: 0 })
    );
    assert_eq!(a.partitions[0].basis_points, 20);

    let mut points = plain(&alternating(9.0, 11.0, 20));
    points[0] = points[0].with_baseline(30);
    let a = analyse(&points, Direction::Neither, None, &RuleSet::MDC_V2_5);
    assert!(a.warnings.contains(&Warning::BaselineExceedsPartition {
        partition: 0,
        requested: 30,
        available: 20
    }));
    assert_eq!(a.partitions[0].basis_points, 20);
}

#[test]
fn trends_cross_a_rebase_in_mdc_but_not_in_nhsr() {
    // Partition 0 ends 0, 1, 2, 3; partition 1 starts 4, 5, 6, 7, 10.
    let mut values = alternating(10.0, 0.0, 16);
    values.extend([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    values.extend(alternating(10.0, 0.0, 16));
    let mut points = plain(&values);
    points[19] = points[19].recalculate();

    let mdc = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    for (i, p) in mdc.points.iter().enumerate() {
        // 0 (index 15) .. 10 (index 23) is one increasing run of nine.
        assert_eq!(p.flags.trend.high, (15..=23).contains(&i), "point {i}");
    }
    let nhsr = analyse(
        &points,
        Direction::Increase,
        None,
        &RuleSet::NHSR_PLOTTHEDOTS,
    );
    assert!(nhsr.points.iter().all(|p| !p.flags.trend.any()));
}

#[test]
fn ghosted_points_are_returned_but_excluded() {
    let values = alternating(9.0, 11.0, 20);
    let mut points = plain(&values);
    points.insert(7, Point::ghost(1000.0));
    let a = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    assert_eq!(a.points.len(), 21);
    let l = a.partitions[0].limits.unwrap();
    assert_eq!(l.mean, 10.0);
    assert_eq!(l.average_moving_range, 2.0);
    let ghost = &a.points[7];
    assert!(ghost.ghosted);
    assert_eq!(ghost.value, 1000.0);
    assert_eq!(ghost.flags, ics_spc::Flags::NONE);
    assert_eq!(ghost.classification, None);
    assert_eq!(ghost.limits, Some(l));
}

#[test]
fn non_finite_values_are_ghosted_with_a_warning() {
    let mut points = plain(&alternating(9.0, 11.0, 20));
    points.push(Point::new(f64::NAN));
    let a = analyse(&points, Direction::Increase, Some(5.0), &RuleSet::MDC_V2_5);
    assert!(a.points[20].ghosted);
    assert!(a.warnings.contains(&Warning::NonFiniteValue { index: 20 }));
    assert_eq!(a.partitions[0].limits.unwrap().mean, 10.0);
    assert!(a.variation.is_some());
}

#[test]
fn under_fifteen_points_is_a_run_chart() {
    let values = [
        5.0, 6.0, 5.0, 6.0, 5.0, 6.0, 5.0, 6.0, 5.0, 6.0, 5.0, 6.0, 5.0, 60.0,
    ];
    let a = analyse(
        &plain(&values),
        Direction::Increase,
        Some(4.0),
        &RuleSet::MDC_V2_5,
    );
    assert!(a.run_chart);
    assert!(a.warnings.contains(&Warning::TooFewPoints {
        points: 14,
        minimum: 15
    }));
    assert_eq!(a.variation, None);
    assert_eq!(a.assurance, None);
    assert_eq!(a.partitions[0].limits, None);
    let mean = a.partitions[0].mean.unwrap();
    for p in &a.points {
        assert_eq!(p.mean, Some(mean));
        assert_eq!(p.limits, None);
        assert!(!p.flags.any());
        assert_eq!(p.classification, None);
    }
    // No partition warnings on a run chart.
    assert!(
        !a.warnings
            .iter()
            .any(|w| matches!(w, Warning::ShortPartition { .. }))
    );

    // Fifteen points make an SPC chart.
    let mut fifteen = values.to_vec();
    fifteen.insert(0, 6.0);
    let a = analyse(
        &plain(&fifteen),
        Direction::Increase,
        Some(4.0),
        &RuleSet::MDC_V2_5,
    );
    assert!(!a.run_chart);
    assert!(a.partitions[0].limits.is_some());
    assert!(a.variation.is_some());
    assert!(a.assurance.is_some());
    // Fifteen ≥ 12: no short-partition warning.
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
}

#[test]
fn ghosted_points_do_not_count_towards_the_minimum() {
    let mut points = plain(&alternating(5.0, 6.0, 14));
    points.push(Point::ghost(5.0));
    points.push(Point::ghost(6.0));
    let a = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    assert!(a.run_chart);
}

#[test]
fn chart_scope_keeps_limits_on_a_short_partition_with_a_warning() {
    let mut values = alternating(9.0, 11.0, 25);
    values.extend(alternating(19.0, 21.0, 6));
    let mut points = plain(&values);
    points[25] = points[25].recalculate();
    let a = analyse(&points, Direction::Increase, Some(14.0), &RuleSet::MDC_V2_5);
    assert!(a.partitions[1].limits.is_some());
    assert!(a.warnings.contains(&Warning::ShortPartition {
        partition: 1,
        points: 6,
        threshold: 12
    }));
    assert_eq!(a.partitions[1].limits.unwrap().mean, 20.0);
    assert!(a.variation.is_some());
    // Target 14 is below the latest partition's lower limit (20 - 5.32), though
    // between the first partition's limits.
    assert_eq!(a.assurance, Some(ics_spc::AssuranceIcon::Pass));
}

#[test]
fn partition_scope_drops_limits_of_a_short_partition() {
    let mut values = alternating(9.0, 11.0, 25);
    values.extend(alternating(19.0, 21.0, 6));
    let mut points = plain(&values);
    points[25] = points[25].recalculate();
    let rs = RuleSet {
        name: "mdc-sql/partition-minimum",
        minimum_points_scope: MinimumPointsScope::Partition,
        ..RuleSet::MDC_V2_5
    };
    let a = analyse(&points, Direction::Increase, Some(14.0), &rs);
    assert!(!a.run_chart);
    assert!(a.partitions[0].limits.is_some());
    assert_eq!(a.partitions[1].limits, None);
    assert_eq!(a.partitions[1].mean, Some(20.0));
    assert!(a.warnings.contains(&Warning::PartitionTooFewPoints {
        partition: 1,
        points: 6,
        minimum: 15
    }));
    assert!(
        a.points[25..]
            .iter()
            .all(|p| p.limits.is_none() && p.classification.is_none() && !p.flags.any())
    );
    // The latest partition has no limits: no icons.
    assert_eq!(a.variation, None);
    assert_eq!(a.assurance, None);

    // Every partition short: a run chart.
    let short = plain(&alternating(9.0, 11.0, 10));
    let a = analyse(&short, Direction::Increase, None, &rs);
    assert!(a.run_chart);
}

#[test]
fn a_last_partition_of_one_point_has_no_limits_but_a_common_cause_icon() {
    let mut values = alternating(9.0, 11.0, 20);
    values.push(30.0);
    let mut points = plain(&values);
    points[20] = points[20].recalculate();
    // A ghost in the last partition does not count as a second point.
    points.push(Point::ghost(31.0));
    let a = analyse(&points, Direction::Increase, Some(20.0), &RuleSet::MDC_V2_5);
    assert!(a.partitions[0].limits.is_some());
    assert_eq!(a.partitions[1].non_ghosted, 1);
    assert_eq!(a.partitions[1].limits, None);
    assert_eq!(a.partitions[1].mean, Some(30.0));
    assert!(a.warnings.contains(&Warning::ShortPartition {
        partition: 1,
        points: 1,
        threshold: 12
    }));
    // Without limits no rule fires on the 30, but the point is assessed: common cause.
    let last = &a.points[20];
    assert_eq!(last.limits, None);
    assert!(!last.flags.any(), "{:?}", last.flags);
    assert_eq!(last.classification, Some(Classification::CommonCause));
    assert_eq!(a.variation, Some(ics_spc::VariationIcon::CommonCause));
    // The target has no limits to be judged against.
    assert_eq!(a.assurance, None);
    assert!(!a.run_chart);
}

#[test]
fn a_last_partition_of_one_point_keeps_its_trend() {
    // Partition 0 ends 0, 1, ..., 6; the rebase starts a one-point partition at 7:
    // eight increasing points, the last alone in its partition.
    let mut values = alternating(10.0, 0.0, 16);
    values.extend([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    let mut points = plain(&values);
    points[22] = points[22].recalculate();

    let mdc = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    assert_eq!(mdc.partitions[1].points, 22..23);
    assert_eq!(mdc.partitions[1].limits, None);
    for (i, p) in mdc.points.iter().enumerate() {
        assert_eq!(p.flags.trend.high, (15..=22).contains(&i), "point {i}");
    }
    assert_eq!(
        mdc.points[22].classification,
        Some(Classification::Improvement)
    );
    assert_eq!(mdc.variation, Some(ics_spc::VariationIcon::ImprovementHigh));
    let neither = analyse(&points, Direction::Neither, None, &RuleSet::MDC_V2_5);
    assert_eq!(neither.variation, Some(ics_spc::VariationIcon::NeitherHigh));

    // NHSRplotthedots stops trends at a rebase: the lone 7 is common cause.
    let nhsr = analyse(
        &points,
        Direction::Increase,
        None,
        &RuleSet::NHSR_PLOTTHEDOTS,
    );
    assert!(!nhsr.points[22].flags.any());
    assert_eq!(
        nhsr.points[22].classification,
        Some(Classification::CommonCause)
    );
    assert_eq!(nhsr.variation, Some(ics_spc::VariationIcon::CommonCause));
}

#[test]
fn a_one_point_partition_under_the_partition_minimum_is_not_assessed() {
    let mut values = alternating(9.0, 11.0, 20);
    values.push(30.0);
    let mut points = plain(&values);
    points[20] = points[20].recalculate();
    let rs = RuleSet {
        name: "mdc-sql/partition-minimum",
        minimum_points_scope: MinimumPointsScope::Partition,
        ..RuleSet::MDC_V2_5
    };
    let a = analyse(&points, Direction::Increase, None, &rs);
    assert_eq!(a.points[20].classification, None);
    assert_eq!(a.variation, None);
}

#[test]
fn empty_input() {
    let a = analyse(&[], Direction::Increase, Some(1.0), &RuleSet::MDC_V2_5);
    assert!(a.points.is_empty());
    assert!(a.partitions.is_empty());
    assert!(a.run_chart);
    assert_eq!(a.variation, None);
    assert_eq!(a.assurance, None);
}
