//! Workshop outcomes in words and figures, shared by the command line's `report outcomes`, the
//! board pack and the demo, so that every place prints the headline the same way the seed's
//! table does.

use ics_proto::events::v1::{FollowUpCheckpoint, MetricKind, MetricUnit};
use ics_proto::reporting::v1::{
    CheckpointSustainment, KindOutcome, OutcomeGroup, Outcomes, OutcomesUpdate, Scope,
};

use crate::text::{Align, Table, date_text, metric_unit_word, scope_text};

/// The order of the seed's headline table.
pub const KINDS: [MetricKind; 3] = [
    MetricKind::ProcessTime,
    MetricKind::ErrorCount,
    MetricKind::ErrorRate,
];

pub const CHECKPOINTS: [FollowUpCheckpoint; 4] = [
    FollowUpCheckpoint::Day30,
    FollowUpCheckpoint::Day60,
    FollowUpCheckpoint::Day90,
    FollowUpCheckpoint::Day365,
];

/// One line under the headline table, so that nobody mistakes the pooled figure for an average.
pub const DEFINITIONS_LINE: &str = "Definitions: workshops that delivered a report-out and were \
not cancelled, under each kind they measured; reduction = pooled 1 − Σafter ÷ Σbaseline over the \
kind's metrics; hours = Σ(baseline − after), minutes and days converted; mean and median are of \
the per-workshop reductions; sustained = share of follow-up measurements at or better than target \
(missed follow-ups counted apart).";

/// The definitions one by one, for the board pack.
pub const DEFINITIONS: [(&str, &str); 6] = [
    (
        "Workshops",
        "Improvement events in the scope that delivered a report-out and were not cancelled. A \
         workshop counts under a kind when its target sheet has a metric of that kind.",
    ),
    (
        "Reduction (pooled)",
        "1 − Σ after ÷ Σ baseline over all the kind's metrics: large workshops weigh more.",
    ),
    (
        "Hours",
        "Σ (baseline − after) over the process-time metrics, minutes and days converted to \
         hours. Error counts are in counts, error rates in percentage points.",
    ),
    (
        "Mean and median reduction",
        "Of the per-workshop reductions, each 1 − Σ after ÷ Σ baseline over that workshop's \
         metrics of the kind: every workshop weighs the same.",
    ),
    (
        "Sustained",
        "Of the metrics re-measured 30, 60, 90 or 365 days after the workshop, the share at or \
         better than (≤) the target. Follow-ups that were missed are counted separately and \
         are not in the share.",
    ),
    (
        "Scope",
        "In an ICS, the workshops of trusts that belong to it on the report's date; in a \
         programme, those of its trusts held within the programme's dates.",
    ),
];

/// The seed's words: "process time", "total errors", "error rate".
pub fn kind_label(kind: i32) -> String {
    match MetricKind::try_from(kind) {
        Ok(MetricKind::ProcessTime) => "process time".to_owned(),
        Ok(MetricKind::ErrorCount) => "total errors".to_owned(),
        Ok(MetricKind::ErrorRate) => "error rate".to_owned(),
        Ok(MetricKind::Unspecified) => "-".to_owned(),
        Err(_) => kind.to_string(),
    }
}

pub fn find_kind(kinds: &[KindOutcome], kind: MetricKind) -> Option<&KindOutcome> {
    kinds.iter().find(|outcome| outcome.kind == kind as i32)
}

/// The kinds a group has workshops of, in headline order, then any kind this client does not
/// know (a newer server) so that nothing the server sent is dropped.
pub fn kinds_in_order(kinds: &[KindOutcome]) -> Vec<&KindOutcome> {
    let mut ordered: Vec<&KindOutcome> = KINDS
        .iter()
        .filter_map(|kind| find_kind(kinds, *kind))
        .collect();
    ordered.extend(
        kinds
            .iter()
            .filter(|outcome| !KINDS.iter().any(|kind| outcome.kind == *kind as i32)),
    );
    ordered
}

/// As [`kinds_in_order`], leaving out kinds without workshops: an ICS's trusts that ran none
/// would otherwise fill the table with rows of dashes.
pub fn kinds_with_workshops(kinds: &[KindOutcome]) -> Vec<&KindOutcome> {
    kinds_in_order(kinds)
        .into_iter()
        .filter(|outcome| outcome.workshops > 0)
        .collect()
}

/// A share as a whole percentage: `0.62` → `62%`.
pub fn percent(share: f64) -> String {
    let rounded = (share * 100.0).round();
    // -0.4% rounds to -0, which reads as a loss that did not happen.
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    format!("{rounded:.0}%")
}

/// A quantity rounded to a whole number with thousands separators: `3020.4` → `3,020`.
pub fn grouped(quantity: f64) -> String {
    let rounded = quantity.round();
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    let digits = format!("{:.0}", rounded.abs());
    let mut text = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    if rounded < 0.0 {
        format!("-{text}")
    } else {
        text
    }
}

fn has_workshops(outcome: Option<&KindOutcome>) -> Option<&KindOutcome> {
    outcome.filter(|outcome| outcome.workshops > 0)
}

