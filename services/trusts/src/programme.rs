//! The programme aggregate: a partnership of trusts (possibly across several ICSs) with a
//! guiding board that meets monthly and reviews a written compact.

use chrono::NaiveDate;
use ics_eventstore::{Fold, NewEvent, RecordedEvent};
use ics_proto::EventName;
use ics_proto::date::{from_naive, to_naive};
use ics_proto::events::v1::{
    BoardMeetingHeld, BoardMemberAdded, BoardMemberRemoved, CompactAdopted, ProgrammeRegistered,
    ProgrammeTrustJoined,
};
use ics_service_kit::error::ServiceError;

pub fn stream_id(programme_id: &str) -> String {
    format!("programme-{programme_id}")
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Programme {
    pub registered: ProgrammeRegistered,
    pub trusts: Vec<ProgrammeTrustJoined>,
    pub members: Vec<BoardMemberAdded>,
    pub compacts: Vec<CompactAdopted>,
    pub meetings: Vec<BoardMeetingHeld>,
    pub version: u64,
}

impl Programme {
    /// How the programme's events fold into it: `None` until it exists.
    pub fn folding() -> Fold<Option<Self>, ServiceError> {
        Fold::new(None, Self::then)
    }

    /// Folds a whole history (see [`folding`](Self::folding)).
    #[cfg(test)]
    pub fn fold(history: &[RecordedEvent]) -> Result<Option<Self>, ServiceError> {
        Self::folding().over(history)
    }

    /// The programme after one more event of its stream.
    fn then(mut state: Option<Self>, event: &RecordedEvent) -> Result<Option<Self>, ServiceError> {
        let event_type = event.event_type.as_str();
        if event_type == ProgrammeRegistered::EVENT_TYPE {
            state = Some(Programme {
                registered: event.decode()?,
                ..Default::default()
            });
        } else if let Some(programme) = state.as_mut() {
            if event_type == ProgrammeTrustJoined::EVENT_TYPE {
                programme.trusts.push(event.decode()?);
            } else if event_type == BoardMemberAdded::EVENT_TYPE {
                programme.members.push(event.decode()?);
            } else if event_type == BoardMemberRemoved::EVENT_TYPE {
                let removed: BoardMemberRemoved = event.decode()?;
                programme
                    .members
                    .retain(|member| member.member_id != removed.member_id);
            } else if event_type == CompactAdopted::EVENT_TYPE {
                programme.compacts.push(event.decode()?);
            } else if event_type == BoardMeetingHeld::EVENT_TYPE {
                programme.meetings.push(event.decode()?);
            }
        }
        if let Some(programme) = state.as_mut() {
            programme.version = event.stream_version;
        }
        Ok(state)
    }

    fn starts_on(&self) -> Option<NaiveDate> {
        self.registered.starts_on.as_ref().and_then(to_naive)
    }

    fn ends_on(&self) -> Option<NaiveDate> {
        self.registered.ends_on.as_ref().and_then(to_naive)
    }

    fn refuse_outside(&self, field: &str, on: NaiveDate) -> Result<(), ServiceError> {
        if self.starts_on().is_some_and(|starts_on| on < starts_on)
            || self.ends_on().is_some_and(|ends_on| on > ends_on)
        {
            return Err(ServiceError::invalid_field(
                field,
                "must fall within the programme's start and end dates",
            ));
        }
        Ok(())
    }
}

fn existing<'a>(
    state: &'a Option<Programme>,
    programme_id: &str,
) -> Result<&'a Programme, ServiceError> {
    state.as_ref().ok_or_else(|| ServiceError::NotFound {
        resource: format!("programme {programme_id}"),
    })
}

pub fn register(
    state: &Option<Programme>,
    registered: &ProgrammeRegistered,
) -> Result<Vec<NewEvent>, ServiceError> {
    if state.is_some() {
        return Err(ServiceError::FailedPrecondition(format!(
            "programme {} already exists",
            registered.programme_id
        )));
    }
    Ok(vec![NewEvent::encode("", registered)])
}

pub fn join(
    state: &Option<Programme>,
    programme_id: &str,
    ods_code: &str,
    joined_on: NaiveDate,
) -> Result<Vec<NewEvent>, ServiceError> {
    let programme = existing(state, programme_id)?;
    if programme
        .trusts
        .iter()
        .any(|trust| trust.ods_code == ods_code)
    {
        return Err(ServiceError::FailedPrecondition(format!(
            "{ods_code} is already part of programme {programme_id}"
        )));
    }
    programme.refuse_outside("joined_on", joined_on)?;
    Ok(vec![NewEvent::encode(
        ods_code,
        &ProgrammeTrustJoined {
            programme_id: programme_id.to_string(),
            ods_code: ods_code.to_string(),
            joined_on: Some(from_naive(joined_on)),
        },
    )])
}

pub fn add_board_member(
    state: &Option<Programme>,
    member: &BoardMemberAdded,
) -> Result<Vec<NewEvent>, ServiceError> {
    let programme = existing(state, &member.programme_id)?;
    if programme.members.iter().any(|existing| {
        existing.ods_code == member.ods_code && existing.person_name == member.person_name
    }) {
        return Err(ServiceError::FailedPrecondition(format!(
            "{} of {} is already on the board",
            member.person_name, member.ods_code
        )));
    }
    Ok(vec![NewEvent::encode(&member.ods_code, member)])
}

pub fn adopt_compact(
    state: &Option<Programme>,
    compact: &CompactAdopted,
) -> Result<Vec<NewEvent>, ServiceError> {
    let programme = existing(state, &compact.programme_id)?;
    if let Some(adopted_on) = compact.adopted_on.as_ref().and_then(to_naive) {
        programme.refuse_outside("adopted_on", adopted_on)?;
    }
    let version = u32::try_from(programme.compacts.len() + 1).unwrap_or(u32::MAX);
    Ok(vec![NewEvent::encode(
        "",
        &CompactAdopted {
            version,
            ..compact.clone()
        },
    )])
}

pub fn record_meeting(
    state: &Option<Programme>,
    meeting: &BoardMeetingHeld,
) -> Result<Vec<NewEvent>, ServiceError> {
    let programme = existing(state, &meeting.programme_id)?;
    if let Some(held_on) = meeting.held_on.as_ref().and_then(to_naive) {
        programme.refuse_outside("held_on", held_on)?;
    }
    for (index, member_id) in meeting.attending_member_ids.iter().enumerate() {
        if !programme
            .members
            .iter()
            .any(|member| &member.member_id == member_id)
        {
            return Err(ServiceError::invalid_field(
                format!("attending_member_ids[{index}]"),
                "is not a member of the programme's board",
            ));
        }
    }
    let reviewed = meeting.compact_version_reviewed;
    if reviewed != 0
        && !programme
            .compacts
            .iter()
            .any(|compact| compact.version == reviewed)
    {
        return Err(ServiceError::invalid_field(
            "compact_version_reviewed",
            "names no adopted compact version",
        ));
    }
    Ok(vec![NewEvent::encode("", meeting)])
}
