use chrono::{DateTime, Utc};
use ics_proto::events::v1::{CommandResult, EventEnvelope, EventMetadata};
use prost::Message;
use sqlx::postgres::PgRow;
use std::sync::{Arc, OnceLock};

use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::StoreError;
use crate::group_commit::{GroupCommit, PendingAppend};
use crate::state_cache::{DEFAULT_STATE_CACHE_BYTES, Fold, Held, StateCache};
use crate::stream_turns::StreamTurns;

/// How many times a command with [`ExpectedVersion::Any`] is re-decided after losing a race.
const MAX_DECIDE_ATTEMPTS: usize = 5;

/// The columns of a stored event. `xid8` has no binary mapping in sqlx, so the transaction id
/// leaves SQL as text — under a name of its own: aliased `transaction_id`, an `ORDER BY
/// transaction_id` would resolve to the text and sort `'10000'` before `'9998'`.
const EVENT_COLUMNS: &str = "global_position, transaction_id::text AS transaction_id_text, \
     stream_id, stream_version, event_id, event_type, schema_version, organisation, payload, \
     request_id, correlation_id, causation_id, traceparent, tracestate, principal, recorded_at";

/// [`EVENT_COLUMNS`] of the `events` table aliased `e`, for reads that join another table.
const QUALIFIED_EVENT_COLUMNS: &str = "e.global_position, \
     e.transaction_id::text AS transaction_id_text, e.stream_id, e.stream_version, e.event_id, \
     e.event_type, e.schema_version, e.organisation, e.payload, e.request_id, e.correlation_id, \
     e.causation_id, e.traceparent, e.tracestate, e.principal, e.recorded_at";

/// What a command expects of its aggregate's stream before it appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Whatever the stream holds; a command that loses a race is decided again on fresh state.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Maps the API's optional expected version (`0` = no stream) to the store's.
    pub fn from_request(expected: Option<u64>) -> Self {
        match expected {
            None => ExpectedVersion::Any,
            Some(0) => ExpectedVersion::NoStream,
            Some(version) => ExpectedVersion::Exact(version),
        }
    }

    fn admits(self, current_version: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current_version == 0,
            ExpectedVersion::Exact(expected) => expected == current_version,
        }
    }
}

/// An event a command decided to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: u32,
    /// ODS code of the organisation the event is about (empty for none); carried in the subject.
    pub organisation: String,
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// Encodes a protobuf event payload.
    pub fn encode<M: Message + ics_proto::EventName>(organisation: &str, event: &M) -> Self {
        NewEvent {
            event_type: M::EVENT_TYPE.to_string(),
            schema_version: 1,
            organisation: organisation.to_string(),
            payload: event.encode_to_vec(),
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub global_position: u64,
    pub transaction_id: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub organisation: String,
    pub payload: Vec<u8>,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    #[cfg(test)]
    pub(crate) fn example() -> Self {
        RecordedEvent {
            global_position: 1,
            transaction_id: 1,
            stream_id: "organisation-RTP".to_owned(),
            stream_version: 1,
            event_id: Uuid::nil(),
            event_type: "OrganisationRegistered".to_owned(),
            schema_version: 1,
            organisation: "RTP".to_owned(),
            payload: Vec::new(),
            metadata: EventMetadata::default(),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// A stream of `length` example events, each with an id and a payload of its own.
    #[cfg(test)]
    pub(crate) fn example_stream(stream: &str, length: u64) -> Vec<Self> {
        (1..=length)
            .map(|version| RecordedEvent {
                stream_id: stream.to_owned(),
                stream_version: version,
                event_id: Uuid::now_v7(),
                payload: (version % 251).to_le_bytes()[..1].to_vec(),
                ..RecordedEvent::example()
            })
            .collect()
    }

    fn from_row(row: &PgRow) -> Result<Self, StoreError> {
        let transaction_id: String = row.try_get("transaction_id_text")?;
        Ok(RecordedEvent {
            global_position: stored_u64("global_position", row.try_get("global_position")?)?,
            transaction_id: parse_transaction_id(&transaction_id)?,
            stream_id: row.try_get("stream_id")?,
            stream_version: stored_u64("stream_version", row.try_get("stream_version")?)?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            schema_version: u32::try_from(row.try_get::<i32, _>("schema_version")?).map_err(
                |_| StoreError::Corrupt {
                    what: "schema_version".to_string(),
                },
            )?,
            organisation: row.try_get("organisation")?,
            payload: row.try_get("payload")?,
            metadata: EventMetadata {
                request_id: row.try_get("request_id")?,
                correlation_id: row.try_get("correlation_id")?,
                causation_id: row.try_get("causation_id")?,
                traceparent: row.try_get("traceparent")?,
                tracestate: row.try_get("tracestate")?,
                principal: row.try_get("principal")?,
            },
            recorded_at: row.try_get("recorded_at")?,
        })
    }

    /// Decodes the payload as the given event message.
    pub fn decode<M: Message + Default>(&self) -> Result<M, StoreError> {
        M::decode(self.payload.as_slice()).map_err(|source| StoreError::Decode {
            event_id: self.event_id.to_string(),
            source,
        })
    }

    /// The envelope this event travels in.
    pub fn to_envelope(&self, source_service: &str) -> EventEnvelope {
        let recorded_at = prost_types_timestamp(self.recorded_at);
        EventEnvelope {
            event_id: self.event_id.to_string(),
            source_service: source_service.to_string(),
            stream_id: self.stream_id.clone(),
            stream_version: self.stream_version,
            global_position: self.global_position,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            payload: self.payload.clone(),
            metadata: Some(self.metadata.clone()),
            recorded_at: Some(recorded_at),
            organisation: self.organisation.clone(),
        }
    }

    /// The event an envelope carries, as the log recorded it, so that a projection can apply
    /// it with the aggregate's own fold. Envelopes do not carry the transaction id (0 here).
    pub fn from_envelope(envelope: &EventEnvelope) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt {
            what: format!("{what} of event {}", envelope.event_id),
        };
        let recorded_at = match envelope.recorded_at {
            Some(at) => DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))
                .ok_or_else(|| corrupt("recorded_at"))?,
            None => DateTime::<Utc>::UNIX_EPOCH,
        };
        Ok(RecordedEvent {
            global_position: envelope.global_position,
            transaction_id: 0,
            stream_id: envelope.stream_id.clone(),
            stream_version: envelope.stream_version,
            event_id: Uuid::parse_str(&envelope.event_id).map_err(|_| corrupt("event_id"))?,
            event_type: envelope.event_type.clone(),
            schema_version: envelope.schema_version,
            organisation: envelope.organisation.clone(),
            payload: envelope.payload.clone(),
            metadata: envelope.metadata.clone().unwrap_or_default(),
            recorded_at,
        })
    }
}

