//! Turning command-line words into API values: ISO dates, kebab-case enum words and principal
//! specs. Parsers return `String` errors so that clap reports them as usage errors (exit 2).

use chrono::NaiveDate;
use clap::ValueEnum;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use ics_auth::Principal;
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    BoardRole, CqcRating, Date, ExecutiveRole, FollowUpCheckpoint, MeasureFrequency,
    MeasureScoring, MetricKind, MetricUnit, MetricValue, OrganisationKind, PartitionMarkKind,
    PeerGroupMethod, SpcConflictRule, SpcRuleSet, TargetMetric, ValueStreamOrigin,
    ValueStreamStatus, WorkshopKind,
};
use ics_spc::Direction;

/// Parses a calendar date written exactly as `YYYY-MM-DD`.
///
/// Only the shape and the calendar are checked here; whether a date makes sense for a command
/// (in the future, before a start date…) is for the server to judge.
pub fn parse_date(text: &str) -> Result<Date, String> {
    let bytes = text.as_bytes();
    let well_formed = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(index, byte)| index == 4 || index == 7 || byte.is_ascii_digit());
    if !well_formed {
        return Err(format!(
            "'{text}' is not a date: write it as YYYY-MM-DD, e.g. 2015-07-01"
        ));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(from_naive)
        .map_err(|_| format!("'{text}' is not a real calendar date"))
}

/// Parses who a locally minted token speaks for: `operator`, `trust:<ODS>`, `board:ics:<ODS>`,
/// `board:programme:<id>` or `board:ics:<ODS>:programme:<id>`.
pub fn parse_principal(spec: &str) -> Result<Principal, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let principal = match parts.as_slice() {
        ["operator"] => Some(Principal::Operator),
        ["trust", ods_code] if is_identifier(ods_code) => Some(Principal::TrustWriter {
            ods_code: (*ods_code).to_owned(),
        }),
        ["board", "ics", ics_ods_code] if is_identifier(ics_ods_code) => {
            Some(Principal::BoardReader {
                ics_ods_code: Some((*ics_ods_code).to_owned()),
                programme_id: None,
            })
        }
        ["board", "programme", programme_id] if is_identifier(programme_id) => {
            Some(Principal::BoardReader {
                ics_ods_code: None,
                programme_id: Some((*programme_id).to_owned()),
            })
        }
        ["board", "ics", ics_ods_code, "programme", programme_id]
            if is_identifier(ics_ods_code) && is_identifier(programme_id) =>
        {
            Some(Principal::BoardReader {
                ics_ods_code: Some((*ics_ods_code).to_owned()),
                programme_id: Some((*programme_id).to_owned()),
            })
        }
        _ => None,
    };
    principal.ok_or_else(|| {
        format!(
            "'{spec}' is not a principal: use operator, trust:<ODS>, board:ics:<ODS> or \
             board:programme:<id>"
        )
    })
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(char::is_whitespace)
}

/// Kinds of organisation, as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Trust,
    FoundationTrust,
    Icb,
    Region,
    Regulator,
}

impl From<Kind> for OrganisationKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Trust => OrganisationKind::Trust,
            Kind::FoundationTrust => OrganisationKind::FoundationTrust,
            Kind::Icb => OrganisationKind::Icb,
            Kind::Region => OrganisationKind::Region,
            Kind::Regulator => OrganisationKind::Regulator,
        }
    }
}

/// A CQC rating, overall or for one key question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rating {
    Outstanding,
    Good,
    RequiresImprovement,
    Inadequate,
}

