//! `telemetry::init` owns the process-wide subscriber, so it is exercised in its own test binary.

use std::time::Duration;

use ics_service_kit::config::TelemetryConfig;
use ics_service_kit::telemetry;

#[tokio::test]
async fn init_twice_with_an_exporter_then_shutdown_without_hanging() {
    let config = TelemetryConfig {
        // Nothing listens there: export fails, and shutdown must still come back.
        otlp_endpoint: Some("http://127.0.0.1:9".to_owned()),
        ..TelemetryConfig::default()
    };
    let guard = telemetry::init(&config, "kit-test").expect("first init installs");
    let second = telemetry::init(&config, "kit-test").expect("second init is harmless");

    let span = tracing::info_span!("exported");
    let traceparent = span.in_scope(|| telemetry::current_traceparent().0);
    assert!(traceparent.starts_with("00-"), "{traceparent:?}");

    tokio::time::timeout(Duration::from_secs(20), async {
        second.shutdown().await;
        guard.shutdown().await;
    })
    .await
    .expect("shutdown returns on a current-thread runtime");
}

#[test]
fn invalid_log_filter_is_reported() {
    let config = TelemetryConfig {
        log_filter: "info,[unclosed".to_owned(),
        ..TelemetryConfig::default()
    };
    let error = telemetry::init(&config, "kit-test").expect_err("filter does not parse");
    assert!(error.to_string().contains("ICS_LOG"));
}
