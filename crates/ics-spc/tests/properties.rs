//! Property tests over many seeded random series (a deterministic xorshift, so every
//! run checks the same cases).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Rng, random_direction, random_series};
use ics_spc::{
    Analysis, Classification, ConflictRule, Direction, MinimumPointsScope, Point, RuleSet,
    TwoInThree, Warning, analyse,
};

const CASES: usize = 3000;

fn rule_sets() -> [RuleSet; 5] {
    [
        RuleSet::MDC_V2_5,
        RuleSet::NHSR_PLOTTHEDOTS,
        RuleSet {
            name: "test/2023",
            two_in_three: TwoInThree::IncludeBeyondProcessLimit,
            conflict_rule: ConflictRule::Concern,
            ..RuleSet::MDC_V2_5
        },
        RuleSet {
            name: "test/partition-minimum",
            minimum_points: 8,
            minimum_points_scope: MinimumPointsScope::Partition,
            shift_points: 6,
            trend_points: 6,
            ..RuleSet::NHSR_PLOTTHEDOTS
        },
        RuleSet {
            name: "test/short",
            minimum_points: 5,
            shift_points: 8,
            trend_points: 8,
            ..RuleSet::MDC_V2_5
        },
    ]
}

struct Case {
    points: Vec<Point>,
    direction: Direction,
    target: Option<f64>,
    rules: RuleSet,
}

fn cases(seed: u64) -> impl Iterator<Item = (Case, Rng)> {
    let mut rng = Rng::new(seed);
    let sets = rule_sets();
    (0..CASES).map(move |_| {
        let points = random_series(&mut rng);
        let direction = random_direction(&mut rng);
        let target = if rng.chance(2, 3) {
            Some(rng.quarter(30))
        } else {
            None
        };
        let rules = rng.pick(&sets);
        let case = Case {
            points,
            direction,
            target,
            rules,
        };
        let fork = Rng::new(rng.next_u64());
        (case, fork)
    })
}

fn run(c: &Case) -> Analysis {
    analyse(&c.points, c.direction, c.target, &c.rules)
}

/// Counts of what the random series triggered, so the properties are not vacuous.
#[derive(Default, Debug)]
struct Coverage {
    astronomical: usize,
    shift: usize,
    trend: usize,
    two_in_three: usize,
    conflicts: usize,
    run_charts: usize,
    baselines: usize,
    rebased: usize,
}

impl Coverage {
    fn add(&mut self, a: &Analysis) {
        for p in &a.points {
            self.astronomical += usize::from(p.flags.astronomical.any());
            self.shift += usize::from(p.flags.shift.any());
            self.trend += usize::from(p.flags.trend.any());
            self.two_in_three += usize::from(p.flags.two_in_three.any());
            self.conflicts += usize::from(p.conflict);
        }
        self.run_charts += usize::from(a.run_chart);
        self.baselines += usize::from(a.partitions.iter().any(|p| p.baseline));
        self.rebased += usize::from(a.partitions.len() > 1);
    }

    fn assert_broad(&self) {
        for (what, n) in [
            ("astronomical", self.astronomical),
            ("shift", self.shift),
            ("trend", self.trend),
            ("two_in_three", self.two_in_three),
            ("conflicts", self.conflicts),
            ("run charts", self.run_charts),
            ("baselines", self.baselines),
            ("rebased", self.rebased),
        ] {
            assert!(n >= 20, "too little {what} coverage: {self:?}");
        }
    }
}

