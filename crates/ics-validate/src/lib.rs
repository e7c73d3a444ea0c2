//! Field rules shared by the services and their clients: the checks a request's fields must
//! pass, each adding a [`FieldViolation`] to [`Violations`] rather than failing at once, so that
//! one answer names every offending field. No I/O and no server code, so that clients (`icsctl`)
//! check what they send with the very rules the services apply.

use std::fmt;

/// One invalid field of a request: `field` is a dotted path into the request message
/// (`measure.target.value`), `description` says what is wrong in words a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.description)
    }
}

/// Every violation of one request; services answer it as `INVALID_ARGUMENT` naming each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest(pub Vec<FieldViolation>);

impl fmt::Display for InvalidRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let described: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(formatter, "invalid request: {}", described.join("; "))
    }
}

impl std::error::Error for InvalidRequest {}

/// Collects every field violation of a request before answering, so a caller learns about all
/// of its mistakes in one round trip.
///
/// ```
/// # use ics_validate::{InvalidRequest, Violations};
/// fn validate(name: &str, quantity: i64) -> Result<(), InvalidRequest> {
///     let mut violations = Violations::default();
///     violations.require(!name.is_empty(), "name", "must not be empty");
///     violations.require(quantity > 0, "quantity", "must be positive");
///     violations.into_result()
/// }
/// assert!(validate("x", 1).is_ok());
/// assert!(matches!(validate("", 0), Err(InvalidRequest(v)) if v.len() == 2));
/// ```
#[derive(Debug, Default, Clone)]
pub struct Violations {
    violations: Vec<FieldViolation>,
}

impl Violations {
    /// Records a violation of `field` unless `condition` holds.
    pub fn require(
        &mut self,
        condition: bool,
        field: impl Into<String>,
        description: impl Into<String>,
    ) -> &mut Self {
        if !condition {
            self.add(field, description);
        }
        self
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) -> &mut Self {
        self.violations
            .push(FieldViolation::new(field, description));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violations recorded so far, in order.
    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.violations
    }

    pub fn len(&self) -> usize {
        self.violations.len()
    }

    /// `Ok(())` when nothing was recorded, otherwise every violation (a service answers them
    /// as `INVALID_ARGUMENT`).
    pub fn into_result(self) -> Result<(), InvalidRequest> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(InvalidRequest(self.violations))
        }
    }
}

use chrono::{Datelike, NaiveDate};
use ics_proto::date;
use ics_proto::events::v1::{CommandOptions, Date};

/// Longest name, title or free-text line the service stores.
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest free text (rationale, notes, vision).
pub const MAX_LONG_TEXT_CHARS: usize = 4_000;
/// Longest idempotency key.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// ODS codes are three to five upper-case letters or digits: trusts (`RTP`), ICBs (`QWO`),
/// regions (`Y63`), sites (`RTP01`).
pub fn is_ods_code(code: &str) -> bool {
    (3..=5).contains(&code.len())
        && code
            .chars()
            .all(|character| character.is_ascii_uppercase() || character.is_ascii_digit())
}

pub fn ods_code(violations: &mut Violations, field: &str, code: &str) {
    if code.is_empty() {
        violations.add(field, "is required");
    } else if !is_ods_code(code) {
        violations.add(
            field,
            "must be an ODS code: 3 to 5 upper-case letters or digits, e.g. RTP",
        );
    }
}

pub fn text(violations: &mut Violations, field: &str, value: &str, required: bool, max: usize) {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        if required {
            violations.add(field, "is required");
        }
    } else if chars > max {
        violations.add(field, format!("must be at most {max} characters"));
    } else if value.chars().any(char::is_control) {
        violations.add(field, "must not contain control characters");
    }
}

pub fn name(violations: &mut Violations, field: &str, value: &str) {
    text(violations, field, value, true, MAX_TEXT_CHARS);
}

pub fn options(violations: &mut Violations, options: Option<&CommandOptions>) {
    let request_id = options
        .map(|options| options.request_id.as_str())
        .unwrap_or("");
    if request_id.is_empty() {
        violations.add("options.request_id", "is required (an idempotency key)");
    } else if request_id.chars().count() > MAX_REQUEST_ID_CHARS {
        violations.add(
            "options.request_id",
            format!("must be at most {MAX_REQUEST_ID_CHARS} characters"),
        );
    }
}

/// A required calendar date; returns it when valid.
pub fn required_date(
    violations: &mut Violations,
    field: &str,
    value: Option<&Date>,
) -> Option<NaiveDate> {
    match value {
        None => {
            violations.add(field, "is required");
            None
        }
        Some(value) => optional_date(violations, field, Some(value)),
    }
}

pub fn optional_date(
    violations: &mut Violations,
    field: &str,
    value: Option<&Date>,
) -> Option<NaiveDate> {
    let value = value?;
    let Some(parsed) = date::to_naive(value) else {
        violations.add(field, "is not a valid calendar date");
        return None;
    };
    // The platform's records start in the NHS's lifetime and plan no further than the next
    // century: a year −5 or 9999 is a client's mistake, not a date to store.
    if !(EARLIEST_YEAR..=LATEST_YEAR).contains(&parsed.year()) {
        violations.add(
            field,
            format!("must be between {EARLIEST_YEAR} and {LATEST_YEAR}"),
        );
        return None;
    }
    Some(parsed)
}

/// The years a date may fall in.
pub const EARLIEST_YEAR: i32 = 1900;
pub const LATEST_YEAR: i32 = 2100;

pub fn not_in_future(violations: &mut Violations, field: &str, value: Option<NaiveDate>) {
    if let Some(value) = value
        && value > chrono::Utc::now().date_naive()
    {
        violations.add(field, "must not be in the future");
    }
}

pub fn ordered(
    violations: &mut Violations,
    end_field: &str,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    start_field: &str,
) {
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        violations.add(end_field, format!("must not be before {start_field}"));
    }
}

/// A required enum field: unknown numbers and the UNSPECIFIED zero are both refused.
pub fn enum_value<E: TryFrom<i32>>(
    violations: &mut Violations,
    field: &str,
    value: i32,
) -> Option<E> {
    if value == 0 {
        violations.add(field, "must be specified");
        return None;
    }
    match E::try_from(value) {
        Ok(parsed) => Some(parsed),
        Err(_) => {
            violations.add(field, "is not a known value");
            None
        }
    }
}

/// A finite number (NaN and ±∞ are refused) within `min..=max`.
pub fn number(
    violations: &mut Violations,
    field: &str,
    value: f64,
    min: f64,
    max: f64,
) -> Option<f64> {
    if !value.is_finite() {
        violations.add(field, "must be a finite number");
        return None;
    }
    if value < min || value > max {
        violations.add(field, format!("must be between {min} and {max}"));
        return None;
    }
    Some(value)
}

pub fn uuid(violations: &mut Violations, field: &str, value: &str) -> Option<uuid::Uuid> {
    if value.is_empty() {
        violations.add(field, "is required");
        return None;
    }
    match uuid::Uuid::parse_str(value) {
        Ok(parsed) => Some(parsed),
        Err(_) => {
            violations.add(field, "must be a UUID");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ods_codes_are_short_upper_case_alphanumerics() {
        for good in ["RTP", "RR8", "QWO", "Y63", "RTP01"] {
            assert!(is_ods_code(good), "{good}");
        }
        for bad in ["", "RT", "rtp", "RTP-1", "RTP012", "R P", "ÅBC"] {
            assert!(!is_ods_code(bad), "{bad}");
        }
    }
}