impl From<Rating> for CqcRating {
    fn from(rating: Rating) -> Self {
        match rating {
            Rating::Outstanding => CqcRating::Outstanding,
            Rating::Good => CqcRating::Good,
            Rating::RequiresImprovement => CqcRating::RequiresImprovement,
            Rating::Inadequate => CqcRating::Inadequate,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecRole {
    ChiefExecutive,
    Chair,
    MedicalDirector,
    DirectorOfNursing,
    FinanceDirector,
    ChiefOperatingOfficer,
    DirectorOfImprovement,
}

impl From<ExecRole> for ExecutiveRole {
    fn from(role: ExecRole) -> Self {
        match role {
            ExecRole::ChiefExecutive => ExecutiveRole::ChiefExecutive,
            ExecRole::Chair => ExecutiveRole::Chair,
            ExecRole::MedicalDirector => ExecutiveRole::MedicalDirector,
            ExecRole::DirectorOfNursing => ExecutiveRole::DirectorOfNursing,
            ExecRole::FinanceDirector => ExecutiveRole::FinanceDirector,
            ExecRole::ChiefOperatingOfficer => ExecutiveRole::ChiefOperatingOfficer,
            ExecRole::DirectorOfImprovement => ExecutiveRole::DirectorOfImprovement,
        }
    }
}

/// How a value stream was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Origin {
    TopDown,
    BottomUp,
}

impl From<Origin> for ValueStreamOrigin {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::TopDown => ValueStreamOrigin::TopDown,
            Origin::BottomUp => ValueStreamOrigin::BottomUp,
        }
    }
}

/// A value stream's status. `closed` is accepted so that the server, not the client, explains
/// that closing has its own command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    Proposed,
    Active,
    Sustaining,
    Closed,
}

impl From<Status> for ValueStreamStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Proposed => ValueStreamStatus::Proposed,
            Status::Active => ValueStreamStatus::Active,
            Status::Sustaining => ValueStreamStatus::Sustaining,
            Status::Closed => ValueStreamStatus::Closed,
        }
    }
}

/// A seat on a programme's guiding board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Seat {
    Chair,
    ChiefExecutive,
    Regulator,
    Adviser,
}

impl From<Seat> for BoardRole {
    fn from(seat: Seat) -> Self {
        match seat {
            Seat::Chair => BoardRole::Chair,
            Seat::ChiefExecutive => BoardRole::ChiefExecutive,
            Seat::Regulator => BoardRole::Regulator,
            Seat::Adviser => BoardRole::Adviser,
        }
    }
}

/// The kind of improvement event. `3p` is the name improvement teams use for production
/// preparation process events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventKind {
    Rpiw,
    Kaizen,
    #[value(name = "3p")]
    ThreeP,
    ValueStreamAnalysis,
}

impl From<EventKind> for WorkshopKind {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::Rpiw => WorkshopKind::Rpiw,
            EventKind::Kaizen => WorkshopKind::Kaizen,
            EventKind::ThreeP => WorkshopKind::ThreeP,
            EventKind::ValueStreamAnalysis => WorkshopKind::ValueStreamAnalysis,
        }
    }
}

/// A follow-up re-measurement, in days after the last workshop day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Checkpoint {
    #[value(name = "30")]
    Day30,
    #[value(name = "60")]
    Day60,
    #[value(name = "90")]
    Day90,
    #[value(name = "365")]
    Day365,
}

impl From<Checkpoint> for FollowUpCheckpoint {
    fn from(checkpoint: Checkpoint) -> Self {
        match checkpoint {
            Checkpoint::Day30 => FollowUpCheckpoint::Day30,
            Checkpoint::Day60 => FollowUpCheckpoint::Day60,
            Checkpoint::Day90 => FollowUpCheckpoint::Day90,
            Checkpoint::Day365 => FollowUpCheckpoint::Day365,
        }
    }
}

/// Which way is better for a measure, as `--direction` takes it: `increase`, `decrease` or
/// `neither`, listed in `--help` and checked by clap like the other enum flags.
pub fn direction_parser() -> impl TypedValueParser<Value = Direction> {
    PossibleValuesParser::new(["increase", "decrease", "neither"]).map(|word| match word.as_str() {
        "increase" => Direction::Increase,
        "decrease" => Direction::Decrease,
        _ => Direction::Neither,
    })
}

/// How a measure's value is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scoring {
    /// numerator ÷ denominator as a fraction 0–1.
    Proportion,
    /// numerator ÷ denominator (numerator ≤ denominator), shown scaled.
    Rate,
    /// A value with no numerator or denominator: a score, an index.
    Continuous,
}

