//! Lifecycle and target-sheet rules, decided without I/O.

use chrono::NaiveDate;
use ics_eventstore::{NewEvent, RecordedEvent, history_then};
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    FollowUpCheckpoint, MetricKind, MetricUnit, MetricValue, TargetMetric, WorkshopChartered,
    WorkshopKind, WorkshopRoles,
};
use ics_service_kit::ServiceError;

use crate::workshop::{self, FollowUp, Status, Workshop};

const ID: &str = "w-1";
const MAX_DAYS: u32 = 5;

fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
}

fn then(
    history: Vec<RecordedEvent>,
    decision: Result<Vec<NewEvent>, ServiceError>,
) -> Vec<RecordedEvent> {
    match decision {
        Ok(events) => history_then(history, events),
        Err(error) => panic!("decision refused: {error}"),
    }
}

/// The state a command on `history` decides on.
fn folded(history: &[RecordedEvent]) -> Option<Workshop> {
    Workshop::fold(history).unwrap_or_else(|error| panic!("workshop folds: {error}"))
}

fn fold(history: &[RecordedEvent]) -> Workshop {
    Workshop::fold(history)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("workshop folds"))
}

fn precondition_failed<T: std::fmt::Debug>(result: Result<T, ServiceError>) -> String {
    match result {
        Err(ServiceError::FailedPrecondition(message)) => message,
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
}

fn invalid_fields<T: std::fmt::Debug>(result: Result<T, ServiceError>) -> Vec<String> {
    match result {
        Err(ServiceError::InvalidArgument(violations)) => violations
            .into_iter()
            .map(|violation| violation.field)
            .collect(),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

fn sheet() -> Vec<TargetMetric> {
    vec![
        TargetMetric {
            metric_id: "time".into(),
            name: "Time to discharge".into(),
            kind: MetricKind::ProcessTime as i32,
            unit: MetricUnit::Hours as i32,
            baseline: 40.0,
            target: 20.0,
        },
        TargetMetric {
            metric_id: "rate".into(),
            name: "Discharge letters with errors".into(),
            kind: MetricKind::ErrorRate as i32,
            unit: MetricUnit::Percent as i32,
            baseline: 12.0,
            target: 4.0,
        },
    ]
}

fn chartered() -> Vec<RecordedEvent> {
    then(
        Vec::new(),
        workshop::charter(
            &None,
            &WorkshopChartered {
                workshop_id: ID.into(),
                ods_code: "RTP".into(),
                value_stream_id: "vs-1".into(),
                kind: WorkshopKind::Rpiw as i32,
                title: "Discharge before noon".into(),
                roles: Some(WorkshopRoles {
                    team_size: 8,
                    ..Default::default()
                }),
                preparation_starts_on: Some(from_naive(day(2017, 1, 9))),
                target_sheet: sheet(),
            },
        ),
    )
}

fn values(time: f64, rate: f64) -> Vec<MetricValue> {
    vec![
        MetricValue {
            metric_id: "time".into(),
            value: time,
        },
        MetricValue {
            metric_id: "rate".into(),
            value: rate,
        },
    ]
}

/// Chartered, scheduled 6–10 March 2017, held, reported out.
fn reported_out() -> Vec<RecordedEvent> {
    let history = chartered();
    let history = then(
        history.clone(),
        workshop::schedule(
            &folded(&history),
            ID,
            day(2017, 3, 6),
            day(2017, 3, 10),
            MAX_DAYS,
            "",
        ),
    );
    let history = then(
        history.clone(),
        workshop::record_held(&folded(&history), ID, None, MAX_DAYS),
    );
    then(
        history.clone(),
        workshop::deliver_report_out(&folded(&history), ID, day(2017, 3, 10), &values(18.0, 5.0)),
    )
}

#[test]
fn the_lifecycle_runs_from_charter_to_close() {
    let history = reported_out();
    let mut history = history;
    for (checkpoint, measured_on) in [
        (FollowUpCheckpoint::Day30, day(2017, 4, 10)),
        (FollowUpCheckpoint::Day60, day(2017, 5, 10)),
        (FollowUpCheckpoint::Day90, day(2017, 6, 9)),
        (FollowUpCheckpoint::Day365, day(2018, 3, 12)),
    ] {
        history = then(
            history.clone(),
            workshop::record_follow_up(
                &folded(&history),
                ID,
                checkpoint,
                measured_on,
                &values(19.0, 3.5),
            ),
        );
    }
    let history = then(
        history.clone(),
        workshop::close(&folded(&history), ID, day(2018, 3, 20)),
    );
    let workshop = fold(&history);
    assert_eq!(workshop.status, Status::Closed);
    assert_eq!(workshop.held_to, Some(day(2017, 3, 10)));
    assert_eq!(workshop.follow_ups.len(), 4);
    // Closed is final.
    precondition_failed(workshop::cancel(
        &folded(&history),
        ID,
        day(2018, 4, 1),
        "late",
    ));
    precondition_failed(workshop::schedule(
        &folded(&history),
        ID,
        day(2018, 5, 1),
        day(2018, 5, 3),
        MAX_DAYS,
        "",
    ));
}

#[test]
fn illegal_transitions_are_refused() {
    let history = chartered();
    // Not scheduled yet: cannot be held, reported out or followed up.
    precondition_failed(workshop::record_held(&folded(&history), ID, None, MAX_DAYS));
    precondition_failed(workshop::deliver_report_out(
        &folded(&history),
        ID,
        day(2017, 3, 10),
        &values(1.0, 1.0),
    ));
    let message = precondition_failed(workshop::record_follow_up(
        &folded(&history),
        ID,
        FollowUpCheckpoint::Day30,
        day(2017, 4, 10),
        &values(1.0, 1.0),
    ));
    assert!(message.contains("follow-ups come after"), "{message}");
    precondition_failed(workshop::close(&folded(&history), ID, day(2017, 4, 1)));
    // After the report-out it can no longer be cancelled, and a follow-up is recorded once.
    let history = reported_out();
    precondition_failed(workshop::cancel(
        &folded(&history),
        ID,
        day(2017, 3, 11),
        "changed our minds",
    ));
    let history = then(
        history.clone(),
        workshop::record_follow_up(
            &folded(&history),
            ID,
            FollowUpCheckpoint::Day30,
            day(2017, 4, 10),
            &values(19.0, 3.5),
        ),
    );
    precondition_failed(workshop::record_follow_up(
        &folded(&history),
        ID,
        FollowUpCheckpoint::Day30,
        day(2017, 4, 11),
        &values(19.0, 3.5),
    ));
    // Closing waits for every follow-up.
    let message = precondition_failed(workshop::close(&folded(&history), ID, day(2017, 5, 1)));
    assert!(message.contains("60-day, 90-day, 365-day"), "{message}");
}

#[test]
fn a_workshop_longer_than_the_maximum_needs_an_override() {
    let history = chartered();
    assert_eq!(
        invalid_fields(workshop::schedule(
            &folded(&history),
            ID,
            day(2017, 3, 6),
            day(2017, 3, 13),
            MAX_DAYS,
            "",
        )),
        vec!["ends_on"]
    );
    let history = then(
        history.clone(),
        workshop::schedule(
            &folded(&history),
            ID,
            day(2017, 3, 6),
            day(2017, 3, 13),
            MAX_DAYS,
            "a two-week 3P event agreed with the sponsor",
        ),
    );
    // The override carries over to recording the days held.
    let history = then(
        history.clone(),
        workshop::record_held(&folded(&history), ID, None, MAX_DAYS),
    );
    assert_eq!(fold(&history).held_to, Some(day(2017, 3, 13)));
}

#[test]
fn dates_out_of_order_are_refused() {
    let history = chartered();
    assert_eq!(
        invalid_fields(workshop::schedule(
            &folded(&history),
            ID,
            day(2017, 3, 10),
            day(2017, 3, 6),
            MAX_DAYS,
            "",
        )),
        vec!["ends_on"]
    );
    // Before preparation began.
    assert_eq!(
        invalid_fields(workshop::schedule(
            &folded(&history),
            ID,
            day(2016, 12, 1),
            day(2016, 12, 2),
            MAX_DAYS,
            "",
        )),
        vec!["starts_on"]
    );
    let history = reported_out();
    assert_eq!(
        invalid_fields(workshop::record_follow_up(
            &folded(&history),
            ID,
            FollowUpCheckpoint::Day30,
            day(2017, 3, 9),
            &values(1.0, 1.0),
        )),
        vec!["measured_on"]
    );
}

#[test]
fn report_out_values_must_match_the_target_sheet() {
    let history = chartered();
    let history = then(
        history.clone(),
        workshop::schedule(
            &folded(&history),
            ID,
            day(2017, 3, 6),
            day(2017, 3, 10),
            MAX_DAYS,
            "",
        ),
    );
    let history = then(
        history.clone(),
        workshop::record_held(&folded(&history), ID, None, MAX_DAYS),
    );
    let missing_rate = vec![MetricValue {
        metric_id: "time".into(),
        value: 10.0,
    }];
    assert_eq!(
        invalid_fields(workshop::deliver_report_out(
            &folded(&history),
            ID,
            day(2017, 3, 10),
            &missing_rate,
        )),
        vec!["after"]
    );
    let mut unknown = values(10.0, 2.0);
    unknown.push(MetricValue {
        metric_id: "other".into(),
        value: 1.0,
    });
    assert_eq!(
        invalid_fields(workshop::deliver_report_out(
            &folded(&history),
            ID,
            day(2017, 3, 10),
            &unknown
        )),
        vec!["after[2].metric_id"]
    );
    // An error rate is a percentage; nothing is negative or infinite.
    assert_eq!(
        invalid_fields(workshop::deliver_report_out(
            &folded(&history),
            ID,
            day(2017, 3, 10),
            &values(-1.0, 120.0),
        )),
        vec!["after[0].value", "after[1].value"]
    );
    assert_eq!(
        invalid_fields(workshop::deliver_report_out(
            &folded(&history),
            ID,
            day(2017, 3, 10),
            &values(f64::INFINITY, f64::NAN),
        )),
        vec!["after[0].value", "after[1].value"]
    );
}

#[test]
fn units_fit_their_metric_kind() {
    assert!(workshop::unit_fits(
        MetricKind::ProcessTime,
        MetricUnit::Minutes
    ));
    assert!(workshop::unit_fits(
        MetricKind::ProcessTime,
        MetricUnit::Days
    ));
    assert!(!workshop::unit_fits(
        MetricKind::ProcessTime,
        MetricUnit::Percent
    ));
    assert!(workshop::unit_fits(
        MetricKind::ErrorCount,
        MetricUnit::Count
    ));
    assert!(!workshop::unit_fits(
        MetricKind::ErrorCount,
        MetricUnit::Hours
    ));
    assert!(workshop::unit_fits(
        MetricKind::ErrorRate,
        MetricUnit::Percent
    ));
    assert!(!workshop::unit_fits(
        MetricKind::ErrorRate,
        MetricUnit::Count
    ));
}

fn noon(on: NaiveDate) -> chrono::DateTime<chrono::Utc> {
    on.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc()
}

/// The same history, as if recorded at `at`.
fn recorded_on_at(
    history: Vec<RecordedEvent>,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<RecordedEvent> {
    history
        .into_iter()
        .map(|event| RecordedEvent {
            recorded_at: at,
            ..event
        })
        .collect()
}

/// The same history, as if recorded at noon on `on`.
fn recorded_on(history: Vec<RecordedEvent>, on: NaiveDate) -> Vec<RecordedEvent> {
    recorded_on_at(history, noon(on))
}

#[test]
fn a_follow_up_is_missed_only_after_its_due_date_and_only_once() {
    // Recorded as it happened, on the last workshop day.
    let history = recorded_on(reported_out(), day(2017, 3, 10));
    // Held until 10 March 2017: the 30-day follow-up is due on 9 April.
    let due = day(2017, 4, 9);
    assert!(
        workshop::mark_missed(
            &folded(&history),
            ID,
            FollowUpCheckpoint::Day30,
            noon(due),
            0
        )
        .unwrap_or_default()
        .is_empty()
    );
    let history = then(
        history.clone(),
        workshop::mark_missed(
            &folded(&history),
            ID,
            FollowUpCheckpoint::Day30,
            noon(day(2017, 4, 10)),
            0,
        ),
    );
    assert_eq!(
        fold(&history)
            .follow_ups
            .get(&(FollowUpCheckpoint::Day30 as i32)),
        Some(&FollowUp::Missed { due_on: due })
    );
    assert!(
        workshop::mark_missed(
            &folded(&history),
            ID,
            FollowUpCheckpoint::Day30,
            noon(day(2017, 5, 1)),
            0
        )
        .unwrap_or_default()
        .is_empty()
    );
    // A recorded follow-up is never marked missed; a missed one is not recorded late.
    precondition_failed(workshop::record_follow_up(
        &folded(&history),
        ID,
        FollowUpCheckpoint::Day30,
        day(2017, 4, 20),
        &values(19.0, 3.0),
    ));
    let history = then(
        history.clone(),
        workshop::record_follow_up(
            &folded(&history),
            ID,
            FollowUpCheckpoint::Day60,
            day(2017, 5, 9),
            &values(19.0, 3.0),
        ),
    );
    assert!(
        workshop::mark_missed(
            &folded(&history),
            ID,
            FollowUpCheckpoint::Day60,
            noon(day(2018, 1, 1)),
            0
        )
        .unwrap_or_default()
        .is_empty()
    );
}

#[test]
fn sustainment_compares_each_value_with_its_target() {
    let workshop = fold(&reported_out());
    assert_eq!(workshop.sustained(&values(20.0, 4.5)), vec![true, false]);
    assert_eq!(workshop.sustained(&values(21.0, 1.0)), vec![false, true]);
}

#[test]
fn a_back_loaded_workshop_gets_the_grace_period_from_when_it_was_loaded() {
    // Reported out in 2017 but loaded now: its 30-day follow-up fell due years ago, yet it is not
    // missed until the grace period after loading has passed.
    let loaded = chrono::Utc::now();
    let history = recorded_on_at(reported_out(), loaded);
    let within_grace = loaded + chrono::Days::new(7) - chrono::Duration::seconds(1);
    assert!(
        workshop::mark_missed(
            &folded(&history),
            ID,
            FollowUpCheckpoint::Day30,
            within_grace,
            7
        )
        .unwrap_or_default()
        .is_empty()
    );
    let after_grace = loaded + chrono::Days::new(7);
    assert_eq!(
        workshop::mark_missed(
            &folded(&history),
            ID,
            FollowUpCheckpoint::Day30,
            after_grace,
            7
        )
        .unwrap_or_default()
        .len(),
        1
    );
    // Recorded as it happened, the grace counts from the due date.
    let due = day(2017, 4, 9);
    let reported = noon(day(2017, 3, 10));
    assert!(!workshop::overdue(due, reported, noon(day(2017, 4, 16)), 7));
    assert!(workshop::overdue(due, reported, noon(day(2017, 4, 17)), 7));
}
