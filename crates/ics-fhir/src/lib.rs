//! The platform's measures and observations as HL7 FHIR R4 (4.0.1) resources in JSON, for
//! systems that read quality measures the FHIR way. Pure functions: no I/O, no clock, no
//! database; the caller fetches the data and serves the JSON.
//!
//! * [`measure`]: a [`MeasureDefinition`] as a `Measure`, its id taken from the measure code
//!   ([`measure_id`]) and its canonical URL under a base the caller names ([`measure_url`];
//!   [`EXAMPLE_BASE`] is a placeholder).
//! * [`measure_report`]: one organisation's figure for one period as a `MeasureReport`.
//! * [`measure_report_range`]: one organisation's figures over a range of periods as one
//!   `MeasureReport`.
//! * [`series_reports`] and [`series_range_report`]: the same from a [`SeriesRecord`], leaving
//!   out its ghosted points, as every calculation of the platform does.
//! * [`searchset_bundle`]: resources as the `Bundle` a FHIR search answers with.
//!
//! # How the platform's terms map to FHIR R4
//!
//! * **Report type.** In R4 an `individual` report gives a measure's result for one subject, and
//!   a subject is a patient, practitioner, location, device, related person or group; a
//!   `summary` report gives the population counts and score for a population. A trust's monthly
//!   figure is the score of its patients (or staff) as a population, so every report here is a
//!   `summary`. R4's `MeasureReport.subject` cannot reference an `Organization`, so the trust
//!   is the report's `reporter`, identified by its ODS code ([`ODS_ORGANIZATION_CODE`]).
//! * **Scoring.** A proportion (numerator a subset of the denominator) is FHIR `proportion`; a
//!   rate (e.g. leavers ÷ mean headcount, where the numerator is not drawn from the
//!   denominator) is `ratio`; a value with no numerator or denominator is
//!   `continuous-variable`. An unspecified scoring is left out.
//! * **Populations.** A Measure's group declares the populations R4 requires of its scoring:
//!   initial population, denominator and numerator for a proportion or ratio; initial
//!   population, measure population and measure observation for a continuous variable.
//!   Organisations submit counts rather than patient records, so no library computes a
//!   population: each criteria names its population as a CQL measure names its definitions
//!   (`text/cql`, `"Numerator"`) and describes in words how the organisation counts it. A report gives the numerator and the
//!   denominator it was sent (the initial population is the denominator: the platform records
//!   no exclusions), each only when it is a whole number FHIR's 32-bit `integer` can hold: a
//!   mean headcount of 1234.5 has no FHIR count, and the score still carries the figure.
//! * **Score.** `measureScore` is a `Quantity` in the measure's display unit: the stored value
//!   multiplied by the definition's display scale (a proportion stored as 0.95 reads 95 with
//!   unit `%`), as the board pack shows it. A `%` unit is also coded in UCUM.
//! * **Over a range of periods** the populations are the sums of the points' numerators and
//!   denominators, each when every point has one. For a proportion or a rate whose points all
//!   have both, the score is Σ numerators ÷ Σ denominators × display scale (the pooled rate,
//!   which weights each period by its denominator); otherwise it is the mean of the points'
//!   values × display scale.
//! * **No number.** FHIR decimals cannot be NaN or infinite. Where a score is not a finite
//!   number (a range whose denominators sum to 0) or there is none (a range with no points),
//!   `measureScore` has no value and carries the standard `data-absent-reason` extension
//!   instead (`not-a-number`, `positive-infinity`, `negative-infinity` or `unknown`). A period
//!   whose dates are missing or not real days is left out the same way.
//! * **Frequency and targets.** R4's `Measure` has no element for a reporting frequency or a
//!   target; the reports' periods show the one, and the other is not mapped.
//!
//! The codes come from the R4 code systems `measure-scoring`, `measure-population`,
//! `measure-improvement-notation` and `data-absent-reason` (terminology.hl7.org).

use ics_proto::events::v1::{
    Date, ImprovementDirection, MeasureDefinition, MeasureScoring, ObservationPoint, SeriesRecord,
};
use serde_json::{Map, Number, Value, json};

