//! Input hygiene for every request message, before any handler decodes it: a single pass over
//! the protobuf wire format, guided by the method's input descriptor, that refuses
//! - a body that is not a well-formed protobuf message (tonic would answer INTERNAL);
//! - a string field (request ids included, at any depth) that is not UTF-8 or holds a control
//!   character (NUL among them, which PostgreSQL refuses in text) or a bidirectional override or
//!   isolate (which can make a value display as something else);
//!
//! with INVALID_ARGUMENT naming the field. Nothing is decoded into memory: the pass only reads.

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// Deeper nesting than any platform message has is refused rather than followed.
const MAX_DEPTH: usize = 32;

/// The input shape of every platform RPC, by HTTP/2 path. The descriptors are compiled once into
/// plain tables: asking `prost_reflect` for a field's kind at every field cost an ingest stream
/// of millions of fields more than decoding them.
#[derive(Debug, Clone)]
pub struct RequestHygiene {
    inputs: HashMap<String, usize>,
    /// Every message of the platform's descriptors, by index.
    messages: Vec<MessageShape>,
}

/// A message's fields by number, sorted for a binary search.
#[derive(Debug, Clone, Default)]
struct MessageShape {
    fields: Vec<(u32, FieldShape)>,
    /// Where in `fields` each number below [`DIRECT_FIELD_NUMBERS`] is, plus one (0: no such
    /// field). Platform messages number their fields from 1 up, so nearly every field of a
    /// request is found by one index; a binary search per field was half the walk's cost on an
    /// ingest stream's millions of fields.
    direct: Vec<u8>,
}

/// Field numbers looked up by index rather than searched for.
const DIRECT_FIELD_NUMBERS: usize = 64;

#[derive(Debug, Clone)]
struct FieldShape {
    name: String,
    list: bool,
    /// The wire type the field is encoded with (a packed list aside).
    wire_type: u64,
    content: Content,
}

/// What a length-delimited field holds.
#[derive(Debug, Clone, Copy)]
enum Content {
    Text,
    Bytes,
    /// The index of its message in [`RequestHygiene::messages`]; map entries are messages too.
    Message(usize),
    /// A number: length-delimited only as a packed list.
    Number,
}

impl MessageShape {
    fn new(mut fields: Vec<(u32, FieldShape)>) -> Self {
        fields.sort_by_key(|(number, _)| *number);
        let mut direct = vec![0u8; DIRECT_FIELD_NUMBERS];
        for (position, (number, _)) in fields.iter().enumerate() {
            if let (Some(slot), Ok(entry)) =
                (direct.get_mut(*number as usize), u8::try_from(position + 1))
            {
                *slot = entry;
            }
        }
        MessageShape { fields, direct }
    }

    fn field(&self, number: u32) -> Option<&FieldShape> {
        if let Some(&entry) = self.direct.get(number as usize) {
            return entry
                .checked_sub(1)
                .map(|position| &self.fields[usize::from(position)].1);
        }
        self.fields
            .binary_search_by_key(&number, |(field_number, _)| *field_number)
            .ok()
            .map(|index| &self.fields[index].1)
    }
}

