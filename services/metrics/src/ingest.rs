//! Bulk ingest: a client stream of observation chunks, checked row by row, grouped by series and
//! appended in batches. Each batch appends one event per series (split past
//! [`MAX_OBSERVATIONS_PER_EVENT`](crate::series::MAX_OBSERVATIONS_PER_EVENT)) plus the SPC
//! signals it caused, so back-loading years of history costs a few appends per series rather
//! than one per observation. The summary is sent only after every batch has committed: an
//! acknowledged observation is durable. A stream that breaks off keeps the batches already
//! committed; sending it again is safe, because observations are idempotent per key. One batch
//! is written while the next is read and checked.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use ics_eventstore::{CommandContext, EventStore, ExpectedVersion};
use ics_measures::{check_figures, series_stream};
use ics_proto::events::v1::{MeasureDefinition, SeriesKey};
use ics_proto::metrics::v1::{
    IngestObservationsRequest, IngestRejection, IngestSummary, ObservationInput,
};
use ics_service_kit::Principal;
use ics_service_kit::auth::Denied;
use ics_service_kit::error::{ServiceError, code_name};
use tokio::task::JoinHandle;
use tonic::Status;
use uuid::Uuid;

use crate::references::{References, Rejection};
use crate::series::{self, Incoming, Recorded};

/// Observations buffered before a batch is written.
const BATCH_OBSERVATIONS: usize = 10_000;
/// Series appended at the same time within a batch.
const CONCURRENT_SERIES: usize = 4;
/// Rejections listed in the summary; the count covers them all.
const MAX_LISTED_REJECTIONS: usize = 1_000;
/// Organisations named in a stream's audit line at most: enough to see whom a hostile stream
/// aimed at without letting it write an unbounded line.
const MAX_AUDITED_RESOURCES: usize = 10;

pub const COMMAND_TYPE: &str = "IngestObservations";

/// Observations of one batch, by series stream id.
type BatchSeries = BTreeMap<String, (SeriesKey, Arc<MeasureDefinition>, Vec<Incoming>)>;

/// The rows checked since the last write, and how many.
#[derive(Default)]
struct Batch {
    series: BatchSeries,
    rows: usize,
}

impl Batch {
    /// Adds a row to its series' rows. The series' stream id, key and measure are copied only
    /// for its first row in the batch: a back-load brings millions of rows of a few series.
    fn push(&mut self, series: &LastSeries, row: Incoming) {
        match self.series.get_mut(&series.stream_id) {
            Some((_, _, rows)) => rows.push(row),
            None => {
                let rows = (series.key.clone(), series.measure.clone(), vec![row]);
                self.series.insert(series.stream_id.clone(), rows);
            }
        }
        self.rows += 1;
    }
}

/// The series the previous accepted row belonged to: rows of the same series (the usual shape
/// of an export) skip the measure, organisation and permission checks it already passed.
struct LastSeries {
    stream_id: String,
    key: SeriesKey,
    measure: Arc<MeasureDefinition>,
}

impl LastSeries {
    fn holds(&self, input: &ObservationInput) -> bool {
        self.key.measure_code == input.measure_code
            && self.key.ods_code == input.ods_code
            && self
                .key
                .value_stream_id
                .eq_ignore_ascii_case(&input.value_stream_id)
    }
}

struct Ingest<'a> {
    store: &'a EventStore,
    principal: &'a Principal,
    references: References,
    summary: IngestSummary,
    batch: Batch,
    last: Option<LastSeries>,
    series_seen: HashSet<String>,
    trace: (String, String),
    /// Rows refused for permission, and the first few organisations they named: audited once,
    /// in the stream's summary line.
    denied: u64,
    denied_resources: BTreeSet<String>,
    /// The batch being written while the next one is read and checked.
    in_flight: Option<JoinHandle<Result<Vec<Recorded>, ServiceError>>>,
}