/// The seed's reduction cell: `62% = 3,020 hours` for process time, `67%` for the others,
/// `-` without workshops.
pub fn reduction_text(outcome: Option<&KindOutcome>) -> String {
    let Some(outcome) = has_workshops(outcome) else {
        return "-".to_owned();
    };
    let share = percent(outcome.pooled_reduction);
    if outcome.kind != MetricKind::ProcessTime as i32 {
        return share;
    }
    let unit = match MetricUnit::try_from(outcome.unit) {
        // Process time is reported in hours; an unset unit means the server did not say.
        Ok(MetricUnit::Hours | MetricUnit::Unspecified) => "hours".to_owned(),
        _ => metric_unit_word(outcome.unit),
    };
    format!("{share} = {} {unit}", grouped(outcome.absolute_reduction))
}

pub fn checkpoint_label(checkpoint: i32) -> String {
    match FollowUpCheckpoint::try_from(checkpoint) {
        Ok(FollowUpCheckpoint::Day30) => "30 days".to_owned(),
        Ok(FollowUpCheckpoint::Day60) => "60 days".to_owned(),
        Ok(FollowUpCheckpoint::Day90) => "90 days".to_owned(),
        Ok(FollowUpCheckpoint::Day365) => "365 days".to_owned(),
        _ => checkpoint.to_string(),
    }
}

pub fn find_checkpoint(
    outcome: &KindOutcome,
    checkpoint: FollowUpCheckpoint,
) -> Option<&CheckpointSustainment> {
    outcome
        .sustainment
        .iter()
        .find(|sustainment| sustainment.checkpoint == checkpoint as i32)
}

/// `78% (64/82)`, with `, 3 missed` when follow-ups were missed; `-` when nothing was measured.
pub fn sustainment_text(sustainment: Option<&CheckpointSustainment>) -> String {
    let Some(sustainment) = sustainment else {
        return "-".to_owned();
    };
    let measured = if sustainment.measured == 0 {
        "-".to_owned()
    } else {
        format!(
            "{} ({}/{})",
            percent(sustainment.share_sustained),
            sustainment.sustained,
            sustainment.measured
        )
    };
    if sustainment.missed == 0 {
        measured
    } else {
        format!("{measured}, {} missed", sustainment.missed)
    }
}

/// The scope's own name, or what it is when the server sent none.
pub fn scope_name(outcomes: &Outcomes) -> String {
    named_scope(&outcomes.name, outcomes.scope.as_ref())
}

/// `name`, or what the scope is when the server sent no name.
pub fn named_scope(name: &str, scope: Option<&Scope>) -> String {
    if name.is_empty() {
        scope_text(scope)
    } else {
        name.to_owned()
    }
}

/// The headline table as the seed prints it: every kind, even one without workshops.
pub fn headline_table(headline: &[KindOutcome]) -> Table {
    let mut table = Table::new(&[
        ("improvement kind", Align::Left),
        ("workshops", Align::Right),
        ("reduction", Align::Left),
    ]);
    for kind in KINDS {
        let outcome = find_kind(headline, kind);
        table.row(vec![
            kind_label(kind as i32),
            outcome
                .map(|outcome| outcome.workshops)
                .unwrap_or(0)
                .to_string(),
            reduction_text(outcome),
        ]);
    }
    table
}

fn group_rows(table: &mut Table, group: &OutcomeGroup) {
    let kinds = kinds_with_workshops(&group.kinds);
    if kinds.is_empty() {
        let mut row = vec![group.key.clone(), group.name.clone(), "-".to_owned()];
        row.extend(std::iter::repeat_n("-".to_owned(), 8));
        row[3] = "0".to_owned();
        table.row(row);
        return;
    }
    for outcome in kinds {
        let mut row = vec![
            group.key.clone(),
            group.name.clone(),
            kind_label(outcome.kind),
            outcome.workshops.to_string(),
            reduction_text(Some(outcome)),
            percent(outcome.mean_reduction),
            percent(outcome.median_reduction),
        ];
        for checkpoint in CHECKPOINTS {
            row.push(sustainment_text(find_checkpoint(outcome, checkpoint)));
        }
        table.row(row);
    }
}

/// `report outcomes`: a heading, the headline table, the definitions, then a row per trust and
/// kind with the averages and the sustainment at each follow-up.
pub fn outcomes_lines(outcomes: &Outcomes) -> Vec<String> {
    let mut lines = vec![format!(
        "Workshop outcomes of {} ({}) as of {}",
        scope_name(outcomes),
        scope_text(outcomes.scope.as_ref()),
        date_text(outcomes.as_of.as_ref())
    )];
    lines.extend(headline_table(&outcomes.headline).lines());
    lines.push(DEFINITIONS_LINE.to_owned());
    if outcomes.by_trust.is_empty() {
        return lines;
    }
    lines.push(String::new());
    let mut table = Table::new(&[
        ("trust", Align::Left),
        ("name", Align::Left),
        ("improvement kind", Align::Left),
        ("workshops", Align::Right),
        ("reduction", Align::Left),
        ("mean", Align::Right),
        ("median", Align::Right),
        ("sustained 30d", Align::Left),
        ("60d", Align::Left),
        ("90d", Align::Left),
        ("365d", Align::Left),
    ]);
    for group in &outcomes.by_trust {
        group_rows(&mut table, group);
    }
    lines.extend(table.lines());
    lines
}

