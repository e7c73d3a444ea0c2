//! Inputs and per-point outputs.

/// The measure's improvement direction. The one definition on the platform: peer comparison
/// (`ics-peers`), the charts, the services and the command line all use this type, and the
/// contract's `ImprovementDirection` is converted to and from it in `ics-measures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Higher is better.
    Increase,
    /// Lower is better.
    Decrease,
    /// No direction: special causes are *neither* high / low, and there is no
    /// assurance icon.
    Neither,
}

impl Direction {
    /// The direction of the negated measure: increase ↔ decrease, neither stays.
    pub const fn flipped(self) -> Direction {
        match self {
            Direction::Increase => Direction::Decrease,
            Direction::Decrease => Direction::Increase,
            Direction::Neither => Direction::Neither,
        }
    }
}

/// Fix a partition's limits from its first `points` non-ghosted points and carry
/// them forward over the rest of the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Baseline {
    /// Number of non-ghosted points, from the start of the partition, the mean and
    /// limits are computed from.
    pub points: usize,
}

/// One observation, in time order, with its partition markers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The observed value. A non-finite value is treated as ghosted (with a warning).
    pub value: f64,
    /// Ghosted points are returned but excluded from every calculation and rule.
    pub ghosted: bool,
    /// This point starts a new partition (limits recalculated from here). Ignored on
    /// the first point, which always starts partition 0.
    pub recalculate_from: bool,
    /// A baseline for the partition this point starts. Only honoured on a point that
    /// starts a partition (the first point, or one with `recalculate_from`);
    /// elsewhere it is ignored with a warning.
    pub baseline: Option<Baseline>,
}

impl Point {
    /// A plain, non-ghosted point.
    pub const fn new(value: f64) -> Point {
        Point {
            value,
            ghosted: false,
            recalculate_from: false,
            baseline: None,
        }
    }

    /// A ghosted point.
    pub const fn ghost(value: f64) -> Point {
        Point {
            ghosted: true,
            ..Point::new(value)
        }
    }

    /// This point, starting a new partition.
    #[must_use]
    pub const fn recalculate(self) -> Point {
        Point {
            recalculate_from: true,
            ..self
        }
    }

    /// This point, carrying a baseline of `points` non-ghosted points for the
    /// partition it starts.
    #[must_use]
    pub const fn with_baseline(self, points: usize) -> Point {
        Point {
            baseline: Some(Baseline { points }),
            ..self
        }
    }
}

/// A rule's result for one point: triggered on the high side, the low side, or both.
///
/// "High" means above the mean / above the upper line, or — for the trend rule —
/// increasing; "low" the opposite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sides {
    /// Triggered on the high side (above, or increasing for a trend).
    pub high: bool,
    /// Triggered on the low side (below, or decreasing for a trend).
    pub low: bool,
}

impl Sides {
    /// Neither side.
    pub const NONE: Sides = Sides {
        high: false,
        low: false,
    };

    /// Either side.
    pub const fn any(self) -> bool {
        self.high || self.low
    }

    /// High and low swapped.
    pub const fn mirrored(self) -> Sides {
        Sides {
            high: self.low,
            low: self.high,
        }
    }

    pub(crate) const fn or(self, other: Sides) -> Sides {
        Sides {
            high: self.high || other.high,
            low: self.low || other.low,
        }
    }
}

/// The special-cause rules a point triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// Strictly beyond the upper (high) or lower (low) process limit.
    pub astronomical: Sides,
    /// Part of a run of [`RuleSet::shift_points`](crate::RuleSet::shift_points) or more
    /// strictly above (high) or below (low) the mean.
    pub shift: Sides,
    /// Part of a run of [`RuleSet::trend_points`](crate::RuleSet::trend_points) or more
    /// strictly increasing (high) or decreasing (low) points.
    pub trend: Sides,
    /// Beyond the upper (high) or lower (low) 2σ line in a qualifying run of three.
    pub two_in_three: Sides,
}

impl Flags {
    /// No rule triggered.
    pub const NONE: Flags = Flags {
        astronomical: Sides::NONE,
        shift: Sides::NONE,
        trend: Sides::NONE,
        two_in_three: Sides::NONE,
    };

    /// Every rule's sides combined.
    pub const fn combined(self) -> Sides {
        self.astronomical
            .or(self.shift)
            .or(self.trend)
            .or(self.two_in_three)
    }

    /// Any rule triggered.
    pub const fn any(self) -> bool {
        self.combined().any()
    }

