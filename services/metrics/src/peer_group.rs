//! The peer group aggregate: who a trust is compared with, versioned (stream
//! `peer-group-<id>`). Members of an ICS or a region are resolved by readers on the day of the
//! comparison; a custom group lists its trusts.

use ics_eventstore::{Fold, NewEvent, RecordedEvent};
use ics_proto::EventName;
use ics_proto::events::v1::PeerGroupDefined;
use ics_service_kit::error::ServiceError;

/// How the peer group's events fold into it: `None` until it exists.
pub fn folding() -> Fold<Option<PeerGroupDefined>, ServiceError> {
    Fold::new(None, then)
}

/// Folds a whole history (see [`folding`]).
pub fn fold(history: &[RecordedEvent]) -> Result<Option<PeerGroupDefined>, ServiceError> {
    folding().over(history)
}

/// The peer group after one more event of its stream.
fn then(
    mut group: Option<PeerGroupDefined>,
    event: &RecordedEvent,
) -> Result<Option<PeerGroupDefined>, ServiceError> {
    if event.event_type == PeerGroupDefined::EVENT_TYPE {
        group = Some(
            event
                .decode::<PeerGroupDefined>()
                .map_err(ServiceError::internal)?,
        );
    }
    Ok(group)
}

/// Defines the group, or a new version of it; the same content again writes nothing.
pub fn define(
    state: &Option<PeerGroupDefined>,
    definition: &PeerGroupDefined,
) -> Result<Vec<NewEvent>, ServiceError> {
    let current = state.as_ref();
    let unchanged = current.is_some_and(|current| {
        PeerGroupDefined {
            version: 0,
            ..current.clone()
        } == PeerGroupDefined {
            version: 0,
            ..definition.clone()
        }
    });
    if unchanged {
        return Ok(Vec::new());
    }
    let version = current.map_or(1, |current| current.version + 1);
    Ok(vec![NewEvent::encode(
        &definition.anchor_ods_code,
        &PeerGroupDefined {
            version,
            ..definition.clone()
        },
    )])
}

#[cfg(test)]
mod tests {
    use ics_eventstore::{history_of, history_then};
    use ics_proto::events::v1::PeerGroupMethod;

    use super::*;

    #[test]
    fn a_changed_member_list_is_a_new_version() {
        let group = PeerGroupDefined {
            peer_group_id: "0190f0a0-0000-7000-8000-000000000001".into(),
            name: "Acute peers".into(),
            method: PeerGroupMethod::Custom as i32,
            anchor_ods_code: String::new(),
            members: vec!["RTP".into(), "RR8".into()],
            version: 0,
        };
        let history = history_of(define(&None, &group).expect("defined"));
        assert!(
            define(&fold(&history).expect("folds"), &group)
                .expect("same")
                .is_empty()
        );
        let wider = PeerGroupDefined {
            members: vec!["RTP".into(), "RR8".into(), "RXA".into()],
            ..group
        };
        let revised = define(&fold(&history).expect("folds"), &wider).expect("revised");
        let history = history_then(history, revised);
        let current = fold(&history).expect("folds").expect("exists");
        assert_eq!(current.version, 2);
        assert_eq!(current.members.len(), 3);
    }
}
