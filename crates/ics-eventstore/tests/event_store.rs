//! The event store and relay against the real Postgres and NATS JetStream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use ics_eventstore::relay::{Relay, RelayConfig};
use ics_eventstore::{
    CommandContext, CommittedPage, EventStore, ExpectedVersion, HeldBack, LogCursor, NewEvent,
    StoreError, migrate,
};
use ics_proto::events::v1::{EventEnvelope, OrganisationRenamed};
use ics_testing::{PrivateNats, PrivatePostgres, TestDatabase, unique_token};
use prost::Message;

fn context(request_id: &str) -> CommandContext {
    CommandContext {
        request_id: request_id.to_string(),
        principal: "trust-writer:RTP".to_string(),
        ..Default::default()
    }
}

fn renamed(name: &str) -> NewEvent {
    NewEvent::encode(
        "RTP",
        &OrganisationRenamed {
            ods_code: "RTP".to_string(),
            previous_name: String::new(),
            name: name.to_string(),
        },
    )
}

async fn store(database: &TestDatabase) -> EventStore {
    let pool = database.pool("trusts").await;
    migrate(&pool, &[]).await.unwrap();
    EventStore::new(pool, "trusts")
}

async fn append(
    store: &EventStore,
    request_id: &str,
    stream: &str,
    expected: ExpectedVersion,
) -> Result<ics_eventstore::CommandOutcome, StoreError> {
    store
        .execute_on_history(
            &context(request_id),
            "Rename",
            request_id.as_bytes(),
            stream,
            expected,
            |_history| Ok::<_, StoreError>(vec![renamed(request_id)]),
        )
        .await
}

#[tokio::test]
async fn concurrent_appends_with_one_expected_version_have_exactly_one_winner() {
    let database = TestDatabase::create().await;
    let store = Arc::new(store(&database).await);
    append(
        &store,
        "seed",
        "organisation-RTP",
        ExpectedVersion::NoStream,
    )
    .await
    .unwrap();

    let mut attempts = Vec::new();
    for attempt in 0..50 {
        let store = store.clone();
        attempts.push(tokio::spawn(async move {
            append(
                &store,
                &format!("racer-{attempt}"),
                "organisation-RTP",
                ExpectedVersion::Exact(1),
            )
            .await
        }));
    }
    let mut winners = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(outcome) => {
                assert_eq!(outcome.version, 2);
                winners += 1;
            }
            Err(StoreError::Conflict {
                current_version, ..
            }) => assert_eq!(current_version, 2),
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(
        store.read_stream("organisation-RTP").await.unwrap().len(),
        2
    );
    database.drop_database().await;
}

#[tokio::test]
async fn commands_without_an_expected_version_are_serialised_not_lost() {
    let database = TestDatabase::create().await;
    let store = Arc::new(store(&database).await);
    let mut tasks = Vec::new();
    for attempt in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            append(
                &store,
                &format!("any-{attempt}"),
                "organisation-RTP",
                ExpectedVersion::Any,
            )
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let versions: Vec<u64> = store
        .read_stream("organisation-RTP")
        .await
        .unwrap()
        .iter()
        .map(|event| event.stream_version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    database.drop_database().await;
}

/// Group commit: concurrent commands share statements and commits, and each keeps its own
/// optimistic concurrency. Streams of their own take exact versions; one contended stream
/// takes any version; every acknowledged event is in the log once, at the version acknowledged.
#[tokio::test]
async fn concurrent_commands_share_commits_and_each_is_stored_once_at_its_version() {
    let database = TestDatabase::create().await;
    let store = Arc::new(store(&database).await);
    let mut tasks = Vec::new();
    for writer in 0..48 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for command in 0..5u64 {
                let (stream, expected) = if writer < 40 {
                    let expected = match command {
                        0 => ExpectedVersion::NoStream,
                        version => ExpectedVersion::Exact(version),
                    };
                    (format!("organisation-W{writer}"), expected)
                } else {
                    ("organisation-SHARED".to_owned(), ExpectedVersion::Any)
                };
                let outcome = append(&store, &format!("w{writer}-{command}"), &stream, expected)
                    .await
                    .unwrap();
                acknowledged.push((outcome.event_ids[0].clone(), stream, outcome.version));
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 240);
    let log: Vec<(uuid::Uuid, String, i64, String)> = sqlx::query_as(
        "SELECT event_id, stream_id, stream_version, transaction_id::text FROM events",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(log.len(), 240, "every command appended once");
    let stored: HashSet<(String, String, u64)> = log
        .iter()
        .map(|(id, stream, version, _)| (id.to_string(), stream.clone(), *version as u64))
        .collect();
    for (event_id, stream, version) in &acknowledged {
        assert!(
            stored.contains(&(event_id.clone(), stream.clone(), *version)),
            "{event_id} acknowledged at {stream}/{version} is not there"
        );
    }
    let shared: Vec<u64> = store
        .read_stream("organisation-SHARED")
        .await
        .unwrap()
        .iter()
        .map(|event| event.stream_version)
        .collect();
    assert_eq!(shared, (1..=40).collect::<Vec<_>>());
    let commits: HashSet<&String> = log
        .iter()
        .map(|(_, _, _, transaction)| transaction)
        .collect();
    assert!(
        commits.len() < 200,
        "240 commands took {} commits: concurrent appends were not written together",
        commits.len()
    );
    database.drop_database().await;
}

#[tokio::test]
async fn a_retried_request_returns_the_first_result_and_writes_nothing() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let first = append(&store, "req-1", "organisation-RTP", ExpectedVersion::Any)
        .await
        .unwrap();
    assert!(!first.replayed);
    let retry = append(&store, "req-1", "organisation-RTP", ExpectedVersion::Any)
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.event_ids, first.event_ids);
    assert_eq!(retry.version, first.version);
    assert_eq!(
        store.read_stream("organisation-RTP").await.unwrap().len(),
        1
    );

    // The same key for a different command is refused, not answered with the old result.
    let reused = store
        .execute_on_history(
            &context("req-1"),
            "Rename",
            b"something else",
            "organisation-RTP",
            ExpectedVersion::Any,
            |_| Ok::<_, StoreError>(vec![renamed("other")]),
        )
        .await;
    assert!(matches!(reused, Err(StoreError::RequestIdReused { .. })));

    // Concurrent retries of one request also write once.
    let store = Arc::new(store);
    let mut retries = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        retries.push(tokio::spawn(async move {
            append(&store, "req-2", "organisation-RTP", ExpectedVersion::Any).await
        }));
    }
    let mut event_ids = HashSet::new();
    for retry in retries {
        event_ids.insert(retry.await.unwrap().unwrap().event_ids.join(","));
    }
    assert_eq!(event_ids.len(), 1);
    assert_eq!(
        store.read_stream("organisation-RTP").await.unwrap().len(),
        2
    );
    database.drop_database().await;
}

