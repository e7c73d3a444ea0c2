//! Follow-ups come due by themselves.
//!
//! A projection of the service's own events keeps, per reported-out workshop, when each
//! follow-up falls due. The scheduler looks for due follow-ups that were neither recorded nor
//! missed and records `FollowUpMissed` through the ordinary command path, with a request id
//! derived from the workshop and checkpoint: however many replicas run the scheduler, and
//! however often it restarts, each miss is recorded exactly once (a second attempt replays the
//! first result or decides nothing).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::BoxFuture;
use ics_eventstore::{CommandContext, EventStore, ExpectedVersion};
use ics_projection::{Projection, ProjectionError, delete_all};
use ics_proto::EventName;
use ics_proto::date::to_naive;
use ics_proto::events::v1::{
    EventEnvelope, FollowUpCheckpoint, FollowUpMissed, FollowUpRecorded, ReportOutDelivered,
    WorkshopCancelled, WorkshopClosed, WorkshopHeld,
};
use ics_service_kit::error::ServiceError;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::workshop::{self, CHECKPOINTS, Workshop};

pub const FOLLOW_UPS: &str = "follow_ups";

/// The principal label under which the scheduler records misses.
pub const SCHEDULER_PRINCIPAL: &str = "system:follow-up-scheduler";

/// The current time, replaceable in tests.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says what it is told.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(now: DateTime<Utc>) -> Arc<Self> {
        Arc::new(FixedClock(Mutex::new(now)))
    }

    pub fn set(&self, now: DateTime<Utc>) {
        if let Ok(mut current) = self.0.lock() {
            *current = now;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|now| *now).unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub struct FollowUpProjection;

use ics_projection::decode_payload as decode;

impl Projection for FollowUpProjection {
    fn name(&self) -> &str {
        FOLLOW_UPS
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
        Box::pin(delete_all(
            connection,
            &["follow_up_schedule", "follow_up_workshops"],
        ))
    }
}

async fn set_state(
    connection: &mut PgConnection,
    workshop_id: &str,
    checkpoint: i32,
    state: &str,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "UPDATE follow_up_schedule SET state = $3 WHERE workshop_id = $1 AND checkpoint = $2",
    )
    .bind(workshop_id)
    .bind(checkpoint)
    .bind(state)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

async fn apply(
    connection: &mut PgConnection,
    event: &EventEnvelope,
) -> Result<(), ProjectionError> {
    let event_type = event.event_type.as_str();
    if event_type == WorkshopHeld::EVENT_TYPE {
        let held: WorkshopHeld = decode(event)?;
        sqlx::query(
            "INSERT INTO follow_up_workshops (workshop_id, ods_code, held_to) VALUES ($1, $2, $3)
             ON CONFLICT (workshop_id) DO UPDATE SET held_to = excluded.held_to",
        )
        .bind(&held.workshop_id)
        .bind(&held.ods_code)
        .bind(held.held_to.as_ref().and_then(to_naive))
        .execute(&mut *connection)
        .await?;
    } else if event_type == ReportOutDelivered::EVENT_TYPE {
        let delivered: ReportOutDelivered = decode(event)?;
        let held_to: Option<NaiveDate> =
            sqlx::query_scalar("SELECT held_to FROM follow_up_workshops WHERE workshop_id = $1")
                .bind(&delivered.workshop_id)
                .fetch_optional(&mut *connection)
                .await?
                .flatten();
        let Some(held_to) = held_to else {
            return Err(ProjectionError::Rejected(format!(
                "report-out of workshop {} before it was held",
                delivered.workshop_id
            )));
        };
        let reported_at = event
            .recorded_at
            .and_then(|at| {
                DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))
            })
            .unwrap_or_else(Utc::now);
        for checkpoint in CHECKPOINTS {
            sqlx::query(
                "INSERT INTO follow_up_schedule (workshop_id, checkpoint, due_on, reported_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&delivered.workshop_id)
            .bind(checkpoint as i32)
            .bind(workshop::due_on(held_to, checkpoint))
            .bind(reported_at)
            .execute(&mut *connection)
            .await?;
        }
    } else if event_type == FollowUpRecorded::EVENT_TYPE {
        let recorded: FollowUpRecorded = decode(event)?;
        set_state(
            connection,
            &recorded.workshop_id,
            recorded.checkpoint,
            "recorded",
        )
        .await?;
    } else if event_type == FollowUpMissed::EVENT_TYPE {
        let missed: FollowUpMissed = decode(event)?;
        set_state(connection, &missed.workshop_id, missed.checkpoint, "missed").await?;
    } else if event_type == WorkshopCancelled::EVENT_TYPE
        || event_type == WorkshopClosed::EVENT_TYPE
    {
        sqlx::query("DELETE FROM follow_up_schedule WHERE workshop_id = $1 AND state = 'pending'")
            .bind(event.stream_id.trim_start_matches("workshop-"))
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Records every pending follow-up that is overdue on `today` (see [`workshop::mark_missed`]) as
/// missed. Returns how many misses this call recorded (a concurrent replica may record others).
pub async fn record_missed_follow_ups(
    store: &EventStore,
    pool: &PgPool,
    now: DateTime<Utc>,
    grace_days: u32,
) -> Result<usize, ServiceError> {
    let due: Vec<(String, i32)> = sqlx::query_as(
        "SELECT workshop_id, checkpoint FROM follow_up_schedule
         WHERE state = 'pending'
           AND due_on + $2::integer < $1::date
           AND reported_at + make_interval(days => $2::integer) <= $1
         ORDER BY due_on LIMIT 1000",
    )
    .bind(now)
    .bind(i32::try_from(grace_days).unwrap_or(i32::MAX))
    .fetch_all(pool)
    .await?;
    let mut recorded = 0;
    for (workshop_id, checkpoint) in due {
        let checkpoint =
            FollowUpCheckpoint::try_from(checkpoint).unwrap_or(FollowUpCheckpoint::Unspecified);
        let request_id = format!("follow-up-missed:{workshop_id}:{}", checkpoint as i32);
        let context = CommandContext {
            request_id: request_id.clone(),
            principal: SCHEDULER_PRINCIPAL.to_string(),
            correlation_id: request_id.clone(),
            ..Default::default()
        };
        let outcome = store
            .execute(
                &context,
                "MarkFollowUpMissed",
                request_id.as_bytes(),
                &workshop::stream_id(&workshop_id),
                ExpectedVersion::Any,
                Workshop::folding(),
                |state| workshop::mark_missed(state, &workshop_id, checkpoint, now, grace_days),
            )
            .await?;
        if !outcome.replayed && !outcome.event_ids.is_empty() {
            recorded += 1;
            tracing::info!(workshop = %workshop_id, checkpoint = checkpoint.as_str_name(), "follow-up recorded as missed");
        }
    }
    Ok(recorded)
}

/// Runs [`record_missed_follow_ups`] every `interval` until `shutdown`.
pub async fn run_scheduler(
    store: EventStore,
    pool: PgPool,
    clock: Arc<dyn Clock>,
    interval: Duration,
    grace_days: u32,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(error) = record_missed_follow_ups(&store, &pool, clock.now(), grace_days).await {
            tracing::warn!(%error, "follow-up scheduler pass failed; will retry");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
