//! Rebuilding a projection from the record: each source service's log read in bulk, in commit
//! order, and applied in large batches inside one transaction, instead of replayed message by
//! message through JetStream. A million events take seconds, not minutes, and the projection
//! readers see stays whole until the rebuilt one replaces it at commit.

use std::collections::HashMap;

use async_nats::jetstream::consumer;
use ics_eventstore::{LogCursor, log_exists, read_log_page, subject};
use ics_proto::events::v1::EventEnvelope;
use prost::Message as _;
use sqlx::{Connection as _, PgConnection};
use tokio::sync::mpsc;

use crate::runner::{Projection, ProjectionError, ProjectionRunner};

/// Events read from a log per page, and applied per batch.
const PAGE: u32 = 10_000;

/// Pages read ahead of the one being applied: the log is read while the last page is written.
const READ_AHEAD: usize = 2;

/// Where a source stream ended before the rebuild read its log.
enum StreamEnd {
    /// Its last sequence: the consumer restarts just after it.
    At(u64),
    /// The stream does not exist yet, or NATS cannot say: the consumer is left as it is (see
    /// [`ProjectionRunner::rebuild_from_record`] for why that is safe too).
    Unknown,
}

fn jetstream_error(error: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::JetStream(error.to_string())
}

impl<P: Projection> ProjectionRunner<P> {
    /// Drops what the projection built and builds it again from its source services' logs,
    /// then points its consumers just past what those logs held. Returns the events applied.
    /// Call it while the runner is stopped.
    ///
    /// Nothing is lost: each source stream's last sequence is read before the log's snapshot is
    /// taken, and the relay publishes an event only after it committed, so every event of the
    /// log up to that sequence is in the snapshot. The consumer starts after it; an event it
    /// delivers that the snapshot also held is skipped by its stream version.
    ///
    /// Nothing is half done: the reset and every apply are one transaction, and the consumers
    /// move only after it commits. A rebuild that fails, or a process that dies during one,
    /// leaves the projection and its consumers as they were.
    pub async fn rebuild_from_record(&self) -> Result<u64, ProjectionError> {
        let mut ends = Vec::with_capacity(self.config.source_services.len());
        for service in &self.config.source_services {
            ends.push(self.stream_end(service).await);
        }
        let mut transaction = self.pool.begin().await?;
        self.projection.reset(&mut transaction).await?;
        for table in [
            "projection_stream_versions",
            "projection_parked",
            "projection_checkpoints",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE projection = $1"))
                .bind(self.projection.name())
                .execute(&mut *transaction)
                .await?;
        }
        let mut total = 0;
        let services = self.config.source_services.iter().zip(&ends);
        let count = self.config.source_services.len();
        for (index, (service, end)) in services.enumerate() {
            let (applied, last_event) = self.apply_log(&mut transaction, service).await?;
            let stream_name = subject::stream_name(&self.config.subject_prefix, service);
            let sequence = match end {
                StreamEnd::At(sequence) => *sequence,
                StreamEnd::Unknown => 0,
            };
            // Watchers recompute once, at the last source, for the whole rebuild (an empty log
            // changes the view too).
            let last = index + 1 == count;
            let changed = last.then(|| last_event.unwrap_or_default());
            self.record_checkpoint(
                &mut transaction,
                &stream_name,
                sequence,
                i64::try_from(applied).unwrap_or(i64::MAX),
                changed.as_ref(),
            )
            .await?;
            total += applied;
        }
        transaction.commit().await?;
        for (service, end) in self.config.source_services.iter().zip(&ends) {
            if let StreamEnd::At(sequence) = end {
                self.start_consumer_after(service, *sequence).await;
            }
        }
        tracing::info!(
            projection = self.projection.name(),
            events = total,
            "projection rebuilt from the record"
        );
        Ok(total)
    }

    async fn stream_end(&self, service: &str) -> StreamEnd {
        let stream_name = subject::stream_name(&self.config.subject_prefix, service);
        let info = match self.jetstream.get_stream(&stream_name).await {
            Ok(mut stream) => stream.info().await.map(|info| info.state.last_sequence),
            Err(error) => {
                tracing::info!(projection = self.projection.name(), stream = %stream_name, %error, "stream end unknown; the consumer keeps its position");
                return StreamEnd::Unknown;
            }
        };
        match info {
            Ok(sequence) => StreamEnd::At(sequence),
            Err(error) => {
                tracing::info!(projection = self.projection.name(), stream = %stream_name, %error, "stream end unknown; the consumer keeps its position");
                StreamEnd::Unknown
            }
        }
    }

