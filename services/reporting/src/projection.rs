//! The overview projection: organisations, links, CQC ratings, executive departures, value
//! streams, training participation and programme membership, as boards read them.

use chrono::NaiveDate;
use futures_util::future::BoxFuture;
use ics_projection::{Projection, ProjectionError, delete_all};
use ics_proto::EventName;
use ics_proto::date::to_naive;
use ics_proto::events::v1::{
    CqcRatingPublished, Date, EventEnvelope, ExecutiveDeparted, OrganisationLinked,
    OrganisationRegistered, OrganisationRenamed, OrganisationUnlinked, ProgrammeRegistered,
    ProgrammeTrustJoined, TrainingParticipationRecorded, ValueStreamClosed, ValueStreamDefined,
    ValueStreamRevised, ValueStreamStatus, ValueStreamStatusChanged,
};
use sqlx::PgConnection;

/// The projection's name: its checkpoints, consumer and change channel.
pub const OVERVIEW: &str = "overview";

/// Tables the projection owns (emptied on rebuild).
const TABLES: &[&str] = &[
    "organisations",
    "organisation_links",
    "cqc_ratings",
    "executive_departures",
    "value_streams",
    "training_participation",
    "programmes",
    "programme_trusts",
];

#[derive(Debug, Default)]
pub struct OverviewProjection;

pub(crate) use ics_projection::decode_payload as decode;

pub(crate) fn date(field: &str, value: Option<&Date>) -> Result<NaiveDate, ProjectionError> {
    value
        .and_then(to_naive)
        .ok_or_else(|| ProjectionError::Rejected(format!("{field} is missing or invalid")))
}

impl Projection for OverviewProjection {
    fn name(&self) -> &str {
        OVERVIEW
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply(connection, event))
    }

    fn apply_batch<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply_batch(connection, events))
    }

    fn reset<'a>(
        &'a self,
        connection: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(delete_all(connection, TABLES))
    }
}

/// Applies events in order, writing each run of consecutive registrations or renames with one
/// statement (the bulk of a back-load or a rebuild) and anything else one event at a time. A
/// run ends where another type begins, so no event is applied before one that preceded it.
async fn apply_batch(
    connection: &mut PgConnection,
    events: &[EventEnvelope],
) -> Result<(), ProjectionError> {
    for run in events.chunk_by(|left, right| left.event_type == right.event_type) {
        let event_type = run.first().map_or("", |event| event.event_type.as_str());
        if run.len() > 1 && event_type == OrganisationRegistered::EVENT_TYPE {
            register_all(connection, run).await?;
        } else if run.len() > 1 && event_type == OrganisationRenamed::EVENT_TYPE {
            rename_all(connection, run).await?;
        } else {
            for event in run {
                apply(connection, event).await?;
            }
        }
    }
    Ok(())
}

