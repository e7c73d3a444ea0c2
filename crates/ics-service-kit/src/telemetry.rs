//! Logging, tracing, and W3C trace context across gRPC and NATS.
//!
//! [`init`] installs a `tracing` subscriber (text or JSON lines, filtered by `ICS_LOG`) and,
//! when `ICS_OTLP_ENDPOINT` is set, exports spans over OTLP/gRPC.
//!
//! One trace runs from a hospital system's call to the projection a board reads (architecture
//! decision 9). The pieces a service uses:
//!
//! - incoming gRPC: nothing to do. [`crate::server::serve`] opens a span per call whose parent
//!   is the caller's `traceparent` metadata ([`extract_grpc_parent`]).
//! - outgoing gRPC: [`inject_grpc_metadata`] on the request's metadata.
//! - appending an event: store [`current_traceparent`] in the event's metadata; the relay then
//!   publishes it with [`inject_nats_headers`].
//! - consuming an event: open a span for applying it and give it the publisher's context:
//!
//! ```no_run
//! # fn apply(message: &async_nats::jetstream::Message) {
//! use ics_service_kit::telemetry;
//! let span = tracing::info_span!("apply_event", subject = %message.subject);
//! if let Some(headers) = &message.headers {
//!     telemetry::set_span_parent(&span, telemetry::extract_nats_parent(headers));
//! }
//! let _entered = span.enter();
//! # }
//! ```
//!
//! The spans of one command: the call's server span ([`crate::server`]), `append <command>`
//! ([`crate::command::execute`], whose context the events store), the relay's `publish
//! <subject>` (kind PRODUCER, whose context the NATS message carries) and each projection's
//! `process <projection>` (kind CONSUMER), with OpenTelemetry's `rpc.*` and `messaging.*`
//! attributes. Every one names its `service`, by which `ExportByService` gives it its own
//! `service.name`, so `icsd all` reports four services, not one.
//!
//! Without an OTLP endpoint no OpenTelemetry layer is installed: spans carry no trace ids, so
//! [`current_traceparent`] returns empty strings and nothing is propagated. That keeps the hot
//! path free of span bookkeeping when nobody collects traces.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::OnceLock;

use anyhow::Context as _;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::audit::AuditLayer;
use crate::config::{LogFormat, TelemetryConfig};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Set once the process-wide subscriber is ours; later `init` calls (the `all` mode, tests)
/// then return a no-op guard instead of building an exporter nobody would feed.
static INSTALLED: OnceLock<()> = OnceLock::new();

/// Keeps the span exporter alive; call [`TelemetryGuard::shutdown`] before exiting so that
/// buffered spans are flushed.
#[derive(Debug, Default)]
#[must_use = "dropping the guard without shutdown() may lose buffered spans"]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops the span exporter. Async because flushing waits for the OTLP client,
    /// which runs on the Tokio runtime: blocking a runtime thread on it could deadlock.
    pub async fn shutdown(self) {
        let Some(tracer_provider) = self.tracer_provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || tracer_provider.shutdown()).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "flushing spans failed"),
            Err(error) => tracing::warn!(%error, "flushing spans panicked"),
        }
    }
}