impl From<Scoring> for MeasureScoring {
    fn from(scoring: Scoring) -> Self {
        match scoring {
            Scoring::Proportion => MeasureScoring::Proportion,
            Scoring::Rate => MeasureScoring::Rate,
            Scoring::Continuous => MeasureScoring::Continuous,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Annual,
}

impl From<Frequency> for MeasureFrequency {
    fn from(frequency: Frequency) -> Self {
        match frequency {
            Frequency::Daily => MeasureFrequency::Daily,
            Frequency::Weekly => MeasureFrequency::Weekly,
            Frequency::Monthly => MeasureFrequency::Monthly,
            Frequency::Quarterly => MeasureFrequency::Quarterly,
            Frequency::Annual => MeasureFrequency::Annual,
        }
    }
}

/// The SPC rule set. `mdc-v2-5` is how the rest of the client prints it; `mdc-v2.5` is how
/// people write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuleSet {
    /// NHS England Making Data Count v2.5.
    #[value(name = "mdc-v2-5", alias = "mdc-v2.5")]
    MdcV2_5,
    /// The NHSRplotthedots R package's choices.
    NhsrPlotthedots,
}

impl From<RuleSet> for SpcRuleSet {
    fn from(rule_set: RuleSet) -> Self {
        match rule_set {
            RuleSet::MdcV2_5 => SpcRuleSet::MdcV25,
            RuleSet::NhsrPlotthedots => SpcRuleSet::NhsrPlotthedots,
        }
    }
}

/// Which classification wins when a point triggers both an improvement and a concern rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConflictRule {
    Improvement,
    Concern,
}

impl From<ConflictRule> for SpcConflictRule {
    fn from(rule: ConflictRule) -> Self {
        match rule {
            ConflictRule::Improvement => SpcConflictRule::Improvement,
            ConflictRule::Concern => SpcConflictRule::Concern,
        }
    }
}

/// A partition marker on a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PartitionKind {
    /// A new centre line and limits from this period on.
    RecalculateFrom,
    /// A new partition whose limits are fixed from its first --baseline-points points.
    Baseline,
}

impl From<PartitionKind> for PartitionMarkKind {
    fn from(kind: PartitionKind) -> Self {
        match kind {
            PartitionKind::RecalculateFrom => PartitionMarkKind::RecalculateFrom,
            PartitionKind::Baseline => PartitionMarkKind::Baseline,
        }
    }
}

/// How a peer group's members are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeerMethod {
    /// The trusts of an ICB (--anchor) on the day of comparison.
    IcsMembers,
    /// The trusts of every ICB of an NHS region (--anchor) on the day of comparison.
    Region,
    /// The trusts listed with --member.
    Custom,
}

impl From<PeerMethod> for PeerGroupMethod {
    fn from(method: PeerMethod) -> Self {
        match method {
            PeerMethod::IcsMembers => PeerGroupMethod::IcsMembers,
            PeerMethod::Region => PeerGroupMethod::Region,
            PeerMethod::Custom => PeerGroupMethod::Custom,
        }
    }
}

const METRIC_KEYS: [&str; 6] = ["id", "name", "kind", "unit", "baseline", "target"];

