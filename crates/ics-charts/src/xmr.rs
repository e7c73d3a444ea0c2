//! The Making Data Count XmR chart.

use std::collections::HashSet;

use ics_spc::{Analysis, AssuranceIcon, Classification, Limits, PointResult, VariationIcon};

use crate::palette;
use crate::svg::{
    Axis, Extent, Frame, IdHasher, Key, Text, document, format_tick, format_value, legend, num,
    truncate, x_axis_line, y_axis, y_axis_title,
};

/// Above this many points only special-cause points get a marker (and no point
/// gets a tooltip): thousands of grey dots are unreadable and bloat the pack.
pub const MARKER_LIMIT: usize = 200;

/// Above this many points the data line keeps, per pixel column, only the first,
/// lowest, highest and last point: the drawn shape is unchanged and the path stays
/// a few kilobytes whatever the series length.
const DECIMATE_ABOVE: usize = 1000;

/// Longest x-axis label drawn, in characters.
const MAX_LABEL: usize = 16;

const FRAME: Frame = Frame {
    width: 720.0,
    height: 404.0,
    left: 72.0,
    right: 704.0,
    top: 44.0,
    bottom: 316.0,
};

/// What to draw on an XmR chart.
#[derive(Debug, Clone, Copy)]
pub struct XmrChart<'a> {
    /// Chart title (the measure's name); also the SVG's accessible name.
    pub title: &'a str,
    /// Unit of the values (e.g. `%`, `days`); labels the y axis. May be empty.
    pub unit: &'a str,
    /// One label per point (e.g. ISO dates), in the analysis's point order. Missing
    /// labels are left blank; extra ones are ignored.
    pub labels: &'a [String],
    /// The analysis to draw.
    pub analysis: &'a Analysis,
    /// Target line, if any (usually the analysis's own target); a non-finite target
    /// is not drawn.
    pub target: Option<f64>,
}

/// Renders an XmR chart as a self-contained SVG document.
///
/// Never panics: an empty analysis gives an empty, labelled chart; non-finite
/// values are skipped (the line breaks there); a flat series is centred.
#[must_use]
pub fn xmr_chart(chart: &XmrChart<'_>) -> String {
    let analysis = chart.analysis;
    let points = analysis.points.as_slice();
    let target = chart.target.filter(|t| t.is_finite());
    let segments = segments(points);
    let title = if chart.title.is_empty() {
        "XmR chart"
    } else {
        chart.title
    };

    let mut extent = Extent::default();
    for p in points {
        extent.add(p.value);
    }
    for s in &segments {
        if let Some(m) = s.mean {
            extent.add(m);
        }
        if let Some(l) = s.limits {
            extent.add(l.upper_process_limit);
            extent.add(l.lower_process_limit);
        }
    }
    if let Some(t) = target {
        extent.add(t);
    }
    let (lo, hi) = extent.range.unwrap_or((0.0, 1.0));
    let geo = Geometry {
        frame: FRAME,
        axis: Axis::nice(lo, hi, 6),
        n: points.len(),
    };
    let frame = &geo.frame;

    let mut body = String::new();
    Text::new(frame.left, 24.0, &truncate(title, 80))
        .size(14.0)
        .bold()
        .render(&mut body);
    y_axis(&mut body, frame, &geo.axis, |t| {
        format_tick(t, geo.axis.decimals)
    });
    y_axis_title(&mut body, frame, chart.unit);
    x_axis_line(&mut body, frame);
    x_labels(&mut body, &geo, chart.labels);

    if extent.range.is_none() {
        Text::new(
            (frame.left + frame.right) / 2.0,
            (frame.top + frame.bottom) / 2.0,
            "No data",
        )
        .anchor("middle")
        .size(13.0)
        .fill(palette::LINE)
        .render(&mut body);
    }

    centre_and_limits(&mut body, &geo, &segments);
    if let Some(t) = target {
        let y = num(geo.y(t));
        body.push_str(&format!(
            "<line class=\"target\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" \
             stroke-width=\"1.5\" stroke-dasharray=\"10 4\"/>",
            num(frame.left),
            num(frame.right),
            palette::TARGET,
        ));
    }
    data_line(&mut body, &geo, points);
    markers(&mut body, &geo, points, chart.labels, chart.unit);

    let legend_y = legend(
        &mut body,
        frame,
        frame.bottom + 38.0,
        &legend_entries(points, &segments, target),
    );
    for (k, line) in caption(analysis, target).iter().enumerate() {
        Text::new(frame.left, legend_y + 20.0 + 15.0 * k as f64, line)
            .size(10.5)
            .render(&mut body);
    }

    let desc = description(chart, title, &segments, target);
    let frame = Frame {
        height: FRAME.height.max(legend_y + 20.0 + 15.0 + 12.0),
        ..FRAME
    };
    document(&frame, &chart_id(chart), title, &desc, &body)
}

