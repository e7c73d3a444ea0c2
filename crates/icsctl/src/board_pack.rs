//! Board packs: the workshop outcomes as a CSV of every figure, or as one HTML page a board
//! member can open offline (inline CSS and SVG, nothing fetched). Pure functions of the
//! [`Outcomes`] message — and, for an ICS, of its measures ([`MeasurePack`]: a trust × measure
//! table, XmR charts and funnel plots) — so that what a board reads can be tested without a
//! server.

mod measures;

pub use measures::{MeasurePack, is_proportion};

use ics_proto::events::v1::MetricKind;
use ics_proto::reporting::v1::{KindOutcome, OutcomeGroup, Outcomes, scope};

use crate::outcomes::{
    CHECKPOINTS, DEFINITIONS, KINDS, checkpoint_label, find_checkpoint, find_kind, headline_table,
    kind_label, kinds_in_order, kinds_with_workshops, percent, reduction_text, scope_name,
    sustainment_text,
};
use crate::render::{checkpoint_days, date_text, metric_kind_word, metric_unit_word};

/// `ics` or `programme`, and the ODS code or programme id.
fn scope_parts(outcomes: &Outcomes) -> (&'static str, String) {
    match outcomes
        .scope
        .as_ref()
        .and_then(|scope| scope.scope.as_ref())
    {
        Some(scope::Scope::IcsOdsCode(ics)) => ("ics", ics.clone()),
        Some(scope::Scope::ProgrammeId(programme)) => ("programme", programme.clone()),
        None => ("", String::new()),
    }
}

/// RFC 4180 quoting. Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first)
/// gets a leading apostrophe: names come from trusts' own systems and a board pack is opened in
/// Excel. Numbers are written by [`number_cell`] and never pass through here.
fn text_cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// Shortest text that reads back as the same number: nothing rounded away for the analyst.
fn number_cell(number: f64) -> String {
    number.to_string()
}

fn csv_header() -> Vec<String> {
    let mut header: Vec<String> = [
        "scope_type",
        "scope_id",
        "scope_name",
        "as_of",
        "level",
        "key",
        "name",
        "improvement_kind",
        "unit",
        "workshops",
        "baseline_total",
        "after_total",
        "pooled_reduction",
        "mean_reduction",
        "median_reduction",
        "absolute_reduction",
    ]
    .iter()
    .map(|name| (*name).to_owned())
    .collect();
    for checkpoint in CHECKPOINTS {
        let days = checkpoint_days(checkpoint as i32);
        header.push(format!("measured_{days}"));
        header.push(format!("sustained_{days}"));
        header.push(format!("share_sustained_{days}"));
        header.push(format!("missed_{days}"));
    }
    header
}

/// One line per scope, trust and value stream and improvement kind, every figure unformatted.
/// An ICS's measures follow as a second table of their own, after a blank line.
pub fn csv(outcomes: &Outcomes, measures: Option<&MeasurePack>) -> String {
    let mut text = outcomes_csv(outcomes);
    if let Some(measures) = measures {
        text.push_str("\r\n");
        text.push_str(&measures::csv(measures));
    }
    text
}

