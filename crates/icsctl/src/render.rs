//! Output for people (text) and scripts (JSON through the descriptor pool).

use std::fmt;
use std::io::{self, Write};
use std::sync::LazyLock;

use anyhow::{Context as _, anyhow};
use ics_proto::{admin, events, metrics, reporting, trusts, workshops};
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, SerializeOptions};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Writes one line to stdout. Returning the I/O error (rather than panicking like `println!`)
/// lets `icsctl … | head` end quietly when the reader goes away.
macro_rules! outln {
    () => {
        $crate::render::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::render::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

pub fn write_line(arguments: fmt::Arguments<'_>) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_fmt(arguments)?;
    stdout.write_all(b"\n")
}

static POOL: LazyLock<DescriptorPool> = LazyLock::new(ics_proto::descriptor_pool);

pub fn pool() -> &'static DescriptorPool {
    &POOL
}

/// The fully-qualified protobuf name of a generated message, which prost does not record.
pub trait Described: prost::Message + Sized {
    const FULL_NAME: &'static str;
}

macro_rules! described {
    ($($message:ty => $name:literal),* $(,)?) => {
        $(impl Described for $message {
            const FULL_NAME: &'static str = $name;
        })*
    };
}

described!(
    events::v1::CommandResult => "ics.events.v1.CommandResult",
    events::v1::EventEnvelope => "ics.events.v1.EventEnvelope",
    trusts::v1::Organisation => "ics.trusts.v1.Organisation",
    trusts::v1::ListOrganisationsResponse => "ics.trusts.v1.ListOrganisationsResponse",
    trusts::v1::ValueStream => "ics.trusts.v1.ValueStream",
    trusts::v1::Programme => "ics.trusts.v1.Programme",
    workshops::v1::Workshop => "ics.workshops.v1.Workshop",
    workshops::v1::ListWorkshopsResponse => "ics.workshops.v1.ListWorkshopsResponse",
    reporting::v1::Overview => "ics.reporting.v1.Overview",
    reporting::v1::Outcomes => "ics.reporting.v1.Outcomes",
    reporting::v1::OutcomesUpdate => "ics.reporting.v1.OutcomesUpdate",
    reporting::v1::OverviewUpdate => "ics.reporting.v1.OverviewUpdate",
    reporting::v1::CqcHistory => "ics.reporting.v1.CqcHistory",
    events::v1::SpcSeries => "ics.events.v1.SpcSeries",
    events::v1::PeerGroupDefined => "ics.events.v1.PeerGroupDefined",
    metrics::v1::Measure => "ics.metrics.v1.Measure",
    metrics::v1::ListMeasuresResponse => "ics.metrics.v1.ListMeasuresResponse",
    reporting::v1::MeasureView => "ics.reporting.v1.MeasureView",
    reporting::v1::MeasureViewUpdate => "ics.reporting.v1.MeasureViewUpdate",
    reporting::v1::PeerComparison => "ics.reporting.v1.PeerComparison",
    reporting::v1::PeerChange => "ics.reporting.v1.PeerChange",
    admin::v1::RepublishResponse => "ics.admin.v1.RepublishResponse",
    admin::v1::ListDeadLettersResponse => "ics.admin.v1.ListDeadLettersResponse",
    admin::v1::AuditRecord => "ics.admin.v1.AuditRecord",
    admin::v1::VerifyResponse => "ics.admin.v1.VerifyResponse",
    admin::v1::RebuildProjectionResponse => "ics.admin.v1.RebuildProjectionResponse",
);

/// Zero values are written out so that scripts always find every key (`"replayed": false`);
/// otherwise the canonical protobuf JSON mapping applies (camelCase names, enum names, 64-bit
/// integers as strings, bytes as base64, timestamps as RFC 3339).
fn serialize_options() -> SerializeOptions {
    SerializeOptions::new().skip_default_fields(false)
}

/// Serialises a message with [`serialize_options`] straight into the output, which keeps the
/// fields in their protobuf order (a `serde_json::Value` would sort them).
struct Json<'a>(&'a DynamicMessage);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_with_options(serializer, &serialize_options())
    }
}

