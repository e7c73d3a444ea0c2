//! The event store every ICS service writes through.
//!
//! Each service keeps its events in its own Postgres schema (`events` table). A command checks
//! its idempotency key, reads the aggregate's stream (or only what it lacks of the history this
//! process holds), decides, and appends with optimistic concurrency in one statement that also
//! records its result for retries; concurrent commands' appends share that statement and its
//! commit ([`group_commit`]). The same table is the outbox from which the [`relay`]
//! publishes to NATS JetStream in commit-safe order. [`Snapshots`] keep aggregates' folded
//! states, so that a long stream is not folded whole for every command.

mod error;
pub mod fault;
mod group_commit;
mod history_cache;
pub mod identity;
mod migrate;
pub mod relay;
mod snapshot;
mod store;
mod stream_turns;
pub mod subject;

pub use error::StoreError;
pub use history_cache::DEFAULT_HISTORY_CACHE_EVENTS;
pub use migrate::migrate;
pub use snapshot::{DEFAULT_SNAPSHOT_STREAMS, Snapshots};
pub use store::read_stream_through;
pub use store::{
    CommandContext, CommandOutcome, EventStore, ExpectedVersion, LogCursor, NewEvent,
    RecordedEvent, history_of, history_then, log_exists, log_table, read_log_page,
};
