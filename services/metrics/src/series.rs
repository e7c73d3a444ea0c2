//! Commands on a series (stream `series-<MEASURE>-<ODS>[-<value stream>]`): each decides on
//! the series as its events fold it ([`folding`], kept between commands by the event store),
//! and appends what changed together with the SPC signals the change produced, in one append —
//! so an icon change is recorded exactly when the data that caused it is, and a command that
//! changes nothing records nothing.

use chrono::NaiveDate;
use ics_eventstore::{Fold, NewEvent, RecordedEvent};
use ics_measures::{Comparison, Series, SpcSignal, same_observation, signals};
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    MeasureDefinition, MeasureScoring, ObservationCorrected, ObservationGhosted, ObservationPoint,
    ObservationsRecorded, PartitionMarkKind, PartitionMarked, SeriesKey, SeriesTargetSet,
};
use ics_service_kit::error::ServiceError;

/// Most observations one `ObservationsRecorded` event carries, to stay well inside a NATS
/// message (about 60 bytes each).
pub const MAX_OBSERVATIONS_PER_EVENT: usize = 2_000;

/// How a series' events fold into it, from no observations; weighed by its observations, as
/// a series can hold thousands.
pub fn folding(key: &SeriesKey) -> Fold<Series, ServiceError> {
    Fold::new(Series::new(key.clone()), |mut series, event| {
        series
            .apply(&event.event_type, &event.payload)
            .map_err(ServiceError::internal)?;
        Ok(series)
    })
    .weighed(Series::approximate_bytes)
}

/// Folds a whole history (see [`folding`]).
pub fn fold(key: &SeriesKey, history: &[RecordedEvent]) -> Result<Series, ServiceError> {
    folding(key).over(history)
}

/// The decided events followed by the SPC signals that the change from `before` to `after`
/// produced, and how many signals there were.
fn with_signals(
    before: &Series,
    after: &Series,
    measure: &MeasureDefinition,
    mut events: Vec<NewEvent>,
) -> (Vec<NewEvent>, usize) {
    let ods_code = after.key.ods_code.as_str();
    let signals = signals(before, after, measure);
    let count = signals.len();
    events.extend(signals.into_iter().map(|signal| match signal {
        SpcSignal::SpecialCause(event) => NewEvent::encode(ods_code, &event),
        SpcSignal::Variation(event) => NewEvent::encode(ods_code, &event),
        SpcSignal::Assurance(event) => NewEvent::encode(ods_code, &event),
    }));
    (events, count)
}

/// What recording a batch of observations did, by the batch's own indexes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recorded {
    pub recorded: Vec<u64>,
    pub unchanged: Vec<u64>,
    pub conflicts: Vec<(u64, String)>,
    pub spc_events: usize,
}

/// One checked observation of a batch, with its index in the caller's stream.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub index: u64,
    pub period_start: NaiveDate,
    pub point: ObservationPoint,
}

/// Records new observations of one series. An observation already recorded with the same
/// figures is unchanged; with other figures it is a conflict and is not written; within the
/// batch the first observation of a period wins the same way.
pub fn record(
    key: &SeriesKey,
    measure: &MeasureDefinition,
    before: &Series,
    batch: &[Incoming],
) -> Result<(Vec<NewEvent>, Recorded), ServiceError> {
    let mut after = before.clone();
    let mut outcome = Recorded::default();
    let mut new_points = Vec::with_capacity(batch.len());
    for incoming in batch {
        let point = ObservationPoint {
            revision: 1,
            ..incoming.point.clone()
        };
        match after.put_new(incoming.period_start, &point) {
            Comparison::New => {
                new_points.push(point);
                outcome.recorded.push(incoming.index);
            }
            Comparison::Unchanged => outcome.unchanged.push(incoming.index),
            Comparison::Conflict(reason) => outcome.conflicts.push((incoming.index, reason)),
        }
    }
    if new_points.is_empty() {
        return Ok((Vec::new(), outcome));
    }
    // Back-loads arrive in any order; the log keeps each event's points in period order.
    new_points.sort_by(|a, b| {
        let key = |point: &ObservationPoint| {
            point
                .period_start
                .map(|date| (date.year, date.month, date.day))
        };
        key(a).cmp(&key(b))
    });
    // The points move into their events rather than being copied: a back-load brings millions.
    let mut events = Vec::with_capacity(new_points.len().div_ceil(MAX_OBSERVATIONS_PER_EVENT));
    let mut rest = new_points.into_iter().peekable();
    while rest.peek().is_some() {
        let observations: Vec<ObservationPoint> =
            rest.by_ref().take(MAX_OBSERVATIONS_PER_EVENT).collect();
        events.push(NewEvent::encode(
            &key.ods_code,
            &ObservationsRecorded {
                series: Some(key.clone()),
                observations,
            },
        ));
    }
    let (events, spc_events) = with_signals(before, &after, measure, events);
    outcome.spc_events = spc_events;
    Ok((events, outcome))
}

