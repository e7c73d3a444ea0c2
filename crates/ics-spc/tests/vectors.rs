//! The public test vectors in the design (from NHSRplotthedots and the MDC formulas).

#![allow(clippy::unwrap_used)]

mod common;

use common::{approx4, baseline_then, plain};
use ics_spc::rules::{self, Position};
use ics_spc::{Classification, Direction, Limits, RuleSet, Sides, TwoInThree, Warning, analyse};

const Y: [f64; 18] = [
    1.0, 2.0, 1.0, 2.0, 10.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0,
];

const HIGH: Sides = Sides {
    high: true,
    low: false,
};
const LOW: Sides = Sides {
    high: false,
    low: true,
};
const NONE: Sides = Sides::NONE;

#[test]
fn xmr_limits_without_screening() {
    let a = analyse(&plain(&Y), Direction::Neither, None, &RuleSet::MDC_V2_5);
    assert!(!a.run_chart);
    let l = a.partitions[0].limits.unwrap();
    assert!(approx4(l.mean, 1.9444), "{l:?}");
    assert!(approx4(l.average_moving_range, 1.8824), "{l:?}");
    assert!(approx4(l.lower_process_limit, -3.0626), "{l:?}");
    assert!(approx4(l.upper_process_limit, 6.9515), "{l:?}");
    assert_eq!(a.partitions[0].moving_ranges_screened_out, 0);
    // Every point carries its partition's limits; the 10 is astronomical.
    assert!(a.points.iter().all(|p| p.limits == Some(l)));
    assert_eq!(a.points[4].flags.astronomical, HIGH);
    assert_eq!(Limits::compute(&Y, false), Some(l));
}

#[test]
fn xmr_limits_with_screening() {
    let a = analyse(
        &plain(&Y),
        Direction::Neither,
        None,
        &RuleSet::NHSR_PLOTTHEDOTS,
    );
    let l = a.partitions[0].limits.unwrap();
    assert!(approx4(l.mean, 1.9444), "{l:?}");
    assert!(approx4(l.average_moving_range, 1.0), "{l:?}");
    assert!(approx4(l.lower_process_limit, -0.7156), "{l:?}");
    assert!(approx4(l.upper_process_limit, 4.6044), "{l:?}");
    // The two moving ranges either side of the 10 (8 and 9) are dropped.
    assert_eq!(a.partitions[0].moving_ranges_screened_out, 2);
    assert_eq!(Limits::compute(&Y, true), Some(l));
}

#[test]
fn sigma_lines_are_fractions_of_the_process_limit_distance() {
    let l = Limits::from_mean_and_amr(10.0, 3.0);
    assert!((l.upper_process_limit - (10.0 + 2.66 * 3.0)).abs() < 1e-12);
    assert!((l.upper_two_sigma - (10.0 + 2.66 * 3.0 * 2.0 / 3.0)).abs() < 1e-12);
    assert!((l.lower_two_sigma - (10.0 - 2.66 * 3.0 * 2.0 / 3.0)).abs() < 1e-12);
    assert!((l.upper_one_sigma - (10.0 + 2.66)).abs() < 1e-12);
    assert!((l.lower_one_sigma - (10.0 - 2.66)).abs() < 1e-12);
}

fn positions(signs: &[i8]) -> Vec<Position> {
    signs
        .iter()
        .map(|s| match s {
            1 => Position::Above,
            -1 => Position::Below,
            _ => Position::OnMean,
        })
        .collect()
}

#[test]
fn shift_vector() {
    let sign = [1, 1, 1, 1, 1, 1, 1, 1, -1];
    // Detected from the 7th point: six in a row are not a shift, seven are.
    assert!(
        rules::shift(&positions(&sign[..6]), 7)
            .iter()
            .all(|s| *s == NONE)
    );
    assert!(
        rules::shift(&positions(&sign[..7]), 7)
            .iter()
            .all(|s| *s == HIGH)
    );
    // All of the first eight flagged, the ninth not.
    let flags = rules::shift(&positions(&sign), 7);
    assert_eq!(flags[..8], [HIGH; 8]);
    assert_eq!(flags[8], NONE);
}

