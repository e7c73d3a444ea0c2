//! Aggregate decisions, without I/O: each test builds a history and checks what a command
//! decides from it.

use chrono::NaiveDate;
use ics_eventstore::{NewEvent, RecordedEvent, history_then};
use ics_proto::EventName;
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    BoardMeetingHeld, BoardMemberAdded, CompactAdopted, CqcRating, CqcRatings, ExecutiveAppointed,
    ExecutiveRole, OrganisationKind, OrganisationLinked, ProgrammeRegistered, ProgrammeTrustJoined,
    TrainingParticipationRecorded, ValueStreamDefinition, ValueStreamOrigin, ValueStreamRevised,
    ValueStreamStatus,
};
use ics_service_kit::ServiceError;
use prost::Message;

use crate::organisation::{self, Organisation};
use crate::programme::{self, Programme};
use crate::training::{self, Cohort, CohortDetails};
use crate::value_stream::{self, ValueStream};

/// The states commands on these histories decide on.
fn organisation_of(history: &[RecordedEvent]) -> Option<Organisation> {
    Organisation::fold(history).unwrap_or_else(|error| panic!("organisation folds: {error}"))
}

fn value_stream_of(history: &[RecordedEvent]) -> Option<ValueStream> {
    ValueStream::fold(history).unwrap_or_else(|error| panic!("value stream folds: {error}"))
}

fn programme_of(history: &[RecordedEvent]) -> Option<Programme> {
    Programme::fold(history).unwrap_or_else(|error| panic!("programme folds: {error}"))
}

fn cohort_of(history: &[RecordedEvent]) -> Option<Cohort> {
    Cohort::fold(history).unwrap_or_else(|error| panic!("cohort folds: {error}"))
}

fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
}

/// Applies a decision to a history and returns the longer history.
fn then(
    history: Vec<RecordedEvent>,
    decision: Result<Vec<NewEvent>, ServiceError>,
) -> Vec<RecordedEvent> {
    match decision {
        Ok(new_events) => history_then(history, new_events),
        Err(error) => panic!("decision refused: {error}"),
    }
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

fn trust(ods_code: &str) -> Vec<RecordedEvent> {
    then(
        Vec::new(),
        organisation::register(&None, ods_code, "A trust", OrganisationKind::Trust),
    )
}

fn icb(ods_code: &str) -> Organisation {
    let history = then(
        Vec::new(),
        organisation::register(&None, ods_code, "An ICB", OrganisationKind::Icb),
    );
    Organisation::fold(&history)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("icb folds"))
}

fn good() -> CqcRatings {
    CqcRatings {
        overall: CqcRating::Good as i32,
        safe: CqcRating::Good as i32,
        effective: CqcRating::Good as i32,
        caring: CqcRating::Outstanding as i32,
        responsive: CqcRating::Good as i32,
        well_led: CqcRating::Good as i32,
    }
}

#[test]
fn an_organisation_is_registered_once() {
    let history = trust("RTP");
    let message = precondition_failed(organisation::register(
        &organisation_of(&history),
        "RTP",
        "Again",
        OrganisationKind::Trust,
    ));
    assert!(message.contains("already registered"));
}

#[test]
fn commands_on_an_unregistered_organisation_are_not_found() {
    assert!(matches!(
        organisation::rename(&None, "RTP", "New"),
        Err(ServiceError::NotFound { .. })
    ));
    assert!(matches!(
        organisation::publish_cqc_rating(&None, "RTP", day(2020, 1, 1), &good()),
        Err(ServiceError::NotFound { .. })
    ));
}

