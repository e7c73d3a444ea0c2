use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use ics_eventstore::subject;
use ics_proto::events::v1::EventEnvelope;
use prost::Message;
use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A projection failed to apply an event, or its storage failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event cannot be applied, now or later: it will be dead-lettered.
    #[error("event rejected: {0}")]
    Rejected(String),
    #[error("projection storage failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("jetstream failed: {0}")]
    JetStream(String),
    /// A value the runner stored is not one it ever writes.
    #[error("projection state is corrupt: {0}")]
    Corrupt(String),
}

/// A read model built from events.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: keys its checkpoints, names its durable consumers and its change channel.
    fn name(&self) -> &str;

    /// Applies one event inside the runner's transaction. Events of types the projection does
    /// not use must be accepted and ignored.
    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>>;

    /// Applies events in order inside the runner's transaction, as [`apply`](Self::apply) would
    /// one by one. Projections that can write a batch set-based (one statement per table
    /// rather than per event) override it: rebuilds and catch-ups bring thousands at a time.
    fn apply_batch<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            for event in events {
                self.apply(&mut *connection, event).await?;
            }
            Ok(())
        })
    }

    /// Deletes everything the projection built, before a rebuild.
    fn reset<'a>(
        &'a self,
        connection: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), ProjectionError>>;
}

/// A read of an event log that failed: a storage failure is retried as one; a stored event
/// that does not read is not made readable by retrying.
impl From<ics_eventstore::StoreError> for ProjectionError {
    fn from(error: ics_eventstore::StoreError) -> Self {
        match error {
            ics_eventstore::StoreError::Unavailable(error)
            | ics_eventstore::StoreError::Database(error) => ProjectionError::Database(error),
            other => ProjectionError::Corrupt(other.to_string()),
        }
    }
}

/// A stored applied version: never negative, and never read as "nothing applied yet" when it is.
fn stored_version(version: i64) -> Result<u64, ProjectionError> {
    u64::try_from(version).map_err(|_| {
        ProjectionError::Corrupt(format!(
            "projection_stream_versions holds version {version}"
        ))
    })
}

/// Decodes an event's payload as `M`. A payload that does not decode is `Rejected`: retrying
/// cannot help, so it goes to the dead letters.
pub fn decode_payload<M: Message + Default>(event: &EventEnvelope) -> Result<M, ProjectionError> {
    M::decode(event.payload.as_slice()).map_err(|error| {
        ProjectionError::Rejected(format!("{} does not decode: {error}", event.event_type))
    })
}