#[test]
fn shift_vector_end_to_end() {
    // The vector's signs, padded with [-2, 1] x 7 so the mean is exactly 0 and
    // nothing else triggers.
    let mut values = vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0];
    for _ in 0..7 {
        values.extend([-2.0, 1.0]);
    }
    let a = analyse(
        &plain(&values),
        Direction::Increase,
        None,
        &RuleSet::MDC_V2_5,
    );
    assert_eq!(a.partitions[0].mean, Some(0.0));
    for (i, p) in a.points.iter().enumerate() {
        let expected = if i < 8 { HIGH } else { NONE };
        assert_eq!(p.flags.shift, expected, "point {i}");
        assert!(!p.flags.astronomical.any() && !p.flags.trend.any());
        assert!(!p.flags.two_in_three.any());
        let class = if i < 8 {
            Classification::Improvement
        } else {
            Classification::CommonCause
        };
        assert_eq!(p.classification, Some(class), "point {i}");
    }
}

#[test]
fn a_point_on_the_mean_breaks_a_shift() {
    let sign = [1, 1, 1, 0, 1, 1, 1, 1];
    assert!(
        rules::shift(&positions(&sign), 7)
            .iter()
            .all(|s| *s == NONE)
    );
    let below = [-1; 7];
    assert!(
        rules::shift(&positions(&below), 7)
            .iter()
            .all(|s| *s == LOW)
    );
}

#[test]
fn shift_length_setting() {
    let sign = [1, 1, 1, 1, 1, 1, -1];
    assert!(
        rules::shift(&positions(&sign), 6)[..6]
            .iter()
            .all(|s| *s == HIGH)
    );
    assert!(
        rules::shift(&positions(&sign), 7)
            .iter()
            .all(|s| *s == NONE)
    );
    // Out-of-range settings are used but warned about.
    let rs = RuleSet {
        shift_points: 5,
        ..RuleSet::MDC_V2_5
    };
    let a = analyse(&plain(&Y), Direction::Neither, None, &rs);
    assert!(a.warnings.contains(&Warning::SettingOutOfRange {
        setting: "shift_points",
        value: 5
    }));
}

#[test]
fn trend_vectors() {
    let up: Vec<f64> = (1..=7).map(f64::from).collect();
    assert!(rules::trend(&up, 7).iter().all(|s| *s == HIGH));
    let tie = [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0];
    assert!(rules::trend(&tie, 7).iter().all(|s| *s == NONE));
    let down: Vec<f64> = up.iter().rev().copied().collect();
    assert!(rules::trend(&down, 7).iter().all(|s| *s == LOW));
    // Six points are not enough.
    assert!(rules::trend(&up[..6], 7).iter().all(|s| *s == NONE));
    // A peak ends one trend and starts the other.
    let peak = [
        1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0,
    ];
    let flags = rules::trend(&peak, 7);
    assert_eq!(
        flags[6],
        Sides {
            high: true,
            low: true
        }
    );
    assert_eq!(flags[0], HIGH);
    assert_eq!(flags[12], LOW);
}

#[test]
fn trend_end_to_end() {
    // Noise, then 1..7, then noise; and the same with a tie.
    let noise = [4.0, 5.0, 4.0, 5.0, 4.0, 5.0, 4.0, 5.0];
    let run = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
    let values: Vec<f64> = noise.iter().chain(&run).chain(&noise).copied().collect();
    let a = analyse(
        &plain(&values),
        Direction::Increase,
        None,
        &RuleSet::MDC_V2_5,
    );
    // 5.0 -> 1.0 is a fall, 7.0 -> 4.0 too: the trend is exactly the seven points.
    for (i, p) in a.points.iter().enumerate() {
        let expected = if (8..15).contains(&i) { HIGH } else { NONE };
        assert_eq!(p.flags.trend, expected, "point {i}");
    }

    let tied = [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0];
    let values: Vec<f64> = noise.iter().chain(&tied).chain(&noise).copied().collect();
    let a = analyse(
        &plain(&values),
        Direction::Increase,
        None,
        &RuleSet::MDC_V2_5,
    );
    assert!(a.points.iter().all(|p| !p.flags.trend.any()));
}