fn outcomes_csv(outcomes: &Outcomes) -> String {
    let (scope_type, scope_id) = scope_parts(outcomes);
    let name = scope_name(outcomes);
    let as_of = date_text(outcomes.as_of.as_ref());
    let scope_group = OutcomeGroup {
        key: scope_id.clone(),
        name: name.clone(),
        kinds: outcomes.headline.clone(),
    };
    let levels = std::iter::once(("scope", &scope_group))
        .chain(outcomes.by_trust.iter().map(|group| ("trust", group)))
        .chain(
            outcomes
                .by_value_stream
                .iter()
                .map(|group| ("value_stream", group)),
        );

    let mut text = csv_header().join(",");
    text.push_str("\r\n");
    for (level, group) in levels {
        for outcome in kinds_in_order(&group.kinds) {
            let mut cells = vec![
                text_cell(scope_type),
                text_cell(&scope_id),
                text_cell(&name),
                text_cell(&as_of),
                text_cell(level),
                text_cell(&group.key),
                text_cell(&group.name),
                text_cell(&metric_kind_word(outcome.kind)),
                text_cell(&metric_unit_word(outcome.unit)),
                outcome.workshops.to_string(),
                number_cell(outcome.baseline_total),
                number_cell(outcome.after_total),
                number_cell(outcome.pooled_reduction),
                number_cell(outcome.mean_reduction),
                number_cell(outcome.median_reduction),
                number_cell(outcome.absolute_reduction),
            ];
            for checkpoint in CHECKPOINTS {
                let sustainment = find_checkpoint(outcome, checkpoint).copied();
                let sustainment = sustainment.unwrap_or_default();
                cells.push(sustainment.measured.to_string());
                cells.push(sustainment.sustained.to_string());
                cells.push(number_cell(sustainment.share_sustained));
                cells.push(sustainment.missed.to_string());
            }
            text.push_str(&cells.join(","));
            text.push_str("\r\n");
        }
    }
    text
}

/// Text for HTML element content and attribute values alike (SVG included).
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

const STYLE: &str = "
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif;
  color: #212b32; background: #fff; max-width: 980px; margin: 2rem auto; padding: 0 1rem;
  line-height: 1.45; }
h1 { font-size: 1.7rem; margin: 0 0 .2rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 2px solid #005eb8;
  padding-bottom: .2rem; }
.subtitle { color: #4c6272; margin: 0; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid #d8dde0; padding: .35rem .7rem; text-align: left;
  vertical-align: top; }
