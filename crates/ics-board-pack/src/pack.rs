//! The pack itself: the workshop outcomes as one HTML page a board member can open offline
//! (inline CSS and SVG, nothing fetched), or as CSV files of one table each, with an ICS's
//! measures.

use ics_proto::events::v1::{MetricKind, MetricUnit};
use ics_proto::reporting::v1::{BoardPackFile, KindOutcome, OutcomeGroup, Outcomes, Scope, scope};

use crate::measures::{self, MeasurePack};
use crate::outcomes::{
    CHECKPOINTS, DEFINITIONS, KINDS, checkpoint_label, find_checkpoint, find_kind, headline_table,
    kind_label, kinds_in_order, kinds_with_workshops, percent, reduction_text, scope_name,
    sustainment_text,
};
use crate::text::{checkpoint_days, date_text, metric_kind_word, metric_unit_word};
use ics_charts::escape;

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

/// The CSV table of the workshop outcomes, in every scope's pack.
pub const OUTCOMES_TABLE: &str = "outcomes";
/// The CSV table of an ICS's measures.
pub const MEASURES_TABLE: &str = "measures";

const HTML_CONTENT_TYPE: &str = "text/html; charset=utf-8";
const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8; header=present";

/// RFC 4180 quoting. Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first)
/// gets a leading apostrophe: names come from trusts' own systems and a board pack is opened in
/// Excel. Numbers are written by [`decimal_cell`] and never pass through here.
pub(crate) fn text_cell(text: &str) -> String {
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

/// A figure with a fixed number of decimals, so that no binary-fraction noise (`0.6199999…`)
/// reaches a spreadsheet; empty where there is no figure, which a `0` would misstate.
pub(crate) fn decimal_cell(value: Option<f64>, decimals: usize) -> String {
    let Some(value) = value.filter(|value| value.is_finite()) else {
        return String::new();
    };
    let text = format!("{value:.decimals$}");
    // A small negative figure rounds to `-0.00`, which reads as a loss that did not happen.
    if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text[1..].to_owned()
    } else {
        text
    }
}

/// Shares (reductions, the share sustained) to a hundredth of a percentage point.
const SHARE_DECIMALS: usize = 4;