/// The FHIR version of every resource this crate makes.
pub const FHIR_VERSION: &str = "4.0.1";

/// A placeholder base for canonical URLs (`{base}/Measure/{id}`): a deployment passes the base
/// its FHIR endpoint is served under, so that a Measure's `url` names something that resolves.
pub const EXAMPLE_BASE: &str = "https://ics.example.nhs.uk/fhir";

/// NHS England's identifier system for Organisation Data Service codes.
pub const ODS_ORGANIZATION_CODE: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

const MEASURE_SCORING: &str = "http://terminology.hl7.org/CodeSystem/measure-scoring";
const MEASURE_POPULATION: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const IMPROVEMENT_NOTATION: &str =
    "http://terminology.hl7.org/CodeSystem/measure-improvement-notation";
const DATA_ABSENT_REASON_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
const UCUM: &str = "http://unitsofmeasure.org";

/// FHIR's limit on the length of a logical id.
const MAX_ID_CHARS: usize = 64;

/// The FHIR logical id of a measure: its code in lower case with underscores as hyphens
/// (`FFT_INPATIENT` → `fft-inpatient`), since an id allows only letters, digits, `-` and `.`.
/// `None` for a code that gives no valid id (empty, or longer than 64 characters); the platform
/// admits no such code.
pub fn measure_id(code: &str) -> Option<String> {
    fhir_id(&[code])
}

/// A measure's canonical URL, `{base}/Measure/{id}`, or `None` when its code gives no id.
pub fn measure_url(base: &str, code: &str) -> Option<String> {
    measure_id(code).map(|id| format!("{}/Measure/{id}", base.trim_end_matches('/')))
}

/// A measure definition as a FHIR R4 `Measure`, at `revision` of the definition (its
/// `version`). See the crate documentation for how scoring and populations map.
pub fn measure(base: &str, definition: &MeasureDefinition, revision: u32) -> Value {
    let mut resource = resource("Measure");
    if let Some(id) = measure_id(&definition.code) {
        resource.insert("id".into(), json!(id));
    }
    if let Some(url) = measure_url(base, &definition.code) {
        resource.insert("url".into(), json!(url));
    }
    resource.insert("version".into(), json!(revision.to_string()));
    // `name` is the computable name (R4 asks it to be usable as an identifier, which the
    // upper-case code is); `title` is what people read.
    insert_text(&mut resource, "name", &definition.code);
    insert_text(&mut resource, "title", &definition.name);
    resource.insert("status".into(), json!("active"));
    insert_text(&mut resource, "description", &definition.description);
    let scoring = scoring(definition);
    if let Some(scoring) = scoring {
        resource.insert(
            "scoring".into(),
            concept(MEASURE_SCORING, scoring.code(), scoring.display()),
        );
    }
    if let Some(notation) = improvement_notation(definition) {
        resource.insert("improvementNotation".into(), notation);
    }
    if let Some(scoring) = scoring {
        resource.insert(
            "group".into(),
            json!([{ "population": measure_populations(scoring) }]),
        );
    }
    Value::Object(resource)
}

/// One organisation's figure for one period as a FHIR R4 `MeasureReport` (type `summary`,
/// reporter the organisation by its ODS code).
pub fn measure_report(
    base: &str,
    definition: &MeasureDefinition,
    ods_code: &str,
    point: &ObservationPoint,
) -> Value {
    let start = fhir_date(point.period_start.as_ref());
    let end = fhir_date(point.period_end.as_ref());
    let id = start
        .as_deref()
        .and_then(|start| fhir_id(&[&definition.code, ods_code, &start.replace('-', "")]));
    let scoring = scoring(definition);
    let counts = match scoring {
        Some(Scoring::ContinuousVariable) => Counts::default(),
        _ => Counts {
            numerator: point.numerator,
            denominator: point.denominator,
        },
    };
    let figures = Figures {
        id,
        start,
        end,
        counts,
        score: Score::of(point.value * display_scale(definition)),
    };
    report(base, definition, ods_code, figures)
}

