//! Reads of the projections, as the API returns them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{Months, NaiveDate};
use ics_proto::date::from_naive;
use ics_proto::events::v1::{CqcRatings, ValueStreamStatus};
use ics_proto::reporting::v1::{
    CqcRatingRecord, OutcomeGroup, Outcomes, Overview, Scope, TrainingParticipation, TrustSummary,
    ValueStreamCounts, scope,
};
use ics_service_kit::error::ServiceError;
use sqlx::{PgPool, Row};

use crate::outcome_records::{OutcomeRecords, TrustTallies};
use crate::outcomes::{Tally, kind_outcomes_of};

/// How far back "leadership stability" looks.
const STABILITY_MONTHS: u32 = 24;

/// A trust in a scope on a date, with the ICB it belonged to then.
pub(crate) struct Member {
    pub(crate) ods_code: String,
    pub(crate) name: String,
    pub(crate) icb_ods_code: String,
}

/// The overview of an ICS or a programme as it stood on `as_of`.
pub async fn overview(
    pool: &PgPool,
    scope: &Scope,
    as_of: NaiveDate,
) -> Result<Overview, ServiceError> {
    let (name, members) = scope_members(pool, scope, as_of).await?;
    let codes: Vec<String> = members
        .iter()
        .map(|member| member.ods_code.clone())
        .collect();

    let mut ratings: HashMap<String, CqcRatingRecord> = HashMap::new();
    for row in sqlx::query(
        "SELECT DISTINCT ON (ods_code) ods_code, published_on, overall, safe, effective, caring,
                responsive, well_led
         FROM cqc_ratings WHERE ods_code = ANY($1) AND published_on <= $2
         ORDER BY ods_code, published_on DESC",
    )
    .bind(&codes)
    .bind(as_of)
    .fetch_all(pool)
    .await?
    {
        ratings.insert(row.try_get("ods_code")?, rating_record(&row)?);
    }

    let mut value_streams: HashMap<String, ValueStreamCounts> = HashMap::new();
    for row in sqlx::query(
        "SELECT ods_code, status, count(*) AS streams FROM value_streams
         WHERE ods_code = ANY($1) GROUP BY ods_code, status",
    )
    .bind(&codes)
    .fetch_all(pool)
    .await?
    {
        let counts = value_streams.entry(row.try_get("ods_code")?).or_default();
        let streams = u32::try_from(row.try_get::<i64, _>("streams")?).unwrap_or(u32::MAX);
        match ValueStreamStatus::try_from(row.try_get::<i32, _>("status")?) {
            Ok(ValueStreamStatus::Active) => counts.active += streams,
            Ok(ValueStreamStatus::Sustaining) => counts.sustaining += streams,
            Ok(ValueStreamStatus::Closed) => counts.closed += streams,
            _ => counts.proposed += streams,
        }
    }

    let stability_from = as_of
        .checked_sub_months(Months::new(STABILITY_MONTHS))
        .unwrap_or(NaiveDate::MIN);
    let mut departures: HashMap<String, u32> = HashMap::new();
    for row in sqlx::query(
        "SELECT ods_code, count(*) AS departures FROM executive_departures
         WHERE ods_code = ANY($1) AND left_on > $2 AND left_on <= $3 GROUP BY ods_code",
    )
    .bind(&codes)
    .bind(stability_from)
    .bind(as_of)
    .fetch_all(pool)
    .await?
    {
        departures.insert(
            row.try_get("ods_code")?,
            u32::try_from(row.try_get::<i64, _>("departures")?).unwrap_or(u32::MAX),
        );
    }

    let mut training: HashMap<String, TrainingParticipation> = HashMap::new();
    for row in sqlx::query(
        "SELECT ods_code, sum(participants)::bigint AS participants,
                sum(completed)::bigint AS completed,
                sum(survey_respondents)::bigint AS survey_respondents,
                sum(valued)::bigint AS valued
         FROM training_participation WHERE ods_code = ANY($1) GROUP BY ods_code",
    )
    .bind(&codes)
    .fetch_all(pool)
    .await?
    {
        let count = |column: &str| -> Result<u32, sqlx::Error> {
            Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(u32::MAX))
        };
        training.insert(
            row.try_get("ods_code")?,
            participation(
                count("participants")?,
                count("completed")?,
                count("survey_respondents")?,
                count("valued")?,
            ),
        );
    }

    let mut total_streams = ValueStreamCounts::default();
    let mut total_training = TrainingParticipation::default();
    let mut total_departures = 0;
    let trusts: Vec<TrustSummary> = members
        .into_iter()
        .map(|member| {
            let streams = value_streams.remove(&member.ods_code).unwrap_or_default();
            let trained = training.remove(&member.ods_code).unwrap_or_default();
            let departed = departures.remove(&member.ods_code).unwrap_or(0);
            total_streams.proposed += streams.proposed;
            total_streams.active += streams.active;
            total_streams.sustaining += streams.sustaining;
            total_streams.closed += streams.closed;
            total_training.participants += trained.participants;
            total_training.completed += trained.completed;
            total_training.survey_respondents += trained.survey_respondents;
            total_training.valued += trained.valued;
            total_departures += departed;
            TrustSummary {
                current_cqc: ratings.remove(&member.ods_code),
                ods_code: member.ods_code,
                name: member.name,
                icb_ods_code: member.icb_ods_code,
                value_streams: Some(streams),
                executive_departures_24_months: departed,
                training: Some(trained),
            }
        })
        .collect();
    total_training = participation(
        total_training.participants,
        total_training.completed,
        total_training.survey_respondents,
        total_training.valued,
    );
    Ok(Overview {
        scope: Some(scope.clone()),
        name,
        as_of: Some(from_naive(as_of)),
        trusts,
        value_streams: Some(total_streams),
        training: Some(total_training),
        executive_departures_24_months: total_departures,
    })
}

