//! The outcomes projection and views against the real Postgres and NATS JetStream: workshop
//! events published on a `workshops` stream of the test's own, trust membership from the
//! overview projection's tables, figures checked against hand-computed ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ics_eventstore::relay::{Relay, RelayConfig};
use ics_eventstore::{EventStore, migrate, subject};
use ics_projection::{Projection, ProjectionRunner, RunnerConfig};
use ics_proto::EventName;
use ics_proto::events::v1::{
    Date, EventEnvelope, FollowUpCheckpoint, FollowUpMissed, FollowUpRecorded, MetricKind,
    MetricUnit, MetricValue, OrganisationKind, OrganisationLinked, OrganisationRegistered,
    OrganisationUnlinked, ProgrammeRegistered, ProgrammeTrustJoined, ReportOutDelivered,
    TargetMetric, ValueStreamDefined, ValueStreamDefinition, ValueStreamStatus, WorkshopCancelled,
    WorkshopChartered, WorkshopClosed, WorkshopHeld, WorkshopKind, WorkshopScheduled,
};
use ics_proto::reporting::v1::{
    GetOutcomesRequest, KindOutcome, OutcomeGroup, Outcomes, Scope, WatchOutcomesRequest, scope,
};
use ics_reporting::grpc::reporting_service_server::ReportingService;
use ics_reporting::{
    ChangeHub, OUTCOMES, OVERVIEW, OutcomeRecords, OutcomesProjection, OverviewProjection,
    ReportingApi, Supervisor, views,
};
use ics_service_kit::Principal;
use ics_service_kit::admin::ProjectionAdmin;
use ics_service_kit::error::ServiceError;
use ics_testing::{TestDatabase, unique_token};
use prost::Message;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request};

const PROGRAMME: &str = "0190a0b1-0000-7000-8000-000000000001";

fn day(year: i32, month: u32, day: u32) -> Date {
    Date { year, month, day }
}

