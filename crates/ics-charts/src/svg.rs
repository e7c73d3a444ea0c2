//! Shared SVG plumbing: document frame, number formatting, axes and scales.

use crate::{escape, palette};

/// Generic families only: a board pack may be opened offline, so no web fonts.
pub(crate) const FONT: &str = "Arial, Helvetica, sans-serif";

/// A chart's outer size and plot area, in SVG user units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Frame {
    pub fn plot_width(&self) -> f64 {
        self.right - self.left
    }

    pub fn plot_height(&self) -> f64 {
        self.bottom - self.top
    }
}

/// Wraps `body` in the `<svg>` element with its accessible name and description.
///
/// The ids are needed by `aria-labelledby` and must be unique on a page holding
/// many charts, hence derived from the input rather than a counter.
pub(crate) fn document(frame: &Frame, id: &str, title: &str, desc: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + title.len() + desc.len() + 512);
    out.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" \
         width=\"{w}\" height=\"{h}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         font-family=\"{FONT}\" style=\"max-width:100%;height:auto\">",
        w = num(frame.width),
        h = num(frame.height),
    ));
    out.push_str(&format!(
        "<title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        escape(title),
        escape(desc)
    ));
    out.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        num(frame.width),
        num(frame.height)
    ));
    out.push_str(body);
    out.push_str("</svg>");
    out
}

/// A coordinate, to 0.1 units: finer than any screen needs, and it keeps long
/// paths short. A stray `NaN` in an attribute would make the SVG invalid, so it is
/// pinned to 0; a point far off the chart is pinned just beyond it rather than
/// printed with hundreds of digits.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_owned();
    }
    let rounded = (v.clamp(-1e6, 1e6) * 10.0).round() / 10.0;
    // `+ 0.0` turns -0.0 into 0.0.
    let s = format!("{:.1}", rounded + 0.0);
    match s.strip_suffix(".0") {
        Some(whole) => whole.to_owned(),
        None => s,
    }
}

/// Text at (x, y).
pub(crate) struct Text<'a> {
    pub x: f64,
    pub y: f64,
    pub content: &'a str,
    pub size: f64,
    pub anchor: &'a str,
    pub weight: &'a str,
    pub fill: &'a str,
}

impl<'a> Text<'a> {
    pub fn new(x: f64, y: f64, content: &'a str) -> Text<'a> {
        Text {
            x,
            y,
            content,
            size: 11.0,
            anchor: "start",
            weight: "normal",
            fill: palette::TEXT,
        }
    }

    pub fn size(self, size: f64) -> Self {
        Text { size, ..self }
    }

    pub fn anchor(self, anchor: &'a str) -> Self {
        Text { anchor, ..self }
    }

    pub fn bold(self) -> Self {
        Text {
            weight: "bold",
            ..self
        }
    }

    pub fn fill(self, fill: &'a str) -> Self {
        Text { fill, ..self }
    }

    pub fn render(&self, out: &mut String) {
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{}\" fill=\"{}\"",
            num(self.x),
            num(self.y),
            num(self.size),
            self.anchor,
            self.fill
        ));
        if self.weight != "normal" {
            out.push_str(&format!(" font-weight=\"{}\"", self.weight));
        }
        out.push('>');
        out.push_str(&escape(self.content));
        out.push_str("</text>");
    }
}

/// Shortens `text` to at most `max` characters, ending in an ellipsis, so that a
/// long title or label cannot run off the chart (the full text stays in the
/// `<title>` / tooltip).
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A value for people to read: integers in full with thousands separators, other
/// numbers to about four significant figures, trailing zeros dropped.
pub(crate) fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return group_thousands(&format!("{:.0}", v + 0.0));
    }
    if v.abs() >= 1e15 || v.abs() < 1e-6 {
        return format!("{v:.3e}");
    }
    let magnitude = v.abs().log10().floor();
    let decimals = (3.0 - magnitude).clamp(0.0, 8.0) as usize;
    let s = format!("{:.*}", decimals, v);
    group_thousands(&trim_zeros(&s))
}

/// An axis tick: `decimals` fixed by the tick step so that labels line up.
pub(crate) fn format_tick(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    if v.abs() >= 1e15 {
        return format!("{v:.2e}");
    }
    // `+ 0.0` so that a tick at -0.0 prints as 0.
    group_thousands(&format!("{:.*}", decimals, v + 0.0))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s.to_owned()
    }
}

fn group_thousands(s: &str) -> String {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s),
    };
    let (int, frac) = match rest.find('.') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if int.len() <= 3 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return s.to_owned();
    }
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}{frac}")
}

/// The running minimum and maximum of the finite values seen.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extent {
    pub range: Option<(f64, f64)>,
}

impl Extent {
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.range = Some(match self.range {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
    }
}

/// A linear axis: its domain and tick positions.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    pub min: f64,
    pub max: f64,
    pub ticks: Vec<f64>,
    pub decimals: usize,
}