/// The relay's lag in time: when the oldest event after a cursor was recorded.
#[tokio::test]
async fn the_oldest_event_after_a_cursor_says_how_long_the_relay_is_behind() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    assert_eq!(
        store.oldest_after(LogCursor::default()).await.unwrap(),
        None
    );
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    for request in ["req-old-1", "req-old-2"] {
        append(&store, request, "organisation-RTP", ExpectedVersion::Any)
            .await
            .unwrap();
    }
    let oldest = store
        .oldest_after(LogCursor::default())
        .await
        .unwrap()
        .expect("two events wait");
    assert!(oldest >= before && oldest <= chrono::Utc::now(), "{oldest}");
    // Past the last event there is nothing waiting. Transaction ids are cluster-wide, so
    // another test's open transaction can briefly hold back what reads as committed.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let events = loop {
        let events = store
            .read_committed(LogCursor::default(), 0, 10)
            .await
            .unwrap();
        if events.len() == 2 {
            break events;
        }
        assert!(tokio::time::Instant::now() < deadline, "events held back");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let after_last = LogCursor::after(events.last().expect("events"));
    assert_eq!(store.oldest_after(after_last).await.unwrap(), None);
    database.drop_database().await;
}

#[tokio::test]
async fn a_failed_decision_writes_nothing() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let refused = store
        .execute_on_history(
            &context("req-refused"),
            "Rename",
            b"x",
            "organisation-RTP",
            ExpectedVersion::Any,
            |_| {
                Err::<Vec<NewEvent>, _>(StoreError::RequestIdReused {
                    request_id: "domain says no".into(),
                })
            },
        )
        .await;
    assert!(refused.is_err());
    assert!(
        store
            .read_stream("organisation-RTP")
            .await
            .unwrap()
            .is_empty()
    );
    // The request id was not consumed by the refusal: a corrected retry goes through.
    let corrected = append(
        &store,
        "req-refused",
        "organisation-RTP",
        ExpectedVersion::Any,
    )
    .await;
    assert!(corrected.is_ok());
    database.drop_database().await;
}

/// A projection folds the history an event ends: read on its own connection up to that event,
/// and the event itself back from the envelope it travelled in.
#[tokio::test]
async fn a_stream_is_read_through_a_version_and_an_event_back_from_its_envelope() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    for request_id in ["first", "second", "third"] {
        append(&store, request_id, "organisation-RTP", ExpectedVersion::Any)
            .await
            .unwrap();
    }
    append(
        &store,
        "elsewhere",
        "organisation-RXF",
        ExpectedVersion::Any,
    )
    .await
    .unwrap();
    let mut connection = store.pool().acquire().await.unwrap();
    let through_two = ics_eventstore::read_stream_through(&mut connection, "organisation-RTP", 2)
        .await
        .unwrap();
    let names: Vec<String> = through_two
        .iter()
        .map(|event| event.decode::<OrganisationRenamed>().unwrap().name)
        .collect();
    assert_eq!(names, ["first", "second"]);

    let recorded = &store.read_stream("organisation-RTP").await.unwrap()[2];
    let back =
        ics_eventstore::RecordedEvent::from_envelope(&recorded.to_envelope("trusts")).unwrap();
    assert_eq!(back.transaction_id, 0, "envelopes carry no transaction id");
    assert_eq!(back.to_envelope("trusts"), recorded.to_envelope("trusts"));
    assert_eq!(back.recorded_at, recorded.recorded_at);
    let mut broken = recorded.to_envelope("trusts");
    broken.event_id = "not a uuid".into();
    assert!(matches!(
        ics_eventstore::RecordedEvent::from_envelope(&broken),
        Err(StoreError::Corrupt { .. })
    ));
    drop(connection);
    database.drop_database().await;
}

