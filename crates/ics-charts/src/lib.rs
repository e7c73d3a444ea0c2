//! Self-contained SVG charts for ICS board packs. Pure rendering: each function
//! takes computed results and returns one `<svg>` string, with no I/O.
//!
//! The output is meant to be pasted inline into an HTML board pack, so it carries
//! everything it needs: no external CSS, fonts (only generic font-family names),
//! scripts or images. Each chart has a `viewBox` (it scales to its container),
//! `role="img"`, and a `<title>` and `<desc>` referenced by `aria-labelledby`, so a
//! screen reader announces the chart's name and a one-paragraph summary. All text
//! is passed through [`escape`]. Element ids are derived from a hash of the chart's
//! input, so several charts can share one page and the same input always renders
//! to the same bytes.
//!
//! # The charts
//!
//! * [`xmr_chart`]: a *Making Data Count* XmR (individuals) chart of an
//!   [`ics_spc::Analysis`]: the data line and points, each partition's mean and
//!   (dashed) process limits — stepping where the series was rebased — the target,
//!   a legend and a caption naming the rule set and the variation and assurance
//!   icons. A run chart (too few points for limits) shows the mean only. Non-finite
//!   values are left out (the line breaks there); series longer than
//!   [`MARKER_LIMIT`] points draw markers only for special-cause points.
//! * [`variation_icon`] and [`assurance_icon`]: the Making Data Count icons, each a small
//!   SVG with its meaning in words.
//! * [`funnel_plot`]: a funnel plot of an [`ics_peers::Funnel`]: each unit's
//!   proportion (as %) against its denominator, the pooled target, and the 95% and
//!   99.8% limit curves (widened for over-dispersion when it was applied, which the
//!   caption says).
//!
//! # Colours
//!
//! Points follow the Making Data Count conventions ([`palette`]):
//!
//! | Meaning | Colour |
//! |---|---|
//! | Special cause improvement / funnel *better* | blue [`palette::IMPROVEMENT`] |
//! | Special cause concern / funnel *worse* | orange [`palette::CONCERN`] |
//! | Special cause with no direction (neither high / low), funnel *higher* / *lower* without a direction | purple [`palette::NEITHER`] |
//! | Common cause, run-chart points / funnel *as expected* | grey [`palette::COMMON_CAUSE`] |
//! | Ghosted (excluded) points | hollow, light grey [`palette::GHOST`] |
//!
//! Colour is never the only cue: every point has a tooltip (`<title>`) naming its
//! classification, and the caption and `<desc>` state the icons in words.

mod funnel;
mod icons;
mod svg;
mod xmr;

pub use funnel::{FunnelPlot, funnel_plot};
pub use icons::{assurance_icon, variation_icon};
pub use xmr::{MARKER_LIMIT, XmrChart, assurance_text, variation_text, xmr_chart};

/// The chart colours (CSS hex colours).
pub mod palette {
    /// Special cause improvement; a funnel unit doing *better* than expected.
    pub const IMPROVEMENT: &str = "#489fdf";
    /// Special cause concern; a funnel unit doing *worse* than expected.
    pub const CONCERN: &str = "#fab428";
    /// Special cause high or low for a measure with no improvement direction.
    pub const NEITHER: &str = "#7b5ea7";
    /// Common cause variation; a funnel unit within its limits.
    pub const COMMON_CAUSE: &str = "#a6a6a6";
    /// Outline of a ghosted point (drawn hollow).
    pub const GHOST: &str = "#c8c8c8";
    /// The data line.
    pub const LINE: &str = "#7b7d7d";
    /// Centre (mean) lines.
    pub const MEAN: &str = "#231f20";
    /// Process limits and funnel limits.
    pub const LIMIT: &str = "#5f6b73";
    /// The target line of an XmR chart.
    pub const TARGET: &str = "#c4262e";
    /// Axis text, titles and captions.
    pub const TEXT: &str = "#231f20";
    /// Axes and gridlines.
    pub const AXIS: &str = "#b0b6ba";
    /// Gridlines.
    pub const GRID: &str = "#e8edee";
}

/// Escapes `text` for use in XML character data or a double- or single-quoted
/// attribute value.
///
/// Characters XML 1.0 does not allow at all (most C0 controls, lone surrogates
/// cannot occur in a `str`, U+FFFE and U+FFFF) are dropped, since no escape makes
/// them legal and a single one would make the whole board pack ill-formed.
///
/// ```
/// assert_eq!(ics_charts::escape(r#"A&E <4h "target""#), "A&amp;E &lt;4h &quot;target&quot;");
/// ```
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::escape;
    use crate::test_support::assert_well_formed;

    #[test]
    fn escape_replaces_markup_characters() {
        assert_eq!(
            escape("<a & b=\"c\" 'd'>"),
            "&lt;a &amp; b=&quot;c&quot; &apos;d&apos;&gt;"
        );
    }

    #[test]
    fn escape_keeps_unicode_and_drops_illegal_controls() {
        assert_eq!(escape("φ ≥ 1 – ok\u{0}\u{1b}\u{fffe}"), "φ ≥ 1 – ok");
        assert_eq!(escape("a\tb\nc"), "a\tb\nc");
    }

    #[test]
    fn escaped_text_is_well_formed_inside_an_element() {
        let doc = format!("<svg><text a=\"{0}\">{0}</text></svg>", escape("<&\">'"));
        assert_well_formed(&doc);
    }
}
