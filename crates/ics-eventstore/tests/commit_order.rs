//! Commit order across powers of ten (R6): transaction ids are numbers, never text. Each test
//! runs on a private PostgreSQL cluster whose transaction counter it sets with `pg_resetwal`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use ics_eventstore::relay::{Relay, RelayConfig};
use ics_eventstore::{EventStore, LogCursor, RecordedEvent, migrate};
use ics_proto::events::v1::EventEnvelope;
use ics_testing::{PrivatePostgres, TestDatabase, unique_token};
use prost::Message;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Transaction ids on both sides of 10,000 and of 100,000.
const SPANNING_IDS: [u64; 12] = [
    9_998, 9_999, 10_000, 10_001, 10_002, 10_003, 99_998, 99_999, 100_000, 100_001, 100_002,
    100_003,
];

async fn log_in(database: &TestDatabase, schema: &str) -> (PgPool, EventStore) {
    let pool = database.pool(schema).await;
    migrate(&pool, &[]).await.unwrap();
    (pool.clone(), EventStore::new(pool, "trusts"))
}

/// Appends one event (a stream of its own) with the given transaction id, or the inserting
/// transaction's own when `None`.
async fn insert_event(connection: &mut PgConnection, transaction_id: Option<u64>) -> Uuid {
    let event_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
             organisation, payload, request_id, correlation_id, causation_id, traceparent,
             tracestate, principal, transaction_id)
         VALUES ($1, 1, $2, 'ics.events.v1.OrganisationRenamed', 1, 'RTP', '', '', '', '', '',
             '', '', coalesce($3::text::xid8, pg_current_xact_id()))",
    )
    .bind(format!("organisation-{event_id}"))
    .bind(event_id)
    .bind(transaction_id.map(|id| id.to_string()))
    .execute(connection)
    .await
    .unwrap();
    event_id
}

/// The log's events in true commit order: by transaction id as a number, then position.
async fn commit_order(pool: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT event_id FROM events ORDER BY transaction_id, global_position")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn read_all(store: &EventStore, batch: u32) -> Vec<RecordedEvent> {
    let mut cursor = LogCursor::default();
    let mut read = Vec::new();
    loop {
        let page = store.read_committed(cursor, 0, batch).await.unwrap();
        let Some(last) = page.last() else {
            return read;
        };
        cursor = LogCursor::after(last);
        read.extend(page);
    }
}

async fn stream_event_ids(nats: &async_nats::Client, stream: &str) -> Vec<Uuid> {
    ics_testing::stream_payloads(nats, stream)
        .await
        .unwrap()
        .iter()
        .map(|payload| {
            let envelope = EventEnvelope::decode(payload.as_slice()).unwrap();
            Uuid::parse_str(&envelope.event_id).unwrap()
        })
        .collect()
}

fn relay(store: &EventStore, nats: &async_nats::Client, prefix: &str, batch: u32) -> Relay {
    Relay::new(
        store.clone(),
        nats.clone(),
        RelayConfig {
            batch_size: batch,
            ..RelayConfig::new(prefix)
        },
    )
}

/// Events with explicit transaction ids 9,998→10,003 and 99,998→100,003, appended in an order
/// unlike their commit order, and a relay batch far smaller than the backlog: every event is
/// published exactly once and in commit order; re-publishing from 0 publishes the log's count;
/// tailing lists them all. Ordered as text, the first batch held only the longer ids and the
/// checkpoint then jumped past the shorter ones.
#[tokio::test]
async fn a_backlog_across_powers_of_ten_is_published_once_in_commit_order() {
    let cluster = PrivatePostgres::start_with_next_transaction_id(Some(1_000_000));
    let database = TestDatabase::create_on(&cluster.server_url()).await;
    let (pool, store) = log_in(&database, "trusts").await;
    let mut connection = pool.acquire().await.unwrap();
    // Longest ids first, so position order disagrees with commit order too.
    for transaction_id in SPANNING_IDS.iter().rev() {
        for _ in 0..3 {
            insert_event(&mut connection, Some(*transaction_id)).await;
        }
    }
    drop(connection);
    let expected = commit_order(&pool).await;
    assert_eq!(expected.len(), 36);

    for batch in [1, 4, 7, 36, 100] {
        let read: Vec<Uuid> = read_all(&store, batch)
            .await
            .iter()
            .map(|event| event.event_id)
            .collect();
        assert_eq!(
            read, expected,
            "tail with batch {batch} lists every event in order"
        );
    }

    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let prefix = unique_token();
    let live = relay(&store, &nats, &prefix, 4);
    live.ensure_stream().await.unwrap();
    let mut published = 0;
    loop {
        let pass = live.publish_pending().await.unwrap();
        if pass == 0 {
            break;
        }
        published += pass;
    }
    assert_eq!(published, 36);
    assert_eq!(
        stream_event_ids(&nats, &live.stream_name()).await,
        expected,
        "the stream holds every event once, in commit order"
    );

    let replay_prefix = unique_token();
    let replay = relay(&store, &nats, &replay_prefix, 5);
    replay.ensure_stream().await.unwrap();
    assert_eq!(replay.republish(0).await.unwrap(), 36);
    assert_eq!(
        stream_event_ids(&nats, &replay.stream_name()).await,
        expected
    );

    ics_testing::delete_streams(&nats, &prefix).await;
    ics_testing::delete_streams(&nats, &replay_prefix).await;
    database.drop_database().await;
}

