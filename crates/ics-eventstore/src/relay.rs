//! Publishes a service's committed events to NATS JetStream.
//!
//! The relay reads the `events` table in commit order (see [`EventStore::read_committed`]),
//! publishes each event with `Nats-Msg-Id` = event id so JetStream drops duplicates within its
//! window, waits for JetStream's acks, and only then advances its checkpoint. A crash between
//! ack and checkpoint re-publishes a few events; consumers are idempotent, so that is harmless.
//! It wakes on the NOTIFY sent by each committing command and polls as a fallback.
//!
//! The stored checkpoint trails publication by at most [`RelayConfig::checkpoint_interval`]:
//! at a few hundred commands a second each event went out in a round of its own, and a
//! checkpoint write with its commit per round cost the database about as much as the command
//! that recorded the event. Where publication resumes is decided from what the stream holds as
//! well as from the checkpoint (see [`Relay::reconcile`]), so an older checkpoint only means
//! a few events offered again, which `Nats-Msg-Id` drops.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use prost::Message;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use ics_proto::events::v1::EventEnvelope;
use uuid::Uuid;

use crate::store::{AppendSignal, CommittedPage, LogCursor, RecordedEvent, stored_u64, to_i64};
use crate::{EventStore, StoreError, fault, subject};

/// Session-level advisory lock electing the one relaying replica (advisory locks are per
/// database, and the key includes the service, so services sharing a database do not compete).
const LEADERSHIP_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext($1))";
const LEADERSHIP_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext($1))";
/// How often a standby tries to take over.
const LEADERSHIP_RETRY: Duration = Duration::from_secs(1);
/// How often the leader checks that its lock's connection is still alive.
const LEADERSHIP_CHECK: Duration = Duration::from_secs(2);

/// The first look again after a round that followed a wake and left committed events held back;
/// each further one that finds them still held back waits twice as long, up to the poll
/// interval.
const HELD_BACK_FIRST_RETRY: Duration = Duration::from_millis(5);

/// Marks this process's relay as the leader while it lives: appends here then wake it in
/// memory and send no NOTIFY (see [`AppendSignal`]).
struct Leading(std::sync::Arc<AppendSignal>);

impl Leading {
    fn start(signal: std::sync::Arc<AppendSignal>) -> Self {
        signal
            .relay_leading
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Leading(signal)
    }
}

impl Drop for Leading {
    fn drop(&mut self) {
        self.0
            .relay_leading
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What one round of publishing did.
#[derive(Debug, Clone, Copy)]
struct Round {
    published: usize,
    /// Committed events after those published wait behind a transaction still running.
    held_back: bool,
}

/// Header carrying the event's fully-qualified type, so consumers can filter without decoding.
pub const EVENT_TYPE_HEADER: &str = "Ics-Event-Type";

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("jetstream stream setup failed: {0}")]
    StreamSetup(String),
    #[error("publishing event {event_id} failed: {reason}")]
    Publish { event_id: String, reason: String },
    #[error("reading the stream's last message failed: {0}")]
    StreamRead(String),
}

/// Where the relay's stream ends, as a position in its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The stream holds nothing: none of the log has reached it.
    Empty,
    /// The stream's last message is this event of the log.
    At(LogCursor),
    /// The stream's last message is not an event of this log (its id, or why it is unreadable).
    Foreign(String),
}

/// How the relay names and paces its work.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// First token of every subject and prefix of the stream name (`ics` in production).
    pub subject_prefix: String,
    /// Events read and published per round trip.
    pub batch_size: u32,
    /// Fallback poll when no NOTIFY arrives (e.g. a row was behind a slow transaction).
    pub poll_interval: Duration,
    /// JetStream's duplicate window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// Longest pause between attempts while NATS or Postgres is unreachable.
    pub max_backoff: Duration,
    /// Stream replicas: 1 on a single server, 3 on a JetStream cluster.
    pub replicas: usize,
    /// Longest the stored checkpoint trails what is published, while publishing goes on and
    /// once it stops (zero: stored after every round).
    pub checkpoint_interval: Duration,
    /// How a publish joins the trace of the command that recorded the event. Without it the
    /// stored trace context is passed on as it is and no producer span is made.
    pub trace: Option<TraceHooks>,
    /// After an append wakes the relay, how long it waits for more before it reads: every
    /// read costs the database a query whatever it returns, and under load a wake came with
    /// every commit, so the relay read the log a few events at a time. Zero reads at once.
    pub linger: Duration,
}