/// Installs logging (and span export when configured) for this process. `service_name` is
/// reported as `service.name` unless the config overrides it. Calling it again is harmless.
pub fn init(config: &TelemetryConfig, service_name: &str) -> anyhow::Result<TelemetryGuard> {
    // Services propagate W3C context whether or not spans are exported here, so that a
    // downstream service with an exporter still joins the trace.
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    // The log level applies to each output apart, not to the whole subscriber: the audit trail
    // takes its events and the calls' spans whatever ICS_LOG says.
    let filter = || {
        EnvFilter::try_new(&config.log_filter)
            .with_context(|| format!("invalid log filter {:?} (ICS_LOG)", config.log_filter))
    };
    filter()?;
    if INSTALLED.get().is_some() {
        return Ok(TelemetryGuard::default());
    }

    let service_name = config.service_name.as_deref().unwrap_or(service_name);

    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    let fmt_layer = tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal());
    let fmt_layer = match config.log_format {
        LogFormat::Text => fmt_layer.boxed(),
        LogFormat::Json => fmt_layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    layers.push(fmt_layer.with_filter(filter()?).boxed());
    layers.push(
        AuditLayer
            .with_filter(tracing_subscriber::filter::filter_fn(AuditLayer::wants))
            .boxed(),
    );

    let tracer_provider = match &config.otlp_endpoint {
        Some(endpoint) => {
            let otlp = || {
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.clone())
                    .build()
                    .with_context(|| format!("cannot build the OTLP exporter for {endpoint}"))
            };
            // Each service's spans under its own service.name (`icsd all` runs four), unless
            // ICS_SERVICE_NAME names them all.
            let services = if config.service_name.is_some() {
                Vec::new()
            } else {
                crate::SERVICES
                    .iter()
                    .map(|service| Ok((service.to_string(), otlp()?)))
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let exporter = ExportByService {
                services,
                process: otlp()?,
            };
            let tracer_provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    Resource::builder()
                        .with_service_name(service_name.to_owned())
                        .build(),
                )
                .build();
            let tracer = tracer_provider.tracer(service_name.to_owned());
            // Traces do not follow the log level: an operator who logs only warnings still gets
            // every call's spans. Spans at info and above, and warnings and errors as their
            // events; debug spans and the chatter of libraries stay out.
            layers.push(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                        let most_detailed = if metadata.is_span() {
                            tracing::Level::INFO
                        } else {
                            tracing::Level::WARN
                        };
                        *metadata.level() <= most_detailed
                    }))
                    .boxed(),
            );
            Some(tracer_provider)
        }
        None => None,
    };

    let installed = tracing_subscriber::registry().with(layers).try_init();
    if installed.is_err() {
        // Someone (a test harness, an embedding binary) already owns the global subscriber;
        // their choice stands and ours would never see a span.
        return Ok(TelemetryGuard::default());
    }
    let _ = INSTALLED.set(());

    if let Some(tracer_provider) = &tracer_provider {
        opentelemetry::global::set_tracer_provider(tracer_provider.clone());
        tracing::info!(
            service = service_name,
            otlp_endpoint = config.otlp_endpoint.as_deref().unwrap_or_default(),
            "exporting spans"
        );
    }
    Ok(TelemetryGuard { tracer_provider })
}

/// Sends each span under the `service.name` of the platform service that made it: the span's
/// `service` field (every span of a call, an append, a publish or a projection's apply carries
/// one), as `ics-<service>`. Spans of no service go under the process's name. OpenTelemetry
/// gives a resource per exporter, so each service has its own exporter to the same endpoint.
#[derive(Debug)]
struct ExportByService {
    services: Vec<(String, opentelemetry_otlp::SpanExporter)>,
    process: opentelemetry_otlp::SpanExporter,
}

impl opentelemetry_sdk::trace::SpanExporter for ExportByService {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let mut groups: Vec<Vec<opentelemetry_sdk::trace::SpanData>> =
            (0..=self.services.len()).map(|_| Vec::new()).collect();
        for span in batch {
            let service = span
                .attributes
                .iter()
                .find(|attribute| attribute.key.as_str() == "service")
                .map(|attribute| attribute.value.as_str());
            let index = service
                .and_then(|service| {
                    self.services
                        .iter()
                        .position(|(name, _)| name.as_str() == service.as_ref())
                })
                .unwrap_or(self.services.len());
            groups[index].push(span);
        }
        for (index, group) in groups.into_iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            match self.services.get(index) {
                Some((_, exporter)) => exporter.export(group).await?,
                None => self.process.export(group).await?,
            }
        }
        Ok(())
    }

    fn shutdown_with_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        for (_, exporter) in &mut self.services {
            exporter.shutdown_with_timeout(timeout)?;
        }
        self.process.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> opentelemetry_sdk::error::OTelSdkResult {
        for (_, exporter) in &mut self.services {
            exporter.force_flush()?;
        }
        self.process.force_flush()
    }

    /// The provider's resource for the process; each service's is the same with its own name.
    fn set_resource(&mut self, resource: &Resource) {
        for (service, exporter) in &mut self.services {
            let own =
                Resource::builder_empty()
                    .with_attributes(resource.iter().map(|(key, value)| {
                        opentelemetry::KeyValue::new(key.clone(), value.clone())
                    }))
                    .with_service_name(format!("ics-{service}"))
                    .build();
            exporter.set_resource(&own);
        }
        self.process.set_resource(resource);
    }
}

/// The current span's W3C `(traceparent, tracestate)`, or two empty strings when there is no
/// valid span context (no OpenTelemetry layer, or outside any span). Stored in event metadata
/// so that consumers can continue the trace.
pub fn current_traceparent() -> (String, String) {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return (String::new(), String::new());
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    (
        carrier.remove(TRACEPARENT).unwrap_or_default(),
        carrier.remove(TRACESTATE).unwrap_or_default(),
    )
}

/// The OpenTelemetry context described by a stored `traceparent`/`tracestate` pair (e.g. from
/// event metadata); an empty context when `traceparent` is empty or invalid.
pub fn context_from_traceparent(traceparent: &str, tracestate: &str) -> Context {
    if traceparent.is_empty() {
        return Context::new();
    }
    let mut carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    if !tracestate.is_empty() {
        carrier.insert(TRACESTATE.to_owned(), tracestate.to_owned());
    }
    TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier)
}