/// The events of one stream up to and including `through_version`, oldest first, read on
/// `connection`: a projection applying an event reads, inside its own transaction, the history
/// that event ends, and folds it with the aggregate's own code.
pub async fn read_stream_through(
    connection: &mut PgConnection,
    stream_id: &str,
    through_version: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version <= $2
         ORDER BY stream_version"
    ))
    .bind(stream_id)
    .bind(to_i64(through_version))
    .fetch_all(&mut *connection)
    .await?;
    rows.iter().map(RecordedEvent::from_row).collect()
}

/// A stream's history as the store would record these events, in order: for deciding commands
/// in unit tests without a database.
pub fn history_of(events: Vec<NewEvent>) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| RecordedEvent {
            global_position: index as u64 + 1,
            transaction_id: 1,
            stream_id: String::new(),
            stream_version: index as u64 + 1,
            event_id: Uuid::now_v7(),
            event_type: event.event_type,
            schema_version: event.schema_version,
            organisation: event.organisation,
            payload: event.payload,
            metadata: EventMetadata::default(),
            recorded_at: Utc::now(),
        })
        .collect()
}

/// `history` followed by `more`, re-numbered as one stream.
pub fn history_then(history: Vec<RecordedEvent>, more: Vec<NewEvent>) -> Vec<RecordedEvent> {
    let mut events: Vec<NewEvent> = history
        .into_iter()
        .map(|event| NewEvent {
            event_type: event.event_type,
            schema_version: event.schema_version,
            organisation: event.organisation,
            payload: event.payload,
        })
        .collect();
    events.extend(more);
    history_of(events)
}

fn prost_types_timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Who asked for a command and under which trace: stored with every event it appends.
#[derive(Debug, Clone, Default)]
pub struct CommandContext {
    /// The client's idempotency key.
    pub request_id: String,
    /// Label of the authenticated principal; idempotency keys are scoped to it.
    pub principal: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub traceparent: String,
    pub tracestate: String,
}

/// The outcome of a command: the proto `CommandResult` the API returns.
pub type CommandOutcome = CommandResult;

/// A position in commit order: the relay and log readers resume strictly after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogCursor {
    pub transaction_id: u64,
    pub global_position: u64,
}