fn participation(
    participants: u32,
    completed: u32,
    survey_respondents: u32,
    valued: u32,
) -> TrainingParticipation {
    TrainingParticipation {
        participants,
        completed,
        survey_respondents,
        valued,
        share_valued: if survey_respondents == 0 {
            0.0
        } else {
            f64::from(valued) / f64::from(survey_respondents)
        },
    }
}

fn rating_record(row: &sqlx::postgres::PgRow) -> Result<CqcRatingRecord, sqlx::Error> {
    let published_on: NaiveDate = row.try_get("published_on")?;
    Ok(CqcRatingRecord {
        published_on: Some(from_naive(published_on)),
        ratings: Some(CqcRatings {
            overall: row.try_get("overall")?,
            safe: row.try_get("safe")?,
            effective: row.try_get("effective")?,
            caring: row.try_get("caring")?,
            responsive: row.try_get("responsive")?,
            well_led: row.try_get("well_led")?,
        }),
    })
}

/// Rows of `ods_code`, `name` and `parent_ods_code`.
fn members_from_rows(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Member>, sqlx::Error> {
    rows.iter()
        .map(|row| {
            Ok(Member {
                ods_code: row.try_get("ods_code")?,
                name: row.try_get("name")?,
                icb_ods_code: row.try_get("parent_ods_code")?,
            })
        })
        .collect()
}

/// The scope as a key (`ics:QWO`, `programme:<id>`): for caches and page tokens.
pub(crate) fn scope_key(scope: &Scope) -> String {
    match &scope.scope {
        Some(scope::Scope::IcsOdsCode(ics)) => format!("ics:{ics}"),
        Some(scope::Scope::ProgrammeId(programme_id)) => format!("programme:{programme_id}"),
        None => String::new(),
    }
}

/// The scope's name and its trusts on `as_of`: an ICS's members, or a programme's trusts that
/// had joined by then.
pub(crate) async fn scope_members(
    pool: &PgPool,
    scope: &Scope,
    as_of: NaiveDate,
) -> Result<(String, Vec<Member>), ServiceError> {
    match &scope.scope {
        Some(scope::Scope::IcsOdsCode(ics)) => ics_members(pool, ics, as_of).await,
        Some(scope::Scope::ProgrammeId(programme_id)) => {
            programme_members(pool, programme_id, as_of).await
        }
        None => Err(ServiceError::invalid_field("scope", "is required")),
    }
}

/// The scope's trusts today, or only `ods_code` when it is one of them (NOT_FOUND otherwise,
/// as for a trust that does not exist: a board learns nothing of trusts outside its scope).
pub(crate) async fn scope_trusts(
    pool: &PgPool,
    scope: &Scope,
    ods_code: &str,
    today: NaiveDate,
) -> Result<Vec<String>, ServiceError> {
    let (_, members) = scope_members(pool, scope, today).await?;
    let codes: Vec<String> = members.into_iter().map(|member| member.ods_code).collect();
    if ods_code.is_empty() {
        return Ok(codes);
    }
    if codes.iter().any(|code| code == ods_code) {
        Ok(vec![ods_code.to_owned()])
    } else {
        Err(ServiceError::not_found(format!("trust {ods_code}")))
    }
}

pub(crate) async fn ics_members(
    pool: &PgPool,
    ics_ods_code: &str,
    as_of: NaiveDate,
) -> Result<(String, Vec<Member>), ServiceError> {
    // The ICS and its members in one round trip: no row when the ICS is unknown, one row
    // without a member when it has none.
    let rows = sqlx::query(
        "SELECT i.name AS ics_name, m.ods_code, m.name, m.parent_ods_code
         FROM organisations i
         LEFT JOIN LATERAL (
             SELECT o.ods_code, o.name, l.parent_ods_code
             FROM organisation_links l JOIN organisations o ON o.ods_code = l.ods_code
             WHERE l.parent_ods_code = i.ods_code AND l.valid_from <= $2
               AND (l.valid_to IS NULL OR l.valid_to >= $2)
         ) m ON true
         WHERE i.ods_code = $1
         ORDER BY m.ods_code",
    )
    .bind(ics_ods_code)
    .bind(as_of)
    .fetch_all(pool)
    .await?;
    let Some(first) = rows.first() else {
        return Err(ServiceError::NotFound {
            resource: format!("ics {ics_ods_code}"),
        });
    };
    let name: String = first.try_get("ics_name")?;
    let mut members = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(ods_code) = row.try_get::<Option<String>, _>("ods_code")? {
            members.push(Member {
                ods_code,
                name: row.try_get("name")?,
                icb_ods_code: row.try_get("parent_ods_code")?,
            });
        }
    }
    Ok((name, members))
}

