//! The service's own read model of the organisations and value streams a workshop refers to,
//! built from the trusts service's events. It survives restarts (it lives in Postgres) and
//! catches up after the trusts service or NATS was away (a durable consumer).

use futures_util::future::BoxFuture;
use ics_projection::{Projection, ProjectionError, delete_all};
use ics_proto::EventName;
use ics_proto::events::v1::{
    EventEnvelope, OrganisationKind, OrganisationRegistered, ValueStreamClosed, ValueStreamDefined,
    ValueStreamStatus, ValueStreamStatusChanged,
};
use ics_service_kit::error::ServiceError;
use sqlx::{PgConnection, PgPool};

pub const REFERENCES: &str = "references";

#[derive(Debug, Default)]
pub struct ReferencesProjection;

use ics_projection::decode_payload as decode;

impl Projection for ReferencesProjection {
    fn name(&self) -> &str {
        REFERENCES
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
