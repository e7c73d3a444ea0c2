//! The projection runner against the real Postgres and NATS JetStream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use ics_eventstore::relay::{Relay, RelayConfig};
use ics_eventstore::{CommandContext, EventStore, ExpectedVersion, NewEvent, StoreError, migrate};
use ics_projection::{
    Projection, ProjectionError, ProjectionRunner, RunnerConfig, list_dead_letters,
};
use ics_proto::events::v1::{EventEnvelope, OrganisationRenamed};
use ics_testing::{TestDatabase, unique_token};
use prost::Message;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// Records every applied event in order; refuses renames to "POISON".
struct Journal;

impl Projection for Journal {
    fn name(&self) -> &str {
        "journal"
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let renamed = OrganisationRenamed::decode(event.payload.as_slice())
                .map_err(|error| ProjectionError::Rejected(error.to_string()))?;
            if renamed.name == "POISON" {
                return Err(ProjectionError::Rejected("poison".into()));
            }
            if renamed.name == "OUTAGE" {
                return Err(ProjectionError::Corrupt("storage went away".into()));
            }
            sqlx::query("INSERT INTO journal (stream_id, version, name) VALUES ($1, $2, $3)")
                .bind(&event.stream_id)
                .bind(i64::try_from(event.stream_version).unwrap())
                .bind(&renamed.name)
                .execute(&mut *connection)
                .await?;
            Ok(())
        })
    }

    fn reset<'a>(
        &'a self,
        connection: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM journal")
                .execute(&mut *connection)
                .await?;
            Ok(())
        })
    }
}

struct Fixture {
    database: TestDatabase,
    store: EventStore,
    relay: Relay,
    nats: async_nats::Client,
    prefix: String,
    projection_pool: PgPool,
}