/// One organisation's figures over a range of periods (`period_start` to `period_end`, both
/// days included) as one FHIR R4 `MeasureReport`. The caller passes the points of the range;
/// populations are summed and the score pooled as the crate documentation describes.
pub fn measure_report_range<'a>(
    base: &str,
    definition: &MeasureDefinition,
    ods_code: &str,
    points: impl IntoIterator<Item = &'a ObservationPoint>,
    period_start: &Date,
    period_end: &Date,
) -> Value {
    let points: Vec<&ObservationPoint> = points.into_iter().collect();
    let start = fhir_date(Some(period_start));
    let end = fhir_date(Some(period_end));
    let id = match (&start, &end) {
        (Some(start), Some(end)) => fhir_id(&[
            &definition.code,
            ods_code,
            &start.replace('-', ""),
            &end.replace('-', ""),
        ]),
        _ => None,
    };
    let scoring = scoring(definition);
    let sum = |figure: fn(&ObservationPoint) -> Option<f64>| -> Option<f64> {
        if points.is_empty() {
            return None;
        }
        points.iter().map(|point| figure(point)).sum()
    };
    let counts = match scoring {
        Some(Scoring::ContinuousVariable) => Counts::default(),
        _ => Counts {
            numerator: sum(|point| point.numerator),
            denominator: sum(|point| point.denominator),
        },
    };
    let pooled = matches!(scoring, Some(Scoring::Proportion | Scoring::Ratio));
    let score = match (pooled, counts.numerator, counts.denominator) {
        (true, Some(numerator), Some(denominator)) => {
            Score::of(numerator / denominator * display_scale(definition))
        }
        _ if points.is_empty() => Score::Absent("unknown"),
        _ => {
            let mean = points.iter().map(|point| point.value).sum::<f64>() / points.len() as f64;
            Score::of(mean * display_scale(definition))
        }
    };
    let figures = Figures {
        id,
        start,
        end,
        counts,
        score,
    };
    report(base, definition, ods_code, figures)
}

/// A series' points within a range of periods (`period_start` to `period_end`, both days
/// included) as `MeasureReport`s, one per period, leaving out ghosted points. The organisation
/// is the series key's; a value stream, if the series has one, has no place in an R4
/// MeasureReport, so pass organisation-level series.
pub fn series_reports(
    base: &str,
    definition: &MeasureDefinition,
    record: &SeriesRecord,
    period_start: &Date,
    period_end: &Date,
) -> Vec<Value> {
    let ods_code = series_ods_code(record);
    counted_points(record)
        .filter(within(period_start, period_end))
        .map(|point| measure_report(base, definition, ods_code, point))
        .collect()
}

/// A series over a range of periods as one `MeasureReport`, from its points that are not
/// ghosted and whose periods lie within the range (`period_start` to `period_end`, both days
/// included).
pub fn series_range_report(
    base: &str,
    definition: &MeasureDefinition,
    record: &SeriesRecord,
    period_start: &Date,
    period_end: &Date,
) -> Value {
    measure_report_range(
        base,
        definition,
        series_ods_code(record),
        counted_points(record).filter(within(period_start, period_end)),
        period_start,
        period_end,
    )
}

/// Whether a point's period lies within the range, both days included.
fn within(period_start: &Date, period_end: &Date) -> impl Fn(&&ObservationPoint) -> bool {
    let range = (date_key(period_start), date_key(period_end));
    move |point: &&ObservationPoint| {
        let start = point.period_start.as_ref().map(date_key);
        let end = point.period_end.as_ref().map(date_key);
        matches!((start, end), (Some(start), Some(end)) if start >= range.0 && end <= range.1)
    }
}

/// Resources as a FHIR R4 `Bundle` of type `searchset`: every resource is a match, `total`
/// counts them, and each that has an id gets `fullUrl` `{base}/{resourceType}/{id}`.
pub fn searchset_bundle(base: &str, resources: Vec<Value>) -> Value {
    let base = base.trim_end_matches('/');
    let total = resources.len();
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let mut entry = Map::new();
            let full_url = match (
                resource.get("resourceType").and_then(Value::as_str),
                resource.get("id").and_then(Value::as_str),
            ) {
                (Some(kind), Some(id)) => Some(format!("{base}/{kind}/{id}")),
                _ => None,
            };
            if let Some(full_url) = full_url {
                entry.insert("fullUrl".into(), json!(full_url));
            }
            entry.insert("resource".into(), resource);
            entry.insert("search".into(), json!({ "mode": "match" }));
            Value::Object(entry)
        })
        .collect();
    let mut bundle = resource("Bundle");
    bundle.insert("type".into(), json!("searchset"));
    bundle.insert("total".into(), json!(total));
    if !entries.is_empty() {
        // FHIR arrays are never empty: an empty result has no `entry` at all.
        bundle.insert("entry".into(), Value::Array(entries));
    }
    Value::Object(bundle)
}