impl RequestHygiene {
    /// From the platform's descriptors (`ics_proto::FILE_DESCRIPTOR_SET`).
    pub fn new() -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(ics_proto::FILE_DESCRIPTOR_SET)?;
        let all: Vec<MessageDescriptor> = pool.all_messages().collect();
        let index: HashMap<String, usize> = all
            .iter()
            .enumerate()
            .map(|(index, message)| (message.full_name().to_owned(), index))
            .collect();
        let messages = all
            .iter()
            .map(|message| {
                let fields: Vec<(u32, FieldShape)> = message
                    .fields()
                    .map(|field| {
                        let kind = field.kind();
                        let content = match &kind {
                            Kind::String => Content::Text,
                            Kind::Bytes => Content::Bytes,
                            Kind::Message(nested) => Content::Message(
                                index.get(nested.full_name()).copied().ok_or_else(|| {
                                    anyhow::anyhow!("{} is not in the pool", nested.full_name())
                                })?,
                            ),
                            _ => Content::Number,
                        };
                        Ok((
                            field.number(),
                            FieldShape {
                                name: field.name().to_owned(),
                                list: field.is_list(),
                                wire_type: wire_type_of(&kind),
                                content,
                            },
                        ))
                    })
                    .collect::<anyhow::Result<_>>()?;
                Ok(MessageShape::new(fields))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut inputs = HashMap::new();
        for service in pool.services() {
            for method in service.methods() {
                let input = method.input();
                let message = index
                    .get(input.full_name())
                    .copied()
                    .ok_or_else(|| anyhow::anyhow!("{} is not in the pool", input.full_name()))?;
                inputs.insert(
                    format!("/{}/{}", service.full_name(), method.name()),
                    message,
                );
            }
        }
        Ok(RequestHygiene { inputs, messages })
    }

    /// Checks one request message of the RPC at `path`; paths of other services (health,
    /// reflection) pass unchecked.
    pub fn check(&self, path: &str, message: &[u8]) -> Result<(), Status> {
        let Some(&input) = self.inputs.get(path) else {
            return Ok(());
        };
        self.walk(input, message, &String::new, 0)
            .map_err(|refusal| refusal.status())
    }
}

enum Refusal {
    Malformed,
    Field { field: String, reason: &'static str },
}

impl Refusal {
    fn status(self) -> Status {
        match self {
            Refusal::Malformed => {
                Status::invalid_argument("the request body is not a well-formed protobuf message")
            }
            Refusal::Field { field, reason } => {
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation(field.clone(), reason);
                Status::with_error_details(
                    tonic::Code::InvalidArgument,
                    format!("invalid request: {field}: {reason}"),
                    details,
                )
            }
        }
    }
}

/// Reads a base-128 varint from the front of `bytes`.
fn varint(bytes: &mut &[u8]) -> Result<u64, Refusal> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(Refusal::Malformed)?;
        *bytes = rest;
        // The tenth byte holds the 64th bit only; anything more overflows (prost refuses it).
        if shift == 63 && byte > 1 {
            return Err(Refusal::Malformed);
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Refusal::Malformed)
}

fn take<'a>(bytes: &mut &'a [u8], length: usize) -> Result<&'a [u8], Refusal> {
    if bytes.len() < length {
        return Err(Refusal::Malformed);
    }
    let (taken, rest) = bytes.split_at(length);
    *bytes = rest;
    Ok(taken)
}

impl RequestHygiene {
    /// Checks a message's fields against its shape. Field names (`observations[4].ods_code`)
    /// are only put together for a refusal: an ingest stream brings millions of valid fields.
    fn walk(
        &self,
        message: usize,
        mut bytes: &[u8],
        prefix: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<(), Refusal> {
        if depth > MAX_DEPTH {
            return Err(Refusal::Malformed);
        }
        let shape = &self.messages[message];
        // Occurrences so far of each repeated field, to name `members[3]`. A message has few
        // repeated fields, and an ingest stream walks millions of messages: a list searched in
        // place costs less than a hashed map built for each.
        let mut occurrences: Vec<(u32, usize)> = Vec::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes)?;
            let number = u32::try_from(key >> 3).map_err(|_| Refusal::Malformed)?;
            if number == 0 || number > MAX_FIELD_NUMBER {
                return Err(Refusal::Malformed);
            }
            let wire_type = key & 7;
            let field = shape.field(number);
            // A known field must come in its own encoding: prost refuses any other, and tonic
            // would answer that refusal with INTERNAL.
            if let Some(field) = field {
                let packed = field.list
                    && wire_type == LENGTH_DELIMITED
                    && field.wire_type != LENGTH_DELIMITED;
                if wire_type != field.wire_type && !packed {
                    return Err(Refusal::Field {
                        field: format!("{}{}", prefix(), field.name),
                        reason: "is not encoded as its type",
                    });
                }
            }
            match wire_type {
                0 => {
                    varint(&mut bytes)?;
                }
                1 => {
                    take(&mut bytes, 8)?;
                }
                5 => {
                    take(&mut bytes, 4)?;
                }
                2 => {
                    let length =
                        usize::try_from(varint(&mut bytes)?).map_err(|_| Refusal::Malformed)?;
                    let value = take(&mut bytes, length)?;
                    let Some(field) = field else {
                        continue;
                    };
                    let index = field.list.then(|| {
                        match occurrences.iter_mut().find(|(seen, _)| *seen == number) {
                            Some((_, count)) => {
                                *count += 1;
                                *count - 1
                            }
                            None => {
                                occurrences.push((number, 1));
                                0
                            }
                        }
                    });
                    let name = || match index {
                        Some(index) => format!("{}{}[{index}]", prefix(), field.name),
                        None => format!("{}{}", prefix(), field.name),
                    };
                    match field.content {
                        Content::Text => check_text(&name, value)?,
                        Content::Message(nested) => {
                            self.walk(nested, value, &|| format!("{}.", name()), depth + 1)?;
                        }
                        Content::Bytes => {}
                        // A packed list of numbers: each element in the element's encoding.
                        Content::Number => check_packed(&name, field.wire_type, value)?,
                    }
                }
                // Groups are long deprecated and no platform message has one.
                _ => return Err(Refusal::Malformed),
            }
        }
        Ok(())
    }
}

