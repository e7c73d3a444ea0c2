//! Group commit: the appends of concurrent commands are written together, several commands'
//! events and request records in one statement and one commit.
//!
//! A command costs PostgreSQL a statement and a commit (with its WAL flush) whatever it
//! appends; under load that per-commit cost, not the rows, is what saturates the database.
//! Appends therefore queue to one dispatcher per event store, which starts a batch of
//! whatever is waiting as soon as one of [`BATCHES_IN_FLIGHT`] slots is free. A lone command
//! goes out at once, in a batch of one; commands arriving while batches are in flight wait
//! for the next slot and share it. Nothing waits for a batch to fill.
//!
//! Each command in a batch keeps its own guarantees:
//! - **Head guard.** Its events are written only if its stream's head is still the version it
//!   decided on, holding the very event it decided on there; otherwise it is not written, and
//!   the store reads and decides again.
//! - **Request id.** Its result is recorded with `ON CONFLICT DO NOTHING`, and its events are
//!   written only if that record was: a request id recorded first by someone else writes
//!   nothing, and the store answers with the recorded result.
//! - **One stream, one request per batch.** A batch never holds two commands of the same
//!   stream or request id, nor a stream another batch in flight is writing: the second waits
//!   for the first to commit, so its head guard sees it.
//! - **All or nothing, per command.** The batch is one transaction. If a concurrent writer
//!   elsewhere (another replica) breaks a unique key, the whole batch rolls back and its
//!   commands are written again one at a time, so only the command that raced loses.
//!
//! A batch that fails for any other reason fails every command in it, each with an error of
//! the same class: like a single command whose commit was lost, none of them is known to be
//! written or not, and a retry with the same request id settles it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ics_proto::events::v1::EventMetadata;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::StoreError;
use crate::store::{
    AppendSignal, CommandContext, NewEvent, RecordedEvent, parse_transaction_id, stored_u64, to_i64,
};

/// How many batches may be written at once. Measured with `scripts/bench` (single commands at
/// 500/s and closed loops of 8 and 32 clients): with two, a command at moderate load often
/// waited for a slot (p50 2.7 ms against 1.4 ms with four); with eight, few commands shared a
/// commit and the closed loops fell back to what they reached without group commit.
pub(crate) const BATCHES_IN_FLIGHT: usize = 4;

/// Commands in one batch at most.
const MAX_BATCH_COMMANDS: usize = 256;

/// Payload bytes in one batch at most (an ingest event carries up to 2,000 observations);
/// a single command larger than this still goes, in a batch of its own.
const MAX_BATCH_PAYLOAD_BYTES: usize = 4 << 20;

/// What a command decided to append, and the request it answers.
#[derive(Debug)]
pub(crate) struct PendingAppend {
    pub(crate) stream_id: String,
    /// The stream's version the decision was made on: the events go after it.
    pub(crate) head: u64,
    /// The event at `head` the decision was made on, when known: the events are written only
    /// if the stream still holds that very event there, not merely as many events (a stream
    /// restored from a backup and appended to since can reach the same version with others).
    pub(crate) head_event_id: Option<Uuid>,
    pub(crate) context: CommandContext,
    pub(crate) command_type: String,
    pub(crate) fingerprint: Vec<u8>,
    /// The encoded `CommandResult` recorded for retries.
    pub(crate) result: Vec<u8>,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) event_ids: Vec<Uuid>,
}

impl PendingAppend {
    fn payload_bytes(&self) -> usize {
        self.events.iter().map(|event| event.payload.len()).sum()
    }
}

/// What became of an append: its events as stored, or `None` when nothing was written (the
/// stream's head moved, or the request id was recorded first by another command).
pub(crate) type Written = Result<Option<Vec<RecordedEvent>>, StoreError>;

struct Pending {
    append: PendingAppend,
    reply: oneshot::Sender<Written>,
}

/// The queue to one event store's dispatcher.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommit {
    /// Starts the dispatcher on the current runtime; it ends when the last handle is dropped
    /// and every batch it started is written.
    pub(crate) fn start(pool: PgPool, channel: String, signal: Arc<AppendSignal>) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let writer = Arc::new(Writer {
            pool,
            channel,
            signal,
        });
        tokio::spawn(dispatch(receiver, writer, BATCHES_IN_FLIGHT));
        GroupCommit { queue }
    }

    /// Writes `append` with whatever else is waiting, and says what became of it.
    pub(crate) async fn append(&self, append: PendingAppend) -> Written {
        let (reply, answer) = oneshot::channel();
        // The dispatcher lives as long as a handle does; it is gone only if its runtime is.
        self.queue
            .send(Pending { append, reply })
            .map_err(|_| StoreError::Unavailable(sqlx::Error::WorkerCrashed))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::WorkerCrashed))?
    }
}