/// Deletes every row of the projection's `tables`: what [`Projection::reset`] usually does.
pub async fn delete_all(
    connection: &mut PgConnection,
    tables: &[&str],
) -> Result<(), ProjectionError> {
    for table in tables {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// The first wait before a projection's consumer tries again after an interruption.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between tries.
const LONGEST_RETRY: Duration = Duration::from_secs(2);

/// How long to wait before consuming again after an interruption, given the wait before the
/// last try (`None`: none yet) and how long that try consumed. The wait doubles while tries
/// keep failing, and starts from [`FIRST_RETRY`] again once a try ran longer than
/// [`LONGEST_RETRY`]: an interruption after hours of healthy consuming is a new fault, and
/// waiting the longest for it left a projection behind for seconds it need not be.
fn retry_wait(previous: Option<Duration>, ran_for: Duration) -> Duration {
    match previous {
        Some(previous) if ran_for < LONGEST_RETRY => (previous * 2).min(LONGEST_RETRY),
        _ => FIRST_RETRY,
    }
}

/// The LISTEN/NOTIFY channel on which a projection announces, once per applying transaction,
/// that it changed; the payload names the last event applied:
/// `organisation<TAB>event_type<TAB>event_id`. Watchers in any replica listen on it.
pub fn change_channel(projection: &str) -> String {
    format!("projection_{projection}_changed")
}

/// The durable JetStream consumer through which a projection reads its source streams (one
/// name, on each source stream).
pub fn consumer_name(subject_prefix: &str, projection: &str) -> String {
    format!("{subject_prefix}_{projection}").replace(['.', '*', '>', ' '], "_")
}

/// Records the versions a batch reached where [`ADVANCE_VERSIONS`] assumed otherwise, one row
/// per stream. An upsert, though each row exists by then (the batch's first statement inserted
/// any that was missing): its conflict check finds each stream by key whatever the planner
/// estimates. As `UPDATE … FROM UNNEST(…)` it was planned from the table's statistics, and
/// with statistics taken before a projection had streams (a table still growing, not yet
/// analysed again) it read every stream of the projection for each batch.
const RECORD_VERSIONS: &str = "INSERT INTO projection_stream_versions
         (projection, source_service, stream_id, version)
     SELECT $1, source_service, stream_id, version
     FROM UNNEST($2::text[], $3::text[], $4::bigint[]) AS batch (source_service, stream_id, version)
     ON CONFLICT (projection, source_service, stream_id) DO UPDATE SET version = excluded.version";

/// Moves each stream of a batch on by the batch's events of it, assuming they are all new and
/// next in order (what a batch nearly always is), and returns the versions the streams held
/// before: one write per stream, which also locks the streams' rows, in key order so that two
/// replicas locking overlapping batches cannot deadlock, and keeps other replicas off them
/// until commit. Checking the batch against the versions before and, where it was not as
/// assumed (a duplicate redelivered), recording the right version is the rarer second
/// statement. Measured with `scripts/bench`: locking the rows with a no-op upsert and then
/// recording the new versions with another wrote every row twice, which cost PostgreSQL half
/// as much as appending the commands themselves.
const ADVANCE_VERSIONS: &str = "INSERT INTO projection_stream_versions AS held
         (projection, source_service, stream_id, version)
     SELECT $1, source_service, stream_id, events
     FROM UNNEST($2::text[], $3::text[], $4::bigint[]) AS batch (source_service, stream_id, events)
     ORDER BY source_service, stream_id
     ON CONFLICT (projection, source_service, stream_id)
     DO UPDATE SET version = held.version + excluded.version
     RETURNING source_service, stream_id, version";

/// Takes a batch's stream versions (see [`ADVANCE_VERSIONS`]) and returns the indices of the
/// events to apply, in order: duplicates skipped. The streams' recorded versions are those the
/// batch reaches once they are applied. A gap, or parked events waiting on one of the batch's
/// streams, fails the batch: the caller rolls back and takes the per-event path.
pub(crate) async fn advance_stream_versions(
    connection: &mut PgConnection,
    projection: &str,
    envelopes: &[EventEnvelope],
) -> Result<Vec<usize>, ProjectionError> {
    // The batch's streams in key order (the order the rows are locked in), each with its
    // bookkeeping at the same index.
    let mut keys: Vec<(&str, &str)> = envelopes.iter().map(stream_key).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut streams: Vec<StreamInBatch> = keys.iter().map(|_| StreamInBatch::default()).collect();
    let index_of = |key: (&str, &str)| {
        keys.binary_search(&key)
            .map_err(|_| ProjectionError::Corrupt(format!("{} is not in the batch", key.1)))
    };
    for envelope in envelopes {
        streams[index_of(stream_key(envelope))?].events += 1;
    }
    let services: Vec<&str> = keys.iter().map(|(service, _)| *service).collect();
    let stream_ids: Vec<&str> = keys.iter().map(|(_, stream_id)| *stream_id).collect();
    let counts: Vec<i64> = streams.iter().map(|stream| stream.events).collect();
    let rows = sqlx::query(ADVANCE_VERSIONS)
        .bind(projection)
        .bind(&services)
        .bind(&stream_ids)
        .bind(&counts)
        .fetch_all(&mut *connection)
        .await?;
    for row in &rows {
        let service: String = row.try_get("source_service")?;
        let stream_id: String = row.try_get("stream_id")?;
        let written: i64 = row.try_get("version")?;
        let stream = &mut streams[index_of((service.as_str(), stream_id.as_str()))?];
        stream.written = stored_version(written)?;
        stream.reached = stored_version(written - stream.events)?;
    }
    let parked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM projection_parked
                        WHERE projection = $1 AND stream_id = ANY($2))",
    )
    .bind(projection)
    .bind(&stream_ids)
    .fetch_one(&mut *connection)
    .await?;
    if parked {
        return Err(ProjectionError::Rejected(
            "parked events wait on this batch's streams".to_string(),
        ));
    }

    let mut fresh = Vec::with_capacity(envelopes.len());
    for (index, envelope) in envelopes.iter().enumerate() {
        let stream = &mut streams[index_of(stream_key(envelope))?];
        if envelope.stream_version <= stream.reached {
            continue;
        }
        if envelope.stream_version > stream.reached + 1 {
            return Err(ProjectionError::Rejected(format!(
                "gap in {} before version {}",
                envelope.stream_id, envelope.stream_version
            )));
        }
        stream.reached = envelope.stream_version;
        fresh.push(index);
    }

    let mut corrected_services = Vec::new();
    let mut corrected_streams = Vec::new();
    let mut corrected_versions = Vec::new();
    for ((service, stream_id), stream) in keys.iter().zip(&streams) {
        if stream.reached != stream.written {
            corrected_services.push(*service);
            corrected_streams.push(*stream_id);
            corrected_versions.push(i64::try_from(stream.reached).unwrap_or(i64::MAX));
        }
    }
    if !corrected_streams.is_empty() {
        sqlx::query(RECORD_VERSIONS)
            .bind(projection)
            .bind(&corrected_services)
            .bind(&corrected_streams)
            .bind(&corrected_versions)
            .execute(&mut *connection)
            .await?;
    }
    Ok(fresh)
}

/// An event's stream, as the runner keys it: its source service and stream id.
fn stream_key(envelope: &EventEnvelope) -> (&str, &str) {
    (
        envelope.source_service.as_str(),
        envelope.stream_id.as_str(),
    )
}

/// One stream of a batch, for [`advance_stream_versions`].
#[derive(Debug, Default)]
struct StreamInBatch {
    /// The batch's events of the stream, duplicates included.
    events: i64,
    /// The version [`ADVANCE_VERSIONS`] wrote, assuming every one of them new and next.
    written: u64,
    /// The version the stream held before the batch, then the last fresh event's.
    reached: u64,
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// First token of subjects and prefix of stream and consumer names.
    pub subject_prefix: String,
    /// The services whose streams feed the projection (`trusts`, `workshops`…).
    pub source_services: Vec<String>,
    /// Deliveries after which a failing message is dead-lettered.
    pub max_deliver: i64,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Messages requested per pull.
    pub batch: usize,
    /// Continues the writer's trace: given each event's span and its stored W3C
    /// `traceparent`/`tracestate`, makes the span a child of the command that recorded it.
    /// The runner stays free of any telemetry backend; services pass their kit's function.
    pub continue_trace: Option<fn(&tracing::Span, &str, &str)>,
    /// Whether a batch records a span for each of its events. Such a span holds no work (the
    /// batch's span does); it only links the event into the trace of the command that recorded
    /// it, so it is worth its cost only where spans are exported. At the default `info` level
    /// the log alone kept them, and they cost a million-event catch-up more than half of its
    /// CPU in `icsd` (0.009 s per 1,000 events against 0.004). Events applied one at a time
    /// always get theirs: their warnings are logged within it.
    pub span_each_batched_event: bool,
    /// The service that runs the projection, on its spans (`service`).
    pub service: String,
    /// Whether each applying transaction announces the change on the projection's
    /// [`change_channel`]. Only projections something watches should: a NOTIFY serialises the
    /// commits that send it and wakes every listening session of the database.
    pub announce_changes: bool,
    /// How long a batch that is not full waits for more events before it is applied. Every
    /// batch costs a transaction of the projection's own (its versions, its checkpoint, a
    /// commit) whatever its size: at a few hundred commands a second, each event alone in
    /// its batch cost the database more than the command that recorded it. The wait adds at
    /// most this much to a view's freshness, and nothing under load, when batches fill.
    /// Measured with `scripts/bench`: 8 ms for watched views and 40 ms for the rest, against 2
    /// and 10, cost each command a sixth less CPU and left freshness at 1,000 commands/s within
    /// its run-to-run spread (README, "What makes it fast").
    pub linger: Duration,
}

