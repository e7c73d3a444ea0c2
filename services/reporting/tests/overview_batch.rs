//! The overview projection's set-based batches against the real Postgres: a batch applied at
//! once leaves exactly what applying its events one by one leaves, whatever their mix and order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{rebuild_in_batches, reporting_pool, rows};
use ics_projection::Projection;
use ics_proto::EventName;
use ics_proto::events::v1::{
    CqcRatingPublished, CqcRatings, Date, EventEnvelope, OrganisationKind, OrganisationLinked,
    OrganisationRegistered, OrganisationRenamed,
};
use ics_reporting::OverviewProjection;
use ics_testing::TestDatabase;
use sqlx::PgPool;

fn envelope<M: prost::Message + EventName>(event: &M) -> EventEnvelope {
    common::envelope("trusts", "organisation-test", 1, "", event)
}

/// A deterministic mix of registrations (some twice), runs of renames (some of one trust
/// several times, some of trusts not registered yet), links and ratings between them.
fn events() -> Vec<EventEnvelope> {
    let mut events = Vec::new();
    let mut state = 0x2545_f491_u64;
    let mut next = |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    for round in 0..40 {
        for _ in 0..next(6) {
            let code = format!("R{:02}", next(30));
            events.push(envelope(&OrganisationRegistered {
                ods_code: code.clone(),
                name: format!("{code} registered in round {round}"),
                kind: if next(5) == 0 {
                    OrganisationKind::FoundationTrust as i32
                } else {
                    OrganisationKind::Trust as i32
                },
            }));
        }
        for _ in 0..next(9) {
            let code = format!("R{:02}", next(35));
            events.push(envelope(&OrganisationRenamed {
                ods_code: code.clone(),
                previous_name: String::new(),
                name: format!("{code} renamed in round {round} #{}", next(1000)),
            }));
        }
        if next(3) == 0 {
            events.push(envelope(&OrganisationLinked {
                ods_code: format!("R{:02}", next(30)),
                parent_ods_code: "R00".into(),
                valid_from: Some(Date {
                    year: 2020,
                    month: 1,
                    day: 1 + u32::try_from(next(28)).unwrap(),
                }),
            }));
        }
        if next(4) == 0 {
            events.push(envelope(&CqcRatingPublished {
                ods_code: format!("R{:02}", next(30)),
                published_on: Some(Date {
                    year: 2019,
                    month: 1 + u32::try_from(next(12)).unwrap(),
                    day: 1,
                }),
                ratings: Some(CqcRatings {
                    overall: 1 + i32::try_from(next(4)).unwrap(),
                    ..Default::default()
                }),
            }));
        }
    }
    events
}

async fn tables(pool: &PgPool) -> Vec<String> {
    rows(
        pool,
        &[
            "SELECT ods_code || '|' || name || '|' || kind FROM organisations ORDER BY 1",
            "SELECT ods_code || '|' || parent_ods_code || '|' || valid_from FROM organisation_links ORDER BY 1",
            "SELECT ods_code || '|' || published_on || '|' || overall FROM cqc_ratings ORDER BY 1",
        ],
    )
    .await
}

#[tokio::test]
async fn a_batch_applied_at_once_equals_its_events_applied_one_by_one() {
    let database = TestDatabase::create().await;
    let pool = reporting_pool(&database).await;
    let events = events();
    let renames = events
        .iter()
        .filter(|event| event.event_type == OrganisationRenamed::EVENT_TYPE)
        .count();
    assert!(events.len() > 250 && renames > 100, "{}", events.len());
    let projection = OverviewProjection;

    let mut connection = pool.acquire().await.unwrap();
    for event in &events {
        projection.apply(&mut connection, event).await.unwrap();
    }
    let one_by_one = tables(&pool).await;
    assert!(one_by_one.len() > 40);

    // In batches of several sizes, so runs are cut at batch ends too.
    for size in [events.len(), 97, 10] {
        rebuild_in_batches(&projection, &mut connection, &events, size).await;
        assert_eq!(tables(&pool).await, one_by_one, "batches of {size}");
    }
    drop(connection);
    pool.close().await;
    database.drop_database().await;
}