/// Plain-language text for a variation icon, in lower case for use mid-sentence.
#[must_use]
pub fn variation_text(icon: VariationIcon) -> &'static str {
    match icon {
        VariationIcon::CommonCause => "common cause variation",
        VariationIcon::ImprovementHigh => "special cause improvement (high values)",
        VariationIcon::ImprovementLow => "special cause improvement (low values)",
        VariationIcon::ConcernHigh => "special cause concern (high values)",
        VariationIcon::ConcernLow => "special cause concern (low values)",
        VariationIcon::NeitherHigh => "special cause variation, high (no direction)",
        VariationIcon::NeitherLow => "special cause variation, low (no direction)",
    }
}

/// Plain-language text for an assurance icon, in lower case for use mid-sentence.
#[must_use]
pub fn assurance_text(icon: AssuranceIcon) -> &'static str {
    match icon {
        AssuranceIcon::Pass => "consistently passing the target",
        AssuranceIcon::Fail => "consistently failing the target",
        AssuranceIcon::HitOrMiss => "hit and miss (target within the process limits)",
    }
}

/// Point positions and the value scale.
struct Geometry {
    frame: Frame,
    axis: Axis,
    n: usize,
}

impl Geometry {
    /// Each point owns an equal band of the plot; rebases fall on band edges, so
    /// one partition's lines end exactly where the next one's start.
    fn band(&self) -> f64 {
        self.frame.plot_width() / self.n.max(1) as f64
    }

    fn x(&self, i: usize) -> f64 {
        self.frame.left + (i as f64 + 0.5) * self.band()
    }

    fn edge(&self, i: usize) -> f64 {
        self.frame.left + i as f64 * self.band()
    }

    fn y(&self, v: f64) -> f64 {
        self.axis.scale(v, self.frame.bottom, self.frame.top)
    }
}

/// A run of consecutive points in one partition, with its lines.
struct Segment {
    start: usize,
    end: usize,
    partition: usize,
    mean: Option<f64>,
    limits: Option<Limits>,
}

/// Partitions as drawn, taken from the points themselves rather than
/// `Analysis::partitions`, so the lines can never disagree with (or index past)
/// the points they sit behind.
fn segments(points: &[PointResult]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let mean = p.mean.filter(|m| m.is_finite());
        let limits = p
            .limits
            .filter(|l| l.upper_process_limit.is_finite() && l.lower_process_limit.is_finite());
        match out.last_mut() {
            Some(s) if s.partition == p.partition => {
                s.end = i + 1;
                s.mean = s.mean.or(mean);
                s.limits = s.limits.or(limits);
            }
            _ => out.push(Segment {
                start: i,
                end: i + 1,
                partition: p.partition,
                mean,
                limits,
            }),
        }
    }
    out
}

fn centre_and_limits(out: &mut String, geo: &Geometry, segments: &[Segment]) {
    let frame = &geo.frame;
    for s in segments.iter().skip(1) {
        let x = num(geo.edge(s.start));
        out.push_str(&format!(
            "<line class=\"rebase\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{}\" \
             stroke-dasharray=\"2 3\"/>",
            num(frame.top),
            num(frame.bottom),
            palette::AXIS,
        ));
    }
    for s in segments {
        let (x1, x2) = (num(geo.edge(s.start)), num(geo.edge(s.end)));
        if let Some(l) = s.limits {
            for (class, v) in [
                ("limit upper", l.upper_process_limit),
                ("limit lower", l.lower_process_limit),
            ] {
                let y = num(geo.y(v));
                out.push_str(&format!(
                    "<line class=\"{class}\" x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" \
                     stroke=\"{}\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"/>",
                    palette::LIMIT,
                ));
            }
        }
        if let Some(m) = s.mean {
            let y = num(geo.y(m));
            out.push_str(&format!(
                "<line class=\"mean\" x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{}\" \
                 stroke-width=\"1.5\"/>",
                palette::MEAN,
            ));
        }
    }
}

