//! Versioned rule sets: every setting that differs between the SPC tools, by name.

/// How the two-in-three rule treats points beyond the process limit (3σ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TwoInThree {
    /// Only points beyond the 2σ line but *not* beyond the process limit count
    /// (MDC SQL tool v2.5, NHSRplotthedots).
    ExcludeBeyondProcessLimit,
    /// Points beyond the 2σ line count wherever they are, including beyond the
    /// process limit (as MDC announced in 2023).
    IncludeBeyondProcessLimit,
}

/// Which classification a point gets when it triggers both an improvement and a
/// concern rule (for example an increasing trend below the mean of a
/// higher-is-better measure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConflictRule {
    /// Show the point as special cause improvement (MDC default).
    Improvement,
    /// Show the point as special cause concern.
    Concern,
}

/// What the minimum number of points for process limits is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MinimumPointsScope {
    /// All non-ghosted points of the chart, ignoring rebasing: under the minimum the
    /// whole chart is a run chart (MDC SQL tool v2.5, `@SettingMinimumPoints`).
    Chart,
    /// The non-ghosted points of each partition: a partition under the minimum gets
    /// no limits of its own and is shown as a run chart.
    Partition,
}

/// A named, versioned set of Making Data Count settings.
///
/// Every [`Analysis`](crate::Analysis) records the rule set that produced it. A caller
/// who changes any setting should also give the rule set a new `name`/`version`, so
/// stored results stay distinguishable:
///
/// ```
/// use ics_spc::{ConflictRule, RuleSet};
/// let concern_wins = RuleSet {
///     name: "mdc-sql/concern-wins",
///     conflict_rule: ConflictRule::Concern,
///     ..RuleSet::MDC_V2_5
/// };
/// assert_eq!(concern_wins.shift_points, 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleSet {
    /// Stable identifier of the rule set, recorded with every result.
    pub name: &'static str,
    /// Version of the rule set, recorded with every result.
    pub version: &'static str,
    /// Points in a row strictly on one side of the mean that make a shift
    /// (MDC default 7; the tool allows 6–8 and anything else produces a
    /// [`Warning::SettingOutOfRange`](crate::Warning::SettingOutOfRange)). 0 disables the rule.
    pub shift_points: usize,
    /// Points in a row, endpoints included, each strictly greater (or smaller) than
    /// the one before that make a trend (default 7; allowed 6–8 as for the shift).
    /// Values under 2 disable the rule.
    pub trend_points: usize,
    /// Whether a trend may run across a rebase (recalculate-from) boundary:
    /// MDC yes, NHSRplotthedots no.
    pub trend_crosses_rebase: bool,
    /// Whether the end of a baseline restarts the shift and two-in-three runs: the
    /// baseline's points and the rest of its partition share the baseline's mean and
    /// limits, but a run must lie wholly within one or the other. MDC yes (its SQL tool
    /// gives the baseline's points a partition of their own and counts these runs
    /// within a partition); NHSRplotthedots no (fixing the limits after *n* points
    /// does not split the rules' grouping). Trends are unaffected: see
    /// [`trend_crosses_rebase`](Self::trend_crosses_rebase).
    pub baseline_restarts_runs: bool,
    /// Which points count towards two-in-three.
    pub two_in_three: TwoInThree,
    /// Moving-range outlier screening: drop moving ranges ≥ 3.267 × AMR and recompute
    /// the AMR once (NHSRplotthedots default on, MDC default off). The mean is not
    /// changed by screening.
    pub screen_moving_range_outliers: bool,
    /// Which classification wins when a point triggers improvement and concern rules.
    pub conflict_rule: ConflictRule,
    /// Minimum number of non-ghosted points for process limits and icons (MDC 15).
    pub minimum_points: usize,
    /// What [`minimum_points`](Self::minimum_points) is counted over.
    pub minimum_points_scope: MinimumPointsScope,
    /// A partition whose limits rest on fewer non-ghosted points than this gets a
    /// [`Warning::ShortPartition`](crate::Warning::ShortPartition) (MDC and
    /// NHSRplotthedots: 12).
    pub partition_warning_points: usize,
}

impl RuleSet {
    /// The Making Data Count SQL tool v2.5 defaults.
    pub const MDC_V2_5: RuleSet = RuleSet {
        name: "mdc-sql",
        version: "2.5",
        shift_points: 7,
        trend_points: 7,
        trend_crosses_rebase: true,
        baseline_restarts_runs: true,
        two_in_three: TwoInThree::ExcludeBeyondProcessLimit,
        screen_moving_range_outliers: false,
        conflict_rule: ConflictRule::Improvement,
        minimum_points: 15,
        minimum_points_scope: MinimumPointsScope::Chart,
        partition_warning_points: 12,
    };

    /// The NHSRplotthedots defaults, where they differ from MDC: trends stop at a
    /// rebase, runs carry on past the end of a baseline (the R package's
    /// `fix_after_n_points`) and moving-range outliers are screened. Everything else
    /// (including the minimum-point rules, which the R package does not have) follows
    /// MDC v2.5.
    pub const NHSR_PLOTTHEDOTS: RuleSet = RuleSet {
        name: "nhsr-plotthedots",
        version: "1",
        trend_crosses_rebase: false,
        baseline_restarts_runs: false,
        screen_moving_range_outliers: true,
        ..RuleSet::MDC_V2_5
    };

    /// The allowed range for [`shift_points`](Self::shift_points) and
    /// [`trend_points`](Self::trend_points) in the MDC tool.
    pub const RUN_LENGTH_RANGE: std::ops::RangeInclusive<usize> = 6..=8;

    /// `name` and `version` together, e.g. `mdc-sql 2.5`.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet::MDC_V2_5
    }
}