/// The caller's trace context from gRPC request metadata.
pub fn extract_grpc_parent(metadata: &MetadataMap) -> Context {
    TraceContextPropagator::new()
        .extract_with_context(&Context::new(), &MetadataExtractor(metadata))
}

/// Same as [`extract_grpc_parent`], on raw HTTP headers (used by the server before tonic has
/// turned them into metadata).
pub(crate) fn extract_http_parent(headers: &tonic::codegen::http::HeaderMap) -> Context {
    TraceContextPropagator::new()
        .extract_with_context(&Context::new(), &HttpHeaderExtractor(headers))
}

/// Writes the current span's trace context into outgoing gRPC request metadata; writes nothing
/// when there is no valid span context.
pub fn inject_grpc_metadata(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
    }
}

/// Puts a stored trace context into NATS message headers. Empty values are left out.
///
/// With async-nats, give the headers to the publish builder *before* `.message_id(..)`, or the
/// message id is silently dropped.
pub fn inject_nats_headers(
    headers: &mut async_nats::HeaderMap,
    traceparent: &str,
    tracestate: &str,
) {
    if !traceparent.is_empty() {
        headers.insert(TRACEPARENT, traceparent);
    }
    if !tracestate.is_empty() {
        headers.insert(TRACESTATE, tracestate);
    }
}

/// The publisher's trace context from NATS message headers.
pub fn extract_nats_parent(headers: &async_nats::HeaderMap) -> Context {
    TraceContextPropagator::new().extract_with_context(&Context::new(), &NatsExtractor(headers))
}

/// Makes `parent` the parent of `span`, when it carries a valid remote span. Must be called
/// before the span is first entered; later calls, or calls without an OpenTelemetry layer,
/// change nothing.
pub fn set_span_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Makes `span` a child of the trace described by a stored `traceparent`/`tracestate` pair: how
/// consumers of events continue the trace of the command that recorded them.
pub fn continue_stored_trace(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    set_span_parent(span, context_from_traceparent(traceparent, tracestate));
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                tonic::metadata::KeyRef::Ascii(key) => Some(key.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

struct HttpHeaderExtractor<'a>(&'a tonic::codegen::http::HeaderMap);

impl Extractor for HttpHeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
}

struct NatsExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(key, _)| key.as_ref()).collect()
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(key) = MetadataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        if let Ok(value) = MetadataValue::try_from(value.as_str()) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEPARENT_SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn trace_id_of(context: &Context) -> String {
        context.span().span_context().trace_id().to_string()
    }

    #[test]
    fn nats_headers_carry_the_trace_context_across() {
        let mut headers = async_nats::HeaderMap::new();
        inject_nats_headers(&mut headers, TRACEPARENT_SAMPLE, "vendor=opaque");

        let parent = extract_nats_parent(&headers);

        assert!(parent.span().span_context().is_remote());
        assert_eq!(trace_id_of(&parent), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            parent.span().span_context().trace_state().header(),
            "vendor=opaque"
        );
    }

    #[test]
    fn empty_trace_context_adds_no_headers() {
        let mut headers = async_nats::HeaderMap::new();
        inject_nats_headers(&mut headers, "", "");
        assert!(headers.is_empty());
        assert!(
            !extract_nats_parent(&headers)
                .span()
                .span_context()
                .is_valid()
        );
    }

    #[test]
    fn grpc_metadata_parent_is_extracted() {
        let mut metadata = MetadataMap::new();
        MetadataInjector(&mut metadata).set(TRACEPARENT, TRACEPARENT_SAMPLE.to_owned());
        let parent = extract_grpc_parent(&metadata);
        assert_eq!(trace_id_of(&parent), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn stored_traceparent_round_trips_and_garbage_is_ignored() {
        let context = context_from_traceparent(TRACEPARENT_SAMPLE, "");
        assert_eq!(trace_id_of(&context), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(
            !context_from_traceparent("00-not-a-trace", "")
                .span()
                .span_context()
                .is_valid()
        );
    }

    #[test]
    fn a_span_continues_the_trace_it_was_given() {
        let tracer = SdkTracerProvider::builder().build().tracer("test");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("apply_event");
            set_span_parent(&span, context_from_traceparent(TRACEPARENT_SAMPLE, ""));
            let _entered = span.enter();

            let (traceparent, _tracestate) = current_traceparent();

            let continued = context_from_traceparent(&traceparent, "");
            assert_eq!(trace_id_of(&continued), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(
                traceparent, TRACEPARENT_SAMPLE,
                "a new span id within the trace"
            );
        });
    }

    #[test]
    fn no_span_context_means_empty_traceparent() {
        assert_eq!(current_traceparent(), (String::new(), String::new()));
    }
}