/// Decimals of totals in an outcome's unit: hours and days to the hundredth (under a minute
/// and a quarter hour), minutes, counts and percentage points to the tenth.
fn unit_decimals(unit: i32) -> usize {
    match MetricUnit::try_from(unit) {
        Ok(MetricUnit::Minutes | MetricUnit::Count | MetricUnit::Percent) => 1,
        _ => 2,
    }
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

/// `board-pack-QWO-2025-01-31`: the scope and the date, for the pack's file names.
fn file_stem(outcomes: &Outcomes) -> String {
    let (_, scope_id) = scope_parts(outcomes);
    let as_of = outcomes
        .as_of
        .as_ref()
        .map(ics_proto::date::iso)
        .unwrap_or_default();
    // Only characters that are safe in a file name on any system: an ODS code, a UUID, a date.
    let safe = |text: &str| {
        text.chars()
            .filter(|character| character.is_ascii_alphanumeric() || *character == '-')
            .collect::<String>()
    };
    ["board-pack".to_owned(), safe(&scope_id), safe(&as_of)]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The pack as one HTML page (see [`html`]).
pub fn html_file(
    outcomes: &Outcomes,
    measures: Option<&MeasurePack>,
    generated_at: &str,
    notice: Option<&str>,
) -> BoardPackFile {
    BoardPackFile {
        file_name: format!("{}.html", file_stem(outcomes)),
        content_type: HTML_CONTENT_TYPE.to_owned(),
        content: html(outcomes, measures, generated_at, notice).into_bytes(),
        table: String::new(),
    }
}

/// The ICS whose measures a scope's pack holds: measure views are per ICS, so a programme's
/// pack has the outcomes only.
pub fn measures_ics(scope: Option<&Scope>) -> Option<&str> {
    match scope.and_then(|scope| scope.scope.as_ref()) {
        Some(scope::Scope::IcsOdsCode(ics)) => Some(ics),
        _ => None,
    }
}

/// The tables a scope's pack has in CSV: the outcomes, and an ICS's measures.
pub fn csv_tables(scope: Option<&Scope>) -> Vec<&'static str> {
    let mut tables = vec![OUTCOMES_TABLE];
    if measures_ics(scope).is_some() {
        tables.push(MEASURES_TABLE);
    }
    tables
}

/// One CSV file per table, in the order of [`csv_tables`]: the outcomes, then the measures when
/// given.
pub fn csv_files(outcomes: &Outcomes, measures: Option<&MeasurePack>) -> Vec<BoardPackFile> {
    let stem = file_stem(outcomes);
    let file = |table: &str, text: String| BoardPackFile {
        file_name: format!("{stem}-{table}.csv"),
        content_type: CSV_CONTENT_TYPE.to_owned(),
        content: text.into_bytes(),
        table: table.to_owned(),
    };
    let mut files = vec![file(OUTCOMES_TABLE, outcomes_csv(outcomes))];
    if let Some(measures) = measures {
        files.push(file(MEASURES_TABLE, measures::csv(measures)));
    }
    files
}

/// The outcomes table: a line per scope, trust and value stream and improvement kind. Kinds
/// without workshops have no totals or reductions (empty cells), and a checkpoint where nothing
/// was measured has no share.
pub fn outcomes_csv(outcomes: &Outcomes) -> String {
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
            ];
            let with_workshops = (outcome.workshops > 0).then_some(outcome);
            let total = |value: fn(&KindOutcome) -> f64| {
                decimal_cell(with_workshops.map(value), unit_decimals(outcome.unit))
            };
            let share = |value: fn(&KindOutcome) -> f64| {
                decimal_cell(with_workshops.map(value), SHARE_DECIMALS)
            };
            cells.extend([
                total(|outcome| outcome.baseline_total),
                total(|outcome| outcome.after_total),
                share(|outcome| outcome.pooled_reduction),
                share(|outcome| outcome.mean_reduction),
                share(|outcome| outcome.median_reduction),
                total(|outcome| outcome.absolute_reduction),
            ]);
            for checkpoint in CHECKPOINTS {
                let sustainment = find_checkpoint(outcome, checkpoint).copied();
                let sustainment = sustainment.unwrap_or_default();
                cells.push(sustainment.measured.to_string());
                cells.push(sustainment.sustained.to_string());
                cells.push(decimal_cell(
                    (sustainment.measured > 0).then_some(sustainment.share_sustained),
                    SHARE_DECIMALS,
                ));
                cells.push(sustainment.missed.to_string());
            }
            text.push_str(&cells.join(","));
            text.push_str("\r\n");
        }
    }
    text
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
table { border-collapse: collapse; margin: .5rem 0 1rem; max-width: 100%; }
section { overflow-x: auto; }
td { overflow-wrap: anywhere; }
td.icon svg { display: inline-block; width: 1.6rem; height: 1.6rem; margin: 0 .4rem 0 0;
  vertical-align: middle; }