/// The FHIR R4 scorings the platform's map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scoring {
    Proportion,
    Ratio,
    ContinuousVariable,
}

impl Scoring {
    fn code(self) -> &'static str {
        match self {
            Scoring::Proportion => "proportion",
            Scoring::Ratio => "ratio",
            Scoring::ContinuousVariable => "continuous-variable",
        }
    }

    fn display(self) -> &'static str {
        match self {
            Scoring::Proportion => "Proportion",
            Scoring::Ratio => "Ratio",
            Scoring::ContinuousVariable => "Continuous Variable",
        }
    }
}

fn scoring(definition: &MeasureDefinition) -> Option<Scoring> {
    match MeasureScoring::try_from(definition.scoring).ok()? {
        MeasureScoring::Proportion => Some(Scoring::Proportion),
        MeasureScoring::Rate => Some(Scoring::Ratio),
        MeasureScoring::Continuous => Some(Scoring::ContinuousVariable),
        MeasureScoring::Unspecified => None,
    }
}

/// Increase or decrease; a measure where neither direction is better has no notation.
fn improvement_notation(definition: &MeasureDefinition) -> Option<Value> {
    let (code, display) = match ImprovementDirection::try_from(definition.direction).ok()? {
        ImprovementDirection::Increase => ("increase", "Increased score indicates improvement"),
        ImprovementDirection::Decrease => ("decrease", "Decreased score indicates improvement"),
        ImprovementDirection::Neither | ImprovementDirection::Unspecified => return None,
    };
    Some(concept(IMPROVEMENT_NOTATION, code, display))
}

fn measure_populations(scoring: Scoring) -> Vec<Value> {
    let declared: [(&str, &str, &str); 3] = match scoring {
        Scoring::Proportion | Scoring::Ratio => [
            (
                "initial-population",
                "Initial Population",
                "The denominator the reporting organisation counts and submits for the period: \
                 the platform records no exclusions.",
            ),
            (
                "denominator",
                "Denominator",
                "The denominator the reporting organisation counts and submits for the period.",
            ),
            (
                "numerator",
                "Numerator",
                "The numerator the reporting organisation counts and submits for the period.",
            ),
        ],
        Scoring::ContinuousVariable => [
            (
                "initial-population",
                "Initial Population",
                "What the reporting organisation measures in the period.",
            ),
            (
                "measure-population",
                "Measure Population",
                "What the reporting organisation measures in the period: the platform records \
                 no exclusions.",
            ),
            (
                "measure-observation",
                "Measure Observation",
                "The value the reporting organisation submits for the period.",
            ),
        ],
    };
    declared
        .iter()
        .map(|(code, display, description)| {
            json!({
                "code": concept(MEASURE_POPULATION, code, display),
                // R4 requires a language from text/cql, text/fhirpath and
                // application/x-fhir-query. The expression names the population as a CQL
                // measure names its definitions; the description says how it is counted, since
                // no library computes it.
                "criteria": {
                    "description": description,
                    "language": "text/cql",
                    "expression": display,
                },
            })
        })
        .collect()
}

/// A report's numerator and denominator, as submitted or summed.
#[derive(Debug, Default)]
struct Counts {
    numerator: Option<f64>,
    denominator: Option<f64>,
}

