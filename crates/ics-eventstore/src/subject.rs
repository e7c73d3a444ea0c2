//! NATS subject and JetStream stream naming.
//!
//! Subjects are `<prefix>.<service>.<organisation>.<event>`, e.g.
//! `ics.trusts.RTP.CqcRatingPublished`, so consumers can partition by organisation and NATS
//! permissions can be granted per service or per trust. Events about no single organisation use
//! the token `_`.

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