/// Opens a transaction that appends an event and stays open, holding an earlier position.
async fn hold_slow_transaction(store: &EventStore) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut slow = store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
             organisation, payload, request_id, correlation_id, causation_id, traceparent,
             tracestate, principal)
         VALUES ('organisation-SLOW', 1, $1, 'ics.events.v1.OrganisationRenamed', 1, 'RTP', $2,
             'slow', '', '', '', '', 'test')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(renamed("slow").payload)
    .execute(&mut *slow)
    .await
    .unwrap();
    slow
}

#[tokio::test]
async fn a_slow_transaction_is_never_skipped_by_the_relay() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let prefix = unique_token();
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let relay = Relay::new(store.clone(), nats.clone(), RelayConfig::new(&prefix));
    relay.ensure_stream().await.unwrap();

    let slow = hold_slow_transaction(&store).await;
    append(&store, "fast-1", "organisation-FAST", ExpectedVersion::Any)
        .await
        .unwrap();

    // While the slow transaction is open, nothing after it may be published.
    assert_eq!(relay.publish_pending().await.unwrap(), 0);
    assert!(
        store
            .read_committed(LogCursor::default(), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    slow.commit().await.unwrap();
    publish_all(&relay, 2).await;
    let received = read_stream_messages(&nats, &relay.stream_name(), 2).await;
    let streams: Vec<String> = received
        .iter()
        .map(|envelope| envelope.stream_id.clone())
        .collect();
    assert_eq!(streams, vec!["organisation-SLOW", "organisation-FAST"]);

    ics_testing::delete_streams(&nats, &prefix).await;
    database.drop_database().await;
}

#[tokio::test]
async fn republishing_is_deduplicated_by_message_id() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let prefix = unique_token();
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let relay = Relay::new(store.clone(), nats.clone(), RelayConfig::new(&prefix));
    relay.ensure_stream().await.unwrap();
    for index in 0..5 {
        append(
            &store,
            &format!("r-{index}"),
            "organisation-RTP",
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    }
    publish_all(&relay, 5).await;
    assert_eq!(relay.republish(0).await.unwrap(), 5);
    let jetstream = jetstream::new(nats.clone());
    let mut stream = jetstream.get_stream(relay.stream_name()).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 5);
    ics_testing::delete_streams(&nats, &prefix).await;
    database.drop_database().await;
}

