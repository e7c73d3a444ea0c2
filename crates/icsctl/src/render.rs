//! Output for people (text) and scripts (JSON through the descriptor pool).

use std::fmt;
use std::io::{self, Write};

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

// How values read is shared with the board pack and the demo, so that a figure reads the same
// in a terminal and in a board member's pack.
pub use ics_board_pack::text::{
    Align, Table, assurance_word, board_role_word, checkpoint_days, classification_word,
    conflict_rule_word, date_text, direction_word, display_scale, executive_role_word,
    follow_up_state_word, frequency_word, kind_word, metric_kind_word, metric_unit_word,
    optional_scaled_text, origin_word, peer_band_word, peer_group_text, peer_method_word,
    rating_word, rule_set_text, rule_set_word, scaled_text, scope_text, scoring_word,
    spc_rule_word, status_word, variation_word, workshop_kind_word, workshop_status_word,
};

pub fn pool() -> &'static DescriptorPool {
    ics_proto::shared_descriptor_pool()
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
    reporting::v1::ListProgrammesResponse => "ics.reporting.v1.ListProgrammesResponse",
    reporting::v1::ListValueStreamsResponse => "ics.reporting.v1.ListValueStreamsResponse",
    reporting::v1::ListSeriesResponse => "ics.reporting.v1.ListSeriesResponse",
    reporting::v1::ListPeerGroupsResponse => "ics.reporting.v1.ListPeerGroupsResponse",
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

/// `0.85` as `85%`; `-` when nobody answered the survey.
pub fn share_text(share: f64, respondents: u32) -> String {
    if respondents == 0 {
        return "-".to_owned();
    }
    format!("{:.0}%", share * 100.0)
}

/// Prints a table's lines to stdout.
pub trait PrintTable {
    fn print(&self) -> anyhow::Result<()>;
}

impl PrintTable for Table {
    fn print(&self) -> anyhow::Result<()> {
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
        EventEnvelope, EventMetadata, OrganisationKind, OrganisationRegistered,
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
    fn shares_read_plainly() {
        assert_eq!(share_text(0.85, 800), "85%");
        assert_eq!(share_text(0.0, 0), "-");
    }
}
