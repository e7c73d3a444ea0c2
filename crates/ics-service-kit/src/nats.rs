//! The NATS connection of a service.

use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event};

use crate::config::redact_url_password;
use crate::retry::{STARTUP_RETRY_WINDOW, StartupBackoff};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to NATS, waiting up to ~30 s for the server to come up. Once connected, the client
/// reconnects forever: Postgres is the record, so a service keeps accepting writes while NATS is
/// away and its relay catches up afterwards.
///
/// `url` may list several servers of a cluster, separated by commas; the client also learns the
/// cluster's other servers from the one it reaches.
pub async fn connect_nats(url: &str) -> anyhow::Result<async_nats::Client> {
    let display_url = redact_url_password(url);
    let servers = url
        .split(',')
        .map(|server| server.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            anyhow::anyhow!("ICS_NATS_URL is not a NATS URL or a comma-separated list of them")
        })?;
    let mut backoff = StartupBackoff::new(STARTUP_RETRY_WINDOW);
    loop {
        let error = match connect_options().connect(servers.clone()).await {
            Ok(client) => {
                tracing::info!(url = %display_url, "connected to nats");
                return Ok(client);
            }
            Err(error) => error,
        };
        let retryable = matches!(
            error.kind(),
            ConnectErrorKind::Io | ConnectErrorKind::TimedOut | ConnectErrorKind::Dns
        );
        if !retryable {
            anyhow::bail!("cannot connect to nats at {display_url}: {error}");
        }
        let Some(delay) = backoff.next_delay() else {
            anyhow::bail!(
                "nats at {display_url} was not reachable within {}s ({error}); start it with: \
                 nats-server -js",
                STARTUP_RETRY_WINDOW.as_secs()
            );
        };
        tracing::warn!(
            url = %display_url,
            attempt = backoff.attempts,
            %error,
            "nats not reachable; start it with: nats-server -js"
        );
        tokio::time::sleep(delay).await;
    }
}

fn connect_options() -> ConnectOptions {
    ConnectOptions::new()
        .connection_timeout(CONNECT_TIMEOUT)
        .max_reconnects(None)
        .event_callback(|event| async move { log_event(event) })
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
