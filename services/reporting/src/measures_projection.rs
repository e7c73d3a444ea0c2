//! The measures projection, from the metrics service's events: measure definitions, peer groups,
//! and one row per series holding the series itself (as a `SeriesRecord`) with what the ICS view
//! reads without unpacking it — latest value, icons, target, rule set, and the latest points
//! with a numerator and denominator for peer bands. The icons are computed here with the same
//! rules the metrics service records its signals with (`ics-measures`), so they agree.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use ics_measures::{Series, SeriesChange};
use ics_projection::{Projection, ProjectionError, decode_payload as decode, delete_all};
use ics_proto::EventName;
use ics_proto::date::to_naive;
use ics_proto::events::v1::{
    EventEnvelope, MeasureDefined, MeasureDefinition, PeerGroupDefined, SeriesKey,
};
use prost::Message;
use sqlx::{PgConnection, Row};

pub const MEASURES: &str = "measures";

/// How many of a series' latest points with a numerator and denominator the row keeps.
const RECENT_POINTS: usize = 36;

#[derive(Debug, Default)]
pub struct MeasuresProjection;

fn malformed(detail: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Rejected(detail.to_string())
}

async fn definition(
    connection: &mut PgConnection,
    code: &str,
) -> Result<MeasureDefinition, ProjectionError> {
    let bytes: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT definition FROM measure_definitions WHERE code = $1")
            .bind(code)
            .fetch_optional(&mut *connection)
            .await?;
    // Measures are defined before their observations in the same log; a missing one (a
    // definition dead-lettered, say) still keeps the data, without direction or target.
    match bytes {
        Some(bytes) => MeasureDefinition::decode(bytes.as_slice()).map_err(malformed),
        None => Ok(MeasureDefinition {
            code: code.to_string(),
            display_scale: 1.0,
            ..MeasureDefinition::default()
        }),
    }
}

async fn load(connection: &mut PgConnection, key: &SeriesKey) -> Result<Series, ProjectionError> {
    let bytes: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT record FROM measure_series
         WHERE measure_code = $1 AND ods_code = $2 AND value_stream_id = $3",
    )
    .bind(&key.measure_code)
    .bind(&key.ods_code)
    .bind(&key.value_stream_id)
    .fetch_optional(&mut *connection)
    .await?;
    match bytes {
        Some(bytes) => Series::decode(&bytes).map_err(malformed),
        None => Ok(Series::new(key.clone())),
    }
}

/// Writes the series row with its SPC recomputed under `measure`.
async fn store(
    connection: &mut PgConnection,
    series: &Series,
    measure: &MeasureDefinition,
) -> Result<(), ProjectionError> {
    let spc = series.summary(measure);
    let latest = series.latest();
    let mut recent: Vec<_> = series.counts().rev().take(RECENT_POINTS).collect();
    recent.reverse();
    let starts: Vec<chrono::NaiveDate> = recent.iter().map(|(start, ..)| *start).collect();
    let numerators: Vec<f64> = recent.iter().map(|(_, numerator, _)| *numerator).collect();
    let denominators: Vec<f64> = recent
        .iter()
        .map(|(.., denominator)| *denominator)
        .collect();
    let rule_set = spc.rule_set;
    sqlx::query(
        "INSERT INTO measure_series (measure_code, ods_code, value_stream_id, record, points,
             latest_start, latest_end, latest_value, variation, assurance, target, rule_set,
             rule_set_version, recent_starts, recent_numerators, recent_denominators)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (measure_code, ods_code, value_stream_id) DO UPDATE SET
             record = excluded.record, points = excluded.points,
             latest_start = excluded.latest_start, latest_end = excluded.latest_end,
             latest_value = excluded.latest_value, variation = excluded.variation,
             assurance = excluded.assurance, target = excluded.target,
             rule_set = excluded.rule_set, rule_set_version = excluded.rule_set_version,
             recent_starts = excluded.recent_starts,
             recent_numerators = excluded.recent_numerators,
             recent_denominators = excluded.recent_denominators",
    )
    .bind(&series.key.measure_code)
    .bind(&series.key.ods_code)
    .bind(&series.key.value_stream_id)
    .bind(series.encode())
    .bind(i32::try_from(series.len()).unwrap_or(i32::MAX))
    .bind(latest.and_then(|point| point.observation.period_start.as_ref().and_then(to_naive)))
    .bind(latest.and_then(|point| point.observation.period_end.as_ref().and_then(to_naive)))
    .bind(latest.map(|point| point.observation.value))
    .bind(spc.variation as i32)
    .bind(spc.assurance as i32)
    .bind(spc.target)
    .bind(rule_set.name)
    .bind(rule_set.version)
    .bind(starts)
    .bind(numerators)
    .bind(denominators)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// The series a batch changed, each loaded once and written once when the batch (or the run of
