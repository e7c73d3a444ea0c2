//! The measures part of an ICS's board pack: a table of each member trust × measure (latest
//! figure, Making Data Count variation and assurance icons, band against the peers), an XmR
//! chart of every series and a funnel plot of every proportion measure.
//!
//! Nothing is analysed here: the reporting service gives each series with the SPC analysis it
//! made of it ([`SeriesChart`]), and each comparison with its funnel ([`PeerFunnel`]), so that a
//! chart always shows the service's icons and limits. Values are analysed on the stored scale
//! (a proportion as 0–1) and only multiplied by the measure's display scale for drawing.

use ics_peers::Funnel;
use ics_proto::events::v1::{MeasureScoring, SpcSeries};
use ics_proto::reporting::v1::{MeasureRow, MeasureView, PeerBand, PeerComparison};
use ics_spc::{Analysis, Limits, PartitionSummary, PointResult};

use ics_charts::escape;

use crate::pack::{cell, decimal_cell, heading_cells, text_cell};
use crate::text::{
    assurance_word, date_text, display_scale, peer_band_word, peer_group_text, rule_set_text,
    scaled_text, variation_word,
};

/// What the reporting service gives of an ICS's measures, ready to be laid out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeasurePack {
    /// Each member trust × measure (organisation-level series only).
    pub view: MeasureView,
    /// The series behind the view's rows that have data, in the view's order. Only the HTML
    /// page draws them.
    pub charts: Vec<SeriesChart>,
    /// A funnel plot of each proportion measure with enough peers, by measure code. Only the
    /// HTML page draws them.
    pub comparisons: Vec<PeerFunnel>,
}

/// A series as the API gives it, and the analysis its SPC came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesChart {
    pub series: SpcSeries,
    /// On the stored scale, as the service made it.
    pub analysis: Analysis,
}

/// A peer comparison as the API gives it, and the funnel it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerFunnel {
    pub comparison: PeerComparison,
    pub funnel: Funnel,
}

/// Whether the board pack has a funnel plot of this series' measure.
pub fn is_proportion(series: &SpcSeries) -> bool {
    series
        .measure
        .as_ref()
        .is_some_and(|measure| measure.scoring == MeasureScoring::Proportion as i32)
}

/// Plain words for a variation icon, as the charts' captions word it.
pub fn variation_text(icon: i32) -> String {
    match ics_measures::variation_icon(icon) {
        Some(icon) => ics_charts::variation_text(icon).to_owned(),
        None if icon == 0 => "-".to_owned(),
        // A newer server's icon: its name rather than nothing.
        None => variation_word(icon),
    }
}

/// Plain words for an assurance icon; `-` when there is none (no target, or no limits).
pub fn assurance_text(icon: i32) -> String {
    match ics_measures::assurance_icon(icon) {
        Some(icon) => ics_charts::assurance_text(icon).to_owned(),
        None if icon == 0 => "-".to_owned(),
        None => assurance_word(icon),
    }
}