/// The telemetry backend's part in a publish; the relay stays free of any backend, and
/// services pass their kit's functions.
#[derive(Debug, Clone, Copy)]
pub struct TraceHooks {
    /// Makes a span the child of a stored `traceparent`/`tracestate`.
    pub continue_trace: fn(&tracing::Span, &str, &str),
    /// The current span's `(traceparent, tracestate)`, empty when it has no trace.
    pub current_traceparent: fn() -> (String, String),
}

/// JetStream's duplicate window on each stream, unless configured. It only has to cover the
/// time between a publish whose acknowledgement may have been lost and the relay publishing it
/// again: a restart from the checkpoint, stored every 100 ms, or a retry every 2 s at most. A
/// republish after it lands in the stream and every consumer skips it by version, so the
/// window saves messages, not correctness. NATS holds every id published within it, and after
/// a backlog of a million events a two-minute window made it spend twice the CPU on all its
/// traffic: the relay published 13,552–14,160 events/s against 25,003–25,777 with ten
/// seconds, and the overview caught up at 37,834–43,030 events/s against 44,953–70,490.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(10);

impl RelayConfig {
    pub fn new(subject_prefix: &str) -> Self {
        RelayConfig {
            subject_prefix: subject_prefix.to_string(),
            batch_size: 4096,
            poll_interval: Duration::from_millis(100),
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            max_backoff: Duration::from_secs(2),
            replicas: 1,
            checkpoint_interval: Duration::from_millis(100),
            linger: Duration::from_millis(2),
            trace: None,
        }
    }
}

/// Publishes one service's event log to its JetStream stream.
#[derive(Debug, Clone)]
pub struct Relay {
    store: EventStore,
    jetstream: jetstream::Context,
    config: RelayConfig,
}

impl Relay {
    pub fn new(store: EventStore, nats: async_nats::Client, config: RelayConfig) -> Self {
        Relay {
            store,
            jetstream: crate::subject::jetstream_context(nats),
            config,
        }
    }

    /// The JetStream stream this relay publishes to.
    pub fn stream_name(&self) -> String {
        subject::stream_name(&self.config.subject_prefix, self.store.service())
    }

    /// Creates the service's stream, or brings an existing one to the wanted configuration.
    pub async fn ensure_stream(&self) -> Result<(), RelayError> {
        let config = stream::Config {
            name: self.stream_name(),
            subjects: vec![subject::service_filter(
                &self.config.subject_prefix,
                self.store.service(),
            )],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: self.config.duplicate_window,
            num_replicas: self.config.replicas,
            ..Default::default()
        };
        self.jetstream
            .create_or_update_stream(config)
            .await
            .map_err(|error| RelayError::StreamSetup(error.to_string()))?;
        Ok(())
    }

    /// Runs until `shutdown`. Of several replicas of a service, one relays at a time: the one
    /// holding the relay's advisory lock; the others stand by and take over when it goes away.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(50);
        while !shutdown.is_cancelled() {
            match self.ensure_stream().await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, stream = %self.stream_name(), "relay cannot set up its stream yet");
                    if sleep_or_shutdown(backoff, &shutdown).await {
                        return;
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
        while !shutdown.is_cancelled() {
            let Some(leadership) = self.acquire_leadership(&shutdown).await else {
                return;
            };
            self.relay_while_leading(leadership, &shutdown).await;
        }
        tracing::info!(stream = %self.stream_name(), "relay stopped");
    }

