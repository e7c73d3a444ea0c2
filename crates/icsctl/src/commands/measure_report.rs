//! Measure views from the reporting service: the ICS's trust × measure table, one series' SPC
//! chart data, funnel-plot peer comparisons and change against peers.

use ics_proto::events::v1::{Date, SeriesKey};
use ics_proto::reporting::v1::{
    self as api, MeasureView, MeasureViewUpdate, PeerChange, PeerComparison,
};

use crate::commands::metrics::print_series;
use crate::connect::{Context, Reporting};

use crate::render::{
    self, Align, Table, assurance_word, date_text, outln, peer_band_word, peer_group_text,
    rule_set_text, scaled_text, variation_word,
};

pub async fn measures(
    context: &Context,
    reporting: &mut Reporting,
    ics: String,
    peer_group: Option<String>,
    as_of: Option<Date>,
    watch: bool,
) -> anyhow::Result<()> {
    let peer_group_id = peer_group.unwrap_or_default();
    if watch {
        let updates = reporting
            .watch_measure_view(api::WatchMeasureViewRequest {
                ics_ods_code: ics,
                peer_group_id,
            })
            .await?
            .into_inner();
        return super::report::follow(context, updates, update_text).await;
    }
    let view = reporting
        .get_measure_view(api::GetMeasureViewRequest {
            ics_ods_code: ics,
            peer_group_id,
            as_of,
        })
        .await?
        .into_inner();
    if context.json() {
        return render::print_json(&view);
    }
    for line in measure_view_lines(&view) {
        outln!("{line}")?;
    }
    Ok(())
}

pub async fn series(
    context: &Context,
    reporting: &mut Reporting,
    ics: String,
    series: SeriesKey,
) -> anyhow::Result<()> {
    let chart = reporting
        .get_series_chart(api::GetSeriesChartRequest {
            ics_ods_code: ics,
            series: Some(series),
        })
        .await?
        .into_inner();
    print_series(context, &chart)
}

pub async fn peers(
    context: &Context,
    reporting: &mut Reporting,
    request: api::GetPeerComparisonRequest,
) -> anyhow::Result<()> {
    let comparison = reporting.get_peer_comparison(request).await?.into_inner();
    if context.json() {
        return render::print_json(&comparison);
    }
    for line in peer_comparison_lines(&comparison) {
        outln!("{line}")?;
    }
    Ok(())
}

pub async fn peer_change(
    context: &Context,
    reporting: &mut Reporting,
    request: api::GetPeerChangeRequest,
) -> anyhow::Result<()> {
    let change = reporting.get_peer_change(request).await?.into_inner();
    if context.json() {
        return render::print_json(&change);
    }
    for line in peer_change_lines(&change) {
        outln!("{line}")?;
    }
    Ok(())
}

/// The view as a heading, then one row per trust × measure.
pub fn measure_view_lines(view: &MeasureView) -> Vec<String> {
    let name = if view.name.is_empty() {
        format!("ICS {}", view.ics_ods_code)
    } else {
        format!("{} (ICS {})", view.name, view.ics_ods_code)
    };
    let mut lines = vec![format!(
        "{name} as of {}: {} series, {} observations; peer bands against {}",
        date_text(view.as_of.as_ref()),
        view.rows.len(),
        view.observations,
        peer_group_text(&view.peer_group_id, view.peer_group_version)
    )];
    if let Some(rule_set) = view.rows.iter().find_map(|row| row.rule_set.as_ref()) {
        lines.push(format!("rule set: {}", rule_set_text(Some(rule_set))));
    }
    let mut table = Table::new(&[
        ("trust", Align::Left),
        ("measure", Align::Left),
        ("latest period", Align::Left),
        ("latest", Align::Right),
        ("unit", Align::Left),
        ("points", Align::Right),
        ("variation", Align::Left),
        ("assurance", Align::Left),
        ("peer band", Align::Left),
    ]);
    for row in &view.rows {
        let has_data = row.points > 0;
        table.row(vec![
            row.ods_code.clone(),
            row.measure_code.clone(),
            date_text(row.latest_period_start.as_ref()),
            if has_data {
                scaled_text(row.latest_value, row.display_scale)
            } else {
                "-".to_owned()
            },
            row.unit.clone(),
            row.points.to_string(),
            variation_word(row.variation),
            assurance_word(row.assurance),
            peer_band_word(row.peer_band),
        ]);
    }
    lines.extend(table.lines());
    lines
}

