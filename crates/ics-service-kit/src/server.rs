//! Serving a service's gRPC API the same way everywhere: admission (authentication and tenant
//! limits), health, reflection, request limits, a trace span per call, and graceful shutdown.
//!
//! ```no_run
//! # async fn run(
//! #     routes: tonic::service::Routes,
//! #     listener: tokio::net::TcpListener,
//! #     authenticator: ics_service_kit::Authenticator,
//! # ) -> anyhow::Result<()> {
//! use ics_service_kit::server::{serve, shutdown_on_signals, ServeOptions};
//! // let routes = Routes::new(TrustsServiceServer::new(service));
//! let shutdown = shutdown_on_signals();
//! let options = ServeOptions::new(listener, vec!["ics.trusts.v1.TrustsService"])
//!     .for_service("trusts")
//!     .with_authenticator(authenticator);
//! serve(options, routes, shutdown).await
//! # }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::Context as _;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::codegen::{BoxFuture, Bytes, Service, http};
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::auth::{Authenticator, TokenExpiry};
use crate::hygiene::RequestHygiene;
use crate::telemetry;
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// gRPC's conventional per-message limit, and tonic's decoding default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_GRACE: Duration = Duration::from_secs(crate::config::DEFAULT_SHUTDOWN_GRACE_SECS);

const HEALTH_SERVICE_NAME: &str = tonic_health::pb::health_server::SERVICE_NAME;
const REFLECTION_SERVICE_NAME: &str =
    tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME;

/// The HTTP/2 path of the call (`/ics.trusts.v1.TrustsService/RegisterTrust`), put into every
/// request's extensions so that interceptors and handlers can name the RPC in audit logs.
#[derive(Debug, Clone)]
pub struct RpcPath(Arc<str>);

impl RpcPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How [`serve`] listens and shuts down.
pub struct ServeOptions {
    /// Bound by the caller, so that tests can bind port 0 and learn the address first.
    pub listener: TcpListener,
    /// Fully-qualified names of the services in the routes (the generated
    /// `…_server::SERVICE_NAME` constants), reported `SERVING` by `grpc.health.v1`.
    pub service_names: Vec<&'static str>,
    /// The reporter behind `grpc.health.v1`; pass a clone of your own to flip statuses while
    /// running (e.g. `NOT_SERVING` while Postgres is unreachable).
    pub health: HealthReporter,
    /// How long in-flight calls may run after shutdown is requested.
    pub grace: Duration,
    /// Pause between reporting `NOT_SERVING` and refusing connections, so that load balancers
    /// polling health stop routing here first. Zero by default; a few seconds on Kubernetes.
    pub drain_delay: Duration,
    /// Largest single request message accepted, checked on the wire before a handler runs.
    pub max_message_bytes: usize,
    /// TLS (and mutual TLS) on the listener; plaintext when none.
    pub tls: Option<crate::tls::ReloadingTls>,
    /// The platform service these routes belong to (`trusts`…): named on every call's span,
    /// so that its audit events reach that service's trail.
    pub service: &'static str,
    /// Admission of every call but health and reflection; none lets every call through (tests
    /// of serving alone).
    pub authenticator: Option<Authenticator>,
}

impl ServeOptions {
    pub fn new(listener: TcpListener, service_names: Vec<&'static str>) -> Self {
        Self {
            listener,
            service_names,
            health: HealthReporter::new(),
            grace: DEFAULT_GRACE,
            drain_delay: Duration::ZERO,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            tls: None,
            service: "",
            authenticator: None,
        }
    }

    pub fn with_authenticator(mut self, authenticator: Authenticator) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    pub fn for_service(mut self, service: &'static str) -> Self {
        self.service = service;
        self
    }

    pub fn with_tls(mut self, tls: Option<crate::tls::ReloadingTls>) -> Self {
        self.tls = tls;
        self
    }

    pub fn with_health(mut self, health: HealthReporter) -> Self {
        self.health = health;
        self
    }

    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub fn with_drain_delay(mut self, drain_delay: Duration) -> Self {
        self.drain_delay = drain_delay;
        self
    }