#[test]
fn renaming_to_the_same_name_records_nothing() {
    let history = trust("RTP");
    assert!(
        organisation::rename(&organisation_of(&history), "RTP", "A trust")
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(
        organisation::rename(&organisation_of(&history), "RTP", "New")
            .unwrap_or_default()
            .len(),
        1
    );
}

#[test]
fn a_trust_belongs_to_one_icb_at_a_time_and_periods_never_overlap() {
    let history = trust("RTP");
    let surrey = icb("QXU");
    let sussex = icb("QNX");
    let history = then(
        history,
        organisation::link(
            &organisation_of(&trust("RTP")),
            "RTP",
            &surrey,
            day(2022, 7, 1),
        ),
    );
    let message = precondition_failed(organisation::link(
        &organisation_of(&history),
        "RTP",
        &sussex,
        day(2026, 4, 1),
    ));
    assert!(message.contains("unlink it first"), "{message}");

    let history = then(
        history.clone(),
        organisation::unlink(&organisation_of(&history), "RTP", "QXU", day(2026, 3, 31)),
    );
    let message = precondition_failed(organisation::link(
        &organisation_of(&history),
        "RTP",
        &sussex,
        day(2026, 3, 1),
    ));
    assert!(message.contains("must start after"), "{message}");
    let history = then(
        history.clone(),
        organisation::link(&organisation_of(&history), "RTP", &sussex, day(2026, 4, 1)),
    );
    let folded = Organisation::fold(&history)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("folds"));
    assert_eq!(folded.parents.len(), 2);
    assert_eq!(folded.parents[0].valid_to, Some(day(2026, 3, 31)));
    assert_eq!(
        folded.open_link().map(|link| link.parent_ods_code.as_str()),
        Some("QNX")
    );
}

#[test]
fn a_trust_links_only_to_an_icb_and_an_unlink_cannot_end_before_it_began() {
    let history = trust("RTP");
    let other_trust = Organisation::fold(&trust("RR8"))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("folds"));
    assert_eq!(
        invalid_fields(organisation::link(
            &organisation_of(&history),
            "RTP",
            &other_trust,
            day(2022, 7, 1)
        )),
        vec!["parent_ods_code"]
    );
    let history = then(
        history.clone(),
        organisation::link(
            &organisation_of(&history),
            "RTP",
            &icb("QXU"),
            day(2022, 7, 1),
        ),
    );
    assert_eq!(
        invalid_fields(organisation::unlink(
            &organisation_of(&history),
            "RTP",
            "QXU",
            day(2022, 6, 30)
        )),
        vec!["valid_to"]
    );
    precondition_failed(organisation::unlink(
        &organisation_of(&history),
        "RTP",
        "QWO",
        day(2023, 1, 1),
    ));
}

#[test]
fn cqc_ratings_keep_their_history_and_one_publication_date_is_rated_once() {
    let history = trust("RTP");
    let history = then(
        history.clone(),
        organisation::publish_cqc_rating(
            &organisation_of(&history),
            "RTP",
            day(2019, 5, 1),
            &good(),
        ),
    );
    let history = then(
        history.clone(),
        organisation::publish_cqc_rating(
            &organisation_of(&history),
            "RTP",
            day(2015, 5, 1),
            &good(),
        ),
    );
    precondition_failed(organisation::publish_cqc_rating(
        &organisation_of(&history),
        "RTP",
        day(2019, 5, 1),
        &good(),
    ));
    let folded = Organisation::fold(&history)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("folds"));
    let dates: Vec<NaiveDate> = folded.ratings.iter().map(|(on, _)| *on).collect();
    assert_eq!(dates, vec![day(2015, 5, 1), day(2019, 5, 1)]);
}

#[test]
fn only_trusts_are_rated() {
    let history = then(
        Vec::new(),
        organisation::register(&None, "QXU", "An ICB", OrganisationKind::Icb),
    );
    precondition_failed(organisation::publish_cqc_rating(
        &organisation_of(&history),
        "QXU",
        day(2020, 1, 1),
        &good(),
    ));
}

#[test]
fn an_executive_departs_once_and_not_before_appointment() {
    let history = trust("RTP");
    let history = then(
        history.clone(),
        organisation::appoint_executive(
            &organisation_of(&history),
            "RTP",
            "a-1",
            ExecutiveRole::ChiefExecutive,
            "CEO",
            day(2016, 1, 1),
        ),
    );
    assert_eq!(
        invalid_fields(organisation::record_departure(
            &organisation_of(&history),
            "RTP",
            "a-1",
            day(2015, 1, 1),
            ""
        )),
        vec!["left_on"]
    );
    assert!(matches!(
        organisation::record_departure(
            &organisation_of(&history),
            "RTP",
            "missing",
            day(2017, 1, 1),
            ""
        ),
        Err(ServiceError::NotFound { .. })
    ));
    let history = then(
        history.clone(),
        organisation::record_departure(
            &organisation_of(&history),
            "RTP",
            "a-1",
            day(2018, 1, 1),
            "retired",
        ),
    );
    precondition_failed(organisation::record_departure(
        &organisation_of(&history),
        "RTP",
        "a-1",
        day(2019, 1, 1),
        "",
    ));
    assert_eq!(
        history.last().map(|event| event.event_type.as_str()),
        Some("ics.events.v1.ExecutiveDeparted")
    );
    let _ = ExecutiveAppointed::EVENT_TYPE;
}

