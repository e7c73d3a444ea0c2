//! The reference read model and the follow-up scheduler against the real Postgres and NATS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use ics_eventstore::relay::{Relay, RelayConfig};
use ics_eventstore::{CommandContext, EventStore, ExpectedVersion, NewEvent, migrate};
use ics_projection::{Projection, ProjectionRunner, RunnerConfig};
use ics_proto::EventName;
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    FollowUpCheckpoint, FollowUpMissed, MetricKind, MetricUnit, MetricValue, OrganisationKind,
    OrganisationRegistered, TargetMetric, ValueStreamClosed, ValueStreamDefined, ValueStreamStatus,
    WorkshopChartered,
};
use ics_references::{REFERENCES, ReferencesProjection, check_charter};
use ics_service_kit::ServiceError;
use ics_testing::{TestDatabase, unique_token};
use ics_workshops::MIGRATIONS;
use ics_workshops::schedule::{FixedClock, FollowUpProjection, record_missed_follow_ups};
use ics_workshops::workshop::{self, Workshop};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[allow(dead_code)]
fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

struct Fixture {
    database: TestDatabase,
    nats: async_nats::Client,
    prefix: String,
    trusts: EventStore,
    trusts_relay: Relay,
    workshops: EventStore,
    workshops_relay: Relay,
    pool: PgPool,
    /// Events each relay has published so far (trusts, workshops).
    published: [std::sync::atomic::AtomicUsize; 2],
}

impl Fixture {
    async fn new() -> Self {
        let database = TestDatabase::create().await;
        let prefix = unique_token();
        let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
        let trusts_pool = database.pool("trusts").await;
        migrate(&trusts_pool, &[]).await.unwrap();
        let trusts = EventStore::new(trusts_pool, "trusts");
        let pool = database.pool("workshops").await;
        migrate(&pool, &[ics_projection::MIGRATIONS, MIGRATIONS].concat())
            .await
            .unwrap();
        let workshops = EventStore::new(pool.clone(), "workshops");
        let trusts_relay = Relay::new(trusts.clone(), nats.clone(), RelayConfig::new(&prefix));
        let workshops_relay =
            Relay::new(workshops.clone(), nats.clone(), RelayConfig::new(&prefix));
        trusts_relay.ensure_stream().await.unwrap();
        workshops_relay.ensure_stream().await.unwrap();
        Fixture {
            database,
            nats,
            prefix,
            trusts,
            trusts_relay,
            workshops,
            workshops_relay,
            pool,
            published: Default::default(),
        }
    }

    fn runner<P: Projection>(&self, projection: P, source: &str) -> ProjectionRunner<P> {
        ProjectionRunner::new(
            self.pool.clone(),
            self.nats.clone(),
            Arc::new(projection),
            RunnerConfig::new(&self.prefix, &[source]),
        )
    }

    async fn append(&self, store: &EventStore, stream_id: &str, events: Vec<NewEvent>) {
        store
            .execute_on_history(
                &CommandContext {
                    request_id: unique_token(),
                    principal: "test".into(),
                    ..Default::default()
                },
                "Test",
                b"",
                stream_id,
                ExpectedVersion::Any,
                move |_| Ok::<_, ServiceError>(events.clone()),
            )
            .await
            .unwrap();
    }

    /// Runs a workshop command the way the API does.
    async fn decide(
        &self,
        workshop_id: &str,
        decide: impl Fn(&Option<Workshop>) -> Result<Vec<NewEvent>, ServiceError>,
    ) {
        self.workshops
            .execute(
                &CommandContext {
                    request_id: unique_token(),
                    principal: "trust-writer:RTP".into(),
                    ..Default::default()
                },
                "Test",
                b"",
                &workshop::stream_id(workshop_id),
                ExpectedVersion::Any,
                Workshop::folding(),
                decide,
            )
            .await
            .unwrap();
    }

