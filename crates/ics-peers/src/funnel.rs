//! Funnel plots for proportions (Spiegelhalter 2005, as in FunnelPlotR `data_type = "PR"`).

use std::f64::consts::FRAC_PI_2;
use std::fmt;

use crate::stats;
use ics_spc::Direction;

/// Two-sided 95% normal quantile used for the inner limits (as FunnelPlotR).
pub const Z_95: f64 = 1.959964;

/// Two-sided 99.8% normal quantile used for the outer limits (as FunnelPlotR).
pub const Z_998: f64 = 3.090232;

/// Share of the z-score distribution winsorised at each end before φ is estimated
/// (FunnelPlotR's default `trim_by = 0.1`: the 10th and 90th centiles).
pub const WINSORISE_BY: f64 = 0.1;

/// One unit (trust) of a funnel plot: `numerator` events out of `denominator`.
///
/// Values are `f64` so that denominators such as a mean headcount may be
/// fractional; they must be finite, with `0 ≤ numerator ≤ denominator` and
/// `denominator > 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelUnit {
    /// Identifier (e.g. an ODS code); only carried through to the result.
    pub id: String,
    /// Events.
    pub numerator: f64,
    /// Population.
    pub denominator: f64,
}

impl FunnelUnit {
    /// A unit.
    pub fn new(id: impl Into<String>, numerator: f64, denominator: f64) -> FunnelUnit {
        FunnelUnit {
            id: id.into(),
            numerator,
            denominator,
        }
    }
}

/// Why a funnel plot could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FunnelError {
    /// Fewer than 2 units: there is no peer group (and no over-dispersion estimate).
    TooFewUnits {
        /// Units given.
        units: usize,
    },
    /// A numerator or denominator is NaN or infinite.
    NonFinite {
        /// Index of the unit in the input.
        index: usize,
        /// The unit's id.
        id: String,
        /// `"numerator"` or `"denominator"`.
        field: &'static str,
    },
    /// A numerator below zero.
    NegativeNumerator {
        /// Index of the unit in the input.
        index: usize,
        /// The unit's id.
        id: String,
    },
    /// A denominator of zero (or below): no proportion.
    NonPositiveDenominator {
        /// Index of the unit in the input.
        index: usize,
        /// The unit's id.
        id: String,
    },
    /// A numerator greater than its denominator: not a proportion.
    NumeratorExceedsDenominator {
        /// Index of the unit in the input.
        index: usize,
        /// The unit's id.
        id: String,
    },
}

impl fmt::Display for FunnelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FunnelError::TooFewUnits { units } => {
                write!(f, "a funnel plot needs at least 2 units, got {units}")
            }
            FunnelError::NonFinite { index, id, field } => {
                write!(f, "unit {index} ({id}): {field} is not a finite number")
            }
            FunnelError::NegativeNumerator { index, id } => {
                write!(f, "unit {index} ({id}): numerator is negative")
            }
            FunnelError::NonPositiveDenominator { index, id } => {
                write!(f, "unit {index} ({id}): denominator must be greater than 0")
            }
            FunnelError::NumeratorExceedsDenominator { index, id } => {
                write!(f, "unit {index} ({id}): numerator exceeds denominator")
            }
        }
    }
}

impl std::error::Error for FunnelError {}

/// Funnel limits at one denominator, as proportions in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FunnelLimits {
    /// Lower 95% limit.
    pub lower_95: f64,
    /// Upper 95% limit.
    pub upper_95: f64,
    /// Lower 99.8% limit.
    pub lower_998: f64,
    /// Upper 99.8% limit.
    pub upper_998: f64,
}

/// Where a unit sits against the 95% limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// Strictly below the lower 95% limit.
    Lower,
    /// On or within the 95% limits.
    AsExpected,
    /// Strictly above the upper 95% limit.
    Higher,
}

impl Position {
    /// `"lower than expected"`, `"as expected"` or `"higher than expected"`.
    pub const fn text(self) -> &'static str {
        match self {
            Position::Lower => "lower than expected",
            Position::AsExpected => "as expected",
            Position::Higher => "higher than expected",
        }
    }
}

/// A [`Position`] read through the measure's improvement direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Performance {
    /// Outside the 95% limits on the good side.
    Better,
    /// Within the 95% limits.
    Same,
    /// Outside the 95% limits on the bad side.
    Worse,
}

