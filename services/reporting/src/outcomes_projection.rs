//! The outcomes projection: each workshop's trust, value stream, status, dates and target
//! sheet with its report-out and follow-up values, fed by the workshops service's stream.

use futures_util::future::BoxFuture;
use ics_projection::{Projection, ProjectionError, delete_all};
use ics_proto::EventName;
use ics_proto::date::to_naive;
use ics_proto::events::v1::{
    EventEnvelope, FollowUpCheckpoint, FollowUpMissed, FollowUpRecorded, MetricValue,
    ReportOutDelivered, WorkshopCancelled, WorkshopChartered, WorkshopClosed, WorkshopHeld,
    WorkshopScheduled,
};
use ics_proto::workshops::v1::{FollowUpState, WorkshopStatus};
use sqlx::PgConnection;

use crate::projection::{date, decode};

/// The projection's name: its checkpoints, consumer and change channel.
pub const OUTCOMES: &str = "outcomes";

/// Tables the projection owns (emptied on rebuild).
const TABLES: &[&str] = &[
    "workshops",
    "workshop_metrics",
    "workshop_follow_ups",
    "workshop_follow_up_values",
];

#[derive(Debug, Default)]
pub struct OutcomesProjection;

impl Projection for OutcomesProjection {
    fn name(&self) -> &str {
        OUTCOMES
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply(connection, event))
    }

    fn reset<'a>(
        &'a self,
        connection: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(delete_all(connection, TABLES))
    }
}

fn checkpoint(value: i32) -> Result<i32, ProjectionError> {
    match FollowUpCheckpoint::try_from(value) {
        Ok(FollowUpCheckpoint::Unspecified) | Err(_) => Err(ProjectionError::Rejected(format!(
            "follow-up checkpoint {value} is not a checkpoint"
        ))),
        Ok(checkpoint) => Ok(checkpoint as i32),
    }
}