async fn dispatch(
    mut queue: mpsc::UnboundedReceiver<Pending>,
    writer: Arc<Writer>,
    batches_in_flight: usize,
) {
    let mut waiting: VecDeque<Pending> = VecDeque::new();
    // Streams a batch in flight is writing, by batch.
    let mut writing: HashMap<tokio::task::Id, Vec<String>> = HashMap::new();
    let mut busy: HashSet<String> = HashSet::new();
    let mut running = JoinSet::new();
    let mut open = true;
    loop {
        while running.len() < batches_in_flight {
            while let Ok(pending) = queue.try_recv() {
                waiting.push_back(pending);
            }
            let batch = next_batch(&mut waiting, &busy);
            if batch.is_empty() {
                break;
            }
            let streams: Vec<String> = batch
                .iter()
                .map(|pending| pending.append.stream_id.clone())
                .collect();
            busy.extend(streams.iter().cloned());
            let handle = running.spawn(writer.clone().write(batch));
            writing.insert(handle.id(), streams);
        }
        tokio::select! {
            done = running.join_next_with_id(), if !running.is_empty() => {
                let id = match done {
                    Some(Ok((id, ()))) => id,
                    Some(Err(error)) => error.id(),
                    None => continue,
                };
                for stream in writing.remove(&id).unwrap_or_default() {
                    busy.remove(&stream);
                }
            }
            received = queue.recv(), if open => match received {
                Some(pending) => waiting.push_back(pending),
                None => open = false,
            },
            else => return,
        }
    }
}

/// The next batch: waiting appends in arrival order, skipping (and keeping for later) any
/// whose stream is being written or is already in the batch, or whose request id is.
fn next_batch(waiting: &mut VecDeque<Pending>, busy: &HashSet<String>) -> Vec<Pending> {
    let mut streams: HashSet<&str> = HashSet::new();
    let mut requests: HashSet<(&str, &str)> = HashSet::new();
    let mut payload_bytes = 0;
    let mut taken = Vec::new();
    for (index, pending) in waiting.iter().enumerate() {
        if taken.len() >= MAX_BATCH_COMMANDS {
            break;
        }
        let append = &pending.append;
        let bytes = append.payload_bytes();
        if !taken.is_empty() && payload_bytes + bytes > MAX_BATCH_PAYLOAD_BYTES {
            break;
        }
        if busy.contains(&append.stream_id)
            || !streams.insert(&append.stream_id)
            || !requests.insert((&append.context.principal, &append.context.request_id))
        {
            continue;
        }
        payload_bytes += bytes;
        taken.push(index);
    }
    // Removed from the back, so the indices still to remove stay valid.
    let mut batch: Vec<Pending> = taken
        .into_iter()
        .rev()
        .filter_map(|index| waiting.remove(index))
        .collect();
    batch.reverse();
    batch
}

/// Writes batches for one event store.
struct Writer {
    pool: PgPool,
    /// The LISTEN/NOTIFY channel that wakes relays of other processes.
    channel: String,
    signal: Arc<AppendSignal>,
}

impl Writer {
    async fn write(self: Arc<Self>, batch: Vec<Pending>) {
        let appends: Vec<&PendingAppend> = batch.iter().map(|pending| &pending.append).collect();
        match self.write_batch(&appends).await {
            Err(error) if is_unique_violation(&error) && batch.len() > 1 => {
                // Another writer broke a unique key of one of them: the batch rolled back
                // whole. One at a time, only the command that raced loses.
                for pending in batch {
                    let written = self.write_batch(&[&pending.append]).await;
                    self.answer(vec![pending], written);
                }
            }
            written => self.answer(batch, written),
        }
    }