impl Performance {
    /// `"better"`, `"same"` or `"worse"`.
    pub const fn text(self) -> &'static str {
        match self {
            Performance::Better => "better",
            Performance::Same => "same",
            Performance::Worse => "worse",
        }
    }

    /// The performance a position means for a direction; `None` for
    /// [`Direction::Neither`].
    pub const fn from_position(position: Position, direction: Direction) -> Option<Performance> {
        match (direction, position) {
            (Direction::Neither, _) => None,
            (_, Position::AsExpected) => Some(Performance::Same),
            (Direction::Increase, Position::Higher) | (Direction::Decrease, Position::Lower) => {
                Some(Performance::Better)
            }
            (Direction::Increase, Position::Lower) | (Direction::Decrease, Position::Higher) => {
                Some(Performance::Worse)
            }
        }
    }
}

/// A unit's label on the funnel plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FunnelLabel {
    /// Against the 95% limits.
    pub position: Position,
    /// Also strictly outside the 99.8% limits (implies `position` is not
    /// [`Position::AsExpected`]).
    pub beyond_998: bool,
    /// By the direction; `None` for [`Direction::Neither`].
    pub performance: Option<Performance>,
}

impl fmt::Display for FunnelLabel {
    /// E.g. `lower than expected, beyond the 99.8% limit: worse`, `as expected: same`,
    /// `higher than expected` (no direction).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.position.text())?;
        if self.beyond_998 {
            f.write_str(", beyond the 99.8% limit")?;
        }
        if let Some(p) = self.performance {
            write!(f, ": {}", p.text())?;
        }
        Ok(())
    }
}

/// One unit's result, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelUnitResult {
    /// The unit's id.
    pub id: String,
    /// As given.
    pub numerator: f64,
    /// As given.
    pub denominator: f64,
    /// `numerator / denominator`.
    pub proportion: f64,
    /// `y = asin(sqrt(proportion))`.
    pub transformed: f64,
    /// `s = 1 / (2·sqrt(denominator))`.
    pub standard_error: f64,
    /// Unadjusted z-score `(y − target) / s`.
    pub z: f64,
    /// `z` after winsorising (what φ is computed from).
    pub z_winsorised: f64,
    /// Over-dispersion-adjusted z-score `(y − target) / sqrt(s² + τ²)`; equal to `z`
    /// when no adjustment was applied. The label is read from this.
    pub z_adjusted: f64,
    /// The limits the label is judged against, at this unit's denominator: widened
    /// for over-dispersion when it was applied, otherwise equal to
    /// `unadjusted_limits`.
    pub limits: FunnelLimits,
    /// The limits without over-dispersion (τ² = 0) at this unit's denominator.
    pub unadjusted_limits: FunnelLimits,
    /// Higher / lower / as expected, and better / same / worse.
    pub label: FunnelLabel,
}

/// A computed funnel plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    /// The measure's improvement direction.
    pub direction: Direction,
    /// The pooled proportion Σnumerators ÷ Σdenominators (the centre line).
    pub target: f64,
    /// `asin(sqrt(target))`.
    pub target_transformed: f64,
    /// The 10th centile of the unadjusted z-scores (lower winsorising bound).
    pub winsorised_lower: f64,
    /// The 90th centile of the unadjusted z-scores (upper winsorising bound).
    pub winsorised_upper: f64,
    /// Dispersion ratio φ = mean of the squared winsorised z-scores.
    pub phi: f64,
    /// Between-unit variance τ² (on the transformed scale), ≥ 0.
    pub tau2: f64,
    /// Whether the limits were widened for over-dispersion: exactly when τ² > 0.
    pub overdispersion_applied: bool,
    /// Per unit, in input order.
    pub units: Vec<FunnelUnitResult>,
}

/// One point of the limit curves, for drawing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// Denominator.
    pub n: f64,
    /// Limits used for labelling (widened when over-dispersion was applied).
    pub limits: FunnelLimits,
    /// Limits without over-dispersion.
    pub unadjusted: FunnelLimits,
}

