//! ListOrganisations' read model: every organisation as the API shows it, kept by the
//! `organisation_list` projection of the service's own stream and read a page at a time by
//! keyset ([`ics_service_kit::page`]), filtered by the caller's scope in SQL.
//!
//! The projection applies each event with the aggregate's own step ([`Organisation::then`]) to
//! the organisation its row holds, so a row is what folding the stream gives, and an event costs
//! one row read however long the stream grows (a trust renamed a million times is not folded a
//! million times). The row keeps the organisation as its view, which leaves none of the
//! aggregate's state out, so the next event applies to it exactly as to a fold.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use futures_util::future::BoxFuture;
use ics_eventstore::RecordedEvent;
use ics_projection::{Projection, ProjectionError, delete_all};
use ics_proto::date::{from_naive, to_naive};
use ics_proto::events::v1::{EventEnvelope, OrganisationKind};
use ics_proto::trusts::v1 as api;
use ics_service_kit::error::ServiceError;
use ics_service_kit::page::Page;
use prost::Message as _;
use sqlx::{PgConnection, PgPool, Row as _};

use crate::organisation::{self, Appointment, Organisation, ParentLink};

/// The projection's name: its checkpoints, its durable consumer (`ics_organisation_list`) and
/// what operators rebuild.
pub const ORGANISATION_LIST: &str = "organisation_list";

/// The organisations a caller may read (see `GetOrganisationRequest` in the API).
pub(crate) enum OrganisationScope {
    All,
    Trust(String),
    Board {
        ics_ods_code: Option<String>,
        programme_trusts: HashSet<String>,
        as_of: NaiveDate,
    },
}

impl OrganisationScope {
    pub(crate) fn shows(&self, organisation: &Organisation) -> bool {
        match self {
            OrganisationScope::All => true,
            OrganisationScope::Trust(ods_code) => &organisation.ods_code == ods_code,
            OrganisationScope::Board {
                ics_ods_code,
                programme_trusts,
                as_of,
            } => {
                let in_ics = ics_ods_code.as_deref().is_some_and(|ics| {
                    organisation.ods_code == ics || organisation.parent_on(*as_of) == Some(ics)
                });
                in_ics || programme_trusts.contains(&organisation.ods_code)
            }
        }
    }
}

pub(crate) fn organisation_view(organisation: &Organisation) -> api::Organisation {
    api::Organisation {
        ods_code: organisation.ods_code.clone(),
        name: organisation.name.clone(),
        kind: organisation.kind as i32,
        parents: organisation
            .parents
            .iter()
            .map(|link| api::ParentLink {
                parent_ods_code: link.parent_ods_code.clone(),
                valid_from: Some(from_naive(link.valid_from)),
                valid_to: link.valid_to.map(from_naive),
            })
            .collect(),
        cqc_ratings: organisation
            .ratings
            .iter()
            .map(|(published_on, ratings)| api::CqcRatingRecord {
                published_on: Some(from_naive(*published_on)),
                ratings: Some(*ratings),
            })
            .collect(),
        executives: organisation
            .appointments
            .iter()
            .map(|appointment| api::Executive {
                appointment_id: appointment.appointment_id.clone(),
                role: appointment.role as i32,
                person_name: appointment.person_name.clone(),
                started_on: Some(from_naive(appointment.started_on)),
                left_on: appointment.left_on.map(from_naive),
            })
            .collect(),
        version: organisation.version,
    }
}

/// The organisation a view shows: the inverse of [`organisation_view`]. The fold records only
/// links, ratings and appointments with their dates, so a stored view always has them; one
/// without is not a view this projection wrote.
fn organisation_of(view: api::Organisation) -> Result<Organisation, ProjectionError> {
    let corrupt = |what: &str| {
        ProjectionError::Corrupt(format!(
            "organisation_list holds {} without {what}",
            view.ods_code
        ))
    };
    let date = |date: Option<&ics_proto::events::v1::Date>, what: &str| {
        date.and_then(to_naive).ok_or_else(|| corrupt(what))
    };
    let parents = view
        .parents
        .iter()
        .map(|link| {
            Ok(ParentLink {
                parent_ods_code: link.parent_ods_code.clone(),
                valid_from: date(link.valid_from.as_ref(), "a link's start")?,
                valid_to: link.valid_to.as_ref().and_then(to_naive),
            })
        })
        .collect::<Result<_, ProjectionError>>()?;
    let ratings = view
        .cqc_ratings
        .iter()
        .map(|record| {
            Ok((
                date(record.published_on.as_ref(), "a rating's date")?,
                record.ratings.ok_or_else(|| corrupt("a rating"))?,
            ))
        })
        .collect::<Result<_, ProjectionError>>()?;
    let appointments = view
        .executives
        .iter()
        .map(|executive| {
            Ok(Appointment {
                appointment_id: executive.appointment_id.clone(),
                role: executive.role(),
                person_name: executive.person_name.clone(),
                started_on: date(executive.started_on.as_ref(), "an appointment's start")?,
                left_on: executive.left_on.as_ref().and_then(to_naive),
            })
        })
        .collect::<Result<_, ProjectionError>>()?;
    Ok(Organisation {
        kind: view.kind(),
        ods_code: view.ods_code,
        name: view.name,
        parents,
        ratings,
        appointments,
        version: view.version,
    })
}