    /// Answers each command of `batch` with what its statement came to.
    fn answer(&self, batch: Vec<Pending>, written: Result<Vec<PgRow>, sqlx::Error>) {
        let written = match written {
            Ok(rows) => written_of(&rows, batch.len()),
            // A batch of one whose key another writer took first: it was not written. (A
            // larger batch is written again one at a time before it is answered.)
            Err(error) if is_unique_violation(&error) => Ok(vec![None; batch.len()]),
            Err(error) => Err(StoreError::from(error)),
        };
        match written {
            Ok(written) => {
                for (pending, written) in batch.into_iter().zip(written) {
                    self.deliver(pending, Ok(written));
                }
            }
            Err(error) => {
                for pending in batch {
                    self.deliver(pending, Err(error.of_same_class()));
                }
            }
        }
    }

    /// Answers one command with its events as stored (`None`: not written), or the error.
    fn deliver(&self, pending: Pending, stored: Result<Option<Vec<StoredPosition>>, StoreError>) {
        let Pending { append, reply } = pending;
        // A command whose caller has gone (its client cancelled) is written all the same;
        // nobody is left to answer.
        let stored = match stored {
            Ok(Some(stored)) => stored,
            not_written => {
                let _ = reply.send(not_written.map(|_| None));
                return;
            }
        };
        if !stored.is_empty() {
            self.signal.wake.notify_one();
        }
        let PendingAppend {
            stream_id,
            context,
            events,
            event_ids,
            ..
        } = append;
        let metadata = EventMetadata {
            request_id: context.request_id,
            correlation_id: context.correlation_id,
            causation_id: context.causation_id,
            traceparent: context.traceparent,
            tracestate: context.tracestate,
            principal: context.principal,
        };
        let recorded = events
            .into_iter()
            .zip(event_ids)
            .zip(stored)
            .map(|((event, event_id), position)| RecordedEvent {
                global_position: position.global_position,
                transaction_id: position.transaction_id,
                stream_id: stream_id.clone(),
                stream_version: position.stream_version,
                event_id,
                event_type: event.event_type,
                schema_version: event.schema_version,
                organisation: event.organisation,
                payload: event.payload,
                metadata: metadata.clone(),
                recorded_at: position.recorded_at,
            })
            .collect();
        let _ = reply.send(Ok(Some(recorded)));
    }