/// Why limit curves could not be produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CurveError {
    /// `from` and `to` must be finite with `0 < from < to`.
    InvalidRange {
        /// First denominator.
        from: f64,
        /// Last denominator.
        to: f64,
    },
    /// At least 2 points are needed.
    TooFewPoints {
        /// Points asked for.
        points: usize,
    },
}

impl fmt::Display for CurveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurveError::InvalidRange { from, to } => write!(
                f,
                "curve range must be finite with 0 < from < to, got {from} to {to}"
            ),
            CurveError::TooFewPoints { points } => {
                write!(f, "a curve needs at least 2 points, got {points}")
            }
        }
    }
}

impl std::error::Error for CurveError {}

/// Computes the funnel plot of `units` (at least 2) for a measure with the given
/// improvement direction. See the crate docs for every definition.
pub fn funnel(units: &[FunnelUnit], direction: Direction) -> Result<Funnel, FunnelError> {
    validate(units)?;

    let total_numerator: f64 = units.iter().map(|u| u.numerator).sum();
    let total_denominator: f64 = units.iter().map(|u| u.denominator).sum();
    let target = (total_numerator / total_denominator).clamp(0.0, 1.0);
    let target_transformed = transform(target);

    let base: Vec<Transformed> = units
        .iter()
        .map(|u| {
            let proportion = (u.numerator / u.denominator).clamp(0.0, 1.0);
            let y = transform(proportion);
            let s = standard_error(u.denominator);
            Transformed {
                proportion,
                y,
                s,
                z: (y - target_transformed) / s,
            }
        })
        .collect();

    let z: Vec<f64> = base.iter().map(|b| b.z).collect();
    let (z_winsorised, winsorised_lower, winsorised_upper) = stats::winsorise(&z, WINSORISE_BY)
        .ok_or(FunnelError::TooFewUnits { units: units.len() })?;
    let n = units.len() as f64;
    let phi = z_winsorised.iter().map(|w| w * w).sum::<f64>() / n;

    // Inverse-variance weights w = 1/s² = 4·denominator.
    let w: Vec<f64> = base.iter().map(|b| 1.0 / (b.s * b.s)).collect();
    let sum_w: f64 = w.iter().sum();
    let sum_w2: f64 = w.iter().map(|w| w * w).sum();
    let tau2 = ((n * phi - (n - 1.0)) / (sum_w - sum_w2 / sum_w)).max(0.0);
    let overdispersion_applied = tau2 > 0.0;

    let results = units
        .iter()
        .zip(&base)
        .zip(&z_winsorised)
        .map(|((u, b), &z_w)| {
            let Transformed {
                proportion,
                y,
                s,
                z,
            } = *b;
            let se = widened(s, tau2);
            let z_adjusted = if overdispersion_applied {
                (y - target_transformed) / se
            } else {
                z
            };
            let position = if z_adjusted > Z_95 {
                Position::Higher
            } else if z_adjusted < -Z_95 {
                Position::Lower
            } else {
                Position::AsExpected
            };
            FunnelUnitResult {
                id: u.id.clone(),
                numerator: u.numerator,
                denominator: u.denominator,
                proportion,
                transformed: y,
                standard_error: s,
                z,
                z_winsorised: z_w,
                z_adjusted,
                limits: limits_from_se(target_transformed, se),
                unadjusted_limits: limits_from_se(target_transformed, s),
                label: FunnelLabel {
                    position,
                    beyond_998: z_adjusted.abs() > Z_998,
                    performance: Performance::from_position(position, direction),
                },
            }
        })
        .collect();

    Ok(Funnel {
        direction,
        target,
        target_transformed,
        winsorised_lower,
        winsorised_upper,
        phi,
        tau2,
        overdispersion_applied,
        units: results,
    })
}

impl Funnel {
    /// The limits used for labelling at denominator `n` (widened by τ² when
    /// over-dispersion was applied). See [`funnel_limits`].
    pub fn limits_at(&self, n: f64) -> FunnelLimits {
        funnel_limits(self.target, self.tau2, n)
    }

    /// The limits without over-dispersion at denominator `n`.
    pub fn unadjusted_limits_at(&self, n: f64) -> FunnelLimits {
        funnel_limits(self.target, 0.0, n)
    }