impl RunnerConfig {
    pub fn new(subject_prefix: &str, source_services: &[&str]) -> Self {
        RunnerConfig {
            subject_prefix: subject_prefix.to_string(),
            source_services: source_services.iter().map(|s| s.to_string()).collect(),
            max_deliver: 5,
            // Redelivery to another replica within 5 s of a crash; long batches send progress.
            ack_wait: Duration::from_secs(4),
            batch: 2048,
            continue_trace: None,
            span_each_batched_event: true,
            service: String::new(),
            announce_changes: true,
            linger: Duration::from_millis(8),
        }
    }

    /// The same configuration for a projection nobody watches: no change notices.
    pub fn without_change_notices(self) -> Self {
        RunnerConfig {
            announce_changes: false,
            // Nobody waits on these views to change: fewer, larger batches.
            linger: Duration::from_millis(40),
            ..self
        }
    }
}

/// A message the runner gave up on.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub projection: String,
    pub subject: String,
    pub stream_sequence: u64,
    pub event_id: String,
    pub event_type: String,
    pub deliveries: u64,
    pub error: String,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// Dead letters, newest first; all projections' when `projection` is empty.
pub async fn list_dead_letters(
    pool: &PgPool,
    projection: &str,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT projection, subject, stream_sequence, event_id, event_type, deliveries, error,
                recorded_at
         FROM dead_letters WHERE $1 = '' OR projection = $1 ORDER BY id DESC LIMIT 1000",
    )
    .bind(projection)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DeadLetter {
                projection: row.try_get("projection")?,
                subject: row.try_get("subject")?,
                stream_sequence: u64::try_from(row.try_get::<i64, _>("stream_sequence")?)
                    .unwrap_or(0),
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                deliveries: u64::try_from(row.try_get::<i64, _>("deliveries")?).unwrap_or(0),
                error: row.try_get("error")?,
                recorded_at: row.try_get("recorded_at")?,
            })
        })
        .collect()
}

/// Runs one projection from its source streams.
pub struct ProjectionRunner<P: Projection> {
    pub(crate) pool: PgPool,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) projection: Arc<P>,
    pub(crate) config: RunnerConfig,
}

impl<P: Projection> Clone for ProjectionRunner<P> {
    fn clone(&self) -> Self {
        ProjectionRunner {
            pool: self.pool.clone(),
            jetstream: self.jetstream.clone(),
            projection: self.projection.clone(),
            config: self.config.clone(),
        }
    }
}

enum Outcome {
    /// Applied, with this many parked successors applied after it.
    Applied {
        successors: u64,
    },
    Duplicate,
    Parked,
}

impl Outcome {
    fn events_applied(&self) -> i64 {
        match self {
            Outcome::Applied { successors } => 1 + i64::try_from(*successors).unwrap_or(0),
            Outcome::Duplicate | Outcome::Parked => 0,
        }
    }
}

/// A message from the consumer's stream, or why there is none.
fn received(
    next: Option<Result<jetstream::Message, consumer::pull::MessagesError>>,
) -> Result<jetstream::Message, ProjectionError> {
    match next {
        Some(Ok(message)) => Ok(message),
        Some(Err(error)) => Err(ProjectionError::JetStream(error.to_string())),
        None => Err(ProjectionError::JetStream("message stream ended".into())),
    }
}

/// The event id the relay published a message under (its `Nats-Msg-Id`); empty if none.
fn message_id(message: &jetstream::Message) -> &str {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
        .map_or("", |value| value.as_str())
}