impl Ingest<'_> {
    fn reject(
        &mut self,
        index: u64,
        field: String,
        error: &ServiceError,
        reason: String,
        denied: Option<Denied>,
    ) {
        self.summary.rejected += 1;
        if matches!(error, ServiceError::PermissionDenied(_)) {
            self.denied += 1;
        }
        if let Some(denied) = denied
            && self.denied_resources.len() < MAX_AUDITED_RESOURCES
        {
            self.denied_resources.insert(denied.resource);
        }
        if self.summary.rejections.len() < MAX_LISTED_REJECTIONS {
            self.summary.rejections.push(IngestRejection {
                index,
                field,
                reason,
                code: code_name(error.code()).to_string(),
            });
        }
    }

    /// Checks one row and adds it to the batch, or records its rejection.
    async fn accept(
        &mut self,
        position: u64,
        input: &ObservationInput,
    ) -> Result<(), ServiceError> {
        if let Some(last) = &self.last
            && last.holds(input)
        {
            // The key passed with the series' first row: only the figures are checked.
            match check_figures(input, &last.measure, "") {
                Ok((period_start, point)) => self.batch.push(
                    last,
                    Incoming {
                        index: position,
                        period_start,
                        point,
                    },
                ),
                Err(violations) => {
                    let field = violations
                        .first()
                        .map(|violation| violation.field.clone())
                        .unwrap_or_default();
                    let error = ServiceError::InvalidArgument(violations);
                    let reason = error.reason();
                    self.reject(position, field, &error, reason, None);
                }
            }
            return Ok(());
        }
        match self.references.resolve(self.principal, input, "").await? {
            Ok(resolved) => {
                let stream_id = series_stream(&resolved.checked.key);
                self.series_seen.insert(stream_id.clone());
                let series = LastSeries {
                    stream_id,
                    key: resolved.checked.key,
                    measure: resolved.measure,
                };
                self.batch.push(
                    &series,
                    Incoming {
                        index: position,
                        period_start: resolved.checked.period_start,
                        point: resolved.checked.point,
                    },
                );
                self.last = Some(series);
            }
            Err(Rejection {
                field,
                error,
                denied,
            }) => {
                let reason = error.reason();
                self.reject(position, field, &error, reason, denied);
            }
        }
        Ok(())
    }

    /// Starts writing the current batch once the one before it has been written.
    async fn flush(&mut self) -> Result<(), ServiceError> {
        self.settle().await?;
        let batch = std::mem::take(&mut self.batch).series;
        if batch.is_empty() {
            return Ok(());
        }
        let context = CommandContext {
            request_id: String::new(),
            principal: self.principal.label(),
            correlation_id: String::new(),
            causation_id: String::new(),
            traceparent: self.trace.0.clone(),
            tracestate: self.trace.1.clone(),
        };
        self.in_flight = Some(tokio::spawn(write_batch(
            self.store.clone(),
            context,
            batch,
        )));
        Ok(())
    }

    /// Waits for the batch in flight and counts what it did.
    async fn settle(&mut self) -> Result<(), ServiceError> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let results = in_flight.await.map_err(ServiceError::internal)??;
        for recorded in results {
            self.summary.recorded += recorded.recorded.len() as u64;
            self.summary.unchanged += recorded.unchanged.len() as u64;
            self.summary.spc_events += u32::try_from(recorded.spc_events).unwrap_or(u32::MAX);
            for (index, reason) in recorded.conflicts {
                let error = ServiceError::FailedPrecondition(reason.clone());
                self.reject(index, "value".to_string(), &error, reason, None);
            }
        }
        Ok(())
    }
}

/// Appends one batch, a few series at a time, each as one command on its series.
async fn write_batch(
    store: EventStore,
    context: CommandContext,
    batch: BatchSeries,
) -> Result<Vec<Recorded>, ServiceError> {
    let store = &store;
    let context = &context;
    let results: Vec<Result<Recorded, ServiceError>> =
        futures_util::stream::iter(batch.into_iter().map(|(stream_id, (key, measure, rows))| {
            let context = CommandContext {
                // Idempotency is per observation key here, so each append only needs a
                // request id of its own.
                request_id: Uuid::now_v7().to_string(),
                ..context.clone()
            };
            async move {
                let outcome = Mutex::new(Recorded::default());
                store
                    .execute(
                        &context,
                        COMMAND_TYPE,
                        &[],
                        &stream_id,
                        ExpectedVersion::Any,
                        series::folding(&key),
                        |state| {
                            let (events, recorded) = series::record(&key, &measure, state, &rows)?;
                            if let Ok(mut slot) = outcome.lock() {
                                *slot = recorded;
                            }
                            Ok::<_, ServiceError>(events)
                        },
                    )
                    .await?;
                Ok(outcome.into_inner().unwrap_or_default())
            }
        }))
        .buffer_unordered(CONCURRENT_SERIES)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Runs one ingest stream to its summary.
pub async fn ingest(
    store: &EventStore,
    pool: &sqlx::PgPool,
    principal: &Principal,
    mut chunks: tonic::Streaming<IngestObservationsRequest>,
) -> Result<IngestSummary, Status> {
    let mut ingest = Ingest {
        store,
        principal,
        references: References::new(store.clone(), pool.clone()),
        summary: IngestSummary::default(),
        batch: Batch::default(),
        last: None,
        series_seen: HashSet::new(),
        trace: ics_service_kit::telemetry::current_traceparent(),
        denied: 0,
        denied_resources: BTreeSet::new(),
        in_flight: None,
    };
    let mut index: u64 = 0;
    while let Some(chunk) = chunks.message().await? {
        for input in &chunk.observations {
            let position = index;
            index += 1;
            ingest.summary.received += 1;
            ingest.accept(position, input).await?;
        }
        if ingest.batch.rows >= BATCH_OBSERVATIONS {
            ingest.flush().await?;
        }
    }
    ingest.flush().await?;
    ingest.settle().await?;
    ingest.summary.series = u32::try_from(ingest.series_seen.len()).unwrap_or(u32::MAX);
    ingest
        .summary
        .rejections
        .sort_by_key(|rejection| rejection.index);
    tracing::info!(
        principal = %principal.label(),
        received = ingest.summary.received,
        recorded = ingest.summary.recorded,
        unchanged = ingest.summary.unchanged,
        rejected = ingest.summary.rejected,
        series = ingest.summary.series,
        "observations ingested"
    );
    if ingest.denied > 0 {
        let resources: Vec<&str> = ingest.denied_resources.iter().map(String::as_str).collect();
        tracing::info!(
            target: ics_service_kit::audit::TARGET,
            kind = "denied",
            principal = %principal.label(),
            action = "record observations of",
            resource = %resources.join(", "),
            denied_rows = ingest.denied,
            "permission denied"
        );
    }
    Ok(ingest.summary)
}