    async fn publish_everything(&self) {
        use std::sync::atomic::Ordering;
        let relays = [
            (&self.trusts_relay, &self.trusts),
            (&self.workshops_relay, &self.workshops),
        ];
        for ((relay, store), published) in relays.into_iter().zip(&self.published) {
            let appended: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(store.pool())
                .await
                .unwrap();
            // Transaction ids are cluster-wide: another test's open transaction can hold back
            // what is visible for a while, so publish until every appended event is out.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while published.load(Ordering::SeqCst) < appended as usize {
                published.fetch_add(relay.publish_pending().await.unwrap(), Ordering::SeqCst);
                assert!(
                    std::time::Instant::now() < deadline,
                    "events never published"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    async fn finish(self) {
        ics_testing::delete_streams(&self.nats, &self.prefix).await;
        self.database.drop_database().await;
    }
}

#[tokio::test]
async fn references_come_from_trusts_events_and_survive_restarts_and_outages() {
    let fixture = Fixture::new().await;
    fixture
        .append(
            &fixture.trusts,
            "organisation-RTP",
            vec![NewEvent::encode(
                "RTP",
                &OrganisationRegistered {
                    ods_code: "RTP".into(),
                    name: "Surrey and Sussex Healthcare NHS Trust".into(),
                    kind: OrganisationKind::Trust as i32,
                },
            )],
        )
        .await;
    let value_stream = |id: &str| {
        NewEvent::encode(
            "RTP",
            &ValueStreamDefined {
                value_stream_id: id.into(),
                ods_code: "RTP".into(),
                definition: None,
                status: ValueStreamStatus::Active as i32,
            },
        )
    };
    fixture
        .append(
            &fixture.trusts,
            "value-stream-vs1",
            vec![value_stream("vs1")],
        )
        .await;
    fixture.publish_everything().await;

    let references = fixture.runner(ReferencesProjection::named(REFERENCES), "trusts");
    let stop = CancellationToken::new();
    let running = tokio::spawn(references.clone().run(stop.clone()));
    references
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    check_charter(&fixture.pool, "RTP", "vs1").await.unwrap();
    assert!(matches!(
        check_charter(&fixture.pool, "RXX", "vs1").await,
        Err(ServiceError::NotFound { .. })
    ));
    assert!(matches!(
        check_charter(&fixture.pool, "RTP", "missing").await,
        Err(ServiceError::NotFound { .. })
    ));

    // The workshops service stops; meanwhile the trusts service defines a value stream and
    // closes another. Back up, the service knows both.
    stop.cancel();
    running.await.unwrap();
    fixture
        .append(
            &fixture.trusts,
            "value-stream-vs2",
            vec![value_stream("vs2")],
        )
        .await;
    fixture
        .append(
            &fixture.trusts,
            "value-stream-vs1",
            vec![NewEvent::encode(
                "RTP",
                &ValueStreamClosed {
                    value_stream_id: "vs1".into(),
                    ods_code: "RTP".into(),
                    closed_on: Some(from_naive(day(2021, 6, 30))),
                    reason: String::new(),
                },
            )],
        )
        .await;
    fixture.publish_everything().await;
    let stop = CancellationToken::new();
    let running = tokio::spawn(references.clone().run(stop.clone()));
    references
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    check_charter(&fixture.pool, "RTP", "vs2").await.unwrap();
    assert!(matches!(
        check_charter(&fixture.pool, "RTP", "vs1").await,
        Err(ServiceError::FailedPrecondition(_))
    ));
    stop.cancel();
    running.await.unwrap();
    fixture.finish().await;
}

#[tokio::test]
async fn a_missed_follow_up_is_recorded_exactly_once_by_two_schedulers() {
    let fixture = Fixture::new().await;
    // A workshop that ended 40 days ago and is reported out today: its 30-day follow-up is ten
    // days overdue, the others are still to come.
    let now = chrono::Utc::now();
    let today = now.date_naive();
    let held_to = today - chrono::Days::new(40);
    let held_from = held_to - chrono::Days::new(4);
    let workshop_id = uuid::Uuid::now_v7().to_string();
    let chartered = WorkshopChartered {
        workshop_id: workshop_id.clone(),
        ods_code: "RTP".into(),
        value_stream_id: "vs1".into(),
        kind: 1,
        title: "Discharge before noon".into(),
        roles: None,
        preparation_starts_on: Some(from_naive(held_from - chrono::Days::new(42))),
        target_sheet: vec![TargetMetric {
            metric_id: "time".into(),
            name: "Time to discharge".into(),
            kind: MetricKind::ProcessTime as i32,
            unit: MetricUnit::Hours as i32,
            baseline: 40.0,
            target: 20.0,
        }],
    };
    let after = vec![MetricValue {
        metric_id: "time".into(),
        value: 18.0,
    }];
    fixture
        .decide(&workshop_id, |state| workshop::charter(state, &chartered))
        .await;
    fixture
        .decide(&workshop_id, |state| {
            workshop::schedule(state, &workshop_id, held_from, held_to, 5, "")
        })
        .await;
    fixture
        .decide(&workshop_id, |state| {
            workshop::record_held(state, &workshop_id, None, 5)
        })
        .await;
    fixture
        .decide(&workshop_id, |state| {
            workshop::deliver_report_out(state, &workshop_id, held_to, &after)
        })
        .await;
    fixture.publish_everything().await;
    let follow_ups = fixture.runner(FollowUpProjection, "workshops");
    let stop = CancellationToken::new();
    let running = tokio::spawn(follow_ups.clone().run(stop.clone()));
    follow_ups
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();

    let missed_events = || async {
        fixture
            .workshops
            .read_stream(&workshop::stream_id(&workshop_id))
            .await
            .unwrap()
            .into_iter()
            .filter(|event| event.event_type == FollowUpMissed::EVENT_TYPE)
            .map(|event| event.decode::<FollowUpMissed>().unwrap().checkpoint)
            .collect::<Vec<_>>()
    };
    let pass = |clock: Arc<FixedClock>, grace_days: u32| {
        let store = fixture.workshops.clone();
        let pool = fixture.pool.clone();
        async move {
            let now = ics_workshops::schedule::Clock::now(clock.as_ref());
            record_missed_follow_ups(&store, &pool, now, grace_days)
                .await
                .unwrap()
        }
    };

    // Reported out today: however overdue, the 30-day follow-up gets the grace period first.
    let clock = FixedClock::new(now + chrono::Days::new(3));
    assert_eq!(pass(clock.clone(), 7).await, 0);
    // Past the grace period, two replicas' schedulers race: it is recorded missed once.
    clock.set(now + chrono::Days::new(8));
    let (first, second) = tokio::join!(pass(clock.clone(), 7), pass(clock.clone(), 7));
    assert_eq!(first + second, 1);
    assert_eq!(
        missed_events().await,
        vec![FollowUpCheckpoint::Day30 as i32]
    );

    // A year on, after a restart (a fresh pass) and before the projection has caught up with
    // the first miss, the rest are recorded once each and the first is not repeated.
    clock.set(now + chrono::Days::new(400));
    let (first, second) = tokio::join!(pass(clock.clone(), 7), pass(clock.clone(), 7));
    assert_eq!(first + second, 3);
    let mut missed = missed_events().await;
    missed.sort();
    assert_eq!(
        missed,
        vec![
            FollowUpCheckpoint::Day30 as i32,
            FollowUpCheckpoint::Day60 as i32,
            FollowUpCheckpoint::Day90 as i32,
            FollowUpCheckpoint::Day365 as i32,
        ]
    );
    // Once the projection has seen the misses, nothing is pending.
    fixture.publish_everything().await;
    follow_ups
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM follow_up_schedule WHERE state = 'pending'")
            .fetch_one(&fixture.pool)
            .await
            .unwrap();
    assert_eq!(pending, 0);
    assert_eq!(pass(clock.clone(), 7).await, 0);
    stop.cancel();
    running.await.unwrap();
    fixture.finish().await;
}