impl LogCursor {
    /// A position as stored: the transaction id as its text (`xid8` leaves SQL only as text)
    /// and the global position.
    pub(crate) fn from_stored(
        (transaction_id, global_position): (String, i64),
    ) -> Result<Self, StoreError> {
        Ok(LogCursor {
            transaction_id: parse_transaction_id(&transaction_id)?,
            global_position: stored_u64("global_position", global_position)?,
        })
    }

    pub fn after(event: &RecordedEvent) -> Self {
        LogCursor {
            transaction_id: event.transaction_id,
            global_position: event.global_position,
        }
    }
}

/// A page of the log in commit order, as the relay reads it (see
/// [`EventStore::read_committed_page`]).
#[derive(Debug, Clone, Default)]
pub struct CommittedPage {
    pub events: Vec<RecordedEvent>,
    /// An event committed after the page waits behind a transaction still running.
    pub held_back: bool,
}

/// Committed events waiting behind a transaction still running (see [`EventStore::held_back`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldBack {
    pub events: u64,
    /// When the oldest of them was recorded; none when nothing is held back.
    pub oldest_recorded_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One service's event log in Postgres.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
    service: String,
    /// Folded states of recently commanded streams (see [`crate::state_cache`]).
    states: Arc<StateCache>,
    /// How appends wake this process's relay.
    pub(crate) appended: Arc<AppendSignal>,
    /// Where appends queue to be written together (see [`crate::group_commit`]); started by
    /// the first append, on its runtime.
    group_commit: Arc<OnceLock<GroupCommit>>,
    /// Commands on one stream take turns in this process (see [`crate::stream_turns`]).
    turns: Arc<StreamTurns>,
}

/// How an append wakes the relay. The relay of the process that appended is woken in memory;
/// PostgreSQL's NOTIFY (which serialises the commits that send it and wakes every listening
/// session) is sent only while another process's relay leads, which it wakes across replicas.
/// A wake lost when leadership moves is covered by the relay's poll.
#[derive(Debug, Default)]
pub(crate) struct AppendSignal {
    pub(crate) wake: tokio::sync::Notify,
    /// Whether this process's relay holds the leadership.
    pub(crate) relay_leading: std::sync::atomic::AtomicBool,
}

/// What a command reads before it decides.
enum ReadForCommand<S> {
    /// The request ran before: its recorded result answers it.
    Recorded(Recorded),
    /// The stream's state, folded through its head.
    State(Held<S>),
}

/// The request a command answers, as its append records it.
#[derive(Clone, Copy)]
struct Request<'a> {
    context: &'a CommandContext,
    command_type: &'a str,
    fingerprint: &'a [u8],
    stream_id: &'a str,
}

/// What an append came to, short of an error.
enum Append {
    /// The events and the request's result are committed; `events` as stored.
    Committed {
        outcome: CommandOutcome,
        events: Vec<RecordedEvent>,
    },
    /// Nothing was written: the stream's head was not where the decision's state ended, or
    /// the request id was recorded first by another command.
    HeadMoved,
}

/// What deciding on a state came to, short of an error.
enum Decided<E> {
    /// Appended and committed.
    Committed(CommandOutcome),
    /// The state does not meet the expected version: nothing was decided.
    Conflict { current_version: u64 },
    /// The decision refused the command.
    Refused(E),
    /// The stream's head was not where the state ended: nothing was written.
    HeadMoved,
}

enum AttemptError<E> {
    /// Another transaction appended to the stream or recorded the same request id first.
    Raced,
    Failed(E),
}

impl EventStore {
    /// `service` names the log (`trusts`, `workshops`…): it goes into envelopes, subjects and
    /// the notification channel.
    pub fn new(pool: PgPool, service: &str) -> Self {
        EventStore {
            pool,
            service: service.to_string(),
            states: Arc::new(StateCache::new(DEFAULT_STATE_CACHE_BYTES)),
            appended: Arc::new(AppendSignal::default()),
            group_commit: Arc::new(OnceLock::new()),
            turns: Arc::new(StreamTurns::default()),
        }
    }

    /// Keeps the folded states of recently commanded streams in memory, up to `bytes` as their
    /// folds weigh them (0: none).
    pub fn with_state_cache(mut self, bytes: usize) -> Self {
        self.states = Arc::new(StateCache::new(bytes));
        self
    }

