//! The value stream aggregate: a patient pathway a trust improves. A revision never overwrites:
//! every earlier definition stays readable beside the rationale for the change.

use chrono::NaiveDate;
use ics_eventstore::{Fold, NewEvent, RecordedEvent};
use ics_proto::EventName;
use ics_proto::date::{from_naive, to_naive};
use ics_proto::events::v1::{
    ValueStreamClosed, ValueStreamDefined, ValueStreamDefinition, ValueStreamRevised,
    ValueStreamStatus, ValueStreamStatusChanged,
};
use ics_service_kit::error::ServiceError;

pub fn stream_id(value_stream_id: &str) -> String {
    format!("value-stream-{value_stream_id}")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub revision: u32,
    pub definition: ValueStreamDefinition,
    pub rationale: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValueStream {
    pub value_stream_id: String,
    pub ods_code: String,
    pub status: ValueStreamStatus,
    pub revisions: Vec<Revision>,
    pub closed_on: Option<NaiveDate>,
    pub version: u64,
}

impl ValueStream {
    /// How the value stream's events fold into it: `None` until it exists.
    pub fn folding() -> Fold<Option<Self>, ServiceError> {
        Fold::new(None, Self::then)
    }

    /// Folds a whole history (see [`folding`](Self::folding)).
    #[cfg(test)]
    pub fn fold(history: &[RecordedEvent]) -> Result<Option<Self>, ServiceError> {
        Self::folding().over(history)
    }

    /// The value stream after one more event of its stream.
    fn then(mut state: Option<Self>, event: &RecordedEvent) -> Result<Option<Self>, ServiceError> {
        let event_type = event.event_type.as_str();
        if event_type == ValueStreamDefined::EVENT_TYPE {
            let defined: ValueStreamDefined = event.decode()?;
            state = Some(ValueStream {
                status: defined.status(),
                value_stream_id: defined.value_stream_id,
                ods_code: defined.ods_code,
                revisions: vec![Revision {
                    revision: 1,
                    definition: defined.definition.unwrap_or_default(),
                    rationale: String::new(),
                }],
                closed_on: None,
                version: 0,
            });
        } else if let Some(value_stream) = state.as_mut() {
            if event_type == ValueStreamRevised::EVENT_TYPE {
                let revised: ValueStreamRevised = event.decode()?;
                value_stream.revisions.push(Revision {
                    revision: revised.revision,
                    definition: revised.definition.unwrap_or_default(),
                    rationale: revised.rationale,
                });
            } else if event_type == ValueStreamStatusChanged::EVENT_TYPE {
                let changed: ValueStreamStatusChanged = event.decode()?;
                value_stream.status = changed.status();
            } else if event_type == ValueStreamClosed::EVENT_TYPE {
                let closed: ValueStreamClosed = event.decode()?;
                value_stream.status = ValueStreamStatus::Closed;
                value_stream.closed_on = closed.closed_on.as_ref().and_then(to_naive);
            }
        }
        if let Some(value_stream) = state.as_mut() {
            value_stream.version = event.stream_version;
        }
        Ok(state)
    }

    pub fn current(&self) -> Option<&Revision> {
        self.revisions.last()
    }
}

fn existing<'a>(
    state: &'a Option<ValueStream>,
    value_stream_id: &str,
) -> Result<&'a ValueStream, ServiceError> {
    state.as_ref().ok_or_else(|| ServiceError::NotFound {
        resource: format!("value stream {value_stream_id}"),
    })
}

fn refuse_if_closed(value_stream: &ValueStream) -> Result<(), ServiceError> {
    if value_stream.status == ValueStreamStatus::Closed {
        return Err(ServiceError::FailedPrecondition(format!(
            "value stream {} is closed",
            value_stream.value_stream_id
        )));
    }
    Ok(())
}

pub fn define(
    state: &Option<ValueStream>,
    value_stream_id: &str,
    ods_code: &str,
    definition: &ValueStreamDefinition,
    status: ValueStreamStatus,
) -> Result<Vec<NewEvent>, ServiceError> {
    if state.is_some() {
        return Err(ServiceError::FailedPrecondition(format!(
            "value stream {value_stream_id} already exists"
        )));
    }
    Ok(vec![NewEvent::encode(
        ods_code,
        &ValueStreamDefined {
            value_stream_id: value_stream_id.to_string(),
            ods_code: ods_code.to_string(),
            definition: Some(definition.clone()),
            status: status as i32,
        },
    )])
}

pub fn revise(
    state: &Option<ValueStream>,
    value_stream_id: &str,
    definition: &ValueStreamDefinition,
    rationale: &str,
) -> Result<Vec<NewEvent>, ServiceError> {
    let value_stream = existing(state, value_stream_id)?;
    refuse_if_closed(value_stream)?;
    if value_stream.current().map(|current| &current.definition) == Some(definition) {
        return Err(ServiceError::FailedPrecondition(
            "the revision changes nothing in the current definition".to_string(),
        ));
    }
    let revision = u32::try_from(value_stream.revisions.len() + 1).unwrap_or(u32::MAX);
    Ok(vec![NewEvent::encode(
        &value_stream.ods_code,
        &ValueStreamRevised {
            value_stream_id: value_stream_id.to_string(),
            ods_code: value_stream.ods_code.clone(),
            revision,
            definition: Some(definition.clone()),
            rationale: rationale.to_string(),
        },
    )])
}

pub fn change_status(
    state: &Option<ValueStream>,
    value_stream_id: &str,
    status: ValueStreamStatus,
) -> Result<Vec<NewEvent>, ServiceError> {
    let value_stream = existing(state, value_stream_id)?;
    refuse_if_closed(value_stream)?;
    if value_stream.status == status {
        return Ok(Vec::new());
    }
    Ok(vec![NewEvent::encode(
        &value_stream.ods_code,
        &ValueStreamStatusChanged {
            value_stream_id: value_stream_id.to_string(),
            ods_code: value_stream.ods_code.clone(),
            previous_status: value_stream.status as i32,
            status: status as i32,
        },
    )])
}

pub fn close(
    state: &Option<ValueStream>,
    value_stream_id: &str,
    closed_on: NaiveDate,
    reason: &str,
) -> Result<Vec<NewEvent>, ServiceError> {
    let value_stream = existing(state, value_stream_id)?;
    refuse_if_closed(value_stream)?;
    Ok(vec![NewEvent::encode(
        &value_stream.ods_code,
        &ValueStreamClosed {
            value_stream_id: value_stream_id.to_string(),
            ods_code: value_stream.ods_code.clone(),
            closed_on: Some(from_naive(closed_on)),
            reason: reason.to_string(),
        },
    )])
}
