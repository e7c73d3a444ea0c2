//! The Postgres pool of a service: its own schema inside a shared database.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgSslMode};
use sqlx::{Connection as _, PgPool};
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseConfig, read_secret_file};
use crate::retry::{STARTUP_RETRY_WINDOW, StartupBackoff};

pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAINTENANCE_DATABASE: &str = "postgres";

const INVALID_CATALOG_NAME: &str = "3D000";
const DUPLICATE_DATABASE: &str = "42P04";
const DUPLICATE_SCHEMA: &str = "42P06";
const UNIQUE_VIOLATION: &str = "23505";

/// Connects as `config` says, creating the database and `schema` when missing, and returns a
/// pool whose connections resolve unqualified names in `schema` (their `search_path`).
///
/// `connection_budget` is the most connections the service may open: one is left outside the
/// pool for its LISTEN/NOTIFY listener, the rest are pooled.
///
/// Waits up to ~30 s for Postgres to start listening, so that services and Postgres can be
/// started together; gives up early if `shutdown` is cancelled.
pub async fn connect_postgres(
    config: &DatabaseConfig,
    schema: &str,
    connection_budget: u32,
    shutdown: &CancellationToken,
) -> anyhow::Result<PgPool> {
    validate_schema_name(schema)?;
    let options = connect_options(config)?;
    let database = options
        .get_database()
        .unwrap_or_else(|| options.get_username())
        .to_owned();
    let display_url = display_url(&options);

    let mut connection = match connect_when_reachable(&options, &display_url, shutdown).await {
        Ok(connection) => connection,
        Err(error) if has_database_code(&error, &[INVALID_CATALOG_NAME]) => {
            create_database(&options, &database, &display_url, shutdown).await?;
            connect_when_reachable(&options, &display_url, shutdown)
                .await
                .with_context(|| format!("cannot connect to {display_url} after creating it"))?
        }
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context(format!("cannot connect to postgres at {display_url}")));
        }
    };
    create_schema(&mut connection, schema)
        .await
        .with_context(|| format!("cannot create schema {schema} in {display_url}"))?;
    let _ = connection.close().await;

    let pool = PgPoolOptions::new()
        .max_connections(connection_budget.saturating_sub(1).max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A ping before every acquire costs each command a round trip. A connection that died
        // (Postgres restarted) fails its next query instead: that call answers UNAVAILABLE,
        // the pool drops the connection, and the client's retry gets a fresh one.
        .test_before_acquire(false)
        // No JIT compilation: every statement of a service is short, and the planner's
        // estimate of one it has no statistics for yet (a table just filled, before autovacuum
        // analyses it) can pass the JIT thresholds by orders of magnitude; an outcomes refresh
        // reading a few workshops then spent 230 ms compiling itself, on every view.
        .connect_with(options.options([("search_path", schema), ("jit", "off")]))
        .await
        .with_context(|| format!("cannot open a connection pool to {display_url}"))?;
    tracing::info!(url = %display_url, schema, "connected to postgres");
    Ok(pool)
}

/// The connection options `config` describes: the URL, the password from its file, and TLS.
/// Without a CA (or an `sslmode` in the URL) connections are plaintext, as before TLS was an
/// option; with one, PostgreSQL's certificate must chain to it and name the URL's host.
pub fn connect_options(config: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    // The parse error of sqlx can quote the URL, password included.
    let mut options = PgConnectOptions::from_str(&config.database_url)
        .map_err(|_| anyhow::anyhow!("ICS_DATABASE_URL is not a valid postgres URL"))?;
    if let Some(path) = &config.database_password_file {
        options = options.password(&read_secret_file(path, "ICS_DATABASE_PASSWORD_FILE")?);
    }
    match &config.database_ca {
        Some(ca) => options = options.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(ca),
        None if !config.database_url.contains("sslmode=") => {
            options = options.ssl_mode(PgSslMode::Disable)
        }
        None => {}
    }
    if let (Some(certificate), Some(key)) = (&config.database_cert, &config.database_key) {
        options = options.ssl_client_cert(certificate).ssl_client_key(key);
    }
    Ok(options)
}

/// Lets the services that check their views against this service's log read it (and nothing
/// else of this schema): `SELECT` on `events` for the `ics_log_readers` role, where the
/// deployment has one (`deploy/postgres/roles.sql`). Run at every start, so a role created
/// after the schema is covered too.
pub async fn grant_log_readers(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "DO $$ BEGIN
             IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ics_log_readers') THEN
                 EXECUTE format('GRANT USAGE ON SCHEMA %I TO ics_log_readers', current_schema());
                 EXECUTE format('GRANT SELECT ON %I.events TO ics_log_readers', current_schema());
             END IF;
         END $$",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Schema names are interpolated into DDL and into the `search_path` startup option, so they
/// are restricted to what needs no quoting.
fn validate_schema_name(schema: &str) -> anyhow::Result<()> {
    let mut characters = schema.chars();
    let starts_well = characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_');
    let valid = starts_well
        && schema.len() <= 63
        && schema.chars().all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_'
        });
    anyhow::ensure!(
        valid,
        "invalid schema name {schema:?}: use 1 to 63 lowercase letters, digits or '_', \
         not starting with a digit"
    );
    Ok(())
}