const LENGTH_DELIMITED: u64 = 2;

/// The largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// The wire type a field of `kind` is encoded with (a packed list aside).
fn wire_type_of(kind: &Kind) -> u64 {
    match kind {
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => 1,
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => 5,
        Kind::String | Kind::Bytes | Kind::Message(_) => LENGTH_DELIMITED,
        Kind::Int32
        | Kind::Int64
        | Kind::Uint32
        | Kind::Uint64
        | Kind::Sint32
        | Kind::Sint64
        | Kind::Bool
        | Kind::Enum(_) => 0,
    }
}

/// The elements of a packed list, each a varint or a fixed-width number as `element_wire_type`
/// says, filling the value exactly.
fn check_packed(
    field: &dyn Fn() -> String,
    element_wire_type: u64,
    mut value: &[u8],
) -> Result<(), Refusal> {
    let refusal = || Refusal::Field {
        field: field(),
        reason: "is not a well-formed packed list",
    };
    while !value.is_empty() {
        match element_wire_type {
            0 => varint(&mut value).map(drop),
            1 => take(&mut value, 8).map(drop),
            5 => take(&mut value, 4).map(drop),
            _ => Err(Refusal::Malformed),
        }
        .map_err(|_| refusal())?;
    }
    Ok(())
}

fn check_text(field: &dyn Fn() -> String, value: &[u8]) -> Result<(), Refusal> {
    let refuse = |reason| {
        Err(Refusal::Field {
            field: field(),
            reason,
        })
    };
    // Printable ASCII, nearly every value, holds nothing refused below.
    if value.iter().all(|byte| (0x20..0x7f).contains(byte)) {
        return Ok(());
    }
    let Ok(text) = std::str::from_utf8(value) else {
        return refuse("is not valid UTF-8");
    };
    if text.chars().any(char::is_control) {
        return refuse("must not contain control characters");
    }
    if text.chars().any(is_bidirectional_control) {
        return refuse("must not contain bidirectional override or isolate characters");
    }
    Ok(())
}

