//! The funnel plot for proportions.

use ics_peers::{Funnel, FunnelUnitResult, Performance, Position};

use crate::palette;
use crate::svg::{
    Axis, Extent, Frame, IdHasher, Key, Text, document, format_tick, format_value, legend, num,
    truncate, x_axis_line, y_axis, y_axis_title,
};

const FRAME: Frame = Frame {
    width: 720.0,
    height: 440.0,
    left: 72.0,
    right: 704.0,
    top: 44.0,
    bottom: 340.0,
};

/// Samples per limit curve.
const CURVE_POINTS: usize = 160;

/// With more units than this, only units outside the 95% limits and the
/// highlighted one are labelled: a few dozen labels in a crowded funnel overlap
/// into noise.
const LABEL_ALL_UP_TO: usize = 25;

/// Longest unit label drawn beside a dot, in characters.
const MAX_LABEL: usize = 16;

/// What to draw on a funnel plot.
#[derive(Debug, Clone, Copy)]
pub struct FunnelPlot<'a> {
    /// Chart title (the measure's name); also the SVG's accessible name.
    pub title: &'a str,
    /// The computed funnel.
    pub funnel: &'a Funnel,
    /// The id of a unit to emphasise (e.g. the trust the pack is for), if any.
    pub highlight: Option<&'a str>,
}

