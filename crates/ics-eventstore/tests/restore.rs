//! A log restored from a backup publishes again (R7/O3): into a fresh cluster whose transaction
//! counter is far below the backup's, and into another database under a new subject prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use async_nats::jetstream;
use ics_eventstore::identity::{Identity, record_identity};
use ics_eventstore::relay::{Relay, RelayConfig, StreamEnd};
use ics_eventstore::{CommandContext, EventStore, ExpectedVersion, NewEvent, StoreError, migrate};
use ics_proto::events::v1::{EventEnvelope, OrganisationRenamed};
use ics_testing::{PrivatePostgres, TestDatabase, unique_token};
use prost::Message;
use uuid::Uuid;

async fn open_log(url: &str) -> (EventStore, Identity) {
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options.options([("search_path", "trusts")]))
        .await
        .unwrap();
    sqlx::query("CREATE SCHEMA IF NOT EXISTS trusts")
        .execute(&pool)
        .await
        .unwrap();
    migrate(&pool, &[]).await.unwrap();
    let identity = record_identity(&pool).await.unwrap();
    (EventStore::new(pool, "trusts"), identity)
}

async fn append_renames(store: &EventStore, count: usize) {
    for _ in 0..count {
        let request_id = Uuid::now_v7().to_string();
        store
            .execute_on_history(
                &CommandContext {
                    request_id: request_id.clone(),
                    principal: "operator".to_string(),
                    ..Default::default()
                },
                "Rename",
                request_id.as_bytes(),
                &format!("organisation-{request_id}"),
                ExpectedVersion::Any,
                |_history| {
                    Ok::<_, StoreError>(vec![NewEvent::encode(
                        "RTP",
                        &OrganisationRenamed {
                            ods_code: "RTP".to_string(),
                            previous_name: String::new(),
                            name: request_id.clone(),
                        },
                    )])
                },
            )
            .await
            .unwrap();
    }
}

async fn log_ids(store: &EventStore) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT event_id FROM events ORDER BY global_position")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