    pub fn with_max_message_bytes(mut self, max_message_bytes: usize) -> Self {
        self.max_message_bytes = max_message_bytes;
        self
    }
}

impl fmt::Debug for ServeOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ServeOptions")
            .field("listener", &self.listener.local_addr().ok())
            .field("service_names", &self.service_names)
            .field("grace", &self.grace)
            .field("drain_delay", &self.drain_delay)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

/// Serves `routes` plus `grpc.health.v1` and gRPC reflection (both unauthenticated) until
/// `shutdown` is cancelled, then drains:
///
/// 1. every health status becomes `NOT_SERVING`;
/// 2. after `drain_delay`, new connections are refused and open ones get HTTP/2 GOAWAY;
/// 3. in-flight calls finish, for at most `grace`; whatever is still running is abandoned.
///
/// Server-streaming handlers (live watches) should end their streams when `shutdown` is
/// cancelled: an open stream is an in-flight call and holds the drain for the whole grace.
pub async fn serve(
    options: ServeOptions,
    routes: Routes,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let ServeOptions {
        listener,
        service_names,
        health,
        grace,
        drain_delay,
        max_message_bytes,
        tls,
        service: platform_service,
        authenticator,
    } = options;
    let local_addr = listener
        .local_addr()
        .context("the gRPC listener has no local address")?;

    // Reflection in both versions: v1, and v1alpha for older tools (grpcurl before 1.8,
    // Python's grpcio-reflection).
    let reflection = || {
        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ics_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(HEALTH_SERVICE_NAME)
            .with_service_name(REFLECTION_SERVICE_NAME);
        for service_name in &service_names {
            reflection = reflection.with_service_name(*service_name);
        }
        reflection
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("cannot build the gRPC reflection service from the embedded descriptors")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("cannot build the gRPC reflection service from the embedded descriptors")?;
    let health_service = HealthServer::new(HealthService::from_health_reporter(health.clone()));
    let routes = routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare();

    for service_name in &service_names {
        health
            .set_service_status(service_name, ServingStatus::Serving)
            .await;
    }
    health.set_service_status("", ServingStatus::Serving).await;

    let stop_accepting = CancellationToken::new();
    let service = GrpcService {
        service: platform_service,
        routes,
        max_message_bytes,
        hygiene: Arc::new(RequestHygiene::new()?),
        authenticator,
    };
    let stopped = stop_accepting.clone().cancelled_owned();
    let serving = Serving {
        local_addr,
        service_names,
        health,
        grace,
        drain_delay,
        stop_accepting: stop_accepting.clone(),
    };
    tracing::info!(listen = %local_addr, services = ?serving.service_names, tls = tls.is_some(), "serving");
    let builder =
        Server::builder().trace_fn(move |request| request_span(platform_service, request));
    match tls {
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let server = builder.serve_with_incoming_shutdown(service, incoming, stopped);
            serving.until_drained(server, shutdown).await
        }
        Some(tls) => {
            let incoming = crate::tls::incoming(listener, tls, stop_accepting);
            let server = builder.serve_with_incoming_shutdown(service, incoming, stopped);
            serving.until_drained(server, shutdown).await
        }
    }
}

/// What draining needs to know of a running server.
struct Serving {
    local_addr: std::net::SocketAddr,
    service_names: Vec<&'static str>,
    health: HealthReporter,
    grace: Duration,
    drain_delay: Duration,
    stop_accepting: CancellationToken,
}