/// Parses one target-sheet line: `id=m1,name=Length of stay,kind=process-time,unit=hours,
/// baseline=40,target=20`.
///
/// A name may contain commas (`name=Time, in department`): a segment that does not start with
/// `key=` continues the previous value. A segment that looks like an unknown `key=` is refused
/// rather than swallowed into a name, so that a misspelt key cannot pass silently. `unit`
/// defaults to the kind's usual unit (hours, count, percent); whether a unit fits its kind, or a
/// rate lies within 0–100, is for the server to judge.
pub fn parse_metric(spec: &str) -> Result<TargetMetric, String> {
    let mut fields: Vec<(&str, String)> = Vec::new();
    for segment in spec.split(',') {
        let keyed = segment
            .split_once('=')
            .map(|(key, value)| (key.trim(), value));
        match keyed {
            Some((key, value)) if METRIC_KEYS.contains(&key) => {
                if fields.iter().any(|(seen, _)| *seen == key) {
                    return Err(format!("'{key}' is given twice in '{spec}'"));
                }
                fields.push((key, value.to_owned()));
            }
            Some((key, _)) if is_key_like(key) => {
                return Err(format!(
                    "unknown metric field '{key}' in '{spec}': use {}",
                    METRIC_KEYS.join(", ")
                ));
            }
            _ => match fields.last_mut() {
                Some((_, value)) => {
                    value.push(',');
                    value.push_str(segment);
                }
                None => {
                    return Err(format!(
                        "'{spec}' is not a metric: write id=m1,name=…,kind=process-time,\
                         unit=hours,baseline=40,target=20"
                    ));
                }
            },
        }
    }
    let field = |key: &str| {
        fields
            .iter()
            .find(|(seen, _)| *seen == key)
            .map(|(_, value)| value.trim())
    };
    let required = |key: &str| {
        field(key)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| format!("the metric '{spec}' has no {key}="))
    };
    let kind = match required("kind")? {
        "process-time" => MetricKind::ProcessTime,
        "error-count" => MetricKind::ErrorCount,
        "error-rate" => MetricKind::ErrorRate,
        other => {
            return Err(format!(
                "'{other}' is not a metric kind: use process-time, error-count or error-rate"
            ));
        }
    };
    let unit = match field("unit").filter(|unit| !unit.is_empty()) {
        None => match kind {
            MetricKind::ErrorCount => MetricUnit::Count,
            MetricKind::ErrorRate => MetricUnit::Percent,
            MetricKind::ProcessTime | MetricKind::Unspecified => MetricUnit::Hours,
        },
        Some("minutes") => MetricUnit::Minutes,
        Some("hours") => MetricUnit::Hours,
        Some("days") => MetricUnit::Days,
        Some("count") => MetricUnit::Count,
        Some("percent") => MetricUnit::Percent,
        Some(other) => {
            return Err(format!(
                "'{other}' is not a unit: use minutes, hours, days, count or percent"
            ));
        }
    };
    Ok(TargetMetric {
        metric_id: required("id")?.to_owned(),
        name: required("name")?.to_owned(),
        kind: kind as i32,
        unit: unit as i32,
        baseline: parse_number(required("baseline")?, "baseline")?,
        target: parse_number(required("target")?, "target")?,
    })
}

/// Parses a measured value of one metric: `m1=12.5`.
pub fn parse_metric_value(spec: &str) -> Result<MetricValue, String> {
    let Some((metric_id, value)) = spec.split_once('=') else {
        return Err(format!(
            "'{spec}' is not a metric value: write <metric id>=<value>, e.g. m1=12.5"
        ));
    };
    let metric_id = metric_id.trim();
    if metric_id.is_empty() {
        return Err(format!("'{spec}' names no metric before '='"));
    }
    Ok(MetricValue {
        metric_id: metric_id.to_owned(),
        value: parse_number(value.trim(), metric_id)?,
    })
}

fn is_key_like(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "-_".contains(character))
}

/// A finite number given as a flag's value (`--value 0.93`, `--target 100`).
pub fn parse_finite(text: &str) -> Result<f64, String> {
    parse_number(text.trim(), "value")
}

/// Rust also reads `inf` and `NaN`; neither is a measurement.
fn parse_number(text: &str, what: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|number| number.is_finite())
        .ok_or_else(|| format!("{what}: '{text}' is not a number"))
}

