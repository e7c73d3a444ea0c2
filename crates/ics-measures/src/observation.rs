//! One observation as a hospital system sends it, checked against its measure.

use std::borrow::Cow;

use chrono::NaiveDate;
use ics_proto::date::from_naive;
use ics_proto::events::v1::{MeasureDefinition, MeasureScoring, ObservationPoint, SeriesKey};
use ics_proto::metrics::v1::ObservationInput;
use ics_validate as validate;
use ics_validate::{FieldViolation, Violations};

use crate::keys::is_measure_code;

/// Longest `source`.
pub const MAX_SOURCE_CHARS: usize = 200;

/// A value given alongside its numerator and denominator may differ from their ratio by this
/// much (relative), for the rounding of exports.
const RATIO_TOLERANCE: f64 = 1e-6;

/// An observation that passed every check that needs no stored data.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub key: SeriesKey,
    pub period_start: NaiveDate,
    /// Revision 0: the series decides whether it is new (1) or already recorded.
    pub point: ObservationPoint,
}

/// Checks an observation's fields; `measure` is its measure's definition when the measure code
/// names one (the caller answers NOT_FOUND otherwise). Field paths are prefixed with `prefix`.
///
/// Rules: ODS and measure codes well formed; value stream empty or a UUID; period start and end
/// real dates, end not before start; every number finite; numerator ≥ 0, denominator > 0,
/// numerator ≤ denominator; a proportion or rate takes its value from numerator ÷ denominator
/// when no value is given and, when both are, they must agree; a proportion lies in 0–1; a
/// continuous measure takes a value and no numerator or denominator.
pub fn check_observation(
    input: &ObservationInput,
    measure: &MeasureDefinition,
    prefix: &str,
) -> Result<Checked, Vec<FieldViolation>> {
    let mut violations = Violations::default();
    if !is_measure_code(&input.measure_code) {
        violations.add(field_path(prefix, "measure_code"), "is not a measure code");
    }
    validate::ods_code(
        &mut violations,
        &field_path(prefix, "ods_code"),
        &input.ods_code,
    );
    if !input.value_stream_id.is_empty() {
        validate::uuid(
            &mut violations,
            &field_path(prefix, "value_stream_id"),
            &input.value_stream_id,
        );
    }
    let point = check_figures_into(&mut violations, input, measure, prefix);
    match point {
        Some((period_start, point)) => Ok(Checked {
            key: SeriesKey {
                measure_code: input.measure_code.clone(),
                ods_code: input.ods_code.clone(),
                value_stream_id: input.value_stream_id.to_ascii_lowercase(),
            },
            period_start,
            point,
        }),
        None => Err(violations.into_vec()),
    }
}

/// A field's path under `prefix`. Bulk ingest checks millions of rows with an empty prefix: no
/// allocation per field then.
fn field_path(prefix: &str, name: &'static str) -> Cow<'static, str> {
    if prefix.is_empty() {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!("{prefix}{name}"))
    }
}

/// Checks what [`check_observation`] checks besides the series key — periods, figures and
/// source — for a row of a series whose key already passed: bulk ingest checks the rows after
/// a series' first this way, without building the key again for each.
pub fn check_figures(
    input: &ObservationInput,
    measure: &MeasureDefinition,
    prefix: &str,
) -> Result<(NaiveDate, ObservationPoint), Vec<FieldViolation>> {
    let mut violations = Violations::default();
    check_figures_into(&mut violations, input, measure, prefix).ok_or_else(|| violations.into_vec())
}