/// A peer band in words; `-` when there is none (not a proportion, too few peers, no data).
pub fn peer_band_text(band: i32) -> String {
    match PeerBand::try_from(band) {
        Ok(PeerBand::Better) => "better than peers".to_owned(),
        Ok(PeerBand::AsExpected) => "as expected".to_owned(),
        Ok(PeerBand::Worse) => "worse than peers".to_owned(),
        Ok(PeerBand::Unspecified) => "-".to_owned(),
        Err(_) => peer_band_word(band),
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
        // The Making Data Count icon boards recognise, with its meaning in words beside it.
        html.push_str(&icon_cell(
            ics_measures::variation_icon(row.variation).map(ics_charts::variation_icon),
            &variation_text(row.variation),
        ));
        html.push_str(&icon_cell(
            ics_measures::assurance_icon(row.assurance).map(ics_charts::assurance_icon),
            &assurance_text(row.assurance),
        ));
        html.push_str(&cell(&peer_band_text(row.peer_band), false));
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

fn icon_cell(icon: Option<String>, words: &str) -> String {
    match icon {
        Some(icon) => format!(
            "<td class=\"icon\">{}<span>{}</span></td>",
            inline(&icon),
            escape(words)
        ),
        None => format!("<td>{}</td>", escape(words)),
    }
}

/// The end of the newest period any row holds (its start where it has no end): what a measures
/// page or pack says its data runs to.
pub fn newest_period(rows: &[&MeasureRow]) -> Option<chrono::NaiveDate> {
    rows.iter()
        .filter_map(|row| {
            row.latest_period_end
                .as_ref()
                .or(row.latest_period_start.as_ref())
                .and_then(ics_proto::date::to_naive)
        })
        .max()
}

/// Data older than this (from the view's date) is flagged as not current.
pub const STALE_AFTER_DAYS: i64 = 90;

/// Whether data running to `newest` is stale on `as_of`, and how many days old it is.
pub fn staleness(newest: chrono::NaiveDate, as_of: chrono::NaiveDate) -> (bool, i64) {
    let age = (as_of - newest).num_days();
    (age > STALE_AFTER_DAYS, age)
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

/// Drops the SVG namespace declaration: an HTML parser puts an inline `<svg>` in the SVG
/// namespace by itself, and the page then names no URL at all.
fn inline(svg: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

fn xmr_html(view: &MeasureView, chart: &SeriesChart) -> String {
    let series = &chart.series;
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
    let analysis = scaled(chart.analysis.clone(), display_scale(measure.display_scale));
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

/// A funnel plot of one comparison, with its heading and a note of its limits (the board pack's
/// and the dashboard's).
pub fn funnel_html(view: &MeasureView, peer_funnel: &PeerFunnel) -> String {
    let PeerFunnel { comparison, funnel } = peer_funnel;
    let name = view
        .rows
        .iter()
        .find(|row| row.measure_code == comparison.measure_code)
        .map(measure_name)
        .unwrap_or(&comparison.measure_code)
        .to_owned();
    let title = format!(
        "{name}: period starting {}",
        date_text(comparison.period_start.as_ref())
    );
    let mut html = format!("<h3>{}</h3>", escape(&title));
    html.push_str(&format!(
        "<p class=\"note\">{} trusts; pooled proportion {}%; 95% and 99.8% limits{}.</p>",
        funnel.units.len(),
        scaled_text(funnel.target, 100.0),
        if funnel.overdispersion_applied {
            ", widened for over-dispersion"
        } else {
            ""
        }
    ));
    html.push_str(&inline(&ics_charts::funnel_plot(&ics_charts::FunnelPlot {
        title: &title,
        funnel,
        highlight: None,
    })));
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
        escape(&peer_group_text(
            &view.peer_group_id,
            view.peer_group_version
        ))
    ));
    let rows: Vec<&MeasureRow> = view.rows.iter().collect();
    if let (Some(newest), Some(as_of)) = (
        newest_period(&rows),
        view.as_of.as_ref().and_then(ics_proto::date::to_naive),
    ) {
        let (stale, age) = staleness(newest, as_of);
        html.push_str(&if stale {
            format!(
                "<p class=\"stale\" role=\"note\">The newest data runs to {}, {} months before \
                 this pack's date: these figures are not current.</p>",
                escape(&newest.format("%-d %B %Y").to_string()),
                age / 30
            )
        } else {
            format!(
                "<p class=\"note\">The newest data runs to {}.</p>",
                escape(&newest.format("%-d %B %Y").to_string())
            )
        });
    }
    html.push_str(&table_html(view));
    html.push_str("</section>\n");

    if !pack.charts.is_empty() {
        html.push_str("<section><h2>Measure charts</h2>");
        html.push_str(
            "<p class=\"note\">XmR charts: each month's value, the mean and the process limits \
             (dashed); coloured points are special causes (blue improvement, orange concern, \
             purple neither).</p>",
        );
        for chart in &pack.charts {
            html.push_str(&xmr_html(view, chart));
        }
        html.push_str("</section>\n");
    }
    if !pack.comparisons.is_empty() {
        html.push_str("<section><h2>Compared with peers</h2>");
        html.push_str(&format!(
            "<p class=\"note\">Funnel plots of the proportion measures across {}, for the \
             latest period with data from at least two of them.</p>",
            escape(&peer_group_text(
                &view.peer_group_id,
                view.peer_group_version
            ))
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

/// Decimals of a measure's values on the stored scale: two once multiplied by its display
/// scale, as people read them (a proportion shown as a percentage keeps four).
fn stored_decimals(scale: f64) -> usize {
    // A display scale is 1 or a power of ten in practice; a fractional one adds no decimals.
    2 + scale.log10().round().clamp(0.0, 12.0) as usize
}

/// The view as a CSV table of its own: a header, then a row per trust × measure with the
/// stored value and the display scale as well as their product. A series without data has
/// empty cells, never a `0`.
pub fn csv(pack: &MeasurePack) -> String {
    let view = &pack.view;
    let mut text = CSV_COLUMNS.join(",");
    text.push_str("\r\n");
    for row in &view.rows {
        let latest = (row.points > 0).then_some(row.latest_value);
        let scale = display_scale(row.display_scale);
        let stored = stored_decimals(scale);
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
            decimal_cell(latest, stored),
            // As configured (1, 100): a factor, not a measurement.
            scale.to_string(),
            decimal_cell(latest.map(|value| value * scale), 2),
            row.points.to_string(),
            word_cell(variation_word, row.variation),
            word_cell(assurance_word, row.assurance),
            decimal_cell(row.target, stored),
            word_cell(peer_band_word, row.peer_band),
            text_cell(&optional_date(row.peer_period_start.as_ref())),
            row.rule_set
                .as_ref()
                .filter(|rule_set| !rule_set.name.is_empty())
                .map(|rule_set| text_cell(&rule_set_text(Some(rule_set))))
                .unwrap_or_default(),
        ];
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{falling_series, measure_pack};
    use ics_proto::events::v1::{AssuranceIcon, VariationIcon};

    #[test]
    fn the_services_analysis_is_drawn_in_display_units_with_its_icons() {
        let chart = falling_series("RR8");
        let analysis = scaled(chart.analysis.clone(), 100.0);
        assert_eq!(analysis.variation, Some(ics_spc::VariationIcon::ConcernLow));
        // The fall widens the limits past the 95% target.
        assert_eq!(analysis.assurance, Some(ics_spc::AssuranceIcon::HitOrMiss));
        let last = analysis.points.last().expect("points");
        assert!((last.value - 80.0).abs() < 1e-9, "{}", last.value);
        let limits = last.limits.expect("limits");
        assert!(limits.lower_process_limit > 80.0 && limits.mean > 90.0);
        assert_eq!(analysis.target, Some(95.0));
        // Classifications stay those of the stored scale.
        assert_eq!(
            analysis.points.last().map(|point| point.classification),
            chart
                .analysis
                .points
                .last()
                .map(|point| point.classification)
        );
        assert_eq!(scaled(chart.analysis.clone(), 1.0), chart.analysis);
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
    fn the_measure_csv_has_fixed_decimals_and_empty_cells_without_data() {
        let text = csv(&measure_pack());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "ics,QWO,NHS West Yorkshire ICB,2025-01-31,RR8,Leeds <Teaching>,FFT_POSITIVE,\
             Friends and Family Test: % positive,%,2023-09-01,,0.8000,100,80.00,21,concern-low,\
             fail,0.9500,worse,2023-09-01,mdc-sql 2.5"
        );
        assert!(lines[2].contains(",0.9412,100,94.12,21,"), "{}", lines[2]);
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

    #[test]
    fn stored_values_keep_two_decimals_after_scaling_and_no_float_noise() {
        assert_eq!(stored_decimals(1.0), 2);
        assert_eq!(stored_decimals(100.0), 4);
        assert_eq!(stored_decimals(0.5), 2);
        let mut pack = measure_pack();
        pack.view.rows[0].latest_value = 0.1 + 0.2;
        let text = csv(&pack);
        assert!(text.contains(",0.3000,100,30.00,"), "{text}");
        assert!(!text.contains("0.30000000000000004"));
    }
}
