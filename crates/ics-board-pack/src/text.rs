//! Values as people read them — enum values as command-line words, dates, scaled figures — and
//! plain-text tables, shared by the board pack, the outcome summaries and the command-line
//! client so that a figure reads the same wherever it is printed.

use ics_proto::{events, reporting};

/// The command-line word for a protobuf enum value: `CQC_RATING_REQUIRES_IMPROVEMENT` becomes
/// `requires-improvement`, the same word the flags accept. Unset is `-`; a number this client
/// does not know is shown as the number.
pub fn enum_word(enum_name: &str, number: i32) -> String {
    if number == 0 {
        return "-".to_owned();
    }
    let Some(descriptor) = ics_proto::shared_descriptor_pool().get_enum_by_name(enum_name) else {
        return number.to_string();
    };
    let Some(value) = descriptor.get_value(number) else {
        return number.to_string();
    };
    let prefix = descriptor
        .get_value(0)
        .map(|unspecified| {
            unspecified
                .name()
                .trim_end_matches("UNSPECIFIED")
                .to_owned()
        })
        .unwrap_or_default();
    value
        .name()
        .strip_prefix(&prefix)
        .unwrap_or(value.name())
        .to_ascii_lowercase()
        .replace('_', "-")
}

pub fn kind_word(number: i32) -> String {
    enum_word("ics.events.v1.OrganisationKind", number)
}

pub fn rating_word(number: i32) -> String {
    enum_word("ics.events.v1.CqcRating", number)
}

pub fn executive_role_word(number: i32) -> String {
    enum_word("ics.events.v1.ExecutiveRole", number)
}

pub fn origin_word(number: i32) -> String {
    enum_word("ics.events.v1.ValueStreamOrigin", number)
}

pub fn status_word(number: i32) -> String {
    enum_word("ics.events.v1.ValueStreamStatus", number)
}

pub fn board_role_word(number: i32) -> String {
    enum_word("ics.events.v1.BoardRole", number)
}

pub fn metric_kind_word(number: i32) -> String {
    enum_word("ics.events.v1.MetricKind", number)
}

pub fn metric_unit_word(number: i32) -> String {
    enum_word("ics.events.v1.MetricUnit", number)
}

/// As the `--kind` flag spells it: `3p` rather than the enum's `three-p`.
pub fn workshop_kind_word(number: i32) -> String {
    if number == events::v1::WorkshopKind::ThreeP as i32 {
        return "3p".to_owned();
    }
    enum_word("ics.events.v1.WorkshopKind", number)
}

pub fn workshop_status_word(number: i32) -> String {
    enum_word("ics.workshops.v1.WorkshopStatus", number)
}

pub fn follow_up_state_word(number: i32) -> String {
    enum_word("ics.workshops.v1.FollowUpState", number)
}

/// `30`, `60`, `90` or `365`: the days after the workshop, as `--checkpoint` takes them.
pub fn checkpoint_days(number: i32) -> String {
    use events::v1::FollowUpCheckpoint;
    match FollowUpCheckpoint::try_from(number) {
        Ok(FollowUpCheckpoint::Day30) => "30".to_owned(),
        Ok(FollowUpCheckpoint::Day60) => "60".to_owned(),
        Ok(FollowUpCheckpoint::Day90) => "90".to_owned(),
        Ok(FollowUpCheckpoint::Day365) => "365".to_owned(),
        Ok(FollowUpCheckpoint::Unspecified) => "-".to_owned(),
        Err(_) => number.to_string(),
    }
}

pub fn direction_word(number: i32) -> String {
    enum_word("ics.events.v1.ImprovementDirection", number)
}

pub fn scoring_word(number: i32) -> String {
    enum_word("ics.events.v1.MeasureScoring", number)
}

pub fn frequency_word(number: i32) -> String {
    enum_word("ics.events.v1.MeasureFrequency", number)
}

pub fn rule_set_word(number: i32) -> String {
    enum_word("ics.events.v1.SpcRuleSet", number)
}

pub fn conflict_rule_word(number: i32) -> String {
    enum_word("ics.events.v1.SpcConflictRule", number)
}

pub fn classification_word(number: i32) -> String {
    enum_word("ics.events.v1.SpcClassification", number)
}

pub fn spc_rule_word(number: i32) -> String {
    enum_word("ics.events.v1.SpcRule", number)
}

pub fn variation_word(number: i32) -> String {
    enum_word("ics.events.v1.VariationIcon", number)
}

pub fn assurance_word(number: i32) -> String {
    enum_word("ics.events.v1.AssuranceIcon", number)
}

pub fn peer_method_word(number: i32) -> String {
    enum_word("ics.events.v1.PeerGroupMethod", number)
}

pub fn peer_band_word(number: i32) -> String {
    enum_word("ics.reporting.v1.PeerBand", number)
}

