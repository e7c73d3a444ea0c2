//! The special-cause rules, on plain sequences of consecutive non-ghosted points.
//!
//! [`analyse`](crate::analyse) applies these per partition (the trend across the
//! whole chart when [`RuleSet::trend_crosses_rebase`](crate::RuleSet::trend_crosses_rebase)
//! is set; the shift and two-in-three separately before and after a baseline's end when
//! [`RuleSet::baseline_restarts_runs`](crate::RuleSet::baseline_restarts_runs) is); they
//! are public so that the published rule vectors can be checked directly against them.

use crate::Limits;
use crate::types::Sides;

/// Where a point lies relative to its centre line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// Strictly above the mean.
    Above,
    /// Strictly below the mean.
    Below,
    /// Exactly on the mean: breaks shifts and two-in-three runs.
    OnMean,
}

impl Position {
    /// Where `value` lies relative to `mean`.
    pub fn of(value: f64, mean: f64) -> Position {
        if value > mean {
            Position::Above
        } else if value < mean {
            Position::Below
        } else {
            Position::OnMean
        }
    }
}

/// Maximal runs of consecutive `true` entries, as index ranges.
fn true_runs(bits: &[bool]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &b) in bits.iter().enumerate() {
        match (b, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push(s..bits.len());
    }
    runs
}

/// Astronomical points: strictly above the upper (high) or below the lower (low)
/// process limit.
pub fn astronomical(values: &[f64], limits: &Limits) -> Vec<Sides> {
    values
        .iter()
        .map(|&v| Sides {
            high: v > limits.upper_process_limit,
            low: v < limits.lower_process_limit,
        })
        .collect()
}

/// Shift: `run` or more points in a row strictly above (high) or strictly below
/// (low) the mean. A point on the mean breaks the run; every point of a run is
/// flagged. `run == 0` flags nothing.
pub fn shift(positions: &[Position], run: usize) -> Vec<Sides> {
    let mut out = vec![Sides::NONE; positions.len()];
    if run == 0 {
        return out;
    }
    for (side, high) in [(Position::Above, true), (Position::Below, false)] {
        let bits: Vec<bool> = positions.iter().map(|p| *p == side).collect();
        for r in true_runs(&bits) {
            if r.len() >= run {
                for s in &mut out[r] {
                    if high {
                        s.high = true;
                    } else {
                        s.low = true;
                    }
                }
            }
        }
    }
    out
}

/// Trend: `run` or more points in a row, endpoints included, each strictly greater
/// (high) or strictly smaller (low) than the one before. A tie breaks the run; every
/// point of a run is flagged. A point can end an increasing run and start a
/// decreasing one. `run < 2` flags nothing.
pub fn trend(values: &[f64], run: usize) -> Vec<Sides> {
    let mut out = vec![Sides::NONE; values.len()];
    if run < 2 {
        return out;
    }
    for high in [true, false] {
        // steps[k] is the step from point k to point k + 1.
        let steps: Vec<bool> = values
            .windows(2)
            .map(|w| if high { w[1] > w[0] } else { w[1] < w[0] })
            .collect();
        for r in true_runs(&steps) {
            // Steps start..end cover points start..=end.
            if r.len() + 1 >= run {
                for s in &mut out[r.start..=r.end] {
                    if high {
                        s.high = true;
                    } else {
                        s.low = true;
                    }
                }
            }
        }
    }
    out
}

/// Two in three: in any three consecutive points all strictly on the same side of
/// the mean, if at least two are beyond that side's 2σ line, those (and only those)
/// are flagged — high above the mean, low below.
///
/// `beyond_two_sigma[i]` says whether point `i` counts as beyond the 2σ line on its
/// own side; whether points beyond the process limit count is the caller's choice
/// ([`TwoInThree`](crate::TwoInThree)). Entries missing from the shorter slice count
/// as on the mean / not beyond.
pub fn two_in_three(positions: &[Position], beyond_two_sigma: &[bool]) -> Vec<Sides> {
    let n = positions.len();
    let beyond = |i: usize| beyond_two_sigma.get(i).copied().unwrap_or(false);
    let mut out = vec![Sides::NONE; n];
    for start in 0..n.saturating_sub(2) {
        let window = start..start + 3;
        for (side, high) in [(Position::Above, true), (Position::Below, false)] {
            if !positions[window.clone()].iter().all(|p| *p == side) {
                continue;
            }
            if window.clone().filter(|&i| beyond(i)).count() < 2 {
                continue;
            }
            for i in window.clone().filter(|&i| beyond(i)) {
                if high {
                    out[i].high = true;
                } else {
                    out[i].low = true;
                }
            }
        }
    }
    out
}