    /// One statement, one commit: a row per event written, tagged with its command's ordinal
    /// in `appends` (and one row without an event for a command written without events); no
    /// row for a command not written. A command's events come in version order.
    async fn write_batch(&self, appends: &[&PendingAppend]) -> Result<Vec<PgRow>, sqlx::Error> {
        let mut commands = Columns::default();
        let mut events = EventColumns::default();
        for (ordinal, append) in appends.iter().enumerate() {
            let ordinal = i32::try_from(ordinal).unwrap_or(i32::MAX);
            commands.push(ordinal, append);
            for (offset, (event, event_id)) in
                append.events.iter().zip(&append.event_ids).enumerate()
            {
                events.ordinal.push(ordinal);
                events.version.push(to_i64(append.head + offset as u64 + 1));
                events.event_id.push(*event_id);
                events.event_type.push(&event.event_type);
                events
                    .schema_version
                    .push(i32::try_from(event.schema_version).unwrap_or(i32::MAX));
                events.organisation.push(&event.organisation);
                events.payload.push(&event.payload);
            }
        }
        // NOTIFY serialises the commits that send it: sent only while another process's relay
        // leads (this process's relay is woken in memory).
        //
        // Each `UNNEST` takes one of its arrays through a scalar subquery, so that the planner
        // estimates its rows the same way whatever the arrays hold. Given the arrays as
        // constants, it counts their elements, finds a plan for one or two commands cheaper
        // than the prepared generic plan (which assumes a hundred), and plans the statement
        // afresh on every execution: planning was half the statement's cost. With the same
        // estimate both ways, PostgreSQL keeps the generic plan after its first five.
        let notify = !self
            .signal
            .relay_leading
            .load(std::sync::atomic::Ordering::SeqCst);
        sqlx::query(
            "WITH command AS (
                 SELECT * FROM UNNEST((SELECT $1::integer[]), $2::text[], $3::bigint[], $4::text[],
                     $5::text[], $6::text[], $7::bytea[], $8::bytea[], $9::text[], $10::text[],
                     $11::text[], $12::text[], $22::uuid[])
                     AS command (ordinal, stream_id, head, principal, request_id, command_type,
                         fingerprint, result, correlation_id, causation_id, traceparent,
                         tracestate, head_event_id)
             ), unmoved AS (
                 -- The head guard: one look at the stream's last event gives both its version
                 -- and, when the command names it, which event it is.
                 SELECT command.* FROM command
                 LEFT JOIN LATERAL (SELECT stream_version, event_id FROM events
                                    WHERE events.stream_id = command.stream_id
                                    ORDER BY stream_version DESC LIMIT 1) AS head ON true
                 WHERE coalesce(head.stream_version, 0) = command.head
                     AND (command.head_event_id IS NULL
                          OR head.event_id = command.head_event_id)
             ), recorded AS (
                 INSERT INTO command_requests (principal, request_id, command_type,
                     fingerprint, result)
                 SELECT principal, request_id, command_type, fingerprint, result FROM unmoved
                 ON CONFLICT (principal, request_id) DO NOTHING
                 RETURNING principal, request_id
             ), written AS (
                 SELECT unmoved.* FROM unmoved JOIN recorded USING (principal, request_id)
             ), appended AS (
                 INSERT INTO events (stream_id, stream_version, event_id, event_type,
                     schema_version, organisation, payload, request_id, correlation_id,
                     causation_id, traceparent, tracestate, principal)
                 SELECT written.stream_id, new_event.version, new_event.event_id,
                     new_event.event_type, new_event.schema_version, new_event.organisation,
                     new_event.payload, written.request_id, written.correlation_id,
                     written.causation_id, written.traceparent, written.tracestate,
                     written.principal
                 FROM UNNEST((SELECT $13::integer[]), $14::bigint[], $15::uuid[], $16::text[],
                     $17::integer[], $18::text[], $19::bytea[])
                     AS new_event (ordinal, version, event_id, event_type, schema_version,
                         organisation, payload)
                 JOIN written USING (ordinal)
                 ORDER BY new_event.ordinal, new_event.version
                 RETURNING stream_id, stream_version, global_position,
                     transaction_id::text AS transaction_id_text, recorded_at
             ), notified AS (
                 SELECT count(*) AS notified
                 FROM (SELECT pg_notify($20, '')
                       WHERE $21 AND EXISTS (SELECT 1 FROM appended)) AS notify
             )
             SELECT written.ordinal, notified.notified, appended.stream_version,
                 appended.global_position, appended.transaction_id_text, appended.recorded_at
             FROM written CROSS JOIN notified
             LEFT JOIN appended ON appended.stream_id = written.stream_id
             ORDER BY written.ordinal, appended.stream_version",
        )
        .bind(&commands.ordinal)
        .bind(&commands.stream_id)
        .bind(&commands.head)
        .bind(&commands.principal)
        .bind(&commands.request_id)
        .bind(&commands.command_type)
        .bind(&commands.fingerprint)
        .bind(&commands.result)
        .bind(&commands.correlation_id)
        .bind(&commands.causation_id)
        .bind(&commands.traceparent)
        .bind(&commands.tracestate)
        .bind(&events.ordinal)
        .bind(&events.version)
        .bind(&events.event_id)
        .bind(&events.event_type)
        .bind(&events.schema_version)
        .bind(&events.organisation)
        .bind(&events.payload)
        .bind(&self.channel)
        .bind(notify)
        .bind(&commands.head_event_id)
        .fetch_all(&self.pool)
        .await
    }
}

/// A batch's result rows as what each of its `commands` came to: its events' positions when
/// written (`None` when not), in the order the commands were given.
fn written_of(
    rows: &[PgRow],
    commands: usize,
) -> Result<Vec<Option<Vec<StoredPosition>>>, StoreError> {
    let mut written: Vec<Option<Vec<StoredPosition>>> = vec![None; commands];
    for row in rows {
        let ordinal: i32 = row.try_get("ordinal")?;
        let slot = usize::try_from(ordinal)
            .ok()
            .and_then(|ordinal| written.get_mut(ordinal))
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("a batch answered for command {ordinal} of {commands}"),
            })?;
        let positions = slot.get_or_insert_with(Vec::new);
        if let Some(position) = StoredPosition::from_row(row)? {
            positions.push(position);
        }
    }
    Ok(written)
}

/// Where an appended event was stored.
#[derive(Debug, Clone)]
struct StoredPosition {
    stream_version: u64,
    global_position: u64,
    transaction_id: u64,
    recorded_at: DateTime<Utc>,
}

