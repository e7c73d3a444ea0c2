//! XmR centre line, moving ranges and limits.

/// Process limits are the mean ± this × the average moving range.
pub const PROCESS_LIMIT_FACTOR: f64 = 2.66;

/// With screening on, moving ranges ≥ this × the average moving range are dropped
/// before the average is recomputed (the upper limit of the moving-range chart).
pub const MOVING_RANGE_SCREEN_FACTOR: f64 = 3.267;

/// The centre line and limits of one partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Centre line: mean of the non-ghosted points the limits are computed from.
    pub mean: f64,
    /// Average moving range (after screening, if screening is on).
    pub average_moving_range: f64,
    /// mean + 2.66 × AMR ("3σ").
    pub upper_process_limit: f64,
    /// mean − 2.66 × AMR ("3σ").
    pub lower_process_limit: f64,
    /// mean + 2.66 × AMR × 2/3 ("2σ").
    pub upper_two_sigma: f64,
    /// mean − 2.66 × AMR × 2/3 ("2σ").
    pub lower_two_sigma: f64,
    /// mean + 2.66 × AMR / 3 ("1σ").
    pub upper_one_sigma: f64,
    /// mean − 2.66 × AMR / 3 ("1σ").
    pub lower_one_sigma: f64,
}

impl Limits {
    /// The lines for a given centre and average moving range.
    pub fn from_mean_and_amr(mean: f64, average_moving_range: f64) -> Limits {
        let three = PROCESS_LIMIT_FACTOR * average_moving_range;
        let two = three * 2.0 / 3.0;
        let one = three / 3.0;
        Limits {
            mean,
            average_moving_range,
            upper_process_limit: mean + three,
            lower_process_limit: mean - three,
            upper_two_sigma: mean + two,
            lower_two_sigma: mean - two,
            upper_one_sigma: mean + one,
            lower_one_sigma: mean - one,
        }
    }

    /// XmR limits of consecutive `values` (already free of ghosted points), or `None`
    /// with fewer than two values (no moving range). With `screen_outliers`, moving
    /// ranges ≥ 3.267 × AMR are dropped and the AMR recomputed once; the mean is
    /// unchanged.
    pub fn compute(values: &[f64], screen_outliers: bool) -> Option<Limits> {
        xmr(values, screen_outliers).map(|x| x.limits)
    }

    /// Strictly above the upper or below the lower process limit.
    pub fn astronomical(&self, value: f64) -> bool {
        value > self.upper_process_limit || value < self.lower_process_limit
    }
}

/// Limits plus how many moving ranges went into them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Xmr {
    pub limits: Limits,
    pub moving_ranges_used: usize,
    pub moving_ranges_screened_out: usize,
}

pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().sum();
    Some(sum / values.len() as f64)
}

pub(crate) fn xmr(values: &[f64], screen_outliers: bool) -> Option<Xmr> {
    let centre = mean(values)?;
    let ranges: Vec<f64> = values.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let mut amr = mean(&ranges)?;
    let mut used = ranges.len();
    // With an AMR of zero every range equals it and there is nothing to screen.
    if screen_outliers && amr > 0.0 {
        let cut = MOVING_RANGE_SCREEN_FACTOR * amr;
        let kept: Vec<f64> = ranges.iter().copied().filter(|r| *r < cut).collect();
        // Some range is ≤ AMR < cut, so `kept` is never empty; stay safe regardless.
        if let Some(screened) = mean(&kept) {
            amr = screened;
            used = kept.len();
        }
    }
    Some(Xmr {
        limits: Limits::from_mean_and_amr(centre, amr),
        moving_ranges_used: used,
        moving_ranges_screened_out: ranges.len() - used,
    })
}
