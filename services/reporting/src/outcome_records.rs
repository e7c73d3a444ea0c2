//! The workshops that count towards programme outcomes, held in memory by each reporting
//! process and brought up to date before every outcomes view by reading only the workshops
//! that changed since the last read: after a change to one workshop of 20,000 a view reads one
//! workshop, not 20,000. What is computed from them stays in [`crate::outcomes`].
//!
//! Which workshops changed is read from the database, never taken from change notifications,
//! so a notification lost while the listener reconnects, or a change another replica applied,
//! cannot leave a workshop out of date here:
//! - every write to a workshop or to its metrics and follow-ups stamps the workshop's row with
//!   the writing transaction's id (`changed_by`, kept by triggers: `0004_outcome_marks.sql`);
//! - a read notes its snapshot's xmin, the oldest transaction still running then: every
//!   transaction below it had ended, so whatever it wrote was read. The next read takes again
//!   every workshop stamped at or above that xmin. Transactions commit out of id order (a slow
//!   one holds a smaller id), which "above the highest id read so far" would skip and the xmin
//!   cannot; the event store's relay reads its log the same way. A long transaction anywhere on
//!   the server holds the xmin back, so reads take more workshops again, never fewer;
//! - a rebuild deletes rows, which leaves no stamp behind: it counts in `outcomes_resets`, and a
//!   read that sees the count move loads everything again. So does one that sees transaction
//!   ids go backwards (the schema now lives in another cluster). A schema restored into
//!   another cluster has its workshops restamped when the service starts
//!   ([`OutcomeRecords::restamp_restored`]), or their old cluster's ids, possibly above all of
//!   this one's, would be read again by every view.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use chrono::NaiveDate;
use ics_proto::events::v1::{FollowUpCheckpoint, MetricKind, MetricUnit};
use ics_proto::workshops::v1::{FollowUpState, WorkshopStatus};
use ics_service_kit::error::ServiceError;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row};

use crate::outcomes::{Contributions, MetricRecord, Tally, WorkshopRecord, contributions};

/// A workshop that counts (reported out, not cancelled), with what places it in a scope.
#[derive(Debug, PartialEq)]
pub(crate) struct CountedWorkshop {
    pub(crate) value_stream_id: String,
    pub(crate) held_from: Option<NaiveDate>,
    pub(crate) held_to: Option<NaiveDate>,
    pub(crate) record: WorkshopRecord,
    /// What it adds to each kind's outcome, worked out once when it is read.
    pub(crate) contributions: Contributions,
}

impl CountedWorkshop {
    /// Whether it was held, first to last day, within `window` (either end may be open): a
    /// programme counts only those.
    pub(crate) fn held_within(
        &self,
        (starts_on, ends_on): (Option<NaiveDate>, Option<NaiveDate>),
    ) -> bool {
        let Some(held_from) = self.held_from else {
            return false;
        };
        starts_on.is_none_or(|starts_on| held_from >= starts_on)
            && ends_on.is_none_or(|ends_on| self.held_to.unwrap_or(held_from) <= ends_on)
    }
}

/// Every counted workshop: per trust, and by workshop id within a trust.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct CountedWorkshops {
    /// Shared with the views computing from them; a refresh copies only the trusts whose
    /// workshops changed, and only while a view still holds them.
    by_trust: HashMap<String, Arc<TrustWorkshops>>,
}

/// One trust's counted workshops, by workshop id, with their tallies once a view asked.
#[derive(Debug, Default, Clone)]
pub(crate) struct TrustWorkshops {
    workshops: BTreeMap<String, Arc<CountedWorkshop>>,
    /// Worked out by the first view that needs them after a change, then shared by every
    /// view until the next: an ICS view adds up a few tallies per trust, not every workshop.
    tallies: OnceLock<TrustTallies>,
}

/// The tallies are worked out from the workshops, so the workshops alone say whether two are
/// the same.
impl PartialEq for TrustWorkshops {
    fn eq(&self, other: &Self) -> bool {
        self.workshops == other.workshops
    }
}

impl TrustWorkshops {
    pub(crate) fn tallies(&self) -> &TrustTallies {
        self.tallies
            .get_or_init(|| TrustTallies::of(self.workshops.values().map(Arc::as_ref)))
    }

    fn insert(&mut self, workshop_id: String, workshop: CountedWorkshop) {
        self.workshops.insert(workshop_id, Arc::new(workshop));
        self.tallies = OnceLock::new();
    }

    fn remove(&mut self, workshop_id: &str) {
        self.workshops.remove(workshop_id);
        self.tallies = OnceLock::new();
    }
}

/// Workshops' contributions tallied in workshop id order: all of them, and those of each
/// value stream (workshops without one are in `all` only).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct TrustTallies {
    pub(crate) all: Tally,
    pub(crate) by_value_stream: BTreeMap<String, Tally>,
}