enum Score {
    Value(Number),
    /// A `data-absent-reason` code.
    Absent(&'static str),
}

impl Score {
    fn of(value: f64) -> Score {
        match Number::from_f64(tidy(value)) {
            Some(number) => Score::Value(number),
            None if value.is_nan() => Score::Absent("not-a-number"),
            None if value > 0.0 => Score::Absent("positive-infinity"),
            None => Score::Absent("negative-infinity"),
        }
    }
}

/// What distinguishes one report of a measure and organisation from another.
struct Figures {
    id: Option<String>,
    /// FHIR dates, `None` when not known.
    start: Option<String>,
    end: Option<String>,
    counts: Counts,
    score: Score,
}

fn report(base: &str, definition: &MeasureDefinition, ods_code: &str, figures: Figures) -> Value {
    let Figures {
        id,
        start,
        end,
        counts,
        score,
    } = figures;
    let mut resource = resource("MeasureReport");
    if let Some(id) = id {
        resource.insert("id".into(), json!(id));
    }
    resource.insert("status".into(), json!("complete"));
    resource.insert("type".into(), json!("summary"));
    if let Some(url) = measure_url(base, &definition.code) {
        resource.insert("measure".into(), json!(url));
    }
    if !ods_code.trim().is_empty() {
        resource.insert(
            "reporter".into(),
            json!({
                "type": "Organization",
                "identifier": { "system": ODS_ORGANIZATION_CODE, "value": ods_code.trim() },
            }),
        );
    }
    resource.insert("period".into(), period(start, end));
    if let Some(notation) = improvement_notation(definition) {
        resource.insert("improvementNotation".into(), notation);
    }
    let mut group = Map::new();
    let populations: Vec<Value> = [
        (
            "initial-population",
            "Initial Population",
            counts.denominator,
        ),
        ("denominator", "Denominator", counts.denominator),
        ("numerator", "Numerator", counts.numerator),
    ]
    .into_iter()
    .filter_map(|(code, display, figure)| {
        let count = fhir_integer(figure?)?;
        Some(json!({ "code": concept(MEASURE_POPULATION, code, display), "count": count }))
    })
    .collect();
    if !populations.is_empty() {
        group.insert("population".into(), Value::Array(populations));
    }
    group.insert("measureScore".into(), quantity(score, &definition.unit));
    resource.insert("group".into(), json!([group]));
    Value::Object(resource)
}

fn quantity(score: Score, unit: &str) -> Value {
    let mut quantity = Map::new();
    match score {
        Score::Value(value) => {
            quantity.insert("value".into(), Value::Number(value));
        }
        Score::Absent(reason) => {
            quantity.insert("extension".into(), json!([data_absent(reason)]));
        }
    }
    let unit = unit.trim();
    if !unit.is_empty() {
        quantity.insert("unit".into(), json!(unit));
        // `%` is also a UCUM unit, so a percentage can be compared by machine; the platform's
        // other units ("leavers per 100 staff", "index (100 = national)") are words.
        if unit == "%" {
            quantity.insert("system".into(), json!(UCUM));
            quantity.insert("code".into(), json!("%"));
        }
    }
    Value::Object(quantity)
}

fn period(start: Option<String>, end: Option<String>) -> Value {
    let mut period = Map::new();
    if let Some(start) = start {
        period.insert("start".into(), json!(start));
    }
    if let Some(end) = end {
        period.insert("end".into(), json!(end));
    }
    if period.is_empty() {
        // `period` is required and a FHIR element may not be empty: say why it has no dates.
        period.insert("extension".into(), json!([data_absent("unknown")]));
    }
    Value::Object(period)
}

fn data_absent(reason: &str) -> Value {
    json!({ "url": DATA_ABSENT_REASON_EXTENSION, "valueCode": reason })
}

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code, "display": display }] })
}

fn resource(kind: &str) -> Map<String, Value> {
    let mut resource = Map::new();
    resource.insert("resourceType".into(), json!(kind));
    resource
}

/// FHIR strings may not be empty, so an empty text is left out.
fn insert_text(resource: &mut Map<String, Value>, key: &str, text: &str) {
    let text = text.trim();
    if !text.is_empty() {
        resource.insert(key.into(), json!(text));
    }
}