/// The data as one `<path>`. A non-finite value lifts the pen, so a gap shows
/// where data is missing instead of a line bridging it. Ghosted points are left
/// off the line — it joins the points either side, as the moving ranges do — so
/// an excluded outlier shows as a lone hollow marker instead of a spike.
fn data_line(out: &mut String, geo: &Geometry, points: &[PointResult]) {
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut current = Vec::new();
    for (i, p) in points.iter().enumerate() {
        if !p.value.is_finite() {
            if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
        } else if !p.ghosted {
            current.push(i);
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    if points.len() > DECIMATE_ABOVE {
        runs = runs.iter().map(|run| decimate(run, points, geo)).collect();
    }
    let mut d = String::new();
    for run in runs.iter().filter(|r| r.len() > 1) {
        for (k, &i) in run.iter().enumerate() {
            let value = points.get(i).map_or(f64::NAN, |p| p.value);
            d.push(if k == 0 { 'M' } else { ' ' });
            d.push_str(&num(geo.x(i)));
            d.push(',');
            d.push_str(&num(geo.y(value)));
        }
    }
    if !d.is_empty() {
        out.push_str(&format!(
            "<path class=\"data\" d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" \
             stroke-linejoin=\"round\"/>",
            palette::LINE,
        ));
    }
}

/// Keeps, per whole-pixel column, the first, lowest, highest and last point, in
/// series order — enough to draw the same envelope.
fn decimate(run: &[usize], points: &[PointResult], geo: &Geometry) -> Vec<usize> {
    let value = |i: usize| points.get(i).map_or(f64::NAN, |p| p.value);
    let mut kept = Vec::new();
    let mut bucket: Vec<usize> = Vec::new();
    let mut column = None;
    let flush = |bucket: &mut Vec<usize>, kept: &mut Vec<usize>| {
        if let (Some(&first), Some(&last)) = (bucket.first(), bucket.last()) {
            let by_value = |a: &&usize, b: &&usize| value(**a).total_cmp(&value(**b));
            let low = bucket.iter().min_by(by_value).copied().unwrap_or(first);
            let high = bucket.iter().max_by(by_value).copied().unwrap_or(last);
            let mut picks = [first, low, high, last];
            picks.sort_unstable();
            let mut previous = None;
            for i in picks {
                if previous != Some(i) {
                    kept.push(i);
                    previous = Some(i);
                }
            }
        }
        bucket.clear();
    };
    for &i in run {
        let c = geo.x(i).floor() as i64;
        if column != Some(c) {
            flush(&mut bucket, &mut kept);
            column = Some(c);
        }
        bucket.push(i);
    }
    flush(&mut bucket, &mut kept);
    kept
}

/// How a point is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Improvement,
    Concern,
    NeitherHigh,
    NeitherLow,
    CommonCause,
    /// Not assessed: a run chart, or a partition under the minimum per partition.
    NoLimits,
    Ghosted,
}

impl Kind {
    fn of(p: &PointResult) -> Kind {
        if p.ghosted {
            return Kind::Ghosted;
        }
        match p.classification {
            Some(Classification::Improvement) => Kind::Improvement,
            Some(Classification::Concern) => Kind::Concern,
            Some(Classification::NeitherHigh) => Kind::NeitherHigh,
            Some(Classification::NeitherLow) => Kind::NeitherLow,
            Some(Classification::CommonCause) => Kind::CommonCause,
            None => Kind::NoLimits,
        }
    }

    fn is_special_cause(self) -> bool {
        matches!(
            self,
            Kind::Improvement | Kind::Concern | Kind::NeitherHigh | Kind::NeitherLow
        )
    }

    fn class(self) -> &'static str {
        match self {
            Kind::Improvement => "improvement",
            Kind::Concern => "concern",
            Kind::NeitherHigh => "neither-high",
            Kind::NeitherLow => "neither-low",
            Kind::CommonCause => "common-cause",
            Kind::NoLimits => "no-limits",
            Kind::Ghosted => "ghosted",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Kind::Improvement => palette::IMPROVEMENT,
            Kind::Concern => palette::CONCERN,
            Kind::NeitherHigh | Kind::NeitherLow => palette::NEITHER,
            Kind::CommonCause | Kind::NoLimits => palette::COMMON_CAUSE,
            Kind::Ghosted => "#ffffff",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Kind::Improvement => "special cause improvement",
            Kind::Concern => "special cause concern",
            Kind::NeitherHigh => "special cause, high",
            Kind::NeitherLow => "special cause, low",
            Kind::CommonCause => "common cause",
            Kind::NoLimits => "no process limits",
            Kind::Ghosted => "ghosted, excluded from the calculations",
        }
    }
}

fn markers(
    out: &mut String,
    geo: &Geometry,
    points: &[PointResult],
    labels: &[String],
    unit: &str,
) {
    if points.len() > MARKER_LIMIT {
        special_cause_dots(out, geo, points);
        return;
    }
    let radius = if points.len() <= 60 { 3.5 } else { 2.5 };
    out.push_str("<g class=\"points\">");
    for (i, p) in points.iter().enumerate() {
        if !p.value.is_finite() {
            continue;
        }
        let kind = Kind::of(p);
        let stroke = if kind == Kind::Ghosted {
            format!(" stroke=\"{}\" stroke-width=\"1.2\"", palette::GHOST)
        } else {
            String::new()
        };
        let label = labels.get(i).map_or("", String::as_str);
        let mut tip = String::new();
        if !label.is_empty() {
            tip.push_str(label);
            tip.push_str(": ");
        }
        tip.push_str(&with_unit(p.value, unit));
        tip.push_str(" (");
        tip.push_str(kind.text());
        tip.push(')');
        out.push_str(&format!(
            "<circle class=\"point {}\" cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"{stroke}>\
             <title>{}</title></circle>",
            kind.class(),
            num(geo.x(i)),
            num(geo.y(p.value)),
            num(radius),
            kind.colour(),
            crate::escape(&tip),
        ));
    }
    out.push_str("</g>");
}

