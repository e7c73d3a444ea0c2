//! ListWorkshops' read model: each workshop as GetWorkshop shows it, kept by the
//! `workshop_list` projection of the service's own stream and read a trust's page at a time by
//! keyset ([`ics_service_kit::page`]).
//!
//! For each event the projection folds the workshop's stream up to that event from the log, in
//! its own transaction, with the aggregate's own fold ([`Workshop::fold`]), so a row is exactly
//! what GetWorkshop answered at that version. A workshop's stream is short — its lifecycle
//! bounds it to a charter, its schedules, the days held, a report-out, four follow-ups and a
//! close or cancel — so folding it again costs a few rows, and the row need not hold the
//! aggregate's state beyond the view (which merges the planned and held days).

use futures_util::future::BoxFuture;
use ics_projection::{Projection, ProjectionError, delete_all};
use ics_proto::date::from_naive;
use ics_proto::events::v1::EventEnvelope;
use ics_proto::workshops::v1::{self as api, FollowUpState, WorkshopStatus};
use ics_service_kit::error::ServiceError;
use ics_service_kit::page::Page;
use prost::Message as _;
use sqlx::{PgConnection, PgPool, Row as _};

use crate::workshop::{self, CHECKPOINTS, FollowUp, Workshop};

/// The projection's name: its checkpoints, its durable consumer (`ics_workshop_list`) and what
/// operators rebuild.
pub const WORKSHOP_LIST: &str = "workshop_list";

/// Keeps `workshop_list` from the workshops stream.
#[derive(Debug, Default)]
pub struct WorkshopListProjection;

impl Projection for WorkshopListProjection {
    fn name(&self) -> &str {
        WORKSHOP_LIST
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
        Box::pin(delete_all(connection, &["workshop_list"]))
    }
}

async fn apply(
    connection: &mut PgConnection,
    event: &EventEnvelope,
) -> Result<(), ProjectionError> {
    if !event.stream_id.starts_with(workshop::STREAM_PREFIX) {
        return Ok(());
    }
    // The runner applies a stream's events in order, each after the log committed it, so the
    // log holds the whole history this event ends.
    let history =
        ics_eventstore::read_stream_through(connection, &event.stream_id, event.stream_version)
            .await?;
    if history.last().map(|last| last.stream_version) != Some(event.stream_version) {
        return Err(ProjectionError::Rejected(format!(
            "{} version {} is not in the log",
            event.stream_id, event.stream_version
        )));
    }
    let Some(folded) =
        Workshop::fold(&history).map_err(|error| ProjectionError::Rejected(error.to_string()))?
    else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO workshop_list (workshop_id, ods_code, workshop) VALUES ($1, $2, $3)
         ON CONFLICT (workshop_id) DO UPDATE
         SET ods_code = excluded.ods_code, workshop = excluded.workshop",
    )
    .bind(folded.id())
    .bind(folded.ods_code())
    .bind(workshop_view(&folded).encode_to_vec())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// One page of a trust's workshops, in workshop id order. `query` names the caller and the
/// trust, to which the page token is bound.
pub(crate) async fn page(
    pool: &PgPool,
    ods_code: &str,
    query: &str,
    page_size: u32,
    page_token: &str,
) -> Result<api::ListWorkshopsResponse, ServiceError> {
    let page = Page::parse(page_size, page_token, query, 1)?;
    let rows = sqlx::query(
        "SELECT workshop FROM workshop_list WHERE ods_code = $1 AND workshop_id > $2
         ORDER BY workshop_id LIMIT $3",
    )
    .bind(ods_code)
    .bind(&page.after()[0])
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    let mut workshops = rows
        .iter()
        .map(|row| {
            let bytes: Vec<u8> = row.try_get("workshop")?;
            api::Workshop::decode(bytes.as_slice()).map_err(ServiceError::internal)
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let next_page_token = page.finish(&mut workshops, |workshop| {
        vec![workshop.workshop_id.clone()]
    });
    Ok(api::ListWorkshopsResponse {
        workshops,
        next_page_token,
    })
}

pub(crate) fn workshop_view(workshop: &Workshop) -> api::Workshop {
    let chartered = &workshop.chartered;
    let status = match workshop.status {
        workshop::Status::Chartered => WorkshopStatus::Chartered,
        workshop::Status::Scheduled => WorkshopStatus::Scheduled,
        workshop::Status::Held => WorkshopStatus::Held,
        workshop::Status::ReportedOut => WorkshopStatus::ReportedOut,
        workshop::Status::Closed => WorkshopStatus::Closed,
        workshop::Status::Cancelled => WorkshopStatus::Cancelled,
    };
    let follow_ups = match workshop.held_to {
        Some(held_to) if workshop.status != workshop::Status::Cancelled => CHECKPOINTS
            .iter()
            .map(|checkpoint| {
                let due_on = Some(from_naive(workshop::due_on(held_to, *checkpoint)));
                match workshop.follow_ups.get(&(*checkpoint as i32)) {
                    Some(FollowUp::Recorded {
                        measured_on,
                        values,
                    }) => api::FollowUp {
                        checkpoint: *checkpoint as i32,
                        due_on,
                        state: FollowUpState::Recorded as i32,
                        measured_on: Some(from_naive(*measured_on)),
                        values: values.clone(),
                        sustained: workshop.sustained(values),
                    },
                    Some(FollowUp::Missed { .. }) => api::FollowUp {
                        checkpoint: *checkpoint as i32,
                        due_on,
                        state: FollowUpState::Missed as i32,
                        ..Default::default()
                    },
                    None => api::FollowUp {
                        checkpoint: *checkpoint as i32,
                        due_on,
                        state: FollowUpState::Pending as i32,
                        ..Default::default()
                    },
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    api::Workshop {
        workshop_id: chartered.workshop_id.clone(),
        ods_code: chartered.ods_code.clone(),
        value_stream_id: chartered.value_stream_id.clone(),
        kind: chartered.kind,
        title: chartered.title.clone(),
        roles: chartered.roles.clone(),
        status: status as i32,
        preparation_starts_on: chartered.preparation_starts_on,
        starts_on: workshop.held_from.or(workshop.starts_on).map(from_naive),
        ends_on: workshop.held_to.or(workshop.ends_on).map(from_naive),
        target_sheet: chartered.target_sheet.clone(),
        after: workshop.after.clone(),
        follow_ups,
        version: workshop.version,
    }
}