#[test]
fn two_in_three_vectors() {
    let close = [false, false, true, false, true, false, false];
    let flags = rules::two_in_three(&positions(&[1; 7]), &close);
    let expected = [NONE, NONE, HIGH, NONE, HIGH, NONE, NONE];
    assert_eq!(flags, expected);
    // Same on the low side.
    let flags = rules::two_in_three(&positions(&[-1; 7]), &close);
    assert_eq!(flags[2], LOW);
    assert_eq!(flags[4], LOW);

    // Not all on the same side of the mean: nothing.
    let flags = rules::two_in_three(&positions(&[1, -1, 1]), &[true, false, true]);
    assert!(flags.iter().all(|s| *s == NONE));
    // A point on the mean breaks it too.
    let flags = rules::two_in_three(&positions(&[1, 0, 1]), &[true, false, true]);
    assert!(flags.iter().all(|s| *s == NONE));
    // One in three is not enough.
    let flags = rules::two_in_three(&positions(&[1, 1, 1]), &[true, false, false]);
    assert!(flags.iter().all(|s| *s == NONE));
}

#[test]
fn two_in_three_end_to_end() {
    // Baseline: mean 10, upper 2σ 13.5467, upper process limit 15.32.
    let a = analyse(
        &baseline_then(&[9.0, 14.0, 10.5, 14.0, 9.0]),
        Direction::Increase,
        None,
        &RuleSet::MDC_V2_5,
    );
    let tail: Vec<Sides> = a.points[16..]
        .iter()
        .map(|p| p.flags.two_in_three)
        .collect();
    assert_eq!(tail, [NONE, HIGH, NONE, HIGH, NONE]);
    assert_eq!(
        a.points[17].classification,
        Some(Classification::Improvement)
    );
    assert_eq!(
        a.points[18].classification,
        Some(Classification::CommonCause)
    );
}

#[test]
fn two_in_three_and_points_beyond_the_process_limit() {
    // 14 is beyond 2σ; 16 is beyond the process limit (15.32).
    let points = baseline_then(&[9.0, 10.5, 14.0, 16.0, 9.0]);

    // v2.5: the 16 does not count, so the 14 is alone.
    let a = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    assert!(a.points.iter().all(|p| !p.flags.two_in_three.any()));
    assert_eq!(a.points[19].flags.astronomical, HIGH);

    // 2023: it counts, and both are flagged.
    let rs = RuleSet {
        name: "mdc-2023",
        two_in_three: TwoInThree::IncludeBeyondProcessLimit,
        ..RuleSet::MDC_V2_5
    };
    let a = analyse(&points, Direction::Increase, None, &rs);
    let tail: Vec<Sides> = a.points[16..]
        .iter()
        .map(|p| p.flags.two_in_three)
        .collect();
    assert_eq!(tail, [NONE, NONE, HIGH, HIGH, NONE]);
}

#[test]
fn astronomical_is_strict() {
    let points = baseline_then(&[]);
    let a = analyse(&points, Direction::Increase, None, &RuleSet::MDC_V2_5);
    let l = a.partitions[0].limits.unwrap();
    let on_limit = [l.upper_process_limit, l.lower_process_limit];
    let flags = rules::astronomical(&on_limit, &l);
    assert!(flags.iter().all(|s| *s == NONE));
    let beyond = [l.upper_process_limit + 1e-9, l.lower_process_limit - 1e-9];
    assert_eq!(rules::astronomical(&beyond, &l), [HIGH, LOW]);
}