impl Fixture {
    async fn new() -> Self {
        let database = TestDatabase::create().await;
        let pool = database.pool("trusts").await;
        migrate(&pool, &[]).await.unwrap();
        let store = EventStore::new(pool, "trusts");
        let prefix = unique_token();
        let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
        let relay = Relay::new(store.clone(), nats.clone(), RelayConfig::new(&prefix));
        relay.ensure_stream().await.unwrap();
        let projection_pool = database.pool("reporting").await;
        migrate(&projection_pool, ics_projection::MIGRATIONS)
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE journal (id bigint GENERATED ALWAYS AS IDENTITY, stream_id text, version bigint, name text)",
        )
        .execute(&projection_pool)
        .await
        .unwrap();
        Fixture {
            database,
            store,
            relay,
            nats,
            prefix,
            projection_pool,
        }
    }

    fn runner(&self) -> ProjectionRunner<Journal> {
        let mut config = RunnerConfig::new(&self.prefix, &["trusts"]);
        config.max_deliver = 3;
        ProjectionRunner::new(
            self.projection_pool.clone(),
            self.nats.clone(),
            Arc::new(Journal),
            config,
        )
    }

    async fn rename(&self, stream: &str, name: &str) {
        self.store
            .execute_on_history(
                &CommandContext {
                    request_id: unique_token(),
                    principal: "test".into(),
                    ..Default::default()
                },
                "Rename",
                name.as_bytes(),
                stream,
                ExpectedVersion::Any,
                |_| {
                    Ok::<_, StoreError>(vec![NewEvent::encode(
                        "RTP",
                        &OrganisationRenamed {
                            ods_code: "RTP".into(),
                            previous_name: String::new(),
                            name: name.into(),
                        },
                    )])
                },
            )
            .await
            .unwrap();
    }

    /// Publishes until `events` went out: transaction ids are cluster-wide, so another test's
    /// open transaction can briefly hold back what the relay may publish.
    async fn publish(&self, events: usize) {
        let mut published = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while published < events {
            published += self.relay.publish_pending().await.unwrap();
            assert!(tokio::time::Instant::now() < deadline, "events held back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Appends `count` renames straight into the log, spread over `streams` streams after what
    /// they hold (what a long bus outage or a back-load leaves), without publishing them.
    async fn append_backlog(&self, streams: usize, count: usize) {
        let pool = self.database.pool("trusts").await;
        let heads: Vec<(String, i64)> =
            sqlx::query_as("SELECT stream_id, max(stream_version) FROM events GROUP BY stream_id")
                .fetch_all(&pool)
                .await
                .unwrap();
        let mut heads: std::collections::HashMap<String, i64> = heads.into_iter().collect();
        let mut stream_ids = Vec::new();
        let mut versions = Vec::new();
        let mut payloads = Vec::new();
        for index in 0..count {
            let stream_id = format!("organisation-{}", index % streams);
            let head = heads.entry(stream_id.clone()).or_insert(0);
            *head += 1;
            versions.push(*head);
            stream_ids.push(stream_id);
            payloads.push(
                OrganisationRenamed {
                    ods_code: "RTP".into(),
                    previous_name: String::new(),
                    name: format!("backlog-{index}"),
                }
                .encode_to_vec(),
            );
        }
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
                 organisation, payload, request_id, correlation_id, causation_id, traceparent,
                 tracestate, principal)
             SELECT stream_id, version, gen_random_uuid(), 'ics.events.v1.OrganisationRenamed', 1,
                 'RTP', payload, '', '', '', '', '', 'test'
             FROM UNNEST($1::text[], $2::bigint[], $3::bytea[]) AS backlog (stream_id, version, payload)",
        )
        .bind(&stream_ids)
        .bind(&versions)
        .bind(&payloads)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }

    /// Each stream's versions in the journal, which must be 1, 2, 3… in order.
    async fn assert_journal_in_stream_order(&self) {
        let journal = self.journal_in_applied_order().await;
        let mut last: std::collections::HashMap<String, i64> = Default::default();
        for (stream_id, version) in journal {
            let previous = last.insert(stream_id.clone(), version).unwrap_or(0);
            assert_eq!(version, previous + 1, "{stream_id} applied out of order");
        }
    }

    /// The journal's applied version of each stream, by stream.
    async fn applied_versions(&self) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT stream_id, version FROM projection_stream_versions WHERE projection = 'journal'
             ORDER BY stream_id",
        )
        .fetch_all(&self.projection_pool)
        .await
        .unwrap()
    }

    async fn journal_in_applied_order(&self) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT stream_id, version FROM journal ORDER BY id")
            .fetch_all(&self.projection_pool)
            .await
            .unwrap()
    }

    /// The trusts log's JetStream stream.
    async fn trusts_stream(&self) -> async_nats::jetstream::stream::Stream {
        async_nats::jetstream::new(self.nats.clone())
            .get_stream(ics_eventstore::subject::stream_name(&self.prefix, "trusts"))
            .await
            .unwrap()
    }

    /// The durable consumer's acknowledged floor and pending count on the trusts stream.
    async fn consumer_position(&self) -> (u64, u64) {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = self
            .trusts_stream()
            .await
            .get_consumer(&format!("{}_journal", self.prefix).replace(['.', '*', '>', ' '], "_"))
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        (info.ack_floor.stream_sequence, info.num_pending)
    }

    async fn journal(&self) -> Vec<(String, i64, String)> {
        sqlx::query_as("SELECT stream_id, version, name FROM journal ORDER BY stream_id, version")
            .fetch_all(&self.projection_pool)
            .await
            .unwrap()
    }

    async fn publish_raw(&self, envelope: &EventEnvelope) {
        let jetstream = async_nats::jetstream::new(self.nats.clone());
        jetstream
            .publish(
                format!("{}.trusts.RTP.OrganisationRenamed", self.prefix),
                envelope.encode_to_vec().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn finish(self) {
        ics_testing::delete_streams(&self.nats, &self.prefix).await;
        self.database.drop_database().await;
    }
}

fn envelope(stream_id: &str, version: u64, name: &str) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        source_service: "trusts".into(),
        stream_id: stream_id.into(),
        stream_version: version,
        event_type: "ics.events.v1.OrganisationRenamed".into(),
        schema_version: 1,
        payload: OrganisationRenamed {
            ods_code: "RTP".into(),
            previous_name: String::new(),
            name: name.into(),
        }
        .encode_to_vec(),
        organisation: "RTP".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn redelivered_and_replayed_events_change_nothing_and_a_rebuild_equals_live() {
    let fixture = Fixture::new().await;
    for index in 0..30 {
        fixture
            .rename(
                &format!("organisation-{}", index % 4),
                &format!("name-{index}"),
            )
            .await;
    }
    // Transaction ids are cluster-wide: another test's open transaction can briefly hold back
    // what the relay may publish, so publish until everything went out.
    let mut published = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while published < 30 {
        published += fixture.relay.publish_pending().await.unwrap();
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let shutdown = CancellationToken::new();
    let runner = fixture.runner();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));
    runner
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let live = fixture.journal().await;
    assert_eq!(live.len(), 30);

    // Re-publish every stored event as new messages (as after JetStream's duplicate window).
    for event in fixture
        .store
        .read_committed(Default::default(), 0, 1000)
        .await
        .unwrap()
    {
        fixture.publish_raw(&event.to_envelope("trusts")).await;
    }
    runner
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(fixture.journal().await, live);
    assert_eq!(runner.events_applied().await.unwrap(), 30);

    shutdown.cancel();
    running.await.unwrap();

    // Rebuild from the record: the same state, and the stream's messages, all of which the
    // rebuild read from the log, change nothing when the runner starts again.
    assert_eq!(runner.rebuild_from_record().await.unwrap(), 30);
    assert_eq!(fixture.journal().await, live);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    runner
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(fixture.journal().await, live);
    assert_eq!(runner.events_applied().await.unwrap(), 30);
    shutdown.cancel();
    running.await.unwrap();
    fixture.finish().await;
}

