//! Leadership-training cohorts: who took part from each trust, who completed, who valued it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use ics_eventstore::{Fold, NewEvent, RecordedEvent};
use ics_proto::EventName;
use ics_proto::date::from_naive;
use ics_proto::events::v1::{TrainingCohortRegistered, TrainingParticipationRecorded};
use ics_service_kit::error::ServiceError;

pub fn stream_id(cohort_id: &str) -> String {
    format!("training-cohort-{cohort_id}")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    pub cohort_id: String,
    pub programme_id: String,
    pub course: String,
    pub name: String,
    /// Latest figures per trust (a later record replaces an earlier one).
    pub participation: BTreeMap<String, TrainingParticipationRecorded>,
}

impl Cohort {
    /// How the cohort's events fold into it: `None` until it exists.
    pub fn folding() -> Fold<Option<Self>, ServiceError> {
        Fold::new(None, Self::then)
    }

    /// Folds a whole history (see [`folding`](Self::folding)).
    #[cfg(test)]
    pub fn fold(history: &[RecordedEvent]) -> Result<Option<Self>, ServiceError> {
        Self::folding().over(history)
    }

    /// The cohort after one more event of its stream.
    fn then(mut state: Option<Self>, event: &RecordedEvent) -> Result<Option<Self>, ServiceError> {
        let event_type = event.event_type.as_str();
        if event_type == TrainingCohortRegistered::EVENT_TYPE {
            let registered: TrainingCohortRegistered = event.decode()?;
            state = Some(Cohort {
                cohort_id: registered.cohort_id,
                programme_id: registered.programme_id,
                course: registered.course,
                name: registered.name,
                participation: BTreeMap::new(),
            });
        } else if event_type == TrainingParticipationRecorded::EVENT_TYPE
            && let Some(cohort) = state.as_mut()
        {
            let recorded: TrainingParticipationRecorded = event.decode()?;
            cohort
                .participation
                .insert(recorded.ods_code.clone(), recorded);
        }
        Ok(state)
    }
}

#[derive(Debug, Clone)]
pub struct CohortDetails<'a> {
    pub programme_id: &'a str,
    pub course: &'a str,
    pub name: &'a str,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
}

pub fn register(
    state: &Option<Cohort>,
    cohort_id: &str,
    details: &CohortDetails<'_>,
) -> Result<Vec<NewEvent>, ServiceError> {
    if state.is_some() {
        return Err(ServiceError::FailedPrecondition(format!(
            "training cohort {cohort_id} already exists"
        )));
    }
    Ok(vec![NewEvent::encode(
        "",
        &TrainingCohortRegistered {
            cohort_id: cohort_id.to_string(),
            programme_id: details.programme_id.to_string(),
            course: details.course.to_string(),
            name: details.name.to_string(),
            starts_on: Some(from_naive(details.starts_on)),
            ends_on: Some(from_naive(details.ends_on)),
        },
    )])
}

pub fn record_participation(
    state: &Option<Cohort>,
    participation: &TrainingParticipationRecorded,
) -> Result<Vec<NewEvent>, ServiceError> {
    let Some(cohort) = state else {
        return Err(ServiceError::NotFound {
            resource: format!("training cohort {}", participation.cohort_id),
        });
    };
    if cohort.participation.get(&participation.ods_code) == Some(participation) {
        return Ok(Vec::new());
    }
    Ok(vec![NewEvent::encode(
        &participation.ods_code,
        participation,
    )])
}