/// series events before a definition) ends, in the order the batch first touched them.
#[derive(Default)]
struct ChangedSeries {
    series: Vec<Series>,
    by_key: HashMap<(String, String, String), usize>,
}

impl ChangedSeries {
    async fn apply(
        &mut self,
        connection: &mut PgConnection,
        change: SeriesChange,
    ) -> Result<(), ProjectionError> {
        let key = change
            .series()
            .ok_or_else(|| malformed("series event without a series"))?;
        let row = (
            key.measure_code.clone(),
            key.ods_code.clone(),
            key.value_stream_id.clone(),
        );
        let index = match self.by_key.get(&row) {
            Some(&index) => index,
            None => {
                let loaded = load(connection, key).await?;
                self.series.push(loaded);
                self.by_key.insert(row, self.series.len() - 1);
                self.series.len() - 1
            }
        };
        self.series[index].apply_change(change);
        Ok(())
    }

    /// Writes every changed series with its measure's definition as it stands now.
    async fn write(&mut self, connection: &mut PgConnection) -> Result<(), ProjectionError> {
        self.by_key.clear();
        let mut measures: HashMap<String, MeasureDefinition> = HashMap::new();
        for series in std::mem::take(&mut self.series) {
            let code = &series.key.measure_code;
            if !measures.contains_key(code) {
                let measure = definition(connection, code).await?;
                measures.insert(code.clone(), measure);
            }
            let measure = &measures[code];
            store(connection, &series, measure).await?;
        }
        Ok(())
    }
}

/// A measure or peer group definition: recorded as it comes, and a measure's new definition
/// recomputes the icons of every series of the measure.
async fn apply_definition(
    connection: &mut PgConnection,
    event: &EventEnvelope,
) -> Result<(), ProjectionError> {
    let event_type = event.event_type.as_str();
    if event_type == MeasureDefined::EVENT_TYPE {
        let defined: MeasureDefined = decode(event)?;
        let definition = defined.definition.unwrap_or_default();
        sqlx::query(
            "INSERT INTO measure_definitions (code, definition, revision)
             VALUES ($1, $2, $3)
             ON CONFLICT (code) DO UPDATE
             SET definition = excluded.definition, revision = excluded.revision",
        )
        .bind(&definition.code)
        .bind(definition.encode_to_vec())
        .bind(i32::try_from(defined.revision).unwrap_or(i32::MAX))
        .execute(&mut *connection)
        .await?;
        // A new direction, target or rule set changes every series' icons.
        let records: Vec<Vec<u8>> =
            sqlx::query("SELECT record FROM measure_series WHERE measure_code = $1")
                .bind(&definition.code)
                .fetch_all(&mut *connection)
                .await?
                .iter()
                .map(|row| row.try_get("record"))
                .collect::<Result<_, _>>()?;
        for record in records {
            let series = Series::decode(&record).map_err(malformed)?;
            store(connection, &series, &definition).await?;
        }
    } else if event_type == PeerGroupDefined::EVENT_TYPE {
        let defined: PeerGroupDefined = decode(event)?;
        sqlx::query(
            "INSERT INTO peer_groups (peer_group_id, definition, version)
             VALUES ($1, $2, $3)
             ON CONFLICT (peer_group_id) DO UPDATE
             SET definition = excluded.definition, version = excluded.version",
        )
        .bind(&defined.peer_group_id)
        .bind(defined.encode_to_vec())
        .bind(i32::try_from(defined.version).unwrap_or(i32::MAX))
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

impl Projection for MeasuresProjection {
    fn name(&self) -> &str {
        MEASURES
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        self.apply_batch(connection, std::slice::from_ref(event))
    }

    /// A back-load brings a series' observations as several events one after another, and each
    /// write of a series rewrites all of it with its icons recomputed: the events of a series
    /// are applied to it in memory and the series written once. A measure's definition ends the
    /// run, so the series before it are written under the definition they were recorded under,
    /// as they would be one event at a time.
    fn apply_batch<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let mut changed = ChangedSeries::default();
            for event in events {
                match SeriesChange::decode(&event.event_type, &event.payload).map_err(malformed)? {
                    Some(change) => changed.apply(connection, change).await?,
                    None if event.event_type == MeasureDefined::EVENT_TYPE => {
                        changed.write(connection).await?;
                        apply_definition(connection, event).await?;
                    }
                    // Peer groups are a table of their own; the rest is not this projection's.
                    None => apply_definition(connection, event).await?,
                }
            }
            changed.write(connection).await
        })
    }

    fn reset<'a>(
        &'a self,
        connection: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(delete_all(
            connection,
            &["measure_definitions", "measure_series", "peer_groups"],
        ))
    }
}