/// Markers for a long series: special-cause points only, one `<path>` per colour
/// whose zero-length subpaths (`M x,y h0`) the round line caps draw as dots —
/// about a tenth of the bytes of a `<circle>` each, at whole-unit positions. A
/// dot that would land in a dot-sized cell already holding one of its colour is
/// skipped: at this density it would be hidden anyway, and a series where most
/// points are special causes would otherwise cost tens of kilobytes per thousand
/// points.
fn special_cause_dots(out: &mut String, geo: &Geometry, points: &[PointResult]) {
    const DOT: f64 = 4.0;
    let kinds = [
        Kind::Improvement,
        Kind::Concern,
        Kind::NeitherHigh,
        Kind::NeitherLow,
    ];
    let mut paths: [String; 4] = Default::default();
    let mut drawn: HashSet<(i64, i64, Kind)> = HashSet::new();
    for (i, p) in points.iter().enumerate() {
        if !p.value.is_finite() {
            continue;
        }
        let kind = Kind::of(p);
        let Some(slot) = kinds.iter().position(|k| *k == kind) else {
            continue;
        };
        let (x, y) = (geo.x(i), geo.y(p.value));
        let cell = ((x / DOT).floor() as i64, (y / DOT).floor() as i64, kind);
        if !drawn.insert(cell) {
            continue;
        }
        if let Some(d) = paths.get_mut(slot) {
            d.push_str(&format!("M{},{}h0", num(x.round()), num(y.round())));
        }
    }
    out.push_str("<g class=\"points\">");
    for (kind, d) in kinds.iter().zip(&paths) {
        if d.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "<path class=\"point {}\" d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" \
             stroke-linecap=\"round\"/>",
            kind.class(),
            kind.colour(),
            num(DOT),
        ));
    }
    out.push_str("</g>");
}

fn x_labels(out: &mut String, geo: &Geometry, labels: &[String]) {
    let n = geo.n;
    let frame = &geo.frame;
    let longest = labels
        .iter()
        .take(n)
        .map(|l| l.chars().count().min(MAX_LABEL))
        .max()
        .unwrap_or(0);
    if n == 0 || longest == 0 {
        return;
    }
    // Arial at 10px averages about 5.6 units a character; keep a gap between labels.
    let half_width = longest as f64 * 5.6 / 2.0;
    let slot = 2.0 * half_width + 14.0;
    let fit = ((frame.plot_width() / slot).floor() as usize).max(1);
    let step = n.div_ceil(fit).max(1);
    out.push_str("<g class=\"x-axis\">");
    for i in (0..n).step_by(step) {
        let Some(label) = labels.get(i).filter(|l| !l.is_empty()) else {
            continue;
        };
        let x = geo.x(i);
        out.push_str(&format!(
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{}\"/>",
            num(frame.bottom),
            num(frame.bottom + 4.0),
            palette::AXIS,
            x = num(x),
        ));
        let anchor = if x + half_width > frame.width - 4.0 {
            "end"
        } else if x - half_width < 4.0 {
            "start"
        } else {
            "middle"
        };
        Text::new(x, frame.bottom + 16.0, &truncate(label, MAX_LABEL))
            .anchor(anchor)
            .size(10.0)
            .render(out);
    }
    out.push_str("</g>");
}

fn legend_entries<'a>(
    points: &[PointResult],
    segments: &[Segment],
    target: Option<f64>,
) -> Vec<(Key<'a>, &'a str)> {
    let present: HashSet<Kind> = points
        .iter()
        .filter(|p| p.value.is_finite())
        .map(Kind::of)
        .collect();
    let mut entries = Vec::new();
    for (kind, label) in [
        (Kind::Improvement, "Improvement"),
        (Kind::Concern, "Concern"),
        (Kind::CommonCause, "Common cause"),
        (Kind::NoLimits, "Not assessed"),
    ] {
        if present.contains(&kind) {
            entries.push((
                Key::Dot {
                    fill: kind.colour(),
                    stroke: None,
                },
                label,
            ));
        }
    }
    if present.contains(&Kind::NeitherHigh) || present.contains(&Kind::NeitherLow) {
        entries.push((
            Key::Dot {
                fill: palette::NEITHER,
                stroke: None,
            },
            "Special cause (no direction)",
        ));
    }
    if present.contains(&Kind::Ghosted) {
        entries.push((
            Key::Dot {
                fill: "#ffffff",
                stroke: Some(palette::GHOST),
            },
            "Ghosted",
        ));
    }
    if segments.iter().any(|s| s.mean.is_some()) {
        entries.push((
            Key::Line {
                stroke: palette::MEAN,
                dash: None,
            },
            "Mean",
        ));
    }
    if segments.iter().any(|s| s.limits.is_some()) {
        entries.push((
            Key::Line {
                stroke: palette::LIMIT,
                dash: Some("6 4"),
            },
            "Process limits",
        ));
    }
    if target.is_some() {
        entries.push((
            Key::Line {
                stroke: palette::TARGET,
                dash: Some("10 4"),
            },
            "Target",
        ));
    }
    entries
}