async fn apply(
    connection: &mut PgConnection,
    event: &EventEnvelope,
) -> Result<(), ProjectionError> {
    let event_type = event.event_type.as_str();
    if event_type == WorkshopChartered::EVENT_TYPE {
        let chartered: WorkshopChartered = decode(event)?;
        sqlx::query(
            "INSERT INTO workshops (workshop_id, ods_code, value_stream_id, kind, title, status,
                 preparation_starts_on)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&chartered.workshop_id)
        .bind(&chartered.ods_code)
        .bind(&chartered.value_stream_id)
        .bind(chartered.kind)
        .bind(&chartered.title)
        .bind(WorkshopStatus::Chartered as i32)
        .bind(chartered.preparation_starts_on.as_ref().and_then(to_naive))
        .execute(&mut *connection)
        .await?;
        for (position, metric) in chartered.target_sheet.iter().enumerate() {
            sqlx::query(
                "INSERT INTO workshop_metrics (workshop_id, metric_id, position, name, kind, unit,
                     baseline, target)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(&chartered.workshop_id)
            .bind(&metric.metric_id)
            .bind(i32::try_from(position).unwrap_or(i32::MAX))
            .bind(&metric.name)
            .bind(metric.kind)
            .bind(metric.unit)
            .bind(metric.baseline)
            .bind(metric.target)
            .execute(&mut *connection)
            .await?;
        }
    } else if event_type == WorkshopScheduled::EVENT_TYPE {
        let scheduled: WorkshopScheduled = decode(event)?;
        sqlx::query(
            "UPDATE workshops SET scheduled_from = $2, scheduled_to = $3, status = $4
             WHERE workshop_id = $1",
        )
        .bind(&scheduled.workshop_id)
        .bind(date("starts_on", scheduled.starts_on.as_ref())?)
        .bind(date("ends_on", scheduled.ends_on.as_ref())?)
        .bind(WorkshopStatus::Scheduled as i32)
        .execute(&mut *connection)
        .await?;
    } else if event_type == WorkshopHeld::EVENT_TYPE {
        let held: WorkshopHeld = decode(event)?;
        sqlx::query(
            "UPDATE workshops SET held_from = $2, held_to = $3, status = $4 WHERE workshop_id = $1",
        )
        .bind(&held.workshop_id)
        .bind(date("held_from", held.held_from.as_ref())?)
        .bind(date("held_to", held.held_to.as_ref())?)
        .bind(WorkshopStatus::Held as i32)
        .execute(&mut *connection)
        .await?;
    } else if event_type == ReportOutDelivered::EVENT_TYPE {
        let delivered: ReportOutDelivered = decode(event)?;
        sqlx::query(
            "UPDATE workshops SET reported_out_on = $2, status = $3 WHERE workshop_id = $1",
        )
        .bind(&delivered.workshop_id)
        .bind(date("delivered_on", delivered.delivered_on.as_ref())?)
        .bind(WorkshopStatus::ReportedOut as i32)
        .execute(&mut *connection)
        .await?;
        let (metric_ids, values) = columns(&delivered.after);
        sqlx::query(
            "UPDATE workshop_metrics m SET after_value = v.value
             FROM unnest($2::text[], $3::float8[]) AS v(metric_id, value)
             WHERE m.workshop_id = $1 AND m.metric_id = v.metric_id",
        )
        .bind(&delivered.workshop_id)
        .bind(&metric_ids)
        .bind(&values)
        .execute(&mut *connection)
        .await?;
    } else if event_type == FollowUpRecorded::EVENT_TYPE {
        let recorded: FollowUpRecorded = decode(event)?;
        let checkpoint = checkpoint(recorded.checkpoint)?;
        // A measurement that arrives after the follow-up was declared missed replaces the miss.
        sqlx::query(
            "INSERT INTO workshop_follow_ups (workshop_id, checkpoint, state, measured_on)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (workshop_id, checkpoint) DO UPDATE
             SET state = excluded.state, measured_on = excluded.measured_on",
        )
        .bind(&recorded.workshop_id)
        .bind(checkpoint)
        .bind(FollowUpState::Recorded as i32)
        .bind(date("measured_on", recorded.measured_on.as_ref())?)
        .execute(&mut *connection)
        .await?;
        sqlx::query(
            "DELETE FROM workshop_follow_up_values WHERE workshop_id = $1 AND checkpoint = $2",
        )
        .bind(&recorded.workshop_id)
        .bind(checkpoint)
        .execute(&mut *connection)
        .await?;
        let (metric_ids, values) = columns(&recorded.values);
        sqlx::query(
            "INSERT INTO workshop_follow_up_values (workshop_id, checkpoint, metric_id, value)
             SELECT $1, $2, v.metric_id, v.value
             FROM unnest($3::text[], $4::float8[]) AS v(metric_id, value)
             ON CONFLICT DO NOTHING",
        )
        .bind(&recorded.workshop_id)
        .bind(checkpoint)
        .bind(&metric_ids)
        .bind(&values)
        .execute(&mut *connection)
        .await?;
    } else if event_type == FollowUpMissed::EVENT_TYPE {
        let missed: FollowUpMissed = decode(event)?;
        // A follow-up already recorded stays recorded: the measurement is the better fact.
        sqlx::query(
            "INSERT INTO workshop_follow_ups (workshop_id, checkpoint, state, due_on)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&missed.workshop_id)
        .bind(checkpoint(missed.checkpoint)?)
        .bind(FollowUpState::Missed as i32)
        .bind(missed.due_on.as_ref().and_then(to_naive))
        .execute(&mut *connection)
        .await?;
    } else if event_type == WorkshopCancelled::EVENT_TYPE {
        let cancelled: WorkshopCancelled = decode(event)?;
        sqlx::query("UPDATE workshops SET cancelled_on = $2, status = $3 WHERE workshop_id = $1")
            .bind(&cancelled.workshop_id)
            .bind(date("cancelled_on", cancelled.cancelled_on.as_ref())?)
            .bind(WorkshopStatus::Cancelled as i32)
            .execute(&mut *connection)
            .await?;
    } else if event_type == WorkshopClosed::EVENT_TYPE {
        let closed: WorkshopClosed = decode(event)?;
        sqlx::query("UPDATE workshops SET closed_on = $2, status = $3 WHERE workshop_id = $1")
            .bind(&closed.workshop_id)
            .bind(date("closed_on", closed.closed_on.as_ref())?)
            .bind(WorkshopStatus::Closed as i32)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Metric ids and values as two arrays, for one `unnest` round trip per event.
fn columns(values: &[MetricValue]) -> (Vec<String>, Vec<f64>) {
    values
        .iter()
        .map(|value| (value.metric_id.clone(), value.value))
        .unzip()
}
