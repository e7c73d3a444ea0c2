//! Configuration shared by every service, as clap `Args` that a binary flattens into its own
//! parser. Every flag can also be given as an `ICS_*` environment variable, which is how
//! containers and the test harness configure services.
//!
//! ```
//! use clap::Parser;
//! use ics_service_kit::config::CommonConfig;
//!
//! #[derive(Parser)]
//! struct TrustsArgs {
//!     #[command(flatten)]
//!     common: CommonConfig,
//!     #[arg(long, env = "ICS_TRUSTS_LISTEN", default_value = "127.0.0.1:50051")]
//!     listen: std::net::SocketAddr,
//! }
//!
//! let args = TrustsArgs::try_parse_from(["trusts", "--subject-prefix", "t1"]).expect("valid flags");
//! assert_eq!(args.common.subject_prefix, "t1");
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/ics";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_SUBJECT_PREFIX: &str = "ics";
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 25;
pub const DEFAULT_SHUTDOWN_DRAIN_SECS: u64 = 1;
pub const DEFAULT_STATE_CACHE_MB: u64 = (ics_eventstore::DEFAULT_STATE_CACHE_BYTES >> 20) as u64;
pub const DEFAULT_DUPLICATE_WINDOW_SECS: u64 =
    ics_eventstore::relay::DEFAULT_DUPLICATE_WINDOW.as_secs();
/// Connections one `icsd` process opens at most, pools and notification listeners together;
/// `icsd all` shares them among its four services, so three instances stay well inside
/// PostgreSQL's default `max_connections` of 100.
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 20;
pub const DEFAULT_TOKEN_ISSUER: &str = "ics";
pub const DEFAULT_TOKEN_AUDIENCE: &str = "ics-platform";
pub const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;
pub const DEFAULT_TENANT_CALLS_PER_SEC: u32 = 20;
pub const DEFAULT_TENANT_CALL_BURST: u32 = 40;
pub const DEFAULT_TENANT_WATCHES: u32 = 16;
pub const DEFAULT_TENANT_CONCURRENT_CALLS: u32 = 2;
pub const DEFAULT_TLS_RELOAD_SECS: u64 = 30;
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Settings every service needs, whatever it does.
#[derive(Args, Clone)]
pub struct CommonConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub nats: NatsConfig,

    /// First token of every NATS subject and prefix of every JetStream stream and consumer name;
    /// tests set a unique one to isolate themselves on a shared server.
    #[arg(
        long,
        env = "ICS_SUBJECT_PREFIX",
        default_value = DEFAULT_SUBJECT_PREFIX,
        value_parser = parse_subject_prefix
    )]
    pub subject_prefix: String,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub telemetry: TelemetryConfig,

    #[command(flatten)]
    pub tls: TlsConfig,

    /// This process's HTTP address: `/healthz`, and the board dashboard where the reporting
    /// service runs. `icsd` defaults it by command: 127.0.0.1:8080 for `all` and `reporting`,
    /// :8081 `trusts`, :8082 `workshops`, :8083 `metrics`.
    #[arg(long, env = "ICS_HTTP_LISTEN")]
    pub http_listen: Option<std::net::SocketAddr>,

    /// Seconds to let in-flight calls finish after a shutdown signal before giving up on them.
    #[arg(long, env = "ICS_SHUTDOWN_GRACE_SECS", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS)]
    pub shutdown_grace_secs: u64,

    /// Seconds health answers NOT_SERVING after a shutdown signal while calls are still
    /// accepted, so that load balancers polling health stop routing here first.
    #[arg(long, env = "ICS_SHUTDOWN_DRAIN_SECS", default_value_t = DEFAULT_SHUTDOWN_DRAIN_SECS)]
    pub shutdown_drain_secs: u64,

    /// Most PostgreSQL connections this process opens (`icsd all` shares them among its
    /// services; each keeps one for its notifications and pools the rest).
    #[arg(long, env = "ICS_DB_MAX_CONNECTIONS", default_value_t = DEFAULT_DB_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub db_max_connections: u32,

    /// JetStream's duplicate window (seconds) on each service's stream: a re-published event
    /// within it is dropped by its `Nats-Msg-Id`; after it, consumers skip it by version.
    #[arg(long, env = "ICS_DUPLICATE_WINDOW_SECS", default_value_t = DEFAULT_DUPLICATE_WINDOW_SECS, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duplicate_window_secs: u64,

    /// Replicas of each service's JetStream stream: 1 on a single NATS server, 3 on a cluster.
    #[arg(long, env = "ICS_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,

    /// MiB of aggregates' folded states this process keeps in memory, to decide commands
    /// without reading their streams (0 keeps none). A state is the aggregate as its commands
    /// see it, whatever the length of its stream; a stream not held is read and folded whole.
    #[arg(long, env = "ICS_STATE_CACHE_MB", default_value_t = DEFAULT_STATE_CACHE_MB, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    pub state_cache_mb: u64,
}