fn missing(key: &SeriesKey, period_start: NaiveDate) -> ServiceError {
    ServiceError::NotFound {
        resource: format!(
            "observation of {} for {} starting {period_start}",
            key.measure_code, key.ods_code
        ),
    }
}

/// Supersedes a recorded observation with corrected figures (revision + 1); the same figures
/// again write nothing.
pub fn correct(
    key: &SeriesKey,
    measure: &MeasureDefinition,
    before: &Series,
    period_start: NaiveDate,
    corrected: &ObservationPoint,
    reason: &str,
) -> Result<Vec<NewEvent>, ServiceError> {
    let recorded = before
        .point(period_start)
        .ok_or_else(|| missing(key, period_start))?;
    if same_observation(&recorded.observation, corrected) {
        return Ok(Vec::new());
    }
    let event = ObservationCorrected {
        series: Some(key.clone()),
        observation: Some(ObservationPoint {
            revision: recorded.observation.revision + 1,
            ..corrected.clone()
        }),
        reason: reason.to_string(),
    };
    apply_then_signal(before, measure, NewEvent::encode(&key.ods_code, &event))
}

/// Ghosts or restores a recorded point; a point already in that state writes nothing.
pub fn ghost(
    key: &SeriesKey,
    measure: &MeasureDefinition,
    before: &Series,
    period_start: NaiveDate,
    ghosted: bool,
    reason: &str,
) -> Result<Vec<NewEvent>, ServiceError> {
    let point = before
        .point(period_start)
        .ok_or_else(|| missing(key, period_start))?;
    if point.ghosted == ghosted {
        return Ok(Vec::new());
    }
    let event = ObservationGhosted {
        series: Some(key.clone()),
        period_start: Some(from_naive(period_start)),
        ghosted,
        reason: reason.to_string(),
    };
    apply_then_signal(before, measure, NewEvent::encode(&key.ods_code, &event))
}

/// A partition mark to set or take off.
#[derive(Debug, Clone)]
pub struct MarkChange<'a> {
    pub period_start: NaiveDate,
    pub kind: PartitionMarkKind,
    pub baseline_points: u32,
    pub remove: bool,
    pub reason: &'a str,
}

/// Sets (or removes) a recalculate-from or baseline mark on a recorded point.
pub fn mark(
    key: &SeriesKey,
    measure: &MeasureDefinition,
    before: &Series,
    change: &MarkChange<'_>,
) -> Result<Vec<NewEvent>, ServiceError> {
    let MarkChange {
        period_start,
        kind,
        baseline_points,
        remove,
        reason,
    } = *change;
    let current = before.mark(period_start);
    if remove {
        if current.is_none() {
            return Ok(Vec::new());
        }
    } else {
        if before.point(period_start).is_none() {
            return Err(missing(key, period_start));
        }
        if current
            .is_some_and(|mark| mark.kind == kind as i32 && mark.baseline_points == baseline_points)
        {
            return Ok(Vec::new());
        }
    }
    let event = PartitionMarked {
        series: Some(key.clone()),
        period_start: Some(from_naive(period_start)),
        kind: kind as i32,
        baseline_points,
        removed: remove,
        reason: reason.to_string(),
    };
    apply_then_signal(before, measure, NewEvent::encode(&key.ods_code, &event))
}

/// Sets the series' own target (`None`: fall back to the measure's).
pub fn set_target(
    key: &SeriesKey,
    measure: &MeasureDefinition,
    before: &Series,
    target: Option<f64>,
    reason: &str,
) -> Result<Vec<NewEvent>, ServiceError> {
    if let Some(target) = target
        && measure.scoring == MeasureScoring::Proportion as i32
        && !(0.0..=1.0).contains(&target)
    {
        return Err(ServiceError::invalid_field(
            "target",
            format!("{target} is a proportion outside 0–1"),
        ));
    }
    let event = SeriesTargetSet {
        series: Some(key.clone()),
        target,
        reason: reason.to_string(),
    };
    // Nothing to record when the series already has this target, or already follows its
    // measure's and is asked to.
    if before.own_target() == target.map(Some) {
        return Ok(Vec::new());
    }
    apply_then_signal(before, measure, NewEvent::encode(&key.ods_code, &event))
}

