//! Projections: read models built from events delivered by NATS JetStream.
//!
//! A [`ProjectionRunner`] feeds one [`Projection`] from durable pull consumers (one per source
//! service's stream) with explicit acks. Each event is applied and its stream version recorded
//! in one Postgres transaction, and acknowledged only after commit, so:
//! - a redelivered or re-published event changes nothing (its version is already applied);
//! - an event that arrives ahead of its predecessor is parked until the gap is filled;
//! - an event that keeps failing goes to `dead_letters` after `max_deliver` attempts and the
//!   stream moves on, so one poison message never stalls the rest.

mod rebuild;
mod runner;

pub use runner::{
    DeadLetter, Projection, ProjectionError, ProjectionRunner, RunnerConfig, change_channel,
    consumer_name, decode_payload, delete_all, list_dead_letters,
};

/// Tables the runner keeps beside the projection's own; apply with `ics_eventstore::migrate`.
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "projection_0001_runner",
    include_str!("../migrations/0001_projection_runner.sql"),
)];