impl CommonConfig {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_secs)
    }

    /// The same, serving HTTP on `http_listen` (none: no HTTP surface, for the services of
    /// `icsd all` other than the one that serves the process's).
    pub fn with_http_listen(&self, http_listen: Option<std::net::SocketAddr>) -> CommonConfig {
        CommonConfig {
            http_listen,
            ..self.clone()
        }
    }

    /// The configuration of one of `services` services sharing this process: each gets an
    /// equal part of the connection budget.
    pub fn shared_by(&self, services: u32) -> CommonConfig {
        CommonConfig {
            db_max_connections: (self.db_max_connections / services.max(1)).max(2),
            ..self.clone()
        }
    }
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self {
            database: DatabaseConfig::default(),
            nats: NatsConfig::default(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            auth: AuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            tls: TlsConfig::default(),
            http_listen: None,
            shutdown_grace_secs: DEFAULT_SHUTDOWN_GRACE_SECS,
            shutdown_drain_secs: DEFAULT_SHUTDOWN_DRAIN_SECS,
            db_max_connections: DEFAULT_DB_MAX_CONNECTIONS,
            duplicate_window_secs: DEFAULT_DUPLICATE_WINDOW_SECS,
            stream_replicas: 1,
            state_cache_mb: DEFAULT_STATE_CACHE_MB,
        }
    }
}

impl fmt::Debug for CommonConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CommonConfig")
            .field("database", &self.database)
            .field("nats", &self.nats)
            .field("subject_prefix", &self.subject_prefix)
            .field("auth", &self.auth)
            .field("telemetry", &self.telemetry)
            .field("tls", &self.tls)
            .field("http_listen", &self.http_listen)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("shutdown_drain_secs", &self.shutdown_drain_secs)
            .field("db_max_connections", &self.db_max_connections)
            .field("duplicate_window_secs", &self.duplicate_window_secs)
            .field("stream_replicas", &self.stream_replicas)
            .finish()
    }
}

/// Where and how a service reaches PostgreSQL. Each service should connect as its own role,
/// owning only its schema (`deploy/postgres/roles.sql`).
#[derive(Args, Clone)]
pub struct DatabaseConfig {
    /// Postgres URL; each service uses its own schema inside this database.
    #[arg(
        long,
        env = "ICS_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,

    /// File holding the password of the URL's role (a mounted secret); it replaces any
    /// password in the URL, so that none has to sit in the environment.
    #[arg(long, env = "ICS_DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<PathBuf>,

    /// PEM CA certificates that PostgreSQL's certificate must chain to. Turns on TLS with
    /// `verify-full` (the certificate must name the URL's host).
    #[arg(long, env = "ICS_DATABASE_CA")]
    pub database_ca: Option<PathBuf>,

    /// PEM client certificate presented to PostgreSQL (with `ICS_DATABASE_KEY`).
    #[arg(long, env = "ICS_DATABASE_CERT", requires = "database_key")]
    pub database_cert: Option<PathBuf>,

