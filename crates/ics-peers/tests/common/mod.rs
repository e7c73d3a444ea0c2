//! Shared test helpers.

/// Asserts `|actual − expected| ≤ tol`, naming the quantity on failure.
#[track_caller]
pub fn close(what: &str, actual: f64, expected: f64, tol: f64) {
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual}, expected {expected} ± {tol}"
    );
}