async fn programme_members(
    pool: &PgPool,
    programme_id: &str,
    as_of: NaiveDate,
) -> Result<(String, Vec<Member>), ServiceError> {
    let name: Option<String> =
        sqlx::query_scalar("SELECT name FROM programmes WHERE programme_id = $1")
            .bind(programme_id)
            .fetch_optional(pool)
            .await?;
    let name = name.ok_or_else(|| ServiceError::NotFound {
        resource: format!("programme {programme_id}"),
    })?;
    // The ICB is the one the trust belonged to on the date (trusts change ICB over time).
    let rows = sqlx::query(
        "SELECT p.ods_code, coalesce(o.name, p.ods_code) AS name,
                coalesce((SELECT l.parent_ods_code FROM organisation_links l
                          WHERE l.ods_code = p.ods_code AND l.valid_from <= $2
                            AND (l.valid_to IS NULL OR l.valid_to >= $2)
                          ORDER BY l.valid_from DESC LIMIT 1), '') AS parent_ods_code
         FROM programme_trusts p LEFT JOIN organisations o ON o.ods_code = p.ods_code
         WHERE p.programme_id = $1 AND p.joined_on <= $2
         ORDER BY p.ods_code",
    )
    .bind(programme_id)
    .bind(as_of)
    .fetch_all(pool)
    .await?;
    Ok((name, members_from_rows(&rows)?))
}

/// Every CQC rating of a trust, oldest first, provided the trust ever belonged to the scope
/// (otherwise NOT_FOUND: a board learns nothing about trusts outside its scope).
/// A trust's CQC ratings, when it belongs to the scope on `as_of` (membership as of the day
/// asked, as every other view takes it, not "ever a member").
pub async fn cqc_history(
    pool: &PgPool,
    scope: &Scope,
    ods_code: &str,
    as_of: NaiveDate,
) -> Result<Vec<CqcRatingRecord>, ServiceError> {
    let in_scope: Option<i32> = match &scope.scope {
        Some(scope::Scope::IcsOdsCode(ics)) => {
            sqlx::query_scalar(
                "SELECT 1 FROM organisation_links
             WHERE ods_code = $1 AND parent_ods_code = $2 AND valid_from <= $3
               AND (valid_to IS NULL OR valid_to >= $3)
             LIMIT 1",
            )
            .bind(ods_code)
            .bind(ics)
            .bind(as_of)
            .fetch_optional(pool)
            .await?
        }
        Some(scope::Scope::ProgrammeId(programme_id)) => {
            sqlx::query_scalar(
                "SELECT 1 FROM programme_trusts
                 WHERE ods_code = $1 AND programme_id = $2 AND joined_on <= $3",
            )
            .bind(ods_code)
            .bind(programme_id)
            .bind(as_of)
            .fetch_optional(pool)
            .await?
        }
        None => return Err(ServiceError::invalid_field("scope", "is required")),
    };
    if in_scope.is_none() {
        return Err(ServiceError::NotFound {
            resource: format!("trust {ods_code} in this scope"),
        });
    }
    let rows = sqlx::query(
        "SELECT published_on, overall, safe, effective, caring, responsive, well_led
         FROM cqc_ratings WHERE ods_code = $1 ORDER BY published_on",
    )
    .bind(ods_code)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(rating_record)
        .collect::<Result<Vec<_>, _>>()?)
}

