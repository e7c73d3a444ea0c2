//! The organisation_list projection against the real Postgres: a batch applied at once leaves
//! exactly the rows its events leave applied one by one, for organisations whose events
//! interleave, whatever the batch boundaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ics_eventstore::migrate;
use ics_projection::Projection;
use ics_proto::EventName;
use ics_proto::events::v1::{
    CqcRating, CqcRatingPublished, CqcRatings, Date, EventEnvelope, ExecutiveAppointed,
    ExecutiveDeparted, ExecutiveRole, OrganisationKind, OrganisationLinked, OrganisationRegistered,
    OrganisationRenamed, OrganisationUnlinked,
};
use ics_testing::TestDatabase;
use ics_trusts::organisation_list::OrganisationListProjection;
use prost::Message;
use sqlx::PgPool;

fn day(year: i32, month: u32, day: u32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// One organisation's history, as its stream numbers it.
fn history(ods_code: &str) -> Vec<EventEnvelope> {
    let mut events: Vec<(String, Vec<u8>)> = Vec::new();
    let mut push = |event_type: &str, payload: Vec<u8>| events.push((event_type.into(), payload));
    push(
        OrganisationRenamed::EVENT_TYPE,
        OrganisationRenamed {
            ods_code: ods_code.into(),
            previous_name: String::new(),
            name: "Before registration: ignored".into(),
        }
        .encode_to_vec(),
    );
    push(
        OrganisationRegistered::EVENT_TYPE,
        OrganisationRegistered {
            ods_code: ods_code.into(),
            name: format!("{ods_code} Hospitals NHS Trust"),
            kind: OrganisationKind::Trust as i32,
        }
        .encode_to_vec(),
    );
    push(
        OrganisationLinked::EVENT_TYPE,
        OrganisationLinked {
            ods_code: ods_code.into(),
            parent_ods_code: "QYG".into(),
            valid_from: day(2020, 1, 1),
        }
        .encode_to_vec(),
    );
    for round in 0..5 {
        push(
            OrganisationRenamed::EVENT_TYPE,
            OrganisationRenamed {
                ods_code: ods_code.into(),
                previous_name: String::new(),
                name: format!("{ods_code} renamed {round}"),
            }
            .encode_to_vec(),
        );
    }
    push(
        CqcRatingPublished::EVENT_TYPE,
        CqcRatingPublished {
            ods_code: ods_code.into(),
            published_on: day(2023, 5, 1),
            ratings: Some(CqcRatings {
                overall: CqcRating::Good as i32,
                ..Default::default()
            }),
        }
        .encode_to_vec(),
    );
    push(
        OrganisationUnlinked::EVENT_TYPE,
        OrganisationUnlinked {
            ods_code: ods_code.into(),
            parent_ods_code: "QYG".into(),
            valid_to: day(2024, 6, 30),
        }
        .encode_to_vec(),
    );
    push(
        OrganisationLinked::EVENT_TYPE,
        OrganisationLinked {
            ods_code: ods_code.into(),
            parent_ods_code: "QWO".into(),
            valid_from: day(2024, 7, 1),
        }
        .encode_to_vec(),
    );
    push(
        ExecutiveAppointed::EVENT_TYPE,
        ExecutiveAppointed {
            ods_code: ods_code.into(),
            appointment_id: format!("{ods_code}-a1"),
            role: ExecutiveRole::ChiefExecutive as i32,
            person_name: "A Person".into(),
            started_on: day(2019, 4, 1),
        }
        .encode_to_vec(),
    );
    push(
        ExecutiveDeparted::EVENT_TYPE,
        ExecutiveDeparted {
            ods_code: ods_code.into(),
            appointment_id: format!("{ods_code}-a1"),
            left_on: day(2024, 3, 31),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    events
        .into_iter()
        .enumerate()
        .map(|(index, (event_type, payload))| EventEnvelope {
            event_id: uuid::Uuid::now_v7().to_string(),
            source_service: "trusts".into(),
            stream_id: format!("organisation-{ods_code}"),
            stream_version: index as u64 + 1,
            event_type,
            schema_version: 1,
            payload,
            organisation: ods_code.into(),
            metadata: Some(Default::default()),
            recorded_at: Some(Default::default()),
            ..Default::default()
        })
        .collect()
}

async fn rows(pool: &PgPool) -> Vec<String> {
    let mut rows: Vec<String> = sqlx::query_scalar(
        "SELECT ods_code || '|' || kind || '|' || encode(organisation, 'hex')
         FROM organisation_list ORDER BY ods_code",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let parents: Vec<String> = sqlx::query_scalar(
        "SELECT ods_code || '|' || position || '|' || parent_ods_code || '|' || valid_from
             || '|' || coalesce(valid_to::text, '')
         FROM organisation_list_parents ORDER BY ods_code, position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.extend(parents);
    rows
}

#[tokio::test]
async fn a_batch_applied_at_once_equals_its_events_applied_one_by_one() {
    let database = TestDatabase::create().await;
    let pool = database.pool("trusts").await;
    migrate(
        &pool,
        &[ics_projection::MIGRATIONS, ics_trusts::MIGRATIONS].concat(),
    )
    .await
    .unwrap();
    // Three organisations' histories interleaved, as a stream delivers them; a programme's
    // event among them, which the list ignores.
    let histories: Vec<Vec<EventEnvelope>> =
        ["RXF", "RR8", "RAE"].into_iter().map(history).collect();
    let mut events = Vec::new();
    for index in 0..histories[0].len() {
        for history in &histories {
            events.push(history[index].clone());
        }
        if index == 3 {
            events.push(EventEnvelope {
                stream_id: "programme-0190a0b1".into(),
                ..histories[0][0].clone()
            });
        }
    }
    let projection = OrganisationListProjection;
    let mut connection = pool.acquire().await.unwrap();
    for event in &events {
        projection.apply(&mut connection, event).await.unwrap();
    }
    let one_by_one = rows(&pool).await;
    assert_eq!(
        one_by_one.len(),
        3 + 6,
        "three organisations with two links each"
    );
    for size in [events.len(), 7, 2] {
        projection.reset(&mut connection).await.unwrap();
        for batch in events.chunks(size) {
            projection
                .apply_batch(&mut connection, batch)
                .await
                .unwrap();
        }
        assert_eq!(rows(&pool).await, one_by_one, "batches of {size}");
    }
    drop(connection);
    pool.close().await;
    database.drop_database().await;
}