    /// Every rule's high and low swapped.
    pub const fn mirrored(self) -> Flags {
        Flags {
            astronomical: self.astronomical.mirrored(),
            shift: self.shift.mirrored(),
            trend: self.trend.mirrored(),
            two_in_three: self.two_in_three.mirrored(),
        }
    }
}

/// A point's classification under the measure's improvement direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Classification {
    /// No special-cause rule triggered.
    CommonCause,
    /// Special cause in the improvement direction.
    Improvement,
    /// Special cause against the improvement direction.
    Concern,
    /// Special cause on the high side, for a measure with no direction.
    NeitherHigh,
    /// Special cause on the low side, for a measure with no direction.
    NeitherLow,
}

impl Classification {
    /// The classification of the negated measure (with the direction flipped):
    /// improvement and concern stay, neither-high ↔ neither-low.
    pub const fn mirrored(self) -> Classification {
        match self {
            Classification::NeitherHigh => Classification::NeitherLow,
            Classification::NeitherLow => Classification::NeitherHigh,
            other => other,
        }
    }

    /// Any special cause.
    pub const fn is_special_cause(self) -> bool {
        !matches!(self, Classification::CommonCause)
    }
}

/// The variation icon, from the last non-ghosted point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VariationIcon {
    /// Common cause variation.
    CommonCause,
    /// Special cause improvement, higher is better.
    ImprovementHigh,
    /// Special cause improvement, lower is better.
    ImprovementLow,
    /// Special cause concern, high values where lower is better.
    ConcernHigh,
    /// Special cause concern, low values where higher is better.
    ConcernLow,
    /// Special cause high, no direction.
    NeitherHigh,
    /// Special cause low, no direction.
    NeitherLow,
}

impl VariationIcon {
    /// The icon of the negated measure (with the direction flipped): high ↔ low.
    pub const fn mirrored(self) -> VariationIcon {
        match self {
            VariationIcon::CommonCause => VariationIcon::CommonCause,
            VariationIcon::ImprovementHigh => VariationIcon::ImprovementLow,
            VariationIcon::ImprovementLow => VariationIcon::ImprovementHigh,
            VariationIcon::ConcernHigh => VariationIcon::ConcernLow,
            VariationIcon::ConcernLow => VariationIcon::ConcernHigh,
            VariationIcon::NeitherHigh => VariationIcon::NeitherLow,
            VariationIcon::NeitherLow => VariationIcon::NeitherHigh,
        }
    }

    /// The icon for a point classified as `classification` under `direction`.
    pub const fn from_classification(
        classification: Classification,
        direction: Direction,
    ) -> VariationIcon {
        match (classification, direction) {
            (Classification::Improvement, Direction::Increase) => VariationIcon::ImprovementHigh,
            (Classification::Improvement, Direction::Decrease) => VariationIcon::ImprovementLow,
            (Classification::Concern, Direction::Increase) => VariationIcon::ConcernLow,
            (Classification::Concern, Direction::Decrease) => VariationIcon::ConcernHigh,
            (Classification::NeitherHigh, _) => VariationIcon::NeitherHigh,
            (Classification::NeitherLow, _) => VariationIcon::NeitherLow,
            // Improvement/concern cannot arise without a direction; common cause.
            _ => VariationIcon::CommonCause,
        }
    }
}

/// The assurance icon: will the process meet its target?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssuranceIcon {
    /// The process will consistently meet the target: it is at or beyond the process
    /// limit on the worse side (higher is better: target ≤ lower limit).
    Pass,
    /// The process will consistently miss the target.
    Fail,
    /// The target lies strictly between the process limits.
    HitOrMiss,
}

impl AssuranceIcon {
    /// The icon for `target` against process limits `lower`..`upper` under `direction`
    /// (MDC: higher is better → target ≤ lower → pass, target ≥ upper → fail, between →
    /// hit or miss; mirrored for lower is better; `None` without a direction or for a
    /// non-finite target).
    pub fn assess(target: f64, lower: f64, upper: f64, direction: Direction) -> Option<Self> {
        if !target.is_finite() {
            return None;
        }
        match direction {
            Direction::Increase => Some(if target <= lower {
                AssuranceIcon::Pass
            } else if target >= upper {
                AssuranceIcon::Fail
            } else {
                AssuranceIcon::HitOrMiss
            }),
            Direction::Decrease => Some(if target >= upper {
                AssuranceIcon::Pass
            } else if target <= lower {
                AssuranceIcon::Fail
            } else {
                AssuranceIcon::HitOrMiss
            }),
            Direction::Neither => None,
        }
    }
}