fn variation_phrase(analysis: &Analysis) -> &'static str {
    analysis.variation.map_or("not assessed", variation_text)
}

fn assurance_phrase(analysis: &Analysis, target: Option<f64>) -> &'static str {
    match (analysis.assurance, target) {
        (Some(icon), _) => assurance_text(icon),
        (None, None) => "no target",
        (None, Some(_)) => "not assessed",
    }
}

fn caption(analysis: &Analysis, target: Option<f64>) -> [String; 2] {
    let mut rules = format!(
        "Rules: {} v{} (Making Data Count).",
        analysis.rules.name, analysis.rules.version
    );
    let has_data = analysis.points.iter().any(|p| p.value.is_finite());
    if analysis.run_chart && has_data {
        rules.push_str(&format!(
            " Run chart: too few points for process limits (minimum {}).",
            analysis.rules.minimum_points
        ));
    }
    let icons = format!(
        "Variation: {}. Assurance: {}.",
        capitalise(variation_phrase(analysis)),
        assurance_phrase(analysis, target)
    );
    [rules, icons]
}

fn description(
    chart: &XmrChart<'_>,
    title: &str,
    segments: &[Segment],
    target: Option<f64>,
) -> String {
    let analysis = chart.analysis;
    let points = &analysis.points;
    let mut d = format!("{title}. ");
    let shown = points.iter().filter(|p| p.value.is_finite()).count();
    if shown == 0 {
        d.push_str("XmR chart with no data.");
        return d;
    }
    let kind = if analysis.run_chart {
        "Run chart"
    } else {
        "XmR chart"
    };
    d.push_str(&format!("{kind} of {} points", points.len()));
    let first = chart.labels.first().filter(|l| !l.is_empty());
    let last = chart
        .labels
        .get(points.len().saturating_sub(1))
        .filter(|l| !l.is_empty());
    if let (Some(first), Some(last)) = (first, last) {
        d.push_str(&format!(" from {first} to {last}"));
    }
    d.push('.');
    let latest = points
        .iter()
        .enumerate()
        .rev()
        .find(|(_, p)| !p.ghosted && p.value.is_finite());
    if let Some((i, p)) = latest {
        d.push_str(&format!(" Latest value {}", with_unit(p.value, chart.unit)));
        if let Some(label) = chart.labels.get(i).filter(|l| !l.is_empty()) {
            d.push_str(&format!(" ({label})"));
        }
        d.push_str(&format!(", {}.", Kind::of(p).text()));
    }
    match segments.len() {
        0 | 1 => {}
        2 => {
            d.push_str(" Rebased once; the mean and limits that follow are for the latest period.")
        }
        n => d.push_str(&format!(
            " Rebased {} times; the mean and limits that follow are for the latest period.",
            n - 1
        )),
    }
    if let Some(m) = segments.last().and_then(|s| s.mean) {
        d.push_str(&format!(" Mean {}", with_unit(m, chart.unit)));
        if let Some(l) = segments.last().and_then(|s| s.limits) {
            d.push_str(&format!(
                "; process limits {} to {}",
                format_value(l.lower_process_limit),
                format_value(l.upper_process_limit)
            ));
        }
        d.push('.');
    }
    if let Some(t) = target {
        d.push_str(&format!(" Target {}.", with_unit(t, chart.unit)));
    }
    let special = points
        .iter()
        .filter(|p| Kind::of(p).is_special_cause())
        .count();
    if !analysis.run_chart {
        d.push_str(&format!(" {special} special-cause points."));
    }
    d.push_str(&format!(
        " Variation: {}. Assurance: {}. Rules: {} v{}.",
        variation_phrase(analysis),
        assurance_phrase(analysis, target),
        analysis.rules.name,
        analysis.rules.version
    ));
    d
}

