//! Outcomes and measures as the reporting service gives them (with its analyses), for tests here and in the crates
//! that render through this one (the demo's): the seed's programme, with one awkwardly named
//! trust, and an ICS's Friends and Family Test view with a special cause concern.

use ics_proto::events::v1::{
    AssuranceIcon, Date, FollowUpCheckpoint, ImprovementDirection, MeasureDefinition, MetricKind,
    MetricUnit, SeriesKey, SpcPoint, SpcRuleSetVersion, SpcSeries, VariationIcon,
};
use ics_proto::reporting::v1::{
    CheckpointSustainment, FunnelUnit, KindOutcome, MeasureRow, MeasureView, OutcomeGroup,
    Outcomes, PeerBand, PeerComparison, Scope, scope,
};

use crate::measures::{MeasurePack, PeerFunnel, SeriesChart};

pub fn sustainment(
    checkpoint: FollowUpCheckpoint,
    measured: u32,
    sustained: u32,
    missed: u32,
) -> CheckpointSustainment {
    CheckpointSustainment {
        checkpoint: checkpoint as i32,
        measured,
        sustained,
        share_sustained: if measured == 0 {
            0.0
        } else {
            f64::from(sustained) / f64::from(measured)
        },
        missed,
    }
}

pub fn kind_outcome(
    kind: MetricKind,
    workshops: u32,
    baseline_total: f64,
    after_total: f64,
) -> KindOutcome {
    let unit = match kind {
        MetricKind::ErrorCount => MetricUnit::Count,
        MetricKind::ErrorRate => MetricUnit::Percent,
        MetricKind::ProcessTime | MetricKind::Unspecified => MetricUnit::Hours,
    };
    KindOutcome {
        kind: kind as i32,
        workshops,
        baseline_total,
        after_total,
        pooled_reduction: 1.0 - after_total / baseline_total,
        mean_reduction: 0.58,
        median_reduction: 0.6,
        absolute_reduction: baseline_total - after_total,
        unit: unit as i32,
        sustainment: vec![
            sustainment(FollowUpCheckpoint::Day30, workshops, workshops * 3 / 4, 0),
            sustainment(FollowUpCheckpoint::Day60, workshops, workshops * 2 / 3, 0),
            sustainment(FollowUpCheckpoint::Day90, workshops, workshops / 2, 0),
            sustainment(
                FollowUpCheckpoint::Day365,
                workshops.saturating_sub(3),
                workshops / 3,
                3.min(workshops),
            ),
        ],
    }
}

/// The seed's programme: its headline, and two trusts (one with an awkward name).
pub fn programme_outcomes() -> Outcomes {
    Outcomes {
        scope: Some(Scope {
            scope: Some(scope::Scope::ProgrammeId("p-1".to_owned())),
        }),
        name: "NHS–Virginia Mason Institute partnership".to_owned(),
        as_of: Some(Date {
            year: 2021,
            month: 6,
            day: 30,
        }),
        headline: vec![
            kind_outcome(MetricKind::ErrorRate, 90, 1850.0, 684.5),
            kind_outcome(MetricKind::ProcessTime, 82, 4871.0, 1851.0),
            kind_outcome(MetricKind::ErrorCount, 54, 3100.0, 1023.0),
        ],
        by_trust: vec![
            OutcomeGroup {
                key: "RTP".to_owned(),
                name: "Surrey and Sussex Healthcare NHS Trust".to_owned(),
                kinds: vec![
                    kind_outcome(MetricKind::ProcessTime, 22, 1500.0, 540.0),
                    kind_outcome(MetricKind::ErrorCount, 12, 700.0, 210.0),
                ],
            },
            OutcomeGroup {
                key: "ZZ1".to_owned(),
                name: "A&B <Trust>".to_owned(),
                kinds: vec![
                    kind_outcome(MetricKind::ProcessTime, 0, 0.0, 0.0),
                    kind_outcome(MetricKind::ErrorRate, 5, 100.0, 104.0),
                ],
            },
            OutcomeGroup {
                key: "RCF".to_owned(),
                name: "Airedale NHS Foundation Trust".to_owned(),
                kinds: vec![kind_outcome(MetricKind::ErrorCount, 0, 0.0, 0.0)],
            },
        ],
        by_value_stream: vec![OutcomeGroup {
            key: "0190a1b2-vs".to_owned(),
            name: "Discharge, \"fast\" (sample)".to_owned(),
            kinds: vec![kind_outcome(MetricKind::ProcessTime, 9, 400.0, 150.0)],
        }],
    }
}

fn month(offset: u32) -> Option<Date> {
    Some(Date {
        year: 2022 + (offset / 12) as i32,
        month: offset % 12 + 1,
        day: 1,
    })
}

fn fft() -> MeasureDefinition {
    ics_measures::reference::definitions()
        .into_iter()
        .find(|definition| definition.code == "FFT_POSITIVE")
        .expect("FFT_POSITIVE is a reference measure")
}