#[test]
fn basic_invariants() {
    let mut coverage = Coverage::default();
    for (c, _) in cases(1) {
        let a = run(&c);
        coverage.add(&a);
        assert_eq!(a.points.len(), c.points.len());
        assert_eq!(a.rules, c.rules);
        let covered: usize = a.partitions.iter().map(|p| p.points.len()).sum();
        assert_eq!(covered, c.points.len());
        for (i, p) in a.points.iter().enumerate() {
            assert_eq!(p.value.to_bits(), c.points[i].value.to_bits());
            assert!(a.partitions[p.partition].points.contains(&i));
            // Every partition of a chart with limits somewhere is assessed, unless it
            // is under the minimum per partition.
            let assessed = !a.run_chart
                && !a.warnings.iter().any(|w| {
                    matches!(w, Warning::PartitionTooFewPoints { partition, .. }
                        if *partition == p.partition)
                });
            if p.ghosted || !assessed {
                assert!(!p.flags.any(), "{p:?}");
                assert_eq!(p.classification, None);
            } else {
                assert!(p.classification.is_some());
                assert_eq!(
                    p.classification.unwrap().is_special_cause(),
                    p.flags.any(),
                    "{p:?}"
                );
                if p.limits.is_none() {
                    // Too short for limits: the rules that need them cannot fire.
                    assert!(a.partitions[p.partition].basis_points < 2, "{p:?}");
                    assert!(!p.flags.astronomical.any() && !p.flags.two_in_three.any());
                }
            }
        }
        // The icons come from the last non-ghosted point, classified or not.
        let last = a.points.iter().rev().find(|p| !p.ghosted);
        assert_eq!(
            a.variation.is_some(),
            last.is_some_and(|p| p.classification.is_some())
        );
        if last.is_none_or(|p| p.limits.is_none()) {
            assert_eq!(a.assurance, None);
        }
        if a.run_chart {
            assert_eq!(a.variation, None);
            assert_eq!(a.assurance, None);
        }
        if c.target.is_none() || c.direction == Direction::Neither {
            assert_eq!(a.assurance, None);
        }
    }
    coverage.assert_broad();
}

#[test]
fn adding_ghosted_points_changes_nothing_else() {
    for (mut c, mut rng) in cases(2) {
        if c.points.is_empty() {
            continue;
        }
        // The first point always starts partition 0, so marking it changes nothing;
        // it keeps its partition (and baseline) if a ghost is inserted before it.
        c.points[0].recalculate_from = true;
        let before = run(&c);

        let mut with_ghosts = c.points.clone();
        let mut original_index: Vec<Option<usize>> = (0..c.points.len()).map(Some).collect();
        for _ in 0..=rng.below(6) {
            let at = rng.below(with_ghosts.len() as u64 + 1) as usize;
            let value = match rng.below(4) {
                0 => f64::NAN,
                1 => 1e6,
                _ => rng.quarter(40),
            };
            with_ghosts.insert(at, Point::ghost(value));
            original_index.insert(at, None);
        }
        let after = analyse(&with_ghosts, c.direction, c.target, &c.rules);

        for (k, orig) in original_index.iter().enumerate() {
            let q = &after.points[k];
            let Some(i) = *orig else {
                assert!(q.ghosted && !q.flags.any() && q.classification.is_none());
                continue;
            };
            let p = &before.points[i];
            assert_eq!(q.ghosted, p.ghosted);
            assert_eq!(q.mean.map(f64::to_bits), p.mean.map(f64::to_bits), "{i}");
            assert_eq!(q.limits, p.limits, "point {i}");
            assert_eq!(q.flags, p.flags, "point {i}");
            assert_eq!(q.classification, p.classification, "point {i}");
            assert_eq!(q.conflict, p.conflict, "point {i}");
        }
        assert_eq!(after.variation, before.variation);
        assert_eq!(after.assurance, before.assurance);
        assert_eq!(after.run_chart, before.run_chart);
    }
}

fn negated(points: &[Point]) -> Vec<Point> {
    points
        .iter()
        .map(|p| Point {
            value: -p.value,
            ..*p
        })
        .collect()
}