impl Serving {
    /// Runs `server` until `shutdown`, then drains it as [`serve`] describes.
    async fn until_drained<F>(self, server: F, shutdown: CancellationToken) -> anyhow::Result<()>
    where
        F: std::future::Future<Output = Result<(), tonic::transport::Error>>,
    {
        let Serving {
            local_addr,
            service_names,
            mut health,
            grace,
            drain_delay,
            stop_accepting,
        } = self;
        let mut server = pin!(server);
        tokio::select! {
            result = &mut server => {
                result.context("the gRPC server stopped unexpectedly")?;
                return Ok(());
            }
            () = shutdown.cancelled() => {}
        }

        tracing::info!(listen = %local_addr, grace_secs = grace.as_secs(), "draining");
        for service_name in &service_names {
            health
                .set_service_status(service_name, ServingStatus::NotServing)
                .await;
        }
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        // The server goes on accepting and answering during the delay (it must be polled for
        // that): pollers see NOT_SERVING, and calls still complete.
        tokio::select! {
            result = &mut server => {
                result.context("the gRPC server stopped while draining")?;
                return Ok(());
            }
            () = tokio::time::sleep(drain_delay) => {}
        }

        stop_accepting.cancel();
        // Health watches are streams that never end by themselves; removing the statuses closes
        // them (after they deliver NOT_SERVING) so that they do not hold the drain open.
        for service_name in &service_names {
            health.clear_service_status(service_name).await;
        }
        health.clear_service_status("").await;

        match tokio::time::timeout(grace, server).await {
            Ok(result) => {
                result.context("the gRPC server failed while draining")?;
                tracing::info!(listen = %local_addr, "stopped");
            }
            Err(_elapsed) => {
                tracing::warn!(
                    listen = %local_addr,
                    grace_secs = grace.as_secs(),
                    "grace period elapsed; abandoning in-flight calls"
                );
            }
        }
        Ok(())
    }
}

/// A span per call, child of the caller's `traceparent`, so that everything a handler logs
/// carries the call: its RPC, service, request id (the caller's `x-request-id`, or one given
/// here), trace id (the caller's, or the span's own) and peer address. Audit events take these
/// from it ([`crate::audit`]). Health and reflection calls are left out: probes every few
/// seconds would drown the traces that matter.
fn request_span(service: &'static str, request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    if path.starts_with("/grpc.") {
        return tracing::Span::none();
    }
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_request_id(value))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let peer = peer_address(request.extensions()).map(|address| address.to_string());
    // OpenTelemetry's RPC conventions: `/package.Service/Method` is named `package.Service/Method`.
    let (rpc_service, rpc_method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = tracing::info_span!(
        crate::audit::REQUEST_SPAN,
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = rpc_service,
        rpc.method = rpc_method,
        rpc.path = %path,
        service,
        request_id,
        peer,
        trace_id = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = telemetry::extract_http_parent(request.headers());
    let incoming = parent.span().span_context().trace_id();
    telemetry::set_span_parent(&span, parent);
    let trace_id = if incoming != opentelemetry::trace::TraceId::INVALID {
        incoming
    } else {
        // The span's own when spans are exported; otherwise one for the logs to share.
        let own = span.context().span().span_context().trace_id();
        if own != opentelemetry::trace::TraceId::INVALID {
            own
        } else {
            opentelemetry::trace::TraceId::from_bytes(uuid::Uuid::now_v7().into_bytes())
        }
    };
    span.record("trace_id", trace_id.to_string());
    span
}

/// The header a caller names its request with (kept across retries by `ics-client`).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A request id worth logging: short, and only characters that need no escaping.
fn is_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':'))
}

/// The caller's address, as tonic's listeners record it (plaintext or TLS).
fn peer_address(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
}

/// Cancels the returned token on the first SIGTERM or SIGINT. One handler for the process; every
/// component that must stop takes a clone (or a child) of the token. Must be called inside a
/// Tokio runtime.
pub fn shutdown_on_signals() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(signal, "shutdown requested");
        trigger.cancel();
    });
    shutdown
}

async fn wait_for_signal() -> &'static str {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

/// The routes behind admission (authentication and the tenant's limits, see
/// [`Authenticator::admit_call`]) and a per-message size and hygiene check. Health and
/// reflection are open to all.
#[derive(Clone)]
struct GrpcService {
    /// The platform service these routes belong to, for the metrics' `service` label.
    service: &'static str,
    routes: Routes,
    max_message_bytes: usize,
    hygiene: Arc<RequestHygiene>,
    authenticator: Option<Authenticator>,
}

