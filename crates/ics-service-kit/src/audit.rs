//! The audit trail: every refusal (permission denied, unauthenticated) and every administrative
//! action (re-publish, rebuild), kept in the service's own schema so that operators can read it
//! after restarts (`icsctl admin audit`, `AdminService.ListAuditRecords`).
//!
//! Code records an audit entry by logging at the target [`TARGET`]:
//!
//! ```
//! tracing::info!(target: ics_service_kit::audit::TARGET, kind = "admin", principal = "operator",
//!     action = "rebuild", resource = "projection overview", "operator rebuilt a projection");
//! ```
//!
//! [`AuditLayer`], installed with the service's logging whatever the log level, takes those
//! events with the call they happened in (its RPC, request id, trace id and peer address, from
//! the `grpc_request` span of [`crate::server`]) and hands them to the [`AuditTrail`] of the
//! service that served the call, which writes them in batches. Writing is bounded: a flood of
//! refusals costs at most [`MAX_RECORDS_PER_SECOND`] rows a second, and what is beyond that is
//! counted in one `suppressed` row instead of being lost silently.

use std::collections::HashMap;
use std::fmt;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::error::ServiceError;

/// The log target of audit events (defined with the refusals, in `ics-auth`).
pub const TARGET: &str = ics_auth::AUDIT_TARGET;
/// The name of the span each gRPC call runs in.
pub const REQUEST_SPAN: &str = "grpc_request";
/// Rows written per second at most; the rest of a flood is counted, not written.
pub const MAX_RECORDS_PER_SECOND: usize = 200;

const QUEUE: usize = 1_024;
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// One entry of the trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecord {
    /// `denied`, `unauthenticated`, `admin` or `suppressed`.
    pub kind: String,
    pub principal: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    /// The log message: what happened, in words.
    pub detail: String,
    pub call: CallFields,
}

/// What is known of the call an audit event happened in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFields {
    pub service: Option<String>,
    pub rpc: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub peer: Option<String>,
}