impl TrustTallies {
    pub(crate) fn of<'a>(workshops: impl Iterator<Item = &'a CountedWorkshop>) -> Self {
        let mut tallies = TrustTallies::default();
        for workshop in workshops {
            tallies.all.add(&workshop.contributions);
            let id = &workshop.value_stream_id;
            if id.is_empty() {
                continue;
            }
            // The id is copied once per value stream, not once per workshop.
            match tallies.by_value_stream.get_mut(id) {
                Some(tally) => tally.add(&workshop.contributions),
                None => {
                    let mut tally = Tally::default();
                    tally.add(&workshop.contributions);
                    tallies.by_value_stream.insert(id.clone(), tally);
                }
            }
        }
        tallies
    }
}

impl CountedWorkshops {
    /// The trust's counted workshops, by workshop id.
    pub(crate) fn of_trust(&self, ods_code: &str) -> impl Iterator<Item = &CountedWorkshop> {
        self.by_trust
            .get(ods_code)
            .into_iter()
            .flat_map(|trust| trust.workshops.values().map(Arc::as_ref))
    }

    /// The tallies of all the trust's counted workshops (`None`: it has none).
    pub(crate) fn tallies_of(&self, ods_code: &str) -> Option<&TrustTallies> {
        self.by_trust.get(ods_code).map(|trust| trust.tallies())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_trust
            .values()
            .map(|trust| trust.workshops.len())
            .sum()
    }

    /// Puts what was read of a changed workshop in place: `None` when it no longer counts. A
    /// workshop never changes trust (its charter names it once).
    fn replace(
        &mut self,
        workshop_id: String,
        ods_code: String,
        workshop: Option<CountedWorkshop>,
    ) {
        match workshop {
            Some(workshop) => {
                Arc::make_mut(self.by_trust.entry(ods_code).or_default())
                    .insert(workshop_id, workshop);
            }
            None => {
                if let Some(trust) = self.by_trust.get_mut(&ods_code) {
                    if trust.workshops.contains_key(&workshop_id) {
                        Arc::make_mut(trust).remove(&workshop_id);
                    }
                    if trust.workshops.is_empty() {
                        self.by_trust.remove(&ods_code);
                    }
                }
            }
        }
    }
}

/// What the last refresh read, for tests and the debug log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Refresh {
    /// Everything was loaded (the first read, or after a reset).
    pub(crate) everything: bool,
    /// Workshop rows read.
    pub(crate) workshops: usize,
}

#[derive(Debug)]
struct Loaded {
    /// The xmin of the last read's snapshot: workshops stamped at or above it are read again.
    horizon: u64,
    /// `outcomes_resets` as the last read saw it.
    resets: i64,
    /// Taken just before the last read's snapshot: that read saw every change committed by
    /// then.
    read_from: Instant,
    workshops: Arc<CountedWorkshops>,
    #[cfg(test)]
    refresh: Refresh,
}

/// The counted workshops of the outcomes projection, one set per process, shared by every
/// outcomes view (gRPC, dashboard, board packs).
#[derive(Debug)]
pub struct OutcomeRecords {
    pool: PgPool,
    /// Held while refreshing: refreshes run one at a time.
    loaded: tokio::sync::Mutex<Option<Loaded>>,
}

impl OutcomeRecords {
    pub fn new(pool: PgPool) -> Self {
        OutcomeRecords {
            pool,
            loaded: tokio::sync::Mutex::new(None),
        }
    }

    /// Every counted workshop as committed when this call began (or later).
    pub(crate) async fn current(&self) -> Result<Arc<CountedWorkshops>, ServiceError> {
        let asked = Instant::now();
        let mut loaded = self.loaded.lock().await;
        // A read that began after this call did has seen everything this one would: callers
        // that queued behind it share it.
        if let Some(loaded) = loaded.as_ref().filter(|loaded| loaded.read_from >= asked) {
            return Ok(loaded.workshops.clone());
        }
        let read_from = Instant::now();
        let mut read =
            read_workshops(&self.pool, loaded.as_ref().map(|loaded| loaded.horizon)).await?;
        let incremental = loaded.as_ref().is_some_and(|previous| {
            previous.resets == read.resets && previous.horizon <= read.horizon
        });
        if loaded.is_some() && !incremental {
            // Rebuilt, or now in another cluster, since the last read: load everything.
            read = read_workshops(&self.pool, None).await?;
        }

        let refresh = Refresh {
            everything: !incremental,
            workshops: read.workshops.len(),
        };
        let mut workshops = match loaded.take() {
            Some(previous) if incremental => previous.workshops,
            _ => Arc::default(),
        };
        let all = Arc::make_mut(&mut workshops);
        for (workshop_id, ods_code, workshop) in read.workshops {
            all.replace(workshop_id, ods_code, workshop);
        }
        if refresh.everything {
            tracing::info!(
                workshops = refresh.workshops,
                milliseconds = read_from.elapsed().as_millis() as u64,
                "loaded every counted workshop for outcomes"
            );
        } else {
            tracing::debug!(
                workshops = refresh.workshops,
                "read the workshops changed since the last outcomes view"
            );
        }
        *loaded = Some(Loaded {
            horizon: read.horizon,
            resets: read.resets,
            read_from,
            workshops: workshops.clone(),
            #[cfg(test)]
            refresh,
        });
        Ok(workshops)
    }