/// Keeps `organisation_list` from the trusts stream.
#[derive(Debug, Default)]
pub struct OrganisationListProjection;

impl Projection for OrganisationListProjection {
    fn name(&self) -> &str {
        ORGANISATION_LIST
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(apply_batch(connection, std::slice::from_ref(event)))
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
        Box::pin(delete_all(
            connection,
            &["organisation_list_parents", "organisation_list"],
        ))
    }
}

/// Applies a batch: the rows of the organisations it touches are read in one statement, every
/// event applied in order to its organisation in memory, and the changed rows written back in
/// one statement (their parent links in two more, when they changed). A back-load renaming a
/// hundred trusts ten thousand times costs three statements per batch, not two per event.
async fn apply_batch(
    connection: &mut PgConnection,
    events: &[EventEnvelope],
) -> Result<(), ProjectionError> {
    // Programmes, value streams and cohorts share the stream; only organisations are listed.
    let listed: Vec<(&str, &EventEnvelope)> = events
        .iter()
        .filter_map(|event| {
            event
                .stream_id
                .strip_prefix(organisation::STREAM_PREFIX)
                .map(|ods_code| (ods_code, event))
        })
        .collect();
    if listed.is_empty() {
        return Ok(());
    }
    let mut codes: Vec<&str> = listed.iter().map(|(ods_code, _)| *ods_code).collect();
    codes.sort_unstable();
    codes.dedup();
    let rows = sqlx::query(
        "SELECT ods_code, organisation FROM organisation_list WHERE ods_code = ANY($1)",
    )
    .bind(&codes)
    .fetch_all(&mut *connection)
    .await?;
    let mut stored: HashMap<String, Organisation> = HashMap::with_capacity(rows.len());
    for row in rows {
        let ods_code: String = row.try_get("ods_code")?;
        let bytes: Vec<u8> = row.try_get("organisation")?;
        let organisation = api::Organisation::decode(bytes.as_slice())
            .map_err(|error| {
                ProjectionError::Corrupt(format!("organisation_list row {ods_code}: {error}"))
            })
            .and_then(organisation_of)?;
        stored.insert(ods_code, organisation);
    }
    let mut current: HashMap<&str, Option<Organisation>> = codes
        .iter()
        .map(|ods_code| (*ods_code, stored.get(*ods_code).cloned()))
        .collect();
    for (ods_code, event) in &listed {
        let recorded = RecordedEvent::from_envelope(event)
            .map_err(|error| ProjectionError::Rejected(error.to_string()))?;
        let state = current.get_mut(ods_code).and_then(Option::take);
        // A payload that does not decode cannot be applied later either.
        let next = Organisation::then(state, &recorded)
            .map_err(|error| ProjectionError::Rejected(error.to_string()))?;
        current.insert(ods_code, next);
    }

    let mut changed_codes = Vec::new();
    let mut kinds = Vec::new();
    let mut views = Vec::new();
    let mut relinked = Vec::new();
    for (ods_code, organisation) in &current {
        let Some(organisation) = organisation else {
            continue;
        };
        let before = stored.get(*ods_code);
        if before == Some(organisation) {
            continue;
        }
        changed_codes.push(*ods_code);
        kinds.push(organisation.kind as i32);
        views.push(organisation_view(organisation).encode_to_vec());
        if before.map(|before| &before.parents) != Some(&organisation.parents) {
            relinked.push((*ods_code, &organisation.parents));
        }
    }
    if !changed_codes.is_empty() {
        sqlx::query(
            "INSERT INTO organisation_list (ods_code, kind, organisation)
             SELECT * FROM UNNEST($1::text[], $2::integer[], $3::bytea[])
             ON CONFLICT (ods_code) DO UPDATE
             SET kind = excluded.kind, organisation = excluded.organisation",
        )
        .bind(&changed_codes)
        .bind(&kinds)
        .bind(&views)
        .execute(&mut *connection)
        .await?;
    }
    if !relinked.is_empty() {
        let relinked_codes: Vec<&str> = relinked.iter().map(|(ods_code, _)| *ods_code).collect();
        sqlx::query("DELETE FROM organisation_list_parents WHERE ods_code = ANY($1)")
            .bind(&relinked_codes)
            .execute(&mut *connection)
            .await?;
        let mut link_codes = Vec::new();
        let mut positions = Vec::new();
        let mut parent_codes = Vec::new();
        let mut valid_from = Vec::new();
        let mut valid_to = Vec::new();
        for (ods_code, parents) in &relinked {
            for (position, link) in parents.iter().enumerate() {
                link_codes.push(*ods_code);
                positions.push(i32::try_from(position).unwrap_or(i32::MAX));
                parent_codes.push(link.parent_ods_code.as_str());
                valid_from.push(link.valid_from);
                valid_to.push(link.valid_to);
            }
        }
        sqlx::query(
            "INSERT INTO organisation_list_parents
                 (ods_code, position, parent_ods_code, valid_from, valid_to)
             SELECT * FROM UNNEST($1::text[], $2::integer[], $3::text[], $4::date[], $5::date[])",
        )
        .bind(&link_codes)
        .bind(&positions)
        .bind(&parent_codes)
        .bind(&valid_from)
        .bind(&valid_to)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// One page of the organisations `scope` shows, in ODS code order. `query` names the caller's
/// scope and filters, to which the page token is bound.
pub(crate) async fn page(
    pool: &PgPool,
    scope: &OrganisationScope,
    kind: Option<OrganisationKind>,
    query: &str,
    page_size: u32,
    page_token: &str,
) -> Result<api::ListOrganisationsResponse, ServiceError> {
    let page = Page::parse(page_size, page_token, query, 1)?;
    // The scope as SQL, the same rule as `OrganisationScope::shows`: everything; one
    // organisation (the trust, or the board's ICB itself); the programme's trusts; and the
    // organisations whose parent on the day (the first link that holds then) is the ICB.
    let (all, itself, programme_trusts, ics, as_of) = match scope {
        OrganisationScope::All => (true, None, Vec::new(), None, None),
        OrganisationScope::Trust(ods_code) => {
            (false, Some(ods_code.as_str()), Vec::new(), None, None)
        }
        OrganisationScope::Board {
            ics_ods_code,
            programme_trusts,
            as_of,
        } => (
            false,
            ics_ods_code.as_deref(),
            programme_trusts.iter().cloned().collect(),
            ics_ods_code.as_deref(),
            Some(*as_of),
        ),
    };
    let rows = sqlx::query(
        "SELECT o.organisation FROM organisation_list o
         WHERE o.ods_code > $1
           AND ($2::integer IS NULL OR o.kind = $2)
           AND ($3 OR o.ods_code = $4 OR o.ods_code = ANY($5)
                OR (SELECT p.parent_ods_code FROM organisation_list_parents p
                    WHERE p.ods_code = o.ods_code AND p.valid_from <= $7
                      AND (p.valid_to IS NULL OR $7 <= p.valid_to)
                    ORDER BY p.position LIMIT 1) = $6)
         ORDER BY o.ods_code
         LIMIT $8",
    )
    .bind(&page.after()[0])
    .bind(kind.map(|kind| kind as i32))
    .bind(all)
    .bind(itself)
    .bind(&programme_trusts)
    .bind(ics)
    .bind(as_of)
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    let mut organisations = rows
        .iter()
        .map(|row| {
            let bytes: Vec<u8> = row.try_get("organisation")?;
            api::Organisation::decode(bytes.as_slice()).map_err(ServiceError::internal)
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let next_page_token = page.finish(&mut organisations, |organisation| {
        vec![organisation.ods_code.clone()]
    });
    Ok(api::ListOrganisationsResponse {
        organisations,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ics_eventstore::{NewEvent, history_of};
    use ics_proto::events::v1::{
        CqcRating, CqcRatingPublished, CqcRatings, ExecutiveAppointed, ExecutiveDeparted,
        ExecutiveRole, OrganisationLinked, OrganisationRegistered, OrganisationRenamed,
        OrganisationUnlinked,
    };

    fn day(year: i32, month: u32, day: u32) -> Option<ics_proto::events::v1::Date> {
        Some(from_naive(
            NaiveDate::from_ymd_opt(year, month, day).unwrap(),
        ))
    }

    fn ratings(overall: CqcRating) -> CqcRatings {
        CqcRatings {
            overall: overall as i32,
            safe: CqcRating::Good as i32,
            effective: CqcRating::Good as i32,
            caring: CqcRating::Outstanding as i32,
            responsive: CqcRating::Good as i32,
            well_led: overall as i32,
        }
    }

    /// Taken one event at a time through the stored view, as the projection does, the
    /// organisation is the fold of the stream up to that event, at every event.
    #[test]
    fn each_step_through_the_stored_view_is_the_fold() {
        let events = vec![
            NewEvent::encode(
                "RXF",
                &OrganisationRenamed {
                    ods_code: "RXF".into(),
                    previous_name: String::new(),
                    name: "Before registration: ignored".into(),
                },
            ),
            NewEvent::encode(
                "RXF",
                &OrganisationRegistered {
                    ods_code: "RXF".into(),
                    name: "Mid Yorkshire Hospitals NHS Trust".into(),
                    kind: OrganisationKind::Trust as i32,
                },
            ),
            NewEvent::encode(
                "RXF",
                &OrganisationLinked {
                    ods_code: "RXF".into(),
                    parent_ods_code: "QYG".into(),
                    valid_from: day(2020, 1, 1),
                },
            ),
            NewEvent::encode(
                "RXF",
                &CqcRatingPublished {
                    ods_code: "RXF".into(),
                    published_on: day(2023, 5, 1),
                    ratings: Some(ratings(CqcRating::RequiresImprovement)),
                },
            ),
            NewEvent::encode(
                "RXF",
                &CqcRatingPublished {
                    ods_code: "RXF".into(),
                    published_on: day(2021, 5, 1),
                    ratings: Some(ratings(CqcRating::Good)),
                },
            ),
            NewEvent::encode(
                "RXF",
                &OrganisationUnlinked {
                    ods_code: "RXF".into(),
                    parent_ods_code: "QYG".into(),
                    valid_to: day(2024, 6, 30),
                },
            ),
            NewEvent::encode(
                "RXF",
                &OrganisationLinked {
                    ods_code: "RXF".into(),
                    parent_ods_code: "QWO".into(),
                    valid_from: day(2024, 7, 1),
                },
            ),
            NewEvent::encode(
                "RXF",
                &ExecutiveAppointed {
                    ods_code: "RXF".into(),
                    appointment_id: "a1".into(),
                    role: ExecutiveRole::ChiefExecutive as i32,
                    person_name: "A Person".into(),
                    started_on: day(2019, 4, 1),
                },
            ),
            NewEvent::encode(
                "RXF",
                &ExecutiveDeparted {
                    ods_code: "RXF".into(),
                    appointment_id: "a1".into(),
                    left_on: day(2024, 3, 31),
                    ..Default::default()
                },
            ),
            NewEvent::encode(
                "RXF",
                &OrganisationRenamed {
                    ods_code: "RXF".into(),
                    previous_name: "Mid Yorkshire Hospitals NHS Trust".into(),
                    name: "Mid Yorkshire Teaching NHS Trust".into(),
                },
            ),
        ];
        let history: Vec<RecordedEvent> = history_of(events)
            .into_iter()
            .map(|event| RecordedEvent {
                stream_id: organisation::stream_id("RXF"),
                ..event
            })
            .collect();
        let mut stored: Option<Vec<u8>> = None;
        for (index, event) in history.iter().enumerate() {
            let current = stored
                .as_ref()
                .map(|bytes| organisation_of(api::Organisation::decode(bytes.as_slice()).unwrap()))
                .transpose()
                .unwrap();
            let envelope = event.to_envelope("trusts");
            let next =
                Organisation::then(current, &RecordedEvent::from_envelope(&envelope).unwrap())
                    .unwrap();
            let folded = Organisation::fold(&history[..=index]).unwrap();
            assert_eq!(next, folded, "after event {}", index + 1);
            stored = next.map(|organisation| organisation_view(&organisation).encode_to_vec());
        }
        let last = organisation_of(api::Organisation::decode(stored.unwrap().as_slice()).unwrap())
            .unwrap();
        assert_eq!(last.name, "Mid Yorkshire Teaching NHS Trust");
        assert_eq!(last.parents.len(), 2);
        assert_eq!(
            last.parent_on(NaiveDate::from_ymd_opt(2024, 8, 1).unwrap()),
            Some("QWO")
        );
        assert_eq!(
            last.ratings[0].0,
            NaiveDate::from_ymd_opt(2021, 5, 1).unwrap()
        );
        assert_eq!(last.version, 10);
    }
}
