//! NHS England *Making Data Count* (MDC) statistical process control: XmR charts,
//! the four special-cause rules, point classification and the variation and
//! assurance icons. Pure computation — no I/O, no dependencies.
//!
//! The entry point is [`analyse`]: give it the points of one measure (in time order,
//! with ghosting and partition markers), the measure's improvement [`Direction`], an
//! optional target and a [`RuleSet`]; it returns an [`Analysis`] with a
//! [`PointResult`] per input point, a [`PartitionSummary`] per partition, the icons,
//! warnings, and the rule set (name, version, settings) that produced it.
//!
//! ```
//! use ics_spc::{analyse, Direction, Point, RuleSet, VariationIcon};
//! let points: Vec<Point> = (0..20).map(|i| Point::new(f64::from(i % 3))).collect();
//! let a = analyse(&points, Direction::Increase, Some(5.0), &RuleSet::MDC_V2_5);
//! assert_eq!(a.rule_set_name(), "mdc-sql");
//! assert_eq!(a.rule_set_version(), "2.5");
//! assert_eq!(a.variation, Some(VariationIcon::CommonCause));
//! ```
//!
//! # Partitions, baselines, ghosting
//!
//! * A point with [`Point::recalculate_from`] starts a new partition (a *rebase*);
//!   each partition has its own centre line and limits. The first point always
//!   starts partition 0.
//! * A [`Baseline`] on the point that starts a partition fixes that partition's mean
//!   and limits from its first `points` **non-ghosted** points and carries them
//!   forward over the rest of the partition. Whether the shift and two-in-three runs
//!   restart at the baseline's end is
//!   [`baseline_restarts_runs`](RuleSet::baseline_restarts_runs) (MDC yes); the other
//!   rules run over the whole partition. A baseline anywhere else is ignored with a
//!   warning.
//! * Ghosted points (and non-finite values, with a warning) are returned — with their
//!   partition's mean and limits for drawing — but are excluded from everything:
//!   the mean, the moving ranges (which join the non-ghosted points either side), the
//!   minimum-point counts, every rule, and the icons. They carry no flags and no
//!   classification.
//!
//! # XmR, per partition
//!
//! * Centre line = mean of the partition's (baseline's) non-ghosted points.
//! * Moving range = |xᵢ − xᵢ₋₁| between consecutive non-ghosted points of the
//!   partition; AMR = their mean.
//! * Process limits = mean ± 2.66 × AMR; "2σ" lines = mean ± 2.66 × AMR × 2/3;
//!   "1σ" lines = mean ± 2.66 × AMR / 3 (for display only).
//! * Moving-range outlier screening (setting): drop moving ranges ≥ 3.267 × AMR and
//!   recompute the AMR once; the mean is unchanged.
//!
//! # Special-cause rules
//!
//! Run on the non-ghosted points of assessed partitions ([`rules`] has them on plain
//! sequences). Each flag records its side: high (above / increasing) or low (below /
//! decreasing). A partition too short for limits of its own (a single point) is still
//! assessed, as in MDC: the rules that need limits cannot fire there, but a trend can.
//!
//! * **Astronomical point**: strictly above the upper or strictly below the lower
//!   process limit.
//! * **Shift**: [`shift_points`](RuleSet::shift_points) (7) or more points in a row
//!   strictly above, or strictly below, the mean, within a partition (and, with
//!   [`baseline_restarts_runs`](RuleSet::baseline_restarts_runs), within the baseline
//!   or within the rest of its partition). A point exactly on the mean breaks the run.
//!   Every point of the run is flagged.
//! * **Trend**: [`trend_points`](RuleSet::trend_points) (7) or more points in a row,
//!   endpoints included, each strictly greater (or strictly smaller) than the one
//!   before. A tie breaks it. Every point of the run is flagged. Whether a run may
//!   cross a rebase is [`trend_crosses_rebase`](RuleSet::trend_crosses_rebase); a
//!   baseline end never breaks a run.
//! * **Two in three**: in three consecutive points of a partition (split at a
//!   baseline's end as the shift is), all strictly on the same side of the mean, at
//!   least two beyond that side's 2σ line: those points (only those) are flagged.
//!   Whether points beyond the process limit count is
//!   [`two_in_three`](RuleSet::two_in_three).
//!
//! # Classification and icons
//!
//! * Per point, by direction: increase — high-side rules are *improvement*, low-side
//!   *concern*; decrease — the reverse; neither — *neither high* / *neither low*. A
//!   point triggering both is settled by [`conflict_rule`](RuleSet::conflict_rule)
//!   (default improvement); without a direction it shows *neither high* (as the MDC
//!   tool does). [`PointResult::conflict`] records that it happened.
//! * **Variation icon** from the last non-ghosted point's classification:
//!   [`VariationIcon`] (common cause, improvement high/low, concern high/low, neither
//!   high/low). A conflict there adds [`Warning::VariationIconConflict`]. A last
//!   partition of one point has no limits but still gives an icon (common cause
//!   unless it ends a trend), as MDC does.
//! * **Assurance icon** from the target against the limits of the last non-ghosted
//!   point's partition: higher is better — target ≤ lower limit → pass, ≥ upper limit
//!   → fail, strictly between → hit or miss; mirrored for lower is better; none
//!   without a target, a direction, or limits.
//!
//! # Too few points
//!
//! * Under [`minimum_points`](RuleSet::minimum_points) (15) non-ghosted points — over
//!   the whole chart by default ([`MinimumPointsScope::Chart`], as MDC), or per
//!   partition ([`MinimumPointsScope::Partition`]) — there are no limits, flags,
//!   classifications or icons: a run chart, with the mean only, flagged by
//!   [`Analysis::run_chart`] (or the partition's `limits: None`) and a warning.
//! * A partition whose limits rest on fewer than
//!   [`partition_warning_points`](RuleSet::partition_warning_points) (12) points gets
//!   [`Warning::ShortPartition`]; with fewer than 2 there is no moving range and so
//!   no limits (its points are still classified, unless no partition has limits, when
//!   the chart is a run chart).
//!
//! # Settings and whose default they follow
//!
//! | Setting | [`RuleSet::MDC_V2_5`] | [`RuleSet::NHSR_PLOTTHEDOTS`] |
//! |---|---|---|
//! | `shift_points` (6–8) | 7 | 7 |
//! | `trend_points` (6–8) | 7 | 7 |
//! | `trend_crosses_rebase` | yes (MDC) | no (NHSRplotthedots) |
//! | `baseline_restarts_runs` | yes (MDC) | no (NHSRplotthedots) |
//! | `two_in_three` | exclude beyond process limit (v2.5) | exclude (as the R package) |
//! | `screen_moving_range_outliers` | off (MDC) | on, 3.267 × AMR (NHSRplotthedots) |
//! | `conflict_rule` | improvement (MDC) | improvement |
//! | `minimum_points` / scope | 15, chart (MDC) | 15, chart (MDC; the R package has none) |
//! | `partition_warning_points` | 12 (MDC) | 12 (NHSRplotthedots) |
//!
//! [`TwoInThree::IncludeBeyondProcessLimit`] is the counting MDC announced in 2023.
//! Every [`Analysis`] carries its [`RuleSet`]; give a modified rule set its own
//! `name`/`version`.

mod analysis;
pub mod rules;
mod ruleset;
mod types;
mod xmr;

pub use analysis::{Analysis, PartitionSummary, PointResult, Warning, analyse, classify};
pub use ruleset::{ConflictRule, MinimumPointsScope, RuleSet, TwoInThree};
pub use types::{
    AssuranceIcon, Baseline, Classification, Direction, Flags, Point, Sides, VariationIcon,
};
pub use xmr::{Limits, MOVING_RANGE_SCREEN_FACTOR, PROCESS_LIMIT_FACTOR};