    /// After a restore from a backup taken in another cluster, the restored workshops carry
    /// that cluster's transaction ids, which may lie above every id this one has handed out:
    /// every read would take them again, for as long as nothing changes them. Rewriting them
    /// stamps each with this transaction (the trigger does), as any write would. Stamps that
    /// rise meanwhile (a projection applying events) may be rewritten too; that is a write by
    /// this transaction like any other, read once it commits. Returns the workshops restamped.
    pub async fn restamp_restored(pool: &PgPool) -> Result<u64, sqlx::Error> {
        let restamped = sqlx::query(
            "UPDATE workshops SET changed_by = pg_current_xact_id()
             WHERE changed_by >= pg_snapshot_xmax(pg_current_snapshot())",
        )
        .execute(pool)
        .await?
        .rows_affected();
        Ok(restamped)
    }

    /// What the last refresh read.
    #[cfg(test)]
    pub(crate) async fn last_refresh(&self) -> Option<Refresh> {
        self.loaded
            .lock()
            .await
            .as_ref()
            .map(|loaded| loaded.refresh)
    }
}

/// A workshop as read: its id, trust, and what counts of it (`None`: it does not count).
type ReadWorkshop = (String, String, Option<CountedWorkshop>);

/// What one read saw.
struct Read {
    /// The xmin of its snapshot.
    horizon: u64,
    /// `outcomes_resets` in its snapshot.
    resets: i64,
    workshops: Vec<ReadWorkshop>,
}

/// The workshops stamped at or above `since`, or every counted workshop when `None`, each
/// with its metrics and follow-ups, with the snapshot's xmin and count of resets. One
/// statement: one snapshot, and one round trip on a server busy with the commands whose
/// changes the view waits for. A changed workshop is read whether it counts or not (it may
/// have stopped counting), its metrics and follow-ups only when it counts.
async fn read_workshops(pool: &PgPool, since: Option<u64>) -> Result<Read, ServiceError> {
    let sql = read_statement(since.is_some());
    let mut query = sqlx::query(&sql).bind(WorkshopStatus::Cancelled as i32);
    if let Some(since) = since {
        query = query.bind(since.to_string());
    }
    let rows = query.fetch_all(pool).await?;
    read_rows(&rows)
}

/// The statement of [`read_workshops`]: `$1` is the cancelled status, and after a change `$2`
/// the transaction id from which workshops are read again.
fn read_statement(after_change: bool) -> String {
    // A text of its own for a full load, so that each gets its own plan: lookups by key of the
    // few changed rows, or scans of them all. Metrics and follow-ups come as arrays, a column
    // each, aggregated per workshop; unsorted, since sorting each array of 20,000 groups costs
    // more in the server than sorting the few elements of each here.
    //
    // After a change, each changed workshop's metrics and follow-ups are looked up by its key
    // (LATERAL), whatever the planner estimates: it cannot estimate `changed_by >= $2` (no
    // statistics of transaction ids), assumes a third of all workshops changed, and hash-joins
    // every metric of every workshop, which took tens of milliseconds per view at 70,000
    // workshops for the handful that changed. A full load joins the aggregates of all of them
    // by key (not through a CTE, whose missing statistics make the planner expect millions of
    // rows and compile the statement with JIT).
    let counts = "w.reported_out_on IS NOT NULL AND w.status <> $1";
    let metric_arrays = "array_agg(m.position) AS positions, array_agg(m.metric_id) AS metric_ids,
             array_agg(m.kind) AS kinds, array_agg(m.unit) AS units,
             array_agg(m.baseline) AS baselines, array_agg(m.target) AS targets,
             array_agg(m.after_value) AS afters";
    let follow_up_arrays = "array_agg(f.checkpoint) AS checkpoints, array_agg(f.state) AS states,
             array_agg(v.metric_id) AS value_metric_ids, array_agg(v.value) AS measured";
    let follow_ups = "workshop_follow_ups f
             LEFT JOIN workshop_follow_up_values v
               ON v.workshop_id = f.workshop_id AND v.checkpoint = f.checkpoint";
    let (workshops, joins) = if after_change {
        (
            "w.changed_by >= $2::text::xid8",
            format!(
                "LEFT JOIN LATERAL (
                     SELECT {metric_arrays} FROM workshop_metrics m
                     WHERE m.workshop_id = w.workshop_id AND {counts}
                 ) m ON true
                 LEFT JOIN LATERAL (
                     SELECT {follow_up_arrays} FROM {follow_ups}
                     WHERE f.workshop_id = w.workshop_id AND {counts}
                 ) f ON true"
            ),
        )
    } else {
        (
            counts,
            format!(
                "LEFT JOIN (
                     SELECT m.workshop_id, {metric_arrays} FROM workshop_metrics m
                     WHERE m.workshop_id IN (SELECT w.workshop_id FROM workshops w WHERE {counts})
                     GROUP BY m.workshop_id
                 ) m ON m.workshop_id = w.workshop_id
                 LEFT JOIN (
                     SELECT f.workshop_id, {follow_up_arrays} FROM {follow_ups}
                     WHERE f.workshop_id IN (SELECT w.workshop_id FROM workshops w WHERE {counts})
                     GROUP BY f.workshop_id
                 ) f ON f.workshop_id = w.workshop_id"
            ),
        )
    };
    format!(
        "SELECT s.horizon, s.resets, w.workshop_id, w.ods_code, w.value_stream_id, w.held_from,
                w.held_to, {counts} AS counts, m.positions, m.metric_ids, m.kinds, m.units,
                m.baselines, m.targets, m.afters, f.checkpoints, f.states, f.value_metric_ids,
                f.measured
         FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon,
                      coalesce((SELECT resets FROM outcomes_resets), 0) AS resets) s
         LEFT JOIN workshops w ON {workshops}
         {joins}"
    )
}