    /// Waits until this replica holds the relay lock; `None` on shutdown. The lock lives as long
    /// as the returned connection: if the connection breaks, Postgres releases it.
    async fn acquire_leadership(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<PoolConnection<Postgres>> {
        let mut announced_standby = false;
        loop {
            if let Ok(mut connection) = self.store.pool().acquire().await {
                let locked: Result<bool, _> = sqlx::query_scalar(LEADERSHIP_LOCK)
                    .bind(self.lock_name())
                    .fetch_one(&mut *connection)
                    .await;
                if matches!(locked, Ok(true)) {
                    return Some(connection);
                }
                if !announced_standby {
                    tracing::info!(stream = %self.stream_name(), "another replica is relaying; standing by");
                    announced_standby = true;
                }
            }
            if sleep_or_shutdown(LEADERSHIP_RETRY, shutdown).await {
                return None;
            }
        }
    }

    fn lock_name(&self) -> String {
        format!("{}.relay", self.store.service())
    }

    /// Publishes whatever is committed, then waits for a NOTIFY or the poll interval, until
    /// shutdown or until the lock's connection is lost. Failures (NATS or Postgres away) are
    /// retried with bounded backoff.
    async fn relay_while_leading(
        &self,
        mut leadership: PoolConnection<Postgres>,
        shutdown: &CancellationToken,
    ) {
        let mut listener = self.listen().await;
        // While this relay leads, appends in this process wake it in memory, not by NOTIFY.
        let _leading = Leading::start(self.store.appended.clone());
        let mut backoff = Duration::from_millis(50);
        // Nothing is published until the checkpoint agrees with what the stream holds; after a
        // failed publication the stream is set up and checked again (it may have been deleted,
        // or NATS may have lost it), so the relay never waits on a stream that is gone.
        let mut cursor: Option<LogCursor> = None;
        // The checkpoint as last stored, and when.
        let mut stored = StoredCheckpoint::new(self.config.checkpoint_interval);
        let mut last_lock_check = tokio::time::Instant::now();
        // After a wake, or a round that left committed events held back, how soon to look
        // again: an append may sit behind an older transaction still running anywhere in the
        // cluster (the relay publishes only below the oldest), and no further wake will come
        // for it. Each look that finds it still held back waits twice as long, until the poll
        // takes over. `None` while the relay waits only for wakes and its poll.
        let mut held_back_retry: Option<Duration> = None;
        // Whether the round about to run follows a wake (the first round counts as one).
        let mut woken = true;
        let first_held_back_retry = HELD_BACK_FIRST_RETRY.min(self.config.poll_interval);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if last_lock_check.elapsed() >= LEADERSHIP_CHECK {
                last_lock_check = tokio::time::Instant::now();
                if sqlx::query("SELECT 1")
                    .execute(&mut *leadership)
                    .await
                    .is_err()
                {
                    tracing::warn!(stream = %self.stream_name(), "relay lost its lock connection; re-electing");
                    return;
                }
            }
            let current = match cursor.as_mut() {
                Some(current) => current,
                None => match self.ensure_and_reconcile().await {
                    Ok(reconciled) => {
                        tracing::info!(stream = %self.stream_name(), transaction_id = reconciled.transaction_id, global_position = reconciled.global_position, "relay publishing");
                        stored.saved(reconciled);
                        cursor.insert(reconciled)
                    }
                    Err(error) => {
                        tracing::warn!(%error, stream = %self.stream_name(), "relay cannot reconcile its checkpoint with its stream yet");
                        if sleep_or_shutdown(backoff, shutdown).await {
                            break;
                        }
                        backoff = (backoff * 2).min(self.config.max_backoff);
                        continue;
                    }
                },
            };
            let round = match self.publish_after(current).await {
                Ok(round) if stored.due(*current) => self
                    .save_checkpoint(*current)
                    .await
                    .map(|()| {
                        stored.saved(*current);
                        round
                    })
                    .map_err(RelayError::from),
                other => other,
            };
            match round {
                Ok(round) => {
                    backoff = Duration::from_millis(50);
                    // Published or not, what is held back goes out when the transaction in
                    // front of it ends, and nothing will wake the relay for that.
                    held_back_retry = round.held_back.then(|| match held_back_retry {
                        Some(retry) if !woken => (retry * 2).min(self.config.poll_interval),
                        _ => first_held_back_retry,
                    });
                    if round.published >= self.config.batch_size as usize {
                        continue;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "relay publish failed; retrying");
                    cursor = None;
                    if sleep_or_shutdown(backoff, shutdown).await {
                        break;
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    continue;
                }
            }
            // A checkpoint behind what is published is stored when it falls due, wake or not.
            let mut wait = held_back_retry.unwrap_or(self.config.poll_interval);
            if let Some(current) = cursor {
                wait = wait.min(stored.due_in(current));
            }
            let wait = tokio::time::sleep(wait);
            woken = match listener.as_mut() {
                Some(listening) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = wait => false,
                        () = self.store.appended.wake.notified() => true,
                        notification = listening.try_recv() => {
                            if notification.is_err() {
                                // The listener reconnects by itself on the next call; polling
                                // covers the gap.
                                tracing::debug!("relay listener interrupted");
                            }
                            notification.is_ok()
                        }
                    }
                }
                None => {
                    let woken = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = wait => false,
                        () = self.store.appended.wake.notified() => true,
                    };
                    listener = self.listen().await;
                    woken
                }
            };
            if woken
                && !self.config.linger.is_zero()
                && sleep_or_shutdown(self.config.linger, shutdown).await
            {
                break;
            }
        }
        // Shut down while leading: what was published is stored, so a successor offers nothing
        // again.
        if let Some(current) = cursor.filter(|current| stored.behind(*current))
            && let Err(error) = self.save_checkpoint(current).await
        {
            tracing::warn!(%error, stream = %self.stream_name(), "relay could not store its checkpoint on shutdown");
        }
        unlock(&mut leadership, &self.lock_name()).await;
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = match PgListener::connect_with(self.store.pool()).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "relay cannot listen for notifications; polling");
                return None;
            }
        };
        match listener.listen(&self.store.notify_channel()).await {
            Ok(()) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "relay cannot listen for notifications; polling");
                None
            }
        }
    }

    /// One pass: publishes the next batch of committed events after the checkpoint and
    /// advances the checkpoint past those JetStream acknowledged. Returns how many it published.
    /// For tests and tools; the running relay keeps its cursor in memory.
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        let reconciled = self.reconcile().await?;
        let mut cursor = reconciled;
        let round = self.publish_after(&mut cursor).await;
        if cursor != reconciled {
            self.save_checkpoint(cursor).await?;
        }
        round.map(|round| round.published)
    }

    /// Publishes the next batch after `cursor` and moves it past the events JetStream
    /// acknowledged. The caller stores the checkpoint.
    async fn publish_after(&self, cursor: &mut LogCursor) -> Result<Round, RelayError> {
        let CommittedPage {
            events: batch,
            held_back,
        } = self
            .store
            .read_committed_page(*cursor, 0, self.config.batch_size)
            .await?;
        if batch.is_empty() {
            return Ok(Round {
                published: 0,
                held_back,
            });
        }
        let (acknowledged, failure) = self.publish_batch(&batch).await;
        if let Some(last) = acknowledged
            .checked_sub(1)
            .and_then(|index| batch.get(index))
        {
            // Tests kill the relay here to show that a crash between JetStream's ack and the
            // checkpoint only re-publishes (R2).
            fault::point("relay-after-ack");
            *cursor = LogCursor::after(last);
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(Round {
                published: acknowledged,
                held_back,
            }),
        }
    }

    /// Decides where publication resumes, from the checkpoint and from what the stream holds,
    /// and stores it. The checkpoint alone is not trusted:
    /// - a stream that ends before it (lost, purged, re-created, or a new subject prefix) gets
    ///   what it lacks again;
    /// - a log restored from a backup (see [`crate::identity`]) has its restored events
    ///   renumbered below this cluster's transactions, and publication resumes at the first
    ///   restored event the stream does not hold.
    ///
    /// Whatever is published twice is dropped by `Nats-Msg-Id` or skipped by consumers.
    pub async fn reconcile(&self) -> Result<LogCursor, RelayError> {
        let stream_end = self.stream_end().await?;
        let mut transaction = self.store.pool().begin().await.map_err(StoreError::from)?;
        let restored_below: Option<i64> =
            sqlx::query_scalar("SELECT restored_below FROM log_identity FOR UPDATE")
                .fetch_optional(&mut *transaction)
                .await
                .map_err(StoreError::from)?
                .flatten();
        let checkpoint = read_checkpoint(&mut transaction, &self.stream_name()).await?;
        let mut cursor = match (&stream_end, checkpoint) {
            (StreamEnd::Empty, _) => LogCursor::default(),
            // Behind the checkpoint means the stream lost events; ahead of it, a crash came
            // between JetStream's ack and the checkpoint. The earlier of the two is safe.
            (StreamEnd::At(end), Some(checkpoint)) => (*end).min(checkpoint),
            (StreamEnd::At(end), None) => *end,
            (StreamEnd::Foreign(last), checkpoint) => {
                tracing::warn!(stream = %self.stream_name(), last_event = %last, "the stream's last message is not from this log; resuming from the checkpoint");
                checkpoint.unwrap_or_default()
            }
        };
        if let Some(restored_below) = restored_below {
            cursor = renumber_restored(&mut transaction, restored_below, cursor).await?;
            tracing::warn!(stream = %self.stream_name(), restored_below, resume_after = cursor.global_position, "restored events reconciled with the stream");
        }
        save_checkpoint_in(&mut transaction, &self.stream_name(), cursor).await?;
        transaction.commit().await.map_err(StoreError::from)?;
        Ok(cursor)
    }

    /// How many messages the stream holds (0 when it does not exist).
    pub async fn stream_messages(&self) -> Result<u64, RelayError> {
        match self.jetstream.get_stream(self.stream_name()).await {
            Ok(mut stream) => Ok(stream
                .info()
                .await
                .map_err(|error| RelayError::StreamRead(error.to_string()))?
                .state
                .messages),
            Err(error)
                if matches!(
                    error.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(inner)
                        if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                Ok(0)
            }
            Err(error) => Err(RelayError::StreamRead(error.to_string())),
        }
    }

    async fn ensure_and_reconcile(&self) -> Result<LogCursor, RelayError> {
        self.ensure_stream().await?;
        self.reconcile().await
    }

    /// Where the stream ends, as a position in the log.
    pub async fn stream_end(&self) -> Result<StreamEnd, RelayError> {
        let mut stream = self
            .jetstream
            .get_stream(self.stream_name())
            .await
            .map_err(|error| RelayError::StreamRead(error.to_string()))?;
        let state = stream
            .info()
            .await
            .map_err(|error| RelayError::StreamRead(error.to_string()))?
            .state
            .clone();
        if state.messages == 0 {
            return Ok(StreamEnd::Empty);
        }
        let last = stream
            .get_raw_message(state.last_sequence)
            .await
            .map_err(|error| RelayError::StreamRead(error.to_string()))?;
        let event_id = EventEnvelope::decode(last.payload)
            .ok()
            .and_then(|envelope| Uuid::parse_str(&envelope.event_id).ok());
        let Some(event_id) = event_id else {
            return Ok(StreamEnd::Foreign(format!(
                "undecodable message at sequence {}",
                state.last_sequence
            )));
        };
        Ok(match self.store.position_of(event_id).await? {
            Some(position) => StreamEnd::At(position),
            None => StreamEnd::Foreign(event_id.to_string()),
        })
    }

    /// Publishes every committed event from `from_position` on again, in commit order, without
    /// moving the checkpoint. JetStream drops those still inside its duplicate window; consumers
    /// skip the rest by stream version.
    pub async fn republish(&self, from_position: u64) -> Result<u64, RelayError> {
        let mut cursor = LogCursor::default();
        let mut published = 0u64;
        loop {
            let batch = self
                .store
                .read_committed(cursor, from_position, self.config.batch_size)
                .await?;
            let Some(last) = batch.last() else {
                break;
            };
            let next_cursor = LogCursor::after(last);
            let (acknowledged, failure) = self.publish_batch(&batch).await;
            published += acknowledged as u64;
            if let Some(error) = failure {
                return Err(error);
            }
            cursor = next_cursor;
        }
        tracing::info!(from_position, published, "event log re-published");
        Ok(published)
    }

    /// Sends the whole batch before awaiting any ack, so one round trip serves many events.
    /// Returns how many leading events were acknowledged, and the first failure, if any.
    async fn publish_batch(&self, batch: &[RecordedEvent]) -> (usize, Option<RelayError>) {
        let mut pending: Vec<(String, PublishAckFuture)> = Vec::with_capacity(batch.len());
        let mut send_failure = None;
        for event in batch {
            match self.send(event).await {
                Ok(ack) => pending.push((event.event_id.to_string(), ack)),
                Err(error) => {
                    send_failure = Some(error);
                    break;
                }
            }
        }
        let mut acknowledged = 0;
        for (event_id, ack) in pending {
            match ack.await {
                Ok(_) => acknowledged += 1,
                Err(error) => {
                    return (
                        acknowledged,
                        Some(RelayError::Publish {
                            event_id,
                            reason: error.to_string(),
                        }),
                    );
                }
            }
        }
        (acknowledged, send_failure)
    }

    async fn send(&self, event: &RecordedEvent) -> Result<PublishAckFuture, RelayError> {
        let envelope = event.to_envelope(self.store.service());
        let subject = subject::event_subject(
            &self.config.subject_prefix,
            self.store.service(),
            &event.organisation,
            &event.event_type,
        );
        let mut headers = HeaderMap::new();
        headers.insert(EVENT_TYPE_HEADER, event.event_type.as_str());
        let (traceparent, tracestate) = self.producer_trace(event, &subject);
        if !traceparent.is_empty() {
            headers.insert("traceparent", traceparent.as_str());
        }
        if !tracestate.is_empty() {
            headers.insert("tracestate", tracestate.as_str());
        }
        // Headers first: setting them after the message id would silently drop the id.
        let message = PublishMessage::build()
            .headers(headers)
            .message_id(event.event_id.to_string())
            .payload(envelope.encode_to_vec().into());
        self.jetstream
            .send_publish(subject, message)
            .await
            .map_err(|error| RelayError::Publish {
                event_id: event.event_id.to_string(),
                reason: error.to_string(),
            })
    }

    /// The trace context a published event carries: that of a producer span, child of the
    /// command that recorded the event (OpenTelemetry's messaging conventions), so that each
    /// consumer's span follows the publish. The span covers handing the message to NATS; the
    /// acknowledgement is awaited for the whole batch. Without hooks, or for an event recorded
    /// outside any trace, the stored context goes on unchanged.
    fn producer_trace(&self, event: &RecordedEvent, subject: &str) -> (String, String) {
        let stored = (
            event.metadata.traceparent.clone(),
            event.metadata.tracestate.clone(),
        );
        let Some(hooks) = self.config.trace else {
            return stored;
        };
        if stored.0.is_empty() {
            return stored;
        }
        let span = tracing::info_span!(
            "relay_publish",
            otel.name = %format!("publish {subject}"),
            otel.kind = "producer",
            service = self.store.service(),
            messaging.system = "nats",
            messaging.operation.type = "send",
            messaging.operation.name = "publish",
            messaging.destination.name = subject,
            messaging.message.id = %event.event_id,
            ics.event_type = %event.event_type,
        );
        (hooks.continue_trace)(&span, &stored.0, &stored.1);
        let producer = span.in_scope(hooks.current_traceparent);
        if producer.0.is_empty() {
            stored
        } else {
            producer
        }
    }

    /// Where the relay resumes for its stream, strictly after this point in commit order; none
    /// before the relay first reconciled with the stream.
    pub async fn checkpoint(&self) -> Result<Option<LogCursor>, StoreError> {
        let mut connection = self.store.pool().acquire().await?;
        read_checkpoint(&mut connection, &self.stream_name()).await
    }

    async fn save_checkpoint(&self, cursor: LogCursor) -> Result<(), StoreError> {
        let mut connection = self.store.pool().acquire().await?;
        save_checkpoint_in(&mut connection, &self.stream_name(), cursor).await
    }
}