impl<P: Projection> ProjectionRunner<P> {
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        projection: Arc<P>,
        config: RunnerConfig,
    ) -> Self {
        ProjectionRunner {
            pool,
            jetstream: subject::jetstream_context(nats),
            projection,
            config,
        }
    }

    pub fn projection(&self) -> &Arc<P> {
        &self.projection
    }

    pub(crate) fn consumer_name(&self) -> String {
        consumer_name(&self.config.subject_prefix, self.projection.name())
    }

    /// Consumes every source stream until `shutdown`.
    /// A consumer that panics takes the others down and the panic on to the caller (the
    /// service's supervisor restarts the runner), rather than leaving the projection half fed.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        for service in self.config.source_services.clone() {
            let runner = self.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                runner.consume_service(&service, shutdown).await;
            });
        }
        while let Some(finished) = tasks.join_next().await {
            if let Err(error) = finished
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }

    async fn consume_service(&self, service: &str, shutdown: CancellationToken) {
        let stream_name = subject::stream_name(&self.config.subject_prefix, service);
        let mut wait = None;
        while !shutdown.is_cancelled() {
            let started = tokio::time::Instant::now();
            match self.consume_stream(&stream_name, &shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    let next = retry_wait(wait, started.elapsed());
                    tracing::warn!(projection = self.projection.name(), stream = %stream_name, %error, "projection consumer interrupted; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(next) => {}
                    }
                    wait = Some(next);
                }
            }
        }
    }

    async fn consumer(
        &self,
        stream_name: &str,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, ProjectionError> {
        let stream = self
            .jetstream
            .get_stream(stream_name)
            .await
            .map_err(|error| ProjectionError::JetStream(error.to_string()))?;
        stream
            .get_or_create_consumer(&self.consumer_name(), self.consumer_config())
            .await
            .map_err(|error| ProjectionError::JetStream(error.to_string()))
    }

    pub(crate) fn consumer_config(&self) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.consumer_name()),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait: self.config.ack_wait,
            // The runner itself dead-letters at max_deliver; JetStream's limit is a
            // backstop one above, so the runner always sees the last attempt.
            max_deliver: self.config.max_deliver + 1,
            max_ack_pending: 10_000,
            ..Default::default()
        }
    }

    /// The consumer, with the ack wait and delivery limit of this configuration. A durable
    /// consumer created by an earlier version (a 30 s ack wait) is replaced by one that starts
    /// just after its acknowledged floor: nothing acknowledged comes again, nothing unacknowledged
    /// is skipped, and no server-side consumer update (which NATS versions treat differently)
    /// is relied on.
    async fn current_consumer(
        &self,
        stream_name: &str,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, ProjectionError> {
        let jetstream_error =
            |error: &dyn std::fmt::Display| ProjectionError::JetStream(error.to_string());
        let mut existing = self.consumer(stream_name).await?;
        let wanted = self.consumer_config();
        let info = existing
            .info()
            .await
            .map_err(|error| jetstream_error(&error))?
            .clone();
        if info.config.ack_wait == wanted.ack_wait && info.config.max_deliver == wanted.max_deliver
        {
            return Ok(existing);
        }
        let start_sequence = info.ack_floor.stream_sequence + 1;
        tracing::info!(projection = self.projection.name(), stream = %stream_name, start_sequence, ack_wait_ms = wanted.ack_wait.as_millis() as u64, "replacing the projection's consumer with the configured ack wait");
        let stream = self
            .jetstream
            .get_stream(stream_name)
            .await
            .map_err(|error| jetstream_error(&error))?;
        stream
            .delete_consumer(&self.consumer_name())
            .await
            .map_err(|error| jetstream_error(&error))?;
        stream
            .create_consumer(consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence },
                ..wanted
            })
            .await
            .map_err(|error| jetstream_error(&error))
    }

    async fn consume_stream(
        &self,
        stream_name: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), ProjectionError> {
        let consumer = self.current_consumer(stream_name).await?;
        // A pull request the server lost (its consumer's leader killed) shows only as missing
        // heartbeats, two of them: at 5 s apart the fault suite's R8 saw a projection wait 10 s
        // on a request nobody would answer after its cluster had already recovered.
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.config.batch)
            .heartbeat(Duration::from_secs(2))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|error| ProjectionError::JetStream(error.to_string()))?;
        tracing::info!(projection = self.projection.name(), stream = %stream_name, "projection consuming");
        let mut messages = Box::pin(messages);
        // Messages received and not yet applied. Whatever has already arrived is applied
        // together, in one transaction: under load that is one commit per batch, not per event.
        let mut waiting: VecDeque<jetstream::Message> = VecDeque::new();
        loop {
            if waiting.is_empty() {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    next = messages.next() => next,
                };
                waiting.push_back(received(next)?);
            }
            // Whatever has arrived, and what arrives within the linger. A timeout polls the
            // stream before its deadline, so with no linger this takes only what is ready.
            let until = tokio::time::Instant::now() + self.config.linger;
            while waiting.len() < self.config.batch {
                match tokio::time::timeout_at(until, messages.next()).await {
                    Ok(next) => waiting.push_back(received(next)?),
                    Err(_) => break,
                }
            }
            let batch: Vec<jetstream::Message> = waiting
                .drain(..waiting.len().min(self.config.batch))
                .collect();
            self.handle_batch(stream_name, batch, &mut messages, &mut waiting)
                .await?;
        }
    }

    /// Handles a batch while telling JetStream, every quarter of the ack wait, that its
    /// messages — and those that arrive meanwhile and wait their turn — are still in progress.
    /// The ack wait stays short, so the messages of a consumer that crashed are redelivered
    /// within seconds, and a long batch is never redelivered under a live one. At most one
    /// batch waits, so memory stays bounded however slow the projection is.
    async fn handle_batch<S>(
        &self,
        stream_name: &str,
        batch: Vec<jetstream::Message>,
        messages: &mut std::pin::Pin<Box<S>>,
        waiting: &mut VecDeque<jetstream::Message>,
    ) -> Result<(), ProjectionError>
    where
        S: futures_util::Stream<Item = Result<jetstream::Message, consumer::pull::MessagesError>>
            + ?Sized,
    {
        // Where each message's in-progress note goes (its reply subject). All of a consumer's
        // messages come through one client, so it is kept once, not cloned per message.
        let client = batch.first().map(|message| message.context.client());
        let mut in_progress: Vec<async_nats::Subject> = batch
            .iter()
            .filter_map(|message| message.reply.clone())
            .collect();
        let work = self.apply_batch_or_each(stream_name, batch);
        tokio::pin!(work);
        let period = (self.config.ack_wait / 4).max(Duration::from_millis(100));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut stream_failure = None;
        loop {
            let room = stream_failure.is_none() && waiting.len() < self.config.batch;
            tokio::select! {
                () = &mut work => break,
                _ = ticker.tick() => {
                    if let Some(client) = &client {
                        for reply in &in_progress {
                            // A lost progress note only risks a harmless redelivery.
                            let _ = client.publish(reply.clone(), "+WPI".into()).await;
                        }
                    }
                }
                next = messages.next(), if room => match received(next) {
                    Ok(message) => {
                        in_progress.extend(message.reply.clone());
                        waiting.push_back(message);
                    }
                    Err(error) => stream_failure = Some(error),
                },
            }
        }
        match stream_failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Applies a batch in one transaction and acks it after commit. If anything in it fails,
    /// the transaction is rolled back and each message is handled on its own, so that only the
    /// failing one is retried or dead-lettered.
    ///
    /// A batch of one takes this path too: in the usual case it costs the database one
    /// statement fewer than the per-event path, which locks the stream's version and then
    /// writes it.
    async fn apply_batch_or_each(&self, stream_name: &str, batch: Vec<jetstream::Message>) {
        if batch.is_empty() {
            return;
        }
        let mut envelopes = Vec::with_capacity(batch.len());
        for message in &batch {
            match EventEnvelope::decode(message.payload.clone()) {
                Ok(envelope) => envelopes.push(envelope),
                Err(_) => {
                    for message in batch {
                        self.handle(stream_name, message).await;
                    }
                    return;
                }
            }
        }
        let span = tracing::info_span!(
            "projection_apply_batch",
            projection = self.projection.name(),
            events = batch.len(),
        );
        let applied = self
            .apply_batch_in_transaction(stream_name, &batch, &envelopes)
            .instrument(span)
            .await;
        match applied {
            Ok(()) => {
                for message in &batch {
                    if let Err(error) = message.ack().await {
                        tracing::debug!(%error, "ack failed");
                    }
                }
            }
            Err(error) => {
                tracing::debug!(%error, "batch not applied; applying its events one by one");
                for message in batch {
                    self.handle(stream_name, message).await;
                }
            }
        }
    }

    async fn apply_batch_in_transaction(
        &self,
        stream_name: &str,
        batch: &[jetstream::Message],
        envelopes: &[EventEnvelope],
    ) -> Result<(), ProjectionError> {
        let mut transaction = self.pool.begin().await?;
        let (applied, last_applied) = self
            .apply_in_order(&mut transaction, batch, envelopes)
            .await?;
        let last_sequence = batch
            .iter()
            .filter_map(|message| message.info().ok().map(|info| info.stream_sequence))
            .max()
            .unwrap_or(0);
        self.record_checkpoint(
            &mut transaction,
            stream_name,
            last_sequence,
            applied,
            last_applied,
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Applies a batch's events in order with the stream-version bookkeeping done once for the
    /// whole batch ([`advance_stream_versions`]) rather than three round trips per event: a
    /// back-load brings thousands of events. A duplicate is skipped; anything unusual — a gap,
    /// or parked events waiting on one of the batch's streams — is left to the per-event path
    /// by failing the batch, which the caller then handles one event at a time.
    async fn apply_in_order<'e>(
        &self,
        connection: &mut PgConnection,
        batch: &[jetstream::Message],
        envelopes: &'e [EventEnvelope],
    ) -> Result<(i64, Option<&'e EventEnvelope>), ProjectionError> {
        let fresh = advance_stream_versions(connection, self.projection.name(), envelopes).await?;
        if fresh.len() == envelopes.len() {
            self.projection.apply_batch(connection, envelopes).await?;
        } else if !fresh.is_empty() {
            let events: Vec<EventEnvelope> = fresh
                .iter()
                .map(|&index| envelopes[index].clone())
                .collect();
            self.projection.apply_batch(connection, &events).await?;
        }
        // Each event still gets its consumer span where spans are exported, continuing the
        // trace of the command that recorded it; the work itself is the batch's span, since it
        // is done for all at once.
        if self.config.span_each_batched_event {
            for &index in &fresh {
                if let Some(message) = batch.get(index) {
                    self.event_span(message).in_scope(|| {});
                }
            }
        }
        let last_applied = fresh.last().map(|&index| &envelopes[index]);
        Ok((i64::try_from(fresh.len()).unwrap_or(i64::MAX), last_applied))
    }

    /// A span for one event that continues the trace of the command that recorded it.
    fn event_span(&self, message: &jetstream::Message) -> tracing::Span {
        // A consumer span in OpenTelemetry's messaging conventions, child of the relay's
        // producer span whose context the message carries. The fields are only evaluated, and
        // the headers only read, when something records the span: in a profile of a catch-up
        // at the `warn` level, header lookups (each validating and matching its name) for
        // spans nobody kept were among the largest costs.
        let span = tracing::info_span!(
            "projection_apply",
            otel.name = %format!("process {}", self.projection.name()),
            otel.kind = "consumer",
            service = %self.config.service,
            projection = self.projection.name(),
            subject = %message.subject,
            messaging.system = "nats",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %message.subject,
            messaging.consumer.group.name = self.projection.name(),
            messaging.message.id = %message_id(message),
        );
        if span.is_disabled() {
            return span;
        }
        if let (Some(continue_trace), Some(headers)) =
            (self.config.continue_trace, &message.headers)
        {
            let header = |name: &str| headers.get(name).map(|value| value.as_str().to_string());
            continue_trace(
                &span,
                &header("traceparent").unwrap_or_default(),
                &header("tracestate").unwrap_or_default(),
            );
        }
        span
    }

    /// Records how far the projection read `stream_name` and how much it applied, and, when
    /// the transaction changed the projection, tells watchers so, naming the last event applied:
    /// one statement, the last of every applying transaction.
    ///
    /// The notice goes once per transaction, not per event: a watcher recomputes its view on a
    /// signal anyway, and a batch of thousands of events would otherwise send thousands. It is
    /// transactional: watchers hear of the change only once it is committed.
    pub(crate) async fn record_checkpoint(
        &self,
        connection: &mut PgConnection,
        stream_name: &str,
        stream_sequence: u64,
        applied: i64,
        changed: Option<&EventEnvelope>,
    ) -> Result<(), ProjectionError> {
        sqlx::query(
            "WITH checkpoint AS (
                 INSERT INTO projection_checkpoints (projection, source_stream, stream_sequence,
                     events_applied)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (projection, source_stream) DO UPDATE
                 SET stream_sequence = GREATEST(projection_checkpoints.stream_sequence,
                         excluded.stream_sequence),
                     events_applied = projection_checkpoints.events_applied
                         + excluded.events_applied,
                     updated_at = now()
             )
             SELECT pg_notify($5, $6) WHERE $7",
        )
        .bind(self.projection.name())
        .bind(stream_name)
        .bind(i64::try_from(stream_sequence).unwrap_or(i64::MAX))
        .bind(applied)
        .bind(change_channel(self.projection.name()))
        .bind(changed.map_or_else(String::new, |envelope| {
            format!(
                "{}\t{}\t{}",
                envelope.organisation, envelope.event_type, envelope.event_id
            )
        }))
        .bind(changed.is_some() && self.config.announce_changes)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    async fn handle(&self, stream_name: &str, message: jetstream::Message) {
        let span = self.event_span(&message);
        self.handle_in_span(stream_name, message)
            .instrument(span)
            .await;
    }

    async fn handle_in_span(&self, stream_name: &str, message: jetstream::Message) {
        let (stream_sequence, delivered) = match message.info() {
            Ok(info) => (info.stream_sequence, info.delivered),
            Err(_) => (0, 1),
        };
        let decoded = EventEnvelope::decode(message.payload.clone())
            .map_err(|error| ProjectionError::Rejected(format!("undecodable envelope: {error}")));
        let result = match &decoded {
            Ok(envelope) => {
                self.apply_in_transaction(stream_name, stream_sequence, envelope)
                    .await
            }
            Err(error) => Err(ProjectionError::Rejected(error.to_string())),
        };
        let ack = match result {
            Ok(_) => AckKind::Ack,
            Err(error) if delivered >= self.config.max_deliver => {
                tracing::error!(projection = self.projection.name(), stream_sequence, deliveries = delivered, %error, "event dead-lettered");
                match self
                    .dead_letter(
                        &message,
                        stream_sequence,
                        delivered,
                        decoded.as_ref().ok(),
                        &error,
                    )
                    .await
                {
                    Ok(()) => AckKind::Term,
                    Err(storage_error) => {
                        tracing::error!(%storage_error, "dead-lettering failed; will retry");
                        AckKind::Nak(Some(Duration::from_secs(1)))
                    }
                }
            }
            Err(error) => {
                tracing::warn!(projection = self.projection.name(), stream_sequence, deliveries = delivered, %error, "event not applied; will retry");
                let delay = Duration::from_millis(100 * u64::try_from(delivered).unwrap_or(1));
                AckKind::Nak(Some(delay.min(Duration::from_secs(2))))
            }
        };
        if let Err(error) = message.ack_with(ack).await {
            // Not acknowledged means redelivered, which the version check makes harmless.
            tracing::debug!(%error, "ack failed");
        }
    }

    /// Applies an event (and any parked successors) and records progress in one transaction.
    async fn apply_in_transaction(
        &self,
        stream_name: &str,
        stream_sequence: u64,
        envelope: &EventEnvelope,
    ) -> Result<Outcome, ProjectionError> {
        let mut transaction = self.pool.begin().await?;
        let outcome = self.apply_ordered(&mut transaction, envelope).await?;
        self.record_checkpoint(
            &mut transaction,
            stream_name,
            stream_sequence,
            outcome.events_applied(),
            (outcome.events_applied() > 0).then_some(envelope),
        )
        .await?;
        transaction.commit().await?;
        Ok(outcome)
    }

    async fn apply_ordered(
        &self,
        connection: &mut PgConnection,
        envelope: &EventEnvelope,
    ) -> Result<Outcome, ProjectionError> {
        let applied_version = self.lock_stream_version(connection, envelope).await?;
        let version = envelope.stream_version;
        if version <= applied_version {
            return Ok(Outcome::Duplicate);
        }
        if version > applied_version + 1 {
            sqlx::query(
                "INSERT INTO projection_parked (projection, source_service, stream_id, stream_version, envelope)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(self.projection.name())
            .bind(&envelope.source_service)
            .bind(&envelope.stream_id)
            .bind(i64::try_from(version).unwrap_or(i64::MAX))
            .bind(envelope.encode_to_vec())
            .execute(&mut *connection)
            .await?;
            tracing::debug!(projection = self.projection.name(), stream = %envelope.stream_id, version, applied_version, "event parked until the gap is filled");
            return Ok(Outcome::Parked);
        }
        self.apply_one(connection, envelope).await?;
        let successors = self.drain_parked(connection, envelope, version).await?;
        Ok(Outcome::Applied { successors })
    }

    /// Applies parked successors of `version` in order, then records the stream's new version.
    /// Returns how many it applied.
    async fn drain_parked(
        &self,
        connection: &mut PgConnection,
        envelope: &EventEnvelope,
        mut version: u64,
    ) -> Result<u64, ProjectionError> {
        let first_version = version;
        loop {
            let parked: Option<Vec<u8>> = sqlx::query_scalar(
                "DELETE FROM projection_parked
                 WHERE projection = $1 AND source_service = $2 AND stream_id = $3 AND stream_version = $4
                 RETURNING envelope",
            )
            .bind(self.projection.name())
            .bind(&envelope.source_service)
            .bind(&envelope.stream_id)
            .bind(i64::try_from(version + 1).unwrap_or(i64::MAX))
            .fetch_optional(&mut *connection)
            .await?;
            let Some(parked) = parked else {
                break;
            };
            let successor = EventEnvelope::decode(parked.as_slice())
                .map_err(|error| ProjectionError::Rejected(error.to_string()))?;
            self.apply_one(connection, &successor).await?;
            version += 1;
        }
        sqlx::query(
            "UPDATE projection_stream_versions SET version = $4
             WHERE projection = $1 AND source_service = $2 AND stream_id = $3",
        )
        .bind(self.projection.name())
        .bind(&envelope.source_service)
        .bind(&envelope.stream_id)
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .execute(&mut *connection)
        .await?;
        Ok(version - first_version)
    }

    async fn apply_one(
        &self,
        connection: &mut PgConnection,
        envelope: &EventEnvelope,
    ) -> Result<(), ProjectionError> {
        self.projection.apply(connection, envelope).await
    }

    /// The stream's applied version, locked for this transaction so that replicas sharing a
    /// consumer never apply the same stream concurrently.
    async fn lock_stream_version(
        &self,
        connection: &mut PgConnection,
        envelope: &EventEnvelope,
    ) -> Result<u64, ProjectionError> {
        // The no-op update locks the row (as FOR UPDATE would) and returns it, new or not, in
        // one round trip.
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO projection_stream_versions (projection, source_service, stream_id, version)
             VALUES ($1, $2, $3, 0)
             ON CONFLICT (projection, source_service, stream_id)
             DO UPDATE SET version = projection_stream_versions.version
             RETURNING version",
        )
        .bind(self.projection.name())
        .bind(&envelope.source_service)
        .bind(&envelope.stream_id)
        .fetch_one(&mut *connection)
        .await?;
        stored_version(version)
    }

    /// Records a message the projection gave up on and, for a decodable event that was next in
    /// its stream, moves the stream past it so its successors are not parked forever.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        stream_sequence: u64,
        delivered: i64,
        envelope: Option<&EventEnvelope>,
        error: &ProjectionError,
    ) -> Result<(), ProjectionError> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO dead_letters (projection, subject, stream_sequence, event_id, event_type,
                 deliveries, error, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(self.projection.name())
        .bind(message.subject.as_str())
        .bind(i64::try_from(stream_sequence).unwrap_or(i64::MAX))
        .bind(envelope.map(|e| e.event_id.clone()).unwrap_or_default())
        .bind(envelope.map(|e| e.event_type.clone()).unwrap_or_default())
        .bind(delivered)
        .bind(error.to_string())
        .bind(message.payload.to_vec())
        .execute(&mut *transaction)
        .await?;
        if let Some(envelope) = envelope {
            let applied_version = self.lock_stream_version(&mut transaction, envelope).await?;
            if envelope.stream_version == applied_version + 1 {
                self.drain_parked(&mut transaction, envelope, envelope.stream_version)
                    .await?;
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Messages not yet delivered plus those delivered but not acknowledged, over all sources:
    /// how far the projection lags behind its streams.
    pub async fn lag(&self) -> Result<u64, ProjectionError> {
        let mut lag = 0;
        for service in &self.config.source_services {
            lag += self.pending(service).await?;
        }
        Ok(lag)
    }

    /// Messages of one source service's stream not yet delivered or not yet acknowledged.
    pub async fn pending(&self, service: &str) -> Result<u64, ProjectionError> {
        let stream_name = subject::stream_name(&self.config.subject_prefix, service);
        let mut consumer = self.consumer(&stream_name).await?;
        let info = consumer
            .info()
            .await
            .map_err(|error| ProjectionError::JetStream(error.to_string()))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    /// Waits until the projection has consumed everything in its streams (or `timeout`).
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), ProjectionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.lag().await? == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ProjectionError::JetStream(format!(
                    "projection {} still lagging after {timeout:?}",
                    self.projection.name()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deletes the projection's durable consumers but keeps what it built, so that its next
    /// [`run`](Self::run) reads every stream from the beginning and skips what it already
    /// applied: after a restore, the consumers may have acknowledged events the restored
    /// projection never saw. Call it while the runner is stopped.
    pub async fn replay_streams(&self) -> Result<(), ProjectionError> {
        for service in &self.config.source_services {
            let stream_name = subject::stream_name(&self.config.subject_prefix, service);
            if let Ok(stream) = self.jetstream.get_stream(&stream_name).await {
                let _ = stream.delete_consumer(&self.consumer_name()).await;
            }
        }
        tracing::info!(
            projection = self.projection.name(),
            "projection will replay its streams from the beginning"
        );
        Ok(())
    }

    /// Events applied so far, over all sources.
    pub async fn events_applied(&self) -> Result<u64, ProjectionError> {
        let applied: Option<i64> = sqlx::query_scalar(
            "SELECT sum(events_applied)::bigint FROM projection_checkpoints WHERE projection = $1",
        )
        .bind(self.projection.name())
        .fetch_one(&self.pool)
        .await?;
        Ok(applied.map_or(0, |value| u64::try_from(value).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ics_testing::TestDatabase;

    fn event(stream_id: &str, stream_version: u64) -> EventEnvelope {
        EventEnvelope {
            source_service: "trusts".to_string(),
            stream_id: stream_id.to_string(),
            stream_version,
            ..Default::default()
        }
    }

    #[test]
    fn a_consumer_waits_longer_while_it_keeps_failing_and_from_the_start_after_running_well() {
        let quickly = Duration::from_millis(5);
        let mut waits = vec![retry_wait(None, quickly)];
        for _ in 0..6 {
            waits.push(retry_wait(waits.last().copied(), quickly));
        }
        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [100, 200, 400, 800, 1_600, 2_000, 2_000]);
        // An interruption after an hour of consuming waits as the first did, not the longest.
        assert_eq!(
            retry_wait(Some(LONGEST_RETRY), Duration::from_secs(3_600)),
            FIRST_RETRY
        );
        // A try that failed within the longest wait is the same fault still.
        assert_eq!(
            retry_wait(
                Some(Duration::from_millis(400)),
                Duration::from_millis(1_999)
            ),
            Duration::from_millis(800)
        );
    }

    /// Rows of `projection_stream_versions` this session has written (inserted or updated) and
    /// not yet reported to the statistics: read before and after, the difference is what was
    /// written between.
    async fn versions_written(connection: &mut PgConnection) -> i64 {
        sqlx::query_scalar(
            "SELECT pg_stat_get_xact_tuples_inserted('projection_stream_versions'::regclass)
                 + pg_stat_get_xact_tuples_updated('projection_stream_versions'::regclass)",
        )
        .fetch_one(connection)
        .await
        .unwrap()
    }

    async fn recorded_versions(pool: &PgPool) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT stream_id, version FROM projection_stream_versions
             WHERE projection = 'overview' ORDER BY stream_id",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    }

    /// A batch of new events writes each of its streams' versions once, new streams and known
    /// ones alike; a redelivered duplicate is skipped and its stream's version put right with
    /// one more write; a gap fails the batch. Locking the rows first and recording the new
    /// versions after wrote every row twice.
    #[tokio::test]
    async fn a_batch_writes_each_streams_version_once_and_puts_right_only_what_it_assumed_wrongly()
    {
        let database = TestDatabase::create().await;
        let pool = database.pool("reporting").await;
        ics_eventstore::migrate(&pool, crate::MIGRATIONS)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO projection_stream_versions VALUES
                 ('overview', 'trusts', 'organisation-A', 3),
                 ('overview', 'trusts', 'organisation-B', 1),
                 ('outcomes', 'trusts', 'organisation-A', 9)",
        )
        .execute(&pool)
        .await
        .unwrap();

        let mut transaction = pool.begin().await.unwrap();
        let written_before = versions_written(&mut transaction).await;
        let batch = [
            event("organisation-A", 4),
            event("organisation-B", 2),
            event("organisation-A", 5),
            event("organisation-C", 1),
        ];
        let fresh = advance_stream_versions(&mut transaction, "overview", &batch)
            .await
            .unwrap();
        assert_eq!(fresh, vec![0, 1, 2, 3]);
        assert_eq!(
            versions_written(&mut transaction).await - written_before,
            3,
            "one write per stream"
        );
        transaction.commit().await.unwrap();
        let expected = |a: i64, b: i64, c: i64| {
            vec![
                ("organisation-A".to_string(), a),
                ("organisation-B".to_string(), b),
                ("organisation-C".to_string(), c),
            ]
        };
        assert_eq!(recorded_versions(&pool).await, expected(5, 2, 1));

        // Version 5 of A again (a redelivery), then 6: only 6 is fresh, and A reaches 6, not
        // the 7 its two events would have made it.
        let mut transaction = pool.begin().await.unwrap();
        let written_before = versions_written(&mut transaction).await;
        let batch = [event("organisation-A", 5), event("organisation-A", 6)];
        let fresh = advance_stream_versions(&mut transaction, "overview", &batch)
            .await
            .unwrap();
        assert_eq!(fresh, vec![1]);
        assert_eq!(versions_written(&mut transaction).await - written_before, 2);
        transaction.commit().await.unwrap();
        assert_eq!(recorded_versions(&pool).await, expected(6, 2, 1));

        // A gap fails the batch; rolled back, it changed nothing.
        let mut transaction = pool.begin().await.unwrap();
        let batch = [event("organisation-B", 3), event("organisation-C", 3)];
        let gap = advance_stream_versions(&mut transaction, "overview", &batch).await;
        assert!(
            matches!(gap, Err(ProjectionError::Rejected(ref reason)) if reason.contains("gap in organisation-C")),
            "{gap:?}"
        );
        transaction.rollback().await.unwrap();
        assert_eq!(recorded_versions(&pool).await, expected(6, 2, 1));

        // Another projection's version of the same stream is its own.
        let other: i64 = sqlx::query_scalar(
            "SELECT version FROM projection_stream_versions WHERE projection = 'outcomes'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(other, 9);
        pool.close().await;
        database.drop_database().await;
    }

    /// Statistics taken while the table held another projection's few streams, and none of a
    /// projection that has since recorded 20,000 (a table still growing, not yet analysed
    /// again): the planner then expects one row for the projection. Recording a batch's
    /// versions must still look each stream up by key, not read every stream of the projection
    /// (77 ms per batch at 70,000 workshops, which held the outcomes view 100-270 ms behind the
    /// commands it shows).
    #[tokio::test]
    async fn a_batch_records_its_versions_by_key_whatever_the_statistics() {
        let database = TestDatabase::create().await;
        let pool = database.pool("reporting").await;
        ics_eventstore::migrate(&pool, crate::MIGRATIONS)
            .await
            .unwrap();
        for statement in [
            "INSERT INTO projection_stream_versions
             SELECT 'overview', 'trusts', 'organisation-' || n, 3 FROM generate_series(1, 50) n",
            "ANALYZE projection_stream_versions",
            "INSERT INTO projection_stream_versions
             SELECT 'outcomes', 'workshops', 'workshop-' || n, 3 FROM generate_series(1, 20000) n",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        let services = vec!["workshops"; 2];
        let stream_ids = vec!["workshop-5", "workshop-7"];
        let versions = vec![4_i64, 4];
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {RECORD_VERSIONS}"))
            .bind("outcomes")
            .bind(&services)
            .bind(&stream_ids)
            .bind(&versions)
            .fetch_all(&pool)
            .await
            .unwrap();
        let reads_every_stream = plan.iter().any(|line| {
            line.contains("Seq Scan on projection_stream_versions")
                || line.contains("Join Filter")
                || (line.contains("Index Cond") && !line.contains("stream_id"))
        });
        assert!(
            !reads_every_stream,
            "the batch's versions are not looked up by key:\n{}",
            plan.join("\n")
        );

        // And it records what it says.
        sqlx::query(RECORD_VERSIONS)
            .bind("outcomes")
            .bind(&services)
            .bind(&stream_ids)
            .bind(&versions)
            .execute(&pool)
            .await
            .unwrap();
        let recorded: Vec<(String, i64)> = sqlx::query_as(
            "SELECT stream_id, version FROM projection_stream_versions
             WHERE projection = 'outcomes' AND version <> 3 ORDER BY stream_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            recorded,
            vec![("workshop-5".to_string(), 4), ("workshop-7".to_string(), 4)]
        );
        pool.close().await;
        database.drop_database().await;
    }
}