/// `None` stays unset on the wire (zero), which the server reports as a missing field.
pub fn enum_number<E: Into<T>, T: Into<i32>>(value: Option<E>) -> i32 {
    value.map(|value| value.into().into()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u32, day: u32) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn iso_dates_parse() {
        assert_eq!(parse_date("2015-07-01"), Ok(date(2015, 7, 1)));
        assert_eq!(parse_date("2016-02-29"), Ok(date(2016, 2, 29)));
    }

    #[test]
    fn dates_must_be_written_as_yyyy_mm_dd() {
        for bad in [
            "",
            "2015-7-1",
            "01/07/2015",
            "2015-07-01T00:00",
            "+2015-07-01",
            "2015-07-0a",
            "2015_07_01",
            " 2015-07-01",
        ] {
            let error = parse_date(bad).expect_err(bad);
            assert!(error.contains("YYYY-MM-DD"), "{bad}: {error}");
        }
    }

    #[test]
    fn impossible_calendar_dates_are_refused() {
        for bad in ["2015-02-29", "2015-13-01", "2015-04-31", "2015-00-10"] {
            let error = parse_date(bad).expect_err(bad);
            assert!(error.contains("not a real calendar date"), "{bad}: {error}");
        }
    }

    #[test]
    fn principal_specs_parse() {
        assert_eq!(parse_principal("operator"), Ok(Principal::Operator));
        assert_eq!(
            parse_principal("trust:RTP"),
            Ok(Principal::TrustWriter {
                ods_code: "RTP".to_owned()
            })
        );
        assert_eq!(
            parse_principal("board:ics:QWO"),
            Ok(Principal::BoardReader {
                ics_ods_code: Some("QWO".to_owned()),
                programme_id: None
            })
        );
        assert_eq!(
            parse_principal("board:programme:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            Ok(Principal::BoardReader {
                ics_ods_code: None,
                programme_id: Some("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_owned())
            })
        );
        assert_eq!(
            parse_principal("board:ics:QWO:programme:p-1"),
            Ok(Principal::BoardReader {
                ics_ods_code: Some("QWO".to_owned()),
                programme_id: Some("p-1".to_owned())
            })
        );
    }

    #[test]
    fn malformed_principal_specs_are_refused() {
        for bad in [
            "",
            "admin",
            "trust",
            "trust:",
            "trust:RTP:extra",
            "board:QWO",
            "board:ics:",
            "board:region:Y63",
            "trust:R TP",
            "development",
        ] {
            let error = parse_principal(bad).expect_err(bad);
            assert!(error.contains("not a principal"), "{bad}: {error}");
        }
    }

    #[test]
    fn enum_words_are_kebab_case() {
        let word = |value: clap::builder::PossibleValue| value.get_name().to_owned();
        assert_eq!(
            Kind::FoundationTrust
                .to_possible_value()
                .map(word)
                .as_deref(),
            Some("foundation-trust")
        );
        assert_eq!(
            Rating::RequiresImprovement
                .to_possible_value()
                .map(word)
                .as_deref(),
            Some("requires-improvement")
        );
        assert_eq!(
            ExecRole::ChiefOperatingOfficer
                .to_possible_value()
                .map(word)
                .as_deref(),
            Some("chief-operating-officer")
        );
        assert_eq!(
            Rating::from_str("inadequate", false),
            Ok(Rating::Inadequate)
        );
        assert_eq!(Origin::from_str("bottom-up", false), Ok(Origin::BottomUp));
        assert!(Rating::from_str("requires_improvement", false).is_err());
    }

    #[test]
    fn metrics_parse_from_key_value_lists() {
        let metric = parse_metric(
            "id=m1,name=Length of stay,kind=process-time,unit=hours,baseline=40,target=20",
        )
        .expect("parses");
        assert_eq!(
            metric,
            TargetMetric {
                metric_id: "m1".to_owned(),
                name: "Length of stay".to_owned(),
                kind: MetricKind::ProcessTime as i32,
                unit: MetricUnit::Hours as i32,
                baseline: 40.0,
                target: 20.0,
            }
        );
        let reordered = parse_metric(
            "kind=error-rate, target=4.5, baseline=12.25, name=Samples rejected, id=r",
        )
        .expect("parses");
        assert_eq!(reordered.metric_id, "r");
        assert_eq!(reordered.unit, MetricUnit::Percent as i32, "default unit");
        assert_eq!((reordered.baseline, reordered.target), (12.25, 4.5));
        assert_eq!(
            parse_metric("id=e,name=Booking errors,kind=error-count,baseline=80,target=40")
                .expect("parses")
                .unit,
            MetricUnit::Count as i32
        );
    }

    #[test]
    fn metric_names_may_contain_commas_and_equals_signs() {
        let metric = parse_metric(
            "id=m1,name=Time in department, arrival to exit = door to door,kind=process-time,unit=minutes,\
             baseline=300,target=240",
        )
        .expect("parses");
        assert_eq!(
            metric.name,
            "Time in department, arrival to exit = door to door"
        );
        assert_eq!(metric.unit, MetricUnit::Minutes as i32);
    }

    #[test]
    fn malformed_metrics_are_refused() {
        let cases = [
            ("", "not a metric"),
            ("Length of stay", "not a metric"),
            ("id=m1,name=LOS,kind=process-time,baseline=40", "no target="),
            ("id=m1,kind=process-time,baseline=40,target=20", "no name="),
            (
                "id=,name=LOS,kind=process-time,baseline=40,target=20",
                "no id=",
            ),
            (
                "id=m1,name=LOS,kind=time,baseline=40,target=20",
                "not a metric kind",
            ),
            (
                "id=m1,name=LOS,kind=process-time,unit=weeks,baseline=40,target=20",
                "not a unit",
            ),
            (
                "id=m1,name=LOS,kind=process-time,baseline=forty,target=20",
                "not a number",
            ),
            (
                "id=m1,name=LOS,kind=process-time,baseline=NaN,target=20",
                "not a number",
            ),
            (
                "id=m1,name=LOS,kind=process-time,baseline=inf,target=20",
                "not a number",
            ),
            (
                "id=m1,name=LOS,kind=process-time,basline=40,target=20",
                "unknown metric field",
            ),
            (
                "id=m1,id=m2,name=LOS,kind=process-time,baseline=40,target=20",
                "twice",
            ),
        ];
        for (spec, expected) in cases {
            let error = parse_metric(spec).expect_err(spec);
            assert!(error.contains(expected), "{spec}: {error}");
        }
    }

    #[test]
    fn metric_values_parse() {
        assert_eq!(
            parse_metric_value("m1=12.5"),
            Ok(MetricValue {
                metric_id: "m1".to_owned(),
                value: 12.5
            })
        );
        assert_eq!(
            parse_metric_value(" m2 = 0 ").map(|value| (value.metric_id, value.value)),
            Ok(("m2".to_owned(), 0.0))
        );
        for (bad, expected) in [
            ("12.5", "not a metric value"),
            ("=12.5", "names no metric"),
            ("m1=", "not a number"),
            ("m1=twelve", "not a number"),
            ("m1=inf", "not a number"),
        ] {
            let error = parse_metric_value(bad).expect_err(bad);
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn workshop_words_are_the_ones_improvement_teams_use() {
        assert_eq!(EventKind::from_str("3p", false), Ok(EventKind::ThreeP));
        assert_eq!(
            EventKind::from_str("value-stream-analysis", false),
            Ok(EventKind::ValueStreamAnalysis)
        );
        assert_eq!(Checkpoint::from_str("365", false), Ok(Checkpoint::Day365));
        assert!(Checkpoint::from_str("45", false).is_err());
        assert_eq!(
            FollowUpCheckpoint::from(Checkpoint::Day60),
            FollowUpCheckpoint::Day60
        );
        assert_eq!(WorkshopKind::from(EventKind::Rpiw), WorkshopKind::Rpiw);
    }

    #[test]
    fn enum_words_map_to_the_proto_enums() {
        assert_eq!(OrganisationKind::from(Kind::Icb), OrganisationKind::Icb);
        assert_eq!(CqcRating::from(Rating::Good), CqcRating::Good);
        assert_eq!(
            enum_number::<Rating, CqcRating>(Some(Rating::RequiresImprovement)),
            CqcRating::RequiresImprovement as i32
        );
        assert_eq!(enum_number::<Rating, CqcRating>(None), 0);
        assert_eq!(
            ValueStreamStatus::from(Status::Sustaining),
            ValueStreamStatus::Sustaining
        );
        assert_eq!(BoardRole::from(Seat::Regulator), BoardRole::Regulator);
    }
}
