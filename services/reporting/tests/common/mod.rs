//! What the reporting service's projection tests share: events as a relay delivers them, a
//! database migrated for the reporting service, a projection's tables read back as rows, and a
//! projection rebuilt from events in batches of one size.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use ics_eventstore::migrate;
use ics_projection::Projection;
use ics_proto::EventName;
use ics_proto::events::v1::EventEnvelope;
use ics_testing::TestDatabase;
use prost::Message;
use sqlx::{PgConnection, PgPool};

/// `event` as the relay of `source_service` delivers it, at `version` of `stream_id`.
pub fn envelope<M: Message + EventName>(
    source_service: &str,
    stream_id: &str,
    version: u64,
    organisation: &str,
    event: &M,
) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        source_service: source_service.into(),
        stream_id: stream_id.into(),
        stream_version: version,
        event_type: M::EVENT_TYPE.into(),
        schema_version: 1,
        payload: event.encode_to_vec(),
        organisation: organisation.into(),
        ..Default::default()
    }
}

/// The reporting service's schema, its projections' included, in a database of its own.
pub async fn reporting_pool(database: &TestDatabase) -> PgPool {
    let pool = database.pool("reporting").await;
    migrate(
        &pool,
        &[ics_projection::MIGRATIONS, ics_reporting::MIGRATIONS].concat(),
    )
    .await
    .expect("the reporting schema migrates");
    pool
}

/// Every row each query returns (one text column each), in the order of the queries.
pub async fn rows(pool: &PgPool, queries: &[&str]) -> Vec<String> {
    let mut rows = Vec::new();
    for query in queries {
        let table: Vec<String> = sqlx::query_scalar(query)
            .fetch_all(pool)
            .await
            .expect("the table reads");
        rows.extend(table);
    }
    rows
}

/// Resets `projection` and applies `events` to it in batches of `size`, so that runs of
/// events are cut at batch ends as a runner would cut them.
pub async fn rebuild_in_batches(
    projection: &impl Projection,
    connection: &mut PgConnection,
    events: &[EventEnvelope],
    size: usize,
) {
    projection
        .reset(&mut *connection)
        .await
        .expect("the projection resets");
    for batch in events.chunks(size) {
        projection
            .apply_batch(&mut *connection, batch)
            .await
            .expect("the batch applies");
    }
}
