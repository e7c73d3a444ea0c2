//! Bulk ingest: a client stream of observation chunks, checked row by row, grouped by series and
//! appended in batches. Each batch appends one event per series (split past
//! [`MAX_OBSERVATIONS_PER_EVENT`](crate::series::MAX_OBSERVATIONS_PER_EVENT)) plus the SPC
//! signals it caused, so back-loading years of history costs a few appends per series rather
//! than one per observation. The summary is sent only after every batch has committed: an
//! acknowledged observation is durable. A stream that breaks off keeps the batches already
//! committed; sending it again is safe, because observations are idempotent per key.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use ics_eventstore::{CommandContext, EventStore, ExpectedVersion};
use ics_measures::series_stream;
use ics_proto::events::v1::{MeasureDefinition, SeriesKey};
use ics_proto::metrics::v1::{IngestObservationsRequest, IngestRejection, IngestSummary};
use ics_service_kit::Principal;
use ics_service_kit::error::ServiceError;
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

pub const COMMAND_TYPE: &str = "IngestObservations";

/// The gRPC code name an error would have had on its own.
pub fn code_name(error: &ServiceError) -> &'static str {
    match error {
        ServiceError::InvalidArgument(_) => "INVALID_ARGUMENT",
        ServiceError::NotFound { .. } => "NOT_FOUND",
        ServiceError::FailedPrecondition(_) => "FAILED_PRECONDITION",
        ServiceError::Conflict { .. } => "ABORTED",
        ServiceError::PermissionDenied(_) => "PERMISSION_DENIED",
        ServiceError::Unauthenticated(_) => "UNAUTHENTICATED",
        ServiceError::Unavailable(_) => "UNAVAILABLE",
        ServiceError::Internal(_) => "INTERNAL",
    }
}

fn describe(error: &ServiceError) -> String {
    match error {
        ServiceError::InvalidArgument(violations) => violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        ServiceError::NotFound { resource } => format!("{resource} not found"),
        other => other.to_string(),
    }
}

struct Ingest<'a> {
    store: &'a EventStore,
    principal: &'a Principal,
    references: References,
    summary: IngestSummary,
    batch: BTreeMap<String, (SeriesKey, Arc<MeasureDefinition>, Vec<Incoming>)>,
    batched: usize,
    series_seen: std::collections::HashSet<String>,
    trace: (String, String),
}

impl Ingest<'_> {
    fn reject(&mut self, index: u64, field: String, error: &ServiceError, reason: String) {
        self.summary.rejected += 1;
        if self.summary.rejections.len() < MAX_LISTED_REJECTIONS {
            self.summary.rejections.push(IngestRejection {
                index,
                field,
                reason,
                code: code_name(error).to_string(),
            });
        }
    }

    async fn flush(&mut self) -> Result<(), ServiceError> {
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        let store = self.store;
        let context = CommandContext {
            request_id: String::new(),
            principal: self.principal.label(),
            correlation_id: String::new(),
            causation_id: String::new(),
            traceparent: self.trace.0.clone(),
            tracestate: self.trace.1.clone(),
        };
        let results: Vec<Result<Recorded, ServiceError>> = futures_util::stream::iter(
            batch.into_iter().map(|(stream_id, (key, measure, rows))| {
                let context = CommandContext {
                    // Idempotency is per observation key here, so each append only needs a
                    // request id of its own.
                    request_id: Uuid::now_v7().to_string(),
                    correlation_id: context.correlation_id.clone(),
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
                            |history| {
                                let (events, recorded) =
                                    series::record(&key, &measure, history, &rows)?;
                                if let Ok(mut slot) = outcome.lock() {
                                    *slot = recorded;
                                }
                                Ok::<_, ServiceError>(events)
                            },
                        )
                        .await?;
                    Ok(outcome.into_inner().unwrap_or_default())
                }
            }),
        )
        .buffer_unordered(CONCURRENT_SERIES)
        .collect()
        .await;
        for result in results {
            let recorded = result?;
            self.summary.recorded += recorded.recorded.len() as u64;
            self.summary.unchanged += recorded.unchanged.len() as u64;
            self.summary.spc_events += u32::try_from(recorded.spc_events).unwrap_or(u32::MAX);
            for (index, reason) in recorded.conflicts {
                let error = ServiceError::FailedPrecondition(reason.clone());
                self.reject(index, "value".to_string(), &error, reason);
            }
        }
        Ok(())
    }
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
        batch: BTreeMap::new(),
        batched: 0,
        series_seen: std::collections::HashSet::new(),
        trace: ics_service_kit::telemetry::current_traceparent(),
    };
    let mut index: u64 = 0;
    while let Some(chunk) = chunks.message().await? {
        for input in chunk.observations {
            let position = index;
            index += 1;
            ingest.summary.received += 1;
            match ingest.references.resolve(principal, &input, "").await? {
                Ok(resolved) => {
                    let stream_id = series_stream(&resolved.checked.key);
                    ingest.series_seen.insert(stream_id.clone());
                    let entry = ingest.batch.entry(stream_id).or_insert_with(|| {
                        (
                            resolved.checked.key.clone(),
                            resolved.measure.clone(),
                            Vec::new(),
                        )
                    });
                    entry.2.push(Incoming {
                        index: position,
                        period_start: resolved.checked.period_start,
                        point: resolved.checked.point,
                    });
                    ingest.batched += 1;
                }
                Err(Rejection { field, error }) => {
                    let reason = describe(&error);
                    ingest.reject(position, field, &error, reason);
                }
            }
        }
        if ingest.batched >= BATCH_OBSERVATIONS {
            ingest.flush().await?;
        }
    }
    ingest.flush().await?;
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
    Ok(ingest.summary)
}