fn definition(name: &str) -> ValueStreamDefinition {
    ValueStreamDefinition {
        name: name.into(),
        pathway: "Emergency department to discharge".into(),
        sponsor: "Chief Operating Officer".into(),
        lead: "Improvement lead".into(),
        origin: ValueStreamOrigin::TopDown as i32,
        outcome_measures: vec!["Length of stay".into()],
    }
}

#[test]
fn a_revision_keeps_the_earlier_definition_and_its_rationale() {
    let history = then(
        Vec::new(),
        value_stream::define(
            &None,
            "vs-1",
            "RTP",
            &definition("Discharge"),
            ValueStreamStatus::Active,
        ),
    );
    let history = then(
        history.clone(),
        value_stream::revise(
            &value_stream_of(&history),
            "vs-1",
            &definition("Discharge and flow"),
            "widened to patient flow",
        ),
    );
    let folded = ValueStream::fold(&history)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("folds"));
    assert_eq!(folded.revisions.len(), 2);
    assert_eq!(folded.revisions[0].definition.name, "Discharge");
    assert_eq!(folded.revisions[1].definition.name, "Discharge and flow");
    assert_eq!(folded.revisions[1].rationale, "widened to patient flow");
    assert_eq!(folded.revisions[1].revision, 2);
    let revised = ValueStreamRevised::decode(history[1].payload.as_slice()).unwrap_or_default();
    assert_eq!(revised.revision, 2);
    // A revision that changes nothing is not a revision.
    precondition_failed(value_stream::revise(
        &value_stream_of(&history),
        "vs-1",
        &definition("Discharge and flow"),
        "again",
    ));
}

#[test]
fn a_closed_value_stream_cannot_be_revised_reopened_or_closed_again() {
    let history = then(
        Vec::new(),
        value_stream::define(
            &None,
            "vs-1",
            "RTP",
            &definition("Discharge"),
            ValueStreamStatus::Proposed,
        ),
    );
    let history = then(
        history.clone(),
        value_stream::close(
            &value_stream_of(&history),
            "vs-1",
            day(2021, 6, 30),
            "programme ended",
        ),
    );
    precondition_failed(value_stream::revise(
        &value_stream_of(&history),
        "vs-1",
        &definition("Other"),
        "why",
    ));
    precondition_failed(value_stream::change_status(
        &value_stream_of(&history),
        "vs-1",
        ValueStreamStatus::Active,
    ));
    precondition_failed(value_stream::close(
        &value_stream_of(&history),
        "vs-1",
        day(2021, 7, 1),
        "",
    ));
    let folded = ValueStream::fold(&history)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("folds"));
    assert_eq!(folded.status, ValueStreamStatus::Closed);
    assert_eq!(folded.closed_on, Some(day(2021, 6, 30)));
}

#[test]
fn status_changes_record_only_real_changes() {
    let history = then(
        Vec::new(),
        value_stream::define(
            &None,
            "vs-1",
            "RTP",
            &definition("Discharge"),
            ValueStreamStatus::Proposed,
        ),
    );
    assert!(
        value_stream::change_status(
            &value_stream_of(&history),
            "vs-1",
            ValueStreamStatus::Proposed
        )
        .unwrap_or_default()
        .is_empty()
    );
    assert_eq!(
        value_stream::change_status(
            &value_stream_of(&history),
            "vs-1",
            ValueStreamStatus::Sustaining
        )
        .unwrap_or_default()
        .len(),
        1
    );
}

#[test]
fn training_participation_needs_a_cohort_and_a_repeat_changes_nothing() {
    let participation = TrainingParticipationRecorded {
        cohort_id: "c-1".into(),
        ods_code: "RTP".into(),
        participants: 40,
        completed: 35,
        survey_respondents: 30,
        valued: 26,
    };
    assert!(matches!(
        training::record_participation(&None, &participation),
        Err(ServiceError::NotFound { .. })
    ));
    let details = CohortDetails {
        programme_id: "",
        course: "Lean leadership",
        name: "Cohort 1",
        starts_on: day(2016, 1, 1),
        ends_on: day(2016, 6, 30),
    };
    let history = then(Vec::new(), training::register(&None, "c-1", &details));
    let history = then(
        history.clone(),
        training::record_participation(&cohort_of(&history), &participation),
    );
    assert!(
        training::record_participation(&cohort_of(&history), &participation)
            .unwrap_or_default()
            .is_empty()
    );
}

