//! Classification, the conflict rule, and the variation and assurance icons.

#![allow(clippy::unwrap_used)]

mod common;

use common::{baseline_then, plain};
use ics_spc::{
    AssuranceIcon, Classification, ConflictRule, Direction, Point, RuleSet, Sides, VariationIcon,
    Warning, analyse, classify,
};

const MDC: RuleSet = RuleSet::MDC_V2_5;

fn variation(tail: &[f64], direction: Direction) -> Option<VariationIcon> {
    analyse(&baseline_then(tail), direction, None, &MDC).variation
}

#[test]
fn variation_icons() {
    use Direction::{Decrease, Increase, Neither};
    use VariationIcon::*;
    // Baseline limits 4.68 … 15.32.
    assert_eq!(variation(&[10.5], Increase), Some(CommonCause));
    assert_eq!(variation(&[20.0], Increase), Some(ImprovementHigh));
    assert_eq!(variation(&[20.0], Decrease), Some(ConcernHigh));
    assert_eq!(variation(&[20.0], Neither), Some(NeitherHigh));
    assert_eq!(variation(&[0.0], Increase), Some(ConcernLow));
    assert_eq!(variation(&[0.0], Decrease), Some(ImprovementLow));
    assert_eq!(variation(&[0.0], Neither), Some(NeitherLow));
    // Only the last point matters.
    assert_eq!(variation(&[20.0, 10.5], Increase), Some(CommonCause));
}

#[test]
fn the_variation_icon_skips_trailing_ghosts() {
    let mut points = baseline_then(&[20.0]);
    points.push(Point::ghost(0.0));
    points.push(Point::ghost(10.0));
    let a = analyse(&points, Direction::Increase, None, &MDC);
    assert_eq!(a.variation, Some(VariationIcon::ImprovementHigh));
}

#[test]
fn classification_per_direction() {
    let a = analyse(
        &baseline_then(&[20.0, 0.0]),
        Direction::Increase,
        None,
        &MDC,
    );
    assert_eq!(
        a.points[16].classification,
        Some(Classification::Improvement)
    );
    assert_eq!(a.points[17].classification, Some(Classification::Concern));
    assert_eq!(
        a.points[3].classification,
        Some(Classification::CommonCause)
    );
    let a = analyse(
        &baseline_then(&[20.0, 0.0]),
        Direction::Decrease,
        None,
        &MDC,
    );
    assert_eq!(a.points[16].classification, Some(Classification::Concern));
    assert_eq!(
        a.points[17].classification,
        Some(Classification::Improvement)
    );
    let a = analyse(&baseline_then(&[20.0, 0.0]), Direction::Neither, None, &MDC);
    assert_eq!(
        a.points[16].classification,
        Some(Classification::NeitherHigh)
    );
    assert_eq!(
        a.points[17].classification,
        Some(Classification::NeitherLow)
    );
}

/// An increasing trend, every point below the mean: the trend is high-side, the
/// shift low-side.
const RISING_BELOW: [f64; 7] = [6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0];

#[test]
fn conflict_rule_improvement_wins_by_default() {
    let a = analyse(
        &baseline_then(&RISING_BELOW),
        Direction::Increase,
        None,
        &MDC,
    );
    for p in &a.points[16..] {
        assert!(p.flags.trend.high && p.flags.shift.low, "{:?}", p.flags);
        assert!(p.conflict);
        assert_eq!(p.classification, Some(Classification::Improvement));
    }
    assert_eq!(a.variation, Some(VariationIcon::ImprovementHigh));
    assert!(
        a.warnings
            .contains(&Warning::VariationIconConflict { index: 22 })
    );

    // Lower is better: the shift below is the improvement, the rising trend the
    // concern; improvement still wins.
    let a = analyse(
        &baseline_then(&RISING_BELOW),
        Direction::Decrease,
        None,
        &MDC,
    );
    assert_eq!(
        a.points[22].classification,
        Some(Classification::Improvement)
    );
    assert_eq!(a.variation, Some(VariationIcon::ImprovementLow));
}

#[test]
fn conflict_rule_concern() {
    let rs = RuleSet {
        name: "mdc-sql/concern-wins",
        conflict_rule: ConflictRule::Concern,
        ..MDC
    };
    let a = analyse(
        &baseline_then(&RISING_BELOW),
        Direction::Increase,
        None,
        &rs,
    );
    assert!(
        a.points[16..]
            .iter()
            .all(|p| p.classification == Some(Classification::Concern))
    );
    assert_eq!(a.variation, Some(VariationIcon::ConcernLow));
    let a = analyse(
        &baseline_then(&RISING_BELOW),
        Direction::Decrease,
        None,
        &rs,
    );
    assert_eq!(a.variation, Some(VariationIcon::ConcernHigh));
}

