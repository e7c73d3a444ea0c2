//! NATS subject and JetStream stream naming.
//!
//! Subjects are `<prefix>.<service>.<organisation>.<event>`, e.g.
//! `ics.trusts.RTP.CqcRatingPublished`, so consumers can partition by organisation and NATS
//! permissions can be granted per service or per trust. Events about no single organisation use
//! the token `_`.

/// How long a JetStream request (a publish's acknowledgement, a consumer's or a stream's
/// information) may go unanswered before it is given up and tried again. async-nats waits 5 s
/// by default; when a cluster loses a stream's leader, the relay and every projection then sat
/// out that whole wait, sometimes twice, while a new leader was elected within a few seconds
/// (the fault suite's R8). A request given up too soon is only tried again: publishes carry
/// their event id, which JetStream deduplicates.
pub const JETSTREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A JetStream context over `nats` whose requests wait [`JETSTREAM_TIMEOUT`].
pub fn jetstream_context(nats: async_nats::Client) -> async_nats::jetstream::Context {
    let mut context = async_nats::jetstream::new(nats);
    context.set_timeout(JETSTREAM_TIMEOUT);
    context
}

/// Token used in place of an organisation for events that belong to none.
pub const NO_ORGANISATION: &str = "_";

/// The JetStream stream holding one service's events, e.g. `ICS_TRUSTS`.
pub fn stream_name(prefix: &str, service: &str) -> String {
    format!("{}_{}", sanitize(prefix), sanitize(service)).to_uppercase()
}

/// The subject filter covering all of one service's events.
pub fn service_filter(prefix: &str, service: &str) -> String {
    format!("{prefix}.{service}.>")
}

/// The subject an event is published on.
pub fn event_subject(prefix: &str, service: &str, organisation: &str, event_type: &str) -> String {
    let organisation = if organisation.is_empty() {
        NO_ORGANISATION.to_string()
    } else {
        sanitize(organisation)
    };
    // The subject carries the short name (`CqcRatingPublished`), not the protobuf package.
    let short_type = event_type.rsplit('.').next().unwrap_or(event_type);
    format!("{prefix}.{service}.{organisation}.{}", sanitize(short_type))
}

/// Keeps subject tokens and stream names free of separators and wildcards.
fn sanitize(token: &str) -> String {
    token
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '-' {
                character
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_carry_service_organisation_and_short_event_name() {
        assert_eq!(
            event_subject("ics", "trusts", "RTP", "ics.events.v1.CqcRatingPublished"),
            "ics.trusts.RTP.CqcRatingPublished"
        );
        assert_eq!(
            event_subject("t1", "trusts", "", "ics.events.v1.ProgrammeRegistered"),
            "t1.trusts._.ProgrammeRegistered"
        );
    }

    #[test]
    fn wildcards_and_separators_never_reach_a_subject() {
        assert_eq!(
            event_subject("ics", "trusts", "R.*>", "X"),
            "ics.trusts.R___.X"
        );
        assert_eq!(stream_name("test-1.a", "trusts"), "TEST-1_A_TRUSTS");
    }
}
