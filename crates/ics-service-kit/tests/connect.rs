//! Startup connections against the machine's Postgres (127.0.0.1:5432) and NATS (127.0.0.1:4222).

use std::time::{SystemTime, UNIX_EPOCH};

use ics_service_kit::config::{DatabaseConfig, NatsConfig};
use ics_service_kit::{connect_nats, connect_postgres};
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;

const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";

#[tokio::test]
async fn postgres_database_and_schema_are_created_and_become_the_search_path() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let database = format!("ics_kit_test_{}_{nanos}", std::process::id());
    let database_url = format!("{SERVER_URL}/{database}");
    let shutdown = CancellationToken::new();

    let pool = connect_postgres(
        &DatabaseConfig::with_url(&database_url),
        "kit_schema",
        4,
        &shutdown,
    )
    .await
    .expect("database and schema are created");
    let (current_schema,): (String,) = sqlx::query_as("SELECT current_schema()")
        .fetch_one(&pool)
        .await
        .expect("query through the pool");
    assert_eq!(current_schema, "kit_schema");
    // Statements are never JIT-compiled (see connect_postgres).
    let (jit,): (String,) = sqlx::query_as("SHOW jit")
        .fetch_one(&pool)
        .await
        .expect("query through the pool");
    assert_eq!(jit, "off");

    // A second service starting against the same database finds everything in place.
    let again = connect_postgres(
        &DatabaseConfig::with_url(&database_url),
        "kit_schema",
        4,
        &shutdown,
    )
    .await
    .expect("connecting again is idempotent");
    again.close().await;
    pool.close().await;

    let mut maintenance = sqlx::PgConnection::connect(&format!("{SERVER_URL}/postgres"))
        .await
        .expect("maintenance connection");
    sqlx::raw_sql(&format!("DROP DATABASE \"{database}\""))
        .execute(&mut maintenance)
        .await
        .expect("drop the test database");
}

#[tokio::test]
async fn invalid_schema_names_are_refused_before_connecting() {
    let error = connect_postgres(
        &DatabaseConfig::with_url("postgres://postgres@127.0.0.1:5432/ics"),
        "trusts; drop table events",
        4,
        &CancellationToken::new(),
    )
    .await
    .expect_err("schema name is refused");
    assert!(error.to_string().contains("invalid schema name"));
}

#[tokio::test]
async fn nats_connects_and_round_trips() {
    let client = connect_nats(&NatsConfig::with_url("nats://127.0.0.1:4222"), "kit_test")
        .await
        .expect("nats is running");
    client.flush().await.expect("flush reaches the server");
    assert!(client.server_info().jetstream, "nats runs with jetstream");
}

#[tokio::test]
async fn services_starting_together_both_get_the_new_database() {
    let shutdown = CancellationToken::new();
    // Several rounds: the creation race is only hit when both arrive at the same moment.
    for round in 0..5 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let database = format!("ics_kit_test_{}_{nanos}_{round}", std::process::id());
        let database_url = format!("{SERVER_URL}/{database}");
        let config = DatabaseConfig::with_url(&database_url);
        let (trusts, reporting) = tokio::join!(
            connect_postgres(&config, "trusts", 4, &shutdown),
            connect_postgres(&config, "reporting", 4, &shutdown),
        );
        trusts.expect("trusts connects").close().await;
        reporting.expect("reporting connects").close().await;
        let mut maintenance = sqlx::PgConnection::connect(&format!("{SERVER_URL}/postgres"))
            .await
            .expect("maintenance connection");
        sqlx::raw_sql(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
            .execute(&mut maintenance)
            .await
            .expect("drop the test database");
    }
}