.notice { background: #ffeb3b; color: #212b32; font-weight: 600; padding: .5rem .75rem; }
.stale { background: #fde8e6; color: #8a1f11; padding: .5rem .75rem; }
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

pub(crate) fn cell(text: &str, numeric: bool) -> String {
    if numeric {
        format!("<td class=\"num\">{}</td>", escape(text))
    } else {
        format!("<td>{}</td>", escape(text))
    }
}

pub(crate) fn heading_cells(headings: &[(&str, bool)]) -> String {
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
/// `notice` is the deployment's own word on its data (the demo's SAMPLE and SYNTHETIC label),
/// printed at the top of the page.
pub fn html(
    outcomes: &Outcomes,
    measures: Option<&MeasurePack>,
    generated_at: &str,
    notice: Option<&str>,
) -> String {
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
    if let Some(notice) = notice {
        html.push_str(&format!(
            "<p class=\"notice\" role=\"note\">{}</p>\n",
            escape(notice)
        ));
    }

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
    use crate::fixtures::{measure_pack, programme_outcomes};

    #[test]
    fn the_csv_has_a_header_and_a_row_per_group_and_kind() {
        let text = outcomes_csv(&programme_outcomes());
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
        // Hours to the hundredth, shares to four decimals: 1 − 1851 ÷ 4871 is 0.619995…
        assert_eq!(
            lines[1],
            "programme,p-1,NHS–Virginia Mason Institute partnership,2021-06-30,scope,p-1,\
             NHS–Virginia Mason Institute partnership,process-time,hours,82,4871.00,1851.00,\
             0.6200,0.5800,0.6000,3020.00,82,61,0.7439,0,82,54,0.6585,0,82,41,0.5000,0,\
             79,27,0.3418,3"
        );
        assert!(lines[2].contains(",scope,p-1,"));
        assert!(lines[2].contains(",error-count,count,54,3100.0,1023.0,0.6700,"));
        assert!(lines[3].contains(",error-rate,percent,90,1850.0,684.5,0.6300,"));
        assert!(lines[4].starts_with("programme,p-1,"));
        assert!(
            lines[4].contains(",trust,RTP,Surrey and Sussex Healthcare NHS Trust,process-time,")
        );
        // Without workshops there are no totals, reductions or shares: empty, not 0.
        assert!(
            lines[6].ends_with(
                ",trust,ZZ1,A&B <Trust>,process-time,hours,0,,,,,,,\
                 0,0,,0,0,0,,0,0,0,,0,0,0,,0"
            ),
            "{}",
            lines[6]
        );
        assert!(lines[7].contains(",trust,ZZ1,A&B <Trust>,error-rate,percent,5,100.0,104.0,"));
        assert!(lines[7].contains(",-0.0400,"), "a worsening stays negative");
        assert!(
            lines[8].contains(",trust,RCF,Airedale NHS Foundation Trust,error-count,count,0,,")
        );
        assert!(
            lines[9].contains(",value_stream,0190a1b2-vs,\"Discharge, \"\"fast\"\" (sample)\",")
        );
        assert_eq!(
            lines.len(),
            11,
            "10 rows and the empty string after the last CRLF"
        );
        assert_eq!(lines[10], "");
        assert!(!text.contains("999999"), "no float noise: {text}");
    }

    #[test]
    fn csv_text_that_a_spreadsheet_would_run_is_defused() {
        assert_eq!(text_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(text_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text_cell("Leeds"), "Leeds");
    }

    #[test]
    fn figures_have_fixed_decimals_and_no_figure_is_an_empty_cell() {
        assert_eq!(decimal_cell(Some(-0.04), 2), "-0.04");
        assert_eq!(decimal_cell(Some(0.1 + 0.2), 4), "0.3000");
        assert_eq!(decimal_cell(Some(-0.0001), 2), "0.00");
        assert_eq!(decimal_cell(Some(-0.4), 0), "0");
        assert_eq!(decimal_cell(Some(3020.0), 2), "3020.00");
        assert_eq!(decimal_cell(None, 2), "");
        assert_eq!(decimal_cell(Some(f64::NAN), 2), "");
        assert_eq!(unit_decimals(MetricUnit::Hours as i32), 2);
        assert_eq!(unit_decimals(MetricUnit::Count as i32), 1);
    }

    #[test]
    fn the_html_page_shows_the_headline_charts_and_escapes_every_name() {
        let page = html(&programme_outcomes(), None, "2025-01-31 12:00 UTC", None);
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
        let page = html(&outcomes, None, "now", None);
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
        let pack = measure_pack();
        let page = html(&ics_outcomes(), Some(&pack), "2025-01-31 12:00 UTC", None);
        assert!(page.contains("<section><h2>Measures</h2>"));
        assert!(page.contains(
            "<tr><td>RR8</td><td>Leeds &lt;Teaching&gt;</td>\
             <td>Friends and Family Test: % positive</td><td>2023-09-01</td>\
             <td class=\"num\">80.00 %</td><td class=\"num\">21</td><td class=\"icon\"><svg"
        ));
        // Each icon with its meaning in words beside it.
        assert!(page.contains(
            "<span>special cause concern (low values)</span></td><td class=\"icon\"><svg"
        ));
        assert!(page.contains(
            "<span>consistently failing the target</span></td><td>worse than peers</td></tr>"
        ));
        assert!(page.contains(
            "<td>RAE</td><td>Bradford</td><td>Reference cost index</td><td>-</td>\
             <td class=\"num\">-</td><td class=\"num\">0</td><td>-</td><td>-</td><td>-</td>"
        ));
        // Three outcome charts, an XmR chart per series, one funnel plot, and two icons (variation
        // and assurance) for each of the two rows with an analysis.
        assert_eq!(page.matches("<svg ").count(), 3 + 2 + 1 + 2 * 2);
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
        assert!(!html(&programme_outcomes(), None, "now", None).contains("<h2>Measures</h2>"));
    }

    #[test]
    fn a_measure_view_without_rows_says_so_and_draws_nothing() {
        let pack = MeasurePack::default();
        let page = html(&ics_outcomes(), Some(&pack), "now", None);
        assert!(page.contains("No measure has data for this ICS's trusts."));
        assert_eq!(page.matches("<svg ").count(), 3);
    }

    #[test]
    fn the_csv_of_an_ics_is_one_file_per_table() {
        let pack = measure_pack();
        let outcomes = ics_outcomes();
        assert_eq!(
            csv_tables(outcomes.scope.as_ref()),
            [OUTCOMES_TABLE, MEASURES_TABLE]
        );
        assert_eq!(
            csv_tables(programme_outcomes().scope.as_ref()),
            [OUTCOMES_TABLE]
        );
        assert_eq!(measures_ics(outcomes.scope.as_ref()), Some("QWO"));
        assert_eq!(measures_ics(None), None);
        let files = csv_files(&outcomes, Some(&pack));
        let names: Vec<(&str, &str)> = files
            .iter()
            .map(|file| (file.table.as_str(), file.file_name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("outcomes", "board-pack-QWO-2021-06-30-outcomes.csv"),
                ("measures", "board-pack-QWO-2021-06-30-measures.csv"),
            ]
        );
        assert_eq!(files[0].content, outcomes_csv(&outcomes).into_bytes());
        assert_eq!(files[1].content, measures::csv(&pack).into_bytes());
        assert!(
            files[1]
                .content
                .starts_with(b"scope_type,scope_id,scope_name,as_of,ods_code,")
        );
        for file in &files {
            assert_eq!(file.content_type, "text/csv; charset=utf-8; header=present");
            let text = String::from_utf8(file.content.clone()).expect("UTF-8");
            assert!(!text.contains("\r\n\r\n"), "one table, no blank line");
        }
        // A programme's pack has no measures.
        let programme = csv_files(&programme_outcomes(), None);
        assert_eq!(programme.len(), 1);
        assert_eq!(
            programme[0].file_name,
            "board-pack-p-1-2021-06-30-outcomes.csv"
        );
    }

    #[test]
    fn the_html_file_is_named_by_scope_and_date() {
        let file = html_file(&ics_outcomes(), None, "now", None);
        assert_eq!(file.file_name, "board-pack-QWO-2021-06-30.html");
        assert_eq!(file.content_type, "text/html; charset=utf-8");
        assert!(file.table.is_empty());
        assert_eq!(
            file.content,
            html(&ics_outcomes(), None, "now", None).into_bytes()
        );
        let odd = Outcomes {
            scope: Some(ics_proto::reporting::v1::Scope {
                scope: Some(scope::Scope::IcsOdsCode("../Q W".to_owned())),
            }),
            ..Outcomes::default()
        };
        assert_eq!(
            html_file(&odd, None, "now", None).file_name,
            "board-pack-QW.html"
        );
    }

    #[test]
    fn the_generated_time_is_escaped_too() {
        assert!(html(&Outcomes::default(), None, "<now>", None).contains("generated &lt;now&gt;"));
        assert_eq!(escape("a'b\"c"), "a&apos;b&quot;c");
    }

    #[test]
    fn the_pack_carries_the_notice_the_icons_and_a_warning_when_its_data_is_old() {
        let pack = crate::fixtures::measure_pack();
        let page = html(
            &ics_outcomes(),
            Some(&pack),
            "now",
            Some("SAMPLE data for demonstration only"),
        );
        assert!(
            page.contains(
                "<p class=\"notice\" role=\"note\">SAMPLE data for demonstration only</p>"
            )
        );
        assert!(
            page.contains("<td class=\"icon\"><svg"),
            "the icons are drawn"
        );
        assert!(
            page.contains("<title>Variation: "),
            "each icon is named in words"
        );
        let newest = crate::newest_period(&pack.view.rows.iter().collect::<Vec<_>>());
        let as_of = pack.view.as_of.as_ref().and_then(ics_proto::date::to_naive);
        if let (Some(newest), Some(as_of)) = (newest, as_of) {
            assert_eq!(
                page.contains("these figures are not current"),
                crate::staleness(newest, as_of).0
            );
        }
    }
}