    /// PEM private key of `ICS_DATABASE_CERT`.
    #[arg(long, env = "ICS_DATABASE_KEY", requires = "database_cert")]
    pub database_key: Option<PathBuf>,
}

impl DatabaseConfig {
    /// A plaintext connection to `url`, with whatever credentials it carries.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            database_url: url.into(),
            ..Self::default()
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            database_password_file: None,
            database_ca: None,
            database_cert: None,
            database_key: None,
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("DatabaseConfig")
            .field("database_url", &redact_url_password(&self.database_url))
            .field("database_password_file", &self.database_password_file)
            .field("database_ca", &self.database_ca)
            .field("database_cert", &self.database_cert)
            .field("database_key", &self.database_key)
            .finish()
    }
}

/// Where and how a service reaches NATS. Each service should have its own user, allowed only
/// its own subjects and the streams it projects (`deploy/nats/permissions.conf`).
#[derive(Args, Clone)]
pub struct NatsConfig {
    /// NATS URL, or a comma-separated list of a cluster's servers (JetStream must be enabled).
    #[arg(long, env = "ICS_NATS_URL", default_value = DEFAULT_NATS_URL)]
    pub nats_url: String,

    /// File with this service's NATS credentials: a `.creds` file (user JWT and nkey seed), an
    /// nkey seed, or `user:password` on one line.
    #[arg(long, env = "ICS_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// PEM CA certificates that the NATS servers' certificates must chain to; TLS is then
    /// required.
    #[arg(long, env = "ICS_NATS_CA")]
    pub nats_ca: Option<PathBuf>,

    /// PEM client certificate presented to NATS (with `ICS_NATS_KEY`), for servers that verify
    /// clients.
    #[arg(long, env = "ICS_NATS_CERT", requires = "nats_key")]
    pub nats_cert: Option<PathBuf>,

    /// PEM private key of `ICS_NATS_CERT`.
    #[arg(long, env = "ICS_NATS_KEY", requires = "nats_cert")]
    pub nats_key: Option<PathBuf>,
}

impl NatsConfig {
    /// A plaintext, anonymous connection to `url`.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            nats_url: url.into(),
            ..Self::default()
        }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            nats_url: DEFAULT_NATS_URL.to_owned(),
            nats_creds: None,
            nats_ca: None,
            nats_cert: None,
            nats_key: None,
        }
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("NatsConfig")
            .field("nats_url", &redact_url_password(&self.nats_url))
            .field("nats_creds", &self.nats_creds)
            .field("nats_ca", &self.nats_ca)
            .field("nats_cert", &self.nats_cert)
            .field("nats_key", &self.nats_key)
            .finish()
    }
}

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum AuthMode {
    /// Every call must carry a valid bearer token (RS256/ES256 from the identity provider, or
    /// HS256 with the shared secret for development and tests).
    #[default]
    Token,
    /// No authentication: every caller is trusted with everything. For a laptop only.
    Development,
}

/// Authentication settings.
#[derive(Args, Clone)]
pub struct AuthConfig {
    /// `token` (bearer JWTs, the default) or `development` (no authentication at all).
    #[arg(long, env = "ICS_AUTH_MODE", value_enum, default_value_t = AuthMode::Token)]
    pub auth_mode: AuthMode,

    /// HS256 secret that signs bearer tokens, for development and tests. In production use
    /// the identity provider's keys (`ICS_TOKEN_JWKS`) instead; never both.
    #[arg(long, env = "ICS_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// File holding the HS256 secret (a mounted secret), instead of `ICS_TOKEN_SECRET`.
    #[arg(long, env = "ICS_TOKEN_SECRET_FILE", conflicts_with = "token_secret")]
    pub token_secret_file: Option<PathBuf>,

    /// The identity provider's published signing keys (JWKS, RS256/ES256): a file path or an
    /// https:// URL, read at start and refreshed every `ICS_TOKEN_JWKS_REFRESH_SECS`.
    #[arg(long, env = "ICS_TOKEN_JWKS")]
    pub token_jwks: Option<String>,