/// Renders a funnel plot as a self-contained SVG document: x = denominator,
/// y = proportion (%), the pooled proportion, the 95% (dashed) and 99.8% (solid)
/// limit curves, and one dot per unit coloured by performance.
///
/// Never panics: units with a non-finite or non-positive denominator or a
/// non-finite proportion are left out (and counted in the description).
#[must_use]
pub fn funnel_plot(plot: &FunnelPlot<'_>) -> String {
    let funnel = plot.funnel;
    let title = if plot.title.is_empty() {
        "Funnel plot"
    } else {
        plot.title
    };
    let units: Vec<&FunnelUnitResult> = funnel.units.iter().filter(|u| drawable(u)).collect();
    let target = Some(funnel.target).filter(|t| t.is_finite() && (0.0..=1.0).contains(t));

    let denominators = units.iter().map(|u| u.denominator);
    let max_denominator = denominators.clone().fold(f64::NAN, f64::max);
    let min_denominator = denominators.fold(f64::NAN, f64::min);
    let x_axis = if max_denominator.is_finite() {
        Axis::nice(0.0, (max_denominator * 1.05).min(f64::MAX), 8)
    } else {
        Axis::nice(0.0, 1.0, 6)
    }
    .clamp_to(0.0, f64::INFINITY);
    let y_axis_range = y_domain(funnel, &units, target, min_denominator);
    let geo = Geometry {
        frame: FRAME,
        x: x_axis,
        y: y_axis_range,
    };
    let frame = &geo.frame;
    let id = chart_id(plot);

    let mut body = String::new();
    Text::new(frame.left, 24.0, &truncate(title, 80))
        .size(14.0)
        .bold()
        .render(&mut body);
    y_axis(&mut body, frame, &geo.y, |t| {
        format!("{}%", format_tick(t, geo.y.decimals))
    });
    y_axis_title(&mut body, frame, "Proportion (%)");
    x_axis_line(&mut body, frame);
    x_ticks(&mut body, &geo);
    Text::new(
        (frame.left + frame.right) / 2.0,
        frame.bottom + 32.0,
        "Denominator",
    )
    .anchor("middle")
    .render(&mut body);

    if units.is_empty() {
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

    body.push_str(&format!(
        "<defs><clipPath id=\"{id}-clip\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\
         </clipPath></defs>",
        num(frame.left),
        num(frame.top),
        num(frame.plot_width()),
        num(frame.plot_height()),
    ));
    if let Some(t) = target {
        if !units.is_empty() {
            limit_curves(&mut body, &geo, funnel, &id);
        }
        let y = num(geo.y(t * 100.0));
        body.push_str(&format!(
            "<line class=\"target\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" \
             stroke-width=\"1.5\"/>",
            num(frame.left),
            num(frame.right),
            palette::MEAN,
        ));
    }
    dots(&mut body, &geo, &units, plot.highlight);

    let legend_y = legend(
        &mut body,
        frame,
        frame.bottom + 54.0,
        &legend_entries(funnel, &units, target.is_some()),
    );
    for (k, line) in caption(funnel, target).iter().enumerate() {
        Text::new(frame.left, legend_y + 20.0 + 15.0 * k as f64, line)
            .size(10.5)
            .render(&mut body);
    }

    let desc = description(plot, title, &units, target);
    let frame = Frame {
        height: FRAME.height.max(legend_y + 20.0 + 15.0 + 12.0),
        ..FRAME
    };
    document(&frame, &id, title, &desc, &body)
}

fn drawable(u: &FunnelUnitResult) -> bool {
    u.denominator.is_finite() && u.denominator > 0.0 && u.proportion.is_finite()
}

/// The y range (in %): every unit and the target, plus enough of the 99.8% funnel
/// at the smallest unit to show its mouth — but no more than one data-span beyond
/// the data, so a single tiny unit (whose limits run from 0 to 100%) cannot squash
/// everyone else into a line.
fn y_domain(
    funnel: &Funnel,
    units: &[&FunnelUnitResult],
    target: Option<f64>,
    min_denominator: f64,
) -> Axis {
    let mut extent = Extent::default();
    for u in units {
        extent.add(u.proportion * 100.0);
    }
    if let Some(t) = target {
        extent.add(t * 100.0);
    }
    if let (Some((lo, hi)), true) = (extent.range, min_denominator.is_finite()) {
        let span = (hi - lo).max(1.0);
        let limits = funnel.limits_at(min_denominator);
        extent.add((limits.lower_998 * 100.0).max(lo - span));
        extent.add((limits.upper_998 * 100.0).min(hi + span));
    }
    let (lo, hi) = extent.range.unwrap_or((0.0, 100.0));
    Axis::nice(lo, hi, 6).clamp_to(0.0, 100.0)
}

struct Geometry {
    frame: Frame,
    x: Axis,
    y: Axis,
}

impl Geometry {
    fn x(&self, denominator: f64) -> f64 {
        self.x.scale(denominator, self.frame.left, self.frame.right)
    }

    fn y(&self, percent: f64) -> f64 {
        self.y.scale(percent, self.frame.bottom, self.frame.top)
    }
}

fn x_ticks(out: &mut String, geo: &Geometry) {
    let frame = &geo.frame;
    out.push_str("<g class=\"x-axis\">");
    for &t in &geo.x.ticks {
        let x = geo.x(t);
        out.push_str(&format!(
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{}\"/>",
            num(frame.bottom),
            num(frame.bottom + 4.0),
            palette::AXIS,
            x = num(x),
        ));
        Text::new(x, frame.bottom + 16.0, &format_tick(t, geo.x.decimals))
            .anchor("middle")
            .size(10.0)
            .render(out);
    }
    out.push_str("</g>");
}

/// The four limit curves, sampled more densely at small denominators where the
/// funnel bends sharply, and clipped to the plot (they run to 0% and 100% near
/// a denominator of zero).
fn limit_curves(out: &mut String, geo: &Geometry, funnel: &Funnel, id: &str) {
    let to = geo.x.max;
    if !(to.is_finite() && to > 0.0) {
        return;
    }
    let samples: Vec<(f64, ics_peers::FunnelLimits)> = (1..=CURVE_POINTS)
        .map(|k| {
            let t = k as f64 / CURVE_POINTS as f64;
            let n = to * t * t;
            (n, funnel.limits_at(n))
        })
        .collect();
    out.push_str(&format!(
        "<g clip-path=\"url(#{id}-clip)\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.2\">",
        palette::LIMIT
    ));
    type Pick = fn(&ics_peers::FunnelLimits) -> f64;
    let curves: [(&str, Pick, Option<&str>); 4] = [
        ("limit-998 upper", |l| l.upper_998, None),
        ("limit-998 lower", |l| l.lower_998, None),
        ("limit-95 upper", |l| l.upper_95, Some("5 4")),
        ("limit-95 lower", |l| l.lower_95, Some("5 4")),
    ];
    for (class, pick, dash) in curves {
        let mut d = String::new();
        for (n, limits) in &samples {
            let v = pick(limits) * 100.0;
            if !v.is_finite() {
                continue;
            }
            d.push(if d.is_empty() { 'M' } else { ' ' });
            d.push_str(&num(geo.x(*n)));
            d.push(',');
            d.push_str(&num(geo.y(v)));
        }
        if d.is_empty() {
            continue;
        }
        out.push_str(&format!("<path class=\"{class}\" d=\"{d}\""));
        if let Some(dash) = dash {
            out.push_str(&format!(" stroke-dasharray=\"{dash}\""));
        }
        out.push_str("/>");
    }
    out.push_str("</g>");
}

/// How a unit is drawn, from its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Better,
    Same,
    Worse,
    /// Outside the limits, for a measure with no direction.
    Higher,
    Lower,
    AsExpected,
}

