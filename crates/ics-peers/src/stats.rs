//! Small descriptive statistics shared by the comparisons.

/// Sorts finite values ascending.
pub(crate) fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// R's default (type 7) sample quantile of ascending `sorted` values, `p` in
/// [0, 1]: with `h = (n − 1)·p`, `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋ + 1] − x[⌊h⌋])`
/// (0-based). `None` for no values.
pub(crate) fn quantile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * p.clamp(0.0, 1.0);
    let floor = h.floor();
    let lo = (floor as usize).min(last);
    let hi = (lo + 1).min(last);
    let (x_lo, x_hi) = (sorted.get(lo)?, sorted.get(hi)?);
    Some(x_lo + (h - floor) * (x_hi - x_lo))
}

/// Winsorises `values` at the `by` and `1 − by` type-7 quantiles: values strictly
/// below the lower quantile become it, values strictly above the upper become it.
/// Returns the winsorised values (in input order) and the two quantiles.
pub(crate) fn winsorise(values: &[f64], by: f64) -> Option<(Vec<f64>, f64, f64)> {
    let s = sorted(values);
    let lower = quantile_sorted(&s, by)?;
    let upper = quantile_sorted(&s, 1.0 - by)?;
    let w = values
        .iter()
        .map(|&v| {
            if v < lower {
                lower
            } else if v > upper {
                upper
            } else {
                v
            }
        })
        .collect();
    Some((w, lower, upper))
}

/// Arithmetic mean; `None` for no values.
pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

/// Sample standard deviation (n − 1 denominator); `None` for fewer than 2 values.
pub(crate) fn sample_sd(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    let ss: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    Some((ss / (values.len() - 1) as f64).sqrt())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn type_7_quantiles_match_r() {
        // R: quantile(c(1, 2, 3, 4, 10), c(0.1, 0.5, 0.9)) = 1.4, 3.0, 7.6
        let s = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert!((quantile_sorted(&s, 0.1).unwrap() - 1.4).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.5).unwrap() - 3.0).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.9).unwrap() - 7.6).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[5.0], 0.9), Some(5.0));
        assert_eq!(quantile_sorted(&[], 0.5), None);
    }

    #[test]
    fn winsorise_clips_both_ends() {
        let (w, lo, hi) = winsorise(&[10.0, 1.0, 3.0, 2.0, 4.0], 0.1).unwrap();
        assert!((lo - 1.4).abs() < 1e-12 && (hi - 7.6).abs() < 1e-12);
        assert!((w[0] - 7.6).abs() < 1e-12 && (w[1] - 1.4).abs() < 1e-12);
        assert_eq!(&w[2..], &[3.0, 2.0, 4.0]);
    }

    #[test]
    fn mean_and_sd() {
        assert_eq!(mean(&[]), None);
        assert_eq!(sample_sd(&[1.0]), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        // deviations −2, −1, 3 → 14 / 2 = 7
        assert!((sample_sd(&[1.0, 2.0, 6.0]).unwrap() - 7.0_f64.sqrt()).abs() < 1e-12);
    }
}