/// `process time 82 workshops 62% = 3,020 hours; total errors 54 workshops 67%; …`
pub fn headline_summary(headline: &[KindOutcome]) -> String {
    KINDS
        .iter()
        .map(|kind| {
            let outcome = find_kind(headline, *kind);
            let workshops = outcome.map(|outcome| outcome.workshops).unwrap_or(0);
            let noun = if workshops == 1 {
                "workshop"
            } else {
                "workshops"
            };
            format!(
                "{} {workshops} {noun} {}",
                kind_label(*kind as i32),
                reduction_text(outcome)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One line per watched update: what happened, then the headline after it.
pub fn update_line(update: &OutcomesUpdate) -> String {
    let event = if update.event_type.is_empty() {
        "initial"
    } else {
        update
            .event_type
            .strip_prefix("ics.events.v1.")
            .unwrap_or(&update.event_type)
    };
    let Some(outcomes) = &update.outcomes else {
        return format!("{event}: (no outcomes)");
    };
    format!(
        "{event}: {}: {}",
        scope_name(outcomes),
        headline_summary(&outcomes.headline)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{kind_outcome, programme_outcomes, sustainment};

    #[test]
    fn the_headline_reads_like_the_seed() {
        let lines = outcomes_lines(&programme_outcomes());
        assert_eq!(
            lines[0],
            "Workshop outcomes of NHS–Virginia Mason Institute partnership (programme p-1) as of \
             2021-06-30"
        );
        assert_eq!(
            &lines[1..5],
            [
                "improvement kind  workshops  reduction",
                "process time             82  62% = 3,020 hours",
                "total errors             54  67%",
                "error rate               90  63%",
            ]
        );
        assert!(lines[5].starts_with("Definitions: "));
        assert!(lines[5].contains("1 − Σafter ÷ Σbaseline"));
        assert!(lines[7].starts_with("trust  name"));
        assert!(
            lines[8].starts_with("RTP    Surrey and Sussex Healthcare NHS Trust  process time")
        );
        assert!(lines[8].contains("64% = 960 hours"));
        assert!(lines[8].contains("73% (16/22)"));
        assert!(lines[8].ends_with("37% (7/19), 3 missed"));
        assert!(lines[10].starts_with("ZZ1    A&B <Trust>"));
        assert!(
            lines[10].contains("error rate"),
            "kinds without workshops are left out"
        );
        assert!(lines[10].contains("-4%"), "a worsening shows as negative");
        assert!(lines[11].starts_with("RCF    Airedale NHS Foundation Trust  "));
        assert_eq!(
            lines[11].split_whitespace().skip(5).collect::<Vec<_>>(),
            ["-", "0", "-", "-", "-", "-", "-", "-", "-"],
            "a trust without workshops has one row"
        );
        assert_eq!(lines.len(), 12);
    }

    #[test]
    fn kinds_without_workshops_still_have_a_headline_row() {
        let outcomes = Outcomes {
            headline: vec![kind_outcome(MetricKind::ErrorCount, 1, 10.0, 5.0)],
            ..Outcomes::default()
        };
        let lines = outcomes_lines(&outcomes);
        assert_eq!(lines[0], "Workshop outcomes of no scope (no scope) as of -");
        assert_eq!(lines[2], "process time              0  -");
        assert_eq!(lines[3], "total errors              1  50%");
        assert_eq!(lines.len(), 6, "no per-trust table without trusts");
    }

    #[test]
    fn numbers_read_plainly() {
        assert_eq!(percent(0.619_996), "62%");
        assert_eq!(percent(-0.004), "0%");
        assert_eq!(percent(-0.05), "-5%");
        assert_eq!(grouped(3020.0), "3,020");
        assert_eq!(grouped(3_019.999_999), "3,020");
        assert_eq!(grouped(999.4), "999");
        assert_eq!(grouped(1_234_567.0), "1,234,567");
        assert_eq!(grouped(-4321.0), "-4,321");
        assert_eq!(grouped(-0.2), "0");
        assert_eq!(sustainment_text(None), "-");
        assert_eq!(
            sustainment_text(Some(&sustainment(FollowUpCheckpoint::Day365, 0, 0, 2))),
            "-, 2 missed"
        );
    }

    #[test]
    fn watch_lines_carry_the_headline() {
        let update = OutcomesUpdate {
            outcomes: Some(programme_outcomes()),
            event_type: "ics.events.v1.ReportOutDelivered".to_owned(),
            event_id: "e-1".to_owned(),
        };
        assert_eq!(
            update_line(&update),
            "ReportOutDelivered: NHS–Virginia Mason Institute partnership: process time 82 \
             workshops 62% = 3,020 hours; total errors 54 workshops 67%; error rate 90 workshops \
             63%"
        );
        let first = OutcomesUpdate {
            event_type: String::new(),
            outcomes: None,
            ..update
        };
        assert_eq!(update_line(&first), "initial: (no outcomes)");
    }
}
