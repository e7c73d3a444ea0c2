//! How long an ICS outcomes view takes with 20,000 reported-out workshops: the first one, and
//! one after a change to a single workshop. Ignored by default (it measures, it checks little);
//! run it in release on a quiet machine:
//! `cargo test --release -p ics-reporting --test outcomes_scale -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use ics_proto::events::v1::MetricKind;
use ics_proto::reporting::v1::{Scope, scope};
use ics_reporting::{OutcomeRecords, views};
use ics_testing::TestDatabase;
use sqlx::PgPool;

const WORKSHOPS: i64 = 20_000;
const TRUSTS: i64 = 20;

/// The benchmark's shape: 20 trusts of one ICS, one value stream each, one process-time metric
/// per workshop, a 30-day follow-up on every other one. Written straight into the projection's
/// tables: building it through events would take minutes and measure something else.
async fn seed(pool: &PgPool) {
    for statement in [
        "INSERT INTO organisations (ods_code, name, kind) VALUES ('QWO', 'An ICB', 3)",
        "INSERT INTO organisations (ods_code, name, kind)
         SELECT 'T' || lpad(t::text, 3, '0'), 'Trust ' || t, 1 FROM generate_series(1, $1) t",
        "INSERT INTO organisation_links (ods_code, parent_ods_code, valid_from)
         SELECT 'T' || lpad(t::text, 3, '0'), 'QWO', DATE '2015-01-01' FROM generate_series(1, $1) t",
        "INSERT INTO value_streams (value_stream_id, ods_code, name, status)
         SELECT 'vs-' || t, 'T' || lpad(t::text, 3, '0'), 'Discharge ' || t, 2
         FROM generate_series(1, $1) t",
    ] {
        sqlx::query(statement)
            .bind(TRUSTS)
            .execute(pool)
            .await
            .unwrap();
    }
    for statement in [
        "INSERT INTO workshops (workshop_id, ods_code, value_stream_id, kind, title, status,
             held_from, held_to, reported_out_on)
         SELECT 'w' || lpad(w::text, 6, '0'), 'T' || lpad((1 + w % $2)::text, 3, '0'),
                'vs-' || (1 + w % $2), 1, 'a workshop', 4,
                DATE '2019-02-04', DATE '2019-02-08', DATE '2019-02-08'
         FROM generate_series(1, $1) w",
        "INSERT INTO workshop_metrics (workshop_id, metric_id, position, name, kind, unit,
             baseline, target, after_value)
         SELECT 'w' || lpad(w::text, 6, '0'), 'time', 0, 'time', 1, 2, 40, 20, 10 + w % 20
         FROM generate_series(1, $1) w",
        "INSERT INTO workshop_follow_ups (workshop_id, checkpoint, state, measured_on)
         SELECT 'w' || lpad(w::text, 6, '0'), 1, 2, DATE '2019-03-11'
         FROM generate_series(1, $1, 2) w",
        "INSERT INTO workshop_follow_up_values (workshop_id, checkpoint, metric_id, value)
         SELECT 'w' || lpad(w::text, 6, '0'), 1, 'time', 15 + w % 10
         FROM generate_series(1, $1, 2) w",
    ] {
        sqlx::query(statement)
            .bind(WORKSHOPS)
            .bind(TRUSTS)
            .execute(pool)
            .await
            .unwrap();
    }
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::test]
#[ignore = "measures; run in release with --ignored --nocapture"]
async fn an_ics_outcomes_view_over_20000_workshops_after_one_change() {
    let database = TestDatabase::create().await;
    let pool = common::reporting_pool(&database).await;
    seed(&pool).await;
    let records = OutcomeRecords::new(pool.clone());
    let ics = Scope {
        scope: Some(scope::Scope::IcsOdsCode("QWO".into())),
    };
    let as_of = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();

    let started = Instant::now();
    let first = views::outcomes(&pool, &records, &ics, as_of).await.unwrap();
    println!(
        "first view (loads every workshop): {:.1} ms",
        millis(started.elapsed())
    );
    let process_time = |outcomes: &ics_proto::reporting::v1::Outcomes| {
        outcomes
            .headline
            .iter()
            .find(|kind| kind.kind == MetricKind::ProcessTime as i32)
            .unwrap()
            .clone()
    };
    assert_eq!(process_time(&first).workshops, WORKSHOPS as u32);

    let mut after_a_change = Vec::new();
    for round in 0..50 {
        // One missed follow-up more, as a projection transaction would write it.
        sqlx::query(
            "INSERT INTO workshop_follow_ups (workshop_id, checkpoint, state, due_on)
             VALUES ($1, 2, 3, DATE '2019-04-11')",
        )
        .bind(format!("w{:06}", 2 * round + 2))
        .execute(&pool)
        .await
        .unwrap();
        let started = Instant::now();
        let view = views::outcomes(&pool, &records, &ics, as_of).await.unwrap();
        after_a_change.push(millis(started.elapsed()));
        assert_eq!(process_time(&view).sustainment[1].missed, round + 1);
    }
    after_a_change.sort_by(f64::total_cmp);
    println!(
        "a view after a change to one workshop: p50 {:.1} ms, max {:.1} ms over {} changes",
        after_a_change[after_a_change.len() / 2],
        after_a_change[after_a_change.len() - 1],
        after_a_change.len()
    );
    pool.close().await;
    database.drop_database().await;
}
