//! The event store every ICS service writes through.
//!
//! Each service keeps its events in its own Postgres schema (`events` table). A command checks
//! its idempotency key, folds the aggregate's stream (or only what it lacks of the state this
//! process holds), decides, and appends with optimistic concurrency in one statement that also
//! records its result for retries; concurrent commands' appends share that statement and its
//! commit ([`group_commit`]). The same table is the outbox from which the [`relay`]
//! publishes to NATS JetStream in commit-safe order. Aggregates' folded states are kept
//! between commands ([`state_cache`]), so that a long stream is not read and folded whole for
//! every command.

mod error;
pub mod fault;
mod group_commit;
pub mod identity;
mod migrate;
pub mod relay;
mod state_cache;
mod store;
mod stream_turns;
pub mod subject;

pub use error::StoreError;
pub use migrate::migrate;
pub use state_cache::{DEFAULT_STATE_BYTES, DEFAULT_STATE_CACHE_BYTES, Fold};
pub use store::read_stream_through;
pub use store::{
    CommandContext, CommandOutcome, CommittedPage, EventStore, ExpectedVersion, HeldBack,
    LogCursor, NewEvent, RecordedEvent, history_of, history_then, log_exists, log_table,
    read_log_page,
};