fn programme() -> Vec<RecordedEvent> {
    then(
        Vec::new(),
        programme::register(
            &None,
            &ProgrammeRegistered {
                programme_id: "p-1".into(),
                name: "Partnership".into(),
                description: String::new(),
                starts_on: Some(from_naive(day(2015, 7, 1))),
                ends_on: Some(from_naive(day(2021, 6, 30))),
            },
        ),
    )
}

#[test]
fn a_trust_joins_a_programme_once_within_its_dates() {
    let history = programme();
    assert_eq!(
        invalid_fields(programme::join(
            &programme_of(&history),
            "p-1",
            "RTP",
            day(2022, 1, 1)
        )),
        vec!["joined_on"]
    );
    let history = then(
        history.clone(),
        programme::join(&programme_of(&history), "p-1", "RTP", day(2015, 7, 1)),
    );
    precondition_failed(programme::join(
        &programme_of(&history),
        "p-1",
        "RTP",
        day(2015, 8, 1),
    ));
    let folded = Programme::fold(&history)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("folds"));
    assert_eq!(folded.trusts.len(), 1);
    let _ = ProgrammeTrustJoined::EVENT_TYPE;
}

#[test]
fn compacts_are_versioned_and_meetings_review_an_adopted_version_with_board_members() {
    let history = programme();
    let member = BoardMemberAdded {
        programme_id: "p-1".into(),
        member_id: "m-1".into(),
        ods_code: "RTP".into(),
        person_name: "Chief Executive, SASH".into(),
        role: 2,
    };
    let history = then(
        history.clone(),
        programme::add_board_member(&programme_of(&history), &member),
    );
    precondition_failed(programme::add_board_member(
        &programme_of(&history),
        &member,
    ));
    let compact = CompactAdopted {
        programme_id: "p-1".into(),
        version: 0,
        vision: "Continuous improvement".into(),
        behaviours: vec!["Attend every meeting".into()],
        responsibilities: vec![],
        signatories: vec!["Chief Executive, SASH".into()],
        adopted_on: Some(from_naive(day(2016, 1, 15))),
    };
    let history = then(
        history.clone(),
        programme::adopt_compact(&programme_of(&history), &compact),
    );
    let history = then(
        history.clone(),
        programme::adopt_compact(&programme_of(&history), &compact),
    );
    let folded = Programme::fold(&history)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("folds"));
    let versions: Vec<u32> = folded
        .compacts
        .iter()
        .map(|compact| compact.version)
        .collect();
    assert_eq!(versions, vec![1, 2]);

    let meeting = |attending: &str, reviewed: u32| BoardMeetingHeld {
        programme_id: "p-1".into(),
        meeting_id: "meeting".into(),
        held_on: Some(from_naive(day(2016, 2, 1))),
        attending_member_ids: vec![attending.into()],
        compact_version_reviewed: reviewed,
        notes: String::new(),
    };
    assert_eq!(
        invalid_fields(programme::record_meeting(
            &programme_of(&history),
            &meeting("stranger", 1)
        )),
        vec!["attending_member_ids[0]"]
    );
    assert_eq!(
        invalid_fields(programme::record_meeting(
            &programme_of(&history),
            &meeting("m-1", 3)
        )),
        vec!["compact_version_reviewed"]
    );
    assert_eq!(
        programme::record_meeting(&programme_of(&history), &meeting("m-1", 2))
            .unwrap_or_default()
            .len(),
        1
    );
}

#[test]
fn links_fold_from_events_in_order() {
    let history = trust("RTP");
    let linked = NewEvent::encode(
        "RTP",
        &OrganisationLinked {
            ods_code: "RTP".into(),
            parent_ods_code: "QXU".into(),
            valid_from: Some(from_naive(day(2022, 7, 1))),
        },
    );
    let history = then(history, Ok(vec![linked]));
    let folded = Organisation::fold(&history)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("folds"));
    assert_eq!(folded.version, 2);
    assert_eq!(folded.parents[0].parent_ods_code, "QXU");
}