/// Encoded protobuf bytes of the message `full_name`, decoded through the descriptor pool.
fn decode(full_name: &str, bytes: &[u8]) -> anyhow::Result<DynamicMessage> {
    let descriptor = pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| anyhow!("the descriptor pool has no message {full_name}"))?;
    DynamicMessage::decode(descriptor, bytes).with_context(|| format!("decoding {full_name}"))
}

fn dynamic<M: Described>(message: &M) -> anyhow::Result<DynamicMessage> {
    decode(M::FULL_NAME, &message.encode_to_vec())
}

/// A response as JSON, pretty-printed for people or on one line for JSON Lines.
pub fn json_text<M: Described>(message: &M, pretty: bool) -> anyhow::Result<String> {
    let message = dynamic(message)?;
    let text = if pretty {
        serde_json::to_string_pretty(&Json(&message))
    } else {
        serde_json::to_string(&Json(&message))
    };
    Ok(text?)
}

/// A response, pretty-printed for `--output json`.
pub fn print_json<M: Described>(message: &M) -> anyhow::Result<()> {
    outln!("{}", json_text(message, true)?)?;
    Ok(())
}

/// One message of a stream, on one line so that the output is JSON Lines.
pub fn print_json_line<M: Described>(message: &M) -> anyhow::Result<()> {
    outln!("{}", json_text(message, false)?)?;
    Ok(())
}

/// An event envelope on one JSON line, with its payload decoded by `event_type`. An event type
/// this client does not know (a newer server, another service) keeps its payload as base64,
/// which is what the canonical mapping gives for bytes; a payload that does not decode keeps
/// its base64 too, with the reason in `payloadError`.
pub fn envelope_line(envelope: &events::v1::EventEnvelope) -> anyhow::Result<String> {
    let message = dynamic(envelope)?;
    let decoded = pool()
        .get_message_by_name(&envelope.event_type)
        .map(|_| decode(&envelope.event_type, &envelope.payload));
    let (payload, payload_error) = match decoded {
        Some(Ok(payload)) => (Some(payload), None),
        Some(Err(error)) => (None, Some(format!("{error:#}"))),
        None => (None, None),
    };
    let line = EnvelopeJson {
        envelope: &message,
        payload: payload.as_ref(),
        payload_error,
    };
    Ok(serde_json::to_string(&line)?)
}

struct EnvelopeJson<'a> {
    envelope: &'a DynamicMessage,
    payload: Option<&'a DynamicMessage>,
    payload_error: Option<String>,
}

impl Serialize for EnvelopeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Field by field in protobuf order, so that the decoded payload can take the raw
        // bytes' place; everything else is rendered as the envelope alone would be.
        let rendered = self
            .envelope
            .serialize_with_options(serde_json::value::Serializer, &serialize_options())
            .map_err(serde::ser::Error::custom)?;
        let mut map = serializer.serialize_map(None)?;
        for field in self.envelope.descriptor().fields() {
            let name = field.json_name();
            match (name, self.payload) {
                ("payload", Some(payload)) => map.serialize_entry(name, &Json(payload))?,
                _ => {
                    if let Some(value) = rendered.get(name) {
                        map.serialize_entry(name, value)?;
                    }
                }
            }
        }
        if let Some(error) = &self.payload_error {
            map.serialize_entry("payloadError", error)?;
        }
        map.end()
    }
}