impl Visit for CallFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "service" => &mut self.service,
            "rpc.path" => &mut self.rpc,
            "request_id" => &mut self.request_id,
            "trace_id" => &mut self.trace_id,
            "peer" => &mut self.peer,
            _ => return,
        };
        *slot = Some(value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl Visit for AuditRecord {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "kind" => {
                self.kind = value.to_owned();
                return;
            }
            "message" => {
                self.detail = value.to_owned();
                return;
            }
            "principal" => &mut self.principal,
            "action" => &mut self.action,
            "resource" => &mut self.resource,
            // An event may name its service itself (outside any call).
            "service" => &mut self.call.service,
            "rpc" => &mut self.call.rpc,
            _ => return,
        };
        *slot = Some(value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

type Sinks = RwLock<HashMap<String, mpsc::Sender<AuditRecord>>>;

/// Where each service of this process writes its trail.
fn sinks() -> &'static Sinks {
    static SINKS: OnceLock<Sinks> = OnceLock::new();
    SINKS.get_or_init(Sinks::default)
}

/// The `tracing` layer that turns audit events into [`AuditRecord`]s for the trail.
#[derive(Debug, Default)]
pub struct AuditLayer;

impl AuditLayer {
    /// Whether the layer needs to see `metadata`: audit events and the spans of calls, at any
    /// log level.
    pub fn wants(metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == TARGET || metadata.name() == REQUEST_SPAN
    }
}

impl<S> tracing_subscriber::Layer<S> for AuditLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        if attributes.metadata().name() != REQUEST_SPAN {
            return;
        }
        let mut fields = CallFields::default();
        attributes.record(&mut fields);
        if let Some(span) = context.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        if let Some(span) = context.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<CallFields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut record = AuditRecord::default();
        if let Some(scope) = context.event_scope(event) {
            for span in scope {
                if let Some(fields) = span.extensions().get::<CallFields>() {
                    record.call = fields.clone();
                    break;
                }
            }
        }
        event.record(&mut record);
        if record.kind.is_empty() {
            record.kind = "event".to_owned();
        }
        let sinks = sinks().read().unwrap_or_else(PoisonError::into_inner);
        let sink = match &record.call.service {
            Some(service) => sinks.get(service),
            // Outside any call and naming no service: the process's only trail, if it has one.
            None if sinks.len() == 1 => sinks.values().next(),
            None => None,
        };
        if let Some(sink) = sink {
            // A full queue means a flood; the writer counts what it could not take.
            if sink.try_send(record).is_err() {
                OVERFLOW.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Records a full queue refused, across the process's trails (written as `suppressed` rows).
static OVERFLOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A service's trail: the table `audit_trail` in its schema, and the task writing it.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    pool: PgPool,
}

impl AuditTrail {
    /// Registers `service`'s trail (audit events of its calls go there from now on) and
    /// starts its writer, which flushes what it holds when `shutdown` is cancelled.
    pub fn start(
        service: &str,
        pool: PgPool,
        shutdown: &CancellationToken,
    ) -> (AuditTrail, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        sinks()
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(service.to_owned(), sender);
        let writer = tokio::spawn(write_trail(
            service.to_owned(),
            pool.clone(),
            receiver,
            shutdown.clone(),
        ));
        (AuditTrail { pool }, writer)
    }

    /// The newest `limit` records older than `before_id` (all when 0), newest first.
    pub async fn list(
        &self,
        before_id: u64,
        limit: u32,
    ) -> Result<Vec<ics_proto::admin::v1::AuditRecord>, ServiceError> {
        let before_id = i64::try_from(before_id)
            .map_err(|_| ServiceError::invalid_field("before_id", "is beyond any record"))?;
        let rows = sqlx::query(
            "SELECT id, recorded_at, kind, principal, action, resource, detail, service, rpc,
                    request_id, trace_id, peer
             FROM audit_trail
             WHERE $1 = 0 OR id < $1
             ORDER BY id DESC
             LIMIT $2",
        )
        .bind(before_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_record).collect()
    }
}

fn stored_record(
    row: &sqlx::postgres::PgRow,
) -> Result<ics_proto::admin::v1::AuditRecord, ServiceError> {
    use sqlx::Row as _;
    let text = |column: &str| -> Result<String, sqlx::Error> {
        Ok(row
            .try_get::<Option<String>, _>(column)?
            .unwrap_or_default())
    };
    let id: i64 = row.try_get("id")?;
    let recorded_at: chrono::DateTime<chrono::Utc> = row.try_get("recorded_at")?;
    Ok(ics_proto::admin::v1::AuditRecord {
        id: u64::try_from(id)
            .map_err(|_| ServiceError::internal(format!("audit record id {id} is negative")))?,
        recorded_at: Some(prost_types::Timestamp {
            seconds: recorded_at.timestamp(),
            nanos: recorded_at.timestamp_subsec_nanos() as i32,
        }),
        kind: row.try_get("kind")?,
        principal: text("principal")?,
        action: text("action")?,
        resource: text("resource")?,
        detail: row.try_get("detail")?,
        service: text("service")?,
        rpc: text("rpc")?,
        request_id: text("request_id")?,
        trace_id: text("trace_id")?,
        peer: text("peer")?,
    })
}

/// Writes what arrives, every [`FLUSH_EVERY`], at most [`MAX_RECORDS_PER_SECOND`] rows a
/// second; the rest is counted into one `suppressed` row per flush.
async fn write_trail(
    service: String,
    pool: PgPool,
    mut receiver: mpsc::Receiver<AuditRecord>,
    shutdown: CancellationToken,
) {
    let per_flush = (MAX_RECORDS_PER_SECOND as u128 * FLUSH_EVERY.as_millis() / 1_000) as usize;
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            () = shutdown.cancelled() => true,
        };
        let mut batch = Vec::new();
        let mut suppressed = OVERFLOW.swap(0, std::sync::atomic::Ordering::Relaxed);
        while let Ok(record) = receiver.try_recv() {
            if batch.len() < per_flush {
                batch.push(record);
            } else {
                suppressed += 1;
            }
        }
        if suppressed > 0 {
            batch.push(AuditRecord {
                kind: "suppressed".to_owned(),
                detail: format!("{suppressed} audit records were not written: too many at once"),
                call: CallFields {
                    service: Some(service.clone()),
                    ..CallFields::default()
                },
                ..AuditRecord::default()
            });
        }
        if !batch.is_empty()
            && let Err(error) = insert(&pool, &batch).await
        {
            tracing::warn!(%error, records = batch.len(), "cannot write the audit trail");
        }
        if stopping {
            return;
        }
    }
}

async fn insert(pool: &PgPool, batch: &[AuditRecord]) -> Result<(), sqlx::Error> {
    let column = |pick: fn(&AuditRecord) -> Option<String>| -> Vec<Option<String>> {
        batch.iter().map(pick).collect()
    };
    sqlx::query(
        "INSERT INTO audit_trail
             (kind, principal, action, resource, detail, service, rpc, request_id, trace_id, peer)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])",
    )
    .bind(
        batch
            .iter()
            .map(|record| record.kind.clone())
            .collect::<Vec<_>>(),
    )
    .bind(column(|record| record.principal.clone()))
    .bind(column(|record| record.action.clone()))
    .bind(column(|record| record.resource.clone()))
    .bind(
        batch
            .iter()
            .map(|record| record.detail.clone())
            .collect::<Vec<_>>(),
    )
    .bind(column(|record| record.call.service.clone()))
    .bind(column(|record| record.call.rpc.clone()))
    .bind(column(|record| record.call.request_id.clone()))
    .bind(column(|record| record.call.trace_id.clone()))
    .bind(column(|record| record.call.peer.clone()))
    .execute(pool)
    .await?;
    Ok(())
}

/// The table, in every service's schema.
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "kit_0001_audit_trail",
    "CREATE TABLE IF NOT EXISTS audit_trail (
         id bigserial PRIMARY KEY,
         recorded_at timestamptz NOT NULL DEFAULT now(),
         kind text NOT NULL,
         principal text,
         action text,
         resource text,
         detail text NOT NULL,
         service text,
         rpc text,
         request_id text,
         trace_id text,
         peer text
     )",
)];