impl Kind {
    fn of(u: &FunnelUnitResult) -> Kind {
        match (u.label.performance, u.label.position) {
            (Some(Performance::Better), _) => Kind::Better,
            (Some(Performance::Same), _) => Kind::Same,
            (Some(Performance::Worse), _) => Kind::Worse,
            (None, Position::Higher) => Kind::Higher,
            (None, Position::Lower) => Kind::Lower,
            (None, Position::AsExpected) => Kind::AsExpected,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Kind::Better => "better",
            Kind::Same => "same",
            Kind::Worse => "worse",
            Kind::Higher => "higher",
            Kind::Lower => "lower",
            Kind::AsExpected => "as-expected",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Kind::Better => palette::IMPROVEMENT,
            Kind::Worse => palette::CONCERN,
            Kind::Higher | Kind::Lower => palette::NEITHER,
            Kind::Same | Kind::AsExpected => palette::COMMON_CAUSE,
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Kind::Better => "Better than expected",
            Kind::Same => "As expected",
            Kind::Worse => "Worse than expected",
            Kind::Higher => "Higher than expected",
            Kind::Lower => "Lower than expected",
            Kind::AsExpected => "As expected",
        }
    }

    fn outside(self) -> bool {
        !matches!(self, Kind::Same | Kind::AsExpected)
    }
}

fn dots(out: &mut String, geo: &Geometry, units: &[&FunnelUnitResult], highlight: Option<&str>) {
    let frame = &geo.frame;
    let is_highlight = |u: &FunnelUnitResult| highlight.is_some_and(|h| h == u.id);
    // The highlighted unit last, so that it sits on top of any overlapping dots.
    let mut order: Vec<&FunnelUnitResult> = units.to_vec();
    order.sort_by_key(|u| is_highlight(u));
    let label_all = units.len() <= LABEL_ALL_UP_TO;

    out.push_str("<g class=\"units\">");
    for u in order {
        let kind = Kind::of(u);
        let emphasised = is_highlight(u);
        let (x, y) = (geo.x(u.denominator), geo.y(u.proportion * 100.0));
        let (radius, stroke) = if emphasised {
            (
                6.0,
                format!(" stroke=\"{}\" stroke-width=\"2\"", palette::MEAN),
            )
        } else {
            (4.0, " stroke=\"#ffffff\" stroke-width=\"0.8\"".to_owned())
        };
        let tip = format!(
            "{}: {}% ({} of {}); {}",
            u.id,
            format_value(u.proportion * 100.0),
            format_value(u.numerator),
            format_value(u.denominator),
            u.label
        );
        out.push_str(&format!(
            "<circle class=\"unit {}{}\" cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"{stroke}>\
             <title>{}</title></circle>",
            kind.class(),
            if emphasised { " highlight" } else { "" },
            num(x),
            num(y),
            num(radius),
            kind.colour(),
            crate::escape(&tip),
        ));
        if label_all || emphasised || kind.outside() {
            // Flip to the left of the dot near the right edge so the label stays
            // inside the chart.
            let text = truncate(&u.id, MAX_LABEL);
            let width = 5.6 * text.chars().count() as f64;
            let (lx, anchor) = if x + radius + 3.0 + width > frame.width - 4.0 {
                (x - radius - 3.0, "end")
            } else {
                (x + radius + 3.0, "start")
            };
            let label = Text::new(lx, y + 3.5, &text).anchor(anchor).size(10.0);
            if emphasised {
                label.bold().render(out);
            } else {
                label.render(out);
            }
        }
    }
    out.push_str("</g>");
}