    /// Replaces the durable consumer of `service`'s stream with one that starts after
    /// `sequence`. If NATS fails meanwhile, whichever consumer is left (the old one, or one the
    /// runner creates from the start) delivers only what the stream versions skip or need.
    async fn start_consumer_after(&self, service: &str, sequence: u64) {
        let stream_name = subject::stream_name(&self.config.subject_prefix, service);
        let replaced = async {
            let stream = self
                .jetstream
                .get_stream(&stream_name)
                .await
                .map_err(jetstream_error)?;
            // Absent already is as good as deleted.
            let _ = stream.delete_consumer(&self.consumer_name()).await;
            stream
                .create_consumer(consumer::pull::Config {
                    deliver_policy: match sequence {
                        0 => consumer::DeliverPolicy::All,
                        _ => consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: sequence + 1,
                        },
                    },
                    ..self.consumer_config()
                })
                .await
                .map_err(jetstream_error)?;
            Ok::<(), ProjectionError>(())
        }
        .await;
        if let Err(error) = replaced {
            tracing::warn!(projection = self.projection.name(), stream = %stream_name, %error, "consumer not moved past the rebuilt record; it will deliver events the projection skips");
        }
    }

    /// Applies `service`'s whole log, as one snapshot, inside `transaction`, and records each
    /// stream's version. Returns the events applied and the last of them.
    async fn apply_log(
        &self,
        transaction: &mut PgConnection,
        service: &str,
    ) -> Result<(u64, Option<EventEnvelope>), ProjectionError> {
        // A service that has never started has no log yet: nothing to rebuild from it.
        if !log_exists(&mut *transaction, service).await? {
            return Ok((0, None));
        }
        let (pages, mut received) = mpsc::channel(READ_AHEAD);
        let reader = tokio::spawn(read_log(self.pool.clone(), service.to_owned(), pages));
        let mut versions: HashMap<String, u64> = HashMap::new();
        let mut applied = 0u64;
        let mut last = None;
        while let Some(page) = received.recv().await {
            let page = page?;
            for event in &page {
                let version = versions.entry(event.stream_id.clone()).or_insert(0);
                if event.stream_version != *version + 1 {
                    reader.abort();
                    return Err(ProjectionError::Corrupt(format!(
                        "the {service} log holds version {} of {} after version {}",
                        event.stream_version, event.stream_id, version
                    )));
                }
                *version = event.stream_version;
            }
            applied += self.apply_record_batch(transaction, service, &page).await?;
            last = page.into_iter().last();
        }
        reader.await.map_err(|error| {
            ProjectionError::Corrupt(format!("the {service} log reader failed: {error}"))
        })?;
        let (stream_ids, stream_versions): (Vec<String>, Vec<i64>) = versions
            .into_iter()
            .map(|(stream_id, version)| (stream_id, i64::try_from(version).unwrap_or(i64::MAX)))
            .unzip();
        sqlx::query(
            "INSERT INTO projection_stream_versions (projection, source_service, stream_id, version)
             SELECT $1, $2, stream_id, version
             FROM UNNEST($3::text[], $4::bigint[]) AS rebuilt (stream_id, version)",
        )
        .bind(self.projection.name())
        .bind(service)
        .bind(&stream_ids)
        .bind(&stream_versions)
        .execute(&mut *transaction)
        .await?;
        Ok((applied, last))
    }

    /// Applies a batch of the record. An event the projection rejects is dead-lettered, as the
    /// live runner does, and the rest of the batch still applies: the batch is tried whole
    /// inside a savepoint, then, if something in it is rejected, event by event. Returns how
    /// many it applied (the dead-lettered are not).
    async fn apply_record_batch(
        &self,
        transaction: &mut PgConnection,
        service: &str,
        events: &[EventEnvelope],
    ) -> Result<u64, ProjectionError> {
        let mut savepoint = transaction.begin().await?;
        match self.projection.apply_batch(&mut savepoint, events).await {
            Ok(()) => {
                savepoint.commit().await?;
                return Ok(events.len() as u64);
            }
            Err(ProjectionError::Rejected(_)) => savepoint.rollback().await?,
            Err(error) => return Err(error),
        }
        let mut applied = 0;
        for event in events {
            let mut savepoint = transaction.begin().await?;
            match self.projection.apply(&mut savepoint, event).await {
                Ok(()) => {
                    savepoint.commit().await?;
                    applied += 1;
                }
                Err(ProjectionError::Rejected(reason)) => {
                    savepoint.rollback().await?;
                    self.dead_letter_from_record(transaction, service, event, &reason)
                        .await?;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(applied)
    }

    /// Records an event of the record the projection rejects, once: the live runner may have
    /// dead-lettered it already. It has no stream sequence (0): it came from the log.
    async fn dead_letter_from_record(
        &self,
        connection: &mut PgConnection,
        service: &str,
        event: &EventEnvelope,
        reason: &str,
    ) -> Result<(), ProjectionError> {
        tracing::error!(projection = self.projection.name(), event_id = %event.event_id, event_type = %event.event_type, error = %reason, "event of the record dead-lettered during a rebuild");
        sqlx::query(
            "INSERT INTO dead_letters (projection, subject, stream_sequence, event_id, event_type,
                 deliveries, error, payload)
             SELECT $1, $2, 0, $3, $4, 1, $5, $6
             WHERE NOT EXISTS (SELECT 1 FROM dead_letters WHERE projection = $1 AND event_id = $3)",
        )
        .bind(self.projection.name())
        .bind(subject::event_subject(
            &self.config.subject_prefix,
            service,
            &event.organisation,
            &event.event_type,
        ))
        .bind(&event.event_id)
        .bind(&event.event_type)
        .bind(format!("event rejected: {reason}"))
        .bind(event.encode_to_vec())
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}

/// Reads `service`'s log page by page in one `REPEATABLE READ` snapshot and sends the pages as
/// envelopes, ahead of the applying side by at most [`READ_AHEAD`] pages.
async fn read_log(
    pool: sqlx::PgPool,
    service: String,
    pages: mpsc::Sender<Result<Vec<EventEnvelope>, ProjectionError>>,
) {
    let read = async {
        // Dropped on any early return, the transaction rolls back before its connection is
        // reused.
        let mut connection = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *connection)
            .await?;
        let mut cursor: Option<LogCursor> = None;
        loop {
            let events = read_log_page(&mut connection, &service, cursor, PAGE).await?;
            let Some(last) = events.last() else {
                break;
            };
            cursor = Some(LogCursor::after(last));
            let full = events.len() == PAGE as usize;
            let envelopes = events
                .iter()
                .map(|event| event.to_envelope(&service))
                .collect();
            if pages.send(Ok(envelopes)).await.is_err() {
                break;
            }
            if !full {
                break;
            }
        }
        connection.commit().await?;
        Ok::<(), ProjectionError>(())
    };
    if let Err(error) = read.await {
        let _ = pages.send(Err(error)).await;
    }
}