    /// The most bytes of folded states this store keeps in memory.
    pub fn state_cache_bytes(&self) -> usize {
        self.states.budget()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The LISTEN/NOTIFY channel that wakes the relay after a commit.
    pub fn notify_channel(&self) -> String {
        format!("{}_events_appended", self.service)
    }

    /// Every event of one stream, oldest first.
    pub async fn read_stream(&self, stream_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version"
        ))
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RecordedEvent::from_row).collect()
    }

    /// Every event of every stream whose id starts with `prefix` (e.g. `organisation-`),
    /// grouped by stream and oldest first within each.
    pub async fn read_category(&self, prefix: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id LIKE $1
             ORDER BY stream_id, stream_version"
        ))
        .bind(pattern)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RecordedEvent::from_row).collect()
    }

    /// Committed events after `cursor` in commit order, never past a transaction still in
    /// flight: only transactions older than the oldest one running are visible, so a slow
    /// transaction holding an earlier position cannot be skipped.
    pub async fn read_committed(
        &self,
        cursor: LogCursor,
        from_position: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self
            .read_committed_page(cursor, from_position, limit)
            .await?
            .events)
    }

    /// [`Self::read_committed`], and whether an event already committed after the page is held
    /// back behind a transaction still running. Nothing wakes the relay when that transaction
    /// ends (it may not even be this service's), so the relay looks again soon rather than at
    /// its next poll.
    pub async fn read_committed_page(
        &self,
        cursor: LogCursor,
        from_position: u64,
        limit: u32,
    ) -> Result<CommittedPage, StoreError> {
        // One statement, one snapshot: the page and the held-back check see the same horizon.
        // The check starts its index scan at the horizon (or the cursor, if that is later), so
        // a backlog behind the cursor costs it nothing: the row comparison with the cursor is
        // spelt out as a filter, which the scan would otherwise be free to start from, and the
        // check is the first row in index order, not an EXISTS, which PostgreSQL planned as a
        // scan of the whole table (91 ms over a million events, against 4 index pages).
        // A page with no event still yields one row, of NULLs but for `held_back`.
        let rows = sqlx::query(&format!(
            "WITH horizon AS MATERIALIZED (
                 SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin
             ),
             page AS (
                 SELECT {EVENT_COLUMNS}, transaction_id AS commit_transaction FROM events
                 WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
                   AND global_position >= $3
                   AND transaction_id < (SELECT xmin FROM horizon)
                 ORDER BY transaction_id, global_position
                 LIMIT $4
             ),
             held AS (
                 SELECT (
                     SELECT transaction_id FROM events
                     WHERE transaction_id >= greatest((SELECT xmin FROM horizon), $1::text::xid8)
                       AND (transaction_id > $1::text::xid8 OR global_position > $2)
                       AND global_position >= $3
                     ORDER BY transaction_id, global_position
                     LIMIT 1
                 ) IS NOT NULL AS held_back
             )
             SELECT page.*, held.held_back FROM held LEFT JOIN page ON true
             ORDER BY page.commit_transaction, page.global_position"
        ))
        .bind(cursor.transaction_id.to_string())
        .bind(to_i64(cursor.global_position))
        .bind(to_i64(from_position))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let held_back = match rows.first() {
            Some(row) => row.try_get("held_back")?,
            None => false,
        };
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<Option<i64>, _>("global_position")?.is_some() {
                events.push(RecordedEvent::from_row(row)?);
            }
        }
        Ok(CommittedPage { events, held_back })
    }

    /// How many events the log holds.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await?;
        stored_u64("event count", count)
    }

    /// How many events lie after `cursor` in commit order (committed or not).
    pub async fn count_after(&self, cursor: LogCursor) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
        )
        .bind(cursor.transaction_id.to_string())
        .bind(to_i64(cursor.global_position))
        .fetch_one(&self.pool)
        .await?;
        stored_u64("event count", count)
    }

    /// When the oldest event committed after `cursor` was recorded (none when there is none):
    /// how long the relay has been behind.
    pub async fn oldest_after(
        &self,
        cursor: LogCursor,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let oldest: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
            "SELECT min(recorded_at) FROM events
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
        )
        .bind(cursor.transaction_id.to_string())
        .bind(to_i64(cursor.global_position))
        .fetch_one(&self.pool)
        .await?;
        Ok(oldest)
    }

    /// The events committed to the log that the relay cannot publish yet, because a
    /// transaction older than theirs is still running somewhere in the cluster (see
    /// [`Self::read_committed_page`]). A transaction left open — a session idle in a
    /// transaction, a long migration — holds back every later commit of every service on the
    /// server, and this is how an operator sees that it is the cause.
    ///
    /// No checkpoint is needed: the relay never publishes at or past the oldest running
    /// transaction, so everything there is unpublished, and the scan starts at it in the
    /// commit-order index.
    pub async fn held_back(&self) -> Result<HeldBack, StoreError> {
        let (events, oldest): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
            "SELECT count(*), min(recorded_at) FROM events
             WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(HeldBack {
            events: stored_u64("held-back event count", events)?,
            oldest_recorded_at: oldest,
        })
    }

    /// Where an event lies in commit order; none when the log does not hold it.
    pub async fn position_of(&self, event_id: Uuid) -> Result<Option<LogCursor>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT transaction_id::text, global_position FROM events WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(LogCursor::from_stored).transpose()
    }

    /// Runs a command: replays the first result of a retried request id, otherwise folds the
    /// stream with `fold` (on from the state this process holds, when it holds one), lets
    /// `decide` produce events from the state, and appends them at the next versions.
    ///
    /// No explicit transaction is needed, which saves two round trips per command: the append,
    /// the request's result and the relay's NOTIFY are one statement, so they commit together
    /// (with the appends of concurrent commands: [`crate::group_commit`]); and whatever changed
    /// since the reads is caught by the head guard and the unique keys on
    /// `(stream_id, stream_version)` and `(principal, request_id)`, after which the command is
    /// decided again, replayed or refused as a conflict.
    ///
    /// `fingerprint` identifies the command's content (its encoded request): the same request
    /// id with another fingerprint is refused rather than silently answered with the old result.
    #[allow(clippy::too_many_arguments)] // who asks and what, on which stream, and how decided
    pub async fn execute<S, E, F>(
        &self,
        context: &CommandContext,
        command_type: &str,
        fingerprint: &[u8],
        stream_id: &str,
        expected: ExpectedVersion,
        fold: Fold<S, E>,
        decide: F,
    ) -> Result<CommandOutcome, E>
    where
        S: Clone + Send + 'static,
        E: From<StoreError>,
        F: Fn(&S) -> Result<Vec<NewEvent>, E>,
    {
        let _turn = self.turns.take(stream_id).await;
        let request = Request {
            context,
            command_type,
            fingerprint,
            stream_id,
        };
        for _ in 0..MAX_DECIDE_ATTEMPTS {
            match self.try_execute(&request, expected, &fold, &decide).await {
                Ok(outcome) => return Ok(outcome),
                Err(AttemptError::Failed(error)) => return Err(error),
                Err(AttemptError::Raced) => {
                    if let Some(outcome) = self
                        .recorded_result(context, command_type, fingerprint)
                        .await?
                    {
                        return Ok(outcome);
                    }
                    if expected != ExpectedVersion::Any {
                        let current_version = self.stream_version(stream_id).await?;
                        return Err(StoreError::Conflict {
                            stream_id: stream_id.to_string(),
                            current_version,
                        }
                        .into());
                    }
                }
            }
        }
        let current_version = self.stream_version(stream_id).await?;
        Err(StoreError::Conflict {
            stream_id: stream_id.to_string(),
            current_version,
        }
        .into())
    }

    /// [`execute`](Self::execute) deciding on the stream's whole history, for decisions that
    /// look at the events themselves (tests of the store); aggregates fold to states of their
    /// own, which do not grow with the stream.
    pub async fn execute_on_history<E, F>(
        &self,
        context: &CommandContext,
        command_type: &str,
        fingerprint: &[u8],
        stream_id: &str,
        expected: ExpectedVersion,
        decide: F,
    ) -> Result<CommandOutcome, E>
    where
        E: From<StoreError>,
        F: Fn(&[RecordedEvent]) -> Result<Vec<NewEvent>, E>,
    {
        self.execute(
            context,
            command_type,
            fingerprint,
            stream_id,
            expected,
            Fold::history(),
            |history: &Vec<RecordedEvent>| decide(history),
        )
        .await
    }

    /// The stream's state as `fold` makes it: on from the state this process holds, with the
    /// events after it read, or folded whole. The state is kept for the next command or read.
    pub async fn load<S, E>(&self, stream_id: &str, fold: Fold<S, E>) -> Result<S, E>
    where
        S: Clone + Send + 'static,
        E: From<StoreError>,
    {
        let held = self.states.take::<S>(stream_id);
        let mut connection = self.pool.acquire().await.map_err(sqlx_error)?;
        let loaded = match self
            .read_for_command(&mut connection, None, stream_id, held, &fold)
            .await?
        {
            ReadForCommand::State(loaded) => loaded.settled(&fold)?,
            ReadForCommand::Recorded(_) => {
                return Err(E::from(StoreError::Corrupt {
                    what: format!("a recorded request answered a read of {stream_id}"),
                }));
            }
        };
        let state = loaded.state().clone();
        self.states.put(stream_id, loaded, &fold);
        Ok(state)
    }

    /// The current version of a stream (0 when it does not exist).
    pub async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_one(&self.pool)
                .await?;
        // No row at all is a stream that does not exist yet: version 0.
        version.map_or(Ok(0), |version| stored_u64("stream_version", version))
    }

    async fn try_execute<S, E, F>(
        &self,
        request: &Request<'_>,
        expected: ExpectedVersion,
        fold: &Fold<S, E>,
        decide: &F,
    ) -> Result<CommandOutcome, AttemptError<E>>
    where
        S: Clone + Send + 'static,
        E: From<StoreError>,
        F: Fn(&S) -> Result<Vec<NewEvent>, E>,
    {
        let Request {
            context,
            command_type,
            fingerprint,
            stream_id,
        } = *request;

        // A stream this process holds is decided on its held state and appended in one round
        // trip: the append's head guard stops it if the database's head is anywhere else, and
        // the unique keys catch a concurrent append or a retried request id. Whatever the held
        // state cannot settle — an expected version it does not meet, a refusal, a guard that
        // stopped the append — is settled below on the stream as read, so a stale state never
        // answers a client.
        let mut held = self.states.take::<S>(stream_id);
        if let Some(state) = held.take() {
            match self
                .decide_and_append(request, expected, fold, decide, state)
                .await?
            {
                (Decided::Committed(outcome), state) => {
                    self.states.put(stream_id, state, fold);
                    return Ok(outcome);
                }
                (_, state) => held = Some(state),
            }
        }

        // One round trip reads what decides a command: the request's recorded result, if it
        // ran before (a retry is answered with it), and the stream's events after the version
        // this process already holds (all of them when it holds none).
        let read = async {
            let mut connection = self.pool.acquire().await.map_err(sqlx_error)?;
            self.read_for_command(&mut connection, Some(context), stream_id, held, fold)
                .await
        };
        let state = match read.await.map_err(AttemptError::Failed)? {
            ReadForCommand::Recorded(recorded) => {
                return recorded
                    .outcome(context, command_type, fingerprint)
                    .map_err(|error| AttemptError::Failed(E::from(error)));
            }
            ReadForCommand::State(state) => state,
        };
        let (decided, state) = self
            .decide_and_append(request, expected, fold, decide, state)
            .await?;
        // Whatever the outcome, the state read stays true: keep it, with what this command
        // appended, for the next command.
        self.states.put(stream_id, state, fold);
        match decided {
            Decided::Committed(outcome) => Ok(outcome),
            Decided::Conflict { current_version } => {
                Err(AttemptError::Failed(E::from(StoreError::Conflict {
                    stream_id: stream_id.to_string(),
                    current_version,
                })))
            }
            Decided::Refused(error) => Err(AttemptError::Failed(error)),
            Decided::HeadMoved => Err(AttemptError::Raced),
        }
    }

    /// Checks the expected version against `state`, decides on it (with every event it holds
    /// folded in) and appends what was decided. Gives back the state, holding the appended
    /// events as stored on commit, to be folded in when the stream is next decided on.
    async fn decide_and_append<S, E, F>(
        &self,
        request: &Request<'_>,
        expected: ExpectedVersion,
        fold: &Fold<S, E>,
        decide: &F,
        state: Held<S>,
    ) -> Result<(Decided<E>, Held<S>), AttemptError<E>>
    where
        E: From<StoreError>,
        F: Fn(&S) -> Result<Vec<NewEvent>, E>,
    {
        let current_version = state.version;
        if !expected.admits(current_version) {
            return Ok((Decided::Conflict { current_version }, state));
        }
        let state = state.settled(fold).map_err(AttemptError::Failed)?;
        let new_events = match decide(state.state()) {
            Ok(new_events) => new_events,
            Err(error) => return Ok((Decided::Refused(error), state)),
        };
        Ok(
            match self
                .append(request, current_version, state.event_id, new_events)
                .await?
            {
                Append::Committed { outcome, events } => {
                    (Decided::Committed(outcome), state.appended(events))
                }
                Append::HeadMoved => (Decided::HeadMoved, state),
            },
        )
    }

    /// Appends what a command decided at the versions after `current_version`, with the
    /// request's result, provided the stream's head is still `current_version`, the event there
    /// still `head_event_id` (the last the decision's state was folded from), and the request
    /// id is not recorded yet. It is written with the appends of concurrent commands, in one
    /// statement and one commit (see [`crate::group_commit`]). The events come back as stored,
    /// to be kept with the stream's state.
    async fn append<E>(
        &self,
        request: &Request<'_>,
        current_version: u64,
        head_event_id: Option<Uuid>,
        new_events: Vec<NewEvent>,
    ) -> Result<Append, AttemptError<E>>
    where
        E: From<StoreError>,
    {
        let Request {
            context,
            command_type,
            fingerprint,
            stream_id,
        } = *request;
        let event_ids: Vec<Uuid> = new_events.iter().map(|_| Uuid::now_v7()).collect();
        let outcome = CommandResult {
            stream_id: stream_id.to_string(),
            version: current_version + new_events.len() as u64,
            event_ids: event_ids.iter().map(Uuid::to_string).collect(),
            replayed: false,
        };
        let group_commit = self.group_commit.get_or_init(|| {
            GroupCommit::start(
                self.pool.clone(),
                self.notify_channel(),
                self.appended.clone(),
            )
        });
        let written = group_commit
            .append(PendingAppend {
                stream_id: stream_id.to_string(),
                head: current_version,
                head_event_id,
                context: context.clone(),
                command_type: command_type.to_string(),
                fingerprint: fingerprint.to_vec(),
                result: outcome.encode_to_vec(),
                events: new_events,
                event_ids,
            })
            .await
            .map_err(|error| AttemptError::Failed(E::from(error)))?;
        Ok(match written {
            Some(events) => Append::Committed { outcome, events },
            // The head moved, or the request id was recorded first: read and settle again.
            None => Append::HeadMoved,
        })
    }

    /// The request's recorded result, or the stream's state: `held` (the state this process
    /// holds) folded on with the events after it, or the stream folded whole when this process
    /// holds none or the database no longer holds the event `held` was folded up to (a
    /// restored backup). Without a request (a read), always the state.
    async fn read_for_command<S, E>(
        &self,
        connection: &mut PgConnection,
        context: Option<&CommandContext>,
        stream_id: &str,
        mut held: Option<Held<S>>,
        fold: &Fold<S, E>,
    ) -> Result<ReadForCommand<S>, E>
    where
        S: Clone,
        E: From<StoreError>,
    {
        loop {
            let after = held.as_ref().map_or(0, |held| held.version);
            let rows = sqlx::query(&format!(
                "SELECT r.command_type AS recorded_type, r.fingerprint AS recorded_fingerprint,
                        r.result AS recorded_result,
                        (SELECT event_id FROM events WHERE stream_id = $3 AND stream_version = $4)
                            AS held_event_id,
                        {QUALIFIED_EVENT_COLUMNS}
                 FROM (SELECT 1) AS one
                 LEFT JOIN command_requests r ON r.principal = $1 AND r.request_id = $2
                 LEFT JOIN events e ON e.stream_id = $3 AND e.stream_version > $4
                 ORDER BY e.stream_version"
            ))
            // No request (a read): NULL matches no recorded request.
            .bind(context.map(|context| &context.principal))
            .bind(context.map(|context| &context.request_id))
            .bind(stream_id)
            .bind(to_i64(after))
            .fetch_all(&mut *connection)
            .await
            .map_err(sqlx_error)?;
            if let Some(first) = rows.first()
                && let Some(command_type) = first
                    .try_get::<Option<String>, _>("recorded_type")
                    .map_err(sqlx_error)?
            {
                return Ok(ReadForCommand::Recorded(Recorded {
                    command_type,
                    fingerprint: first.try_get("recorded_fingerprint").map_err(sqlx_error)?,
                    result: first.try_get("recorded_result").map_err(sqlx_error)?,
                }));
            }
            match fold_rows(held, &rows, fold)? {
                Some(state) => return Ok(ReadForCommand::State(state)),
                None => held = None,
            }
        }
    }

    async fn recorded_result(
        &self,
        context: &CommandContext,
        command_type: &str,
        fingerprint: &[u8],
    ) -> Result<Option<CommandOutcome>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        recorded_result_in(&mut connection, context, command_type, fingerprint).await
    }
}