impl Service<http::Request<tonic::body::Body>> for GrpcService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<http::Request<MessageSizeLimit>>::poll_ready(&mut self.routes, context)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let path = RpcPath(Arc::from(request.uri().path()));
        let max_message_bytes = self.max_message_bytes;
        let hygiene = Some((self.hygiene.clone(), path.clone()));
        let mut request = request
            .map(|body| MessageSizeLimit::new(body, max_message_bytes).with_hygiene(hygiene));
        let authenticator = match &self.authenticator {
            Some(authenticator) if !path.as_str().starts_with("/grpc.") => authenticator.clone(),
            _ => {
                let call = Call::start(self.service, path);
                return Box::pin(recording_status(call, self.routes.call(request)));
            }
        };
        // The routes were polled ready; the clone takes their place for the next call.
        let ready = self.routes.clone();
        let mut routes = std::mem::replace(&mut self.routes, ready);
        let call = Call::start(self.service, path.clone());
        Box::pin(recording_status(call, async move {
            let admitted = match authenticator
                .admit_call(request.headers(), path.as_str())
                .await
            {
                Ok(admitted) => admitted,
                Err(status) => return Ok(status.into_http()),
            };
            // Handlers have no use for the raw token, and without it they cannot log it.
            request.headers_mut().remove(http::header::AUTHORIZATION);
            request.extensions_mut().insert(admitted.principal);
            if let Some(expires_at) = admitted.expires_at {
                request.extensions_mut().insert(TokenExpiry(expires_at));
            }
            let response = routes.call(request).await;
            // The tenant's place is freed once the response (or a stream's head) is ready.
            drop(admitted.slot);
            response
        }))
    }
}

/// Records the call's gRPC status on its span (`rpc.grpc.status_code`), and marks the span as
/// an error when the server failed it. Following OpenTelemetry's conventions for server spans,
/// a client's mistake (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED…) is not the server's
/// error; UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS are.
/// A status that only a stream's trailers carry is not seen here.
///
/// The call is also counted in the process's metrics ([`crate::prometheus`]) with the code the
/// head carries: OK when it carries none, as a successful unary call's head does (its status
/// follows in the trailers).
async fn recording_status<F>(
    call: Call,
    response: F,
) -> Result<http::Response<tonic::body::Body>, Infallible>
where
    F: std::future::Future<Output = Result<http::Response<tonic::body::Body>, Infallible>>,
{
    let response = response.await;
    let code = response.as_ref().ok().and_then(|response| {
        response
            .headers()
            .get("grpc-status")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<i32>().ok())
    });
    if let Some(code) = code {
        let span = tracing::Span::current();
        span.record("rpc.grpc.status_code", code);
        if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
            span.record("otel.status_code", "ERROR");
        }
    }
    call.finish(code.unwrap_or(0));
    response
}

/// A call being answered, for the metrics.
struct Call {
    service: &'static str,
    path: RpcPath,
    started: std::time::Instant,
}

impl Call {
    fn start(service: &'static str, path: RpcPath) -> Call {
        Call {
            service,
            path,
            started: std::time::Instant::now(),
        }
    }

    /// Health checks and reflection are left out, as they are of the traces.
    fn finish(self, code: i32) {
        if self.path.as_str().starts_with("/grpc.") {
            return;
        }
        crate::prometheus::metrics().observe_call(
            self.service,
            self.path.as_str(),
            code,
            self.started.elapsed(),
        );
    }
}

/// gRPC frames each message as a 1-byte compression flag and a 4-byte big-endian length. This
/// body reads those prefixes as the bytes stream past and fails the call as soon as a declared
/// length exceeds the limit, before the message is buffered, decoded or seen by a handler.
/// Compressed messages are bounded too: the servers accept no compression encodings. Each
/// complete message also passes the [`RequestHygiene`] check before its last bytes go on.
struct MessageSizeLimit {
    inner: tonic::body::Body,
    max_message_bytes: usize,
    prefix: [u8; 5],
    prefix_filled: usize,
    payload_remaining: usize,
    refused: bool,
    hygiene: Option<(Arc<RequestHygiene>, RpcPath)>,
    /// The message being received, for the hygiene check.
    payload: Vec<u8>,
}

