//! The reporting schema as its migrations leave it, where a column's storage matters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ics_eventstore::migrate;
use ics_testing::TestDatabase;

/// A series' record, rewritten whenever one of its observations arrives, is compressed with
/// lz4: pglz cost bulk ingest more of the database's time than the writes themselves.
#[tokio::test]
async fn series_records_are_compressed_with_lz4() {
    let database = TestDatabase::create().await;
    let pool = database.pool("reporting").await;
    let migrations = [ics_projection::MIGRATIONS, ics_reporting::MIGRATIONS].concat();
    migrate(&pool, &migrations).await.unwrap();
    // Applied twice, as every start applies them: the second finds nothing to do.
    migrate(&pool, &migrations).await.unwrap();
    let compression: String = sqlx::query_scalar(
        "SELECT attcompression::text FROM pg_attribute
         WHERE attrelid = 'measure_series'::regclass AND attname = 'record'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(compression, "l", "lz4");
}