fn with_unit(v: f64, unit: &str) -> String {
    let value = format_value(v);
    match unit {
        "" => value,
        "%" => format!("{value}%"),
        u => format!("{value} {u}"),
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn chart_id(chart: &XmrChart<'_>) -> String {
    let mut h = IdHasher::new();
    h.str("xmr");
    h.str(chart.title);
    h.str(chart.unit);
    h.str(chart.analysis.rules.name);
    h.str(chart.analysis.rules.version);
    h.f64(chart.target.unwrap_or(f64::NAN));
    for l in chart.labels {
        h.str(l);
    }
    for p in &chart.analysis.points {
        h.f64(p.value);
        h.bytes(&[u8::from(p.ghosted)]);
        h.bytes(&(p.partition as u64).to_le_bytes());
    }
    h.id("ics-xmr")
}

#[cfg(test)]
mod tests {
    use ics_spc::{Direction, Point, RuleSet, analyse};

    use super::*;
    use crate::test_support::{assert_well_formed, attr, has_class, start_tags};

    fn labels(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("{}-{:02}-01", 2020 + i / 12, i % 12 + 1))
            .collect()
    }

    fn render_with(
        analysis: &Analysis,
        title: &str,
        unit: &str,
        labels: &[String],
        target: Option<f64>,
    ) -> String {
        let svg = xmr_chart(&XmrChart {
            title,
            unit,
            labels,
            analysis,
            target,
        });
        assert_well_formed(&svg);
        svg
    }

    fn render(points: &[Point], direction: Direction, target: Option<f64>) -> (Analysis, String) {
        let analysis = analyse(points, direction, target, &RuleSet::MDC_V2_5);
        let svg = render_with(&analysis, "Measure", "%", &labels(points.len()), target);
        (analysis, svg)
    }

    /// 20 points alternating 0 and 100 — common cause around a mean near 100 —
    /// with 1000 at index 15: beyond the upper process limit and no other rule.
    fn astronomical_high() -> Vec<Point> {
        (0..20)
            .map(|i| match i {
                15 => Point::new(1000.0),
                i if i % 2 == 0 => Point::new(0.0),
                _ => Point::new(100.0),
            })
            .collect()
    }

    fn point_markers<'a>(svg: &'a str, colour: &str) -> Vec<&'a str> {
        start_tags(svg, "circle")
            .into_iter()
            .filter(|t| has_class(t, "point") && attr(t, "fill") == Some(colour))
            .collect()
    }

    fn count_class(svg: &str, element: &str, class: &str) -> usize {
        start_tags(svg, element)
            .into_iter()
            .filter(|t| has_class(t, class))
            .count()
    }

    #[test]
    fn chart_is_self_contained_and_accessible() {
        let (_, svg) = render(&astronomical_high(), Direction::Increase, Some(50.0));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 "));
        assert!(svg.contains("role=\"img\""));
        let svg_tag = start_tags(&svg, "svg")[0];
        let labelled_by = attr(svg_tag, "aria-labelledby").unwrap_or_default();
        for id in labelled_by.split_whitespace() {
            assert!(svg.contains(&format!(" id=\"{id}\"")), "{id} missing");
        }
        assert!(svg.contains("<title id=") && svg.contains("<desc id="));
        for external in ["<script", "<style", "href", "@import", "url(http", "<image"] {
            assert!(!svg.contains(external), "{external}");
        }
    }

    #[test]
    fn astronomical_high_point_on_an_increase_measure_is_the_one_improvement() {
        let (analysis, svg) = render(&astronomical_high(), Direction::Increase, None);
        let special: Vec<usize> = analysis
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.classification.is_some_and(|c| c.is_special_cause()))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(special, vec![15], "fixture should have one special cause");
        assert_eq!(point_markers(&svg, palette::IMPROVEMENT).len(), 1);
        assert!(point_markers(&svg, palette::CONCERN).is_empty());
        assert_eq!(point_markers(&svg, palette::COMMON_CAUSE).len(), 19);
        // The icon comes from the last point, which is common cause.
        assert!(svg.contains("Variation: Common cause variation."));
    }

    #[test]
    fn astronomical_high_point_on_a_decrease_measure_is_the_one_concern() {
        let (_, svg) = render(&astronomical_high(), Direction::Decrease, None);
        assert_eq!(point_markers(&svg, palette::CONCERN).len(), 1);
        assert!(point_markers(&svg, palette::IMPROVEMENT).is_empty());
    }

    #[test]
    fn a_measure_without_direction_uses_the_neither_colour() {
        let (_, svg) = render(&astronomical_high(), Direction::Neither, None);
        assert_eq!(point_markers(&svg, palette::NEITHER).len(), 1);
        assert!(point_markers(&svg, palette::IMPROVEMENT).is_empty());
        assert!(point_markers(&svg, palette::CONCERN).is_empty());
    }

    #[test]
    fn target_line_appears_only_with_a_target() {
        let points = astronomical_high();
        let (_, with) = render(&points, Direction::Increase, Some(150.0));
        assert_eq!(count_class(&with, "line", "target"), 1);
        assert!(with.contains(">Target</text>"));
        let (_, without) = render(&points, Direction::Increase, None);
        assert_eq!(count_class(&without, "line", "target"), 0);
        assert!(!without.contains(">Target</text>"));
        let (_, nan) = render(&points, Direction::Increase, Some(f64::NAN));
        assert_eq!(count_class(&nan, "line", "target"), 0);
    }

    #[test]
    fn a_rebased_series_draws_two_distinct_mean_segments() {
        let points: Vec<Point> = (0..40)
            .map(|i| {
                let base = if i < 20 { 10.0 } else { 50.0 };
                let p = Point::new(base + f64::from(i % 3));
                if i == 20 { p.recalculate() } else { p }
            })
            .collect();
        let (analysis, svg) = render(&points, Direction::Increase, None);
        assert_eq!(analysis.partitions.len(), 2);
        let means = start_tags(&svg, "line")
            .into_iter()
            .filter(|t| has_class(t, "mean"))
            .collect::<Vec<_>>();
        assert_eq!(means.len(), 2);
        assert_ne!(attr(means[0], "y1"), attr(means[1], "y1"));
        // The segments meet at the rebase: a step, not a gap or an overlap.
        assert_eq!(attr(means[0], "x2"), attr(means[1], "x1"));
        assert_eq!(count_class(&svg, "line", "limit"), 4);
        assert_eq!(count_class(&svg, "line", "rebase"), 1);
    }

    #[test]
    fn a_run_chart_has_a_mean_and_no_limit_lines() {
        let points: Vec<Point> = (0..10).map(|i| Point::new(f64::from(i % 4))).collect();
        let (analysis, svg) = render(&points, Direction::Increase, Some(2.0));
        assert!(analysis.run_chart);
        assert_eq!(count_class(&svg, "line", "mean"), 1);
        assert_eq!(count_class(&svg, "line", "limit"), 0);
        assert!(!svg.contains("Process limits"));
        assert!(svg.contains("Run chart: too few points for process limits (minimum 15)."));
        assert_eq!(point_markers(&svg, palette::COMMON_CAUSE).len(), 10);
    }

    #[test]
    fn caption_names_the_rule_set_and_the_icons() {
        let points: Vec<Point> = (0..20).map(|i| Point::new(f64::from(i % 3))).collect();
        let (analysis, svg) = render(&points, Direction::Increase, Some(1.0));
        let rules = format!(
            "Rules: {} v{}",
            analysis.rule_set_name(),
            analysis.rule_set_version()
        );
        assert!(svg.contains(&rules), "{rules}");
        assert!(svg.contains("Variation: Common cause variation."));
        assert!(svg.contains("Assurance: hit and miss (target within the process limits)."));
    }

    #[test]
    fn text_is_escaped_everywhere() {
        let analysis = analyse(
            &astronomical_high(),
            Direction::Increase,
            None,
            &RuleSet::MDC_V2_5,
        );
        let labels: Vec<String> = (0..20).map(|i| format!("<w{i}>&\"")).collect();
        let svg = render_with(&analysis, "A&E <4h \"target\"", "<&>", &labels, None);
        assert!(!svg.contains("<4h") && !svg.contains("<w1>") && !svg.contains("<&>"));
        assert!(svg.contains("A&amp;E &lt;4h &quot;target&quot;"));
        assert!(svg.contains("&lt;w0&gt;&amp;&quot;"));
    }

    #[test]
    fn empty_and_single_point_series_render() {
        let (_, empty) = render(&[], Direction::Increase, None);
        assert!(empty.contains(">No data</text>"));
        assert_eq!(start_tags(&empty, "circle").len(), 0);

        let (_, one) = render(&[Point::new(5.0)], Direction::Increase, Some(4.0));
        assert_eq!(point_markers(&one, palette::COMMON_CAUSE).len(), 1);
        assert_eq!(count_class(&one, "line", "mean"), 1);
        assert!(!one.contains("class=\"data\""), "one point draws no line");
    }

    #[test]
    fn a_flat_series_is_drawn_mid_chart() {
        let points = vec![Point::new(42.0); 20];
        let (analysis, svg) = render(&points, Direction::Increase, None);
        assert!(!analysis.run_chart);
        let mean = start_tags(&svg, "line")
            .into_iter()
            .find(|t| has_class(t, "mean"))
            .and_then(|t| attr(t, "y1"))
            .and_then(|y| y.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        assert!(
            mean > FRAME.top + 10.0 && mean < FRAME.bottom - 10.0,
            "{mean}"
        );
    }

    #[test]
    fn non_finite_values_are_skipped_and_break_the_line() {
        let mut points: Vec<Point> = (0..30).map(|i| Point::new(f64::from(i % 5))).collect();
        points[10] = Point::new(f64::NAN);
        points[11] = Point::new(f64::INFINITY);
        points[20] = Point::new(f64::NEG_INFINITY);
        let (_, svg) = render(&points, Direction::Increase, None);
        assert_eq!(
            start_tags(&svg, "circle")
                .iter()
                .filter(|t| has_class(t, "point"))
                .count(),
            27
        );
        let path = start_tags(&svg, "path")[0];
        assert_eq!(attr(path, "d").map(|d| d.matches('M').count()), Some(3));

        let all_bad = vec![Point::new(f64::NAN), Point::new(f64::INFINITY)];
        let (_, svg) = render(&all_bad, Direction::Increase, Some(f64::INFINITY));
        assert!(svg.contains(">No data</text>"));
    }

    #[test]
    fn extreme_magnitudes_do_not_break_the_scale() {
        let points = [Point::new(-f64::MAX), Point::new(f64::MAX), Point::new(0.0)];
        let (_, svg) = render(&points, Direction::Increase, None);
        assert_eq!(point_markers(&svg, palette::COMMON_CAUSE).len(), 3);
    }

    #[test]
    fn ghosted_points_are_hollow() {
        let mut points = astronomical_high();
        points[3] = Point::ghost(55.0);
        let (_, svg) = render(&points, Direction::Increase, None);
        let ghosts: Vec<&str> = start_tags(&svg, "circle")
            .into_iter()
            .filter(|t| has_class(t, "ghosted"))
            .collect();
        assert_eq!(ghosts.len(), 1);
        assert_eq!(attr(ghosts[0], "fill"), Some("#ffffff"));
        assert_eq!(attr(ghosts[0], "stroke"), Some(palette::GHOST));
        // The line joins its neighbours instead of dipping to the ghost.
        let ghost_xy = format!(
            "{},{}",
            attr(ghosts[0], "cx").unwrap_or_default(),
            attr(ghosts[0], "cy").unwrap_or_default()
        );
        let d = attr(start_tags(&svg, "path")[0], "d").unwrap_or_default();
        assert_eq!(d.matches('M').count(), 1);
        assert!(!d.contains(&ghost_xy), "{d}");
    }

    #[test]
    fn a_long_series_stays_small_and_keeps_its_special_causes() {
        let n = 5000;
        let points: Vec<Point> = (0..n)
            .map(|i| match i {
                4321 => Point::new(1000.0),
                i if i % 2 == 0 => Point::new(0.0),
                _ => Point::new(100.0),
            })
            .collect();
        let (analysis, svg) = render(&points, Direction::Increase, None);
        assert_eq!(
            analysis
                .points
                .iter()
                .filter(|p| p.classification == Some(Classification::Improvement))
                .count(),
            1
        );
        assert!(svg.len() < 40_000, "{} bytes", svg.len());
        assert_eq!(count_class(&svg, "path", "data"), 1);
        assert!(
            start_tags(&svg, "circle")
                .iter()
                .all(|t| !has_class(t, "point"))
        );
        let dots: Vec<&str> = start_tags(&svg, "path")
            .into_iter()
            .filter(|t| has_class(t, "point"))
            .collect();
        assert_eq!(dots.len(), 1);
        assert_eq!(attr(dots[0], "stroke"), Some(palette::IMPROVEMENT));
        assert_eq!(attr(dots[0], "d").map(|d| d.matches('M').count()), Some(1));
        // Labels thinned to what fits.
        assert!(start_tags(&svg, "text").len() < 60);
    }

    #[test]
    fn a_long_series_of_mostly_special_causes_stays_bounded() {
        // A smooth wave: trends everywhere, so nearly every point is special cause.
        let points: Vec<Point> = (0..20_000)
            .map(|i| Point::new((f64::from(i) * 0.37).sin() * 10.0))
            .collect();
        let (analysis, svg) = render(&points, Direction::Decrease, None);
        let special = analysis
            .points
            .iter()
            .filter(|p| p.classification.is_some_and(|c| c.is_special_cause()))
            .count();
        assert!(special > 15_000, "{special}");
        assert!(svg.len() < 150_000, "{} bytes", svg.len());
    }

    #[test]
    fn labels_may_be_missing_or_surplus() {
        let analysis = analyse(
            &astronomical_high(),
            Direction::Increase,
            None,
            &RuleSet::MDC_V2_5,
        );
        render_with(&analysis, "", "", &[], None);
        render_with(&analysis, "t", "u", &labels(3), None);
        render_with(&analysis, "t", "u", &labels(100), None);
    }

    #[test]
    fn output_is_deterministic_and_ids_differ_between_charts() {
        let (_, a) = render(&astronomical_high(), Direction::Increase, None);
        let (_, b) = render(&astronomical_high(), Direction::Increase, None);
        assert_eq!(a, b);
        let (_, c) = render(&astronomical_high(), Direction::Increase, Some(1.0));
        let id = |svg: &str| attr(start_tags(svg, "title")[0], "id").map(str::to_owned);
        assert_ne!(id(&a), id(&c));
    }
}