impl Axis {
    /// An axis covering `lo..=hi` with about `count` "nice" ticks (steps of 1, 2 or
    /// 5 × 10ⁿ), the domain widened to whole steps. A zero-width range is padded so
    /// that a flat series sits mid-chart rather than on an edge; ranges too wide to
    /// step through fall back to their bare ends.
    pub fn nice(lo: f64, hi: f64, count: usize) -> Axis {
        let (mut lo, mut hi) = match (lo.is_finite(), hi.is_finite()) {
            (true, true) => (lo.min(hi), lo.max(hi)),
            _ => (0.0, 1.0),
        };
        if hi - lo <= 0.0 {
            let pad = if lo.abs() > 1e-300 {
                lo.abs() * 0.1
            } else {
                1.0
            };
            let (l, h) = (lo - pad, hi + pad);
            lo = if l.is_finite() { l } else { lo };
            hi = if h.is_finite() { h } else { hi };
            if hi - lo <= 0.0 {
                // Only at ±f64::MAX, where neither side could move.
                return Axis::bare(lo - 1.0, hi + 1.0);
            }
        }
        // Halves first: `hi - lo` overflows for ranges wider than f64::MAX.
        let half_span = hi / 2.0 - lo / 2.0;
        let intervals = count.max(2) - 1;
        let raw = half_span / intervals as f64 * 2.0;
        let Some(step) = nice_step(raw) else {
            return Axis::bare(lo, hi);
        };
        let start = (lo / step).floor() * step;
        let end = (hi / step).ceil() * step;
        let steps = ((end - start) / step).round();
        let usable =
            start.is_finite() && end.is_finite() && end > start && (1.0..=50.0).contains(&steps);
        if !usable {
            return Axis::bare(lo, hi);
        }
        let ticks = (0..=steps as usize)
            .map(|i| start + step * i as f64)
            .collect();
        Axis {
            min: start,
            max: end,
            ticks,
            decimals: decimals_for(step),
        }
    }

    fn bare(lo: f64, hi: f64) -> Axis {
        let step = hi / 2.0 - lo / 2.0;
        Axis {
            min: lo,
            max: hi,
            ticks: vec![lo, hi],
            decimals: decimals_for(step.abs()),
        }
    }

    /// Narrows the domain to `lo..=hi` (e.g. a proportion to 0–100%), dropping
    /// ticks outside it.
    pub fn clamp_to(mut self, lo: f64, hi: f64) -> Axis {
        let (min, max) = (self.min.max(lo), self.max.min(hi));
        if min < max {
            self.min = min;
            self.max = max;
            self.ticks.retain(|t| *t >= min - 1e-9 && *t <= max + 1e-9);
        }
        self
    }

    /// Maps `v` onto `from..to` (in SVG units; `to < from` for a y axis).
    pub fn scale(&self, v: f64, from: f64, to: f64) -> f64 {
        let denominator = self.max / 2.0 - self.min / 2.0;
        // Positive tests, so that a NaN anywhere lands mid-axis too.
        let usable = denominator.is_finite() && denominator > 0.0 && v.is_finite();
        if !usable {
            return (from + to) / 2.0;
        }
        let t = (v / 2.0 - self.min / 2.0) / denominator;
        from + t * (to - from)
    }
}

fn nice_step(raw: f64) -> Option<f64> {
    if !(raw.is_finite() && raw > 0.0) {
        return None;
    }
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    let step = nice * power;
    (step.is_finite() && step > 0.0).then_some(step)
}

fn decimals_for(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 0;
    }
    // Small tolerance: 0.1 has log10 of -0.99999…
    (-(step.log10() + 1e-9).floor()).clamp(0.0, 10.0) as usize
}

/// Gridlines, tick labels and the left axis line of a y axis.
pub(crate) fn y_axis(out: &mut String, frame: &Frame, axis: &Axis, format: impl Fn(f64) -> String) {
    out.push_str("<g class=\"y-axis\">");
    for &t in &axis.ticks {
        let y = axis.scale(t, frame.bottom, frame.top);
        out.push_str(&format!(
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"1\"/>",
            num(frame.left),
            num(frame.right),
            palette::GRID,
            y = num(y),
        ));
        Text::new(frame.left - 6.0, y + 3.5, &format(t))
            .anchor("end")
            .size(10.0)
            .render(out);
    }
    out.push_str(&format!(
        "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"1\"/>",
        num(frame.top),
        num(frame.bottom),
        palette::AXIS,
        x = num(frame.left),
    ));
    out.push_str("</g>");
}

/// The bottom axis line.
pub(crate) fn x_axis_line(out: &mut String, frame: &Frame) {
    out.push_str(&format!(
        "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"1\"/>",
        num(frame.left),
        num(frame.right),
        palette::AXIS,
        y = num(frame.bottom),
    ));
}