fn legend_entries<'a>(
    funnel: &Funnel,
    units: &[&FunnelUnitResult],
    target: bool,
) -> Vec<(Key<'a>, &'a str)> {
    let kinds = match funnel.direction {
        ics_peers::Direction::Neither => [Kind::Higher, Kind::AsExpected, Kind::Lower],
        _ => [Kind::Better, Kind::Same, Kind::Worse],
    };
    let mut entries: Vec<(Key<'a>, &'a str)> = kinds
        .into_iter()
        .filter(|k| units.iter().any(|u| Kind::of(u) == *k))
        .map(|k| {
            (
                Key::Dot {
                    fill: k.colour(),
                    stroke: None,
                },
                k.legend(),
            )
        })
        .collect();
    if target {
        entries.push((
            Key::Line {
                stroke: palette::MEAN,
                dash: None,
            },
            "Pooled proportion",
        ));
        if !units.is_empty() {
            entries.push((
                Key::Line {
                    stroke: palette::LIMIT,
                    dash: Some("5 4"),
                },
                "95% limits",
            ));
            entries.push((
                Key::Line {
                    stroke: palette::LIMIT,
                    dash: None,
                },
                "99.8% limits",
            ));
        }
    }
    entries
}

fn overdispersion_text(funnel: &Funnel) -> String {
    if funnel.overdispersion_applied {
        format!(
            "Limits widened for over-dispersion (φ = {}, τ² = {}).",
            format_value(funnel.phi),
            format_value(funnel.tau2)
        )
    } else {
        format!(
            "No over-dispersion adjustment (φ = {}).",
            format_value(funnel.phi)
        )
    }
}

fn caption(funnel: &Funnel, target: Option<f64>) -> [String; 2] {
    let centre = match target {
        Some(t) => format!(
            "Centre line: pooled proportion {}%. Limits: 95% (dashed) and 99.8% (solid).",
            format_value(t * 100.0)
        ),
        None => "No pooled proportion: limits not drawn.".to_owned(),
    };
    [centre, overdispersion_text(funnel)]
}

fn description(
    plot: &FunnelPlot<'_>,
    title: &str,
    units: &[&FunnelUnitResult],
    target: Option<f64>,
) -> String {
    let funnel = plot.funnel;
    let mut d = format!("{title}. ");
    if units.is_empty() {
        d.push_str("Funnel plot with no units.");
        return d;
    }
    d.push_str(&format!("Funnel plot of {} units", units.len()));
    if let Some(t) = target {
        d.push_str(&format!("; pooled proportion {}%", format_value(t * 100.0)));
    }
    d.push('.');
    let skipped = funnel.units.len() - units.len();
    if skipped > 0 {
        d.push_str(&format!(
            " {skipped} units without a valid proportion are not shown."
        ));
    }
    let kinds = match funnel.direction {
        ics_peers::Direction::Neither => [Kind::Higher, Kind::Lower, Kind::AsExpected],
        _ => [Kind::Better, Kind::Worse, Kind::Same],
    };
    for kind in kinds {
        let ids: Vec<&str> = units
            .iter()
            .filter(|u| Kind::of(u) == kind)
            .map(|u| u.id.as_str())
            .collect();
        if ids.is_empty() {
            continue;
        }
        d.push_str(&format!(" {}: {}", kind.legend(), ids.len()));
        // Naming the as-expected majority would drown the ones that matter.
        if kind.outside() {
            let shown = ids.iter().take(10).copied().collect::<Vec<_>>().join(", ");
            d.push_str(&format!(" ({shown}"));
            if ids.len() > 10 {
                d.push_str(", …");
            }
            d.push(')');
        }
        d.push('.');
    }
    if let Some(u) = plot
        .highlight
        .and_then(|h| units.iter().find(|u| u.id == h))
    {
        d.push_str(&format!(
            " {}: {}% of {}, {}.",
            u.id,
            format_value(u.proportion * 100.0),
            format_value(u.denominator),
            u.label
        ));
    }
    d.push(' ');
    d.push_str(&overdispersion_text(funnel));
    d
}

fn chart_id(plot: &FunnelPlot<'_>) -> String {
    let mut h = IdHasher::new();
    h.str("funnel");
    h.str(plot.title);
    h.str(plot.highlight.unwrap_or("\u{0}"));
    h.f64(plot.funnel.target);
    h.f64(plot.funnel.tau2);
    for u in &plot.funnel.units {
        h.str(&u.id);
        h.f64(u.numerator);
        h.f64(u.denominator);
    }
    h.id("ics-funnel")
}

