//! The NATS connection of a service.

use std::path::Path;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event};

use crate::config::{NatsConfig, read_secret_file, redact_url_password};
use crate::retry::{STARTUP_RETRY_WINDOW, StartupBackoff};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to NATS as `config` says, waiting up to ~30 s for the server to come up. Once
/// connected, the client reconnects forever: Postgres is the record, so a service keeps
/// accepting writes while NATS is away and its relay catches up afterwards.
///
/// `ICS_NATS_URL` may list several servers of a cluster, separated by commas; the client also
/// learns the cluster's other servers from the one it reaches. Replies come to `_INBOX_<client>`
/// rather than the shared `_INBOX`, so that a service's NATS user can be allowed its own
/// replies only.
pub async fn connect_nats(config: &NatsConfig, client: &str) -> anyhow::Result<async_nats::Client> {
    let url = config.nats_url.as_str();
    let display_url = redact_url_password(url);
    let servers = url
        .split(',')
        .map(|server| server.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            anyhow::anyhow!("ICS_NATS_URL is not a NATS URL or a comma-separated list of them")
        })?;
    let credentials = match &config.nats_creds {
        Some(path) => Some(read_credentials(path)?),
        None => None,
    };
    let mut backoff = StartupBackoff::new(STARTUP_RETRY_WINDOW);
    loop {
        let options = connect_options(config, client, credentials.as_ref())?;
        let error = match options.connect(servers.clone()).await {
            Ok(client) => {
                tracing::info!(url = %display_url, "connected to nats");
                return Ok(client);
            }
            Err(error) => error,
        };
        if matches!(error.kind(), ConnectErrorKind::AuthorizationViolation) {
            anyhow::bail!(
                "nats at {display_url} refused the credentials of ICS_NATS_CREDS ({error})"
            );
        }
        let retryable = matches!(
            error.kind(),
            ConnectErrorKind::Io | ConnectErrorKind::TimedOut | ConnectErrorKind::Dns
        );
        if !retryable {
            anyhow::bail!("cannot connect to nats at {display_url}: {error}");
        }
        let Some(delay) = backoff.next_delay() else {
            // Where NATS runs is the deployment's business: scripts/lib.sh says how to start it
            // on a laptop; a production log gets no such advice.
            anyhow::bail!(
                "nats at {display_url} was not reachable within {}s ({error})",
                STARTUP_RETRY_WINDOW.as_secs()
            );
        };
        tracing::warn!(
            url = %display_url,
            attempt = backoff.attempts,
            %error,
            "nats not reachable; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

/// What an `ICS_NATS_CREDS` file holds.
enum Credentials {
    /// A decentralised-auth `.creds` file: a user JWT and its nkey seed.
    CredsFile(String),
    /// A bare nkey seed (`SU…`).
    Nkey(String),
    UserPassword {
        user: String,
        password: String,
    },
}

fn read_credentials(path: &Path) -> anyhow::Result<Credentials> {
    let contents = read_secret_file(path, "ICS_NATS_CREDS")?;
    let trimmed = contents.trim();
    if trimmed.contains("BEGIN NATS USER JWT") {
        return Ok(Credentials::CredsFile(contents));
    }
    if trimmed.starts_with("SU") && !trimmed.contains(':') {
        return Ok(Credentials::Nkey(trimmed.to_owned()));
    }
    match trimmed.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok(Credentials::UserPassword {
                user: user.to_owned(),
                password: password.to_owned(),
            })
        }
        _ => anyhow::bail!(
            "ICS_NATS_CREDS: {} holds neither a .creds file, an nkey seed nor user:password",
            path.display()
        ),
    }
}

fn connect_options(
    config: &NatsConfig,
    client: &str,
    credentials: Option<&Credentials>,
) -> anyhow::Result<ConnectOptions> {
    let mut options = match credentials {
        None => ConnectOptions::new(),
        Some(Credentials::CredsFile(contents)) => ConnectOptions::with_credentials(contents)
            .map_err(|error| {
                anyhow::anyhow!("ICS_NATS_CREDS is not a valid .creds file: {error}")
            })?,
        Some(Credentials::Nkey(seed)) => ConnectOptions::with_nkey(seed.clone()),
        Some(Credentials::UserPassword { user, password }) => {
            ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
    };
    if let Some(ca) = &config.nats_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(certificate), Some(key)) = (&config.nats_cert, &config.nats_key) {
        options = options.add_client_certificate(certificate.clone(), key.clone());
    }
    Ok(options
        .name(client)
        .custom_inbox_prefix(format!("_INBOX_{client}"))
        .connection_timeout(CONNECT_TIMEOUT)
        .max_reconnects(None)
        .event_callback(|event| async move { log_event(event) }))
}

fn log_event(event: Event) {
    match event {
        Event::Connected => tracing::info!("nats connection (re)established"),
        Event::Disconnected => tracing::warn!("nats disconnected; reconnecting"),
        Event::LameDuckMode => tracing::warn!("nats server entering lame duck mode"),
        Event::SlowConsumer(subscription) => {
            tracing::warn!(subscription, "nats slow consumer; messages dropped")
        }
        Event::ServerError(error) => tracing::warn!(%error, "nats server error"),
        Event::ClientError(error) => tracing::warn!(%error, "nats client error"),
        Event::Draining => tracing::info!("nats connection draining"),
        Event::Closed => tracing::info!("nats connection closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(contents: &str) -> anyhow::Result<Credentials> {
        let path = std::env::temp_dir().join(format!("ics-creds-{}", uuid::Uuid::now_v7()));
        std::fs::write(&path, contents)?;
        let read = read_credentials(&path);
        let _ = std::fs::remove_file(&path);
        read
    }

    #[test]
    fn a_credentials_file_is_a_creds_file_an_nkey_seed_or_user_and_password() {
        let creds = "-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n";
        assert!(matches!(credentials(creds), Ok(Credentials::CredsFile(_))));
        assert!(matches!(
            credentials("SUAM3PZ3UQJ7WZ2QJXKLQ\n"),
            Ok(Credentials::Nkey(seed)) if seed == "SUAM3PZ3UQJ7WZ2QJXKLQ"
        ));
        assert!(matches!(
            credentials("trusts:s3cret:with-colon\n"),
            Ok(Credentials::UserPassword { user, password })
                if user == "trusts" && password == "s3cret:with-colon"
        ));
        for bad in ["", "\n", "just-a-word", ":password", "user:"] {
            let error = credentials(bad).err().map(|error| error.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|text| text.contains("ICS_NATS_CREDS")),
                "{bad:?} gave {error:?}"
            );
        }
    }
}