/// `held` folded on with the events among `rows` (a read of the stream's events after the held
/// version, each row also giving `held_event_id`: the event the database holds at that
/// version). `None` when the database no longer holds the event `held` was folded up to: the
/// stream is to be read and folded whole.
fn fold_rows<S, E>(
    held: Option<Held<S>>,
    rows: &[PgRow],
    fold: &Fold<S, E>,
) -> Result<Option<Held<S>>, E>
where
    S: Clone,
    E: From<StoreError>,
{
    let mut state = match held {
        Some(held) => {
            let holds_it = match rows.first() {
                Some(first) => {
                    first
                        .try_get::<Option<Uuid>, _>("held_event_id")
                        .map_err(sqlx_error)?
                        == held.event_id
                }
                None => false,
            };
            if !holds_it {
                return Ok(None);
            }
            held
        }
        None => Held::empty(fold.initial()),
    };
    for row in rows {
        if row
            .try_get::<Option<String>, _>("stream_id")
            .map_err(sqlx_error)?
            .is_some()
        {
            let event = RecordedEvent::from_row(row).map_err(E::from)?;
            state = state.fold_in(fold, &event)?;
        }
    }
    Ok(Some(state))
}

/// A database error as the caller's error type.
fn sqlx_error<E: From<StoreError>>(error: sqlx::Error) -> E {
    E::from(StoreError::from(error))
}

