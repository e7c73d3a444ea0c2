//! Recognising a schema restored from a backup taken elsewhere.
//!
//! A schema records the PostgreSQL cluster (its system identifier) and database it lives in.
//! When a backup is restored into a fresh cluster or another database, the recorded identity no
//! longer matches. Two things are then wrong, and both are put right rather than trusted:
//! - the restored events carry the old cluster's transaction ids, which may lie above every id
//!   the new cluster will hand out, so a commit-order reader would never see them or would order
//!   new events before them: the relay reconciles them with its stream (see
//!   [`crate::relay::Relay`]) before it publishes anything;
//! - projections restored with the schema may be older than what their durable consumers have
//!   acknowledged: the service starts their consumers again from the beginning of the stream
//!   (applied versions make the replay harmless).

use sqlx::PgPool;

use crate::StoreError;

/// What [`record_identity`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The schema had no identity yet: a new schema, or one from before identities existed.
    Recorded,
    /// The schema lives where it did.
    Unchanged,
    /// The schema was restored from a backup taken in another cluster or database.
    Restored,
}

/// Records the cluster and database the pool's schema lives in, and says whether it changed.
/// On a change, the events already in the log are marked as restored, for the relay to
/// reconcile. Concurrent starts of several replicas agree: the row is locked.
pub async fn record_identity(pool: &PgPool) -> Result<Identity, StoreError> {
    let mut transaction = pool.begin().await?;
    let (system_identifier, database_oid): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT system_identifier FROM pg_control_system()),
                (SELECT oid::bigint FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut *transaction)
    .await?;
    let recorded: Option<(i64, i64)> =
        sqlx::query_as("SELECT system_identifier, database_oid FROM log_identity FOR UPDATE")
            .fetch_optional(&mut *transaction)
            .await?;
    let identity = match recorded {
        None => {
            sqlx::query(
                "INSERT INTO log_identity (system_identifier, database_oid) VALUES ($1, $2)",
            )
            .bind(system_identifier)
            .bind(database_oid)
            .execute(&mut *transaction)
            .await?;
            Identity::Recorded
        }
        Some(recorded) if recorded == (system_identifier, database_oid) => Identity::Unchanged,
        Some(_) => {
            // Every event present now came from the backup: no command has run here yet, since
            // each service records its identity before it serves.
            sqlx::query(
                "UPDATE log_identity
                 SET system_identifier = $1, database_oid = $2, recorded_at = now(),
                     restored_below = (SELECT coalesce(max(global_position), 0) + 1 FROM events)",
            )
            .bind(system_identifier)
            .bind(database_oid)
            .execute(&mut *transaction)
            .await?;
            Identity::Restored
        }
    };
    transaction.commit().await?;
    if identity == Identity::Restored {
        tracing::warn!(
            system_identifier,
            database_oid,
            "schema restored from a backup taken elsewhere; reconciling its log and projections"
        );
    }
    Ok(identity)
}