#[cfg(test)]
mod tests {
    use ics_peers::{Direction, FunnelUnit, funnel};

    use super::*;
    use crate::test_support::{assert_well_formed, attr, has_class, start_tags};

    /// From the ics-peers docs: A (8/100) is lower than expected, so worse for an
    /// increase measure.
    fn four_units() -> Vec<FunnelUnit> {
        vec![
            FunnelUnit::new("A", 8.0, 100.0),
            FunnelUnit::new("B", 40.0, 100.0),
            FunnelUnit::new("C", 50.0, 200.0),
            FunnelUnit::new("D", 100.0, 400.0),
        ]
    }

    fn render(funnel: &Funnel, highlight: Option<&str>) -> String {
        let svg = funnel_plot(&FunnelPlot {
            title: "Staff survey",
            funnel,
            highlight,
        });
        assert_well_formed(&svg);
        svg
    }

    fn unit_dots(svg: &str) -> Vec<&str> {
        start_tags(svg, "circle")
            .into_iter()
            .filter(|t| has_class(t, "unit"))
            .collect()
    }

    fn computed(units: &[FunnelUnit], direction: Direction) -> Funnel {
        match funnel(units, direction) {
            Ok(f) => f,
            Err(e) => panic!("fixture: {e}"),
        }
    }

    #[test]
    fn one_dot_per_unit_and_the_worse_unit_is_orange() {
        let f = computed(&four_units(), Direction::Increase);
        assert_eq!(f.units[0].label.performance, Some(Performance::Worse));
        let svg = render(&f, None);
        let dots = unit_dots(&svg);
        assert_eq!(dots.len(), 4);
        let worse: Vec<&&str> = dots
            .iter()
            .filter(|t| attr(t, "fill") == Some(palette::CONCERN))
            .collect();
        assert_eq!(worse.len(), 1);
        assert!(svg.contains("<title>A: 8% (8 of 100); lower than expected"));
        for t in &dots {
            let expected = match f.units.iter().find(|u| svg_title_is(&svg, t, &u.id)) {
                Some(u) => Kind::of(u).colour(),
                None => continue,
            };
            assert_eq!(attr(t, "fill"), Some(expected));
        }
    }

    /// Whether the dot whose start tag is `tag` has a tooltip for unit `id`.
    fn svg_title_is(svg: &str, tag: &str, id: &str) -> bool {
        svg.find(tag)
            .is_some_and(|i| svg[i + tag.len()..].starts_with(&format!("<title>{id}:")))
    }

    #[test]
    fn draws_the_target_and_both_pairs_of_limits() {
        let f = computed(&four_units(), Direction::Increase);
        let svg = render(&f, None);
        let lines = start_tags(&svg, "line");
        assert_eq!(lines.iter().filter(|t| has_class(t, "target")).count(), 1);
        let paths = start_tags(&svg, "path");
        for class in ["limit-95", "limit-998"] {
            assert_eq!(paths.iter().filter(|t| has_class(t, class)).count(), 2);
        }
        for t in paths.iter().filter(|t| has_class(t, "limit-95")) {
            assert!(attr(t, "stroke-dasharray").is_some());
        }
        assert!(svg.contains("clip-path=\"url(#ics-funnel-"));
        assert!(svg.contains("pooled proportion 24.75%"));
    }

    #[test]
    fn caption_says_whether_over_dispersion_was_applied() {
        let f = computed(&four_units(), Direction::Increase);
        assert!(f.overdispersion_applied);
        assert!(render(&f, None).contains("Limits widened for over-dispersion (φ = "));

        let tight: Vec<FunnelUnit> = (0..6)
            .map(|i| FunnelUnit::new(format!("U{i}"), 50.0 + f64::from(i % 2), 100.0))
            .collect();
        let f = computed(&tight, Direction::Increase);
        assert!(!f.overdispersion_applied);
        let svg = render(&f, None);
        assert!(svg.contains("No over-dispersion adjustment (φ = "));
        assert!(!svg.contains("widened"));
    }

