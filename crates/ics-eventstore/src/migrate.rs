use sqlx::PgPool;

use crate::StoreError;

/// Migrations of the event store itself, applied to every service's schema.
const EVENT_STORE_MIGRATIONS: &[(&str, &str)] = &[
    (
        "eventstore_0001",
        include_str!("../migrations/0001_event_store.sql"),
    ),
    (
        "eventstore_0002_log_identity",
        include_str!("../migrations/0002_log_identity.sql"),
    ),
    (
        "eventstore_0003_payload_compression",
        include_str!("../migrations/0003_payload_compression.sql"),
    ),
];

/// Applies the event store's migrations and then the service's own, each once, in order.
///
/// Names are global within the schema, so a service's migrations need their own prefix.
/// An advisory lock makes concurrent starts of several replicas safe.
pub async fn migrate(pool: &PgPool, service_migrations: &[(&str, &str)]) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await?;
    // The lock key is per schema so services sharing a database do not wait for each other.
    sqlx::query("SELECT pg_advisory_lock(hashtext(current_schema()))")
        .execute(&mut *connection)
        .await?;
    let outcome = apply_all(&mut connection, service_migrations).await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock(hashtext(current_schema()))")
        .execute(&mut *connection)
        .await;
    outcome?;
    unlock?;
    Ok(())
}

async fn apply_all(
    connection: &mut sqlx::PgConnection,
    service_migrations: &[(&str, &str)],
) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             name text PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .execute(&mut *connection)
    .await?;
    for (name, sql) in EVENT_STORE_MIGRATIONS.iter().chain(service_migrations) {
        let already_applied: Option<String> =
            sqlx::query_scalar("SELECT name FROM schema_migrations WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *connection)
                .await?;
        if already_applied.is_some() {
            continue;
        }
        let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
        sqlx::raw_sql(sql).execute(&mut *transaction).await?;
        sqlx::query("INSERT INTO schema_migrations (name) VALUES ($1)")
            .bind(name)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        tracing::info!(migration = name, "migration applied");
    }
    Ok(())
}