th { background: #f0f4f5; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
table.headline td { font-size: 1.15rem; }
table.detail { font-size: .9rem; }
.note { color: #4c6272; font-size: .9rem; }
svg { display: block; max-width: 100%; height: auto; margin: .5rem 0 1rem; }
svg text { font-family: inherit; }
svg text:not([fill]) { fill: #212b32; }
h3 { font-size: 1.05rem; margin: 1.5rem 0 .2rem; }
dl dt { font-weight: 600; margin-top: .5rem; }
dl dd { margin: 0; }
footer { margin-top: 2.5rem; padding-top: .5rem; border-top: 1px solid #d8dde0;
  color: #4c6272; font-size: .85rem; }
@media print {
  body { margin: 0; max-width: none; }
  section { break-inside: avoid; }
}
";

fn cell(text: &str, numeric: bool) -> String {
    if numeric {
        format!("<td class=\"num\">{}</td>", escape(text))
    } else {
        format!("<td>{}</td>", escape(text))
    }
}

fn heading_cells(headings: &[(&str, bool)]) -> String {
    headings
        .iter()
        .map(|(heading, numeric)| {
            if *numeric {
                format!("<th class=\"num\" scope=\"col\">{}</th>", escape(heading))
            } else {
                format!("<th scope=\"col\">{}</th>", escape(heading))
            }
        })
        .collect()
}

fn headline_html(outcomes: &Outcomes) -> String {
    // The same cells as the terminal's table, so that both always agree.
    let table = headline_table(&outcomes.headline);
    let mut html = String::from("<table class=\"headline\"><thead><tr>");
    html.push_str(&heading_cells(&[
        ("Improvement kind", false),
        ("Workshops", true),
        ("Reduction", false),
    ]));
    html.push_str("</tr></thead><tbody>");
    for row in table.rows() {
        html.push_str("<tr>");
        for (index, text) in row.iter().enumerate() {
            html.push_str(&cell(text, index == 1));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

fn groups_html(groups: &[OutcomeGroup], first_heading: &str, with_key: bool) -> String {
    let mut headings = vec![(first_heading, false)];
    if with_key {
        headings.push(("Name", false));
    }
    headings.extend([
        ("Improvement kind", false),
        ("Workshops", true),
        ("Reduction", false),
        ("Mean", true),
        ("Median", true),
    ]);
    let checkpoint_headings: Vec<String> = CHECKPOINTS
        .iter()
        .map(|checkpoint| format!("Sustained {}", checkpoint_label(*checkpoint as i32)))
        .collect();
    headings.extend(
        checkpoint_headings
            .iter()
            .map(|heading| (heading.as_str(), false)),
    );
    let mut html = String::from("<table class=\"detail\"><thead><tr>");
    html.push_str(&heading_cells(&headings));
    html.push_str("</tr></thead><tbody>");
    for group in groups {
        let kinds = kinds_with_workshops(&group.kinds);
        if kinds.is_empty() {
            html.push_str("<tr>");
            if with_key {
                html.push_str(&cell(&group.key, false));
            }
            html.push_str(&cell(&group.name, false));
            html.push_str(&format!(
                "<td colspan=\"{}\" class=\"note\">no workshops</td></tr>",
                5 + CHECKPOINTS.len()
            ));
            continue;
        }
        for outcome in kinds {
            html.push_str("<tr>");
            if with_key {
                html.push_str(&cell(&group.key, false));
            }
            html.push_str(&cell(&group.name, false));
            html.push_str(&cell(&kind_label(outcome.kind), false));
            html.push_str(&cell(&outcome.workshops.to_string(), true));
            html.push_str(&cell(&reduction_text(Some(outcome)), false));
            html.push_str(&cell(&percent(outcome.mean_reduction), true));
            html.push_str(&cell(&percent(outcome.median_reduction), true));
            for checkpoint in CHECKPOINTS {
                html.push_str(&cell(
                    &sustainment_text(find_checkpoint(outcome, checkpoint)),
                    false,
                ));
            }
            html.push_str("</tr>");
        }
    }
    html.push_str("</tbody></table>");
    html
}

// Geometry of the charts, in SVG user units (the SVG scales down on narrow screens).
const CHART_WIDTH: f64 = 760.0;
const LEFT: f64 = 12.0;
const BAR_WIDTH: f64 = 470.0;
const ROW_HEIGHT: f64 = 42.0;
const TOP: f64 = 34.0;
const SUSTAIN_BAR_HEIGHT: f64 = 80.0;
const BAR_COLOUR: &str = "#005eb8";
const POOLED_COLOUR: &str = "#d5281b";
const SUSTAIN_COLOUR: &str = "#007f3b";

/// A reduction as a bar length: a worsening draws no bar (its label says so), and nothing
/// reaches past 100%.
fn bar_length(share: f64) -> f64 {
    if share.is_finite() {
        share.clamp(0.0, 1.0) * BAR_WIDTH
    } else {
        0.0
    }
}

fn value_label(outcome: &KindOutcome) -> String {
    let noun = if outcome.workshops == 1 {
        "workshop"
    } else {
        "workshops"
    };
    format!(
        "{} · {} {noun}",
        reduction_text(Some(outcome)),
        outcome.workshops
    )
}

/// Horizontal bars of each trust's pooled reduction with the scope's pooled line, then the
/// scope's sustainment at each follow-up as a small group of columns.
fn kind_chart(
    index: usize,
    kind: MetricKind,
    scope_label: &str,
    scope_outcome: &KindOutcome,
    trusts: &[(&OutcomeGroup, &KindOutcome)],
) -> String {
    let rows_height = ROW_HEIGHT * trusts.len() as f64;
    let axis_y = TOP + rows_height + 6.0;
    let sustain_top = axis_y + 52.0;
    let sustain_base = sustain_top + 22.0 + SUSTAIN_BAR_HEIGHT;
    let height = sustain_base + 44.0;
    let title = format!(
        "{}: pooled reduction by trust, and sustainment at follow-up",
        kind_label(kind as i32)
    );
    let mut svg = format!(
        "<svg viewBox=\"0 0 {CHART_WIDTH} {height:.0}\" width=\"{CHART_WIDTH}\" \
         height=\"{height:.0}\" role=\"img\" aria-labelledby=\"chart-{index}-title\">\
         <title id=\"chart-{index}-title\">{}</title>",
        escape(&title)
    );

    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let x = LEFT + bar_length(tick);
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{TOP:.1}\" x2=\"{x:.1}\" y2=\"{axis_y:.1}\" \
             stroke=\"#d8dde0\" stroke-width=\"1\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            axis_y + 14.0,
            escape(&percent(tick))
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{LEFT:.1}\" y=\"{:.1}\" font-size=\"11\">reduction (pooled)</text>",
        axis_y + 30.0
    ));

    // The scope's line goes under the bars and names, so that it never hides a figure.
    let pooled_x = LEFT + bar_length(scope_outcome.pooled_reduction);
    let label_x = pooled_x.clamp(LEFT + 120.0, LEFT + BAR_WIDTH);
    svg.push_str(&format!(
        "<line x1=\"{pooled_x:.1}\" y1=\"{:.1}\" x2=\"{pooled_x:.1}\" y2=\"{axis_y:.1}\" \
         stroke=\"{POOLED_COLOUR}\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>\
         <text x=\"{label_x:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" \
         fill=\"{POOLED_COLOUR}\">{}</text>",
        TOP - 16.0,
        TOP - 20.0,
        escape(&format!(
            "{scope_label}, pooled: {}",
            reduction_text(Some(scope_outcome))
        ))
    ));

    // Figures sit in a column of their own right of the bars, clear of the scope's line.
    let figures_x = LEFT + BAR_WIDTH + 14.0;
    for (row, (group, outcome)) in trusts.iter().enumerate() {
        let y = TOP + ROW_HEIGHT * row as f64;
        let length = bar_length(outcome.pooled_reduction);
        svg.push_str(&format!(
            "<text x=\"{LEFT:.1}\" y=\"{:.1}\" font-size=\"13\" stroke=\"#fff\" \
             stroke-width=\"3\" paint-order=\"stroke\">{}</text>\
             <rect x=\"{LEFT:.1}\" y=\"{:.1}\" width=\"{length:.1}\" height=\"16\" \
             fill=\"{BAR_COLOUR}\"/>\
             <text x=\"{figures_x:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            y + 13.0,
            escape(&format!("{} ({})", group.name, group.key)),
            y + 19.0,
            y + 32.0,
            escape(&value_label(outcome))
        ));
    }

    svg.push_str(&format!(
        "<text x=\"{LEFT:.1}\" y=\"{sustain_top:.1}\" font-size=\"13\" font-weight=\"600\">{}</text>",
        escape(&format!(
            "Sustained at follow-up, {scope_label}: share of measurements at or better than target"
        ))
    ));
    for (column, checkpoint) in CHECKPOINTS.iter().enumerate() {
        let sustainment = find_checkpoint(scope_outcome, *checkpoint)
            .copied()
            .unwrap_or_default();
        let x = LEFT + 20.0 + 120.0 * column as f64;
        let share = if sustainment.measured == 0 || !sustainment.share_sustained.is_finite() {
            0.0
        } else {
            sustainment.share_sustained.clamp(0.0, 1.0)
        };
        let bar_height = share * SUSTAIN_BAR_HEIGHT;
        let share_text = if sustainment.measured == 0 {
            "-".to_owned()
        } else {
            percent(sustainment.share_sustained)
        };
        let counts = if sustainment.missed == 0 {
            format!("{} of {}", sustainment.sustained, sustainment.measured)
        } else {
            format!(
                "{} of {}, {} missed",
                sustainment.sustained, sustainment.measured, sustainment.missed
            )
        };
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"48\" height=\"{SUSTAIN_BAR_HEIGHT:.1}\" \
             fill=\"#f0f4f5\"/>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"48\" height=\"{bar_height:.1}\" \
             fill=\"{SUSTAIN_COLOUR}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            sustain_base - SUSTAIN_BAR_HEIGHT,
            sustain_base - bar_height,
            x + 24.0,
            sustain_base - SUSTAIN_BAR_HEIGHT - 6.0,
            escape(&share_text),
            x + 24.0,
            sustain_base + 16.0,
            escape(&checkpoint_label(*checkpoint as i32)),
            x + 24.0,
            sustain_base + 31.0,
            escape(&counts),
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn kind_section(index: usize, kind: MetricKind, outcomes: &Outcomes, scope_label: &str) -> String {
    let mut html = format!(
        "<section><h2>{}</h2>",
        escape(&capitalised(&kind_label(kind as i32)))
    );
    let scope_outcome = find_kind(&outcomes.headline, kind).filter(|outcome| outcome.workshops > 0);
    let Some(scope_outcome) = scope_outcome else {
        html.push_str("<p class=\"note\">No workshops of this kind in this scope.</p></section>");
        return html;
    };
    let trusts: Vec<(&OutcomeGroup, &KindOutcome)> = outcomes
        .by_trust
        .iter()
        .filter_map(|group| {
            find_kind(&group.kinds, kind)
                .filter(|outcome| outcome.workshops > 0)
                .map(|outcome| (group, outcome))
        })
        .collect();
    html.push_str(&kind_chart(
        index,
        kind,
        scope_label,
        scope_outcome,
        &trusts,
    ));
    html.push_str("</section>");
    html
}

fn capitalised(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

/// One self-contained page: the headline, per-trust figures, a chart per improvement kind, an
/// ICS's measures when given, and the definitions. `generated_at` is printed as given, so that
/// the caller owns the clock.
pub fn html(outcomes: &Outcomes, measures: Option<&MeasurePack>, generated_at: &str) -> String {
    let name = scope_name(outcomes);
    let as_of = date_text(outcomes.as_of.as_ref());
    let (scope_type, scope_id) = scope_parts(outcomes);
    let scope_label = match scope_type {
        "ics" => "ICS",
        "programme" => "programme",
        _ => "scope",
    };
    let mut html =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str(&format!(
        "<title>{} — workshop outcomes as of {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&name),
        escape(&as_of)
    ));
    html.push_str(&format!(
        "<header><h1>{}</h1><p class=\"subtitle\">Improvement workshop outcomes as of {} · {} {}</p></header>\n",
        escape(&name),
        escape(&as_of),
        escape(scope_label),
        escape(&scope_id)
    ));

    html.push_str("<section><h2>Headline</h2>");
    html.push_str(&headline_html(outcomes));
    html.push_str(
        "<p class=\"note\">Reduction is pooled: 1 − Σ after ÷ Σ baseline over every metric of \
         the kind. Definitions are at the end of this page.</p></section>\n",
    );

    if !outcomes.by_trust.is_empty() {
        html.push_str("<section><h2>By trust</h2>");
        html.push_str(&groups_html(&outcomes.by_trust, "Trust", true));
        html.push_str("</section>\n");
    }
    for (index, kind) in KINDS.iter().enumerate() {
        html.push_str(&kind_section(index, *kind, outcomes, scope_label));
        html.push('\n');
    }
    if !outcomes.by_value_stream.is_empty() {
        html.push_str("<section><h2>By value stream</h2>");
        html.push_str(&groups_html(
            &outcomes.by_value_stream,
            "Value stream",
            false,
        ));
        html.push_str("</section>\n");
    }
    if let Some(measures) = measures {
        html.push_str(&measures::html(measures));
    }

    html.push_str("<section><h2>Definitions</h2><dl>");
    for (term, definition) in DEFINITIONS {
        html.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>",
            escape(term),
            escape(definition)
        ));
    }
    html.push_str("</dl></section>\n");
    html.push_str(&format!(
        "<footer>Source: ICS improvement platform, generated {}</footer>\n</body>\n</html>\n",
        escape(generated_at)
    ));
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::tests::programme_outcomes;

    #[test]
    fn the_csv_has_a_header_and_a_row_per_group_and_kind() {
        let text = csv(&programme_outcomes(), None);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "scope_type,scope_id,scope_name,as_of,level,key,name,improvement_kind,unit,\
             workshops,baseline_total,after_total,pooled_reduction,mean_reduction,\
             median_reduction,absolute_reduction,\
             measured_30,sustained_30,share_sustained_30,missed_30,\
             measured_60,sustained_60,share_sustained_60,missed_60,\
             measured_90,sustained_90,share_sustained_90,missed_90,\
             measured_365,sustained_365,share_sustained_365,missed_365"
        );
        let pooled = 1.0 - 1851.0 / 4871.0;
        assert_eq!(
            lines[1],
            format!(
                "programme,p-1,NHS–Virginia Mason Institute partnership,2021-06-30,scope,p-1,\
                 NHS–Virginia Mason Institute partnership,process-time,hours,82,4871,1851,\
                 {pooled},0.58,0.6,3020,82,61,{},0,82,54,{},0,82,41,{},0,79,27,{},3",
                61.0 / 82.0,
                54.0 / 82.0,
                41.0 / 82.0,
                27.0 / 79.0
            )
        );
        assert!(lines[2].contains(",scope,p-1,") && lines[2].contains(",error-count,count,54,"));
        assert!(lines[3].contains(",error-rate,percent,90,1850,684.5,"));
        assert!(lines[4].starts_with("programme,p-1,"));
        assert!(
            lines[4].contains(",trust,RTP,Surrey and Sussex Healthcare NHS Trust,process-time,")
        );
        assert!(lines[6].contains(",trust,ZZ1,A&B <Trust>,process-time,hours,0,0,0,"));
        assert!(lines[7].contains(",trust,ZZ1,A&B <Trust>,error-rate,percent,5,100,104,"));
        assert!(lines[8].contains(",trust,RCF,Airedale NHS Foundation Trust,error-count,count,0,"));
        assert!(
            lines[9].contains(",value_stream,0190a1b2-vs,\"Discharge, \"\"fast\"\" (sample)\",")
        );
        assert_eq!(
            lines.len(),
            11,
            "10 rows and the empty string after the last CRLF"
        );
        assert_eq!(lines[10], "");
    }

    #[test]
    fn csv_text_that_a_spreadsheet_would_run_is_defused() {
        assert_eq!(text_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(text_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text_cell("Leeds"), "Leeds");
        assert_eq!(number_cell(-0.04), "-0.04");
    }

    #[test]
    fn the_html_page_shows_the_headline_charts_and_escapes_every_name() {
        let page = html(&programme_outcomes(), None, "2025-01-31 12:00 UTC");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains(
            "<title>NHS–Virginia Mason Institute partnership — workshop outcomes as of \
             2021-06-30</title>"
        ));
        for figure in [
            "<td>process time</td><td class=\"num\">82</td><td>62% = 3,020 hours</td>",
            "<td>total errors</td><td class=\"num\">54</td><td>67%</td>",
            "<td>error rate</td><td class=\"num\">90</td><td>63%</td>",
        ] {
            assert!(page.contains(figure), "{figure}");
        }
        assert_eq!(page.matches("<svg ").count(), 3, "one chart per kind");
        assert!(page.contains("programme, pooled: 62% = 3,020 hours"));
        assert!(page.contains("Sustained at follow-up"));
        assert!(page.contains("A&amp;B &lt;Trust&gt;"));
        assert!(!page.contains("A&B"));
        assert!(!page.contains("<Trust>"));
        assert!(page.contains("Discharge, &quot;fast&quot; (sample)"));
        assert!(page.contains(
            "<td>RCF</td><td>Airedale NHS Foundation Trust</td><td colspan=\"9\" \
             class=\"note\">no workshops</td>"
        ));
        assert!(page.contains("Source: ICS improvement platform, generated 2025-01-31 12:00 UTC"));
        assert!(page.contains("1 − Σ after ÷ Σ baseline"));
        // Offline: nothing is fetched.
        for external in [
            "http:", "https:", "<link", "<script", "<img", "url(", "@import",
        ] {
            assert!(!page.contains(external), "{external}");
        }
    }

    #[test]
    fn a_kind_without_workshops_says_so_instead_of_drawing() {
        let mut outcomes = programme_outcomes();
        outcomes
            .headline
            .retain(|outcome| outcome.kind != MetricKind::ErrorCount as i32);
        let page = html(&outcomes, None, "now");
        assert_eq!(page.matches("<svg ").count(), 2);
        assert!(page.contains("No workshops of this kind in this scope."));
        assert!(page.contains("<td>total errors</td><td class=\"num\">0</td><td>-</td>"));
    }

    fn ics_outcomes() -> Outcomes {
        Outcomes {
            scope: Some(ics_proto::reporting::v1::Scope {
                scope: Some(scope::Scope::IcsOdsCode("QWO".to_owned())),
            }),
            ..programme_outcomes()
        }
    }

    #[test]
    fn an_ics_pack_has_a_measure_table_an_xmr_chart_per_series_and_a_funnel_per_proportion() {
        let pack = measures::tests::pack();
        let page = html(&ics_outcomes(), Some(&pack), "2025-01-31 12:00 UTC");
        assert!(page.contains("<section><h2>Measures</h2>"));
        assert!(page.contains(
            "<tr><td>RR8</td><td>Leeds &lt;Teaching&gt;</td>\
             <td>Friends and Family Test: % positive</td><td>2023-09-01</td>\
             <td class=\"num\">80.00 %</td><td class=\"num\">21</td>\
             <td>special cause concern (low values)</td>\
             <td>consistently failing the target</td><td>worse than peers</td></tr>"
        ));
        assert!(page.contains(
            "<td>RAE</td><td>Bradford</td><td>Reference cost index</td><td>-</td>\
             <td class=\"num\">-</td><td class=\"num\">0</td><td>-</td><td>-</td><td>-</td>"
        ));
        // Three outcome charts, an XmR chart per series and one funnel plot.
        assert_eq!(page.matches("<svg ").count(), 3 + 2 + 1);
        assert!(page.contains(
            "<h3>Friends and Family Test: % positive — Leeds &lt;Teaching&gt; (RR8)</h3>"
        ));
        assert!(
            page.contains(
                "<h3>Friends and Family Test: % positive: period starting 2023-09-01</h3>"
            )
        );
        assert!(page.contains(
            "Special cause concern (low values); assurance: hit and miss (target within the \
             process limits); rule set mdc-sql 2.5."
        ));
        // The measures come before the definitions, and the page still fetches nothing: the
        // charts' only references are to their own clip paths.
        let measures_at = page.find("<h2>Measures</h2>").expect("measures");
        assert!(measures_at < page.find("<h2>Definitions</h2>").expect("definitions"));
        for external in [
            "http:", "https:", "<link", "<script", "<img", "<image", "@import",
        ] {
            assert!(!page.contains(external), "{external}");
        }
        assert_eq!(page.matches("url(").count(), page.matches("url(#").count());
        // Without measures (a programme's pack) the page is as before.
        assert!(!html(&programme_outcomes(), None, "now").contains("<h2>Measures</h2>"));
    }

    #[test]
    fn a_measure_view_without_rows_says_so_and_draws_nothing() {
        let pack = MeasurePack::default();
        let page = html(&ics_outcomes(), Some(&pack), "now");
        assert!(page.contains("No measure has data for this ICS's trusts."));
        assert_eq!(page.matches("<svg ").count(), 3);
    }

    #[test]
    fn the_csv_of_an_ics_adds_its_measures_as_a_second_table() {
        let pack = measures::tests::pack();
        let outcomes = ics_outcomes();
        let text = csv(&outcomes, Some(&pack));
        let alone = csv(&outcomes, None);
        let (first, second) = text.split_once("\r\n\r\n").expect("a blank line");
        assert_eq!(format!("{first}\r\n"), alone);
        assert_eq!(second, measures::csv(&pack));
        assert!(second.starts_with("scope_type,scope_id,scope_name,as_of,ods_code,"));
        assert_eq!(
            second.split("\r\n").count(),
            5,
            "a header, three rows, the end"
        );
    }

    #[test]
    fn the_generated_time_is_escaped_too() {
        assert!(html(&Outcomes::default(), None, "<now>").contains("generated &lt;now&gt;"));
        assert_eq!(escape("a'b\"c"), "a&#39;b&quot;c");
    }
}
