//! The Making Data Count variation and assurance icons, as small inline SVGs: a coloured disc
//! with the letter boards know (H or L for a special cause high or low, P, F or ? for
//! assurance) and an arrow for the direction of improvement. Each is `role="img"` with a
//! `<title>` in words, so colour and letter are never the only cue.

use ics_spc::{AssuranceIcon, VariationIcon};

use crate::{assurance_text, escape, palette};

/// Side of an icon in CSS pixels.
const SIZE: u32 = 32;

fn icon(fill: &str, letter: &str, mark: &str, title: &str) -> String {
    // Dark text on the light MDC colours keeps the letter at AA contrast.
    format!(
        r##"<svg class="mdc-icon" xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 32 32" role="img" aria-label="{title}"><title>{title}</title><circle cx="16" cy="16" r="14" fill="{fill}" stroke="{text}" stroke-width="1.5"/><text x="16" y="21" font-family="sans-serif" font-size="14" font-weight="bold" text-anchor="middle" fill="{text}">{letter}</text>{mark}</svg>"##,
        title = escape(title),
        text = palette::TEXT,
    )
}

/// The variation icon of `icon` ([`crate::variation_text`] in words).
#[must_use]
pub fn variation_icon(icon_kind: VariationIcon) -> String {
    let title = format!("Variation: {}", crate::variation_text(icon_kind));
    let up = r##"<path d="M25 10 l3 4 h-6 z" fill="#231f20"/>"##;
    let down = r##"<path d="M25 22 l3 -4 h-6 z" fill="#231f20"/>"##;
    match icon_kind {
        VariationIcon::CommonCause => icon(palette::COMMON_CAUSE, "~", "", &title),
        VariationIcon::ImprovementHigh => icon(palette::IMPROVEMENT, "H", up, &title),
        VariationIcon::ImprovementLow => icon(palette::IMPROVEMENT, "L", down, &title),
        VariationIcon::ConcernHigh => icon(palette::CONCERN, "H", up, &title),
        VariationIcon::ConcernLow => icon(palette::CONCERN, "L", down, &title),
        VariationIcon::NeitherHigh => icon("#b9a6d6", "H", up, &title),
        VariationIcon::NeitherLow => icon("#b9a6d6", "L", down, &title),
    }
}

/// The assurance icon of `icon` ([`assurance_text`] in words).
#[must_use]
pub fn assurance_icon(icon_kind: AssuranceIcon) -> String {
    let title = format!("Assurance: {}", assurance_text(icon_kind));
    match icon_kind {
        AssuranceIcon::Pass => icon(palette::IMPROVEMENT, "P", "", &title),
        AssuranceIcon::Fail => icon(palette::CONCERN, "F", "", &title),
        AssuranceIcon::HitOrMiss => icon(palette::COMMON_CAUSE, "?", "", &title),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_icon_names_itself_in_words() {
        for icon_kind in [
            VariationIcon::CommonCause,
            VariationIcon::ImprovementHigh,
            VariationIcon::ImprovementLow,
            VariationIcon::ConcernHigh,
            VariationIcon::ConcernLow,
            VariationIcon::NeitherHigh,
            VariationIcon::NeitherLow,
        ] {
            let svg = variation_icon(icon_kind);
            let words = crate::variation_text(icon_kind);
            assert!(
                svg.contains(&format!("<title>Variation: {}</title>", escape(words))),
                "{svg}"
            );
            assert!(svg.contains(r#"role="img""#));
        }
        let pass = assurance_icon(AssuranceIcon::Pass);
        assert!(pass.contains("consistently passing the target") && pass.contains(">P<"));
    }
}
