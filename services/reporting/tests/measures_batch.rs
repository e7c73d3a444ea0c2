//! The measures projection's batches against the real Postgres: a series' events in one batch
//! are applied in memory and the series written once, and what that leaves equals applying the
//! events one by one, across measure redefinitions, corrections, ghosts, partitions, targets,
//! peer groups and events the projection does not use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{rebuild_in_batches, reporting_pool, rows};
use ics_projection::Projection;
use ics_proto::events::v1::{
    Date, EventEnvelope, ImprovementDirection, MeasureDefined, MeasureDefinition,
    ObservationCorrected, ObservationGhosted, ObservationPoint, ObservationsRecorded,
    PartitionMarkKind, PartitionMarked, PeerGroupDefined, SeriesKey, SeriesTargetSet,
    VariationIcon, VariationIconChanged,
};
use ics_reporting::MeasuresProjection;
use ics_testing::TestDatabase;
use sqlx::PgPool;

fn envelope<M: prost::Message + ics_proto::EventName>(event: &M) -> EventEnvelope {
    common::envelope("metrics", "series-test", 1, "", event)
}

fn month(index: u32) -> Date {
    Date {
        year: 2020 + i32::try_from(index / 12).unwrap(),
        month: 1 + index % 12,
        day: 1,
    }
}

fn key(series: u64) -> SeriesKey {
    SeriesKey {
        measure_code: format!("M{}", series % 2),
        ods_code: format!("R{:02}", series / 2),
        value_stream_id: String::new(),
    }
}

fn point(period: u32, value: f64, revision: u32) -> ObservationPoint {
    ObservationPoint {
        period_start: Some(month(period)),
        period_end: Some(month(period)),
        value,
        numerator: Some(value),
        denominator: Some(100.0),
        source: String::new(),
        revision,
    }
}

fn defined(
    code: &str,
    revision: u32,
    target: f64,
    direction: ImprovementDirection,
) -> MeasureDefined {
    MeasureDefined {
        definition: Some(MeasureDefinition {
            code: code.into(),
            name: format!("Measure {code}"),
            direction: direction as i32,
            target: Some(target),
            display_scale: 1.0,
            ..Default::default()
        }),
        revision,
    }
}

/// A back-load's shape and more: runs of recordings of six series (two measures), each series
/// several times in a row and interleaved with the others, with the metrics service's icon
/// changes among them, corrections, ghosts, partitions and targets, peer groups, and each
/// measure redefined midway with another target and direction.
fn events() -> Vec<EventEnvelope> {
    let mut events = vec![
        envelope(&defined("M0", 1, 40.0, ImprovementDirection::Increase)),
        envelope(&defined("M1", 1, 60.0, ImprovementDirection::Decrease)),
    ];
    let mut state = 0x9e37_79b9_u64;
    let mut next = |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let mut recorded = [0u32; 6];
    for round in 0..60 {
        let series = next(6);
        for _ in 0..=next(3) {
            let from = recorded[series as usize];
            let observations = (from..from + 1 + u32::try_from(next(5)).unwrap())
                .map(|period| point(period, 30.0 + next(40) as f64, 1))
                .collect::<Vec<_>>();
            recorded[series as usize] += u32::try_from(observations.len()).unwrap();
            events.push(envelope(&ObservationsRecorded {
                series: Some(key(series)),
                observations,
            }));
        }
        if next(3) == 0 {
            events.push(envelope(&VariationIconChanged {
                series: Some(key(series)),
                previous: VariationIcon::CommonCause as i32,
                current: VariationIcon::ImprovementHigh as i32,
                ..Default::default()
            }));
        }
        let last = recorded[series as usize].saturating_sub(1);
        match next(8) {
            0 => events.push(envelope(&ObservationCorrected {
                series: Some(key(series)),
                observation: Some(point(last, 95.0, 2)),
                reason: "corrected".into(),
            })),
            1 => events.push(envelope(&ObservationGhosted {
                series: Some(key(series)),
                period_start: Some(month(last)),
                ghosted: next(2) == 0,
                reason: "ghosted".into(),
            })),
            2 => events.push(envelope(&PartitionMarked {
                series: Some(key(series)),
                period_start: Some(month(last)),
                kind: PartitionMarkKind::RecalculateFrom as i32,
                reason: "rebased".into(),
                ..Default::default()
            })),
            3 => events.push(envelope(&SeriesTargetSet {
                series: Some(key(series)),
                target: Some(50.0 + next(20) as f64),
                reason: "set".into(),
            })),
            4 => events.push(envelope(&PeerGroupDefined {
                peer_group_id: format!("group-{}", next(3)),
                name: format!("Group in round {round}"),
                members: vec!["R00".into(), "R01".into()],
                version: round,
                ..Default::default()
            })),
            _ => {}
        }
        if round == 30 {
            events.push(envelope(&defined(
                "M0",
                2,
                70.0,
                ImprovementDirection::Decrease,
            )));
        }
        if round == 45 {
            events.push(envelope(&defined(
                "M1",
                2,
                20.0,
                ImprovementDirection::Increase,
            )));
        }
    }
    events
}