/// U+202A–U+202E (embeddings and overrides) and U+2066–U+2069 (isolates): they reorder how text
/// displays, so a value can read as something it is not.
fn is_bidirectional_control(character: char) -> bool {
    matches!(character, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics_proto::events::v1::CommandOptions;
    use ics_proto::trusts::v1::RenameOrganisationRequest;
    use prost::Message;

    const RENAME: &str = "/ics.trusts.v1.TrustsService/RenameOrganisation";

    fn rename(request_id: &str, name: &str) -> Vec<u8> {
        RenameOrganisationRequest {
            options: Some(CommandOptions {
                request_id: request_id.to_owned(),
                expected_version: None,
            }),
            ods_code: "RTP".to_owned(),
            name: name.to_owned(),
        }
        .encode_to_vec()
    }

    fn refused_field(status: &Status) -> String {
        status
            .get_details_bad_request()
            .and_then(|bad| bad.field_violations.first().map(|v| v.field.clone()))
            .unwrap_or_default()
    }

    #[test]
    fn the_field_index_finds_what_a_search_of_the_fields_finds() {
        let hygiene = RequestHygiene::new().expect("descriptors");
        let mut indexed = 0;
        for shape in &hygiene.messages {
            for number in 0..DIRECT_FIELD_NUMBERS as u32 + 8 {
                let searched = shape
                    .fields
                    .iter()
                    .find(|(field_number, _)| *field_number == number)
                    .map(|(_, field)| field.name.as_str());
                assert_eq!(
                    shape.field(number).map(|field| field.name.as_str()),
                    searched
                );
                indexed += usize::from(searched.is_some());
            }
        }
        assert!(indexed > 100, "only {indexed} fields looked up");
    }

    #[test]
    fn clean_requests_pass_and_other_services_are_not_checked() {
        let hygiene = RequestHygiene::new().expect("descriptors");
        assert!(
            hygiene
                .check(RENAME, &rename("r-1", "Surrey and Sussex"))
                .is_ok()
        );
        assert!(
            hygiene
                .check("/grpc.health.v1.Health/Check", b"\xff\xff")
                .is_ok()
        );
    }

    #[test]
    fn control_and_bidirectional_characters_are_refused_by_field() {
        let hygiene = RequestHygiene::new().expect("descriptors");
        let nul_in_request_id = hygiene
            .check(RENAME, &rename("r\u{0}1", "Surrey"))
            .expect_err("NUL");
        assert_eq!(nul_in_request_id.code(), tonic::Code::InvalidArgument);
        assert_eq!(refused_field(&nul_in_request_id), "options.request_id");
        let newline = hygiene
            .check(RENAME, &rename("r-1", "Surrey\nSussex"))
            .expect_err("newline");
        assert_eq!(refused_field(&newline), "name");
        let bidi = hygiene
            .check(RENAME, &rename("r-1", "Surrey\u{202E}xessuS"))
            .expect_err("right-to-left override");
        assert_eq!(refused_field(&bidi), "name");
    }

    #[test]
    fn malformed_bodies_and_invalid_utf8_are_invalid_arguments() {
        let hygiene = RequestHygiene::new().expect("descriptors");
        for garbage in [
            &b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
            b"\x0a\x05ab",
            b"\x0b",
        ] {
            let refused = hygiene.check(RENAME, garbage).expect_err("malformed");
            assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        }
        // Field 3 (name), length 2, bytes that are not UTF-8.
        let refused = hygiene
            .check(RENAME, b"\x1a\x02\xc3\x28")
            .expect_err("not UTF-8");
        assert_eq!(refused_field(&refused), "name");
    }

    #[test]
    fn repeated_fields_are_named_by_index() {
        use ics_proto::metrics::v1::DefinePeerGroupRequest;
        let hygiene = RequestHygiene::new().expect("descriptors");
        let request = DefinePeerGroupRequest {
            members: vec!["RR8".into(), "RX\u{0}F".into()],
            ..Default::default()
        };
        let refused = hygiene
            .check(
                "/ics.metrics.v1.MetricsService/DefinePeerGroup",
                &request.encode_to_vec(),
            )
            .expect_err("NUL in a member");
        assert_eq!(refused_field(&refused), "members[1]");
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
            .collect()
    }

    /// Bodies a fuzzer found that prost refuses (tonic then answered INTERNAL).
    #[test]
    fn what_prost_cannot_decode_is_refused_here() {
        let hygiene = RequestHygiene::new().expect("descriptors");
        // ics_ods_code (a string) sent as a fixed32.
        let wrong_wire_type = hygiene
            .check(
                "/ics.reporting.v1.ReportingService/GetMeasureView",
                &hex("0d03515947"),
            )
            .expect_err("wrong wire type");
        assert_eq!(refused_field(&wrong_wire_type), "ics_ods_code");
        // Field number 2^29 and beyond.
        assert!(
            hygiene
                .check(
                    "/ics.metrics.v1.MetricsService/ListMeasures",
                    &hex("808080801001")
                )
                .is_err()
        );
        // A ten-byte varint that overflows 64 bits.
        assert!(
            hygiene
                .check(
                    "/ics.admin.v1.AdminService/Verify",
                    &hex("08ffffffffffffffffff10")
                )
                .is_err()
        );
    }

    /// Whatever passes the check decodes: random bodies and mutations of valid ones, for every
    /// method, against prost-reflect's decoder (which refuses what prost refuses).
    #[test]
    fn every_body_that_passes_decodes() {
        let hygiene = RequestHygiene::new().expect("descriptors");
        let mut state = 0x5EC0_7157_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        let pool = DescriptorPool::decode(ics_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
        let valid = rename("r-1", "Surrey");
        for service in pool.services() {
            for method in service.methods() {
                let path = format!("/{}/{}", service.full_name(), method.name());
                let descriptor = method.input();
                for round in 0..300 {
                    let body: Vec<u8> = if round % 2 == 0 {
                        let length = next() as usize % 48;
                        (0..length).map(|_| next() as u8).collect()
                    } else {
                        let mut body = valid.clone();
                        for _ in 0..1 + next() % 3 {
                            let at = next() as usize % body.len();
                            body[at] ^= 1 << (next() % 8);
                        }
                        body
                    };
                    if hygiene.check(&path, &body).is_ok() {
                        let decoded = prost_reflect::DynamicMessage::decode(
                            descriptor.clone(),
                            body.as_slice(),
                        );
                        assert!(
                            decoded.is_ok(),
                            "{path}: {body:02x?} passed the check but does not decode: {decoded:?}"
                        );
                    }
                }
            }
        }
    }
}