fn apply_then_signal(
    before: &Series,
    measure: &MeasureDefinition,
    event: NewEvent,
) -> Result<Vec<NewEvent>, ServiceError> {
    let mut after = before.clone();
    after
        .apply(&event.event_type, &event.payload)
        .map_err(ServiceError::internal)?;
    Ok(with_signals(before, &after, measure, vec![event]).0)
}

#[cfg(test)]
mod tests {
    use chrono::Days;
    use ics_eventstore::{history_of, history_then};
    use ics_proto::EventName;
    use ics_proto::events::v1::{ImprovementDirection, SpecialCauseDetected, VariationIconChanged};

    use super::*;

    fn key() -> SeriesKey {
        SeriesKey {
            measure_code: "WAIT".into(),
            ods_code: "RTP".into(),
            value_stream_id: String::new(),
        }
    }

    fn measure() -> MeasureDefinition {
        MeasureDefinition {
            code: "WAIT".into(),
            direction: ImprovementDirection::Increase as i32,
            scoring: MeasureScoring::Continuous as i32,
            ..MeasureDefinition::default()
        }
    }

    fn day(offset: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2021, 1, 1).expect("date") + Days::new(offset)
    }

    fn incoming(index: u64, offset: u64, value: f64) -> Incoming {
        let start = day(offset);
        Incoming {
            index,
            period_start: start,
            point: ObservationPoint {
                period_start: Some(from_naive(start)),
                period_end: Some(from_naive(start)),
                value,
                ..ObservationPoint::default()
            },
        }
    }

    fn types(events: &[NewEvent]) -> Vec<&str> {
        events
            .iter()
            .map(|event| event.event_type.as_str())
            .collect()
    }

    #[test]
    fn recording_again_is_a_no_op_and_another_value_a_conflict() {
        let batch: Vec<Incoming> = (0..5).map(|i| incoming(i, i, 10.0)).collect();
        let (events, outcome) = record(
            &key(),
            &measure(),
            &fold(&key(), &[]).expect("folds"),
            &batch,
        )
        .expect("records");
        assert_eq!(outcome.recorded, [0, 1, 2, 3, 4]);
        let history = history_of(events);
        let again = [
            incoming(7, 0, 10.0),
            incoming(8, 1, 11.0),
            incoming(9, 9, 3.0),
        ];
        let (events, outcome) = record(
            &key(),
            &measure(),
            &fold(&key(), &history).expect("folds"),
            &again,
        )
        .expect("records");
        assert_eq!(outcome.unchanged, [7]);
        assert_eq!(outcome.conflicts.len(), 1);
        assert_eq!(outcome.conflicts[0].0, 8);
        assert_eq!(outcome.recorded, [9]);
        assert_eq!(types(&events), [ObservationsRecorded::EVENT_TYPE]);
        let series = fold(&key(), &history_then(history, events)).expect("folds");
        assert_eq!(series.point(day(1)).expect("kept").observation.value, 10.0);
    }

    #[test]
    fn the_first_of_two_observations_of_a_period_in_one_batch_wins() {
        let batch = [
            incoming(0, 0, 1.0),
            incoming(1, 0, 2.0),
            incoming(2, 0, 1.0),
        ];
        let (_, outcome) = record(
            &key(),
            &measure(),
            &fold(&key(), &[]).expect("folds"),
            &batch,
        )
        .expect("records");
        assert_eq!(outcome.recorded, [0]);
        assert_eq!(outcome.conflicts.len(), 1);
        assert_eq!(outcome.unchanged, [2]);
    }

    #[test]
    fn large_batches_split_into_events_that_fit_a_message() {
        let batch: Vec<Incoming> = (0..4_500).map(|i| incoming(i, i, 1.0)).collect();
        let (events, _) = record(
            &key(),
            &measure(),
            &fold(&key(), &[]).expect("folds"),
            &batch,
        )
        .expect("records");
        let recorded = events
            .iter()
            .filter(|event| event.event_type == ObservationsRecorded::EVENT_TYPE)
            .count();
        assert_eq!(recorded, 3);
    }

    #[test]
    fn a_correction_supersedes_keeps_the_old_revision_and_signals_once() {
        let stable: Vec<Incoming> = (0..20)
            .map(|i| incoming(i, i, 10.0 + (i % 3) as f64))
            .collect();
        let (events, outcome) = record(
            &key(),
            &measure(),
            &fold(&key(), &[]).expect("folds"),
            &stable,
        )
        .expect("records");
        assert!(outcome.spc_events > 0, "15+ points bring the first icons");
        let history = history_of(events);
        let wrong = incoming(0, 19, 4.0);
        let corrected = correct(
            &key(),
            &measure(),
            &fold(&key(), &history).expect("folds"),
            day(19),
            &wrong.point,
            "typo in the extract",
        )
        .expect("corrects");
        assert_eq!(
            types(&corrected),
            [
                ObservationCorrected::EVENT_TYPE,
                SpecialCauseDetected::EVENT_TYPE,
                VariationIconChanged::EVENT_TYPE
            ]
        );
        let history = history_then(history, corrected);
        let series = fold(&key(), &history).expect("folds");
        assert_eq!(
            series.point(day(19)).expect("point").observation.revision,
            2
        );
        assert!(
            history
                .iter()
                .any(|event| event.event_type == ObservationsRecorded::EVENT_TYPE),
            "the first revision stays in the log"
        );
        // The same correction again writes nothing, so no second signal.
        assert!(
            correct(
                &key(),
                &measure(),
                &fold(&key(), &history).expect("folds"),
                day(19),
                &wrong.point,
                "again"
            )
            .expect("no-op")
            .is_empty()
        );
        // Ghosting the outlier takes the concern away again.
        let ghosted = ghost(
            &key(),
            &measure(),
            &fold(&key(), &history).expect("folds"),
            day(19),
            true,
            "known IT outage",
        )
        .expect("ghosts");
        assert!(types(&ghosted).contains(&VariationIconChanged::EVENT_TYPE));
    }

    #[test]
    fn a_recalculation_mark_starts_a_new_partition_and_signals_the_change() {
        // Twenty points around 10, then twenty around 20: one partition sees a shift.
        let rows: Vec<Incoming> = (0..40)
            .map(|i| incoming(i, i, if i < 20 { 10.0 } else { 20.0 } + (i % 3) as f64))
            .collect();
        let (events, _) = record(
            &key(),
            &measure(),
            &fold(&key(), &[]).expect("folds"),
            &rows,
        )
        .expect("records");
        let history = history_of(events);
        let before = fold(&key(), &history).expect("folds");
        assert_eq!(
            before.analyse(&measure()).partitions.len(),
            1,
            "one partition before the mark"
        );
        let change = MarkChange {
            period_start: day(20),
            kind: PartitionMarkKind::RecalculateFrom,
            baseline_points: 0,
            remove: false,
            reason: "new discharge pathway",
        };
        let marked = mark(
            &key(),
            &measure(),
            &fold(&key(), &history).expect("folds"),
            &change,
        )
        .expect("marks");
        assert_eq!(marked[0].event_type, PartitionMarked::EVENT_TYPE);
        assert!(
            marked
                .iter()
                .any(|event| event.event_type == VariationIconChanged::EVENT_TYPE),
            "the last point is common cause within its own partition"
        );
        let history = history_then(history, marked);
        let after = fold(&key(), &history).expect("folds");
        assert_eq!(after.analyse(&measure()).partitions.len(), 2);
        // The same mark again writes nothing.
        assert!(
            mark(
                &key(),
                &measure(),
                &fold(&key(), &history).expect("folds"),
                &change
            )
            .expect("no-op")
            .is_empty()
        );
    }

    #[test]
    fn marks_and_ghosts_need_a_recorded_point() {
        assert!(matches!(
            ghost(
                &key(),
                &measure(),
                &fold(&key(), &[]).expect("folds"),
                day(3),
                true,
                ""
            ),
            Err(ServiceError::NotFound { .. })
        ));
        assert!(matches!(
            mark(
                &key(),
                &measure(),
                &fold(&key(), &[]).expect("folds"),
                &MarkChange {
                    period_start: day(3),
                    kind: PartitionMarkKind::RecalculateFrom,
                    baseline_points: 0,
                    remove: false,
                    reason: "",
                }
            ),
            Err(ServiceError::NotFound { .. })
        ));
    }
}