/// Twenty months around 93% and a last one at 80%: a special cause concern, analysed as the
/// reporting service analyses a series.
pub fn falling_series(ods_code: &str) -> SeriesChart {
    let mut points: Vec<SpcPoint> = (0..20)
        .map(|offset| SpcPoint {
            period_start: month(offset),
            value: 0.92 + f64::from(offset % 3) * 0.01,
            ..SpcPoint::default()
        })
        .collect();
    points.push(SpcPoint {
        period_start: month(20),
        value: 0.8,
        ..SpcPoint::default()
    });
    let measure = fft();
    let analysis = ics_spc::analyse(
        &points
            .iter()
            .map(|point| ics_spc::Point::new(point.value))
            .collect::<Vec<_>>(),
        ics_measures::direction(&measure),
        Some(0.95),
        &ics_measures::rule_set(&measure),
    );
    let series = SpcSeries {
        series: Some(SeriesKey {
            measure_code: "FFT_POSITIVE".to_owned(),
            ods_code: ods_code.to_owned(),
            value_stream_id: String::new(),
        }),
        measure: Some(measure),
        target: Some(0.95),
        points,
        variation: VariationIcon::ConcernLow as i32,
        assurance: AssuranceIcon::HitOrMiss as i32,
        run_chart: false,
        rule_set: Some(SpcRuleSetVersion {
            name: "mdc-sql".to_owned(),
            version: "2.5".to_owned(),
        }),
        warnings: vec![],
    };
    SeriesChart { series, analysis }
}

fn row(ods_code: &str, name: &str, value: f64, band: PeerBand) -> MeasureRow {
    MeasureRow {
        ods_code: ods_code.to_owned(),
        organisation_name: name.to_owned(),
        measure_code: "FFT_POSITIVE".to_owned(),
        measure_name: "Friends and Family Test: % positive".to_owned(),
        unit: "%".to_owned(),
        direction: ImprovementDirection::Increase as i32,
        latest_period_start: month(20),
        latest_value: value,
        points: 21,
        variation: VariationIcon::ConcernLow as i32,
        assurance: AssuranceIcon::Fail as i32,
        target: Some(0.95),
        peer_band: band as i32,
        peer_period_start: month(20),
        rule_set: Some(SpcRuleSetVersion {
            name: "mdc-sql".to_owned(),
            version: "2.5".to_owned(),
        }),
        display_scale: 100.0,
        ..MeasureRow::default()
    }
}

pub fn measure_pack() -> MeasurePack {
    MeasurePack {
        view: MeasureView {
            ics_ods_code: "QWO".to_owned(),
            name: "NHS West Yorkshire ICB".to_owned(),
            as_of: Some(Date {
                year: 2025,
                month: 1,
                day: 31,
            }),
            rows: vec![
                row("RR8", "Leeds <Teaching>", 0.8, PeerBand::Worse),
                MeasureRow {
                    variation: VariationIcon::CommonCause as i32,
                    assurance: AssuranceIcon::HitOrMiss as i32,
                    ..row("RAE", "Bradford", 0.9412, PeerBand::AsExpected)
                },
                MeasureRow {
                    measure_code: "REFERENCE_COST_INDEX".to_owned(),
                    latest_period_start: None,
                    peer_period_start: None,
                    measure_name: "Reference cost index".to_owned(),
                    unit: "index".to_owned(),
                    points: 0,
                    variation: 0,
                    assurance: 0,
                    target: None,
                    peer_band: 0,
                    display_scale: 1.0,
                    ..row("RAE", "Bradford", 0.0, PeerBand::Unspecified)
                },
            ],
            observations: 42,
            peer_group_id: String::new(),
            peer_group_version: 0,
        },
        charts: vec![falling_series("RR8"), falling_series("RAE")],
        comparisons: vec![fft_funnel()],
    }
}

/// Leeds and Bradford's Friends and Family Test in one month, with its funnel.
fn fft_funnel() -> PeerFunnel {
    let units = [("RR8", 800.0, 1000.0), ("RAE", 1412.0, 1500.0)];
    let funnel = ics_peers::funnel(
        &units.map(|(ods_code, numerator, denominator)| {
            ics_peers::FunnelUnit::new(ods_code, numerator, denominator)
        }),
        ics_spc::Direction::Increase,
    )
    .expect("two units make a funnel");
    PeerFunnel {
        comparison: PeerComparison {
            measure_code: "FFT_POSITIVE".to_owned(),
            period_start: month(20),
            units: units
                .iter()
                .map(|(ods_code, numerator, denominator)| FunnelUnit {
                    ods_code: (*ods_code).to_owned(),
                    numerator: *numerator,
                    denominator: *denominator,
                    ..FunnelUnit::default()
                })
                .collect(),
            ..PeerComparison::default()
        },
        funnel,
    }
}