/// One watched update: what happened, then the whole view again.
pub fn update_text(update: &MeasureViewUpdate) -> String {
    let event = if update.event_type.is_empty() {
        "initial"
    } else {
        update
            .event_type
            .strip_prefix("ics.events.v1.")
            .unwrap_or(&update.event_type)
    };
    match &update.view {
        Some(view) => format!("{event}:\n{}", measure_view_lines(view).join("\n")),
        None => format!("{event}: (no view)"),
    }
}

fn percent(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

/// A number as given, to at most four decimals.
fn number_text(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

pub fn peer_comparison_lines(comparison: &PeerComparison) -> Vec<String> {
    let mut lines = vec![
        format!(
            "{} across {}, period starting {}",
            comparison.measure_code,
            peer_group_text(&comparison.peer_group_id, comparison.peer_group_version),
            date_text(comparison.period_start.as_ref())
        ),
        format!(
            "peer proportion {}; phi {:.2}, tau² {}; over-dispersion {}",
            percent(comparison.target),
            comparison.phi,
            number_text(comparison.tau2),
            if comparison.overdispersion_applied {
                "allowed for"
            } else {
                "not needed"
            }
        ),
    ];
    let mut table = Table::new(&[
        ("trust", Align::Left),
        ("numerator", Align::Right),
        ("denominator", Align::Right),
        ("proportion", Align::Right),
        ("z", Align::Right),
        ("95% limits", Align::Right),
        ("99.8% limits", Align::Right),
        ("position", Align::Left),
        ("band", Align::Left),
    ]);
    for unit in &comparison.units {
        table.row(vec![
            unit.ods_code.clone(),
            number_text(unit.numerator),
            number_text(unit.denominator),
            percent(unit.proportion),
            format!("{:+.2}", unit.z_adjusted),
            format!("{}–{}", percent(unit.lower_95), percent(unit.upper_95)),
            format!("{}–{}", percent(unit.lower_998), percent(unit.upper_998)),
            unit.position.clone(),
            peer_band_word(unit.band),
        ]);
    }
    lines.extend(table.lines());
    lines
}

pub fn peer_change_lines(change: &PeerChange) -> Vec<String> {
    let z = change
        .z
        .map(|z| format!("z {z:+.2}"))
        .unwrap_or_else(|| "no z".to_owned());
    let mut lines = vec![
        format!(
            "{} at {}: changed {} against a peer mean change of {} ({z}): {}",
            change.measure_code,
            change.ods_code,
            signed(change.change),
            signed(change.peer_mean_change),
            if change.label.is_empty() {
                "-"
            } else {
                &change.label
            }
        ),
        format!(
            "peers: {}",
            peer_group_text(&change.peer_group_id, change.peer_group_version)
        ),
    ];
    let mut table = Table::new(&[
        ("trust", Align::Left),
        ("start", Align::Right),
        ("end", Align::Right),
        ("change", Align::Right),
    ]);
    for unit in &change.units {
        let marker = if unit.ods_code == change.ods_code {
            " *"
        } else {
            ""
        };
        table.row(vec![
            format!("{}{marker}", unit.ods_code),
            number_text(unit.start),
            number_text(unit.end),
            signed(unit.change),
        ]);
    }
    lines.extend(table.lines());
    lines
}

fn signed(value: f64) -> String {
    let text = number_text(value);
    if value > 0.0 && !text.starts_with('+') {
        format!("+{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::events::v1::{AssuranceIcon, SpcRuleSetVersion, VariationIcon};
    use ics_proto::reporting::v1::{FunnelUnit, MeasureRow, PeerBand, PeerUnitChange};

    fn date(year: i32, month: u32, day: u32) -> Option<Date> {
        Some(Date { year, month, day })
    }

    #[test]
    fn the_measure_view_has_a_row_per_trust_and_measure() {
        let view = MeasureView {
            ics_ods_code: "QWO".to_owned(),
            name: "NHS West Yorkshire ICB".to_owned(),
            as_of: date(2025, 1, 31),
            rows: vec![
                MeasureRow {
                    ods_code: "RR8".to_owned(),
                    measure_code: "FFT_POSITIVE".to_owned(),
                    unit: "%".to_owned(),
                    latest_period_start: date(2024, 12, 1),
                    latest_value: 0.9412,
                    points: 24,
                    variation: VariationIcon::CommonCause as i32,
                    assurance: AssuranceIcon::HitOrMiss as i32,
                    peer_band: PeerBand::AsExpected as i32,
                    display_scale: 100.0,
                    rule_set: Some(SpcRuleSetVersion {
                        name: "MDC".to_owned(),
                        version: "2.5".to_owned(),
                    }),
                    ..MeasureRow::default()
                },
                MeasureRow {
                    ods_code: "RAE".to_owned(),
                    measure_code: "REFERENCE_COST_INDEX".to_owned(),
                    unit: "index".to_owned(),
                    ..MeasureRow::default()
                },
            ],
            observations: 24,
            peer_group_id: String::new(),
            peer_group_version: 0,
        };
        let lines = measure_view_lines(&view);
        assert_eq!(
            lines[0],
            "NHS West Yorkshire ICB (ICS QWO) as of 2025-01-31: 2 series, 24 observations; \
             peer bands against the ICS's member trusts"
        );
        assert_eq!(lines[1], "rule set: MDC 2.5");
        assert!(lines[2].starts_with("trust  measure"), "{}", lines[2]);
        assert_eq!(
            lines[3],
            "RR8    FFT_POSITIVE          2024-12-01      94.12  %          24  common-cause  \
             hit-or-miss  as-expected"
        );
        assert!(
            lines[4].starts_with("RAE    REFERENCE_COST_INDEX  -                   -  index"),
            "{}",
            lines[4]
        );
        let update = MeasureViewUpdate {
            view: Some(view),
            event_type: "ics.events.v1.ObservationsRecorded".to_owned(),
            event_id: "e".to_owned(),
        };
        assert!(update_text(&update).starts_with("ObservationsRecorded:\nNHS West Yorkshire"));
    }

    #[test]
    fn peer_comparisons_show_limits_and_bands() {
        let comparison = PeerComparison {
            measure_code: "FFT_POSITIVE".to_owned(),
            peer_group_id: "pg-1".to_owned(),
            peer_group_version: 2,
            members: vec!["RR8".to_owned()],
            period_start: date(2024, 12, 1),
            target: 0.93,
            phi: 2.5,
            tau2: 0.0004,
            overdispersion_applied: true,
            units: vec![FunnelUnit {
                ods_code: "RR8".to_owned(),
                numerator: 912.0,
                denominator: 960.0,
                proportion: 0.95,
                z_adjusted: 1.234,
                lower_95: 0.91,
                upper_95: 0.95,
                lower_998: 0.9,
                upper_998: 0.96,
                position: "as expected".to_owned(),
                band: PeerBand::AsExpected as i32,
            }],
        };
        let lines = peer_comparison_lines(&comparison);
        assert_eq!(
            lines[0],
            "FFT_POSITIVE across peer group pg-1 (version 2), period starting 2024-12-01"
        );
        assert_eq!(
            lines[1],
            "peer proportion 93.00%; phi 2.50, tau² 0.0004; over-dispersion allowed for"
        );
        assert!(lines[3].contains("912          960      95.00%  +1.23  91.00%–95.00%"));
        assert!(lines[3].ends_with("as expected  as-expected"));
    }

    #[test]
    fn peer_change_marks_the_trust_judged() {
        let change = PeerChange {
            measure_code: "STAFF_LEAVER_RATE".to_owned(),
            ods_code: "RR8".to_owned(),
            peer_group_id: String::new(),
            peer_group_version: 0,
            units: vec![
                PeerUnitChange {
                    ods_code: "RR8".to_owned(),
                    start: 0.012,
                    end: 0.01,
                    change: -0.002,
                },
                PeerUnitChange {
                    ods_code: "RAE".to_owned(),
                    start: 0.011,
                    end: 0.0115,
                    change: 0.0005,
                },
            ],
            change: -0.002,
            peer_mean_change: -0.00075,
            z: Some(-0.8),
            label: "improved, not distinctly from peers".to_owned(),
        };
        let lines = peer_change_lines(&change);
        assert_eq!(
            lines[0],
            "STAFF_LEAVER_RATE at RR8: changed -0.002 against a peer mean change of -0.0008 \
             (z -0.80): improved, not distinctly from peers"
        );
        assert_eq!(lines[1], "peers: the ICS's member trusts");
        assert!(lines[3].starts_with("RR8 *"), "{}", lines[3]);
        assert!(lines[4].ends_with("+0.0005"), "{}", lines[4]);
    }
}