async fn connect_when_reachable(
    options: &PgConnectOptions,
    display_url: &str,
    shutdown: &CancellationToken,
) -> Result<PgConnection, sqlx::Error> {
    let mut backoff = StartupBackoff::new(STARTUP_RETRY_WINDOW);
    loop {
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options))
            .await
            .unwrap_or_else(|_elapsed| {
                Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting timed out",
                )))
            });
        let error = match attempt {
            Ok(connection) => return Ok(connection),
            Err(error) if is_unreachable(&error) => error,
            Err(error) => return Err(error),
        };
        let Some(delay) = backoff.next_delay() else {
            tracing::error!(url = %display_url, %error, "postgres not reachable; giving up");
            return Err(sqlx::Error::Io(std::io::Error::other(format!(
                "postgres at {display_url} was not reachable within {}s ({error})",
                STARTUP_RETRY_WINDOW.as_secs()
            ))));
        };
        tracing::warn!(
            url = %display_url,
            attempt = backoff.attempts,
            %error,
            "postgres not reachable; retrying"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "shutdown requested while waiting for postgres",
                )));
            }
        }
    }
}

async fn create_database(
    options: &PgConnectOptions,
    database: &str,
    display_url: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let maintenance = options.clone().database(MAINTENANCE_DATABASE);
    let mut connection = connect_when_reachable(&maintenance, display_url, shutdown)
        .await
        .with_context(|| {
            format!("database {database} does not exist and the {MAINTENANCE_DATABASE} database is not reachable to create it")
        })?;
    let statement = format!("CREATE DATABASE {}", quote_identifier(database));
    match sqlx::raw_sql(&statement).execute(&mut connection).await {
        Ok(_) => tracing::info!(database, "created database"),
        // Another service of the same deployment created it first; when both create at the
        // same moment, the loser trips over the catalog's unique index instead.
        Err(error) if has_database_code(&error, &[DUPLICATE_DATABASE, UNIQUE_VIOLATION]) => {}
        Err(error) => {
            return Err(
                anyhow::Error::new(error).context(format!("cannot create database {database}"))
            );
        }
    }
    let _ = connection.close().await;
    Ok(())
}

async fn create_schema(connection: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    // A service's own role owns its schema but may not create schemas: PostgreSQL checks that
    // privilege before `IF NOT EXISTS`, so an existing schema is looked up first.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *connection)
            .await?;
    if exists {
        return Ok(());
    }
    let statement = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_identifier(schema));
    match sqlx::raw_sql(&statement).execute(connection).await {
        Ok(_) => Ok(()),
        // IF NOT EXISTS still races: two sessions can both pass the check and one then trips
        // over the catalog's unique index.
        Err(error) if has_database_code(&error, &[DUPLICATE_SCHEMA, UNIQUE_VIOLATION]) => Ok(()),
        Err(error) => Err(error),
    }
}

fn quote_identifier(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn has_database_code(error: &sqlx::Error, codes: &[&str]) -> bool {
    match error {
        sqlx::Error::Database(database_error) => database_error
            .code()
            .is_some_and(|code| codes.contains(&code.as_ref())),
        _ => false,
    }
}

/// Failures that waiting can cure: nothing listening yet, or Postgres still starting up
/// (`57P03 cannot_connect_now`).
fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(database_error) => database_error
            .code()
            .is_some_and(|code| code == "57P03" || code.starts_with("08")),
        _ => false,
    }
}

/// `postgres://user@host:port/database`: enough to recognise the server, no password.
fn display_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_lowercase_identifiers() {
        for valid in ["trusts", "reporting_v2", "_test_1"] {
            assert!(validate_schema_name(valid).is_ok(), "{valid}");
        }
        for invalid in [
            "",
            "Trusts",
            "1abc",
            "a-b",
            "a;drop",
            "a\"b",
            &"x".repeat(64),
        ] {
            assert!(validate_schema_name(invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn display_url_drops_the_password() {
        let options = PgConnectOptions::from_str("postgres://app:hunter2@db.local:6432/ics")
            .expect("valid url");
        assert_eq!(display_url(&options), "postgres://app@db.local:6432/ics");
    }
}