    /// Calls per second each tenant (a trust writer's or a board's token subject) may make,
    /// sustained; more are RESOURCE_EXHAUSTED with the time to wait. 0 turns the limit off.
    /// Operators are not limited.
    #[arg(long, env = "ICS_TENANT_CALLS_PER_SEC", default_value_t = DEFAULT_TENANT_CALLS_PER_SEC)]
    pub tenant_calls_per_sec: u32,

    /// Calls a tenant may make at once above the sustained rate.
    #[arg(long, env = "ICS_TENANT_CALL_BURST", default_value_t = DEFAULT_TENANT_CALL_BURST)]
    pub tenant_call_burst: u32,

    /// Calls one tenant may have in flight at once; more wait for one of them to end (up to 5 s,
    /// then RESOURCE_EXHAUSTED), so that a tenant flooding with parallel calls takes its share
    /// of the machine and no more. 0 turns the limit off. Operators are not limited.
    #[arg(long, env = "ICS_TENANT_CONCURRENT_CALLS", default_value_t = DEFAULT_TENANT_CONCURRENT_CALLS)]
    pub tenant_concurrent_calls: u32,

    /// Live watches one tenant may hold open at once; one more is RESOURCE_EXHAUSTED until one
    /// ends. Operators are not limited.
    #[arg(long, env = "ICS_TENANT_WATCHES", default_value_t = DEFAULT_TENANT_WATCHES, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub tenant_watches: u32,

    /// Seconds between refreshes of the published keys (a rotated key is used after at most
    /// this long, without a restart).
    #[arg(long, env = "ICS_TOKEN_JWKS_REFRESH_SECS", default_value_t = DEFAULT_JWKS_REFRESH_SECS)]
    pub token_jwks_refresh_secs: u64,

    /// Expected `iss` claim of bearer tokens.
    #[arg(long, env = "ICS_TOKEN_ISSUER", default_value = DEFAULT_TOKEN_ISSUER)]
    pub token_issuer: String,

    /// Expected `aud` claim of bearer tokens.
    #[arg(long, env = "ICS_TOKEN_AUDIENCE", default_value = DEFAULT_TOKEN_AUDIENCE)]
    pub token_audience: String,
}

impl AuthConfig {
    /// Token mode with the given secret and the default issuer and audience.
    pub fn with_secret(secret: impl Into<String>) -> Self {
        Self {
            token_secret: Some(secret.into()),
            ..Self::default()
        }
    }

    pub fn development() -> Self {
        Self {
            auth_mode: AuthMode::Development,
            ..Self::default()
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::Token,
            token_secret: None,
            token_secret_file: None,
            token_jwks: None,
            token_jwks_refresh_secs: DEFAULT_JWKS_REFRESH_SECS,
            tenant_calls_per_sec: DEFAULT_TENANT_CALLS_PER_SEC,
            tenant_call_burst: DEFAULT_TENANT_CALL_BURST,
            tenant_concurrent_calls: DEFAULT_TENANT_CONCURRENT_CALLS,
            tenant_watches: DEFAULT_TENANT_WATCHES,
            token_issuer: DEFAULT_TOKEN_ISSUER.to_owned(),
            token_audience: DEFAULT_TOKEN_AUDIENCE.to_owned(),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = self.token_secret.as_ref().map(|_| "<redacted>");
        formatter
            .debug_struct("AuthConfig")
            .field("auth_mode", &self.auth_mode)
            .field("token_secret", &secret)
            .field("token_secret_file", &self.token_secret_file)
            .field("token_jwks", &self.token_jwks)
            .field("token_jwks_refresh_secs", &self.token_jwks_refresh_secs)
            .field("tenant_calls_per_sec", &self.tenant_calls_per_sec)
            .field("tenant_call_burst", &self.tenant_call_burst)
            .field("tenant_concurrent_calls", &self.tenant_concurrent_calls)
            .field("tenant_watches", &self.tenant_watches)
            .field("token_issuer", &self.token_issuer)
            .field("token_audience", &self.token_audience)
            .finish()
    }
}

/// TLS on the gRPC listeners (see [`crate::tls`]); plaintext when no certificate is given.
#[derive(Debug, Args, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain the gRPC listeners present.
    #[arg(long, env = "ICS_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of that certificate.
    #[arg(long, env = "ICS_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,