impl StoredPosition {
    /// The event columns of a batch's result row: `None` for a command that appended nothing.
    fn from_row(row: &PgRow) -> Result<Option<Self>, StoreError> {
        let Some(stream_version) = row.try_get::<Option<i64>, _>("stream_version")? else {
            return Ok(None);
        };
        let transaction_id: String = row.try_get("transaction_id_text")?;
        Ok(Some(StoredPosition {
            stream_version: stored_u64("stream_version", stream_version)?,
            global_position: stored_u64("global_position", row.try_get("global_position")?)?,
            transaction_id: parse_transaction_id(&transaction_id)?,
            recorded_at: row.try_get("recorded_at")?,
        }))
    }
}

/// A batch's commands as columns, for `UNNEST`.
#[derive(Default)]
struct Columns<'a> {
    ordinal: Vec<i32>,
    stream_id: Vec<&'a str>,
    head: Vec<i64>,
    head_event_id: Vec<Option<Uuid>>,
    principal: Vec<&'a str>,
    request_id: Vec<&'a str>,
    command_type: Vec<&'a str>,
    fingerprint: Vec<&'a [u8]>,
    result: Vec<&'a [u8]>,
    correlation_id: Vec<&'a str>,
    causation_id: Vec<&'a str>,
    traceparent: Vec<&'a str>,
    tracestate: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, ordinal: i32, append: &'a PendingAppend) {
        self.ordinal.push(ordinal);
        self.stream_id.push(&append.stream_id);
        self.head.push(to_i64(append.head));
        self.head_event_id.push(append.head_event_id);
        self.principal.push(&append.context.principal);
        self.request_id.push(&append.context.request_id);
        self.command_type.push(&append.command_type);
        self.fingerprint.push(&append.fingerprint);
        self.result.push(&append.result);
        self.correlation_id.push(&append.context.correlation_id);
        self.causation_id.push(&append.context.causation_id);
        self.traceparent.push(&append.context.traceparent);
        self.tracestate.push(&append.context.tracestate);
    }
}