/// A logical id from parts joined with `-`: lower case, every character an id does not allow
/// as `-`; `None` when empty or over 64 characters (cutting it short could make two ids one).
fn fhir_id(parts: &[&str]) -> Option<String> {
    if parts.iter().any(|part| part.trim().is_empty()) {
        return None;
    }
    let id: String = parts
        .iter()
        .map(|part| part.trim())
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            _ => '-',
        })
        .collect();
    (id.chars().count() <= MAX_ID_CHARS).then_some(id)
}

/// A FHIR `date` (`2024-04-01`), or `None` when the date is missing or not a real day within
/// the years 1–9999 that FHIR's four-digit years allow.
fn fhir_date(date: Option<&Date>) -> Option<String> {
    let date = date?;
    ics_proto::date::to_naive(date)?;
    (1..=9999)
        .contains(&date.year)
        .then(|| ics_proto::date::iso(date))
}

/// A count as FHIR's 32-bit `integer`, or `None` when it is not a whole number in range.
fn fhir_integer(figure: f64) -> Option<i64> {
    let in_range = (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&figure);
    // A whole number within i32's range converts exactly.
    (in_range && figure.fract() == 0.0).then_some(figure as i64)
}

/// Proportions and rates are displayed multiplied by this; 1 when unset or not usable.
fn display_scale(definition: &MeasureDefinition) -> f64 {
    let scale = definition.display_scale;
    if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    }
}

/// The score rounded to ten decimal places, so that binary arithmetic's residue (0.57 × 100 =
/// 56.99999999999999) does not reach the JSON; ten places are far finer than any measure is
/// recorded to. A value too large to round is kept as it is.
fn tidy(value: f64) -> f64 {
    let rounded = (value * 1e10).round() / 1e10;
    if rounded.is_finite() { rounded } else { value }
}

fn counted_points(record: &SeriesRecord) -> impl Iterator<Item = &ObservationPoint> {
    record
        .points
        .iter()
        .filter(|point| !point.ghosted)
        .filter_map(|point| point.observation.as_ref())
}

fn series_ods_code(record: &SeriesRecord) -> &str {
    record
        .series
        .as_ref()
        .map(|series| series.ods_code.as_str())
        .unwrap_or_default()
}

fn date_key(date: &Date) -> (i32, u32, u32) {
    (date.year, date.month, date.day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lower_case_with_hyphens_and_never_cut_short() {
        assert_eq!(
            measure_id("FFT_INPATIENT").as_deref(),
            Some("fft-inpatient")
        );
        assert_eq!(
            fhir_id(&["FFT_POSITIVE", "RX1", "20240401"]).as_deref(),
            Some("fft-positive-rx1-20240401")
        );
        assert_eq!(measure_id(""), None);
        assert_eq!(measure_id(&"A".repeat(65)), None);
        assert_eq!(
            measure_url("https://fhir.example/base/", "STAFF_LEAVER_RATE").as_deref(),
            Some("https://fhir.example/base/Measure/staff-leaver-rate")
        );
    }

    #[test]
    fn counts_are_whole_32_bit_numbers() {
        assert_eq!(fhir_integer(120.0), Some(120));
        assert_eq!(fhir_integer(1234.5), None);
        assert_eq!(fhir_integer(3e9), None);
        assert_eq!(fhir_integer(f64::NAN), None);
    }

    #[test]
    fn scores_lose_binary_residue_but_not_precision() {
        assert_eq!(tidy(0.57 * 100.0), 57.0);
        assert_eq!(tidy(12.345678), 12.345678);
        assert_eq!(tidy(1e300), 1e300);
        assert!(matches!(Score::of(f64::NAN), Score::Absent("not-a-number")));
        assert!(matches!(
            Score::of(f64::INFINITY),
            Score::Absent("positive-infinity")
        ));
        assert!(matches!(
            Score::of(f64::NEG_INFINITY),
            Score::Absent("negative-infinity")
        ));
    }

    #[test]
    fn dates_must_be_real_days_with_four_digit_years() {
        let date = |year, month, day| Date { year, month, day };
        assert_eq!(
            fhir_date(Some(&date(2024, 2, 29))).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(fhir_date(Some(&date(2023, 2, 29))), None);
        assert_eq!(fhir_date(Some(&date(0, 1, 1))), None);
        assert_eq!(fhir_date(None), None);
    }
}