#[tokio::test]
async fn an_event_ahead_of_its_stream_is_held_until_the_gap_is_filled() {
    let fixture = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let runner = fixture.runner();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));

    fixture
        .publish_raw(&envelope("organisation-GAP", 3, "third"))
        .await;
    fixture
        .publish_raw(&envelope("organisation-GAP", 2, "second"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    runner
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    assert!(
        fixture.journal().await.is_empty(),
        "versions 2 and 3 must wait for 1"
    );

    fixture
        .publish_raw(&envelope("organisation-GAP", 1, "first"))
        .await;
    runner
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let ids: Vec<(i64, String)> = sqlx::query_as("SELECT version, name FROM journal ORDER BY id")
        .fetch_all(&fixture.projection_pool)
        .await
        .unwrap();
    assert_eq!(
        ids,
        vec![
            (1, "first".to_string()),
            (2, "second".to_string()),
            (3, "third".to_string())
        ]
    );
    shutdown.cancel();
    running.await.unwrap();
    fixture.finish().await;
}

#[tokio::test]
async fn one_batch_with_a_gap_and_a_duplicate_applies_in_stream_order() {
    let fixture = Fixture::new().await;
    // Everything is in the stream before the runner starts, so it arrives as one batch.
    for (stream, version, name) in [
        ("organisation-A", 1, "a1"),
        ("organisation-B", 1, "b1"),
        ("organisation-A", 3, "a3"),
        ("organisation-B", 2, "b2"),
        ("organisation-B", 1, "b1 again"),
    ] {
        fixture.publish_raw(&envelope(stream, version, name)).await;
    }
    let shutdown = CancellationToken::new();
    let runner = fixture.runner();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    runner
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let names = |rows: Vec<(String,)>| rows.into_iter().map(|(name,)| name).collect::<Vec<_>>();
    let applied: Vec<(String,)> = sqlx::query_as("SELECT name FROM journal ORDER BY id")
        .fetch_all(&fixture.projection_pool)
        .await
        .unwrap();
    assert_eq!(
        names(applied),
        ["a1", "b1", "b2"],
        "a3 waits for a2; b1 once"
    );

    fixture
        .publish_raw(&envelope("organisation-A", 2, "a2"))
        .await;
    runner
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let applied: Vec<(String,)> = sqlx::query_as("SELECT name FROM journal ORDER BY id")
        .fetch_all(&fixture.projection_pool)
        .await
        .unwrap();
    assert_eq!(names(applied), ["a1", "b1", "b2", "a2", "a3"]);
    shutdown.cancel();
    running.await.unwrap();
    fixture.finish().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_the_rest_flow() {
    let fixture = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let runner = fixture.runner();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));

    fixture
        .publish_raw(&envelope("organisation-A", 1, "a1"))
        .await;
    fixture
        .publish_raw(&envelope("organisation-A", 2, "POISON"))
        .await;
    fixture
        .publish_raw(&envelope("organisation-A", 3, "a3"))
        .await;
    let jetstream = async_nats::jetstream::new(fixture.nats.clone());
    jetstream
        .publish(
            format!("{}.trusts.RTP.Garbage", fixture.prefix),
            vec![0xff, 0xff, 0xff].into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    fixture
        .publish_raw(&envelope("organisation-B", 1, "b1"))
        .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let dead = list_dead_letters(&fixture.projection_pool, "journal")
            .await
            .unwrap();
        if dead.len() == 2 {
            assert!(dead.iter().all(|letter| letter.deliveries == 3));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "poison messages were not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runner
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let names: Vec<String> = fixture
        .journal()
        .await
        .into_iter()
        .map(|(_, _, name)| name)
        .collect();
    // The stream moved past the poison event; the other stream was never held up.
    assert_eq!(names, vec!["a1", "a3", "b1"]);
    shutdown.cancel();
    running.await.unwrap();
    fixture.finish().await;
}

#[tokio::test]
async fn a_slow_transaction_holding_an_earlier_position_reaches_the_projection() {
    let fixture = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let runner = fixture.runner();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));
    let relay_task = tokio::spawn(fixture.relay.clone().run(shutdown.clone()));

    // A transaction takes an earlier position and stays open while later commands commit.
    let mut slow = fixture.store.pool().begin().await.unwrap();
    let slow_event = NewEvent::encode(
        "RTP",
        &OrganisationRenamed {
            ods_code: "RTP".into(),
            previous_name: String::new(),
            name: "slow".into(),
        },
    );
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
             organisation, payload, request_id, correlation_id, causation_id, traceparent,
             tracestate, principal)
         VALUES ('organisation-SLOW', 1, $1, $2, 1, 'RTP', $3, 'slow', '', '', '', '', 'test')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(&slow_event.event_type)
    .bind(&slow_event.payload)
    .execute(&mut *slow)
    .await
    .unwrap();
    for index in 0..5 {
        fixture
            .rename("organisation-FAST", &format!("fast-{index}"))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    slow.commit().await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let streams: Vec<String> = fixture
            .journal()
            .await
            .into_iter()
            .map(|(stream, _, _)| stream)
            .collect();
        if streams.len() == 6 {
            assert!(streams.contains(&"organisation-SLOW".to_string()));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projection has {streams:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
    relay_task.await.unwrap();
    fixture.finish().await;
}

/// A journal that takes its time over every event, as a projection catching up on heavy events
/// does.
struct SlowJournal;

impl Projection for SlowJournal {
    fn name(&self) -> &str {
        "slow_journal"
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Journal.apply(connection, event).await
        })
    }

    fn reset<'a>(
        &'a self,
        connection: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Journal.reset(connection)
    }
}