    #[test]
    fn the_highlighted_unit_is_emphasised_and_drawn_last() {
        let f = computed(&four_units(), Direction::Increase);
        let svg = render(&f, Some("C"));
        let dots = unit_dots(&svg);
        let last = dots.last().copied().unwrap_or_default();
        assert!(has_class(last, "highlight"));
        assert!(svg_title_is(&svg, last, "C"));
        assert_eq!(dots.iter().filter(|t| has_class(t, "highlight")).count(), 1);
        assert!(svg.contains("font-weight=\"bold\">C</text>"));
        assert!(svg.contains(" C: 25% of 200, as expected: same."));
        // An unknown id highlights nothing.
        let none = render(&f, Some("ZZZ"));
        assert!(unit_dots(&none).iter().all(|t| !has_class(t, "highlight")));
    }

    #[test]
    fn decrease_and_no_direction_recolour_the_same_units() {
        let f = computed(&four_units(), Direction::Decrease);
        let svg = render(&f, None);
        let fills: Vec<Option<&str>> = unit_dots(&svg).iter().map(|t| attr(t, "fill")).collect();
        assert!(fills.contains(&Some(palette::IMPROVEMENT)));

        let f = computed(&four_units(), Direction::Neither);
        let svg = render(&f, None);
        let fills: Vec<Option<&str>> = unit_dots(&svg).iter().map(|t| attr(t, "fill")).collect();
        assert!(fills.contains(&Some(palette::NEITHER)));
        assert!(!fills.contains(&Some(palette::CONCERN)));
        assert!(svg.contains("Lower than expected"));
    }

    #[test]
    fn unit_ids_and_titles_are_escaped() {
        let mut units = four_units();
        units[0].id = "<A&\"B\">".to_owned();
        let f = computed(&units, Direction::Increase);
        let svg = funnel_plot(&FunnelPlot {
            title: "<script>&",
            funnel: &f,
            highlight: Some("<A&\"B\">"),
        });
        assert_well_formed(&svg);
        assert!(!svg.contains("<script") && !svg.contains("<A&"));
        assert!(svg.contains("&lt;A&amp;&quot;B&quot;&gt;"));
    }

    #[test]
    fn many_units_label_only_those_outside_the_limits() {
        let units: Vec<FunnelUnit> = (0..100)
            .map(|i| {
                let d = 100.0 + f64::from(i) * 37.0;
                let rate = if i == 7 {
                    0.9
                } else {
                    0.3 + f64::from(i % 5) * 0.005
                };
                FunnelUnit::new(format!("T{i:03}"), (d * rate).round(), d)
            })
            .collect();
        let f = computed(&units, Direction::Increase);
        let svg = render(&f, Some("T050"));
        assert_eq!(unit_dots(&svg).len(), 100);
        assert!(svg.contains(">T007</text>"));
        assert!(svg.contains(">T050</text>"));
        let expected: Vec<&str> = f
            .units
            .iter()
            .filter(|u| u.label.position != Position::AsExpected || u.id == "T050")
            .map(|u| u.id.as_str())
            .collect();
        let labelled: Vec<&str> = f
            .units
            .iter()
            .filter(|u| svg.contains(&format!(">{}</text>", u.id)))
            .map(|u| u.id.as_str())
            .collect();
        assert_eq!(labelled, expected);
        assert!(labelled.len() < 100);
    }

    #[test]
    fn degenerate_funnels_do_not_panic() {
        let f = computed(&four_units(), Direction::Increase);

        let empty = Funnel {
            units: Vec::new(),
            ..f.clone()
        };
        assert!(render(&empty, None).contains(">No data</text>"));

        let mut broken = f.clone();
        broken.units[1].proportion = f64::NAN;
        broken.units[2].denominator = 0.0;
        broken.units[3].denominator = f64::INFINITY;
        broken.target = f64::NAN;
        let svg = render(&broken, Some("A"));
        assert_eq!(unit_dots(&svg).len(), 1);
        assert!(svg.contains("3 units without a valid proportion are not shown."));

        let mut extreme = f;
        extreme.units[0].denominator = 1e-300;
        extreme.units[1].denominator = 1e300;
        render(&extreme, None);

        let identical: Vec<FunnelUnit> = (0..3)
            .map(|i| FunnelUnit::new(format!("{i}"), 0.0, 50.0))
            .collect();
        render(&computed(&identical, Direction::Increase), None);
    }
}
