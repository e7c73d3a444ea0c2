//! The measure aggregate: a definition and its revisions (stream `measure-<CODE>`).

use ics_eventstore::{EventStore, Fold, NewEvent, RecordedEvent};
use ics_measures::measure_stream;
use ics_proto::EventName;
use ics_proto::events::v1::{MeasureDefined, MeasureDefinition};
use ics_service_kit::error::ServiceError;

/// A measure as its events leave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub definition: MeasureDefinition,
    pub revision: u32,
}

impl Measure {
    /// How the measure's events fold into it: `None` until it exists.
    pub fn folding() -> Fold<Option<Self>, ServiceError> {
        Fold::new(None, Self::then)
    }

    /// Folds a whole history (see [`folding`](Self::folding)).
    pub fn fold(history: &[RecordedEvent]) -> Result<Option<Self>, ServiceError> {
        Self::folding().over(history)
    }

    /// The measure after one more event of its stream.
    fn then(
        mut measure: Option<Self>,
        event: &RecordedEvent,
    ) -> Result<Option<Self>, ServiceError> {
        if event.event_type == MeasureDefined::EVENT_TYPE {
            let defined: MeasureDefined = event.decode().map_err(ServiceError::internal)?;
            measure = Some(Measure {
                definition: defined.definition.unwrap_or_default(),
                revision: defined.revision,
            });
        }
        Ok(measure)
    }
}

/// The measure `code` as its stream leaves it; `None` when it was never defined.
pub async fn load(store: &EventStore, code: &str) -> Result<Option<Measure>, ServiceError> {
    store.load(&measure_stream(code), Measure::folding()).await
}

/// The measure `code`, or NOT_FOUND.
pub async fn require(store: &EventStore, code: &str) -> Result<Measure, ServiceError> {
    load(store, code)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("measure {code}")))
}

/// Defines the measure, or redefines it as the next revision; the same definition again writes
/// nothing.
pub fn define(
    state: &Option<Measure>,
    definition: &MeasureDefinition,
) -> Result<Vec<NewEvent>, ServiceError> {
    let current = state.as_ref();
    if current.is_some_and(|measure| &measure.definition == definition) {
        return Ok(Vec::new());
    }
    let revision = current.map_or(1, |measure| measure.revision + 1);
    Ok(vec![NewEvent::encode(
        "",
        &MeasureDefined {
            definition: Some(definition.clone()),
            revision,
        },
    )])
}

#[cfg(test)]
mod tests {
    use ics_eventstore::{history_of, history_then};

    use super::*;

    #[test]
    fn redefining_makes_a_revision_and_the_same_definition_is_a_no_op() {
        let first = MeasureDefinition {
            code: "RCI".into(),
            name: "Reference cost index".into(),
            ..MeasureDefinition::default()
        };
        let history = history_of(define(&None, &first).expect("defined"));
        assert!(
            define(&Measure::fold(&history).expect("folds"), &first)
                .expect("same")
                .is_empty()
        );
        let second = MeasureDefinition {
            target: Some(100.0),
            ..first
        };
        let revised = define(&Measure::fold(&history).expect("folds"), &second).expect("revised");
        let history = history_then(history, revised);
        let measure = Measure::fold(&history).expect("folds").expect("exists");
        assert_eq!(measure.revision, 2);
        assert_eq!(measure.definition.target, Some(100.0));
    }
}