/// The command-line word for a protobuf enum value: `CQC_RATING_REQUIRES_IMPROVEMENT` becomes
/// `requires-improvement`, the same word the flags accept. Unset is `-`; a number this client
/// does not know is shown as the number.
pub fn enum_word(enum_name: &str, number: i32) -> String {
    if number == 0 {
        return "-".to_owned();
    }
    let Some(descriptor) = pool().get_enum_by_name(enum_name) else {
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

pub fn date_text(date: Option<&events::v1::Date>) -> String {
    date.map(ics_proto::date::iso)
        .unwrap_or_else(|| "-".to_owned())
}

/// `0.85` as `85%`; `-` when nobody answered the survey.
pub fn share_text(share: f64, respondents: u32) -> String {
    if respondents == 0 {
        return "-".to_owned();
    }
    format!("{:.0}%", share * 100.0)
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

    pub fn print(&self) -> anyhow::Result<()> {
        for line in self.lines() {
            outln!("{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::events::v1::{
        Date, EventEnvelope, EventMetadata, OrganisationKind, OrganisationRegistered,
    };
    use prost::Message;

    fn envelope(event_type: &str, payload: Vec<u8>) -> EventEnvelope {
        EventEnvelope {
            event_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_owned(),
            source_service: "trusts".to_owned(),
            stream_id: "organisation-RTP".to_owned(),
            stream_version: 1,
            global_position: 42,
            event_type: event_type.to_owned(),
            schema_version: 1,
            payload,
            metadata: Some(EventMetadata {
                request_id: "demo-v1-register-RTP".to_owned(),
                principal: "operator".to_owned(),
                ..EventMetadata::default()
            }),
            recorded_at: None,
            organisation: "RTP".to_owned(),
        }
    }

    #[test]
    fn event_payloads_are_decoded_by_event_type() {
        let payload = OrganisationRegistered {
            ods_code: "RTP".to_owned(),
            name: "Surrey and Sussex Healthcare NHS Trust".to_owned(),
            kind: OrganisationKind::Trust as i32,
        };
        let line = envelope_line(&envelope(
            "ics.events.v1.OrganisationRegistered",
            payload.encode_to_vec(),
        ))
        .expect("renders");
        let json: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");

        assert_eq!(json["eventType"], "ics.events.v1.OrganisationRegistered");
        assert_eq!(json["streamId"], "organisation-RTP");
        assert_eq!(json["globalPosition"], "42");
        assert_eq!(json["metadata"]["requestId"], "demo-v1-register-RTP");
        assert_eq!(json["organisation"], "RTP");
        assert_eq!(
            json["payload"],
            serde_json::json!({
                "odsCode": "RTP",
                "name": "Surrey and Sussex Healthcare NHS Trust",
                "kind": "ORGANISATION_KIND_TRUST",
            })
        );
        assert!(
            json.get("recordedAt").is_none(),
            "unset timestamps stay absent"
        );
    }

    #[test]
    fn unknown_event_types_keep_their_payload_as_base64() {
        let line =
            envelope_line(&envelope("ics.events.v9.Unheard", vec![1, 2, 3])).expect("renders");
        let json: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(json["payload"], "AQID");
        assert!(json.get("payloadError").is_none());
    }

    #[test]
    fn undecodable_payloads_are_reported_next_to_the_raw_bytes() {
        let line = envelope_line(&envelope(
            "ics.events.v1.OrganisationRegistered",
            vec![0xff, 0xff, 0xff],
        ))
        .expect("renders");
        let json: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(json["payload"], "////");
        assert!(json["payloadError"].is_string());
    }

    #[test]
    fn zero_values_are_written_out() {
        let result = ics_proto::events::v1::CommandResult {
            stream_id: "programme-x".to_owned(),
            version: 1,
            event_ids: vec!["e-1".to_owned()],
            replayed: false,
        };
        let text = json_text(&result, false).expect("renders");
        assert_eq!(
            text,
            r#"{"streamId":"programme-x","version":"1","eventIds":["e-1"],"replayed":false}"#
        );
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(json["replayed"], false);
        assert_eq!(json["version"], "1");
        assert_eq!(json["eventIds"], serde_json::json!(["e-1"]));
    }

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
    fn dates_and_shares_read_plainly() {
        let date = Date {
            year: 2016,
            month: 1,
            day: 15,
        };
        assert_eq!(date_text(Some(&date)), "2016-01-15");
        assert_eq!(date_text(None), "-");
        assert_eq!(share_text(0.85, 800), "85%");
        assert_eq!(share_text(0.0, 0), "-");
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