    /// Both sets of limit curves at `points` evenly spaced denominators from `from`
    /// to `to` inclusive. See [`funnel_curve`].
    pub fn curve(&self, from: f64, to: f64, points: usize) -> Result<Vec<CurvePoint>, CurveError> {
        funnel_curve(self.target, self.tau2, from, to, points)
    }
}

/// Funnel limits at denominator `n` around the proportion `target` with between-unit
/// variance `tau2` (0 for unadjusted limits):
/// `sin²(clamp(asin(sqrt(target)) ± z·sqrt(1/(4n) + τ²), 0, π/2))` for z = [`Z_95`]
/// and [`Z_998`]. `target` is clamped to [0, 1] and a negative `tau2` counts as 0;
/// `n = 0` gives [0, 1]; a negative or NaN `n` gives NaN limits.
pub fn funnel_limits(target: f64, tau2: f64, n: f64) -> FunnelLimits {
    let t = transform(target.clamp(0.0, 1.0));
    limits_from_se(t, widened(standard_error(n), tau2.max(0.0)))
}

/// Limit curves for plotting: [`funnel_limits`] with `tau2` (the `limits`) and without
/// it (`unadjusted`) at `points` (≥ 2) evenly spaced denominators from `from` to `to`
/// inclusive, `0 < from < to`.
pub fn funnel_curve(
    target: f64,
    tau2: f64,
    from: f64,
    to: f64,
    points: usize,
) -> Result<Vec<CurvePoint>, CurveError> {
    if !(from.is_finite() && to.is_finite() && from > 0.0 && from < to) {
        return Err(CurveError::InvalidRange { from, to });
    }
    if points < 2 {
        return Err(CurveError::TooFewPoints { points });
    }
    let step = (to - from) / (points - 1) as f64;
    Ok((0..points)
        .map(|i| {
            let n = if i == points - 1 {
                to
            } else {
                from + step * i as f64
            };
            CurvePoint {
                n,
                limits: funnel_limits(target, tau2, n),
                unadjusted: funnel_limits(target, 0.0, n),
            }
        })
        .collect())
}

/// A unit on the transformed scale.
#[derive(Clone, Copy)]
struct Transformed {
    proportion: f64,
    y: f64,
    s: f64,
    z: f64,
}

fn validate(units: &[FunnelUnit]) -> Result<(), FunnelError> {
    for (index, u) in units.iter().enumerate() {
        let id = || u.id.clone();
        for (field, v) in [("numerator", u.numerator), ("denominator", u.denominator)] {
            if !v.is_finite() {
                return Err(FunnelError::NonFinite {
                    index,
                    id: id(),
                    field,
                });
            }
        }
        if u.denominator <= 0.0 {
            return Err(FunnelError::NonPositiveDenominator { index, id: id() });
        }
        if u.numerator < 0.0 {
            return Err(FunnelError::NegativeNumerator { index, id: id() });
        }
        if u.numerator > u.denominator {
            return Err(FunnelError::NumeratorExceedsDenominator { index, id: id() });
        }
    }
    if units.len() < 2 {
        return Err(FunnelError::TooFewUnits { units: units.len() });
    }
    Ok(())
}

/// The variance-stabilising transform for a proportion.
fn transform(p: f64) -> f64 {
    p.sqrt().asin()
}

/// `s = 1 / (2·sqrt(n))`.
fn standard_error(n: f64) -> f64 {
    1.0 / (2.0 * n.sqrt())
}

/// `sqrt(s² + τ²)`, exactly `s` when τ² = 0.
fn widened(s: f64, tau2: f64) -> f64 {
    if tau2 > 0.0 { (s * s + tau2).sqrt() } else { s }
}

/// Back-transforms limits on the angular scale; the angle is clamped to [0, π/2] so
/// that limits beyond 0 or 1 stop there instead of folding back.
fn back_transform(x: f64) -> f64 {
    let s = x.clamp(0.0, FRAC_PI_2).sin();
    (s * s).clamp(0.0, 1.0)
}

fn limits_from_se(target_transformed: f64, se: f64) -> FunnelLimits {
    let at = |z: f64| back_transform(target_transformed + z * se);
    FunnelLimits {
        lower_95: at(-Z_95),
        upper_95: at(Z_95),
        lower_998: at(-Z_998),
        upper_998: at(Z_998),
    }
}