async fn recorded_result_in(
    connection: &mut PgConnection,
    context: &CommandContext,
    command_type: &str,
    fingerprint: &[u8],
) -> Result<Option<CommandOutcome>, StoreError> {
    let row = sqlx::query(
        "SELECT command_type, fingerprint, result FROM command_requests
         WHERE principal = $1 AND request_id = $2",
    )
    .bind(&context.principal)
    .bind(&context.request_id)
    .fetch_optional(&mut *connection)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let recorded = Recorded {
        command_type: row.try_get("command_type")?,
        fingerprint: row.try_get("fingerprint")?,
        result: row.try_get("result")?,
    };
    recorded
        .outcome(context, command_type, fingerprint)
        .map(Some)
}

/// A request's recorded result, as `command_requests` keeps it.
struct Recorded {
    command_type: String,
    fingerprint: Vec<u8>,
    result: Vec<u8>,
}

impl Recorded {
    /// The answer to a retry of the request: its result, marked replayed. The same request id
    /// with another command or content is refused rather than answered with the old result.
    fn outcome(
        self,
        context: &CommandContext,
        command_type: &str,
        fingerprint: &[u8],
    ) -> Result<CommandOutcome, StoreError> {
        if self.command_type != command_type || self.fingerprint != fingerprint {
            return Err(StoreError::RequestIdReused {
                request_id: context.request_id.clone(),
            });
        }
        let mut outcome =
            CommandResult::decode(self.result.as_slice()).map_err(|source| StoreError::Decode {
                event_id: format!("command result of request {}", context.request_id),
                source,
            })?;
        outcome.replayed = true;
        Ok(outcome)
    }
}