    /// PEM CA certificates that clients' certificates must chain to: mutual TLS. A client
    /// without a trusted certificate fails in the handshake.
    #[arg(long, env = "ICS_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<std::path::PathBuf>,

    /// Seconds between looks at the certificate files; changed ones are used for new
    /// connections without a restart.
    #[arg(long, env = "ICS_TLS_RELOAD_SECS", default_value_t = DEFAULT_TLS_RELOAD_SECS)]
    pub tls_reload_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_reload_secs: DEFAULT_TLS_RELOAD_SECS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging and tracing settings.
#[derive(Debug, Args, Clone)]
pub struct TelemetryConfig {
    /// `tracing` filter directives, e.g. `info,ics_eventstore=debug`.
    #[arg(long, env = "ICS_LOG", default_value = DEFAULT_LOG_FILTER)]
    pub log_filter: String,

    #[arg(long, env = "ICS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// OTLP/gRPC collector endpoint (e.g. `http://127.0.0.1:4317`); spans are exported only
    /// when this is set.
    #[arg(long, env = "ICS_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Overrides the `service.name` reported with spans (the binary's own name by default).
    #[arg(long, env = "ICS_SERVICE_NAME")]
    pub service_name: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: DEFAULT_LOG_FILTER.to_owned(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            service_name: None,
        }
    }
}

/// The contents of a mounted secret (`setting` names the variable that pointed at it), without
/// the line end editors and `echo` leave. An unreadable or empty file is an error that names
/// the file, never its contents.
pub fn read_secret_file(path: &std::path::Path, setting: &str) -> anyhow::Result<String> {
    let contents = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("{setting}: cannot read {}: {error}", path.display()))?;
    let secret = contents.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!secret.is_empty(), "{setting}: {} is empty", path.display());
    Ok(secret)
}

/// Subject prefixes become a NATS subject token and part of JetStream names, where `.`, `*`,
/// `>`, whitespace and path separators are either structural or forbidden.
fn parse_subject_prefix(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 32
        && value
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || matches!(character, '_' | '-'));
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be 1 to 32 ASCII letters, digits, '_' or '-'".to_owned())
    }
}

/// Replaces the password of a `scheme://user:password@host/...` URL with `***`, for logs.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonConfig,
    }

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::try_parse_from([
            "svc",
            "--subject-prefix",
            "test_1",
            "--auth-mode",
            "development",
            "--log-format",
            "json",
            "--shutdown-grace-secs",
            "3",
            "--state-cache-mb",
            "256",
        ])
        .expect("valid flags parse");
        assert_eq!(cli.common.state_cache_mb, 256);
        assert_eq!(cli.common.subject_prefix, "test_1");
        assert_eq!(cli.common.auth.auth_mode, AuthMode::Development);
        assert_eq!(cli.common.telemetry.log_format, LogFormat::Json);
        assert_eq!(cli.common.shutdown_grace(), Duration::from_secs(3));
    }

    #[test]
    fn subject_prefix_rejects_subject_syntax() {
        assert!(Cli::try_parse_from(["svc", "--subject-prefix", "a.b"]).is_err());
        assert!(Cli::try_parse_from(["svc", "--subject-prefix", "a>"]).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let config = CommonConfig {
            database: DatabaseConfig::with_url("postgres://app:hunter2@db:5432/ics"),
            auth: AuthConfig::with_secret("s3cret-signing-key"),
            ..CommonConfig::default()
        };
        let rendered = format!("{config:?}");
        assert!(!rendered.contains("hunter2"));
        assert!(!rendered.contains("s3cret-signing-key"));
        assert!(rendered.contains("postgres://app:***@db:5432/ics"));
    }
}