async fn tables(pool: &PgPool) -> Vec<String> {
    rows(
        pool,
        &[
            "SELECT concat_ws('|', measure_code, ods_code, value_stream_id, encode(record, 'hex'),
                 points, latest_start, latest_end, latest_value, variation, assurance, target,
                 rule_set, rule_set_version, recent_starts, recent_numerators, recent_denominators)
             FROM measure_series ORDER BY 1",
            "SELECT concat_ws('|', code, encode(definition, 'hex'), revision)
             FROM measure_definitions ORDER BY 1",
            "SELECT concat_ws('|', peer_group_id, encode(definition, 'hex'), version)
             FROM peer_groups ORDER BY 1",
        ],
    )
    .await
}

async fn series_writes(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM series_writes")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_series_is_written_once_a_batch_and_batches_equal_their_events_one_by_one() {
    let database = TestDatabase::create().await;
    let pool = reporting_pool(&database).await;
    sqlx::raw_sql(
        "CREATE TABLE series_writes (at timestamptz NOT NULL DEFAULT clock_timestamp());
         CREATE FUNCTION count_series_write() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO series_writes DEFAULT VALUES; RETURN NEW; END $$;
         CREATE TRIGGER series_written AFTER INSERT OR UPDATE ON measure_series
             FOR EACH ROW EXECUTE FUNCTION count_series_write();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let events = events();
    let series_events = events
        .iter()
        .filter(|event| {
            ics_measures::SeriesChange::decode(&event.event_type, &event.payload)
                .unwrap()
                .is_some()
        })
        .count();
    assert!(series_events > 120, "{series_events} series events");
    let projection = MeasuresProjection;

    let mut connection = pool.acquire().await.unwrap();
    for event in &events {
        projection.apply(&mut connection, event).await.unwrap();
    }
    let one_by_one = tables(&pool).await;
    assert_eq!(
        one_by_one
            .iter()
            .filter(|row| row.starts_with('M') && row.contains("|R"))
            .count(),
        6,
        "six series"
    );

    for size in [events.len(), 25, 4] {
        let writes_before = series_writes(&pool).await;
        rebuild_in_batches(&projection, &mut connection, &events, size).await;
        assert_eq!(tables(&pool).await, one_by_one, "batches of {size}");
        if size == events.len() {
            // Each series once before the first redefinition, once between the two, once
            // after; each redefinition rewrites its measure's three series.
            let writes = series_writes(&pool).await - writes_before;
            assert!(
                writes <= 3 * 6 + 2 * 3,
                "{writes} writes of six series for {series_events} series events in one batch"
            );
        }
    }
    drop(connection);
    pool.close().await;
    database.drop_database().await;
}
