//! Peer comparison for NHS trusts: "compared with similar trusts", done two ways.
//! Pure computation — no I/O; its only dependency is `ics-spc`, for the improvement
//! [`Direction`] both share.
//!
//! * [`funnel`]: a funnel plot for a proportion across a peer group (Spiegelhalter
//!   2005, as the R package FunnelPlotR does it for `data_type = "PR"`), with limits
//!   widened for over-dispersion, and each unit labelled higher / lower than expected
//!   or as expected, and better / same / worse by the measure's [`Direction`].
//! * [`compare_change`]: a unit's change over a period against the distribution of
//!   its peers' changes ("improved, but not distinctly from peers").
//!
//! ```
//! use ics_peers::{funnel, compare_change, ChangeUnit, Direction, FunnelUnit, Position};
//! let units = [
//!     FunnelUnit::new("A", 8.0, 100.0),
//!     FunnelUnit::new("B", 40.0, 100.0),
//!     FunnelUnit::new("C", 50.0, 200.0),
//!     FunnelUnit::new("D", 100.0, 400.0),
//! ];
//! let f = funnel(&units, Direction::Increase).unwrap();
//! assert_eq!(f.target, 198.0 / 800.0);
//! assert_eq!(f.units[0].label.position, Position::Lower);
//!
//! let leaver_rate = [
//!     ChangeUnit::new("RXA", 14.2, 12.9),
//!     ChangeUnit::new("RXB", 13.5, 12.6),
//!     ChangeUnit::new("RXC", 15.1, 13.4),
//! ];
//! let c = compare_change(&leaver_rate, Direction::Decrease, "RXA").unwrap();
//! assert_eq!(c.label.text(), "improved, not distinctly from peers");
//! ```
//!
//! # Funnel plot for proportions
//!
//! For units i = 1…n (n ≥ 2) with numerator Oᵢ and denominator Nᵢ:
//!
//! * Proportion pᵢ = Oᵢ / Nᵢ; transformed `yᵢ = asin(sqrt(pᵢ))`, standard error
//!   `sᵢ = 1 / (2·sqrt(Nᵢ))`.
//! * Target: the **pooled** proportion p₀ = ΣO / ΣN (not the mean of the
//!   proportions), transformed the same way: θ₀ = asin(sqrt(p₀)).
//! * Unadjusted z-score `zᵢ = (yᵢ − θ₀) / sᵢ`.
//! * Winsorising: the 10th and 90th centiles of the z-scores ([`WINSORISE_BY`]), by
//!   R's default quantile (type 7: with `h = (n − 1)·q` over the sorted values,
//!   `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])`); z-scores strictly below / above are
//!   replaced by the bound. No unit is dropped. With this quantile the lowest and
//!   highest z-scores are always pulled in unless tied with their neighbour.
//! * Dispersion ratio `φ = (1/n)·Σ wzᵢ²` over the winsorised z-scores.
//! * Between-unit variance (DerSimonian–Laird) with weights `wᵢ = 1/sᵢ² = 4Nᵢ`:
//!   `τ² = max(0, (n·φ − (n − 1)) / (Σw − Σw²/Σw))`.
//! * **Over-dispersion is applied exactly when τ² > 0**, which is what FunnelPlotR
//!   does (it falls back to unadjusted limits when `tau2 == 0`). Note that τ² > 0
//!   means n·φ > n − 1, i.e. φ > (n − 1)/n — slightly *below* 1 — so "applied when
//!   φ > 1" is only an approximation: a φ of, say, 0.86 with 4 units still widens the
//!   limits a little. [`Funnel::overdispersion_applied`] reports it.
//! * Limits at denominator N: `θ₀ ± z·sqrt(s² + τ²)` with `s = 1/(2·sqrt(N))`, for
//!   z = [`Z_95`] (1.959964) and [`Z_998`] (3.090232), back-transformed with
//!   `sin(x)²`. The angle is clamped to [0, π/2] first, so a limit that would pass
//!   0 or 1 stops there (FunnelPlotR does not clamp, so its lower limit folds back
//!   up for small N). Without over-dispersion τ² = 0. These are normal
//!   approximations on the angular scale, as FunnelPlotR's, not exact binomial
//!   limits.
//! * Adjusted z-score `zᵢ* = (yᵢ − θ₀) / sqrt(sᵢ² + τ²)` (= zᵢ when not applied).
//!
//! Labels ([`FunnelLabel`]) are read against the limits in use (widened when
//! over-dispersion is applied, as FunnelPlotR's default `draw_adjusted = TRUE`):
//! *higher than expected* when zᵢ* > 1.959964, *lower than expected* when
//! zᵢ* < −1.959964 — i.e. the proportion strictly outside the 95% limits; a point
//! exactly on a limit is *as expected*, as in FunnelPlotR — otherwise *as
//! expected*; [`FunnelLabel::beyond_998`] says whether |zᵢ*| > 3.090232 as well.
//! By direction: increase — higher is *better*, lower *worse*; decrease — the
//! reverse; as expected is *same*; [`Direction::Neither`] gives no performance.
//!
//! [`Funnel::curve`] / [`funnel_curve`] give both sets of limits over a range of
//! denominators for drawing, and [`Funnel::limits_at`] / [`funnel_limits`] at any
//! one denominator.
//!
//! # Change against peers
//!
//! For a measure with a value per unit at the start and end of a period (for
//! example staff leaver rate = leavers ÷ mean of the headcounts at the start and end
//! of the period; lower is better), and a chosen unit:
//!
//! * Each unit's change is `end − start` ([`changes`]).
//! * The **peers** are all the other units (at least 2, ids unique).
//! * Peers' mean change m and **sample** standard deviation sd (n − 1 denominator).
//! * `z = (change − m) / sd` on the raw change scale (positive = went up more than
//!   the peers); `None` when sd = 0 (all peers changed by the same amount).
//! * Percentile rank (0–100) of the unit's change among the peers' changes:
//!   `100 × (peers below + ½ × peers equal) / peers`, ascending on the raw scale;
//!   [`PeerComparison::improvement_percentile`] is the same on the improvement
//!   scale (the share of peers whose improvement the unit's exceeds): equal for
//!   increase, `100 −` it for decrease, none for neither.
//! * Movement ([`Movement`]): the unit's own change read by direction — *improved*
//!   (up for increase, down for decrease), *worsened*, or *no change* when the
//!   change is exactly 0; for neither, *increased* / *decreased*.
//! * Distinct ([`Relative`]): the change lies strictly beyond ±[`DISTINCT_Z`] (1.96)
//!   peer standard deviations from the peers' mean, i.e. |z| > 1.96 — on the good
//!   side (*better*) or the bad side (*worse*) by direction (*higher* / *lower* for
//!   neither). When sd = 0 any change different from m is distinct.
//! * Label ([`ChangeLabel::text`]): "improved, distinctly from peers" /
//!   "improved, not distinctly from peers" / "no change" / "worsened, not distinctly
//!   from peers" / "worsened, distinctly from peers". Movement and distinctness are
//!   separate facts, so the less usual combinations are named too: "improved, but
//!   distinctly less than peers" (improved, but distinctly worse than the peers'
//!   change), "worsened, but distinctly less than peers", and "no change, distinctly
//!   better / worse than peers"; see [`ChangeLabel::text`].

mod change;
mod funnel;
mod stats;

pub use change::{
    ChangeError, ChangeLabel, ChangeUnit, DISTINCT_Z, Movement, PeerComparison, Relative,
    UnitChange, changes, compare_change,
};
pub use funnel::{
    CurveError, CurvePoint, Funnel, FunnelError, FunnelLabel, FunnelLimits, FunnelUnit,
    FunnelUnitResult, Performance, Position, WINSORISE_BY, Z_95, Z_998, funnel, funnel_curve,
    funnel_limits,
};
/// The measure's improvement direction, the same type statistical process control reads.
pub use ics_spc::Direction;
