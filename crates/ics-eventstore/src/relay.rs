//! Publishes a service's committed events to NATS JetStream.
//!
//! The relay reads the `events` table in commit order (see [`EventStore::read_committed`]),
//! publishes each event with `Nats-Msg-Id` = event id so JetStream drops duplicates within its
//! window, waits for JetStream's acks, and only then advances its checkpoint. A crash between
//! ack and checkpoint re-publishes a few events; consumers are idempotent, so that is harmless.
//! It wakes on the NOTIFY sent by each committing command and polls as a fallback.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use prost::Message;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::store::{LogCursor, RecordedEvent, to_i64, to_u64};
use crate::{EventStore, StoreError, subject};

/// Name of the relay's row in `relay_checkpoints`.
const CHECKPOINT_NAME: &str = "jetstream";

/// Session-level advisory lock electing the one relaying replica (advisory locks are per
/// database, and the key includes the service, so services sharing a database do not compete).
const LEADERSHIP_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext($1))";
const LEADERSHIP_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext($1))";
/// How often a standby tries to take over.
const LEADERSHIP_RETRY: Duration = Duration::from_secs(1);
/// How often the leader checks that its lock's connection is still alive.
const LEADERSHIP_CHECK: Duration = Duration::from_secs(2);

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
}

impl RelayConfig {
    pub fn new(subject_prefix: &str) -> Self {
        RelayConfig {
            subject_prefix: subject_prefix.to_string(),
            batch_size: 512,
            poll_interval: Duration::from_millis(100),
            duplicate_window: Duration::from_secs(120),
            max_backoff: Duration::from_secs(2),
            replicas: 1,
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
            jetstream: jetstream::new(nats),
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
        tracing::info!(stream = %self.stream_name(), "relay started");
        let mut backoff = Duration::from_millis(50);
        let mut last_lock_check = tokio::time::Instant::now();
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
            match self.publish_pending().await {
                Ok(published) => {
                    backoff = Duration::from_millis(50);
                    if published >= self.config.batch_size as usize {
                        continue;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "relay publish failed; retrying");
                    if sleep_or_shutdown(backoff, shutdown).await {
                        break;
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    continue;
                }
            }
            let wait = tokio::time::sleep(self.config.poll_interval);
            match listener.as_mut() {
                Some(listening) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = wait => {}
                        notification = listening.try_recv() => {
                            if notification.is_err() {
                                // The listener reconnects by itself on the next call; polling
                                // covers the gap.
                                tracing::debug!("relay listener interrupted");
                            }
                        }
                    }
                }
                None => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = wait => {}
                    }
                    listener = self.listen().await;
                }
            }
        }
        // Session advisory locks are released with the session; say so explicitly on a clean
        // stop so a standby takes over at once rather than when the pool recycles the connection.
        let _ = sqlx::query(LEADERSHIP_UNLOCK)
            .bind(self.lock_name())
            .execute(&mut *leadership)
            .await;
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
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        let cursor = self.checkpoint().await?;
        let batch = self
            .store
            .read_committed(cursor, 0, self.config.batch_size)
            .await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let (acknowledged, failure) = self.publish_batch(&batch).await;
        if let Some(last) = acknowledged
            .checked_sub(1)
            .and_then(|index| batch.get(index))
        {
            self.save_checkpoint(LogCursor::after(last)).await?;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(acknowledged),
        }
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
        if !event.metadata.traceparent.is_empty() {
            headers.insert("traceparent", event.metadata.traceparent.as_str());
        }
        if !event.metadata.tracestate.is_empty() {
            headers.insert("tracestate", event.metadata.tracestate.as_str());
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

    /// Where the relay resumes: strictly after this point in commit order.
    pub async fn checkpoint(&self) -> Result<LogCursor, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT transaction_id::text, global_position FROM relay_checkpoints WHERE relay = $1",
        )
        .bind(CHECKPOINT_NAME)
        .fetch_optional(self.store.pool())
        .await?;
        Ok(row
            .map(|(transaction_id, global_position)| LogCursor {
                transaction_id: transaction_id.parse().unwrap_or_default(),
                global_position: to_u64(global_position),
            })
            .unwrap_or_default())
    }

    async fn save_checkpoint(&self, cursor: LogCursor) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO relay_checkpoints (relay, transaction_id, global_position)
             VALUES ($1, $2::text::xid8, $3)
             ON CONFLICT (relay) DO UPDATE
             SET transaction_id = excluded.transaction_id,
                 global_position = excluded.global_position,
                 updated_at = now()",
        )
        .bind(CHECKPOINT_NAME)
        .bind(cursor.transaction_id.to_string())
        .bind(to_i64(cursor.global_position))
        .execute(self.store.pool())
        .await?;
        Ok(())
    }
}

/// Sleeps, returning early (with `true`) when shutdown is requested.
async fn sleep_or_shutdown(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}
