//! The organisation aggregate: a trust, ICB or region keyed by its ODS code, with dated parent
//! links, CQC ratings and executive appointments.

use chrono::NaiveDate;
use ics_eventstore::{Fold, NewEvent, RecordedEvent};
use ics_proto::EventName;
use ics_proto::date::{from_naive, to_naive};
use ics_proto::events::v1::{
    CqcRatingPublished, CqcRatings, ExecutiveAppointed, ExecutiveDeparted, ExecutiveRole,
    OrganisationKind, OrganisationLinked, OrganisationRegistered, OrganisationRenamed,
    OrganisationUnlinked,
};
use ics_service_kit::error::ServiceError;

/// What every organisation's stream id starts with.
pub const STREAM_PREFIX: &str = "organisation-";

pub fn stream_id(ods_code: &str) -> String {
    format!("{STREAM_PREFIX}{ods_code}")
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParentLink {
    pub parent_ods_code: String,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Appointment {
    pub appointment_id: String,
    pub role: ExecutiveRole,
    pub person_name: String,
    pub started_on: NaiveDate,
    pub left_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Organisation {
    pub ods_code: String,
    pub name: String,
    pub kind: OrganisationKind,
    pub parents: Vec<ParentLink>,
    pub ratings: Vec<(NaiveDate, CqcRatings)>,
    pub appointments: Vec<Appointment>,
    pub version: u64,
}

impl Organisation {
    /// How the organisation's events fold into it: `None` until registered. Commands and
    /// reads fold it through the event store, which keeps the folded state between them.
    pub fn folding() -> Fold<Option<Self>, ServiceError> {
        Fold::new(None, Organisation::then)
    }

    /// Folds a whole history (see [`folding`](Self::folding)); `None` when it was never
    /// registered.
    #[cfg(test)]
    pub fn fold(history: &[RecordedEvent]) -> Result<Option<Self>, ServiceError> {
        Self::folding().over(history)
    }

    /// The organisation after one more event of its stream: the step [`fold`](Self::fold)
    /// repeats, which the organisation list's projection takes one event at a time.
    pub fn then(
        state: Option<Organisation>,
        event: &RecordedEvent,
    ) -> Result<Option<Organisation>, ServiceError> {
        let mut state = state;
        if event.event_type == OrganisationRegistered::EVENT_TYPE {
            let registered: OrganisationRegistered = event.decode()?;
            state = Some(Organisation {
                kind: registered.kind(),
                ods_code: registered.ods_code,
                name: registered.name,
                parents: Vec::new(),
                ratings: Vec::new(),
                appointments: Vec::new(),
                version: 0,
            });
        } else if let Some(organisation) = state.as_mut() {
            organisation.apply(event)?;
        }
        if let Some(organisation) = state.as_mut() {
            organisation.version = event.stream_version;
        }
        Ok(state)
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ServiceError> {
        let event_type = event.event_type.as_str();
        if event_type == OrganisationRenamed::EVENT_TYPE {
            let renamed: OrganisationRenamed = event.decode()?;
            self.name = renamed.name;
        } else if event_type == OrganisationLinked::EVENT_TYPE {
            let linked: OrganisationLinked = event.decode()?;
            if let Some(valid_from) = linked.valid_from.as_ref().and_then(to_naive) {
                self.parents.push(ParentLink {
                    parent_ods_code: linked.parent_ods_code,
                    valid_from,
                    valid_to: None,
                });
            }
        } else if event_type == OrganisationUnlinked::EVENT_TYPE {
            let unlinked: OrganisationUnlinked = event.decode()?;
            let valid_to = unlinked.valid_to.as_ref().and_then(to_naive);
            if let Some(link) = self.parents.iter_mut().find(|link| {
                link.parent_ods_code == unlinked.parent_ods_code && link.valid_to.is_none()
            }) {
                link.valid_to = valid_to;
            }
        } else if event_type == CqcRatingPublished::EVENT_TYPE {
            let published: CqcRatingPublished = event.decode()?;
            if let (Some(on), Some(ratings)) = (
                published.published_on.as_ref().and_then(to_naive),
                published.ratings,
            ) {
                self.ratings.push((on, ratings));
                self.ratings.sort_by_key(|(on, _)| *on);
            }
        } else if event_type == ExecutiveAppointed::EVENT_TYPE {
            let appointed: ExecutiveAppointed = event.decode()?;
            if let Some(started_on) = appointed.started_on.as_ref().and_then(to_naive) {
                self.appointments.push(Appointment {
                    role: appointed.role(),
                    appointment_id: appointed.appointment_id,
                    person_name: appointed.person_name,
                    started_on,
                    left_on: None,
                });
            }
        } else if event_type == ExecutiveDeparted::EVENT_TYPE {
            let departed: ExecutiveDeparted = event.decode()?;
            if let Some(appointment) = self
                .appointments
                .iter_mut()
                .find(|appointment| appointment.appointment_id == departed.appointment_id)
            {
                appointment.left_on = departed.left_on.as_ref().and_then(to_naive);
            }
        }
        Ok(())
    }

    pub fn is_trust(&self) -> bool {
        is_trust_kind(self.kind)
    }

    /// The parent this organisation belonged to on `date`.
    pub fn parent_on(&self, date: NaiveDate) -> Option<&str> {
        self.parents
            .iter()
            .find(|link| {
                link.valid_from <= date && link.valid_to.is_none_or(|valid_to| date <= valid_to)
            })
            .map(|link| link.parent_ods_code.as_str())
    }

    /// The link that holds now (no end date) to a parent of the given kind.
    pub fn open_link(&self) -> Option<&ParentLink> {
        self.parents.iter().find(|link| link.valid_to.is_none())
    }
}

fn not_found(ods_code: &str) -> ServiceError {
    ServiceError::NotFound {
        resource: format!("organisation {ods_code}"),
    }
}

fn existing<'a>(
    state: &'a Option<Organisation>,
    ods_code: &str,
) -> Result<&'a Organisation, ServiceError> {
    state.as_ref().ok_or_else(|| not_found(ods_code))
}

pub fn register(
    state: &Option<Organisation>,
    ods_code: &str,
    name: &str,
    kind: OrganisationKind,
) -> Result<Vec<NewEvent>, ServiceError> {
    if state.is_some() {
        return Err(ServiceError::FailedPrecondition(format!(
            "organisation {ods_code} is already registered"
        )));
    }
    Ok(vec![NewEvent::encode(
        ods_code,
        &OrganisationRegistered {
            ods_code: ods_code.to_string(),
            name: name.to_string(),
            kind: kind as i32,
        },
    )])
}

pub fn rename(
    state: &Option<Organisation>,
    ods_code: &str,
    name: &str,
) -> Result<Vec<NewEvent>, ServiceError> {
    let organisation = existing(state, ods_code)?;
    if organisation.name == name {
        return Ok(Vec::new());
    }
    Ok(vec![NewEvent::encode(
        ods_code,
        &OrganisationRenamed {
            ods_code: ods_code.to_string(),
            previous_name: organisation.name.clone(),
            name: name.to_string(),
        },
    )])
}

pub fn is_trust_kind(kind: OrganisationKind) -> bool {
    matches!(
        kind,
        OrganisationKind::Trust | OrganisationKind::FoundationTrust
    )
}

/// Which kind of parent an organisation of `kind` may have.
fn parent_kind_for(kind: OrganisationKind) -> Option<OrganisationKind> {
    match kind {
        OrganisationKind::Trust | OrganisationKind::FoundationTrust => Some(OrganisationKind::Icb),
        OrganisationKind::Icb => Some(OrganisationKind::Region),
        _ => None,
    }
}

/// Links an organisation to its parent from a date. A trust belongs to one ICB at a time, so
/// the current link must be ended (unlinked) before a new one starts, and periods may not
/// overlap: reports follow the membership that held in the period they cover.
pub fn link(
    state: &Option<Organisation>,
    ods_code: &str,
    parent: &Organisation,
    valid_from: NaiveDate,
) -> Result<Vec<NewEvent>, ServiceError> {
    let organisation = existing(state, ods_code)?;
    let Some(wanted_kind) = parent_kind_for(organisation.kind) else {
        return Err(ServiceError::FailedPrecondition(format!(
            "organisation {ods_code} is of a kind that has no parent"
        )));
    };
    if parent.kind != wanted_kind {
        return Err(ServiceError::invalid_field(
            "parent_ods_code",
            format!(
                "{} is not of the kind {ods_code} can belong to ({})",
                parent.ods_code,
                wanted_kind.as_str_name()
            ),
        ));
    }
    if let Some(open) = organisation.open_link() {
        return Err(ServiceError::FailedPrecondition(format!(
            "{ods_code} still belongs to {} (since {}); unlink it first",
            open.parent_ods_code, open.valid_from
        )));
    }
    if let Some(overlapping) = organisation
        .parents
        .iter()
        .find(|link| link.valid_to.is_some_and(|valid_to| valid_to >= valid_from))
    {
        return Err(ServiceError::FailedPrecondition(format!(
            "{ods_code} belonged to {} until {}; a new link must start after that",
            overlapping.parent_ods_code,
            overlapping
                .valid_to
                .map(|d| d.to_string())
                .unwrap_or_default()
        )));
    }
    Ok(vec![NewEvent::encode(
        ods_code,
        &OrganisationLinked {
            ods_code: ods_code.to_string(),
            parent_ods_code: parent.ods_code.clone(),
            valid_from: Some(from_naive(valid_from)),
        },
    )])
}

pub fn unlink(
    state: &Option<Organisation>,
    ods_code: &str,
    parent_ods_code: &str,
    valid_to: NaiveDate,
) -> Result<Vec<NewEvent>, ServiceError> {
    let organisation = existing(state, ods_code)?;
    let Some(open) = organisation
        .parents
        .iter()
        .find(|link| link.parent_ods_code == parent_ods_code && link.valid_to.is_none())
    else {
        return Err(ServiceError::FailedPrecondition(format!(
            "{ods_code} has no current link to {parent_ods_code}"
        )));
    };
    if valid_to < open.valid_from {
        return Err(ServiceError::invalid_field(
            "valid_to",
            format!("must not be before the link's start ({})", open.valid_from),
        ));
    }
    Ok(vec![NewEvent::encode(
        ods_code,
        &OrganisationUnlinked {
            ods_code: ods_code.to_string(),
            parent_ods_code: parent_ods_code.to_string(),
            valid_to: Some(from_naive(valid_to)),
        },
    )])
}

pub fn publish_cqc_rating(
    state: &Option<Organisation>,
    ods_code: &str,
    published_on: NaiveDate,
    ratings: &CqcRatings,
) -> Result<Vec<NewEvent>, ServiceError> {
    let organisation = existing(state, ods_code)?;
    if !organisation.is_trust() {
        return Err(ServiceError::FailedPrecondition(format!(
            "{ods_code} is not a trust; the CQC rates providers"
        )));
    }
    if organisation
        .ratings
        .iter()
        .any(|(on, _)| *on == published_on)
    {
        return Err(ServiceError::FailedPrecondition(format!(
            "a CQC rating for {ods_code} published on {published_on} is already recorded"
        )));
    }
    Ok(vec![NewEvent::encode(
        ods_code,
        &CqcRatingPublished {
            ods_code: ods_code.to_string(),
            published_on: Some(from_naive(published_on)),
            ratings: Some(*ratings),
        },
    )])
}

pub fn appoint_executive(
    state: &Option<Organisation>,
    ods_code: &str,
    appointment_id: &str,
    role: ExecutiveRole,
    person_name: &str,
    started_on: NaiveDate,
) -> Result<Vec<NewEvent>, ServiceError> {
    existing(state, ods_code)?;
    Ok(vec![NewEvent::encode(
        ods_code,
        &ExecutiveAppointed {
            ods_code: ods_code.to_string(),
            appointment_id: appointment_id.to_string(),
            role: role as i32,
            person_name: person_name.to_string(),
            started_on: Some(from_naive(started_on)),
        },
    )])
}

pub fn record_departure(
    state: &Option<Organisation>,
    ods_code: &str,
    appointment_id: &str,
    left_on: NaiveDate,
    reason: &str,
) -> Result<Vec<NewEvent>, ServiceError> {
    let organisation = existing(state, ods_code)?;
    let Some(appointment) = organisation
        .appointments
        .iter()
        .find(|appointment| appointment.appointment_id == appointment_id)
    else {
        return Err(ServiceError::NotFound {
            resource: format!("appointment {appointment_id} at {ods_code}"),
        });
    };
    if appointment.left_on.is_some() {
        return Err(ServiceError::FailedPrecondition(format!(
            "appointment {appointment_id} has already ended"
        )));
    }
    if left_on < appointment.started_on {
        return Err(ServiceError::invalid_field(
            "left_on",
            format!(
                "must not be before the appointment started ({})",
                appointment.started_on
            ),
        ));
    }
    Ok(vec![NewEvent::encode(
        ods_code,
        &ExecutiveDeparted {
            ods_code: ods_code.to_string(),
            appointment_id: appointment_id.to_string(),
            role: appointment.role as i32,
            left_on: Some(from_naive(left_on)),
            reason: reason.to_string(),
        },
    )])
}
