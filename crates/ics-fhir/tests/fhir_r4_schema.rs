//! Every kind of resource the crate makes, checked against HL7's FHIR R4 JSON schema
//! (`fixtures/fhir.schema.json`, see `fixtures/README.md`), plus what the crate promises on top
//! of validity: codes, counts, scores and ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use ics_fhir::{
    EXAMPLE_BASE, ODS_ORGANIZATION_CODE, measure, measure_report, measure_report_range,
    searchset_bundle, series_range_report, series_reports,
};
use ics_proto::events::v1::{
    Date, ImprovementDirection, MeasureDefinition, MeasureFrequency, MeasureScoring,
    ObservationPoint, SeriesKey, SeriesRecord, SeriesRecordPoint,
};
use jsonschema::Validator;
use serde_json::{Value, json};

static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fhir.schema.json"
    ))
    .expect("the kept FHIR R4 schema");
    serde_json::from_str(&text).expect("the schema is JSON")
});

/// The schema as HL7 publishes it: its root accepts any R4 resource, by `resourceType`.
static ANY_RESOURCE: LazyLock<Validator> =
    LazyLock::new(|| jsonschema::validator_for(&SCHEMA).expect("the schema compiles"));

/// The schema's definition of one resource type, through a `$ref` into its own definitions.
/// The root's answer is only "valid under none of 150 resource types"; this one says which
/// element failed.
fn definition(kind: &str) -> Validator {
    let schema = json!({
        "$schema": SCHEMA["$schema"],
        "$ref": format!("#/definitions/{kind}"),
        "definitions": SCHEMA["definitions"],
    });
    jsonschema::validator_for(&schema).expect("the definition compiles")
}

static MEASURE: LazyLock<Validator> = LazyLock::new(|| definition("Measure"));
static MEASURE_REPORT: LazyLock<Validator> = LazyLock::new(|| definition("MeasureReport"));
static BUNDLE: LazyLock<Validator> = LazyLock::new(|| definition("Bundle"));