fn naive(year: i32, month: u32, day: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

fn envelope<M: Message + EventName>(
    stream_id: &str,
    version: u64,
    organisation: &str,
    event: &M,
) -> EventEnvelope {
    common::envelope("workshops", stream_id, version, organisation, event)
}

/// One workshop's event stream, numbering its events as the workshops service does.
struct Workshop {
    id: String,
    ods_code: String,
    version: u64,
    events: Vec<EventEnvelope>,
}

fn metric(
    id: &str,
    kind: MetricKind,
    unit: MetricUnit,
    baseline: f64,
    target: f64,
) -> TargetMetric {
    TargetMetric {
        metric_id: id.into(),
        name: format!("metric {id}"),
        kind: kind as i32,
        unit: unit as i32,
        baseline,
        target,
    }
}

fn values(values: &[(&str, f64)]) -> Vec<MetricValue> {
    values
        .iter()
        .map(|(metric_id, value)| MetricValue {
            metric_id: (*metric_id).into(),
            value: *value,
        })
        .collect()
}

impl Workshop {
    fn chartered(ods_code: &str, value_stream_id: &str, sheet: Vec<TargetMetric>) -> Self {
        let mut workshop = Workshop {
            id: uuid::Uuid::now_v7().to_string(),
            ods_code: ods_code.into(),
            version: 0,
            events: Vec::new(),
        };
        let chartered = WorkshopChartered {
            workshop_id: workshop.id.clone(),
            ods_code: ods_code.into(),
            value_stream_id: value_stream_id.into(),
            kind: WorkshopKind::Rpiw as i32,
            title: "a workshop".into(),
            roles: None,
            preparation_starts_on: Some(day(2015, 1, 5)),
            target_sheet: sheet,
        };
        workshop.push(&chartered);
        workshop
    }

    fn push<M: Message + EventName>(&mut self, event: &M) -> &mut Self {
        self.version += 1;
        let stream_id = format!("workshop-{}", self.id);
        self.events
            .push(envelope(&stream_id, self.version, &self.ods_code, event));
        self
    }

    fn scheduled(&mut self, from: Date, to: Date) -> &mut Self {
        let event = WorkshopScheduled {
            workshop_id: self.id.clone(),
            ods_code: self.ods_code.clone(),
            starts_on: Some(from),
            ends_on: Some(to),
            duration_override_reason: String::new(),
        };
        self.push(&event)
    }

    fn held(&mut self, from: Date, to: Date) -> &mut Self {
        let event = WorkshopHeld {
            workshop_id: self.id.clone(),
            ods_code: self.ods_code.clone(),
            held_from: Some(from),
            held_to: Some(to),
        };
        self.push(&event)
    }

    fn report_out(&mut self, on: Date, after: &[(&str, f64)]) -> &mut Self {
        let event = self.report_out_event(on, after);
        self.push(&event)
    }

    fn report_out_event(&self, on: Date, after: &[(&str, f64)]) -> ReportOutDelivered {
        ReportOutDelivered {
            workshop_id: self.id.clone(),
            ods_code: self.ods_code.clone(),
            delivered_on: Some(on),
            after: values(after),
        }
    }

    fn follow_up(
        &mut self,
        checkpoint: FollowUpCheckpoint,
        on: Date,
        measured: &[(&str, f64)],
    ) -> &mut Self {
        let event = FollowUpRecorded {
            workshop_id: self.id.clone(),
            ods_code: self.ods_code.clone(),
            checkpoint: checkpoint as i32,
            measured_on: Some(on),
            values: values(measured),
        };
        self.push(&event)
    }

    fn missed(&mut self, checkpoint: FollowUpCheckpoint, due: Date) -> &mut Self {
        let event = FollowUpMissed {
            workshop_id: self.id.clone(),
            ods_code: self.ods_code.clone(),
            checkpoint: checkpoint as i32,
            due_on: Some(due),
        };
        self.push(&event)
    }

    fn cancelled(&mut self, on: Date) -> &mut Self {
        let event = WorkshopCancelled {
            workshop_id: self.id.clone(),
            ods_code: self.ods_code.clone(),
            cancelled_on: Some(on),
            reason: "no team".into(),
        };
        self.push(&event)
    }

    fn closed(&mut self, on: Date) -> &mut Self {
        let event = WorkshopClosed {
            workshop_id: self.id.clone(),
            ods_code: self.ods_code.clone(),
            closed_on: Some(on),
        };
        self.push(&event)
    }
}

/// The scenario's workshops (see [`scenario`]); `still_held` has no report-out yet.
struct Scenario {
    workshops: Vec<Workshop>,
    still_held: usize,
}

/// West Yorkshire ICB (QWO) with Leeds (RR8, a member from 2020), Bradford (RAE, a member from
/// 2020 until 2023-03-31) and Mid Yorkshire (RXF, from 2024-04-01); a programme of Leeds and
/// Surrey and Sussex (RTP) running 2015-07-01 to 2021-06-30.
fn scenario() -> Scenario {
    use FollowUpCheckpoint::{Day30, Day60, Day90, Day365};
    use MetricKind::{ErrorCount, ErrorRate, ProcessTime};
    use MetricUnit::{Count, Days, Hours, Minutes, Percent};

    // W1, Leeds, in the programme: 600 min → 300 min; 10 errors → 4. Day 30: 330 min (≤ 360,
    // sustained) and 6 errors (> 5, not); day 60 missed. Closed afterwards: still counts.
    let mut w1 = Workshop::chartered(
        "RR8",
        "vs-sepsis",
        vec![
            metric("m1", ProcessTime, Minutes, 600.0, 360.0),
            metric("m2", ErrorCount, Count, 10.0, 5.0),
        ],
    );
    w1.scheduled(day(2019, 3, 4), day(2019, 3, 8))
        .held(day(2019, 3, 4), day(2019, 3, 8))
        .report_out(day(2019, 3, 8), &[("m1", 300.0), ("m2", 4.0)])
        .follow_up(Day30, day(2019, 4, 8), &[("m1", 330.0), ("m2", 6.0)])
        .missed(Day60, day(2019, 5, 7))
        .closed(day(2020, 3, 31));
    // W2, Leeds, after the programme ended: 2 days → 1 day; error rate 20% → 10%.
    let mut w2 = Workshop::chartered(
        "RR8",
        "vs-sepsis",
        vec![
            metric("m1", ProcessTime, Days, 2.0, 1.0),
            metric("m2", ErrorRate, Percent, 20.0, 12.0),
        ],
    );
    w2.held(day(2022, 5, 9), day(2022, 5, 13))
        .report_out(day(2022, 5, 13), &[("m1", 1.0), ("m2", 10.0)]);
    // W3, Bradford: 10 h → 6 h; 8 errors → 2.
    let mut w3 = Workshop::chartered(
        "RAE",
        "vs-outpatients",
        vec![
            metric("m1", ProcessTime, Hours, 10.0, 7.0),
            metric("m2", ErrorCount, Count, 8.0, 4.0),
        ],
    );
    w3.held(day(2021, 1, 11), day(2021, 1, 15))
        .report_out(day(2021, 1, 15), &[("m1", 6.0), ("m2", 2.0)]);
    // W4, Mid Yorkshire: 5 h → 4 h.
    let mut w4 = Workshop::chartered(
        "RXF",
        "vs-theatres",
        vec![metric("m1", ProcessTime, Hours, 5.0, 4.0)],
    );
    w4.held(day(2024, 6, 3), day(2024, 6, 7))
        .report_out(day(2024, 6, 7), &[("m1", 4.0)]);
    // W5, Leeds: cancelled before it was held.
    let mut w5 = Workshop::chartered(
        "RR8",
        "vs-sepsis",
        vec![metric("m1", ProcessTime, Hours, 100.0, 50.0)],
    );
    w5.scheduled(day(2022, 1, 10), day(2022, 1, 14))
        .cancelled(day(2022, 1, 3));
    // W6, Leeds: held, report-out still to come.
    let mut w6 = Workshop::chartered(
        "RR8",
        "vs-sepsis",
        vec![metric("m1", ProcessTime, Hours, 8.0, 4.0)],
    );
    w6.held(day(2024, 2, 5), day(2024, 2, 9));
    // W7, Surrey and Sussex, in the programme: error rate 30% → 15%; day 90: 18% (≤ 20,
    // sustained); day 365 missed.
    let mut w7 = Workshop::chartered(
        "RTP",
        "vs-discharge",
        vec![metric("m1", ErrorRate, Percent, 30.0, 20.0)],
    );
    w7.held(day(2016, 2, 1), day(2016, 2, 5))
        .report_out(day(2016, 2, 5), &[("m1", 15.0)])
        .follow_up(Day90, day(2016, 5, 5), &[("m1", 18.0)])
        .missed(Day365, day(2017, 2, 5));
    Scenario {
        workshops: vec![w1, w2, w3, w4, w5, w6, w7],
        still_held: 5,
    }
}

struct Fixture {
    database: TestDatabase,
    pool: PgPool,
    /// Kept across views, as a process keeps them: each view reads only what changed.
    records: OutcomeRecords,
    nats: async_nats::Client,
    prefix: String,
}

impl Fixture {
    async fn new() -> Self {
        let database = TestDatabase::create().await;
        let pool = common::reporting_pool(&database).await;
        let workshops = database.pool("workshops").await;
        migrate(&workshops, &[]).await.unwrap();
        workshops.close().await;
        let prefix = unique_token();
        let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
        // The workshops service's stream, exactly as its relay creates it.
        Relay::new(
            EventStore::new(pool.clone(), "workshops"),
            nats.clone(),
            RelayConfig::new(&prefix),
        )
        .ensure_stream()
        .await
        .unwrap();
        let fixture = Fixture {
            database,
            records: OutcomeRecords::new(pool.clone()),
            pool,
            nats,
            prefix,
        };
        fixture.record_trusts().await;
        fixture
    }

    /// Membership and names, applied straight through the overview projection (its own stream
    /// and runner are covered elsewhere).
    async fn record_trusts(&self) {
        let organisation = |ods_code: &str, name: &str, kind: OrganisationKind| {
            trusts_envelope(&OrganisationRegistered {
                ods_code: ods_code.into(),
                name: name.into(),
                kind: kind as i32,
            })
        };
        let link = |ods_code: &str, parent: &str, from: Date| {
            trusts_envelope(&OrganisationLinked {
                ods_code: ods_code.into(),
                parent_ods_code: parent.into(),
                valid_from: Some(from),
            })
        };
        let value_stream = |id: &str, ods_code: &str, name: &str| {
            trusts_envelope(&ValueStreamDefined {
                value_stream_id: id.into(),
                ods_code: ods_code.into(),
                definition: Some(ValueStreamDefinition {
                    name: name.into(),
                    ..Default::default()
                }),
                status: ValueStreamStatus::Active as i32,
            })
        };
        let joined = |ods_code: &str| {
            trusts_envelope(&ProgrammeTrustJoined {
                programme_id: PROGRAMME.into(),
                ods_code: ods_code.into(),
                joined_on: Some(day(2015, 7, 1)),
            })
        };
        let events = vec![
            organisation("QWO", "NHS West Yorkshire ICB", OrganisationKind::Icb),
            organisation("QXU", "NHS Surrey Heartlands ICB", OrganisationKind::Icb),
            organisation("RR8", "Leeds Teaching Hospitals", OrganisationKind::Trust),
            organisation(
                "RAE",
                "Bradford Teaching Hospitals",
                OrganisationKind::Trust,
            ),
            organisation("RXF", "Mid Yorkshire Teaching", OrganisationKind::Trust),
            organisation(
                "RTP",
                "Surrey and Sussex Healthcare",
                OrganisationKind::Trust,
            ),
            link("RR8", "QWO", day(2020, 1, 1)),
            link("RAE", "QWO", day(2020, 1, 1)),
            trusts_envelope(&OrganisationUnlinked {
                ods_code: "RAE".into(),
                parent_ods_code: "QWO".into(),
                valid_to: Some(day(2023, 3, 31)),
            }),
            link("RXF", "QWO", day(2024, 4, 1)),
            link("RTP", "QXU", day(2020, 1, 1)),
            value_stream("vs-sepsis", "RR8", "Sepsis"),
            value_stream("vs-outpatients", "RAE", "Outpatients"),
            value_stream("vs-theatres", "RXF", "Theatres"),
            value_stream("vs-discharge", "RTP", "Discharge"),
            trusts_envelope(&ProgrammeRegistered {
                programme_id: PROGRAMME.into(),
                name: "VMI partnership".into(),
                description: String::new(),
                starts_on: Some(day(2015, 7, 1)),
                ends_on: Some(day(2021, 6, 30)),
            }),
            joined("RR8"),
            joined("RTP"),
        ];
        let mut connection = self.pool.acquire().await.unwrap();
        for event in &events {
            OverviewProjection
                .apply(&mut connection, event)
                .await
                .unwrap();
        }
    }

    /// Records the event in the workshops log, as the workshops service would, and publishes
    /// it as its relay would (rebuilds read the log; the runner reads the stream).
    async fn publish(&self, envelope: &EventEnvelope) {
        sqlx::query(
            "INSERT INTO workshops.events (stream_id, stream_version, event_id, event_type,
                 schema_version, organisation, payload, request_id, correlation_id, causation_id,
                 traceparent, tracestate, principal)
             VALUES ($1, $2, $3::uuid, $4, 1, $5, $6, '', '', '', '', '', 'test')
             ON CONFLICT DO NOTHING",
        )
        .bind(&envelope.stream_id)
        .bind(i64::try_from(envelope.stream_version).unwrap())
        .bind(&envelope.event_id)
        .bind(&envelope.event_type)
        .bind(&envelope.organisation)
        .bind(&envelope.payload)
        .execute(&self.pool)
        .await
        .unwrap();
        let jetstream = async_nats::jetstream::new(self.nats.clone());
        let subject = subject::event_subject(
            &self.prefix,
            "workshops",
            &envelope.organisation,
            &envelope.event_type,
        );
        jetstream
            .publish(subject, envelope.encode_to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    fn runner(&self) -> ProjectionRunner<OutcomesProjection> {
        ProjectionRunner::new(
            self.pool.clone(),
            self.nats.clone(),
            Arc::new(OutcomesProjection),
            RunnerConfig::new(&self.prefix, &["workshops"]),
        )
    }

    async fn outcomes(&self, scope: Scope, as_of: chrono::NaiveDate) -> Outcomes {
        views::outcomes(&self.pool, &self.records, &scope, as_of)
            .await
            .unwrap()
    }

    async fn finish(self) {
        ics_testing::delete_streams(&self.nats, &self.prefix).await;
        self.pool.close().await;
        self.database.drop_database().await;
    }
}

fn trusts_envelope<M: Message + EventName>(event: &M) -> EventEnvelope {
    EventEnvelope {
        source_service: "trusts".into(),
        ..envelope("organisation-test", 1, "", event)
    }
}

fn ics(ods_code: &str) -> Scope {
    Scope {
        scope: Some(scope::Scope::IcsOdsCode(ods_code.into())),
    }
}

fn programme() -> Scope {
    Scope {
        scope: Some(scope::Scope::ProgrammeId(PROGRAMME.into())),
    }
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: expected {expected}, got {actual}"
    );
}

fn kind(outcomes: &[KindOutcome], kind: MetricKind) -> &KindOutcome {
    outcomes
        .iter()
        .find(|outcome| outcome.kind == kind as i32)
        .unwrap()
}

/// (workshops, baseline, after, pooled, mean, median, absolute) of one kind.
fn check(outcomes: &[KindOutcome], metric_kind: MetricKind, workshops: u32, figures: [f64; 6]) {
    let outcome = kind(outcomes, metric_kind);
    let what = format!("{metric_kind:?}");
    assert_eq!(outcome.workshops, workshops, "{what}: workshops");
    let [baseline, after, pooled, mean, median, absolute] = figures;
    close(
        outcome.baseline_total,
        baseline,
        &format!("{what} baseline"),
    );
    close(outcome.after_total, after, &format!("{what} after"));
    close(outcome.pooled_reduction, pooled, &format!("{what} pooled"));
    close(outcome.mean_reduction, mean, &format!("{what} mean"));
    close(outcome.median_reduction, median, &format!("{what} median"));
    close(
        outcome.absolute_reduction,
        absolute,
        &format!("{what} absolute"),
    );
}

/// (checkpoint, measured, sustained, missed) rows of one kind.
fn sustainment(outcomes: &[KindOutcome], metric_kind: MetricKind) -> Vec<(i32, u32, u32, u32)> {
    kind(outcomes, metric_kind)
        .sustainment
        .iter()
        .map(|row| (row.checkpoint, row.measured, row.sustained, row.missed))
        .collect()
}

fn keys(groups: &[OutcomeGroup]) -> Vec<(&str, &str)> {
    groups
        .iter()
        .map(|group| (group.key.as_str(), group.name.as_str()))
        .collect()
}

async fn publish_scenario(fixture: &Fixture, scenario: &Scenario) -> usize {
    let mut published = 0;
    for workshop in &scenario.workshops {
        for event in &workshop.events {
            fixture.publish(event).await;
            published += 1;
        }
    }
    published
}

#[tokio::test]
async fn outcomes_follow_the_workshop_stream_and_ics_membership_on_the_as_of_date() {
    use FollowUpCheckpoint::{Day30, Day60, Day90, Day365};
    use MetricKind::{ErrorCount, ErrorRate, ProcessTime};

    let fixture = Fixture::new().await;
    let scenario = scenario();
    let published = publish_scenario(&fixture, &scenario).await;
    let runner = fixture.runner();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));
    runner
        .wait_caught_up(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(runner.events_applied().await.unwrap(), published as u64);

    // 2023-01-01: Leeds and Bradford belong to QWO, Mid Yorkshire not yet. W1, W2 and W3 count;
    // W5 was cancelled and W6 has no report-out.
    let outcomes = fixture.outcomes(ics("QWO"), naive(2023, 1, 1)).await;
    assert_eq!(outcomes.name, "NHS West Yorkshire ICB");
    assert_eq!(outcomes.as_of, Some(day(2023, 1, 1)));
    // Process time in hours: 10 + 48 + 10 = 68 → 5 + 24 + 6 = 35; per workshop 0.5, 0.5, 0.4.
    check(
        &outcomes.headline,
        ProcessTime,
        3,
        [68.0, 35.0, 33.0 / 68.0, 1.4 / 3.0, 0.5, 33.0],
    );
    // Errors: 10 + 8 = 18 → 4 + 2 = 6; per workshop 0.6 and 0.75, so the median is their mean.
    check(
        &outcomes.headline,
        ErrorCount,
        2,
        [18.0, 6.0, 2.0 / 3.0, 0.675, 0.675, 12.0],
    );
    // Error rate in percentage points: 20 → 10.
    check(
        &outcomes.headline,
        ErrorRate,
        1,
        [20.0, 10.0, 0.5, 0.5, 0.5, 10.0],
    );
    assert_eq!(
        sustainment(&outcomes.headline, ProcessTime),
        vec![
            (Day30 as i32, 1, 1, 0),
            (Day60 as i32, 0, 0, 1),
            (Day90 as i32, 0, 0, 0),
            (Day365 as i32, 0, 0, 0),
        ]
    );
    assert_eq!(
        sustainment(&outcomes.headline, ErrorCount),
        vec![
            (Day30 as i32, 1, 0, 0),
            (Day60 as i32, 0, 0, 1),
            (Day90 as i32, 0, 0, 0),
            (Day365 as i32, 0, 0, 0),
        ]
    );
    let units: Vec<i32> = outcomes.headline.iter().map(|row| row.unit).collect();
    assert_eq!(
        units,
        vec![
            MetricUnit::Hours as i32,
            MetricUnit::Count as i32,
            MetricUnit::Percent as i32,
        ]
    );
    assert_eq!(
        keys(&outcomes.by_trust),
        vec![
            ("RAE", "Bradford Teaching Hospitals"),
            ("RR8", "Leeds Teaching Hospitals"),
        ]
    );
    check(
        &outcomes.by_trust[0].kinds,
        ProcessTime,
        1,
        [10.0, 6.0, 0.4, 0.4, 0.4, 4.0],
    );
    check(
        &outcomes.by_trust[1].kinds,
        ProcessTime,
        2,
        [58.0, 29.0, 0.5, 0.5, 0.5, 29.0],
    );
    check(
        &outcomes.by_trust[0].kinds,
        ErrorRate,
        0,
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    );
    assert_eq!(
        keys(&outcomes.by_value_stream),
        vec![("vs-outpatients", "Outpatients"), ("vs-sepsis", "Sepsis")]
    );
    check(
        &outcomes.by_value_stream[1].kinds,
        ErrorCount,
        1,
        [10.0, 4.0, 0.6, 0.6, 0.6, 6.0],
    );

    // 2024-07-01: Bradford has left, Mid Yorkshire has joined. W1, W2 and W4 count.
    let later = fixture.outcomes(ics("QWO"), naive(2024, 7, 1)).await;
    check(
        &later.headline,
        ProcessTime,
        3,
        [63.0, 33.0, 30.0 / 63.0, 0.4, 0.5, 30.0],
    );
    check(
        &later.headline,
        ErrorCount,
        1,
        [10.0, 4.0, 0.6, 0.6, 0.6, 6.0],
    );
    assert_eq!(
        keys(&later.by_trust),
        vec![
            ("RR8", "Leeds Teaching Hospitals"),
            ("RXF", "Mid Yorkshire Teaching"),
        ]
    );

    // The programme counts W1 (Leeds, 2019) and W7 (Surrey and Sussex, 2016); W2 was held after
    // the programme ended.
    let in_programme = fixture.outcomes(programme(), naive(2021, 6, 30)).await;
    assert_eq!(in_programme.name, "VMI partnership");
    check(
        &in_programme.headline,
        ProcessTime,
        1,
        [10.0, 5.0, 0.5, 0.5, 0.5, 5.0],
    );
    check(
        &in_programme.headline,
        ErrorRate,
        1,
        [30.0, 15.0, 0.5, 0.5, 0.5, 15.0],
    );
    assert_eq!(
        sustainment(&in_programme.headline, ErrorRate),
        vec![
            (Day30 as i32, 0, 0, 0),
            (Day60 as i32, 0, 0, 0),
            (Day90 as i32, 1, 1, 0),
            (Day365 as i32, 0, 0, 1),
        ]
    );
    close(
        kind(&in_programme.headline, ErrorRate).sustainment[2].share_sustained,
        1.0,
        "day-90 share sustained",
    );
    assert_eq!(
        keys(&in_programme.by_trust),
        vec![
            ("RR8", "Leeds Teaching Hospitals"),
            ("RTP", "Surrey and Sussex Healthcare"),
        ]
    );
    assert_eq!(
        keys(&in_programme.by_value_stream),
        vec![("vs-discharge", "Discharge"), ("vs-sepsis", "Sepsis")]
    );

    // Surrey Heartlands' only workshop is about error rate; the other kinds are rows of zeros.
    let surrey = fixture.outcomes(ics("QXU"), naive(2023, 1, 1)).await;
    let counted: Vec<u32> = surrey.headline.iter().map(|row| row.workshops).collect();
    assert_eq!(counted, vec![0, 0, 1]);
    check(
        &surrey.headline,
        ProcessTime,
        0,
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    );

    shutdown.cancel();
    running.await.unwrap();
    fixture.finish().await;
}