#[test]
fn negating_and_flipping_the_direction_mirrors_everything() {
    for (c, _) in cases(3) {
        let a = run(&c);
        let m = analyse(
            &negated(&c.points),
            c.direction.flipped(),
            c.target.map(|t| -t),
            &c.rules,
        );
        for (i, (p, q)) in a.points.iter().zip(&m.points).enumerate() {
            assert_eq!(q.flags, p.flags.mirrored(), "point {i}");
            assert_eq!(q.conflict, p.conflict, "point {i}");
            let expected = match (p.classification, c.direction) {
                // Without a direction the MDC tool shows a conflict as high, which
                // is not symmetric.
                (Some(Classification::NeitherHigh), Direction::Neither) if p.conflict => {
                    Some(Classification::NeitherHigh)
                }
                (other, _) => other.map(Classification::mirrored),
            };
            assert_eq!(q.classification, expected, "point {i}");
            assert_eq!(q.mean.map(|x| -x), p.mean, "point {i}");
            match (p.limits, q.limits) {
                (None, None) => {}
                (Some(l), Some(n)) => {
                    assert_eq!(n.mean, -l.mean);
                    assert_eq!(n.average_moving_range, l.average_moving_range);
                    assert_eq!(n.upper_process_limit, -l.lower_process_limit);
                    assert_eq!(n.lower_process_limit, -l.upper_process_limit);
                    assert_eq!(n.upper_two_sigma, -l.lower_two_sigma);
                    assert_eq!(n.lower_two_sigma, -l.upper_two_sigma);
                }
                other => panic!("limits differ at {i}: {other:?}"),
            }
        }
        let last_conflict_neither = c.direction == Direction::Neither
            && a.points
                .iter()
                .rev()
                .find(|p| !p.ghosted)
                .is_some_and(|p| p.conflict);
        if !last_conflict_neither {
            assert_eq!(m.variation, a.variation.map(|v| v.mirrored()));
        }
        assert_eq!(m.assurance, a.assurance);
        assert_eq!(m.run_chart, a.run_chart);
    }
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Whether any value or the target lies within rounding distance of a limit line,
/// where adding a constant could legitimately tip a strict comparison.
fn has_near_tie(a: &Analysis) -> bool {
    a.points.iter().any(|p| {
        p.limits.is_some_and(|l| {
            let lines = [
                l.upper_process_limit,
                l.lower_process_limit,
                l.upper_two_sigma,
                l.lower_two_sigma,
            ];
            lines
                .iter()
                .any(|&line| near(p.value, line) || a.target.is_some_and(|t| near(t, line)))
        })
    })
}

#[test]
fn adding_a_constant_moves_the_limits_and_changes_no_flag() {
    let mut checked = 0;
    for (c, mut rng) in cases(4) {
        let a = run(&c);
        if has_near_tie(&a) {
            continue;
        }
        checked += 1;
        let shift = rng.quarter(500);
        let moved: Vec<Point> = c
            .points
            .iter()
            .map(|p| Point {
                value: p.value + shift,
                ..*p
            })
            .collect();
        let b = analyse(&moved, c.direction, c.target.map(|t| t + shift), &c.rules);
        for (i, (p, q)) in a.points.iter().zip(&b.points).enumerate() {
            assert_eq!(q.flags, p.flags, "point {i}, shift {shift}");
            assert_eq!(q.classification, p.classification, "point {i}");
            assert_eq!(q.conflict, p.conflict, "point {i}");
            match (p.mean, q.mean) {
                (Some(x), Some(y)) => assert!(near(y, x + shift), "point {i}"),
                (None, None) => {}
                other => panic!("means differ at {i}: {other:?}"),
            }
            match (p.limits, q.limits) {
                (None, None) => {}
                (Some(l), Some(n)) => {
                    assert!(near(n.average_moving_range, l.average_moving_range));
                    for (x, y) in [
                        (l.mean, n.mean),
                        (l.upper_process_limit, n.upper_process_limit),
                        (l.lower_process_limit, n.lower_process_limit),
                        (l.upper_two_sigma, n.upper_two_sigma),
                        (l.lower_two_sigma, n.lower_two_sigma),
                        (l.upper_one_sigma, n.upper_one_sigma),
                        (l.lower_one_sigma, n.lower_one_sigma),
                    ] {
                        assert!(near(y, x + shift), "point {i}: {x} + {shift} vs {y}");
                    }
                }
                other => panic!("limits differ at {i}: {other:?}"),
            }
        }
        assert_eq!(b.variation, a.variation);
        assert_eq!(b.assurance, a.assurance);
        assert_eq!(b.run_chart, a.run_chart);
    }
    assert!(
        checked * 10 >= CASES * 9,
        "only {checked} of {CASES} checked"
    );
}