/// The ack wait is short so that a crashed consumer's messages come back within seconds; a
/// batch that takes several ack waits to apply tells JetStream it is still in progress, so it
/// is not redelivered under the live consumer.
#[tokio::test]
async fn a_batch_longer_than_the_ack_wait_is_not_redelivered() {
    let fixture = Fixture::new().await;
    for version in 1..=20 {
        fixture
            .rename("organisation-RTP", &format!("name {version}"))
            .await;
    }
    fixture.publish(20).await;
    // Progress every 500 ms leaves a busy machine 1.5 s of slack before the ack wait runs out.
    let config = RunnerConfig {
        ack_wait: Duration::from_secs(2),
        ..RunnerConfig::new(&fixture.prefix, &["trusts"])
    };
    let runner = ProjectionRunner::new(
        fixture.projection_pool.clone(),
        fixture.nats.clone(),
        Arc::new(SlowJournal),
        config,
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.run(shutdown.clone()));
    let stream = fixture.trusts_stream().await;
    // JetStream counts messages redelivered and not yet acknowledged: watched while the batch
    // applies, not afterwards.
    let mut most_redelivered = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while fixture.journal().await.len() < 20 {
        assert!(tokio::time::Instant::now() < deadline, "never caught up");
        if let Ok(mut consumer) = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&format!(
                "{}_slow_journal",
                fixture.prefix
            ))
            .await
        {
            let info = consumer.info().await.unwrap();
            most_redelivered = most_redelivered.max(info.num_redelivered);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        most_redelivered, 0,
        "a 6 s batch under a 2 s ack wait was redelivered"
    );
    shutdown.cancel();
    running.await.unwrap();
    fixture.finish().await;
}