/// The same crossing with the cluster's own transaction ids: commands appended one transaction
/// each while the counter passes 100,000, with the relay reading in batches of 3.
#[tokio::test]
async fn real_transactions_across_100000_are_all_published() {
    let mut cluster = PrivatePostgres::start();
    let database = TestDatabase::create_on(&cluster.server_url()).await;
    {
        let (pool, _) = log_in(&database, "trusts").await;
        pool.close().await;
    }
    cluster.set_next_transaction_id(99_990);
    let (pool, store) = log_in(&database, "trusts").await;
    for _ in 0..30 {
        let mut connection = pool.acquire().await.unwrap();
        insert_event(&mut connection, None).await;
    }
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT transaction_id::text FROM events ORDER BY global_position")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        ids.first().is_some_and(|id| id.len() == 5) && ids.last().is_some_and(|id| id.len() == 6),
        "the appends cross 99,999 → 100,000: {ids:?}"
    );
    let expected = commit_order(&pool).await;

    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let prefix = unique_token();
    let live = relay(&store, &nats, &prefix, 3);
    live.ensure_stream().await.unwrap();
    while live.publish_pending().await.unwrap() > 0 {}
    assert_eq!(stream_event_ids(&nats, &live.stream_name()).await, expected);
    ics_testing::delete_streams(&nats, &prefix).await;
    database.drop_database().await;
}

/// Deterministic xorshift: every run checks the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Random explicit transaction ids (most near a power of ten), appended in random order and
/// read with random batch sizes: every event is read exactly once, in commit order.
#[tokio::test]
async fn random_transaction_ids_and_batches_read_every_event_exactly_once() {
    let cluster = PrivatePostgres::start_with_next_transaction_id(Some(2_000_000));
    let database = TestDatabase::create_on(&cluster.server_url()).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..25 {
        let (pool, store) = log_in(&database, &format!("case_{case}")).await;
        let mut connection = pool.acquire().await.unwrap();
        let events = 1 + rng.below(120);
        for _ in 0..events {
            let power = [100u64, 1_000, 10_000, 100_000, 1_000_000][rng.below(5) as usize];
            let transaction_id = (power + rng.below(40)).saturating_sub(20).max(3);
            insert_event(&mut connection, Some(transaction_id)).await;
        }
        drop(connection);
        let expected = commit_order(&pool).await;
        let batch = 1 + u32::try_from(rng.below(50)).unwrap();
        let read: Vec<Uuid> = read_all(&store, batch)
            .await
            .iter()
            .map(|event| event.event_id)
            .collect();
        assert_eq!(read, expected, "case {case}: batch {batch}");
        pool.close().await;
    }
    database.drop_database().await;
}

/// Real transactions crossing 100,000, begun, written and committed in random interleavings
/// while a reader pages through the log with random batch sizes: the reader never passes a
/// transaction still in flight, and reads every committed event exactly once.
#[tokio::test]
async fn random_commit_interleavings_never_skip_or_repeat_an_event() {
    let mut cluster = PrivatePostgres::start();
    let database = TestDatabase::create_on(&cluster.server_url()).await;
    let cases = 8;
    for case in 0..cases {
        log_in(&database, &format!("case_{case}"))
            .await
            .0
            .close()
            .await;
    }
    cluster.set_next_transaction_id(99_900);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for case in 0..cases {
        let (pool, store) = log_in(&database, &format!("case_{case}")).await;
        let mut open: HashMap<usize, sqlx::Transaction<'static, sqlx::Postgres>> = HashMap::new();
        let mut uncommitted: HashMap<usize, Vec<Uuid>> = HashMap::new();
        let mut committed: HashSet<Uuid> = HashSet::new();
        let mut read: Vec<Uuid> = Vec::new();
        let mut cursor = LogCursor::default();
        for _ in 0..120 {
            match rng.below(4) {
                0 | 1 => {
                    let slot = rng.below(6) as usize;
                    if let std::collections::hash_map::Entry::Vacant(vacant) = open.entry(slot) {
                        vacant.insert(pool.begin().await.unwrap());
                    }
                    let transaction = open.get_mut(&slot).unwrap();
                    let id = insert_event(transaction, None).await;
                    uncommitted.entry(slot).or_default().push(id);
                }
                2 => {
                    let slots: Vec<usize> = open.keys().copied().collect();
                    if let Some(slot) = slots.get(rng.below(slots.len().max(1) as u64) as usize) {
                        open.remove(slot).unwrap().commit().await.unwrap();
                        committed.extend(uncommitted.remove(slot).unwrap_or_default());
                    }
                }
                _ => {
                    let batch = 1 + u32::try_from(rng.below(8)).unwrap();
                    let page = store.read_committed(cursor, 0, batch).await.unwrap();
                    for event in &page {
                        let next = LogCursor::after(event);
                        assert!(next > cursor, "case {case}: reads move forward");
                        cursor = next;
                        read.push(event.event_id);
                    }
                }
            }
        }
        for (slot, transaction) in open.drain() {
            transaction.commit().await.unwrap();
            committed.extend(uncommitted.remove(&slot).unwrap_or_default());
        }
        loop {
            let page = store.read_committed(cursor, 0, 5).await.unwrap();
            let Some(last) = page.last() else { break };
            cursor = LogCursor::after(last);
            read.extend(page.iter().map(|event| event.event_id));
        }
        let distinct: HashSet<Uuid> = read.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            read.len(),
            "case {case}: no event read twice"
        );
        assert_eq!(
            distinct, committed,
            "case {case}: every committed event read"
        );
        pool.close().await;
    }
    database.drop_database().await;
}