/// Registrations as one upsert. Within the run the last registration of a code wins, as it
/// would applied one by one (and one statement may not update a row twice).
async fn register_all(
    connection: &mut PgConnection,
    run: &[EventEnvelope],
) -> Result<(), ProjectionError> {
    let mut latest: std::collections::HashMap<String, (String, i32)> =
        std::collections::HashMap::with_capacity(run.len());
    for event in run {
        let registered: OrganisationRegistered = decode(event)?;
        latest.insert(registered.ods_code, (registered.name, registered.kind));
    }
    let mut codes = Vec::with_capacity(latest.len());
    let mut names = Vec::with_capacity(latest.len());
    let mut kinds = Vec::with_capacity(latest.len());
    for (code, (name, kind)) in latest {
        codes.push(code);
        names.push(name);
        kinds.push(kind);
    }
    sqlx::query(
        "INSERT INTO organisations (ods_code, name, kind)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::integer[])
         ON CONFLICT (ods_code) DO UPDATE SET name = excluded.name, kind = excluded.kind",
    )
    .bind(&codes)
    .bind(&names)
    .bind(&kinds)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Renames as one update, each organisation taking the last name the run gives it.
async fn rename_all(
    connection: &mut PgConnection,
    run: &[EventEnvelope],
) -> Result<(), ProjectionError> {
    let mut latest: std::collections::HashMap<String, String> =
        std::collections::HashMap::with_capacity(run.len());
    for event in run {
        let renamed: OrganisationRenamed = decode(event)?;
        latest.insert(renamed.ods_code, renamed.name);
    }
    let (codes, names): (Vec<String>, Vec<String>) = latest.into_iter().unzip();
    sqlx::query(
        "UPDATE organisations SET name = renamed.name
         FROM UNNEST($1::text[], $2::text[]) AS renamed (ods_code, name)
         WHERE organisations.ods_code = renamed.ods_code",
    )
    .bind(&codes)
    .bind(&names)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

async fn apply(
    connection: &mut PgConnection,
    event: &EventEnvelope,
) -> Result<(), ProjectionError> {
    let event_type = event.event_type.as_str();
    if event_type == OrganisationRegistered::EVENT_TYPE {
        let registered: OrganisationRegistered = decode(event)?;
        sqlx::query(
            "INSERT INTO organisations (ods_code, name, kind) VALUES ($1, $2, $3)
             ON CONFLICT (ods_code) DO UPDATE SET name = excluded.name, kind = excluded.kind",
        )
        .bind(&registered.ods_code)
        .bind(&registered.name)
        .bind(registered.kind)
        .execute(&mut *connection)
        .await?;
    } else if event_type == OrganisationRenamed::EVENT_TYPE {
        let renamed: OrganisationRenamed = decode(event)?;
        sqlx::query("UPDATE organisations SET name = $2 WHERE ods_code = $1")
            .bind(&renamed.ods_code)
            .bind(&renamed.name)
            .execute(&mut *connection)
            .await?;
    } else if event_type == OrganisationLinked::EVENT_TYPE {
        let linked: OrganisationLinked = decode(event)?;
        sqlx::query(
            "INSERT INTO organisation_links (ods_code, parent_ods_code, valid_from)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&linked.ods_code)
        .bind(&linked.parent_ods_code)
        .bind(date("valid_from", linked.valid_from.as_ref())?)
        .execute(&mut *connection)
        .await?;
    } else if event_type == OrganisationUnlinked::EVENT_TYPE {
        let unlinked: OrganisationUnlinked = decode(event)?;
        sqlx::query(
            "UPDATE organisation_links SET valid_to = $3
             WHERE ods_code = $1 AND parent_ods_code = $2 AND valid_to IS NULL",
        )
        .bind(&unlinked.ods_code)
        .bind(&unlinked.parent_ods_code)
        .bind(date("valid_to", unlinked.valid_to.as_ref())?)
        .execute(&mut *connection)
        .await?;
    } else if event_type == CqcRatingPublished::EVENT_TYPE {
        let published: CqcRatingPublished = decode(event)?;
        let ratings = published.ratings.unwrap_or_default();
        sqlx::query(
            "INSERT INTO cqc_ratings (ods_code, published_on, overall, safe, effective, caring,
                 responsive, well_led)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&published.ods_code)
        .bind(date("published_on", published.published_on.as_ref())?)
        .bind(ratings.overall)
        .bind(ratings.safe)
        .bind(ratings.effective)
        .bind(ratings.caring)
        .bind(ratings.responsive)
        .bind(ratings.well_led)
        .execute(&mut *connection)
        .await?;
    } else if event_type == ExecutiveDeparted::EVENT_TYPE {
        let departed: ExecutiveDeparted = decode(event)?;
        sqlx::query(
            "INSERT INTO executive_departures (appointment_id, ods_code, role, left_on)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&departed.appointment_id)
        .bind(&departed.ods_code)
        .bind(departed.role)
        .bind(date("left_on", departed.left_on.as_ref())?)
        .execute(&mut *connection)
        .await?;
    } else if event_type == ValueStreamDefined::EVENT_TYPE {
        let defined: ValueStreamDefined = decode(event)?;
        sqlx::query(
            "INSERT INTO value_streams (value_stream_id, ods_code, name, status)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&defined.value_stream_id)
        .bind(&defined.ods_code)
        .bind(
            defined
                .definition
                .map(|definition| definition.name)
                .unwrap_or_default(),
        )
        .bind(defined.status)
        .execute(&mut *connection)
        .await?;
    } else if event_type == ValueStreamRevised::EVENT_TYPE {
        let revised: ValueStreamRevised = decode(event)?;
        sqlx::query("UPDATE value_streams SET name = $2 WHERE value_stream_id = $1")
            .bind(&revised.value_stream_id)
            .bind(
                revised
                    .definition
                    .map(|definition| definition.name)
                    .unwrap_or_default(),
            )
            .execute(&mut *connection)
            .await?;
    } else if event_type == ValueStreamStatusChanged::EVENT_TYPE {
        let changed: ValueStreamStatusChanged = decode(event)?;
        set_value_stream_status(connection, &changed.value_stream_id, changed.status).await?;
    } else if event_type == ValueStreamClosed::EVENT_TYPE {
        let closed: ValueStreamClosed = decode(event)?;
        set_value_stream_status(
            connection,
            &closed.value_stream_id,
            ValueStreamStatus::Closed as i32,
        )
        .await?;
    } else if event_type == TrainingParticipationRecorded::EVENT_TYPE {
        let recorded: TrainingParticipationRecorded = decode(event)?;
        sqlx::query(
            "INSERT INTO training_participation (cohort_id, ods_code, participants, completed,
                 survey_respondents, valued)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (cohort_id, ods_code) DO UPDATE SET participants = excluded.participants,
                 completed = excluded.completed, survey_respondents = excluded.survey_respondents,
                 valued = excluded.valued",
        )
        .bind(&recorded.cohort_id)
        .bind(&recorded.ods_code)
        .bind(to_i32(recorded.participants))
        .bind(to_i32(recorded.completed))
        .bind(to_i32(recorded.survey_respondents))
        .bind(to_i32(recorded.valued))
        .execute(&mut *connection)
        .await?;
    } else if event_type == ProgrammeRegistered::EVENT_TYPE {
        let registered: ProgrammeRegistered = decode(event)?;
        sqlx::query(
            "INSERT INTO programmes (programme_id, name, starts_on, ends_on) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(&registered.programme_id)
        .bind(&registered.name)
        .bind(registered.starts_on.as_ref().and_then(to_naive))
        .bind(registered.ends_on.as_ref().and_then(to_naive))
        .execute(&mut *connection)
        .await?;
    } else if event_type == ProgrammeTrustJoined::EVENT_TYPE {
        let joined: ProgrammeTrustJoined = decode(event)?;
        sqlx::query(
            "INSERT INTO programme_trusts (programme_id, ods_code, joined_on) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(&joined.programme_id)
        .bind(&joined.ods_code)
        .bind(date("joined_on", joined.joined_on.as_ref())?)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

async fn set_value_stream_status(
    connection: &mut PgConnection,
    value_stream_id: &str,
    status: i32,
) -> Result<(), ProjectionError> {
    sqlx::query("UPDATE value_streams SET status = $2 WHERE value_stream_id = $1")
        .bind(value_stream_id)
        .bind(status)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
