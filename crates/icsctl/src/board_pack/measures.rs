//! The measures part of an ICS's board pack: a table of each member trust × measure (latest
//! figure, Making Data Count variation and assurance icons, band against the peers), an XmR
//! chart of every series and a funnel plot of every proportion measure.
//!
//! The reporting service sends each series with its points already analysed; the chart crate
//! draws an [`ics_spc::Analysis`], so the analysis is run again here from the same points,
//! ghosting, partition marks, target, direction and rule set — the inputs the service used, so
//! the same icons come out. Values are analysed on the stored scale (a proportion as 0–1), as
//! the service does, and only then multiplied by the measure's display scale for drawing.
//! Funnel plots are rebuilt the same way from the comparison's numerators and denominators.

use ics_proto::events::v1::{
    AssuranceIcon, ImprovementDirection, MeasureScoring, SpcSeries, VariationIcon,
};
use ics_proto::reporting::v1::{MeasureRow, MeasureView, PeerBand, PeerComparison};
use ics_spc::{Analysis, Limits, PartitionSummary, PointResult};

use super::{cell, escape, heading_cells, number_cell, text_cell};
use crate::render::{date_text, display_scale, rule_set_text, scaled_text, variation_word};

/// What the reporting service gave for an ICS's measures, ready to be laid out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeasurePack {
    /// Each member trust × measure (organisation-level series only).
    pub view: MeasureView,
    /// The series behind the view's rows that have data, in the view's order.
    pub charts: Vec<SpcSeries>,
    /// A funnel plot's data for each proportion measure with enough peers, by measure code.
    pub comparisons: Vec<PeerComparison>,
}

/// Whether the board pack should ask for a funnel plot of this series' measure.
pub fn is_proportion(series: &SpcSeries) -> bool {
    series
        .measure
        .as_ref()
        .is_some_and(|measure| measure.scoring == MeasureScoring::Proportion as i32)
}

/// Plain words for a variation icon, as the charts' captions word it.
pub fn variation_text(icon: i32) -> String {
    use ics_spc::VariationIcon as Spc;
    let icon = match VariationIcon::try_from(icon) {
        Ok(VariationIcon::CommonCause) => Spc::CommonCause,
        Ok(VariationIcon::ImprovementHigh) => Spc::ImprovementHigh,
        Ok(VariationIcon::ImprovementLow) => Spc::ImprovementLow,
        Ok(VariationIcon::ConcernHigh) => Spc::ConcernHigh,
        Ok(VariationIcon::ConcernLow) => Spc::ConcernLow,
        Ok(VariationIcon::NeitherHigh) => Spc::NeitherHigh,
        Ok(VariationIcon::NeitherLow) => Spc::NeitherLow,
        Ok(VariationIcon::Unspecified) => return "-".to_owned(),
        // A newer server's icon: its name rather than nothing.
        Err(_) => return variation_word(icon),
    };
    ics_charts::variation_text(icon).to_owned()
}

/// Plain words for an assurance icon; `-` when there is none (no target, or no limits).
pub fn assurance_text(icon: i32) -> String {
    use ics_spc::AssuranceIcon as Spc;
    let icon = match AssuranceIcon::try_from(icon) {
        Ok(AssuranceIcon::Pass) => Spc::Pass,
        Ok(AssuranceIcon::Fail) => Spc::Fail,
        Ok(AssuranceIcon::HitOrMiss) => Spc::HitOrMiss,
        Ok(AssuranceIcon::Unspecified) => return "-".to_owned(),
        Err(_) => return crate::render::assurance_word(icon),
    };
    ics_charts::assurance_text(icon).to_owned()
}

/// A peer band in words; `-` when there is none (not a proportion, too few peers, no data).
pub fn peer_band_text(band: i32) -> String {
    match PeerBand::try_from(band) {
        Ok(PeerBand::Better) => "better than peers".to_owned(),
        Ok(PeerBand::AsExpected) => "as expected".to_owned(),
        Ok(PeerBand::Worse) => "worse than peers".to_owned(),
        Ok(PeerBand::Unspecified) => "-".to_owned(),
        Err(_) => crate::render::peer_band_word(band),
    }
}