/// What [`read_workshops`] read, from its rows.
fn read_rows(rows: &[PgRow]) -> Result<Read, ServiceError> {
    let mut read = Read {
        horizon: 0,
        resets: 0,
        workshops: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        let horizon: String = row.try_get("horizon")?;
        read.horizon = horizon.parse().map_err(|_| {
            ServiceError::Internal(format!("snapshot xmin {horizon:?} is not a transaction id"))
        })?;
        read.resets = row.try_get("resets")?;
        // The one row of a read that found no workshop.
        let Some(workshop_id) = row.try_get::<Option<String>, _>("workshop_id")? else {
            continue;
        };
        let ods_code: String = row.try_get("ods_code")?;
        let workshop = if row.try_get("counts")? {
            Some(counted_workshop(row)?)
        } else {
            None
        };
        read.workshops.push((workshop_id, ods_code, workshop));
    }
    Ok(read)
}

/// An array column of a row of [`read_workshops`]: empty where it is null (a workshop without
/// metrics or follow-ups).
fn array<T>(row: &PgRow, column: &str) -> Result<Vec<T>, sqlx::Error>
where
    Vec<T>: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    Ok(row
        .try_get::<Option<Vec<T>>, _>(column)?
        .unwrap_or_default())
}

/// A counted workshop from a row of [`read_workshops`]: its metrics in target-sheet order,
/// each with its follow-up values, and its missed checkpoints, in checkpoint order.
fn counted_workshop(row: &PgRow) -> Result<CountedWorkshop, sqlx::Error> {
    let positions: Vec<i32> = array(row, "positions")?;
    let metric_ids: Vec<String> = array(row, "metric_ids")?;
    let kinds: Vec<i32> = array(row, "kinds")?;
    let units: Vec<i32> = array(row, "units")?;
    let baselines: Vec<f64> = array(row, "baselines")?;
    let targets: Vec<f64> = array(row, "targets")?;
    let afters: Vec<Option<f64>> = array(row, "afters")?;
    let mut metrics: Vec<(i32, String, MetricRecord)> = positions
        .into_iter()
        .zip(metric_ids)
        .zip(kinds.into_iter().zip(units))
        .zip(baselines.into_iter().zip(targets).zip(afters))
        .map(
            |(((position, metric_id), (kind, unit)), ((baseline, target), after))| {
                let metric = MetricRecord {
                    kind: MetricKind::try_from(kind).unwrap_or(MetricKind::Unspecified),
                    unit: MetricUnit::try_from(unit).unwrap_or(MetricUnit::Unspecified),
                    baseline,
                    target,
                    after,
                    follow_ups: Vec::new(),
                };
                (position, metric_id, metric)
            },
        )
        .collect();
    metrics.sort_by_key(|(position, _, _)| *position);

    let checkpoints: Vec<i32> = array(row, "checkpoints")?;
    let states: Vec<i32> = array(row, "states")?;
    let value_metric_ids: Vec<Option<String>> = array(row, "value_metric_ids")?;
    let measured: Vec<Option<f64>> = array(row, "measured")?;
    let mut follow_ups: Vec<(i32, i32, Option<String>, Option<f64>)> = checkpoints
        .into_iter()
        .zip(states)
        .zip(value_metric_ids.into_iter().zip(measured))
        .map(|((checkpoint, state), (metric_id, value))| (checkpoint, state, metric_id, value))
        .collect();
    follow_ups.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let mut missed = Vec::new();
    for (checkpoint, state, metric_id, value) in follow_ups {
        let Ok(checkpoint) = FollowUpCheckpoint::try_from(checkpoint) else {
            continue;
        };
        if state == FollowUpState::Missed as i32 {
            missed.push(checkpoint);
            continue;
        }
        let (Some(metric_id), Some(value)) = (metric_id, value) else {
            continue;
        };
        if let Some((_, _, metric)) = metrics.iter_mut().find(|(_, id, _)| *id == metric_id) {
            metric.follow_ups.push((checkpoint, value));
        }
    }
    let record = WorkshopRecord {
        reported_out: true,
        cancelled: false,
        metrics: metrics.into_iter().map(|(_, _, metric)| metric).collect(),
        missed,
    };
    Ok(CountedWorkshop {
        value_stream_id: row.try_get("value_stream_id")?,
        held_from: row.try_get("held_from")?,
        held_to: row.try_get("held_to")?,
        contributions: contributions(&record),
        record,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use ics_projection::Projection;
    use ics_proto::EventName;
    use ics_proto::events::v1::{
        Date, EventEnvelope, FollowUpMissed, FollowUpRecorded, MetricValue, ReportOutDelivered,
        TargetMetric, WorkshopCancelled, WorkshopChartered, WorkshopClosed, WorkshopHeld,
        WorkshopScheduled,
    };
    use ics_testing::{PrivatePostgres, TestDatabase};
    use prost::Message;

    use super::*;
    use crate::outcomes_projection::OutcomesProjection;

    async fn migrated(database: &TestDatabase) -> PgPool {
        let pool = database.pool("reporting").await;
        ics_eventstore::migrate(
            &pool,
            &[ics_projection::MIGRATIONS, crate::MIGRATIONS].concat(),
        )
        .await
        .unwrap();
        pool
    }

    fn day(day: u32) -> Option<Date> {
        Some(Date {
            year: 2019,
            month: 1 + day / 28,
            day: 1 + day % 28,
        })
    }

    fn envelope<M: Message + EventName>(workshop_id: &str, event: &M) -> EventEnvelope {
        EventEnvelope {
            event_id: uuid::Uuid::now_v7().to_string(),
            source_service: "workshops".into(),
            stream_id: format!("workshop-{workshop_id}"),
            event_type: M::EVENT_TYPE.into(),
            payload: event.encode_to_vec(),
            ..Default::default()
        }
    }

    /// Applies `events` in one transaction, as the projection runner applies a batch.
    async fn apply(pool: &PgPool, events: &[EventEnvelope]) {
        let mut transaction = pool.begin().await.unwrap();
        for event in events {
            OutcomesProjection
                .apply(&mut transaction, event)
                .await
                .unwrap();
        }
        transaction.commit().await.unwrap();
    }

    fn values(metrics: usize, value: f64) -> Vec<MetricValue> {
        (0..metrics)
            .map(|metric| MetricValue {
                metric_id: format!("m{metric}"),
                value: value + metric as f64,
            })
            .collect()
    }

    /// A workshop chartered, scheduled, held and reported out, with one process-time metric.
    fn reported_out(workshop_id: &str, ods_code: &str) -> Vec<EventEnvelope> {
        vec![
            envelope(
                workshop_id,
                &WorkshopChartered {
                    workshop_id: workshop_id.into(),
                    ods_code: ods_code.into(),
                    value_stream_id: format!("vs-{ods_code}"),
                    title: "a workshop".into(),
                    preparation_starts_on: day(1),
                    target_sheet: vec![TargetMetric {
                        metric_id: "m0".into(),
                        name: "time".into(),
                        kind: MetricKind::ProcessTime as i32,
                        unit: MetricUnit::Hours as i32,
                        baseline: 40.0,
                        target: 20.0,
                    }],
                    ..Default::default()
                },
            ),
            envelope(
                workshop_id,
                &WorkshopHeld {
                    workshop_id: workshop_id.into(),
                    held_from: day(30),
                    held_to: day(34),
                    ..Default::default()
                },
            ),
            envelope(
                workshop_id,
                &ReportOutDelivered {
                    workshop_id: workshop_id.into(),
                    delivered_on: day(34),
                    after: values(1, 16.0),
                    ..Default::default()
                },
            ),
        ]
    }

    /// On a server of its own, so that no other test's transaction holds the xmin back: after
    /// a change to one workshop of 300, the next view reads that one workshop and no other.
    #[tokio::test]
    async fn a_change_to_one_workshop_reads_that_workshop_again_and_nothing_else() {
        let cluster = PrivatePostgres::start();
        let database = TestDatabase::create_on(&cluster.server_url()).await;
        let pool = migrated(&database).await;
        let ids: Vec<String> = (0..300).map(|index| format!("w{index:03}")).collect();
        for chunk in ids.chunks(50) {
            let events: Vec<EventEnvelope> = chunk
                .iter()
                .enumerate()
                .flat_map(|(index, id)| reported_out(id, ["RR8", "RAE", "RXF"][index % 3]))
                .collect();
            apply(&pool, &events).await;
        }
        let records = OutcomeRecords::new(pool.clone());
        let loaded = records.current().await.unwrap();
        assert_eq!(loaded.len(), 300);
        assert_eq!(
            records.last_refresh().await,
            Some(Refresh {
                everything: true,
                workshops: 300
            })
        );

        // Nothing changed: nothing is read.
        records.current().await.unwrap();
        assert_eq!(
            records.last_refresh().await,
            Some(Refresh {
                everything: false,
                workshops: 0
            })
        );

        // A follow-up (a row in two tables beside the workshop's) reads its workshop again.
        apply(
            &pool,
            &[envelope(
                "w007",
                &FollowUpRecorded {
                    workshop_id: "w007".into(),
                    checkpoint: FollowUpCheckpoint::Day30 as i32,
                    measured_on: day(70),
                    values: values(1, 18.0),
                    ..Default::default()
                },
            )],
        )
        .await;
        let refreshed = records.current().await.unwrap();
        assert_eq!(
            records.last_refresh().await,
            Some(Refresh {
                everything: false,
                workshops: 1
            })
        );
        let w007 = refreshed
            .of_trust("RAE")
            .find(|workshop| workshop.record.metrics[0].follow_ups.len() == 1)
            .expect("w007's follow-up");
        assert_eq!(
            w007.record.metrics[0].follow_ups,
            vec![(FollowUpCheckpoint::Day30, 18.0)]
        );
        // The views computing from the last set keep it; only the changed trust was copied.
        assert_eq!(loaded.len(), 300);
        assert!(Arc::ptr_eq(
            &loaded.by_trust["RR8"],
            &refreshed.by_trust["RR8"]
        ));
        assert!(!Arc::ptr_eq(
            &loaded.by_trust["RAE"],
            &refreshed.by_trust["RAE"]
        ));
        assert_eq!(
            *refreshed,
            *OutcomeRecords::new(pool.clone()).current().await.unwrap()
        );

        pool.close().await;
        database.drop_database().await;
    }

    /// Workshops restored from another cluster, stamped above every transaction id of this
    /// one, are read by every refresh until restamped, then only when they change.
    #[tokio::test]
    async fn restored_workshops_are_read_again_only_until_restamped() {
        let cluster = PrivatePostgres::start();
        let database = TestDatabase::create_on(&cluster.server_url()).await;
        let pool = migrated(&database).await;
        let events: Vec<EventEnvelope> = (0..20)
            .flat_map(|index| reported_out(&format!("w{index:02}"), "RR8"))
            .collect();
        apply(&pool, &events).await;
        // As restored: the other cluster's ids, written past the trigger.
        let mut transaction = pool.begin().await.unwrap();
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *transaction)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE workshops
             SET changed_by = (pg_current_xact_id()::text::bigint + 1000000)::text::xid8",
        )
        .execute(&mut *transaction)
        .await
        .unwrap();
        transaction.commit().await.unwrap();

        let records = OutcomeRecords::new(pool.clone());
        let read = |workshops: usize| Refresh {
            everything: false,
            workshops,
        };
        records.current().await.unwrap();
        records.current().await.unwrap();
        assert_eq!(records.last_refresh().await, Some(read(20)));
        assert_eq!(OutcomeRecords::restamp_restored(&pool).await.unwrap(), 20);
        records.current().await.unwrap();
        assert_eq!(records.last_refresh().await, Some(read(20)));
        let current = records.current().await.unwrap();
        assert_eq!(records.last_refresh().await, Some(read(0)));
        assert_eq!(current.len(), 20);
        assert_eq!(OutcomeRecords::restamp_restored(&pool).await.unwrap(), 0);

        pool.close().await;
        database.drop_database().await;
    }

    /// A transaction that took its id first but commits last is not skipped: the read between
    /// the two commits stops below it.
    #[tokio::test]
    async fn a_change_committed_after_a_later_one_is_read() {
        let database = TestDatabase::create().await;
        let pool = migrated(&database).await;
        apply(&pool, &reported_out("early", "RR8")).await;
        apply(&pool, &reported_out("late", "RR8")).await;
        let records = OutcomeRecords::new(pool.clone());
        assert_eq!(records.current().await.unwrap().len(), 2);

        let missed = |workshop_id: &str| {
            envelope(
                workshop_id,
                &FollowUpMissed {
                    workshop_id: workshop_id.into(),
                    checkpoint: FollowUpCheckpoint::Day30 as i32,
                    due_on: day(64),
                    ..Default::default()
                },
            )
        };
        // `early` takes its transaction id first and holds it open…
        let mut early = pool.begin().await.unwrap();
        OutcomesProjection
            .apply(&mut early, &missed("early"))
            .await
            .unwrap();
        // …while `late`, with a higher id, commits and is read.
        apply(&pool, &[missed("late")]).await;
        let between = records.current().await.unwrap();
        let missed_of = |workshops: &CountedWorkshops| -> Vec<usize> {
            workshops
                .of_trust("RR8")
                .map(|workshop| workshop.record.missed.len())
                .collect()
        };
        assert_eq!(missed_of(&between), vec![0, 1]);
        early.commit().await.unwrap();
        let after = records.current().await.unwrap();
        assert_eq!(missed_of(&after), vec![1, 1]);

        pool.close().await;
        database.drop_database().await;
    }

    /// A small deterministic generator (xorshift), so a failure can be replayed.
    struct Random(u64);

    impl Random {
        fn below(&mut self, bound: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % bound as u64) as usize
        }
    }

    /// One random event of a workshop in any state, out of its lifecycle too: the set must
    /// follow whatever the projection holds.
    fn random_event(random: &mut Random, workshop_id: &str, metrics: usize) -> EventEnvelope {
        let checkpoint = CHECKPOINT_VALUES[random.below(4)];
        let value = random.below(50) as f64;
        match random.below(8) {
            0 => envelope(
                workshop_id,
                &WorkshopScheduled {
                    workshop_id: workshop_id.into(),
                    starts_on: day(20),
                    ends_on: day(24),
                    ..Default::default()
                },
            ),
            1 => envelope(
                workshop_id,
                &WorkshopHeld {
                    workshop_id: workshop_id.into(),
                    held_from: day(random.below(300) as u32),
                    held_to: day(random.below(300) as u32),
                    ..Default::default()
                },
            ),
            2 | 3 => envelope(
                workshop_id,
                &ReportOutDelivered {
                    workshop_id: workshop_id.into(),
                    delivered_on: day(40),
                    after: values(1 + random.below(metrics), value),
                    ..Default::default()
                },
            ),
            4 => envelope(
                workshop_id,
                &FollowUpRecorded {
                    workshop_id: workshop_id.into(),
                    checkpoint: checkpoint as i32,
                    measured_on: day(80),
                    values: values(random.below(metrics + 1), value),
                    ..Default::default()
                },
            ),
            5 => envelope(
                workshop_id,
                &FollowUpMissed {
                    workshop_id: workshop_id.into(),
                    checkpoint: checkpoint as i32,
                    due_on: day(90),
                    ..Default::default()
                },
            ),
            6 => envelope(
                workshop_id,
                &WorkshopCancelled {
                    workshop_id: workshop_id.into(),
                    cancelled_on: day(25),
                    ..Default::default()
                },
            ),
            _ => envelope(
                workshop_id,
                &WorkshopClosed {
                    workshop_id: workshop_id.into(),
                    closed_on: day(200),
                    ..Default::default()
                },
            ),
        }
    }

    const CHECKPOINT_VALUES: [FollowUpCheckpoint; 4] = crate::outcomes::CHECKPOINTS;

    fn chartered(random: &mut Random, workshop_id: &str, metrics: usize) -> EventEnvelope {
        let kinds = crate::outcomes::KINDS;
        let units = [
            MetricUnit::Minutes,
            MetricUnit::Hours,
            MetricUnit::Days,
            MetricUnit::Count,
            MetricUnit::Percent,
        ];
        envelope(
            workshop_id,
            &WorkshopChartered {
                workshop_id: workshop_id.into(),
                ods_code: ["RR8", "RAE", "RXF"][random.below(3)].into(),
                value_stream_id: format!("vs-{}", random.below(4)),
                title: "a workshop".into(),
                preparation_starts_on: day(1),
                target_sheet: (0..metrics)
                    .map(|metric| TargetMetric {
                        metric_id: format!("m{metric}"),
                        name: format!("metric {metric}"),
                        kind: kinds[random.below(3)] as i32,
                        unit: units[random.below(5)] as i32,
                        baseline: 1.0 + random.below(100) as f64,
                        target: random.below(60) as f64,
                    })
                    .collect(),
                ..Default::default()
            },
        )
    }

    /// Over many random changes, some committed out of order and one a rebuild, the set kept
    /// up to date by reading only what changed equals the set loaded from scratch.
    #[tokio::test]
    async fn the_set_kept_up_to_date_equals_one_loaded_from_scratch_after_every_change() {
        let database = TestDatabase::create().await;
        let pool = migrated(&database).await;
        let mut random = Random(0x05ee_d0f0_c0e5);
        let mut workshops: Vec<(String, usize)> = Vec::new();
        let records = OutcomeRecords::new(pool.clone());
        let mut incremental_reads = 0;
        for step in 0..160 {
            if step == 120 {
                // A rebuild: everything deleted, then built again from new events.
                let mut transaction = pool.begin().await.unwrap();
                OutcomesProjection.reset(&mut transaction).await.unwrap();
                transaction.commit().await.unwrap();
                workshops.clear();
            }
            let mut events = Vec::new();
            for _ in 0..1 + random.below(3) {
                if workshops.is_empty() || random.below(4) == 0 {
                    let id = format!("w{:03}-{step}", workshops.len());
                    let metrics = 1 + random.below(3);
                    events.push(chartered(&mut random, &id, metrics));
                    workshops.push((id, metrics));
                } else {
                    let (id, metrics) = workshops[random.below(workshops.len())].clone();
                    events.push(random_event(&mut random, &id, metrics));
                }
            }
            let apart = events[1..]
                .iter()
                .all(|event| event.stream_id != events[0].stream_id);
            if events.len() > 1 && apart && random.below(2) == 0 {
                // Out of order: the first transaction takes its id, the second commits first
                // and is read before the first commits.
                let mut first = pool.begin().await.unwrap();
                OutcomesProjection
                    .apply(&mut first, &events[0])
                    .await
                    .unwrap();
                apply(&pool, &events[1..]).await;
                let _ = records.current().await.unwrap();
                first.commit().await.unwrap();
            } else {
                apply(&pool, &events).await;
            }
            let kept = records.current().await.unwrap();
            let refresh = records.last_refresh().await.unwrap();
            if !refresh.everything {
                incremental_reads += 1;
            }
            let fresh = OutcomeRecords::new(pool.clone()).current().await.unwrap();
            assert_eq!(*kept, *fresh, "step {step}");
            // The kept trusts' tallies, worked out at every step and kept while their trust
            // does not change, equal those of the set loaded from scratch.
            for trust in ["RR8", "RAE", "RXF"] {
                assert_eq!(
                    kept.tallies_of(trust),
                    fresh.tallies_of(trust),
                    "step {step}, {trust}"
                );
            }
        }
        // Only the first read and the one after the rebuild loaded everything.
        assert!(incremental_reads >= 158, "{incremental_reads}");
        pool.close().await;
        database.drop_database().await;
    }

    /// Without statistics of the stamps (a table just filled, not yet analysed), the planner
    /// takes `changed_by >= $2` to match a third of all workshops, whatever changed. The read
    /// after a change must still look up only the changed workshops' metrics and follow-ups by
    /// key, not scan and hash those of every workshop (tens of milliseconds per view at 70,000
    /// workshops).
    #[tokio::test]
    async fn a_read_after_a_change_looks_up_metrics_and_follow_ups_by_key_whatever_the_estimate() {
        let database = TestDatabase::create().await;
        let pool = migrated(&database).await;
        for statement in [
            "INSERT INTO workshops (workshop_id, ods_code, value_stream_id, kind, title, status,
                 held_from, held_to, reported_out_on)
             SELECT 'w' || w, 'RR8', 'vs-1', 1, 'a workshop', 4, DATE '2019-02-04',
                    DATE '2019-02-08', DATE '2019-02-08'
             FROM generate_series(1, 20000) w",
            "INSERT INTO workshop_metrics (workshop_id, metric_id, position, name, kind, unit,
                 baseline, target, after_value)
             SELECT 'w' || w, 'time', 0, 'time', 1, 2, 40, 20, 10 FROM generate_series(1, 20000) w",
            "INSERT INTO workshop_follow_ups (workshop_id, checkpoint, state, measured_on)
             SELECT 'w' || w, 1, 2, DATE '2019-03-11' FROM generate_series(1, 20000) w",
            "INSERT INTO workshop_follow_up_values (workshop_id, checkpoint, metric_id, value)
             SELECT 'w' || w, 1, 'time', 15 FROM generate_series(1, 20000) w",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        let horizon: String =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
                .fetch_one(&pool)
                .await
                .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {}", read_statement(true)))
            .bind(WorkshopStatus::Cancelled as i32)
            .bind(&horizon)
            .fetch_all(&pool)
            .await
            .unwrap();
        let plan = plan.join("\n");
        for table in [
            "workshop_metrics",
            "workshop_follow_ups",
            "workshop_follow_up_values",
        ] {
            assert!(
                !plan.contains(&format!("Seq Scan on {table} ")),
                "{table} is scanned whole:\n{plan}"
            );
        }
        // And what it reads is right: nothing changed since the horizon but its own stamp.
        let records = OutcomeRecords::new(pool.clone());
        assert_eq!(records.current().await.unwrap().len(), 20_000);
        pool.close().await;
        database.drop_database().await;
    }
}
