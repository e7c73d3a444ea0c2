//! Lookups: the programmes, value streams, series and peer groups a scope's board can ask
//! about, a page at a time, read from the projections' tables by keyset (see
//! [`ics_service_kit::page`]). Each list is filtered by the scope's trusts today, so it holds
//! nothing of another tenant whatever token it is given.

use chrono::NaiveDate;
use ics_proto::events::v1::{Date, PeerGroupDefined, SeriesKey};
use ics_proto::reporting::v1::{
    ListPeerGroupsResponse, ListProgrammesResponse, ListSeriesResponse, ListValueStreamsResponse,
    ProgrammeEntry, Scope, SeriesEntry, ValueStreamEntry, scope,
};
use ics_service_kit::error::ServiceError;
use ics_service_kit::page::Page;
use prost::Message as _;
use sqlx::{PgPool, Row as _};

use crate::measures::peer_group_fits_ics;
use crate::views::{scope_key, scope_trusts};

fn date(value: Option<NaiveDate>) -> Option<Date> {
    value.map(ics_proto::date::from_naive)
}

pub async fn programmes(
    pool: &PgPool,
    scope: &Scope,
    page_size: u32,
    page_token: &str,
    today: NaiveDate,
) -> Result<ListProgrammesResponse, ServiceError> {
    let page = Page::parse(page_size, page_token, &scope_key(scope), 1)?;
    let trusts = scope_trusts(pool, scope, "", today).await?;
    let only: Option<&str> = match &scope.scope {
        Some(scope::Scope::ProgrammeId(programme_id)) => Some(programme_id),
        _ => None,
    };
    let rows = sqlx::query(
        "SELECT p.programme_id, p.name, p.starts_on, p.ends_on, count(t.ods_code) AS trusts
         FROM programmes p JOIN programme_trusts t USING (programme_id)
         WHERE t.ods_code = ANY($1) AND t.joined_on <= $2
           AND ($3::text IS NULL OR p.programme_id = $3)
           AND p.programme_id > $4
         GROUP BY p.programme_id
         ORDER BY p.programme_id
         LIMIT $5",
    )
    .bind(&trusts)
    .bind(today)
    .bind(only)
    .bind(&page.after()[0])
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    let mut programmes = rows
        .iter()
        .map(|row| {
            Ok(ProgrammeEntry {
                programme_id: row.try_get("programme_id")?,
                name: row.try_get("name")?,
                starts_on: date(row.try_get("starts_on")?),
                ends_on: date(row.try_get("ends_on")?),
                trusts: u32::try_from(row.try_get::<i64, _>("trusts")?).unwrap_or(u32::MAX),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let next_page_token = page.finish(&mut programmes, |entry| vec![entry.programme_id.clone()]);
    Ok(ListProgrammesResponse {
        programmes,
        next_page_token,
    })
}

pub async fn value_streams(
    pool: &PgPool,
    scope: &Scope,
    ods_code: &str,
    page_size: u32,
    page_token: &str,
    today: NaiveDate,
) -> Result<ListValueStreamsResponse, ServiceError> {
    let query = format!("{}|trust:{ods_code}", scope_key(scope));
    let page = Page::parse(page_size, page_token, &query, 2)?;
    let trusts = scope_trusts(pool, scope, ods_code, today).await?;
    let rows = sqlx::query(
        "SELECT value_stream_id, ods_code, name, status FROM value_streams
         WHERE ods_code = ANY($1) AND (ods_code, value_stream_id) > ($2, $3)
         ORDER BY ods_code, value_stream_id
         LIMIT $4",
    )
    .bind(&trusts)
    .bind(&page.after()[0])
    .bind(&page.after()[1])
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    let mut value_streams = rows
        .iter()
        .map(|row| {
            Ok(ValueStreamEntry {
                value_stream_id: row.try_get("value_stream_id")?,
                ods_code: row.try_get("ods_code")?,
                name: row.try_get("name")?,
                status: row.try_get("status")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let next_page_token = page.finish(&mut value_streams, |entry| {
        vec![entry.ods_code.clone(), entry.value_stream_id.clone()]
    });
    Ok(ListValueStreamsResponse {
        value_streams,
        next_page_token,
    })
}

pub async fn series(
    pool: &PgPool,
    scope: &Scope,
    ods_code: &str,
    measure_code: &str,
    page_size: u32,
    page_token: &str,
    today: NaiveDate,
) -> Result<ListSeriesResponse, ServiceError> {
    let query = format!(
        "{}|trust:{ods_code}|measure:{measure_code}",
        scope_key(scope)
    );
    let page = Page::parse(page_size, page_token, &query, 3)?;
    let trusts = scope_trusts(pool, scope, ods_code, today).await?;
    let measure = (!measure_code.is_empty()).then_some(measure_code);
    let rows = sqlx::query(
        "SELECT measure_code, ods_code, value_stream_id, points, latest_start, latest_end
         FROM measure_series
         WHERE ods_code = ANY($1) AND ($2::text IS NULL OR measure_code = $2)
           AND (measure_code, ods_code, value_stream_id) > ($3, $4, $5)
         ORDER BY measure_code, ods_code, value_stream_id
         LIMIT $6",
    )
    .bind(&trusts)
    .bind(measure)
    .bind(&page.after()[0])
    .bind(&page.after()[1])
    .bind(&page.after()[2])
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    let mut series = rows
        .iter()
        .map(|row| {
            Ok(SeriesEntry {
                series: Some(SeriesKey {
                    measure_code: row.try_get("measure_code")?,
                    ods_code: row.try_get("ods_code")?,
                    value_stream_id: row.try_get("value_stream_id")?,
                }),
                points: u32::try_from(row.try_get::<i32, _>("points")?).unwrap_or(0),
                latest_period_start: date(row.try_get("latest_start")?),
                latest_period_end: date(row.try_get("latest_end")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let next_page_token = page.finish(&mut series, |entry| {
        let key = entry.series.clone().unwrap_or_default();
        vec![key.measure_code, key.ods_code, key.value_stream_id]
    });
    Ok(ListSeriesResponse {
        series,
        next_page_token,
    })
}

/// Peer groups are few (a handful per ICS and region), so the page is filled by checking each
/// group in id order with the same rule GetPeerComparison applies.
pub async fn peer_groups(
    pool: &PgPool,
    ics_ods_code: &str,
    page_size: u32,
    page_token: &str,
    today: NaiveDate,
) -> Result<ListPeerGroupsResponse, ServiceError> {
    let page = Page::parse(page_size, page_token, &format!("ics:{ics_ods_code}"), 1)?;
    // NOT_FOUND for an ICS the projection does not know, as every ICS view answers.
    crate::views::ics_members(pool, ics_ods_code, today).await?;
    let rows = sqlx::query(
        "SELECT peer_group_id, definition FROM peer_groups WHERE peer_group_id > $1
         ORDER BY peer_group_id",
    )
    .bind(&page.after()[0])
    .fetch_all(pool)
    .await?;
    let mut peer_groups = Vec::new();
    for row in rows {
        let id: String = row.try_get("peer_group_id")?;
        if !peer_group_fits_ics(pool, &id, ics_ods_code, today).await? {
            continue;
        }
        let definition: Vec<u8> = row.try_get("definition")?;
        let mut group =
            PeerGroupDefined::decode(definition.as_slice()).map_err(ServiceError::internal)?;
        // The stored id is the key the page continues from.
        group.peer_group_id = id;
        peer_groups.push(group);
        if peer_groups.len() as i64 == page.fetch_limit() {
            break;
        }
    }
    let next_page_token = page.finish(&mut peer_groups, |group| vec![group.peer_group_id.clone()]);
    Ok(ListPeerGroupsResponse {
        peer_groups,
        next_page_token,
    })
}