impl MessageSizeLimit {
    fn new(inner: tonic::body::Body, max_message_bytes: usize) -> Self {
        Self {
            inner,
            max_message_bytes,
            prefix: [0; 5],
            prefix_filled: 0,
            payload_remaining: 0,
            refused: false,
            hygiene: None,
            payload: Vec::new(),
        }
    }

    fn with_hygiene(mut self, hygiene: Option<(Arc<RequestHygiene>, RpcPath)>) -> Self {
        self.hygiene = hygiene;
        self
    }

    /// The message just completed: checked, then forgotten.
    fn finish_message(&mut self) -> Result<(), Status> {
        let checked = match &self.hygiene {
            // A compressed message cannot be read here; the servers refuse compression anyway.
            Some((hygiene, path)) if self.prefix[0] == 0 => {
                hygiene.check(path.as_str(), &self.payload)
            }
            _ => Ok(()),
        };
        self.payload.clear();
        checked
    }

    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.payload_remaining > 0 {
                let skipped = self.payload_remaining.min(data.len());
                if self.hygiene.is_some() {
                    self.payload.extend_from_slice(&data[..skipped]);
                }
                self.payload_remaining -= skipped;
                data = &data[skipped..];
                if self.payload_remaining == 0 {
                    self.finish_message()?;
                }
                continue;
            }
            let copied = (self.prefix.len() - self.prefix_filled).min(data.len());
            self.prefix[self.prefix_filled..self.prefix_filled + copied]
                .copy_from_slice(&data[..copied]);
            self.prefix_filled += copied;
            data = &data[copied..];
            if self.prefix_filled < self.prefix.len() {
                continue;
            }
            self.prefix_filled = 0;
            let [_, a, b, c, d] = self.prefix;
            let declared = u32::from_be_bytes([a, b, c, d]);
            let declared = usize::try_from(declared).unwrap_or(usize::MAX);
            if declared > self.max_message_bytes {
                return Err(Status::resource_exhausted(format!(
                    "request message of {declared} bytes exceeds the limit of {} bytes",
                    self.max_message_bytes
                )));
            }
            self.payload_remaining = declared;
            if declared == 0 {
                self.finish_message()?;
            }
        }
        Ok(())
    }
}

impl HttpBody for MessageSizeLimit {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.refused {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(context)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let Some(data) = frame.data_ref() else {
            return Poll::Ready(Some(Ok(frame)));
        };
        if let Err(status) = this.scan(data) {
            this.refused = true;
            tracing::info!(code = ?status.code(), reason = status.message(), "request refused");
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload_length: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&payload_length.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, payload_length as usize));
        bytes
    }

    #[test]
    fn messages_within_the_limit_pass_however_they_are_split() {
        let mut limit = MessageSizeLimit::new(tonic::body::Body::empty(), 10);
        let stream: Vec<u8> = [frame(10), frame(0), frame(3)].concat();
        for chunk in stream.chunks(3) {
            assert!(limit.scan(chunk).is_ok());
        }
        assert_eq!(limit.payload_remaining, 0);
        assert_eq!(limit.prefix_filled, 0);
    }

    #[test]
    fn oversized_message_is_refused_from_its_prefix_alone() {
        let mut limit = MessageSizeLimit::new(tonic::body::Body::empty(), 10);
        assert!(limit.scan(&frame(4)).is_ok());
        let mut oversized_prefix = vec![0];
        oversized_prefix.extend_from_slice(&11u32.to_be_bytes());
        assert!(limit.scan(&oversized_prefix[..2]).is_ok());
        let refused = limit
            .scan(&oversized_prefix[2..])
            .expect_err("declared length exceeds the limit");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    }
}