/// The rule set that produced an SPC result, e.g. `MDC 2.5`; `-` when none is named.
pub fn rule_set_text(rule_set: Option<&events::v1::SpcRuleSetVersion>) -> String {
    match rule_set {
        Some(rule_set) if !rule_set.name.is_empty() => {
            format!("{} {}", rule_set.name, rule_set.version)
                .trim_end()
                .to_owned()
        }
        _ => "-".to_owned(),
    }
}

/// A measure's display scale, 1 when unset (or nonsensical).
pub fn display_scale(scale: f64) -> f64 {
    if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    }
}

/// A stored value as people read it: multiplied by the display scale, two decimals.
pub fn scaled_text(value: f64, scale: f64) -> String {
    format!("{:.2}", value * display_scale(scale))
}

/// As [`scaled_text`], `-` when absent.
pub fn optional_scaled_text(value: Option<f64>, scale: f64) -> String {
    value
        .map(|value| scaled_text(value, scale))
        .unwrap_or_else(|| "-".to_owned())
}

/// The scope of a report in words, for when the server sent no name.
pub fn scope_text(scope: Option<&reporting::v1::Scope>) -> String {
    use reporting::v1::scope::Scope;
    match scope.and_then(|scope| scope.scope.as_ref()) {
        Some(Scope::IcsOdsCode(ics)) => format!("ICS {ics}"),
        Some(Scope::ProgrammeId(programme)) => format!("programme {programme}"),
        None => "no scope".to_owned(),
    }
}

/// Whom a measure is compared with: the ICS's member trusts unless a peer group is named.
pub fn peer_group_text(peer_group_id: &str, version: u32) -> String {
    if peer_group_id.is_empty() {
        "the ICS's member trusts".to_owned()
    } else {
        format!("peer group {peer_group_id} (version {version})")
    }
}

pub fn date_text(date: Option<&events::v1::Date>) -> String {
    date.map(ics_proto::date::iso)
        .unwrap_or_else(|| "-".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A plain-text table whose columns are as wide as their widest cell.
#[derive(Debug)]
pub struct Table {
    headings: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headings: &[(&str, Align)]) -> Self {
        Self {
            headings: headings
                .iter()
                .map(|(heading, align)| ((*heading).to_owned(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// The column headings, for renderings other than plain text (the dashboard's HTML).
    pub fn headings(&self) -> impl Iterator<Item = &str> {
        self.headings.iter().map(|(heading, _)| heading.as_str())
    }

    pub fn lines(&self) -> Vec<String> {
        let mut widths: Vec<usize> = self
            .headings
            .iter()
            .map(|(heading, _)| heading.chars().count())
            .collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(index) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let headings: Vec<String> = self
            .headings
            .iter()
            .map(|(heading, _)| heading.clone())
            .collect();
        std::iter::once(&headings)
            .chain(self.rows.iter())
            .map(|cells| {
                let padded: Vec<String> = cells
                    .iter()
                    .enumerate()
                    .map(|(index, cell)| {
                        let width = widths.get(index).copied().unwrap_or(0);
                        let align = self
                            .headings
                            .get(index)
                            .map(|(_, align)| *align)
                            .unwrap_or(Align::Left);
                        match align {
                            Align::Left => format!("{cell:<width$}"),
                            Align::Right => format!("{cell:>width$}"),
                        }
                    })
                    .collect();
                padded.join("  ").trim_end().to_owned()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::events::v1::Date;

    #[test]
    fn enum_values_read_as_command_line_words() {
        assert_eq!(rating_word(3), "requires-improvement");
        assert_eq!(kind_word(2), "foundation-trust");
        assert_eq!(executive_role_word(6), "chief-operating-officer");
        assert_eq!(status_word(0), "-");
        assert_eq!(status_word(99), "99");
        assert_eq!(metric_kind_word(1), "process-time");
        assert_eq!(metric_unit_word(5), "percent");
        assert_eq!(workshop_kind_word(3), "3p");
        assert_eq!(workshop_kind_word(4), "value-stream-analysis");
        assert_eq!(workshop_status_word(4), "reported-out");
        assert_eq!(follow_up_state_word(3), "missed");
        assert_eq!(checkpoint_days(4), "365");
    }

    #[test]
    fn dates_read_plainly() {
        let date = Date {
            year: 2016,
            month: 1,
            day: 15,
        };
        assert_eq!(date_text(Some(&date)), "2016-01-15");
        assert_eq!(date_text(None), "-");
    }

    #[test]
    fn tables_align_their_columns() {
        let mut table = Table::new(&[("trust", Align::Left), ("participants", Align::Right)]);
        table.row(vec!["RTP".to_owned(), "230".to_owned()]);
        table.row(vec!["total".to_owned(), "1060".to_owned()]);
        assert_eq!(
            table.lines(),
            vec![
                "trust  participants",
                "RTP             230",
                "total          1060"
            ]
        );
    }
}