/// Programme outcomes of an ICS or a programme as they stood on `as_of`, by the definitions in
/// `reporting.proto` (arithmetic in [`crate::outcomes`]), over the counted workshops `records`
/// holds (read again only where they changed).
pub async fn outcomes(
    pool: &PgPool,
    records: &OutcomeRecords,
    scope: &Scope,
    as_of: NaiveDate,
) -> Result<Outcomes, ServiceError> {
    let (name, members, window) = match &scope.scope {
        Some(scope::Scope::IcsOdsCode(ics)) => {
            let (name, members) = ics_members(pool, ics, as_of).await?;
            (name, members, None)
        }
        Some(scope::Scope::ProgrammeId(programme_id)) => {
            let (name, members) = programme_members(pool, programme_id, as_of).await?;
            let dates: Option<(Option<NaiveDate>, Option<NaiveDate>)> =
                sqlx::query_as("SELECT starts_on, ends_on FROM programmes WHERE programme_id = $1")
                    .bind(programme_id)
                    .fetch_optional(pool)
                    .await?;
            (name, members, Some(dates.unwrap_or_default()))
        }
        None => return Err(ServiceError::invalid_field("scope", "is required")),
    };
    let counted = records.current().await?;

    // Each member trust's tallies, once however often the trust is listed: an ICS shares those
    // the records keep; a programme counts only the workshops held within its dates.
    let mut by_code: BTreeMap<&str, Cow<'_, TrustTallies>> = BTreeMap::new();
    for member in &members {
        by_code
            .entry(&member.ods_code)
            .or_insert_with(|| match window {
                None => counted
                    .tallies_of(&member.ods_code)
                    .map_or_else(|| Cow::Owned(TrustTallies::default()), Cow::Borrowed),
                Some(window) => Cow::Owned(TrustTallies::of(
                    counted
                        .of_trust(&member.ods_code)
                        .filter(|workshop| workshop.held_within(window)),
                )),
            });
    }

    let all: Vec<&Tally> = by_code.values().map(|tallies| &tallies.all).collect();
    let by_trust = members
        .iter()
        .map(|member| OutcomeGroup {
            key: member.ods_code.clone(),
            name: member.name.clone(),
            kinds: kind_outcomes_of(
                by_code
                    .get(member.ods_code.as_str())
                    .map(|tallies| &tallies.all)
                    .as_slice(),
            ),
        })
        .collect();

    // Each value stream's tallies, trust by trust in code order, as the headline's.
    let mut by_id: HashMap<&str, Vec<&Tally>> = HashMap::new();
    for tallies in by_code.values() {
        for (id, tally) in &tallies.by_value_stream {
            by_id.entry(id.as_str()).or_default().push(tally);
        }
    }
    // Names from the overview's value streams, as they stand now (a revision renames).
    let names: HashMap<String, String> = sqlx::query_as(
        "SELECT value_stream_id, name FROM value_streams WHERE value_stream_id = ANY($1)",
    )
    .bind(by_id.keys().copied().collect::<Vec<&str>>())
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let mut value_streams: Vec<(&str, &str, Vec<&Tally>)> = by_id
        .into_iter()
        .map(|(id, tallies)| {
            let name = names.get(id).map_or(id, String::as_str);
            (name, id, tallies)
        })
        .collect();
    value_streams.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let by_value_stream = value_streams
        .into_iter()
        .map(|(name, key, tallies)| OutcomeGroup {
            key: key.to_string(),
            name: name.to_string(),
            kinds: kind_outcomes_of(&tallies),
        })
        .collect();

    Ok(Outcomes {
        scope: Some(scope.clone()),
        name,
        as_of: Some(from_naive(as_of)),
        headline: kind_outcomes_of(&all),
        by_trust,
        by_value_stream,
    })
}