/// A rotated axis title to the left of the y-axis labels.
pub(crate) fn y_axis_title(out: &mut String, frame: &Frame, title: &str) {
    if title.is_empty() {
        return;
    }
    let x = 14.0;
    let y = (frame.top + frame.bottom) / 2.0;
    out.push_str(&format!(
        "<text x=\"{x}\" y=\"{y}\" font-size=\"11\" text-anchor=\"middle\" fill=\"{}\" \
         transform=\"rotate(-90 {x} {y})\">{}</text>",
        palette::TEXT,
        escape(&truncate(title, 40)),
        x = num(x),
        y = num(y),
    ));
}

/// One legend entry's symbol.
pub(crate) enum Key<'a> {
    /// A filled dot; `stroke` for a hollow one.
    Dot {
        fill: &'a str,
        stroke: Option<&'a str>,
    },
    /// A short line, optionally dashed.
    Line {
        stroke: &'a str,
        dash: Option<&'a str>,
    },
}

/// A single row of legend entries from `x`, wrapping to a second row when needed.
/// Returns the y of the last row used.
pub(crate) fn legend(out: &mut String, frame: &Frame, y: f64, entries: &[(Key<'_>, &str)]) -> f64 {
    out.push_str("<g class=\"legend\" font-size=\"10\">");
    let mut x = frame.left;
    let mut y = y;
    for (key, label) in entries {
        // Width estimate: Arial at 10px averages about 5 units a character.
        let width = 20.0 + 5.3 * label.chars().count() as f64 + 16.0;
        if x + width > frame.width - 8.0 && x > frame.left {
            x = frame.left;
            y += 15.0;
        }
        match key {
            Key::Dot { fill, stroke } => out.push_str(&format!(
                "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{fill}\" stroke=\"{}\" stroke-width=\"1.2\"/>",
                num(x + 8.0),
                num(y - 3.5),
                stroke.unwrap_or("none"),
            )),
            Key::Line { stroke, dash } => {
                out.push_str(&format!(
                    "<line x1=\"{}\" y1=\"{yy}\" x2=\"{}\" y2=\"{yy}\" stroke=\"{stroke}\" stroke-width=\"1.5\"",
                    num(x),
                    num(x + 16.0),
                    yy = num(y - 3.5),
                ));
                if let Some(d) = dash {
                    out.push_str(&format!(" stroke-dasharray=\"{d}\""));
                }
                out.push_str("/>");
            }
        }
        Text::new(x + 20.0, y, label).size(10.0).render(out);
        x += width;
    }
    out.push_str("</g>");
    y
}

/// FNV-1a (64-bit): stable across Rust versions and platforms, unlike
/// `DefaultHasher`, so ids — and therefore whole documents — are reproducible.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl IdHasher {
    pub fn new() -> IdHasher {
        IdHasher(0xcbf2_9ce4_8422_2325)
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.bytes(&v.to_bits().to_le_bytes());
    }

    pub fn id(&self, prefix: &str) -> String {
        format!("{prefix}-{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis_covers_the_range_with_round_steps() {
        let a = Axis::nice(3.2, 47.9, 6);
        assert!(a.min <= 3.2 && a.max >= 47.9);
        assert_eq!(a.ticks, vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
        assert_eq!(a.decimals, 0);
        let b = Axis::nice(0.012, 0.018, 5);
        assert_eq!(b.decimals, 3);
    }

    #[test]
    fn nice_axis_survives_degenerate_ranges() {
        let flat = Axis::nice(7.0, 7.0, 5);
        assert!(flat.min < 7.0 && flat.max > 7.0);
        let zero = Axis::nice(0.0, 0.0, 5);
        assert!(zero.min < 0.0 && zero.max > 0.0);
        let huge = Axis::nice(-f64::MAX, f64::MAX, 5);
        assert!(huge.min < huge.max);
        assert!(huge.scale(0.0, 100.0, 0.0).is_finite());
        let top = Axis::nice(f64::MAX, f64::MAX, 5);
        assert!(top.min < top.max);
        let nan = Axis::nice(f64::NAN, 1.0, 5);
        assert!(nan.min < nan.max);
    }

    #[test]
    fn numbers_format_for_reading() {
        assert_eq!(num(-0.04), "0");
        assert_eq!(num(12.25), "12.3");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(1e300), "1000000");
        assert_eq!(format_value(1234567.0), "1,234,567");
        assert_eq!(format_value(12.3456), "12.35");
        assert_eq!(format_value(-0.5), "-0.5");
        assert_eq!(format_tick(2500.0, 0), "2,500");
        assert_eq!(format_tick(-0.0, 1), "0.0");
    }

    #[test]
    fn ids_differ_by_input() {
        let mut a = IdHasher::new();
        a.str("ab");
        a.str("c");
        let mut b = IdHasher::new();
        b.str("a");
        b.str("bc");
        assert_ne!(a.id("x"), b.id("x"));
    }
}