fn errors(resource: &Value) -> Vec<String> {
    let validator = match resource["resourceType"].as_str() {
        Some("Measure") => &*MEASURE,
        Some("MeasureReport") => &*MEASURE_REPORT,
        Some("Bundle") => &*BUNDLE,
        _ => &*ANY_RESOURCE,
    };
    validator
        .iter_errors(resource)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

#[track_caller]
fn assert_valid(resource: &Value) {
    let errors = errors(resource);
    assert!(
        errors.is_empty(),
        "not valid FHIR R4: {errors:#?}\n{}",
        serde_json::to_string_pretty(resource).unwrap()
    );
    assert!(
        ANY_RESOURCE.is_valid(resource),
        "the schema's root rejects it"
    );
}

#[track_caller]
fn assert_invalid(resource: &Value) {
    assert!(
        !errors(resource).is_empty(),
        "accepted: {}",
        serde_json::to_string_pretty(resource).unwrap()
    );
    assert!(
        !ANY_RESOURCE.is_valid(resource),
        "the schema's root accepts it"
    );
}

fn definition_of(code: &str, scoring: MeasureScoring, unit: &str, scale: f64) -> MeasureDefinition {
    MeasureDefinition {
        code: code.to_owned(),
        name: format!("{code} as people read it"),
        description: "Numerator: positive responses; denominator: all responses.".to_owned(),
        unit: unit.to_owned(),
        direction: ImprovementDirection::Increase as i32,
        scoring: scoring as i32,
        frequency: MeasureFrequency::Monthly as i32,
        target: Some(0.95),
        display_scale: scale,
        ..Default::default()
    }
}

fn fft() -> MeasureDefinition {
    definition_of("FFT_POSITIVE", MeasureScoring::Proportion, "%", 100.0)
}

fn leavers() -> MeasureDefinition {
    MeasureDefinition {
        direction: ImprovementDirection::Decrease as i32,
        ..definition_of(
            "STAFF_LEAVER_RATE",
            MeasureScoring::Rate,
            "% of staff",
            100.0,
        )
    }
}

fn cost_index() -> MeasureDefinition {
    MeasureDefinition {
        direction: ImprovementDirection::Neither as i32,
        target: None,
        ..definition_of(
            "REFERENCE_COST_INDEX",
            MeasureScoring::Continuous,
            "index (100 = national average)",
            0.0,
        )
    }
}

fn date(year: i32, month: u32, day: u32) -> Date {
    Date { year, month, day }
}

fn april(value: f64, numerator: Option<f64>, denominator: Option<f64>) -> ObservationPoint {
    month(4, 30, value, numerator, denominator)
}

fn month(
    month: u32,
    last_day: u32,
    value: f64,
    numerator: Option<f64>,
    denominator: Option<f64>,
) -> ObservationPoint {
    ObservationPoint {
        period_start: Some(date(2024, month, 1)),
        period_end: Some(date(2024, month, last_day)),
        value,
        numerator,
        denominator,
        source: "monthly extract".to_owned(),
        revision: 1,
    }
}

fn population_codes(group: &Value) -> Vec<&str> {
    group["population"]
        .as_array()
        .map(|populations| {
            populations
                .iter()
                .map(|population| population["code"]["coding"][0]["code"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

fn count(report: &Value, code: &str) -> Option<i64> {
    report["group"][0]["population"]
        .as_array()?
        .iter()
        .find(|population| population["code"]["coding"][0]["code"] == code)
        .and_then(|population| population["count"].as_i64())
}

fn absent_reason(score: &Value) -> &str {
    assert!(score.get("value").is_none(), "{score}");
    assert_eq!(
        score["extension"][0]["url"],
        "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
    );
    score["extension"][0]["valueCode"].as_str().unwrap()
}

#[test]
fn the_kept_schema_is_hl7s_fhir_r4_json_schema() {
    assert_eq!(SCHEMA["id"], "http://hl7.org/fhir/json-schema/4.0");
    for kind in ["Measure", "MeasureReport", "Bundle"] {
        assert_eq!(
            SCHEMA["discriminator"]["mapping"][kind],
            format!("#/definitions/{kind}")
        );
    }
}

#[test]
fn a_proportion_is_a_measure_with_initial_population_denominator_and_numerator() {
    let resource = measure(EXAMPLE_BASE, &fft(), 3);
    assert_valid(&resource);
    assert_eq!(resource["id"], "fft-positive");
    assert_eq!(
        resource["url"],
        "https://ics.example.nhs.uk/fhir/Measure/fft-positive"
    );
    assert_eq!(resource["version"], "3");
    assert_eq!(resource["name"], "FFT_POSITIVE");
    assert_eq!(resource["status"], "active");
    assert_eq!(resource["scoring"]["coding"][0]["code"], "proportion");
    assert_eq!(
        resource["scoring"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/measure-scoring"
    );
    assert_eq!(
        resource["improvementNotation"]["coding"][0],
        json!({
            "system": "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
            "code": "increase",
            "display": "Increased score indicates improvement",
        })
    );
    assert_eq!(
        population_codes(&resource["group"][0]),
        ["initial-population", "denominator", "numerator"]
    );
}

#[test]
fn a_rate_is_a_ratio_measure() {
    let resource = measure(EXAMPLE_BASE, &leavers(), 1);
    assert_valid(&resource);
    assert_eq!(resource["scoring"]["coding"][0]["code"], "ratio");
    assert_eq!(
        resource["improvementNotation"]["coding"][0]["code"],
        "decrease"
    );
    assert_eq!(
        population_codes(&resource["group"][0]),
        ["initial-population", "denominator", "numerator"]
    );
}

#[test]
fn a_continuous_measure_has_a_measure_population_and_observation() {
    let resource = measure(EXAMPLE_BASE, &cost_index(), 2);
    assert_valid(&resource);
    assert_eq!(
        resource["scoring"]["coding"][0]["code"],
        "continuous-variable"
    );
    // Neither direction is better: no notation rather than a wrong one.
    assert!(resource.get("improvementNotation").is_none());
    assert_eq!(
        population_codes(&resource["group"][0]),
        [
            "initial-population",
            "measure-population",
            "measure-observation"
        ]
    );
}

#[test]
fn a_measure_without_scoring_or_text_is_still_valid() {
    let bare = MeasureDefinition {
        code: "NEW_MEASURE".to_owned(),
        ..Default::default()
    };
    let resource = measure("https://fhir.example/r4/", &bare, 1);
    assert_valid(&resource);
    assert_eq!(
        resource["url"],
        "https://fhir.example/r4/Measure/new-measure"
    );
    for absent in ["scoring", "group", "title", "description"] {
        assert!(resource.get(absent).is_none(), "{absent}");
    }
}

#[test]
fn a_monthly_proportion_reads_as_expected() {
    let report = measure_report(
        EXAMPLE_BASE,
        &fft(),
        "RX1",
        &april(0.57, Some(57.0), Some(100.0)),
    );
    assert_valid(&report);
    assert_eq!(
        report,
        json!({
            "resourceType": "MeasureReport",
            "id": "fft-positive-rx1-20240401",
            "status": "complete",
            "type": "summary",
            "measure": "https://ics.example.nhs.uk/fhir/Measure/fft-positive",
            "reporter": {
                "type": "Organization",
                "identifier": { "system": ODS_ORGANIZATION_CODE, "value": "RX1" },
            },
            "period": { "start": "2024-04-01", "end": "2024-04-30" },
            "improvementNotation": {
                "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
                    "code": "increase",
                    "display": "Increased score indicates improvement",
                }],
            },
            "group": [{
                "population": [
                    {
                        "code": { "coding": [{
                            "system": "http://terminology.hl7.org/CodeSystem/measure-population",
                            "code": "initial-population",
                            "display": "Initial Population",
                        }] },
                        "count": 100,
                    },
                    {
                        "code": { "coding": [{
                            "system": "http://terminology.hl7.org/CodeSystem/measure-population",
                            "code": "denominator",
                            "display": "Denominator",
                        }] },
                        "count": 100,
                    },
                    {
                        "code": { "coding": [{
                            "system": "http://terminology.hl7.org/CodeSystem/measure-population",
                            "code": "numerator",
                            "display": "Numerator",
                        }] },
                        "count": 57,
                    },
                ],
                // 0.57 × 100 is 56.99999999999999 in binary; the score says 57.
                "measureScore": {
                    "value": 57.0,
                    "unit": "%",
                    "system": "http://unitsofmeasure.org",
                    "code": "%",
                },
            }],
        })
    );
}

#[test]
fn a_monthly_value_without_numerator_or_denominator_has_only_a_score() {
    let report = measure_report(
        EXAMPLE_BASE,
        &cost_index(),
        "R0A",
        &april(103.5, None, None),
    );
    assert_valid(&report);
    let group = &report["group"][0];
    assert!(group.get("population").is_none());
    // No display scale set: the value as it is, in the definition's words.
    assert_eq!(
        group["measureScore"],
        json!({ "value": 103.5, "unit": "index (100 = national average)" })
    );
    assert!(report.get("improvementNotation").is_none());
}

#[test]
fn a_count_fhir_cannot_hold_is_left_out_and_the_score_kept() {
    // Leavers ÷ mean headcount: the headcount is a mean, not a whole number.
    let report = measure_report(
        EXAMPLE_BASE,
        &leavers(),
        "RTP",
        &april(12.0 / 1234.5, Some(12.0), Some(1234.5)),
    );
    assert_valid(&report);
    assert_eq!(count(&report, "numerator"), Some(12));
    assert_eq!(count(&report, "denominator"), None);
    assert_eq!(count(&report, "initial-population"), None);
    let score = report["group"][0]["measureScore"]["value"]
        .as_f64()
        .unwrap();
    assert!((score - 0.972_053_462_9).abs() < 1e-9, "{score}");
}

#[test]
fn a_point_without_real_dates_says_why_its_period_is_empty() {
    let mut point = april(0.9, Some(9.0), Some(10.0));
    point.period_start = None;
    point.period_end = Some(date(2023, 2, 29));
    let report = measure_report(EXAMPLE_BASE, &fft(), "RX1", &point);
    assert_valid(&report);
    assert!(report.get("id").is_none());
    assert_eq!(
        report["period"]["extension"][0]["valueCode"],
        json!("unknown")
    );
}

#[test]
fn a_range_pools_numerators_and_denominators() {
    let points = [
        month(4, 30, 0.9, Some(90.0), Some(100.0)),
        month(5, 31, 0.5, Some(150.0), Some(300.0)),
    ];
    let report = measure_report_range(
        EXAMPLE_BASE,
        &fft(),
        "RX1",
        &points,
        &date(2024, 4, 1),
        &date(2024, 5, 31),
    );
    assert_valid(&report);
    assert_eq!(report["id"], "fft-positive-rx1-20240401-20240531");
    assert_eq!(
        report["period"],
        json!({ "start": "2024-04-01", "end": "2024-05-31" })
    );
    assert_eq!(count(&report, "numerator"), Some(240));
    assert_eq!(count(&report, "denominator"), Some(400));
    // 240 ÷ 400, not the mean of 90 % and 50 %.
    assert_eq!(report["group"][0]["measureScore"]["value"], json!(60.0));
}

#[test]
fn a_range_without_every_denominator_is_the_mean_of_its_values() {
    let points = [
        month(4, 30, 0.9, Some(90.0), Some(100.0)),
        month(5, 31, 0.5, None, None),
    ];
    let report = measure_report_range(
        EXAMPLE_BASE,
        &fft(),
        "RX1",
        &points,
        &date(2024, 4, 1),
        &date(2024, 5, 31),
    );
    assert_valid(&report);
    assert!(report["group"][0].get("population").is_none());
    assert_eq!(report["group"][0]["measureScore"]["value"], json!(70.0));

    let continuous = measure_report_range(
        EXAMPLE_BASE,
        &cost_index(),
        "R0A",
        &[
            month(4, 30, 101.0, None, None),
            month(5, 31, 99.0, None, None),
        ],
        &date(2024, 4, 1),
        &date(2024, 5, 31),
    );
    assert_valid(&continuous);
    assert_eq!(
        continuous["group"][0]["measureScore"]["value"],
        json!(100.0)
    );
}

#[test]
fn a_range_with_no_number_to_give_says_why() {
    let empty = measure_report_range(
        EXAMPLE_BASE,
        &fft(),
        "RX1",
        &[],
        &date(2024, 4, 1),
        &date(2024, 5, 31),
    );
    assert_valid(&empty);
    assert_eq!(absent_reason(&empty["group"][0]["measureScore"]), "unknown");

    // Denominators of 0 are refused on ingest; were they not, 0 ÷ 0 is no FHIR decimal.
    let zero = measure_report_range(
        EXAMPLE_BASE,
        &fft(),
        "RX1",
        &[month(4, 30, 0.0, Some(0.0), Some(0.0))],
        &date(2024, 4, 1),
        &date(2024, 4, 30),
    );
    assert_valid(&zero);
    assert_eq!(
        absent_reason(&zero["group"][0]["measureScore"]),
        "not-a-number"
    );

    let infinite = measure_report(
        EXAMPLE_BASE,
        &cost_index(),
        "R0A",
        &april(f64::INFINITY, None, None),
    );
    assert_valid(&infinite);
    assert_eq!(
        absent_reason(&infinite["group"][0]["measureScore"]),
        "positive-infinity"
    );
}

fn series() -> SeriesRecord {
    let point = |observation, ghosted| SeriesRecordPoint {
        observation: Some(observation),
        ghosted,
    };
    SeriesRecord {
        series: Some(SeriesKey {
            measure_code: "FFT_POSITIVE".to_owned(),
            ods_code: "RX1".to_owned(),
            value_stream_id: String::new(),
        }),
        points: vec![
            point(month(3, 31, 0.8, Some(80.0), Some(100.0)), false),
            point(month(4, 30, 0.1, Some(10.0), Some(100.0)), true),
            point(month(5, 31, 0.9, Some(90.0), Some(100.0)), false),
            point(month(6, 30, 0.7, Some(70.0), Some(100.0)), false),
        ],
        ..Default::default()
    }
}

#[test]
fn a_series_leaves_out_its_ghosted_points() {
    let reports = series_reports(
        EXAMPLE_BASE,
        &fft(),
        &series(),
        &date(2024, 1, 1),
        &date(2024, 12, 31),
    );
    let ids: Vec<&str> = reports
        .iter()
        .map(|report| report["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "fft-positive-rx1-20240301",
            "fft-positive-rx1-20240501",
            "fft-positive-rx1-20240601"
        ]
    );
    reports.iter().for_each(assert_valid);
    // One report a period, within the range asked for only.
    let within = series_reports(
        EXAMPLE_BASE,
        &fft(),
        &series(),
        &date(2024, 4, 1),
        &date(2024, 5, 31),
    );
    assert_eq!(within.len(), 1);
    assert_eq!(within[0]["id"], "fft-positive-rx1-20240501");

    // April is ghosted and June lies outside: March and May only.
    let range = series_range_report(
        EXAMPLE_BASE,
        &fft(),
        &series(),
        &date(2024, 3, 1),
        &date(2024, 5, 31),
    );
    assert_valid(&range);
    assert_eq!(count(&range, "numerator"), Some(170));
    assert_eq!(count(&range, "denominator"), Some(200));
    assert_eq!(range["group"][0]["measureScore"]["value"], json!(85.0));
}

#[test]
fn a_searchset_bundle_holds_measures_and_reports() {
    let mut resources = vec![
        measure(EXAMPLE_BASE, &fft(), 1),
        measure(EXAMPLE_BASE, &leavers(), 1),
        measure(EXAMPLE_BASE, &cost_index(), 1),
    ];
    resources.extend(series_reports(
        EXAMPLE_BASE,
        &fft(),
        &series(),
        &date(2024, 1, 1),
        &date(2024, 12, 31),
    ));
    let bundle = searchset_bundle(EXAMPLE_BASE, resources);
    assert_valid(&bundle);
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["total"], 6);
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(
        entries[0]["fullUrl"],
        "https://ics.example.nhs.uk/fhir/Measure/fft-positive"
    );
    assert_eq!(
        entries[3]["fullUrl"],
        "https://ics.example.nhs.uk/fhir/MeasureReport/fft-positive-rx1-20240301"
    );
    assert!(
        entries
            .iter()
            .all(|entry| entry["search"]["mode"] == "match")
    );

    let empty = searchset_bundle(EXAMPLE_BASE, Vec::new());
    assert_valid(&empty);
    assert_eq!(
        empty,
        json!({ "resourceType": "Bundle", "type": "searchset", "total": 0 })
    );
}

#[test]
fn the_schema_rejects_what_fhir_r4_does_not_allow() {
    let report = measure_report(
        EXAMPLE_BASE,
        &fft(),
        "RX1",
        &april(0.57, Some(57.0), Some(100.0)),
    );
    assert_valid(&report);

    let mut bogus_status = report.clone();
    bogus_status["status"] = json!("bogus");
    assert_invalid(&bogus_status);

    let mut without_measure = report.clone();
    without_measure.as_object_mut().unwrap().remove("measure");
    assert_invalid(&without_measure);

    // What a NaN score becomes in serde_json, had it not been replaced by a reason.
    let mut null_score = report.clone();
    null_score["group"][0]["measureScore"]["value"] = Value::Null;
    assert_invalid(&null_score);

    // Why codes are mapped to ids: an underscore is not allowed in one.
    let mut underscore_id = report.clone();
    underscore_id["id"] = json!("fft_positive-rx1-20240401");
    assert_invalid(&underscore_id);

    let mut unknown_element = report.clone();
    unknown_element["subjectOrganisation"] = json!("RX1");
    assert_invalid(&unknown_element);

    let mut bundle = searchset_bundle(EXAMPLE_BASE, vec![report]);
    bundle["entry"][0]["resource"]["period"]["start"] = json!("1 April 2024");
    assert_invalid(&bundle);
}