#[tokio::test]
async fn the_relay_survives_a_nats_restart_and_everything_arrives_once() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let mut server = PrivateNats::start().await;
    let prefix = unique_token();
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(server.url())
        .await
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let relay = Relay::new(store.clone(), nats.clone(), RelayConfig::new(&prefix));
    let stream_name = relay.stream_name();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    let total = 60;
    for index in 0..total {
        append(
            &store,
            &format!("w-{index}"),
            &format!("organisation-{}", index % 7),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
        if index == 20 {
            server.kill();
        }
        if index == 40 {
            server.restart().await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Everything arrives (the relay resumes by itself), and no event arrives twice.
    let received = read_stream_messages(&nats, &stream_name, total).await;
    let distinct: HashSet<String> = received
        .iter()
        .map(|envelope| envelope.event_id.clone())
        .collect();
    assert_eq!(distinct.len(), total);
    assert_eq!(received.len(), total);

    shutdown.cancel();
    running.await.unwrap();
    database.drop_database().await;
}

/// Publishes until `expected` events went out. Transaction ids are cluster-wide, so a
/// transaction open in another test's database can briefly hold back what is visible here.
async fn publish_all(relay: &Relay, expected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut published = 0;
    while published < expected {
        published += relay.publish_pending().await.unwrap();
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {published} of {expected} published"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(published, expected);
}

/// Reads `expected` messages from the stream (waiting up to 20 s), then checks no more follow.
async fn read_stream_messages(
    nats: &async_nats::Client,
    stream_name: &str,
    expected: usize,
) -> Vec<EventEnvelope> {
    let jetstream = jetstream::new(nats.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match jetstream.get_stream(stream_name).await {
            Ok(stream) => break stream,
            Err(error) if tokio::time::Instant::now() > deadline => panic!("no stream: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut envelopes = Vec::new();
    while envelopes.len() < expected {
        let next = tokio::time::timeout_at(deadline, messages.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} events arrived", envelopes.len()))
            .unwrap()
            .unwrap();
        envelopes.push(EventEnvelope::decode(next.payload.clone()).unwrap());
    }
    let extra = tokio::time::timeout(Duration::from_millis(500), messages.next()).await;
    assert!(extra.is_err(), "more events than expected arrived");
    envelopes
}

#[tokio::test]
async fn one_replica_relays_at_a_time_and_a_standby_takes_over() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let prefix = unique_token();
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let first = Relay::new(store.clone(), nats.clone(), RelayConfig::new(&prefix));
    let second = Relay::new(store.clone(), nats.clone(), RelayConfig::new(&prefix));
    let stream_name = first.stream_name();
    let first_stop = tokio_util::sync::CancellationToken::new();
    let second_stop = tokio_util::sync::CancellationToken::new();
    let first_task = tokio::spawn(first.run(first_stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second_task = tokio::spawn(second.run(second_stop.clone()));

    // Only the lock holder relays: the standby's lock attempt fails while the leader lives.
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('trusts.relay'))")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(!held, "the relay lock must be held by the leading replica");

    for index in 0..10 {
        append(
            &store,
            &format!("before-{index}"),
            "organisation-RTP",
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    }
    read_stream_messages(&nats, &stream_name, 10).await;

    // The leader stops; the standby takes over and relays what follows.
    first_stop.cancel();
    first_task.await.unwrap();
    for index in 0..10 {
        append(
            &store,
            &format!("after-{index}"),
            "organisation-RTP",
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
    }
    read_stream_messages(&nats, &stream_name, 20).await;

    second_stop.cancel();
    second_task.await.unwrap();
    ics_testing::delete_streams(&nats, &prefix).await;
    database.drop_database().await;
}

/// A command whose decision records the history it was given: the request ids of the events
/// it saw, in order.
async fn append_seeing(
    store: &EventStore,
    request_id: &str,
    stream: &str,
) -> (ics_eventstore::CommandOutcome, Vec<String>) {
    let seen = std::sync::Mutex::new(Vec::new());
    let outcome = store
        .execute_on_history(
            &context(request_id),
            "Rename",
            request_id.as_bytes(),
            stream,
            ExpectedVersion::Any,
            |history| {
                *seen.lock().unwrap() = history
                    .iter()
                    .map(|event| event.metadata.request_id.clone())
                    .collect();
                Ok::<_, StoreError>(vec![renamed(request_id)])
            },
        )
        .await
        .unwrap();
    (outcome, seen.into_inner().unwrap())
}

/// The state kept in memory between commands never hides what the database holds: another
/// process's append is in the next decision, and so is everything after a long run of
/// commands; a state folded from events the database lost (a restore to an earlier point) is
/// dropped, so the next append follows the database's head and leaves no gap. The same checks
/// with no cache at all give the same answers.
#[tokio::test]
async fn the_state_cache_follows_the_database_through_other_writers_and_restores() {
    for cache in [ics_eventstore::DEFAULT_STATE_CACHE_BYTES, 0] {
        let database = TestDatabase::create().await;
        let ours = store(&database).await.with_state_cache(cache);
        let theirs = EventStore::new(database.pool("trusts").await, "trusts");
        let stream = "organisation-RTP";
        let mut expected = Vec::new();
        for round in 0..20 {
            let request = format!("ours-{round}");
            let (outcome, seen) = append_seeing(&ours, &request, stream).await;
            assert_eq!(seen, expected, "cache {cache}, round {round}");
            assert_eq!(outcome.version, round as u64 * 2 + 1);
            expected.push(request);
            // Another process appends between two of ours.
            let request = format!("theirs-{round}");
            append_seeing(&theirs, &request, stream).await;
            expected.push(request);
        }

        // A restore to an earlier point: the database loses the last ten events.
        let pool = database.pool("trusts").await;
        sqlx::query("DELETE FROM events WHERE stream_id = $1 AND stream_version > 30")
            .bind(stream)
            .execute(&pool)
            .await
            .unwrap();
        expected.truncate(30);
        let (outcome, seen) = append_seeing(&ours, "after-restore", stream).await;
        assert_eq!(seen, expected, "cache {cache}: the database's history only");
        assert_eq!(outcome.version, 31, "no gap after the database's head");
        let versions: Vec<i64> = sqlx::query_scalar(
            "SELECT stream_version FROM events WHERE stream_id = $1 ORDER BY stream_version",
        )
        .bind(stream)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(versions, (1..=31).collect::<Vec<i64>>());
        // A retry is still answered from the recorded result, whatever the cache holds.
        let (replayed, _) = append_seeing(&ours, "ours-3", stream).await;
        assert!(replayed.replayed);
        assert_eq!(replayed.version, 7);
        database.drop_database().await;
    }
}

/// A restore to an earlier point, then appends by another process that bring the stream back
/// to the very version this process's state was folded up to, with other events: the held
/// state is not the database's, though its version is. The command's append is refused by the
/// head guard, which checks the event at the head and not only its version, and the command is
/// decided again on the stream as the database holds it. With no cache the same answers come.
#[tokio::test]
async fn a_state_folded_from_events_the_database_no_longer_holds_never_decides() {
    for cache in [ics_eventstore::DEFAULT_STATE_CACHE_BYTES, 0] {
        let database = TestDatabase::create().await;
        let ours = store(&database).await.with_state_cache(cache);
        let theirs = EventStore::new(database.pool("trusts").await, "trusts");
        let stream = "organisation-RTP";
        for round in 0..10 {
            append_seeing(&ours, &format!("ours-{round}"), stream).await;
        }
        let pool = database.pool("trusts").await;
        sqlx::query("DELETE FROM events WHERE stream_id = $1 AND stream_version > 5")
            .bind(stream)
            .execute(&pool)
            .await
            .unwrap();
        let mut expected: Vec<String> = (0..5).map(|round| format!("ours-{round}")).collect();
        for round in 0..5 {
            let request = format!("theirs-{round}");
            append_seeing(&theirs, &request, stream).await;
            expected.push(request);
        }
        let (outcome, seen) = append_seeing(&ours, "after-restore", stream).await;
        assert_eq!(seen, expected, "cache {cache}: the database's history only");
        assert_eq!(outcome.version, 11);
        assert_eq!(ours.read_stream(stream).await.unwrap().len(), 11);
        database.drop_database().await;
    }
}

/// Folds of the test below: each step counted, so that the test sees how much a command folds.
static STEPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn counting(events: u64, _event: &ics_eventstore::RecordedEvent) -> Result<u64, StoreError> {
    STEPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(events + 1)
}

/// Streams commanded in turn keep their states however long they grow: a command folds only
/// the events it has not folded, here the last command's append, and reads nothing. (A cache of histories
/// of 100,000 events in all, which this replaced, held none of 120 streams of 1,000 events,
/// and each command read and folded its stream whole.) Past the states the cache keeps, a
/// stream is folded whole again: the budget weighs states, not the events they were folded from.
#[tokio::test]
async fn commands_on_long_streams_in_turn_fold_only_their_new_events() {
    const STREAMS: usize = 120;
    const EVENTS: usize = 1_000;
    let database = TestDatabase::create().await;
    let pool = database.pool("trusts").await;
    migrate(&pool, &[]).await.unwrap();
    // The long streams, written directly: a command's worth of events would take minutes.
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
             organisation, payload, request_id, correlation_id, causation_id, traceparent,
             tracestate, principal)
         SELECT 'organisation-' || stream, version, gen_random_uuid(),
             'ics.events.v1.OrganisationRenamed', 1, 'RTP', '', '', '', '', '', '', 'test'
         FROM generate_series(1, $1) AS stream, generate_series(1, $2) AS version",
    )
    .bind(i32::try_from(STREAMS).unwrap())
    .bind(i32::try_from(EVENTS).unwrap())
    .execute(&pool)
    .await
    .unwrap();

    let round = |store: EventStore, round: usize| async move {
        STEPS.store(0, std::sync::atomic::Ordering::SeqCst);
        for stream in 1..=STREAMS {
            let request = format!("round-{round}-{stream}");
            let seen = std::sync::Mutex::new(0);
            store
                .execute(
                    &context(&request),
                    "Rename",
                    request.as_bytes(),
                    &format!("organisation-{stream}"),
                    ExpectedVersion::Any,
                    ics_eventstore::Fold::new(0, counting),
                    |events: &u64| {
                        *seen.lock().unwrap() = *events;
                        Ok::<_, StoreError>(vec![renamed(&request)])
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                *seen.lock().unwrap(),
                (EVENTS + round) as u64,
                "the state decided on is the whole stream's"
            );
        }
        STEPS.load(std::sync::atomic::Ordering::SeqCst)
    };

    let ours = EventStore::new(pool.clone(), "trusts");
    // The first command on each stream folds it whole; its own event is folded in by the next.
    assert_eq!(round(ours.clone(), 0).await, STREAMS * EVENTS);
    assert_eq!(
        round(ours.clone(), 1).await,
        STREAMS,
        "only the last command's event"
    );
    assert_eq!(round(ours, 2).await, STREAMS);

    // A cache of fewer streams than are commanded in turn keeps none of them when needed.
    let small = EventStore::new(pool.clone(), "trusts")
        .with_state_cache(STREAMS / 2 * ics_eventstore::DEFAULT_STATE_BYTES);
    assert_eq!(round(small, 3).await, STREAMS * (EVENTS + 3));
    pool.close().await;
    database.drop_database().await;
}

/// A command decides on the history this process holds without reading it first. What that
/// history cannot settle is settled on the stream as read: an expected version another process
/// has since reached, a decision that refuses on the held history but not on the database's,
/// and a retried creation that its own first run made impossible, which is answered with its
/// first result. The history held after an append is the events as stored, to the commit
/// order and timestamp.
#[tokio::test]
async fn a_held_history_never_decides_what_the_database_would_decide_otherwise() {
    let database = TestDatabase::create().await;
    let ours = store(&database).await;
    let theirs = EventStore::new(database.pool("trusts").await, "trusts");
    let stream = "organisation-RTP";
    let seen = std::sync::Mutex::new(Vec::new());
    let run = |store: &EventStore, request: &str, expected: ExpectedVersion, length: usize| {
        let request = request.to_string();
        let seen = &seen;
        let store = store.clone();
        async move {
            store
                .execute_on_history(
                    &context(&request),
                    "Rename",
                    request.as_bytes(),
                    stream,
                    expected,
                    |history| {
                        *seen.lock().unwrap() = history.to_vec();
                        // Refuses unless the stream holds `length` events.
                        if history.len() == length {
                            Ok(vec![renamed(&request)])
                        } else {
                            Err(StoreError::Corrupt {
                                what: format!("{} events, not {length}", history.len()),
                            })
                        }
                    },
                )
                .await
        }
    };

    let first = run(&ours, "ours-1", ExpectedVersion::NoStream, 0)
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    run(&theirs, "theirs-2", ExpectedVersion::Exact(1), 1)
        .await
        .unwrap();
    // Ours holds version 1; the database is at 2.
    let third = run(&ours, "ours-3", ExpectedVersion::Exact(2), 2)
        .await
        .unwrap();
    assert_eq!(third.version, 3);
    run(&theirs, "theirs-4", ExpectedVersion::Any, 3)
        .await
        .unwrap();
    // Refused on the held history of 3, decided on the database's 4.
    let fifth = run(&ours, "ours-5", ExpectedVersion::Any, 4).await.unwrap();
    assert_eq!(fifth.version, 5);
    // Its own appends are held as stored: the next decision sees what the database holds.
    run(&ours, "ours-6", ExpectedVersion::Any, 5).await.unwrap();
    let stored = ours.read_stream(stream).await.unwrap();
    let held = seen.lock().unwrap().clone();
    assert_eq!(held.len(), 5);
    for (held, stored) in held.iter().zip(&stored) {
        assert_eq!(
            (
                held.global_position,
                held.transaction_id,
                held.stream_version,
                held.event_id,
                held.recorded_at,
                &held.payload,
                &held.metadata,
            ),
            (
                stored.global_position,
                stored.transaction_id,
                stored.stream_version,
                stored.event_id,
                stored.recorded_at,
                &stored.payload,
                &stored.metadata,
            )
        );
    }

    // A retried creation: its first run made the stream exist, so on any history the decision
    // now refuses, and the expected version no longer holds. It is answered with its result.
    let retried = run(&ours, "ours-1", ExpectedVersion::NoStream, 0)
        .await
        .unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.event_ids, first.event_ids);
    let retried = run(&ours, "ours-5", ExpectedVersion::Any, 4).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.event_ids, fifth.event_ids);
    // A real conflict is still one, with the database's version.
    let conflict = run(&ours, "ours-7", ExpectedVersion::Exact(5), 5).await;
    assert!(
        matches!(
            conflict,
            Err(StoreError::Conflict {
                current_version: 6,
                ..
            })
        ),
        "{conflict:?}"
    );
    assert_eq!(ours.read_stream(stream).await.unwrap().len(), 6);
    database.drop_database().await;
}

/// The leading relay is woken in memory by appends of its own process, which then send no
/// NOTIFY (it serialises the commits that send it); appends of another replica still NOTIFY,
/// which wakes it across processes. The relay's poll is an hour here, so only a wake publishes.
#[tokio::test]
async fn appends_wake_their_own_relay_in_memory_and_another_replicas_by_notify() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let other_replica = EventStore::new(database.pool("trusts").await, "trusts");
    let prefix = unique_token();
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let (stream_name, stop, running) = start_hourly_polling_relay(&store, &nats, &prefix);
    wait_until_leading(other_replica.pool()).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(store.pool())
        .await
        .unwrap();
    listener.listen(&store.notify_channel()).await.unwrap();

    append(&store, "own", "organisation-RTP", ExpectedVersion::Any)
        .await
        .unwrap();
    read_stream_messages(&nats, &stream_name, 1).await;
    let notified = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(notified.is_err(), "the leader's own append sent a NOTIFY");

    append(
        &other_replica,
        "other",
        "organisation-RTP",
        ExpectedVersion::Any,
    )
    .await
    .unwrap();
    read_stream_messages(&nats, &stream_name, 2).await;
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("another replica's append sends a NOTIFY")
        .unwrap();

    stop_relay(stop, running, &nats, &prefix).await;
    database.drop_database().await;
}

/// At a command every few milliseconds each event goes out in a round of its own. The relay
/// stores its checkpoint at most once per `checkpoint_interval` all the same, not once per
/// round, and once publishing pauses the stored checkpoint reaches the last event published
/// within that interval, with no wake and no poll to prompt it.
#[tokio::test]
async fn the_relay_stores_its_checkpoint_once_an_interval_not_once_a_round() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let pool = store.pool().clone();
    sqlx::raw_sql(
        "CREATE TABLE checkpoint_writes (at timestamptz NOT NULL DEFAULT clock_timestamp());
         CREATE FUNCTION count_checkpoint_write() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO checkpoint_writes DEFAULT VALUES; RETURN NEW; END $$;
         CREATE TRIGGER checkpoint_written AFTER INSERT OR UPDATE ON relay_checkpoints
             FOR EACH ROW EXECUTE FUNCTION count_checkpoint_write();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let prefix = unique_token();
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let (stream_name, stop, running) = start_hourly_polling_relay(&store, &nats, &prefix);
    wait_until_leading(&pool).await;
    let writes_before: i64 = sqlx::query_scalar("SELECT count(*) FROM checkpoint_writes")
        .fetch_one(&pool)
        .await
        .unwrap();

    let total = 200;
    let started = std::time::Instant::now();
    for index in 0..total {
        append(
            &store,
            &format!("paced-{index}"),
            &format!("organisation-{}", index % 5),
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    read_stream_messages(&nats, &stream_name, total).await;
    let last: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT global_position FROM relay_checkpoints WHERE relay = $1")
                .bind(&stream_name)
                .fetch_optional(&pool)
                .await
                .unwrap();
        if stored == Some(last) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint stayed at {stored:?}, not {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let writes: i64 = sqlx::query_scalar("SELECT count(*) FROM checkpoint_writes")
        .fetch_one(&pool)
        .await
        .unwrap();
    let writes = writes - writes_before;
    // One per 100 ms interval, one more to catch up, and slack for a slow machine.
    let bound = i64::try_from(elapsed.as_millis() / 100).unwrap() + 3;
    assert!(
        writes <= bound,
        "{writes} checkpoint writes for {total} events in {elapsed:?} (at most {bound})"
    );

    stop_relay(stop, running, &nats, &prefix).await;
    database.drop_database().await;
}

/// A woken relay waits its linger before it reads, and publishes what was appended meanwhile
/// in one round, instead of reading the log once for every commit that woke it.
#[tokio::test]
async fn a_woken_relay_lingers_and_publishes_what_came_meanwhile_in_one_round() {
    // A PostgreSQL of its own: the relay publishes only below the oldest transaction running
    // anywhere in its cluster, and on the shared server another test's open transaction once
    // held back half of the appends until the next wake, a linger later.
    let postgres = PrivatePostgres::start();
    let database = TestDatabase::create_on(&postgres.server_url()).await;
    let store = store(&database).await;
    let pool = store.pool().clone();
    let prefix = unique_token();
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let relay = Relay::new(
        store.clone(),
        nats.clone(),
        RelayConfig {
            poll_interval: Duration::from_secs(3600),
            linger: Duration::from_millis(400),
            ..RelayConfig::new(&prefix)
        },
    );
    let stream_name = relay.stream_name();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));
    wait_until_leading(&pool).await;
    // Leading is not yet waiting for a wake: the relay then creates its stream and publishes
    // what the log holds at once, without lingering. On a loaded machine that first round
    // once came during the appends below and published half of them.
    let jetstream = jetstream::new(nats.clone());
    let created = async {
        while jetstream.get_stream(&stream_name).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), created)
        .await
        .expect("the relay creates its stream");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Twenty commits over about 100 ms, each waking the relay.
    let total = 20;
    let started = std::time::Instant::now();
    for index in 0..total {
        append(
            &store,
            &format!("lingered-{index}"),
            "organisation-RTP",
            ExpectedVersion::Any,
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let appending = started.elapsed();
    assert!(
        appending < Duration::from_millis(400),
        "the appends took {appending:?}, longer than the linger"
    );

    let published = async {
        loop {
            if let Ok(mut stream) = jetstream.get_stream(&stream_name).await
                && stream.info().await.unwrap().state.messages == total
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), published)
        .await
        .expect("every event is published");
    let stream = jetstream.get_stream(&stream_name).await.unwrap();
    let mut times = Vec::new();
    for sequence in 1..=total {
        times.push(stream.get_raw_message(sequence).await.unwrap().time);
    }
    let spread = (*times.iter().max().unwrap() - *times.iter().min().unwrap()).whole_milliseconds();
    assert!(
        spread < 50,
        "events appended over {appending:?} were published over {spread} ms: not in one round"
    );

    stop_relay(stop, running, &nats, &prefix).await;
    database.drop_database().await;
}

/// A relay of `store` that polls only hourly, so that only a wake makes it publish: its
/// stream's name, its stop and its task.
fn start_hourly_polling_relay(
    store: &EventStore,
    nats: &async_nats::Client,
    prefix: &str,
) -> (
    String,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let relay = Relay::new(
        store.clone(),
        nats.clone(),
        RelayConfig {
            poll_interval: Duration::from_secs(3600),
            ..RelayConfig::new(prefix)
        },
    );
    let stream_name = relay.stream_name();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));
    (stream_name, stop, running)
}

/// Waits until a relay of the trusts log holds its lock, and then for its first pass, which
/// finds nothing: it then waits for appends.
async fn wait_until_leading(pool: &sqlx::PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // The lock is the session's: taken and given back on one connection.
    let mut probe = pool.acquire().await.unwrap();
    while sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock(hashtext('trusts.relay'))")
        .fetch_one(&mut *probe)
        .await
        .unwrap()
    {
        sqlx::query("SELECT pg_advisory_unlock(hashtext('trusts.relay'))")
            .execute(&mut *probe)
            .await
            .unwrap();
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never led"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(probe);
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// An append committed while an older transaction still runs is not yet publishable (the relay
/// publishes only below the oldest running transaction, so it never skips one that commits
/// later). The wake it sent finds nothing; the relay looks again shortly, and publishes it once
/// the older transaction ends, though nothing wakes it then and it polls only hourly here.
#[tokio::test]
async fn an_append_held_back_by_an_older_transaction_is_published_when_that_ends() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let prefix = unique_token();
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let (stream_name, stop, running) = start_hourly_polling_relay(&store, &nats, &prefix);
    wait_until_leading(store.pool()).await;

    let older = running_transaction(store.pool()).await;
    append(&store, "held", "organisation-RTP", ExpectedVersion::Any)
        .await
        .unwrap();
    // The relay is woken now and finds the append behind the older transaction.
    tokio::time::sleep(Duration::from_millis(300)).await;
    older.rollback().await.unwrap();
    let published = read_stream_messages(&nats, &stream_name, 1).await;
    assert_eq!(request_ids(&published), ["held"]);

    stop_relay(stop, running, &nats, &prefix).await;
    database.drop_database().await;
}

/// A round can publish some events and leave others held back: here A is published once the
/// transaction in front of it ends, while B waits behind a second one. Nothing wakes the relay
/// when that ends either, and it polls only hourly here; it publishes B because its round knew
/// B was held back and looked again. Before the relay knew that, it looked again only after a
/// wake that found nothing, and B waited for the poll (a tenth of a second in production).
#[tokio::test]
async fn a_round_that_publishes_part_looks_again_for_the_rest_held_back() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let prefix = unique_token();
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let (stream_name, stop, running) = start_hourly_polling_relay(&store, &nats, &prefix);
    wait_until_leading(store.pool()).await;

    let first = running_transaction(store.pool()).await;
    append(&store, "A", "organisation-RTP", ExpectedVersion::Any)
        .await
        .unwrap();
    let second = running_transaction(store.pool()).await;
    append(&store, "B", "organisation-RVR", ExpectedVersion::Any)
        .await
        .unwrap();
    // A is now behind the first transaction and B behind both: ending the first frees A only.
    first.rollback().await.unwrap();
    let published = read_stream_messages(&nats, &stream_name, 1).await;
    assert_eq!(request_ids(&published), ["A"]);
    second.rollback().await.unwrap();
    let published = read_stream_messages(&nats, &stream_name, 2).await;
    assert_eq!(request_ids(&published), ["A", "B"]);

    stop_relay(stop, running, &nats, &prefix).await;
    database.drop_database().await;
}

/// A page of the log tells whether committed events after it wait behind a running
/// transaction: held back while that transaction runs, in the page once it ends, and never
/// counted once the cursor is past them. The log's count of held-back events (what the metrics
/// page shows an operator) agrees at each step. On a PostgreSQL of its own, so that no other
/// test's transaction holds anything back.
#[tokio::test]
async fn a_page_of_the_log_says_whether_committed_events_after_it_are_held_back() {
    let postgres = PrivatePostgres::start();
    let database = TestDatabase::create_on(&postgres.server_url()).await;
    let store = store(&database).await;
    let page = |cursor: LogCursor| {
        let store = store.clone();
        async move { store.read_committed_page(cursor, 0, 10).await.unwrap() }
    };
    let ids = |page: &CommittedPage| -> Vec<String> {
        page.events
            .iter()
            .map(|event| event.metadata.request_id.clone())
            .collect()
    };

    let empty = page(LogCursor::default()).await;
    assert!(empty.events.is_empty() && !empty.held_back);
    assert_eq!(store.held_back().await.unwrap(), HeldBack::default());

    append(&store, "A", "organisation-RTP", ExpectedVersion::Any)
        .await
        .unwrap();
    let older = running_transaction(store.pool()).await;
    append(&store, "B", "organisation-RVR", ExpectedVersion::Any)
        .await
        .unwrap();
    let first = page(LogCursor::default()).await;
    assert_eq!(ids(&first), ["A"]);
    assert!(first.held_back, "B waits behind the running transaction");
    // Past A, the page is empty and still says B waits.
    let after_a = LogCursor::after(&first.events[0]);
    let second = page(after_a).await;
    assert!(second.events.is_empty() && second.held_back);
    // What an operator's metrics page reads: B alone is held back, and since when.
    let held = store.held_back().await.unwrap();
    assert_eq!(held.events, 1);
    let recorded_b = store.read_stream("organisation-RVR").await.unwrap()[0].recorded_at;
    assert_eq!(held.oldest_recorded_at, Some(recorded_b));

    older.rollback().await.unwrap();
    let third = page(after_a).await;
    assert_eq!(ids(&third), ["B"]);
    assert!(!third.held_back);
    assert_eq!(store.held_back().await.unwrap(), HeldBack::default());
    let past_b = page(LogCursor::after(&third.events[0])).await;
    assert!(past_b.events.is_empty() && !past_b.held_back);

    database.drop_database().await;
}

/// Stops a relay the test started and deletes the streams of its subject prefix.
async fn stop_relay(
    stop: tokio_util::sync::CancellationToken,
    running: tokio::task::JoinHandle<()>,
    nats: &async_nats::Client,
    prefix: &str,
) {
    stop.cancel();
    running.await.unwrap();
    ics_testing::delete_streams(nats, prefix).await;
}

/// A transaction that has taken its id and stays open: every commit after it is held back.
async fn running_transaction(pool: &sqlx::PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut transaction = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *transaction)
        .await
        .unwrap();
    transaction
}

fn request_ids(envelopes: &[EventEnvelope]) -> Vec<&str> {
    envelopes
        .iter()
        .map(|envelope| {
            envelope
                .metadata
                .as_ref()
                .map_or("", |metadata| metadata.request_id.as_str())
        })
        .collect()
}

/// A payload past the TOAST threshold (an ingest event of a thousand observations) is stored
/// compressed with lz4, which costs bulk ingest a fraction of what pglz, the default, did.
#[tokio::test]
async fn large_payloads_are_compressed_with_lz4() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let name = "Royal Surrey County Hospital ".repeat(400);
    store
        .execute_on_history(
            &context("large"),
            "Rename",
            b"large",
            "organisation-RTP",
            ExpectedVersion::Any,
            |_history| Ok::<_, StoreError>(vec![renamed(&name)]),
        )
        .await
        .unwrap();
    let pool = database.pool("trusts").await;
    let (size, compression): (i32, Option<String>) = sqlx::query_as(
        "SELECT pg_column_size(payload), pg_column_compression(payload) FROM events
         WHERE stream_id = 'organisation-RTP'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(compression.as_deref(), Some("lz4"));
    assert!(
        size < 2_000,
        "{size} bytes stored for {} of name",
        name.len()
    );
}