/// The period start and the point, or `None` with why in `violations` (which may already hold
/// the key's violations: then `None` too).
fn check_figures_into(
    violations: &mut Violations,
    input: &ObservationInput,
    measure: &MeasureDefinition,
    prefix: &str,
) -> Option<(NaiveDate, ObservationPoint)> {
    let field = |name: &'static str| field_path(prefix, name);
    let start = validate::required_date(
        violations,
        &field("period_start"),
        input.period_start.as_ref(),
    );
    let end = validate::required_date(violations, &field("period_end"), input.period_end.as_ref());
    validate::ordered(violations, &field("period_end"), start, end, "period_start");
    validate::text(
        violations,
        &field("source"),
        &input.source,
        false,
        MAX_SOURCE_CHARS,
    );

    let finite = |violations: &mut Violations, name: &'static str, value: Option<f64>| match value {
        Some(value) if !value.is_finite() => {
            violations.add(field(name), "must be a finite number");
            None
        }
        other => other,
    };
    let value = finite(violations, "value", input.value);
    let numerator = finite(violations, "numerator", input.numerator);
    let denominator = finite(violations, "denominator", input.denominator);
    if let Some(numerator) = numerator
        && numerator < 0.0
    {
        violations.add(field("numerator"), "must not be negative");
    }
    if let Some(denominator) = denominator
        && denominator <= 0.0
    {
        violations.add(field("denominator"), "must be greater than 0");
    }
    let numerator_above = matches!((numerator, denominator), (Some(n), Some(d)) if n > d);
    if let (Some(numerator), Some(denominator)) = (numerator, denominator)
        && numerator_above
    {
        violations.add(
            field("numerator"),
            format!("{numerator} is above its denominator {denominator}"),
        );
    }

    let scoring = MeasureScoring::try_from(measure.scoring).unwrap_or(MeasureScoring::Continuous);
    let value = match scoring {
        MeasureScoring::Proportion | MeasureScoring::Rate => {
            if numerator.is_some() != denominator.is_some() {
                let missing = if numerator.is_none() {
                    "numerator"
                } else {
                    "denominator"
                };
                violations.add(field(missing), "is required when the other is given");
            }
            let ratio = match (numerator, denominator) {
                (Some(numerator), Some(denominator)) if denominator > 0.0 => {
                    Some(numerator / denominator)
                }
                _ => None,
            };
            match (value, ratio) {
                (Some(value), Some(ratio)) => {
                    if (value - ratio).abs() > RATIO_TOLERANCE * value.abs().max(1.0) {
                        violations.add(
                            field("value"),
                            format!("{value} is not numerator ÷ denominator ({ratio})"),
                        );
                    }
                    Some(value)
                }
                (Some(value), None) => Some(value),
                (None, Some(ratio)) => Some(ratio),
                (None, None) => {
                    if input.value.is_none() && numerator.is_none() && denominator.is_none() {
                        violations
                            .add(field("value"), "is required (or numerator and denominator)");
                    }
                    None
                }
            }
        }
        _ => {
            if input.numerator.is_some() {
                violations.add(
                    field("numerator"),
                    format!("is not used by the continuous measure {}", measure.code),
                );
            }
            if input.denominator.is_some() {
                violations.add(
                    field("denominator"),
                    format!("is not used by the continuous measure {}", measure.code),
                );
            }
            if input.value.is_none() {
                violations.add(field("value"), "is required");
            }
            value
        }
    };
    if scoring == MeasureScoring::Proportion
        && !numerator_above
        && let Some(value) = value
        && !(0.0..=1.0).contains(&value)
    {
        violations.add(
            field("value"),
            format!("{value} is a proportion outside 0–1 (send a fraction, not a percentage)"),
        );
    }
    if !violations.is_empty() {
        return None;
    }
    match (start, end, value) {
        (Some(start), Some(end), Some(value)) => Some((
            start,
            ObservationPoint {
                period_start: Some(from_naive(start)),
                period_end: Some(from_naive(end)),
                value,
                numerator,
                denominator,
                source: input.source.trim().to_string(),
                revision: 0,
            },
        )),
        _ => {
            violations.add(field("value"), "could not be read");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use ics_proto::events::v1::{Date, ImprovementDirection};

    use super::*;

    fn measure(scoring: MeasureScoring) -> MeasureDefinition {
        MeasureDefinition {
            code: "M".repeat(3),
            scoring: scoring as i32,
            direction: ImprovementDirection::Increase as i32,
            display_scale: 1.0,
            ..MeasureDefinition::default()
        }
    }

    fn input() -> ObservationInput {
        ObservationInput {
            measure_code: "MMM".into(),
            ods_code: "RTP".into(),
            value_stream_id: String::new(),
            period_start: Some(Date {
                year: 2020,
                month: 1,
                day: 1,
            }),
            period_end: Some(Date {
                year: 2020,
                month: 1,
                day: 31,
            }),
            value: Some(0.5),
            numerator: None,
            denominator: None,
            source: String::new(),
        }
    }

    fn fields(result: Result<Checked, Vec<FieldViolation>>) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(violations) => violations.into_iter().map(|v| v.field).collect(),
        }
    }

    #[test]
    fn a_proportion_may_come_as_numerator_and_denominator() {
        let mut observation = input();
        observation.value = None;
        observation.numerator = Some(45.0);
        observation.denominator = Some(50.0);
        let checked = check_observation(&observation, &measure(MeasureScoring::Proportion), "")
            .expect("valid");
        assert_eq!(checked.point.value, 0.9);
        assert_eq!(checked.point.revision, 0);
    }

    #[test]
    fn each_bad_input_names_its_field() {
        let proportion = measure(MeasureScoring::Proportion);
        let mut reversed = input();
        reversed.period_end = Some(Date {
            year: 2019,
            month: 12,
            day: 1,
        });
        assert_eq!(
            fields(check_observation(&reversed, &proportion, "observation.")),
            ["observation.period_end"]
        );
        let mut nan = input();
        nan.value = Some(f64::NAN);
        assert_eq!(fields(check_observation(&nan, &proportion, "")), ["value"]);
        let mut infinite = input();
        infinite.value = Some(f64::INFINITY);
        assert_eq!(
            fields(check_observation(
                &infinite,
                &measure(MeasureScoring::Continuous),
                ""
            )),
            ["value"]
        );
        let mut above = input();
        above.value = None;
        above.numerator = Some(51.0);
        above.denominator = Some(50.0);
        assert_eq!(
            fields(check_observation(&above, &proportion, "")),
            ["numerator"]
        );
        let mut percentage = input();
        percentage.value = Some(95.0);
        assert_eq!(
            fields(check_observation(&percentage, &proportion, "")),
            ["value"]
        );
        let mut disagreeing = input();
        disagreeing.numerator = Some(10.0);
        disagreeing.denominator = Some(50.0);
        assert_eq!(
            fields(check_observation(&disagreeing, &proportion, "")),
            ["value"]
        );
        let mut continuous_with_numerator = input();
        continuous_with_numerator.numerator = Some(1.0);
        continuous_with_numerator.denominator = Some(2.0);
        assert_eq!(
            fields(check_observation(
                &continuous_with_numerator,
                &measure(MeasureScoring::Continuous),
                ""
            )),
            ["numerator", "denominator"]
        );
        let mut invalid_date = input();
        invalid_date.period_start = Some(Date {
            year: 2020,
            month: 2,
            day: 30,
        });
        assert_eq!(
            fields(check_observation(&invalid_date, &proportion, "")),
            ["period_start"]
        );
        let mut no_value = input();
        no_value.value = None;
        assert_eq!(
            fields(check_observation(&no_value, &proportion, "")),
            ["value"]
        );
    }

    #[test]
    fn a_rate_may_exceed_one_only_through_its_scale_not_its_value_check() {
        let mut rate = input();
        rate.value = Some(3.5);
        assert!(check_observation(&rate, &measure(MeasureScoring::Rate), "").is_ok());
    }
}