#[test]
fn without_a_direction_a_conflict_shows_high() {
    let a = analyse(
        &baseline_then(&RISING_BELOW),
        Direction::Neither,
        None,
        &MDC,
    );
    assert!(a.points[22].conflict);
    assert_eq!(
        a.points[22].classification,
        Some(Classification::NeitherHigh)
    );
    assert_eq!(a.variation, Some(VariationIcon::NeitherHigh));
    assert!(
        !a.warnings
            .iter()
            .any(|w| matches!(w, Warning::VariationIconConflict { .. }))
    );
}

#[test]
fn classify_table() {
    let both = Sides {
        high: true,
        low: true,
    };
    let high = Sides {
        high: true,
        low: false,
    };
    use Classification::*;
    use ConflictRule as C;
    use Direction::{Decrease, Increase, Neither};
    assert_eq!(
        classify(Sides::NONE, Increase, C::Improvement),
        (CommonCause, false)
    );
    assert_eq!(
        classify(high, Increase, C::Improvement),
        (Improvement, false)
    );
    assert_eq!(classify(high, Decrease, C::Improvement), (Concern, false));
    assert_eq!(
        classify(high.mirrored(), Decrease, C::Concern),
        (Improvement, false)
    );
    assert_eq!(
        classify(both, Increase, C::Improvement),
        (Improvement, true)
    );
    assert_eq!(classify(both, Decrease, C::Concern), (Concern, true));
    assert_eq!(classify(both, Neither, C::Concern), (NeitherHigh, true));
    assert_eq!(
        classify(high.mirrored(), Neither, C::Improvement),
        (NeitherLow, false)
    );
}

fn assurance(direction: Direction, target: Option<f64>) -> Option<AssuranceIcon> {
    analyse(&baseline_then(&[]), direction, target, &MDC).assurance
}

#[test]
fn assurance_icons() {
    use AssuranceIcon::*;
    use Direction::{Decrease, Increase, Neither};
    let l = analyse(&baseline_then(&[]), Increase, None, &MDC).partitions[0]
        .limits
        .unwrap();
    let (lower, upper) = (l.lower_process_limit, l.upper_process_limit);

    // Higher is better.
    assert_eq!(assurance(Increase, Some(4.0)), Some(Pass));
    assert_eq!(assurance(Increase, Some(lower)), Some(Pass));
    assert_eq!(assurance(Increase, Some(10.0)), Some(HitOrMiss));
    assert_eq!(assurance(Increase, Some(upper)), Some(Fail));
    assert_eq!(assurance(Increase, Some(16.0)), Some(Fail));
    // Lower is better.
    assert_eq!(assurance(Decrease, Some(16.0)), Some(Pass));
    assert_eq!(assurance(Decrease, Some(upper)), Some(Pass));
    assert_eq!(assurance(Decrease, Some(10.0)), Some(HitOrMiss));
    assert_eq!(assurance(Decrease, Some(lower)), Some(Fail));
    assert_eq!(assurance(Decrease, Some(4.0)), Some(Fail));
    // None without a target or a direction.
    assert_eq!(assurance(Increase, None), None);
    assert_eq!(assurance(Neither, Some(10.0)), None);
}

#[test]
fn a_non_finite_target_is_dropped() {
    let a = analyse(
        &baseline_then(&[]),
        Direction::Increase,
        Some(f64::NAN),
        &MDC,
    );
    assert_eq!(a.target, None);
    assert_eq!(a.assurance, None);
    assert!(a.warnings.contains(&Warning::NonFiniteTarget));
}

#[test]
fn assurance_uses_the_latest_partition() {
    let values: Vec<f64> = (0..40)
        .map(|i| match (i < 20, i % 2 == 0) {
            (true, true) => 9.0,
            (true, false) => 11.0,
            (false, true) => 49.0,
            (false, false) => 51.0,
        })
        .collect();
    let mut points = plain(&values);
    points[20] = points[20].recalculate();
    // 30 is above the first partition's limits and below the second's.
    let a = analyse(&points, Direction::Increase, Some(30.0), &MDC);
    assert_eq!(a.assurance, Some(AssuranceIcon::Pass));
    let a = analyse(&points[..20], Direction::Increase, Some(30.0), &MDC);
    assert_eq!(a.assurance, Some(AssuranceIcon::Fail));
}

#[test]
fn every_result_carries_its_rule_set() {
    let a = analyse(&baseline_then(&[]), Direction::Increase, None, &MDC);
    assert_eq!(
        (a.rule_set_name(), a.rule_set_version()),
        ("mdc-sql", "2.5")
    );
    assert_eq!(a.rules, MDC);
    let a = analyse(
        &baseline_then(&[]),
        Direction::Increase,
        None,
        &RuleSet::NHSR_PLOTTHEDOTS,
    );
    assert_eq!(a.rule_set_name(), "nhsr-plotthedots");
    assert_eq!(a.rules.label(), "nhsr-plotthedots 1");
    assert!(a.rules.screen_moving_range_outliers && !a.rules.trend_crosses_rebase);
    assert!(MDC.baseline_restarts_runs && !a.rules.baseline_restarts_runs);
    assert_eq!(RuleSet::default(), MDC);
}
