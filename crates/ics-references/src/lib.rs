//! A service's own read model of the organisations and value streams its commands refer to,
//! built from the trusts service's events, so references are checked without calling it. It survives restarts (it lives in Postgres) and
//! catches up after the trusts service or NATS was away (a durable consumer).

use futures_util::future::BoxFuture;
use ics_projection::{Projection, ProjectionError, delete_all};
use ics_proto::EventName;
use ics_proto::events::v1::{
    EventEnvelope, OrganisationKind, OrganisationRegistered, ValueStreamClosed, ValueStreamDefined,
    ValueStreamStatus, ValueStreamStatusChanged,
};
use ics_service_kit::error::ServiceError;
use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};

/// The workshops service's projection name (kept from before the read model was shared).
pub const REFERENCES: &str = "references";

/// The read model's tables; each service runs it among its own migrations.
pub const MIGRATION: &str = include_str!("references.sql");

/// The read model's projection. Its name keys its checkpoint and names its durable consumer on
/// the trusts stream, which every service consuming that stream shares: each service gives its
/// own name, or two services would split one consumer's messages between them.
#[derive(Debug)]
pub struct ReferencesProjection {
    name: &'static str,
}

impl ReferencesProjection {
    pub fn named(name: &'static str) -> Self {
        ReferencesProjection { name }
    }
}

use ics_projection::decode_payload as decode;

impl Projection for ReferencesProjection {
    fn name(&self) -> &str {
        self.name
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let event_type = event.event_type.as_str();
            if event_type == OrganisationRegistered::EVENT_TYPE {
                let registered: OrganisationRegistered = decode(event)?;
                sqlx::query(
                    "INSERT INTO reference_organisations (ods_code, kind) VALUES ($1, $2)
                     ON CONFLICT (ods_code) DO UPDATE SET kind = excluded.kind",
                )
                .bind(&registered.ods_code)
                .bind(registered.kind)
                .execute(&mut *connection)
                .await?;
            } else if event_type == ValueStreamDefined::EVENT_TYPE {
                let defined: ValueStreamDefined = decode(event)?;
                sqlx::query(
                    "INSERT INTO reference_value_streams (value_stream_id, ods_code, status)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(&defined.value_stream_id)
                .bind(&defined.ods_code)
                .bind(defined.status)
                .execute(&mut *connection)
                .await?;
            } else if event_type == ValueStreamStatusChanged::EVENT_TYPE {
                let changed: ValueStreamStatusChanged = decode(event)?;
                set_status(connection, &changed.value_stream_id, changed.status).await?;
            } else if event_type == ValueStreamClosed::EVENT_TYPE {
                let closed: ValueStreamClosed = decode(event)?;
                set_status(
                    connection,
                    &closed.value_stream_id,
                    ValueStreamStatus::Closed as i32,
                )
                .await?;
            }
            Ok(())
        })
    }

    fn reset<'a>(
        &'a self,
        connection: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(delete_all(
            connection,
            &["reference_organisations", "reference_value_streams"],
        ))
    }
}

async fn set_status(
    connection: &mut PgConnection,
    value_stream_id: &str,
    status: i32,
) -> Result<(), ProjectionError> {
    sqlx::query("UPDATE reference_value_streams SET status = $2 WHERE value_stream_id = $1")
        .bind(value_stream_id)
        .bind(status)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Checks that a workshop may be chartered for this trust and value stream.
pub async fn check_charter(
    pool: &PgPool,
    ods_code: &str,
    value_stream_id: &str,
) -> Result<(), ServiceError> {
    let kind: Option<i32> =
        sqlx::query_scalar("SELECT kind FROM reference_organisations WHERE ods_code = $1")
            .bind(ods_code)
            .fetch_optional(pool)
            .await?;
    let Some(kind) = kind else {
        return Err(ServiceError::NotFound {
            resource: format!("trust {ods_code}"),
        });
    };
    let is_trust = matches!(
        OrganisationKind::try_from(kind),
        Ok(OrganisationKind::Trust | OrganisationKind::FoundationTrust)
    );
    if !is_trust {
        return Err(ServiceError::invalid_field(
            "ods_code",
            format!("{ods_code} is not a trust"),
        ));
    }
    let value_stream: Option<(String, i32)> = sqlx::query_as(
        "SELECT ods_code, status FROM reference_value_streams WHERE value_stream_id = $1",
    )
    .bind(value_stream_id)
    .fetch_optional(pool)
    .await?;
    let Some((owner, status)) = value_stream else {
        return Err(ServiceError::NotFound {
            resource: format!("value stream {value_stream_id}"),
        });
    };
    if owner != ods_code {
        return Err(ServiceError::invalid_field(
            "value_stream_id",
            format!("belongs to {owner}, not {ods_code}"),
        ));
    }
    if status == ValueStreamStatus::Closed as i32 {
        return Err(ServiceError::FailedPrecondition(format!(
            "value stream {value_stream_id} is closed; workshops need an open value stream"
        )));
    }
    Ok(())
}

/// Every organisation known so far, by ODS code, with its kind.
pub async fn organisations(
    pool: &PgPool,
) -> Result<HashMap<String, OrganisationKind>, ServiceError> {
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT ods_code, kind FROM reference_organisations")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(ods_code, kind)| {
            (
                ods_code,
                OrganisationKind::try_from(kind).unwrap_or(OrganisationKind::Unspecified),
            )
        })
        .collect())
}

/// The trust a value stream belongs to, if the value stream is known.
pub async fn value_stream_owner(
    pool: &PgPool,
    value_stream_id: &str,
) -> Result<Option<String>, ServiceError> {
    Ok(sqlx::query_scalar(
        "SELECT ods_code FROM reference_value_streams WHERE value_stream_id = $1",
    )
    .bind(value_stream_id)
    .fetch_optional(pool)
    .await?)
}

/// Whether an organisation kind is a provider trust.
pub fn is_trust(kind: OrganisationKind) -> bool {
    matches!(
        kind,
        OrganisationKind::Trust | OrganisationKind::FoundationTrust
    )
}