/// A durable consumer created by an earlier version with the old 30 s ack wait is brought to
/// the configured one when the runner starts, keeping its position.
#[tokio::test]
async fn an_existing_consumer_gets_the_configured_ack_wait() {
    let fixture = Fixture::new().await;
    let stream = async_nats::jetstream::new(fixture.nats.clone())
        .get_stream(format!("{}_TRUSTS", fixture.prefix.to_uppercase()))
        .await
        .unwrap();
    let name = format!("{}_journal", fixture.prefix);
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(name.clone()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_deliver: 4,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    fixture.rename("organisation-RTP", "Leeds").await;
    fixture.publish(1).await;
    let runner = fixture.runner();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fixture.journal().await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut consumer = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
        .await
        .unwrap();
    assert_eq!(
        consumer.info().await.unwrap().config.ack_wait,
        RunnerConfig::new(&fixture.prefix, &["trusts"]).ack_wait
    );
    assert_eq!(fixture.journal().await.len(), 1);
    shutdown.cancel();
    running.await.unwrap();
    fixture.finish().await;
}

/// A rebuild reads the record, not the stream: events the relay has not published yet are in
/// the rebuilt projection, and once published they change nothing; the log is read in pages
/// (25,000 events over a page of 10,000) in each stream's order.
#[tokio::test]
async fn a_rebuild_from_the_record_takes_what_is_unpublished_across_pages_and_nothing_twice() {
    let fixture = Fixture::new().await;
    for index in 0..30 {
        fixture
            .rename(
                &format!("organisation-{}", index % 4),
                &format!("name-{index}"),
            )
            .await;
    }
    fixture.publish(30).await;
    let runner = fixture.runner();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));
    runner
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(fixture.journal().await.len(), 30);

    // A backlog the bus never saw: 25,000 events over seven streams, four of them continuing.
    fixture.append_backlog(7, 25_000).await;
    assert_eq!(runner.rebuild_from_record().await.unwrap(), 25_030);
    assert_eq!(fixture.journal().await.len(), 25_030);
    fixture.assert_journal_in_stream_order().await;
    // The relay publishes the backlog. The consumer starts after the 30 messages the stream
    // held before the rebuild, not from the start; the runner skips all 25,000 it delivers.
    fixture.publish(25_000).await;
    assert_eq!(fixture.consumer_position().await.1, 25_000);
    fixture.rename("organisation-1", "after the rebuild").await;
    fixture.publish(1).await;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    runner
        .wait_caught_up(Duration::from_secs(60))
        .await
        .unwrap();
    shutdown.cancel();
    running.await.unwrap();
    let journal = fixture.journal().await;
    assert_eq!(
        journal.len(),
        25_031,
        "nothing applied twice, nothing missed"
    );
    assert!(
        journal
            .iter()
            .any(|(_, _, name)| name == "after the rebuild")
    );
    fixture.assert_journal_in_stream_order().await;
    let versions: Vec<(String, i64)> = fixture.applied_versions().await;
    let heads: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream_id, max(stream_version) FROM trusts.events GROUP BY stream_id ORDER BY stream_id",
    )
    .fetch_all(&fixture.projection_pool)
    .await
    .unwrap();
    assert_eq!(versions, heads);
    fixture.finish().await;
}

