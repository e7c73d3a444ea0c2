//! What clients of the platform (`icsctl`, `ics-bench`, the demo loader, hospital integrations
//! written in Rust) share: a [`RetryingChannel`] that sends a call again when a server could not
//! take it, and the [`Bearer`] token on every call ([`BearerChannel`]).
//!
//! Every command carries its client-chosen `request_id`, so sending the very same bytes again is
//! safe: a command that did commit is answered with its first result (`replayed: true`) and
//! writes nothing new. Queries are safe to repeat anyway.

mod bearer;

pub use bearer::{Bearer, BearerChannel, InvalidToken};

use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Bytes, Service, http};
use tonic::transport::Channel;

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// `UNAVAILABLE` and `DEADLINE_EXCEEDED`: the server was unreachable, restarting, draining, or
/// out of connections; nothing else is retried.
const RETRYABLE_CODES: [&str; 2] = ["14", "4"];

/// Calls whose requests stream (bulk ingest): they are sent once, never buffered for a retry.
/// The import command resumes those itself (a re-sent stream records nothing twice).
const STREAMING_REQUESTS: [&str; 1] = ["/ics.metrics.v1.MetricsService/IngestObservations"];

/// A channel that retries unary-request calls on a transport failure or on `UNAVAILABLE` or
/// `DEADLINE_EXCEEDED`, with the same request (and so the same request id), up to
/// [`MAX_ATTEMPTS`] times, pausing 100 ms, doubling to 2 s, between attempts.
#[derive(Debug, Clone)]
pub struct RetryingChannel {
    inner: Channel,
}

impl RetryingChannel {
    pub fn new(inner: Channel) -> Self {
        RetryingChannel { inner }
    }
}

impl Service<http::Request<Body>> for RetryingChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The channel that was polled ready serves the first attempt; clones serve retries.
        let ready = self.inner.clone();
        let mut first = std::mem::replace(&mut self.inner, ready);
        if STREAMING_REQUESTS.contains(&request.uri().path()) {
            return Box::pin(first.call(request));
        }
        let retries = self.inner.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes: Bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                // The request body is the client's own encoded message; it cannot fail to
                // collect short of a bug, and then sending it once is all one can do.
                Err(_) => Bytes::new(),
            };
            let rebuild = || {
                http::Request::from_parts(
                    parts.clone(),
                    Body::new(
                        http_body_util::Full::new(bytes.clone()).map_err(|never| match never {}),
                    ),
                )
            };
            let mut backoff = FIRST_BACKOFF;
            let mut attempt = 1;
            let mut outcome = first.call(rebuild()).await;
            while attempt < MAX_ATTEMPTS && retryable(&outcome) {
                tracing::debug!(path = %parts.uri.path(), attempt, "call not taken; retrying with the same request");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
                let mut channel = retries.clone();
                outcome = match std::future::poll_fn(|context| channel.poll_ready(context)).await {
                    Ok(()) => channel.call(rebuild()).await,
                    Err(error) => Err(error),
                };
            }
            outcome
        })
    }
}

/// A transport failure, or a response whose headers already carry a retryable `grpc-status`
/// (an error answered before any message: "trailers only").
fn retryable(outcome: &Result<http::Response<Body>, tonic::transport::Error>) -> bool {
    match outcome {
        Err(_) => true,
        Ok(response) => response
            .headers()
            .get("grpc-status")
            .and_then(|status| status.to_str().ok())
            .is_some_and(|status| RETRYABLE_CODES.contains(&status)),
    }
}

/// A code's canonical name, as gRPC documents it (`INVALID_ARGUMENT`), for answers and
/// reports that name the code of each item rather than fail the call.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// TLS for a client: the CA that the server's certificate must chain to (the public web roots
/// when none is given) and, for servers that require mutual TLS, the client's certificate and
/// key — all PEM files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

/// The command-line flags of a client's TLS settings, the same in every client binary.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// PEM CA certificate(s) the services' TLS certificates must chain to (https:// URLs);
    /// the public web roots when not given.
    #[arg(long, global = true, env = "ICS_TLS_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,

    /// PEM client certificate, for services that require mutual TLS (with --key).
    #[arg(long, global = true, env = "ICS_TLS_CLIENT_CERT", value_name = "FILE")]
    pub cert: Option<std::path::PathBuf>,

    /// PEM private key of --cert.
    #[arg(long, global = true, env = "ICS_TLS_CLIENT_KEY", value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
}

impl From<&ClientTlsArgs> for ClientTls {
    fn from(args: &ClientTlsArgs) -> Self {
        ClientTls {
            ca: args.ca.clone(),
            cert: args.cert.clone(),
            key: args.key.clone(),
        }
    }
}

/// Why a service's address cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("'{url}' is not a usable URL: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error("--ca, --cert and --key need an https:// URL; '{0}' would send the token in plaintext")]
    TlsWithoutHttps(String),
    #[error("--cert and --key go together")]
    HalfIdentity,
}

/// The endpoint of a service at `url`. An `https://` URL always gets TLS (with `tls`, or the
/// public web roots): a bearer token is never sent in plaintext to an address that asked for
/// TLS. TLS settings with an `http://` URL are refused rather than ignored.
pub fn endpoint(url: &str, tls: &ClientTls) -> Result<tonic::transport::Endpoint, EndpointError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|error| EndpointError::File {
            path: path.display().to_string(),
            reason: error.to_string(),
        })
    };
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|error| EndpointError::Url {
        url: url.to_owned(),
        reason: error.to_string(),
    })?;
    let https = endpoint.uri().scheme_str() == Some("https");
    if !https {
        if tls != &ClientTls::default() {
            return Err(EndpointError::TlsWithoutHttps(url.to_owned()));
        }
        return Ok(endpoint);
    }
    let mut config = ClientTlsConfig::new();
    config = match &tls.ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => config.with_webpki_roots(),
    };
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => return Err(EndpointError::HalfIdentity),
    }
    endpoint
        .tls_config(config)
        .map_err(|error| EndpointError::Url {
            url: url.to_owned(),
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_always_gets_tls_and_tls_settings_never_go_to_plaintext() {
        let none = ClientTls::default();
        assert!(endpoint("https://ics.example.nhs.uk:443", &none).is_ok());
        assert!(endpoint("http://127.0.0.1:50051", &none).is_ok());
        let with_ca = ClientTls {
            ca: Some("/nonexistent/ca.pem".into()),
            ..ClientTls::default()
        };
        assert!(matches!(
            endpoint("http://ics.example.nhs.uk:50051", &with_ca),
            Err(EndpointError::TlsWithoutHttps(_))
        ));
        assert!(matches!(
            endpoint("https://ics.example.nhs.uk", &with_ca),
            Err(EndpointError::File { .. })
        ));
        let half = ClientTls {
            cert: Some("/nonexistent/client.pem".into()),
            ..ClientTls::default()
        };
        assert!(matches!(
            endpoint("https://ics.example.nhs.uk", &half),
            Err(EndpointError::HalfIdentity)
        ));
        assert!(matches!(
            endpoint("not a url", &none),
            Err(EndpointError::Url { .. })
        ));
    }
}
