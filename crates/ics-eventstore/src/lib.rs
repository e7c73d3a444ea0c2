//! The event store every ICS service writes through.
//!
//! Each service keeps its events in its own Postgres schema (`events` table). A command runs in
//! one transaction: it checks its idempotency key, reads the aggregate's stream, decides, appends
//! with optimistic concurrency, and records its result for retries. The same table is the outbox
//! from which the [`relay`] publishes to NATS JetStream in commit-safe order.

mod error;
pub mod fault;
mod history_cache;
pub mod identity;
mod migrate;
pub mod relay;
mod store;
pub mod subject;

pub use error::StoreError;
pub use history_cache::DEFAULT_HISTORY_CACHE_EVENTS;
pub use migrate::migrate;
pub use store::read_stream_through;
pub use store::{
    CommandContext, CommandOutcome, EventStore, ExpectedVersion, LogCursor, NewEvent,
    RecordedEvent, history_of, history_then, log_exists, log_table, read_log_page,
};