fn as_principal<T>(principal: &Principal, body: T) -> Request<T> {
    let mut request = Request::new(body);
    request.extensions_mut().insert(principal.clone());
    request
}

#[tokio::test]
async fn boards_get_and_watch_only_their_own_outcomes() {
    let fixture = Fixture::new().await;
    let scenario = scenario();
    publish_scenario(&fixture, &scenario).await;
    let shutdown = CancellationToken::new();
    let changes = ChangeHub::start(
        fixture.pool.clone(),
        &[OVERVIEW, OUTCOMES],
        shutdown.clone(),
    );
    let runner = fixture.runner();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));
    runner
        .wait_caught_up(Duration::from_secs(10))
        .await
        .unwrap();
    let api = ReportingApi::new(
        fixture.pool.clone(),
        changes,
        ics_service_kit::limits::OpenCallLimit::new(16),
        shutdown.clone(),
    );

    let board = Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    };
    let own = api
        .get_outcomes(as_principal(
            &board,
            GetOutcomesRequest {
                scope: Some(ics("QWO")),
                as_of: Some(day(2023, 1, 1)),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own, fixture.outcomes(ics("QWO"), naive(2023, 1, 1)).await);
    for (scope, code) in [
        (Some(ics("QXU")), Code::PermissionDenied),
        (Some(programme()), Code::PermissionDenied),
        (None, Code::InvalidArgument),
        (Some(ics("qwo")), Code::InvalidArgument),
    ] {
        let refused = api
            .get_outcomes(as_principal(
                &board,
                GetOutcomesRequest {
                    scope: scope.clone(),
                    as_of: None,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), code, "{scope:?}");
        let refused_watch = api
            .watch_outcomes(as_principal(&board, WatchOutcomesRequest { scope }))
            .await
            .err()
            .unwrap();
        assert_eq!(refused_watch.code(), code);
    }
    let programme_board = Principal::BoardReader {
        ics_ods_code: None,
        programme_id: Some(PROGRAMME.into()),
    };
    let programme_outcomes = api
        .get_outcomes(as_principal(
            &programme_board,
            GetOutcomesRequest {
                scope: Some(programme()),
                as_of: Some(day(2021, 6, 30)),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(programme_outcomes.headline[0].workshops, 1);

    // Today Leeds and Mid Yorkshire belong to QWO: W1, W2 and W4 count for process time. W6's
    // report-out (8 h → 5 h) makes it four, and the watch says which event did it. Per
    // workshop 0.5, 0.5, 0.2 and 0.375: the median is (0.375 + 0.5) / 2.
    // Two boards watch; a change is computed into the view once (the view cache) and reaches
    // both, and a read after it gets the same view, never the one before.
    let open_watch = || async {
        api.watch_outcomes(as_principal(
            &board,
            WatchOutcomesRequest {
                scope: Some(ics("QWO")),
            },
        ))
        .await
        .unwrap()
        .into_inner()
    };
    let mut watch = open_watch().await;
    let mut other_watch = open_watch().await;
    let first = watch.next().await.unwrap().unwrap();
    let headline = first.outcomes.unwrap().headline;
    assert_eq!(kind(&headline, MetricKind::ProcessTime).workshops, 3);
    assert!(first.event_type.is_empty());
    other_watch.next().await.unwrap().unwrap();

    let held = &scenario.workshops[scenario.still_held];
    let report_out = envelope(
        &format!("workshop-{}", held.id),
        held.version + 1,
        &held.ods_code,
        &held.report_out_event(day(2024, 2, 9), &[("m1", 5.0)]),
    );
    fixture.publish(&report_out).await;
    let update = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("an update after the report-out")
        .unwrap()
        .unwrap();
    assert_eq!(update.event_type, ReportOutDelivered::EVENT_TYPE);
    assert_eq!(update.event_id, report_out.event_id);
    let outcomes = update.outcomes.unwrap();
    check(
        &outcomes.headline,
        MetricKind::ProcessTime,
        4,
        [71.0, 38.0, 33.0 / 71.0, 1.575 / 4.0, 0.4375, 33.0],
    );
    let other_update = tokio::time::timeout(Duration::from_secs(5), other_watch.next())
        .await
        .expect("an update on the other watch")
        .unwrap()
        .unwrap();
    assert_eq!(other_update.outcomes.as_ref(), Some(&outcomes));
    let read = api
        .get_outcomes(as_principal(
            &board,
            GetOutcomesRequest {
                scope: Some(ics("QWO")),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, outcomes);

    drop((watch, other_watch));
    shutdown.cancel();
    running.await.unwrap();
    fixture.finish().await;
}

#[tokio::test]
async fn the_supervisor_runs_each_projection_and_rebuilds_and_lists_dead_letters_by_name() {
    let fixture = Fixture::new().await;
    let scenario = scenario();
    let first = &scenario.workshops[0];
    for event in &first.events {
        fixture.publish(event).await;
    }
    // Undecodable: dead-lettered, and the rest keeps flowing.
    let poison = EventEnvelope {
        payload: vec![0xff, 0xff, 0xff],
        ..envelope("workshop-poison", 1, "RR8", &WorkshopChartered::default())
    };
    fixture.publish(&poison).await;

    let shutdown = CancellationToken::new();
    let mut outcomes_config = RunnerConfig::new(&fixture.prefix, &["workshops"]);
    outcomes_config.max_deliver = 2;
    // No trusts stream exists in this test: the overview waits for it without failing.
    let supervisor = Supervisor::new(fixture.pool.clone(), fixture.nats.clone(), shutdown.clone())
        .supervise(
            Arc::new(OverviewProjection),
            RunnerConfig::new(&fixture.prefix, &["trusts"]),
        )
        .supervise(Arc::new(OutcomesProjection), outcomes_config)
        .start()
        .await;
    assert_eq!(
        supervisor.names().collect::<Vec<_>>(),
        vec![OVERVIEW, OUTCOMES]
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while supervisor.dead_letters(OUTCOMES).await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "poison not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live = fixture.outcomes(ics("QWO"), naive(2023, 1, 1)).await;
    assert_eq!(kind(&live.headline, MetricKind::ProcessTime).workshops, 1);

    let letters = supervisor.dead_letters(OUTCOMES).await.unwrap();
    assert_eq!(letters[0].event_id, poison.event_id);
    assert!(supervisor.dead_letters(OVERVIEW).await.unwrap().is_empty());
    assert_eq!(supervisor.dead_letters("").await.unwrap().len(), 1);

    // The first workshop's seven events; the poison is never counted as applied.
    assert_eq!(supervisor.rebuild(OUTCOMES).await.unwrap(), 7);
    assert_eq!(fixture.outcomes(ics("QWO"), naive(2023, 1, 1)).await, live);
    assert_eq!(supervisor.rebuild(OVERVIEW).await.unwrap(), 0);

    for unknown in [
        supervisor.rebuild("nope").await.unwrap_err(),
        supervisor.dead_letters("nope").await.unwrap_err(),
    ] {
        assert!(
            matches!(unknown, ServiceError::NotFound { .. }),
            "{unknown:?}"
        );
    }

    shutdown.cancel();
    supervisor.stopped().await;
    fixture.finish().await;
}