/// `service`'s log table, for SQL text. A schema name is an identifier, never a bind
/// parameter: quoted, so it cannot be SQL.
pub fn log_table(service: &str) -> String {
    format!("\"{}\".events", service.replace('"', "\"\""))
}

/// Whether `service`'s log table exists: a service that has never started here has no schema
/// yet, and its log holds nothing.
pub async fn log_exists<'e, E>(executor: E, service: &str) -> Result<bool, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(log_table(service))
        .fetch_one(executor)
        .await?)
}

/// A page of `service`'s log in commit order (the order its relay publishes in), after
/// `cursor` (from the start when `None`): how a projection is rebuilt from the record rather
/// than from its stream. Read every page inside one `REPEATABLE READ` transaction so that the
/// pages are one snapshot, in which every visible event is committed and none can appear
/// behind the cursor. Needs `SELECT` on the log (the `ics_log_readers` role).
pub async fn read_log_page(
    connection: &mut PgConnection,
    service: &str,
    cursor: Option<LogCursor>,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let table = log_table(service);
    let rows = match cursor {
        None => {
            sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM {table}
                 ORDER BY transaction_id, global_position LIMIT $1"
            ))
            .bind(i64::from(limit))
            .fetch_all(&mut *connection)
            .await?
        }
        Some(cursor) => {
            sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM {table}
                 WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
                 ORDER BY transaction_id, global_position LIMIT $3"
            ))
            .bind(cursor.transaction_id.to_string())
            .bind(to_i64(cursor.global_position))
            .bind(i64::from(limit))
            .fetch_all(&mut *connection)
            .await?
        }
    };
    rows.iter().map(RecordedEvent::from_row).collect()
}

/// Positions and versions are positive `bigint`s in Postgres and `u64` in the API; a negative
/// one read back is corruption, never "nothing yet".
pub(crate) fn stored_u64(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        what: format!("{what} {value}"),
    })
}

/// An `xid8` as its decimal text (the only way it leaves SQL).
pub(crate) fn parse_transaction_id(text: &str) -> Result<u64, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        what: format!("transaction id {text:?}"),
    })
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