/// The relay's checkpoint as it last stored it, and when: a checkpoint behind what is published
/// falls due `interval` after the last one was stored.
struct StoredCheckpoint {
    cursor: Option<LogCursor>,
    at: tokio::time::Instant,
    interval: Duration,
}

impl StoredCheckpoint {
    fn new(interval: Duration) -> Self {
        StoredCheckpoint {
            cursor: None,
            at: tokio::time::Instant::now(),
            interval,
        }
    }

    fn saved(&mut self, cursor: LogCursor) {
        self.cursor = Some(cursor);
        self.at = tokio::time::Instant::now();
    }

    fn behind(&self, published: LogCursor) -> bool {
        self.cursor != Some(published)
    }

    fn due(&self, published: LogCursor) -> bool {
        self.due_in(published).is_zero()
    }

    /// How long until a checkpoint behind `published` falls due (forever when it is not
    /// behind).
    fn due_in(&self, published: LogCursor) -> Duration {
        if self.behind(published) {
            self.interval.saturating_sub(self.at.elapsed())
        } else {
            Duration::MAX
        }
    }
}

/// The checkpoint of the relay publishing to `stream` (rows are keyed by stream name).
async fn read_checkpoint(
    connection: &mut sqlx::PgConnection,
    stream: &str,
) -> Result<Option<LogCursor>, StoreError> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM relay_checkpoints WHERE relay = $1",
    )
    .bind(stream)
    .fetch_optional(&mut *connection)
    .await?;
    row.map(LogCursor::from_stored).transpose()
}

