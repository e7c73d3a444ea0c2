//! What every ICS service shares, so that configuration, telemetry, authentication, errors,
//! gRPC serving and shutdown behave the same in all of them (architecture decision 8).
//!
//! Every service's `run(config, shutdown)` is one [`host::ServiceHost`]: it starts the schema,
//! its identity, NATS and (for a service that records events) the relay; runs the service's
//! projections under a [`supervisor::Supervisor`]; serves the generated gRPC servers it is given
//! behind [`auth::Authenticator::interceptor`], with the admin API, health and reflection; and
//! drains on the [`server::shutdown_on_signals`] token. The binary calls [`telemetry::init`]
//! once per process.
//!
//! Handlers return [`ServiceError`], read the caller with [`auth::principal`] and check it with
//! the `Principal::authorize_*` helpers.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod command;
pub mod config;
pub mod db;
pub mod error;
pub mod host;
pub mod http;
pub mod hygiene;
pub mod limits;
pub mod nats;
pub mod page;
pub mod prometheus;
mod retry;
pub mod server;
pub mod startup;
pub mod supervisor;
pub mod telemetry;
pub mod tls;
pub mod validate;

pub use auth::{AuthError, Authenticator, Principal, TokenVerifier, mint_token, principal};
pub use config::{AuthConfig, AuthMode, CommonConfig, LogFormat, TelemetryConfig};
pub use db::connect_postgres;
pub use error::{FieldViolation, ServiceError, Violations, conflict_version};
pub use host::{Log, ServiceHost};
pub use nats::connect_nats;
pub use retry::STARTUP_RETRY_WINDOW;

/// The platform's services, as their `service` fields and schemas name them.
pub const SERVICES: &[&str] = &["trusts", "workshops", "metrics", "reporting"];
pub use server::{ServeOptions, serve, shutdown_on_signals};
pub use startup::EventLog;
pub use telemetry::TelemetryGuard;