/// The latest figure as people read it: `94.12 %`; `-` without data.
pub fn latest_text(row: &MeasureRow) -> String {
    if row.points == 0 {
        return "-".to_owned();
    }
    let value = scaled_text(row.latest_value, row.display_scale);
    if row.unit.is_empty() {
        value
    } else {
        format!("{value} {}", row.unit)
    }
}

fn measure_name(row: &MeasureRow) -> &str {
    if row.measure_name.is_empty() {
        &row.measure_code
    } else {
        &row.measure_name
    }
}

fn peers_text(view: &MeasureView) -> String {
    if view.peer_group_id.is_empty() {
        "the ICS's member trusts".to_owned()
    } else {
        format!(
            "peer group {} (version {})",
            view.peer_group_id, view.peer_group_version
        )
    }
}

/// The organisation's name as the view gives it, else its ODS code.
fn organisation_label(view: &MeasureView, ods_code: &str) -> String {
    view.rows
        .iter()
        .find(|row| row.ods_code == ods_code && !row.organisation_name.is_empty())
        .map(|row| format!("{} ({ods_code})", row.organisation_name))
        .unwrap_or_else(|| ods_code.to_owned())
}

/// The table of trusts × measures.
fn table_html(view: &MeasureView) -> String {
    let mut html = String::from("<table class=\"detail measures\"><thead><tr>");
    html.push_str(&heading_cells(&[
        ("Trust", false),
        ("Name", false),
        ("Measure", false),
        ("Latest period", false),
        ("Latest", true),
        ("Points", true),
        ("Variation", false),
        ("Assurance", false),
        ("Peer band", false),
    ]));
    html.push_str("</tr></thead><tbody>");
    for row in &view.rows {
        html.push_str("<tr>");
        html.push_str(&cell(&row.ods_code, false));
        html.push_str(&cell(&row.organisation_name, false));
        html.push_str(&cell(measure_name(row), false));
        html.push_str(&cell(&date_text(row.latest_period_start.as_ref()), false));
        html.push_str(&cell(&latest_text(row), true));
        html.push_str(&cell(&row.points.to_string(), true));
        html.push_str(&cell(&variation_text(row.variation), false));
        html.push_str(&cell(&assurance_text(row.assurance), false));
        html.push_str(&cell(&peer_band_text(row.peer_band), false));
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

/// The points as the service analysed them: value, ghosting, partition marks.
fn spc_points(series: &SpcSeries) -> Vec<ics_spc::Point> {
    series
        .points
        .iter()
        .map(|point| {
            let mut spc = if point.ghosted {
                ics_spc::Point::ghost(point.value)
            } else {
                ics_spc::Point::new(point.value)
            };
            if point.recalculate_from {
                spc = spc.recalculate();
            }
            if point.baseline_points > 0 {
                spc = spc.with_baseline(point.baseline_points as usize);
            }
            spc
        })
        .collect()
}

fn scaled_limits(limits: Limits, factor: f64) -> Limits {
    Limits {
        mean: limits.mean * factor,
        average_moving_range: limits.average_moving_range * factor,
        upper_process_limit: limits.upper_process_limit * factor,
        lower_process_limit: limits.lower_process_limit * factor,
        upper_two_sigma: limits.upper_two_sigma * factor,
        lower_two_sigma: limits.lower_two_sigma * factor,
        upper_one_sigma: limits.upper_one_sigma * factor,
        lower_one_sigma: limits.lower_one_sigma * factor,
    }
}

/// The analysis in display units. Classifications and icons are those of the stored scale:
/// multiplying afterwards, rather than analysing multiplied values, cannot move a point that
/// sits exactly on a line to the other side of it.
fn scaled(analysis: Analysis, factor: f64) -> Analysis {
    if factor == 1.0 {
        return analysis;
    }
    Analysis {
        target: analysis.target.map(|target| target * factor),
        points: analysis
            .points
            .into_iter()
            .map(|point| PointResult {
                value: point.value * factor,
                mean: point.mean.map(|mean| mean * factor),
                limits: point.limits.map(|limits| scaled_limits(limits, factor)),
                ..point
            })
            .collect(),
        partitions: analysis
            .partitions
            .into_iter()
            .map(|partition| PartitionSummary {
                mean: partition.mean.map(|mean| mean * factor),
                limits: partition.limits.map(|limits| scaled_limits(limits, factor)),
                ..partition
            })
            .collect(),
        ..analysis
    }
}

/// The series' analysis as the service made it, in display units.
pub fn analysis(series: &SpcSeries) -> Analysis {
    let measure = series.measure.clone().unwrap_or_default();
    let analysis = ics_spc::analyse(
        &spc_points(series),
        ics_measures::direction(&measure),
        series.target,
        &ics_measures::rule_set(&measure),
    );
    scaled(analysis, display_scale(measure.display_scale))
}

/// Drops the SVG namespace declaration: an HTML parser puts an inline `<svg>` in the SVG
/// namespace by itself, and the page then names no URL at all.
fn inline(svg: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

fn xmr_html(view: &MeasureView, series: &SpcSeries) -> String {
    let key = series.series.clone().unwrap_or_default();
    let measure = series.measure.clone().unwrap_or_default();
    let name = if measure.name.is_empty() {
        key.measure_code.clone()
    } else {
        measure.name.clone()
    };
    let title = format!("{name} — {}", organisation_label(view, &key.ods_code));
    // The heading names the trust in full; the chart's own title stays short enough to show.
    let chart_title = format!("{name} — {}", key.ods_code);
    let labels: Vec<String> = series
        .points
        .iter()
        .map(|point| date_text(point.period_start.as_ref()))
        .collect();
    let analysis = analysis(series);
    let svg = ics_charts::xmr_chart(&ics_charts::XmrChart {
        title: &chart_title,
        unit: &measure.unit,
        labels: &labels,
        analysis: &analysis,
        target: analysis.target,
    });
    let mut html = format!("<h3>{}</h3>", escape(&title));
    html.push_str(&format!(
        "<p class=\"note\">{}; assurance: {}; rule set {}.</p>",
        escape(&capitalised(&variation_text(series.variation))),
        escape(&assurance_text(series.assurance)),
        escape(&rule_set_text(series.rule_set.as_ref()))
    ));
    html.push_str(&inline(&svg));
    html
}

fn capitalised(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

fn peers_direction(direction: i32) -> ics_peers::Direction {
    match ImprovementDirection::try_from(direction) {
        Ok(ImprovementDirection::Increase) => ics_peers::Direction::Increase,
        Ok(ImprovementDirection::Decrease) => ics_peers::Direction::Decrease,
        _ => ics_peers::Direction::Neither,
    }
}

/// A funnel plot of one comparison, or a note when its units do not make one.
fn funnel_html(view: &MeasureView, comparison: &PeerComparison) -> String {
    let row = view
        .rows
        .iter()
        .find(|row| row.measure_code == comparison.measure_code);
    let name = row
        .map(measure_name)
        .unwrap_or(&comparison.measure_code)
        .to_owned();
    let direction = peers_direction(row.map(|row| row.direction).unwrap_or(0));
    let title = format!(
        "{name}: period starting {}",
        date_text(comparison.period_start.as_ref())
    );
    let mut html = format!("<h3>{}</h3>", escape(&title));
    let units: Vec<ics_peers::FunnelUnit> = comparison
        .units
        .iter()
        .map(|unit| ics_peers::FunnelUnit::new(&unit.ods_code, unit.numerator, unit.denominator))
        .collect();
    match ics_peers::funnel(&units, direction) {
        Ok(funnel) => {
            html.push_str(&format!(
                "<p class=\"note\">{} trusts; pooled proportion {}%; 95% and 99.8% limits{}.</p>",
                comparison.units.len(),
                scaled_text(funnel.target, 100.0),
                if funnel.overdispersion_applied {
                    ", widened for over-dispersion"
                } else {
                    ""
                }
            ));
            html.push_str(&inline(&ics_charts::funnel_plot(&ics_charts::FunnelPlot {
                title: &title,
                funnel: &funnel,
                highlight: None,
            })));
        }
        Err(error) => html.push_str(&format!(
            "<p class=\"note\">No funnel plot: {}.</p>",
            escape(&error.to_string())
        )),
    }
    html
}

/// The measures sections of the page.
pub fn html(pack: &MeasurePack) -> String {
    let view = &pack.view;
    let mut html = String::from("<section><h2>Measures</h2>");
    if view.rows.is_empty() {
        html.push_str("<p class=\"note\">No measure has data for this ICS's trusts.</p>");
        html.push_str("</section>\n");
        return html;
    }
    html.push_str(&format!(
        "<p class=\"note\">The latest figure of each series of the ICS's trusts as of {}, its \
         Making Data Count icons (rule set {}), and its band against {} (proportions only: \
         outside the funnel plot's 95% limits on the good or the bad side, or within them).</p>",
        escape(&date_text(view.as_of.as_ref())),
        escape(&rule_set_text(
            view.rows.iter().find_map(|row| row.rule_set.as_ref())
        )),
        escape(&peers_text(view))
    ));
    html.push_str(&table_html(view));
    html.push_str("</section>\n");

    if !pack.charts.is_empty() {
        html.push_str("<section><h2>Measure charts</h2>");
        html.push_str(
            "<p class=\"note\">XmR charts: each month's value, the mean and the process limits \
             (dashed); coloured points are special causes (blue improvement, orange concern, \
             purple neither).</p>",
        );
        for series in &pack.charts {
            html.push_str(&xmr_html(view, series));
        }
        html.push_str("</section>\n");
    }
    if !pack.comparisons.is_empty() {
        html.push_str("<section><h2>Compared with peers</h2>");
        html.push_str(&format!(
            "<p class=\"note\">Funnel plots of the proportion measures across {}, for the \
             latest period with data from at least two of them.</p>",
            escape(&peers_text(view))
        ));
        for comparison in &pack.comparisons {
            html.push_str(&funnel_html(view, comparison));
        }
        html.push_str("</section>\n");
    }
    html
}

const CSV_COLUMNS: [&str; 21] = [
    "scope_type",
    "scope_id",
    "scope_name",
    "as_of",
    "ods_code",
    "organisation_name",
    "measure_code",
    "measure_name",
    "unit",
    "latest_period_start",
    "latest_period_end",
    "latest_value",
    "display_scale",
    "latest_display_value",
    "points",
    "variation",
    "assurance",
    "target",
    "peer_band",
    "peer_period_start",
    "rule_set",
];

fn optional_date(date: Option<&ics_proto::events::v1::Date>) -> String {
    date.map(ics_proto::date::iso).unwrap_or_default()
}

/// An enum's word, or an empty cell when it is unset.
fn word_cell(word: fn(i32) -> String, number: i32) -> String {
    if number == 0 {
        String::new()
    } else {
        text_cell(&word(number))
    }
}

/// The view as a CSV table of its own: a header, then a row per trust × measure with every
/// figure unformatted (the stored value and the display scale as well as their product).
pub fn csv(pack: &MeasurePack) -> String {
    let view = &pack.view;
    let mut text = CSV_COLUMNS.join(",");
    text.push_str("\r\n");
    for row in &view.rows {
        let has_data = row.points > 0;
        let scale = display_scale(row.display_scale);
        let cells = [
            text_cell("ics"),
            text_cell(&view.ics_ods_code),
            text_cell(&view.name),
            text_cell(&optional_date(view.as_of.as_ref())),
            text_cell(&row.ods_code),
            text_cell(&row.organisation_name),
            text_cell(&row.measure_code),
            text_cell(&row.measure_name),
            text_cell(&row.unit),
            text_cell(&optional_date(row.latest_period_start.as_ref())),
            text_cell(&optional_date(row.latest_period_end.as_ref())),
            if has_data {
                number_cell(row.latest_value)
            } else {
                String::new()
            },
            number_cell(scale),
            if has_data {
                number_cell(row.latest_value * scale)
            } else {
                String::new()
            },
            row.points.to_string(),
            word_cell(crate::render::variation_word, row.variation),
            word_cell(crate::render::assurance_word, row.assurance),
            row.target.map(number_cell).unwrap_or_default(),
            word_cell(crate::render::peer_band_word, row.peer_band),
            text_cell(&optional_date(row.peer_period_start.as_ref())),
            text_cell(&rule_set_text(row.rule_set.as_ref())),
        ];
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ics_proto::events::v1::{
        Date, MeasureDefinition, SeriesKey, SpcConflictRule, SpcPoint, SpcRuleSet,
        SpcRuleSetVersion,
    };
    use ics_proto::reporting::v1::FunnelUnit;

    fn month(offset: u32) -> Option<Date> {
        Some(Date {
            year: 2022 + (offset / 12) as i32,
            month: offset % 12 + 1,
            day: 1,
        })
    }

    fn fft() -> MeasureDefinition {
        crate::reference_measures::definitions()
            .into_iter()
            .find(|definition| definition.code == "FFT_POSITIVE")
            .expect("FFT_POSITIVE is a reference measure")
    }

    /// Twenty months around 93% and a last one at 80%: a special cause concern.
    pub fn falling_series(ods_code: &str) -> SpcSeries {
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
        SpcSeries {
            series: Some(SeriesKey {
                measure_code: "FFT_POSITIVE".to_owned(),
                ods_code: ods_code.to_owned(),
                value_stream_id: String::new(),
            }),
            measure: Some(fft()),
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
        }
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

    pub fn pack() -> MeasurePack {
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
            comparisons: vec![PeerComparison {
                measure_code: "FFT_POSITIVE".to_owned(),
                period_start: month(20),
                units: vec![
                    FunnelUnit {
                        ods_code: "RR8".to_owned(),
                        numerator: 800.0,
                        denominator: 1000.0,
                        ..FunnelUnit::default()
                    },
                    FunnelUnit {
                        ods_code: "RAE".to_owned(),
                        numerator: 1412.0,
                        denominator: 1500.0,
                        ..FunnelUnit::default()
                    },
                ],
                ..PeerComparison::default()
            }],
        }
    }

    #[test]
    fn the_local_analysis_gives_the_services_icons_in_display_units() {
        let series = falling_series("RR8");
        let analysis = analysis(&series);
        assert_eq!(analysis.variation, Some(ics_spc::VariationIcon::ConcernLow));
        // The fall widens the limits past the 95% target.
        assert_eq!(analysis.assurance, Some(ics_spc::AssuranceIcon::HitOrMiss));
        let last = analysis.points.last().expect("points");
        assert!((last.value - 80.0).abs() < 1e-9, "{}", last.value);
        let limits = last.limits.expect("limits");
        assert!(limits.lower_process_limit > 80.0 && limits.mean > 90.0);
        assert_eq!(analysis.target, Some(95.0));

        // Ghosting and partition marks are carried over.
        let mut marked = falling_series("RR8");
        marked.points[10].recalculate_from = true;
        marked.points[10].baseline_points = 5;
        marked.points[3].ghosted = true;
        let points = spc_points(&marked);
        assert!(points[3].ghosted && points[10].recalculate_from);
        assert_eq!(points[10].baseline.map(|baseline| baseline.points), Some(5));
    }

    #[test]
    fn a_rule_set_with_concern_winning_is_honoured() {
        let mut series = falling_series("RR8");
        if let Some(measure) = series.measure.as_mut() {
            measure.rule_set = SpcRuleSet::NhsrPlotthedots as i32;
            measure.conflict_rule = SpcConflictRule::Concern as i32;
        }
        assert_eq!(
            analysis(&series).rules.name,
            "nhsr-plotthedots/concern-wins"
        );
    }

    #[test]
    fn icons_and_bands_read_as_words() {
        assert_eq!(
            variation_text(VariationIcon::ConcernLow as i32),
            "special cause concern (low values)"
        );
        assert_eq!(variation_text(0), "-");
        assert_eq!(
            assurance_text(AssuranceIcon::HitOrMiss as i32),
            "hit and miss (target within the process limits)"
        );
        assert_eq!(assurance_text(0), "-");
        assert_eq!(peer_band_text(PeerBand::Worse as i32), "worse than peers");
        assert_eq!(peer_band_text(0), "-");
    }

    #[test]
    fn the_measure_csv_is_a_table_of_unformatted_figures() {
        let text = csv(&pack());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "ics,QWO,NHS West Yorkshire ICB,2025-01-31,RR8,Leeds <Teaching>,FFT_POSITIVE,\
             Friends and Family Test: % positive,%,2023-09-01,,0.8,100,80,21,concern-low,fail,\
             0.95,worse,2023-09-01,mdc-sql 2.5"
        );
        assert!(
            lines[3].ends_with(
                ",REFERENCE_COST_INDEX,Reference cost index,index,,,,1,,0,,,,,,mdc-sql 2.5"
            ),
            "{}",
            lines[3]
        );
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[4], "");
    }
}