/// A batch's events as columns, for `UNNEST`; `ordinal` names each event's command.
#[derive(Default)]
struct EventColumns<'a> {
    ordinal: Vec<i32>,
    version: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    schema_version: Vec<i32>,
    organisation: Vec<&'a str>,
    payload: Vec<&'a [u8]>,
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::migrate;
    use ics_testing::TestDatabase;
    use std::time::Duration;

    fn pending(stream: &str, head: u64, request_id: &str, events: usize) -> PendingAppend {
        PendingAppend {
            stream_id: stream.to_owned(),
            head,
            head_event_id: None,
            context: CommandContext {
                request_id: request_id.to_owned(),
                principal: "trust-writer:RTP".to_owned(),
                ..CommandContext::default()
            },
            command_type: "Rename".to_owned(),
            fingerprint: request_id.as_bytes().to_vec(),
            result: request_id.as_bytes().to_vec(),
            events: (0..events)
                .map(|index| NewEvent {
                    event_type: "ics.events.v1.OrganisationRenamed".to_owned(),
                    schema_version: 1,
                    organisation: "RTP".to_owned(),
                    payload: format!("{request_id}/{index}").into_bytes(),
                })
                .collect(),
            event_ids: (0..events).map(|_| Uuid::now_v7()).collect(),
        }
    }

    fn queued(append: PendingAppend) -> (Pending, oneshot::Receiver<Written>) {
        let (reply, answer) = oneshot::channel();
        (Pending { append, reply }, answer)
    }

    async fn writer(database: &TestDatabase) -> Arc<Writer> {
        let pool = database.pool("trusts").await;
        migrate(&pool, &[]).await.unwrap();
        Arc::new(Writer {
            pool,
            channel: "trusts_events_appended".to_owned(),
            signal: Arc::new(AppendSignal::default()),
        })
    }

    /// Writes `appends` as one batch and answers what became of each, in order.
    async fn write(writer: &Arc<Writer>, appends: Vec<PendingAppend>) -> Vec<Written> {
        let (batch, answers): (Vec<_>, Vec<_>) = appends.into_iter().map(queued).unzip();
        writer.clone().write(batch).await;
        let mut written = Vec::new();
        for answer in answers {
            written.push(answer.await.unwrap());
        }
        written
    }

    fn versions(written: &Written) -> Option<Vec<u64>> {
        let events = written.as_ref().unwrap().as_ref()?;
        Some(events.iter().map(|event| event.stream_version).collect())
    }

    #[test]
    fn a_batch_takes_waiting_appends_in_order_but_never_two_of_a_stream_or_request() {
        let mut waiting: VecDeque<Pending> = [
            pending("organisation-A", 0, "a1", 1),
            pending("organisation-B", 0, "b1", 1),
            pending("organisation-A", 1, "a2", 1),
            pending("organisation-C", 0, "b1", 1),
            pending("organisation-D", 0, "d1", 1),
            pending("organisation-E", 0, "e1", 1),
        ]
        .into_iter()
        .map(|append| queued(append).0)
        .collect();
        let busy = HashSet::from(["organisation-D".to_owned()]);
        let requests = |batch: &[Pending]| -> Vec<String> {
            batch
                .iter()
                .map(|pending| pending.append.context.request_id.clone())
                .collect()
        };
        // a2 shares a stream with a1, C's request id is b1's, and D is being written.
        let first = next_batch(&mut waiting, &busy);
        assert_eq!(requests(&first), ["a1", "b1", "e1"]);
        let second = next_batch(&mut waiting, &HashSet::new());
        assert_eq!(requests(&second), ["a2", "b1", "d1"]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_batch_stops_at_its_payload_bound_but_always_takes_one() {
        let large = |stream: &str, request: &str| {
            let mut append = pending(stream, 0, request, 1);
            append.events[0].payload = vec![0; MAX_BATCH_PAYLOAD_BYTES / 2 + 1];
            queued(append).0
        };
        let mut waiting: VecDeque<Pending> = [
            large("organisation-A", "a"),
            large("organisation-B", "b"),
            large("organisation-C", "c"),
        ]
        .into_iter()
        .collect();
        let mut sizes = Vec::new();
        while !waiting.is_empty() {
            sizes.push(next_batch(&mut waiting, &HashSet::new()).len());
        }
        assert_eq!(sizes, [1, 1, 1]);
    }

    #[tokio::test]
    async fn each_command_of_a_batch_keeps_its_head_guard_and_request_id_in_one_commit() {
        let database = TestDatabase::create().await;
        let writer = writer(&database).await;
        let first = write(&writer, vec![pending("organisation-R", 0, "recorded", 1)]).await;
        assert_eq!(versions(&first[0]), Some(vec![1]));

        let written = write(
            &writer,
            vec![
                pending("organisation-A", 0, "a", 3),
                // Decided on a head the stream is not at.
                pending("organisation-R", 5, "moved", 1),
                // A request id recorded before, on an unmoved head.
                pending("organisation-B", 0, "recorded", 1),
                pending("organisation-C", 0, "no events", 0),
                pending("organisation-R", 1, "r2", 2),
            ],
        )
        .await;
        let all: Vec<_> = written.iter().map(versions).collect();
        assert_eq!(
            all,
            [
                Some(vec![1, 2, 3]),
                None,
                None,
                Some(vec![]),
                Some(vec![2, 3])
            ]
        );
        let transactions: HashSet<u64> = written
            .iter()
            .filter_map(|written| written.as_ref().unwrap().as_ref())
            .flatten()
            .map(|event| event.transaction_id)
            .collect();
        assert_eq!(transactions.len(), 1, "one commit for the whole batch");

        let pool = &writer.pool;
        let stored: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT stream_id, stream_version, payload FROM events ORDER BY global_position",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let stored: Vec<(String, i64, String)> = stored
            .into_iter()
            .map(|(stream, version, payload)| {
                (stream, version, String::from_utf8(payload).unwrap())
            })
            .collect();
        let expected: Vec<(String, i64, String)> = [
            ("organisation-R", 1, "recorded/0"),
            ("organisation-A", 1, "a/0"),
            ("organisation-A", 2, "a/1"),
            ("organisation-A", 3, "a/2"),
            ("organisation-R", 2, "r2/0"),
            ("organisation-R", 3, "r2/1"),
        ]
        .into_iter()
        .map(|(stream, version, payload)| (stream.to_owned(), version, payload.to_owned()))
        .collect();
        assert_eq!(stored, expected);
        let requests: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT request_id, result FROM command_requests ORDER BY request_id")
                .fetch_all(pool)
                .await
                .unwrap();
        let requests: Vec<(&str, &[u8])> = requests
            .iter()
            .map(|(id, result)| (id.as_str(), result.as_slice()))
            .collect();
        assert_eq!(
            requests,
            [
                ("a", b"a".as_slice()),
                ("no events", b"no events".as_slice()),
                ("r2", b"r2".as_slice()),
                ("recorded", b"recorded".as_slice()),
            ],
            "the earlier record of `recorded` is kept, and `moved` recorded nothing"
        );
        database.drop_database().await;
    }

    /// The batch statement is planned once per connection, not once per batch: after the
    /// first five executions PostgreSQL keeps its generic plan.
    #[tokio::test]
    async fn the_batch_statement_keeps_its_generic_plan() {
        let database = TestDatabase::create().await;
        migrate(&database.pool("trusts").await, &[]).await.unwrap();
        // One connection, so that every batch runs in the session asked afterwards.
        let options = database
            .url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .options([("search_path", "trusts")]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let writer = Arc::new(Writer {
            pool: pool.clone(),
            channel: "trusts_events_appended".to_owned(),
            signal: Arc::new(AppendSignal::default()),
        });
        for batch in 0..10 {
            let appends = (0..1 + batch % 3)
                .map(|command| {
                    pending(
                        &format!("organisation-{batch}-{command}"),
                        0,
                        &format!("{batch}-{command}"),
                        1,
                    )
                })
                .collect();
            for written in write(&writer, appends).await {
                assert!(versions(&written).is_some());
            }
        }
        let (generic, custom): (i64, i64) = sqlx::query_as(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements
             WHERE statement LIKE 'WITH command AS%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (generic, custom),
            (5, 5),
            "ten batches: five planned to choose, then the generic plan"
        );
        pool.close().await;
        database.drop_database().await;
    }

    #[tokio::test]
    async fn a_unique_key_broken_by_another_writer_costs_only_the_command_that_raced() {
        let database = TestDatabase::create().await;
        let writer = writer(&database).await;
        // Another replica has appended version 1 of organisation-B and not yet committed: the
        // batch's head guard cannot see it, and its insert waits on the unique key.
        let mut other = writer.pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
                 organisation, payload, request_id, correlation_id, causation_id, traceparent,
                 tracestate, principal)
             VALUES ('organisation-B', 1, $1, 'ics.events.v1.OrganisationRenamed', 1, 'RTP',
                 'other', 'other', '', '', '', '', 'trust-writer:RTP')",
        )
        .bind(Uuid::now_v7())
        .execute(&mut *other)
        .await
        .unwrap();
        let batch = tokio::spawn({
            let writer = writer.clone();
            async move {
                write(
                    &writer,
                    vec![
                        pending("organisation-A", 0, "a", 1),
                        pending("organisation-B", 0, "b", 1),
                        pending("organisation-C", 0, "c", 2),
                    ],
                )
                .await
            }
        });
        // The batch is blocked on the other writer's key; then the other writer commits.
        let blocked = async {
            loop {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(&writer.pool)
                .await
                .unwrap();
                if waiting > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), blocked)
            .await
            .expect("the batch waits on the other writer's key");
        other.commit().await.unwrap();
        let written = batch.await.unwrap();
        let all: Vec<_> = written.iter().map(versions).collect();
        assert_eq!(all, [Some(vec![1]), None, Some(vec![1, 2])]);
        let requests: Vec<String> =
            sqlx::query_scalar("SELECT request_id FROM command_requests ORDER BY request_id")
                .fetch_all(&writer.pool)
                .await
                .unwrap();
        assert_eq!(requests, ["a", "c"], "nothing of b was recorded");
        database.drop_database().await;
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_commands_with_the_error_of_its_class() {
        let database = TestDatabase::create().await;
        let writer = writer(&database).await;
        // A payload PostgreSQL cannot take in a text column: a database error, not a conflict.
        let mut broken = pending("organisation-B", 0, "b", 1);
        broken.events[0].organisation = "\0".to_owned();
        let written = write(&writer, vec![pending("organisation-A", 0, "a", 1), broken]).await;
        for written in &written {
            assert!(
                matches!(written, Err(StoreError::Database(_))),
                "{written:?}"
            );
        }
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&writer.pool)
            .await
            .unwrap();
        assert_eq!(count, 0, "a failed batch writes none of its commands");
        writer.pool.close().await;
        let written = write(&writer, vec![pending("organisation-A", 0, "a", 1)]).await;
        assert!(
            matches!(written[0], Err(StoreError::Unavailable(_))),
            "{:?}",
            written[0]
        );
        database.drop_database().await;
    }
}