/// A rebuild that fails, or is killed half way, changes nothing: the projection, its stream
/// versions and its consumer's position are those of before. An event the projection rejects
/// is dead-lettered once (the live runner already did) and the rest of the record applies.
#[tokio::test]
async fn a_failed_or_killed_rebuild_leaves_everything_as_it_was_and_poison_is_dead_lettered_once() {
    let fixture = Fixture::new().await;
    for index in 0..20 {
        fixture
            .rename(
                &format!("organisation-{}", index % 3),
                &format!("name-{index}"),
            )
            .await;
    }
    fixture.rename("organisation-0", "POISON").await;
    fixture.rename("organisation-0", "after the poison").await;
    fixture.publish(22).await;
    let runner = fixture.runner();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.clone().run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while list_dead_letters(&fixture.projection_pool, "journal")
        .await
        .unwrap()
        .is_empty()
        || runner.lag().await.unwrap() > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "poison not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
    let live = fixture.journal().await;
    assert_eq!(live.len(), 21);
    let versions_before: Vec<(String, i64)> = fixture.applied_versions().await;

    // Rebuilding with the poison in the record: dead-lettered once (not counted as applied),
    // the rest applied.
    assert_eq!(runner.rebuild_from_record().await.unwrap(), 21);
    assert_eq!(fixture.journal().await, live);
    assert_eq!(
        list_dead_letters(&fixture.projection_pool, "journal")
            .await
            .unwrap()
            .len(),
        1
    );
    let position_before = fixture.consumer_position().await;

    // Killed half way through 25,000 events (its task aborted mid-transaction): nothing of it
    // remains.
    fixture.append_backlog(3, 25_000).await;
    let killed = tokio::spawn({
        let runner = runner.clone();
        async move { runner.rebuild_from_record().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    // The aborted transaction rolls back as its connection goes back to the pool.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fixture.journal().await,
        live,
        "a killed rebuild rolled back"
    );

    // A storage failure after 25,000 events: nothing of the rebuild remains either.
    fixture.rename("organisation-2", "OUTAGE").await;
    fixture.append_backlog(3, 100).await;
    let failed = runner.rebuild_from_record().await.unwrap_err();
    assert!(matches!(failed, ProjectionError::Corrupt(_)), "{failed:?}");
    assert_eq!(
        fixture.journal().await,
        live,
        "a failed rebuild rolled back"
    );
    let versions_after: Vec<(String, i64)> = fixture.applied_versions().await;
    assert_eq!(versions_after, versions_before);
    assert_eq!(fixture.consumer_position().await, position_before);
    fixture.finish().await;
}

/// The journal, counting the events of each transaction the runner applies.
struct CountedJournal(std::sync::Mutex<Vec<usize>>);

impl Projection for CountedJournal {
    fn name(&self) -> &str {
        "journal"
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        self.0.lock().unwrap().push(1);
        Journal.apply(connection, event)
    }

    fn apply_batch<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        self.0.lock().unwrap().push(events.len());
        Journal.apply_batch(connection, events)
    }

    fn reset<'a>(
        &'a self,
        connection: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Journal.reset(connection)
    }
}

/// Events published a few milliseconds apart, as commands arrive at a few hundred a second,
/// are applied together in the transaction of the first, which waits its linger for them:
/// one transaction each would cost the database more than the commands did. A batch is never
/// held past its linger.
#[tokio::test]
async fn events_arriving_within_the_linger_share_a_transaction() {
    let fixture = Fixture::new().await;
    let transactions = Arc::new(CountedJournal(std::sync::Mutex::new(Vec::new())));
    let config = RunnerConfig {
        linger: Duration::from_millis(1_500),
        ..RunnerConfig::new(&fixture.prefix, &["trusts"])
    };
    let runner = ProjectionRunner::new(
        fixture.projection_pool.clone(),
        fixture.nats.clone(),
        transactions.clone(),
        config,
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.run(shutdown.clone()));
    // The consumer exists once the runner has started: published before, the events would
    // already wait together in the stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if fixture
            .trusts_stream()
            .await
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&format!(
                "{}_journal",
                fixture.prefix
            ))
            .await
            .is_ok()
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no consumer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = tokio::time::Instant::now();
    for version in 1..=8 {
        fixture
            .rename("organisation-RTP", &format!("name {version}"))
            .await;
        fixture.publish(1).await;
    }
    let published_within = started.elapsed();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fixture.journal().await.len() < 8 {
        assert!(tokio::time::Instant::now() < deadline, "never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sizes = transactions.0.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 8, "{sizes:?}");
    if published_within < Duration::from_millis(1_000) {
        assert_eq!(
            sizes,
            vec![8],
            "eight events published within {published_within:?} of a 1.5 s linger"
        );
    }
    shutdown.cancel();
    running.await.unwrap();
    fixture.finish().await;
}