async fn save_checkpoint_in(
    connection: &mut sqlx::PgConnection,
    stream: &str,
    cursor: LogCursor,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (relay, transaction_id, global_position)
         VALUES ($1, $2::text::xid8, $3)
         ON CONFLICT (relay) DO UPDATE
         SET transaction_id = excluded.transaction_id,
             global_position = excluded.global_position,
             updated_at = now()",
    )
    .bind(stream)
    .bind(cursor.transaction_id.to_string())
    .bind(to_i64(cursor.global_position))
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Transaction id given to events restored from another cluster: below every id this cluster
/// hands out, so they are read before its own events and never wait for a transaction that
/// does not exist here.
const RESTORED_TRANSACTION_ID: u64 = 0;

/// Renumbers the restored events (global position below `restored_below`) to
/// [`RESTORED_TRANSACTION_ID`] and returns where publication resumes among them: just before
/// the first one that comes after `published` in the old cluster's commit order, which is what
/// the stream lacks. Among renumbered events, commit order is global-position order; within a
/// stream the two orders always agree, so consumers still see every stream in order. Other
/// streams' checkpoints are in the old numbering too: they are dropped and rebuilt the same way.
async fn renumber_restored(
    transaction: &mut sqlx::PgConnection,
    restored_below: i64,
    published: LogCursor,
) -> Result<LogCursor, StoreError> {
    let first_unpublished: Option<i64> = sqlx::query_scalar(
        "SELECT min(global_position) FROM events
         WHERE global_position < $1
           AND (transaction_id, global_position) > ($2::text::xid8, $3)",
    )
    .bind(restored_below)
    .bind(published.transaction_id.to_string())
    .bind(to_i64(published.global_position))
    .fetch_one(&mut *transaction)
    .await?;
    sqlx::query("UPDATE events SET transaction_id = $2::text::xid8 WHERE global_position < $1")
        .bind(restored_below)
        .bind(RESTORED_TRANSACTION_ID.to_string())
        .execute(&mut *transaction)
        .await?;
    sqlx::query("UPDATE log_identity SET restored_below = NULL")
        .execute(&mut *transaction)
        .await?;
    sqlx::query("DELETE FROM relay_checkpoints")
        .execute(&mut *transaction)
        .await?;
    let resume_before = first_unpublished.unwrap_or(restored_below);
    Ok(LogCursor {
        transaction_id: RESTORED_TRANSACTION_ID,
        global_position: stored_u64("restored position", resume_before)?.saturating_sub(1),
    })
}

/// Session advisory locks are released with the session; say so explicitly on a clean stop so
/// a standby takes over at once rather than when the pool recycles the connection.
async fn unlock(leadership: &mut PoolConnection<Postgres>, lock_name: &str) {
    let _ = sqlx::query(LEADERSHIP_UNLOCK)
        .bind(lock_name)
        .execute(&mut **leadership)
        .await;
}

/// Sleeps, returning early (with `true`) when shutdown is requested.
async fn sleep_or_shutdown(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}