/// Every event id in the stream, in stream order (duplicates kept).
async fn stream_ids(nats: &async_nats::Client, stream: &str) -> Vec<Uuid> {
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

fn relay(store: &EventStore, nats: &async_nats::Client, prefix: &str) -> Relay {
    Relay::new(
        store.clone(),
        nats.clone(),
        RelayConfig {
            batch_size: 7,
            ..RelayConfig::new(prefix)
        },
    )
}

/// Publishes until the stream ends with the log's last event: on the shared server another
/// test's open transaction can briefly hold back what the relay may publish.
async fn publish_everything(relay: &Relay, store: &EventStore) {
    relay.ensure_stream().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        relay.publish_pending().await.unwrap();
        // Read after publishing: the first pass may renumber restored events.
        let last: Uuid = sqlx::query_scalar(
            "SELECT event_id FROM events
             ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        let last_position = store.position_of(last).await.unwrap().unwrap();
        if relay.stream_end().await.unwrap() == StreamEnd::At(last_position) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log was held back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn assert_stream_is_log(stream: &[Uuid], log: &[Uuid], what: &str) {
    let distinct: HashSet<Uuid> = stream.iter().copied().collect();
    assert_eq!(distinct.len(), stream.len(), "{what}: no event twice");
    assert_eq!(
        distinct,
        log.iter().copied().collect::<HashSet<_>>(),
        "{what}: the stream holds the whole log"
    );
}

/// The backup's cluster had handed out half a million transaction ids; the fresh cluster it is
/// restored into has handed out a few hundred. Before, the restored checkpoint lay above every
/// new transaction and nothing was ever published again.
#[tokio::test]
async fn a_backup_restored_into_a_fresh_cluster_publishes_what_the_stream_lacks_and_all_new_events()
{
    let original = PrivatePostgres::start_with_next_transaction_id(Some(500_000));
    let database = TestDatabase::create_on(&original.server_url()).await;
    let (store, identity) = open_log(&database.url).await;
    assert_eq!(identity, Identity::Recorded);
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let prefix = unique_token();
    append_renames(&store, 40).await;
    publish_everything(&relay(&store, &nats, &prefix), &store).await;
    // Committed but not yet published when the backup was taken.
    append_renames(&store, 10).await;
    let dump = std::env::temp_dir().join(format!("ics-dump-{}", unique_token()));
    original.dump(&database.name, &dump);
    store.pool().close().await;

    let fresh = PrivatePostgres::start();
    fresh.restore(&database.name, &dump);
    let _ = std::fs::remove_file(&dump);
    let (restored, identity) = open_log(&fresh.url(&database.name)).await;
    assert_eq!(identity, Identity::Restored);
    append_renames(&restored, 5).await;
    let log = log_ids(&restored).await;
    assert_eq!(log.len(), 55);

    let relay_after_restore = relay(&restored, &nats, &prefix);
    publish_everything(&relay_after_restore, &restored).await;
    let stream = stream_ids(&nats, &relay_after_restore.stream_name()).await;
    assert_stream_is_log(&stream, &log, "same stream after the restore");

    // And the relay keeps publishing afterwards.
    append_renames(&restored, 3).await;
    publish_everything(&relay_after_restore, &restored).await;
    let stream = stream_ids(&nats, &relay_after_restore.stream_name()).await;
    assert_stream_is_log(
        &stream,
        &log_ids(&restored).await,
        "new events after the restore",
    );

    // A new subject prefix (fresh stream) gets the whole log.
    let new_prefix = unique_token();
    let relay_new_prefix = relay(&restored, &nats, &new_prefix);
    publish_everything(&relay_new_prefix, &restored).await;
    let stream = stream_ids(&nats, &relay_new_prefix.stream_name()).await;
    assert_stream_is_log(&stream, &log_ids(&restored).await, "new subject prefix");

    ics_testing::delete_streams(&nats, &prefix).await;
    ics_testing::delete_streams(&nats, &new_prefix).await;
}

/// Restored on the same cluster into another database, under a new subject prefix: its new
/// stream ends holding the whole log, although the restored checkpoint says it was published.
#[tokio::test]
async fn a_backup_restored_beside_the_original_under_a_new_prefix_fills_its_new_stream() {
    let cluster = PrivatePostgres::start();
    let database = TestDatabase::create_on(&cluster.server_url()).await;
    let (store, _) = open_log(&database.url).await;
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let prefix = unique_token();
    append_renames(&store, 30).await;
    publish_everything(&relay(&store, &nats, &prefix), &store).await;
    let dump = std::env::temp_dir().join(format!("ics-dump-{}", unique_token()));
    cluster.dump(&database.name, &dump);

    let copy = format!("{}_copy", database.name);
    cluster.restore(&copy, &dump);
    let _ = std::fs::remove_file(&dump);
    let (restored, identity) = open_log(&cluster.url(&copy)).await;
    assert_eq!(identity, Identity::Restored);
    let new_prefix = unique_token();
    let relay_copy = relay(&restored, &nats, &new_prefix);
    publish_everything(&relay_copy, &restored).await;
    append_renames(&restored, 4).await;
    publish_everything(&relay_copy, &restored).await;
    let stream = stream_ids(&nats, &relay_copy.stream_name()).await;
    assert_stream_is_log(&stream, &log_ids(&restored).await, "restored copy");

    // The original, untouched, still relays to its own stream without republishing.
    let (original, identity) = open_log(&database.url).await;
    assert_eq!(identity, Identity::Unchanged);
    append_renames(&original, 2).await;
    let relay_original = relay(&original, &nats, &prefix);
    publish_everything(&relay_original, &original).await;
    let stream = stream_ids(&nats, &relay_original.stream_name()).await;
    assert_stream_is_log(&stream, &log_ids(&original).await, "original");

    ics_testing::delete_streams(&nats, &prefix).await;
    ics_testing::delete_streams(&nats, &new_prefix).await;
}

/// A stream that lost its messages (re-created empty) while the checkpoint says they were
/// published gets the whole log again rather than only what comes next.
#[tokio::test]
async fn a_stream_that_lost_its_messages_is_filled_again() {
    let database = TestDatabase::create().await;
    let (store, _) = open_log(&database.url).await;
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let prefix = unique_token();
    append_renames(&store, 12).await;
    let live = relay(&store, &nats, &prefix);
    publish_everything(&live, &store).await;
    jetstream::new(nats.clone())
        .delete_stream(live.stream_name())
        .await
        .unwrap();
    append_renames(&store, 3).await;
    publish_everything(&live, &store).await;
    let stream = stream_ids(&nats, &live.stream_name()).await;
    assert_stream_is_log(&stream, &log_ids(&store).await, "re-created stream");
    ics_testing::delete_streams(&nats, &prefix).await;
    database.drop_database().await;
}
