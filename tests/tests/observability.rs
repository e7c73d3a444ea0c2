//! What an operator watches: every process's Prometheus page, and (below) the traces of a
//! command through the log, the relay and the projections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ics_auth::Principal;
use ics_e2e::{Deployment, RawCodec, authorized, channel, http_get, options, prometheus_sample};
use ics_proto::events::v1::OrganisationKind;
use ics_proto::trusts::v1::RegisterOrganisationRequest;
use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
use tonic::Code;

async fn register(
    trusts: &mut TrustsServiceClient<tonic::transport::Channel>,
    token: &str,
    ods_code: &str,
) -> Result<(), tonic::Status> {
    trusts
        .register_organisation(authorized(
            token,
            RegisterOrganisationRequest {
                options: options(),
                ods_code: ods_code.into(),
                name: format!("Organisation {ods_code}"),
                kind: OrganisationKind::Icb as i32,
            },
        ))
        .await
        .map(|_| ())
}

/// `icsd all` serves one page with every service's figures, each labelled with its service;
/// a process of one service serves its own.
#[tokio::test]
async fn every_process_serves_prometheus_metrics() {
    let deployment = Deployment::new().await;
    let all = deployment.start("all").await;
    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(channel(&all.url).await);
    register(&mut trusts, &operator, "QOB").await.unwrap();
    register(&mut trusts, &operator, "QOC").await.unwrap();
    let refused = register(&mut trusts, &operator, "not an ods code")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    // A method no service has: counted, but not under a name the caller chose.
    let mut grpc = tonic::client::Grpc::new(channel(&all.url).await);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/ics.trusts.v1.TrustsService/NoSuchMethodXyz",
    );
    let answer: Result<tonic::Response<Vec<u8>>, _> = grpc
        .unary(authorized(&operator, Vec::new()), path, RawCodec)
        .await;
    assert_eq!(answer.unwrap_err().code(), Code::Unimplemented);

    // The relays publish and the projections apply the two registrations; the page reads both at
    // the scrape.
    let mut page = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let (status, body) = http_get(&all.dashboard_url, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        page = body;
        // Every projection, the trusts service's own list among them, and every relay.
        let lagging = page.lines().any(|line| {
            (line.starts_with("ics_projection_lag_events{")
                || line.starts_with("ics_relay_unpublished_events{"))
                && !line.ends_with(" 0")
        });
        if !lagging && page.contains("ics_projection_lag_events{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let method = "ics.trusts.v1.TrustsService/RegisterOrganisation";
    assert_eq!(
        prometheus_sample(
            &page,
            "ics_rpc_requests_total",
            &[("service", "trusts"), ("method", method), ("code", "Ok")]
        ),
        Some(2.0),
        "{page}"
    );
    assert_eq!(
        prometheus_sample(
            &page,
            "ics_rpc_requests_total",
            &[
                ("service", "trusts"),
                ("method", method),
                ("code", "InvalidArgument")
            ]
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        prometheus_sample(
            &page,
            "ics_rpc_requests_total",
            &[("method", "unknown"), ("code", "Unimplemented")]
        ),
        Some(1.0),
        "{page}"
    );
    assert!(!page.contains("NoSuchMethodXyz"), "{page}");
    assert_eq!(
        prometheus_sample(
            &page,
            "ics_rpc_duration_seconds_count",
            &[("service", "trusts"), ("method", method), ("code", "Ok")]
        ),
        Some(2.0)
    );
    assert_eq!(
        prometheus_sample(
            &page,
            "ics_rpc_duration_seconds_bucket",
            &[("method", method), ("code", "Ok"), ("le", "+Inf")]
        ),
        Some(2.0)
    );
    // Every service's pool, the relays of the three services that record events, and each
    // projection's lag and dead letters.
    for service in ["trusts", "workshops", "metrics", "reporting"] {
        assert!(
            prometheus_sample(
                &page,
                "ics_db_pool_max_connections",
                &[("service", service)]
            )
            .is_some_and(|max| max >= 1.0),
            "{service}: {page}"
        );
        for state in ["idle", "in_use"] {
            assert!(
                prometheus_sample(
                    &page,
                    "ics_db_pool_connections",
                    &[("service", service), ("state", state)]
                )
                .is_some(),
                "{service} {state}"
            );
        }
    }
    for service in ["trusts", "workshops", "metrics"] {
        assert_eq!(
            prometheus_sample(
                &page,
                "ics_relay_unpublished_events",
                &[("service", service)]
            ),
            Some(0.0),
            "{service}: {page}"
        );
        assert_eq!(
            prometheus_sample(
                &page,
                "ics_relay_oldest_unpublished_age_seconds",
                &[("service", service)]
            ),
            Some(0.0)
        );
        // Nothing unpublished, so nothing held back.
        for metric in [
            "ics_relay_held_back_events",
            "ics_relay_oldest_held_back_age_seconds",
        ] {
            assert_eq!(
                prometheus_sample(&page, metric, &[("service", service)]),
                Some(0.0),
                "{metric} {service}: {page}"
            );
        }
    }
    for (service, projection, source) in [
        ("reporting", "overview", "trusts"),
        ("reporting", "outcomes", "workshops"),
        ("reporting", "measures", "metrics"),
        ("workshops", "references", "trusts"),
        ("metrics", "metrics_references", "trusts"),
        ("trusts", "organisation_list", "trusts"),
        ("workshops", "workshop_list", "workshops"),
    ] {
        let labels = [
            ("service", service),
            ("projection", projection),
            ("source", source),
        ];
        assert_eq!(
            prometheus_sample(&page, "ics_projection_lag_events", &labels),
            Some(0.0),
            "{projection}: {page}"
        );
        assert_eq!(
            prometheus_sample(&page, "ics_projection_dead_letters", &labels),
            Some(0.0)
        );
    }
    assert!(page.trim_end().ends_with("# EOF"), "an OpenMetrics page");

    // The Grafana dashboard and the Prometheus scrape configuration in deploy/ ask for what the
    // processes serve: every metric a panel queries is on the page, and Prometheus scrapes each
    // service on the port compose gives its HTTP surface.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/dashboards/ics-platform.json")).unwrap(),
    )
    .unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for metric in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("ics_"))
            {
                queried += 1;
                assert!(
                    page.lines().any(|line| line.starts_with(metric)),
                    "panel {} queries {metric}, which no process serves",
                    panel["title"]
                );
            }
        }
    }
    assert!(queried >= 10, "{queried} metrics queried");
    let scrape = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml")).unwrap();
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    for (service, port) in [
        ("trusts", 8081),
        ("workshops", 8082),
        ("metrics", 8083),
        ("reporting", 8080),
    ] {
        assert!(
            scrape.contains(&format!("\"{service}:{port}\"")),
            "{service}"
        );
        assert!(
            compose.contains(&format!("ICS_HTTP_LISTEN: 0.0.0.0:{port}")),
            "compose serves {service}'s metrics on {port}"
        );
    }

    // A process of one service serves its own page.
    let alone = deployment.start("trusts").await;
    let (status, own) = http_get(&alone.dashboard_url, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        prometheus_sample(
            &own,
            "ics_relay_unpublished_events",
            &[("service", "trusts")]
        )
        .is_some()
    );
    assert!(
        prometheus_sample(
            &own,
            "ics_db_pool_max_connections",
            &[("service", "reporting")]
        )
        .is_none()
    );
    deployment.finish().await;
}

/// A transaction left open anywhere on the PostgreSQL server holds back every event committed
/// after it began, of every service: the relay must not overtake it. The page says how many
/// are held back and for how long, and clears once the transaction ends and the relay
/// publishes them. On a PostgreSQL of its own, so that only this test's transaction holds
/// anything back.
#[tokio::test]
async fn the_page_shows_events_held_back_behind_an_open_transaction() {
    let postgres = ics_testing::PrivatePostgres::start();
    let database = ics_testing::TestDatabase::create_on(&postgres.server_url()).await;
    let deployment = Deployment::on(database, ics_testing::nats_url());
    let server = deployment.start("trusts").await;
    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let sample = |page: &str, metric: &str| {
        prometheus_sample(page, metric, &[("service", "trusts")])
            .unwrap_or_else(|| panic!("{metric}: {page}"))
    };
    let scrape = || async {
        let (status, page) = http_get(&server.dashboard_url, "/metrics").await;
        assert_eq!(status, 200, "{page}");
        page
    };

    register(&mut trusts, &operator, "QOD").await.unwrap();
    // Another database on the same server: the relay's horizon is the whole cluster's.
    let elsewhere = sqlx::PgPool::connect(&postgres.url("postgres"))
        .await
        .unwrap();
    let mut open = elsewhere.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *open)
        .await
        .unwrap();
    register(&mut trusts, &operator, "QOE").await.unwrap();
    register(&mut trusts, &operator, "QOF").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let page = scrape().await;
    assert_eq!(sample(&page, "ics_relay_held_back_events"), 2.0, "{page}");
    let age = sample(&page, "ics_relay_oldest_held_back_age_seconds");
    assert!((1.4..60.0).contains(&age), "held back for {age} s");
    assert!(sample(&page, "ics_relay_unpublished_events") >= 2.0);

    open.rollback().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut page = scrape().await;
    while sample(&page, "ics_relay_unpublished_events") > 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not published: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        page = scrape().await;
    }
    assert_eq!(sample(&page, "ics_relay_held_back_events"), 0.0);
    assert_eq!(sample(&page, "ics_relay_oldest_held_back_age_seconds"), 0.0);
    elsewhere.close().await;
    deployment.finish().await;
}

mod traces {
    use std::collections::HashMap;
    use std::time::Duration;

    use ics_auth::Principal;
    use ics_e2e::{Deployment, authorized, channel, options};
    use ics_proto::events::v1::OrganisationKind;
    use ics_proto::trusts::v1::RegisterOrganisationRequest;
    use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
    use tokio::sync::mpsc;

    /// A span as the collector received it, with the `service.name` of its resource.
    #[derive(Debug, Clone)]
    struct Received {
        service_name: String,
        trace_id: String,
        span_id: String,
        parent_span_id: String,
        name: String,
        kind: SpanKind,
        attributes: HashMap<String, String>,
        error: bool,
    }

    /// An OTLP/gRPC collector in the test process: passes on every span it is sent.
    struct Collector(mpsc::UnboundedSender<Received>);

    fn text(value: Option<&AnyValue>) -> String {
        match value.and_then(|value| value.value.as_ref()) {
            Some(any_value::Value::StringValue(text)) => text.clone(),
            Some(any_value::Value::IntValue(number)) => number.to_string(),
            Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        }
    }

    fn attributes(attributes: &[KeyValue]) -> HashMap<String, String> {
        attributes
            .iter()
            .map(|attribute| (attribute.key.clone(), text(attribute.value.as_ref())))
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            for resource_spans in request.into_inner().resource_spans {
                let resource = resource_spans
                    .resource
                    .map(|resource| attributes(&resource.attributes))
                    .unwrap_or_default();
                let service_name = resource.get("service.name").cloned().unwrap_or_default();
                for span in resource_spans
                    .scope_spans
                    .into_iter()
                    .flat_map(|scope| scope.spans)
                {
                    let _ = self.0.send(Received {
                        service_name: service_name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name.clone(),
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        attributes: attributes(&span.attributes),
                        error: span
                            .status
                            .is_some_and(|status| status.code == StatusCode::Error as i32),
                    });
                }
            }
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// One trace from a hospital system's call to each projection that applies its event:
    /// the call's server span (under the trusts service's own name although `icsd all` runs
    /// every service), the append, the relay's publish (PRODUCER) and each projection's apply
    /// (CONSUMER, under its own service's name), each the child of the one before, with
    /// OpenTelemetry's RPC and messaging attributes; and a failed call's span has error status.
    #[tokio::test]
    async fn one_trace_runs_from_a_call_through_the_append_the_publish_and_every_projection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let collector = listener.local_addr().unwrap();
        let (sender, mut received) = mpsc::unbounded_channel();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Collector(sender)))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let mut deployment = Deployment::new().await;
        deployment.environment = vec![
            ("ICS_OTLP_ENDPOINT".into(), format!("http://{collector}")),
            // Batches leave every 100 ms rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ];
        let server = deployment.start("all").await;
        let operator = deployment.token(&Principal::Operator);

        let trace_id = uuid::Uuid::now_v7().simple().to_string();
        let caller_span = "00f067aa0ba902b7";
        let mut request = authorized(
            &operator,
            RegisterOrganisationRequest {
                options: options(),
                ods_code: "QOB".into(),
                name: "Traced ICB".into(),
                kind: OrganisationKind::Icb as i32,
            },
        );
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
        );
        let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
        trusts.register_organisation(request).await.unwrap();
        // A call that fails on the server's side: UNIMPLEMENTED, an error in the conventions.
        let mut grpc = tonic::client::Grpc::new(channel(&server.url).await);
        grpc.ready().await.unwrap();
        let failed: Result<tonic::Response<Vec<u8>>, _> = grpc
            .unary(
                authorized(&operator, Vec::new()),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/ics.trusts.v1.TrustsService/NoSuchMethod",
                ),
                ics_e2e::RawCodec,
            )
            .await;
        assert_eq!(failed.unwrap_err().code(), tonic::Code::Unimplemented);

        // The four projections of the organisation registry each apply the event.
        let consumers = [
            ("ics-reporting", "overview"),
            ("ics-workshops", "references"),
            ("ics-metrics", "metrics_references"),
            ("ics-trusts", "organisation_list"),
        ];
        let mut spans: Vec<Received> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let complete = |spans: &[Received]| {
            let ours = spans.iter().filter(|span| span.trace_id == trace_id);
            ours.filter(|span| span.kind == SpanKind::Consumer).count() >= consumers.len()
                && spans.iter().any(|span| span.name.ends_with("NoSuchMethod"))
        };
        while !complete(&spans) {
            match tokio::time::timeout_at(deadline, received.recv()).await {
                Ok(Some(span)) => spans.push(span),
                _ => panic!("the trace is incomplete after 30 s: {spans:#?}"),
            }
        }
        let ours: Vec<&Received> = spans
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .collect();
        let one = |kind: SpanKind, what: &str| -> &Received {
            let found: Vec<&&Received> = ours.iter().filter(|span| span.kind == kind).collect();
            assert_eq!(found.len(), 1, "one {what} span: {ours:#?}");
            found[0]
        };

        let call = one(SpanKind::Server, "server");
        assert_eq!(
            call.parent_span_id, caller_span,
            "the caller's span is the parent"
        );
        assert_eq!(call.service_name, "ics-trusts");
        assert_eq!(
            call.name,
            "ics.trusts.v1.TrustsService/RegisterOrganisation"
        );
        assert_eq!(call.attributes["rpc.system"], "grpc");
        assert_eq!(
            call.attributes["rpc.service"],
            "ics.trusts.v1.TrustsService"
        );
        assert_eq!(call.attributes["rpc.method"], "RegisterOrganisation");
        assert!(!call.error);

        let append = ours
            .iter()
            .find(|span| span.name.starts_with("append "))
            .unwrap_or_else(|| panic!("no append span: {ours:#?}"));
        assert_eq!(append.parent_span_id, call.span_id);
        assert_eq!(append.service_name, "ics-trusts");
        assert_eq!(append.attributes["db.system.name"], "postgresql");

        let publish = one(SpanKind::Producer, "producer");
        assert_eq!(publish.parent_span_id, append.span_id);
        assert_eq!(publish.service_name, "ics-trusts");
        assert_eq!(publish.attributes["messaging.system"], "nats");
        assert_eq!(publish.attributes["messaging.operation.type"], "send");
        let subject = &publish.attributes["messaging.destination.name"];
        assert!(subject.contains(".trusts."), "{subject}");
        assert!(!publish.attributes["messaging.message.id"].is_empty());

        for (service_name, projection) in consumers {
            let apply = ours
                .iter()
                .find(|span| {
                    span.kind == SpanKind::Consumer
                        && span.attributes.get("projection").map(String::as_str) == Some(projection)
                })
                .unwrap_or_else(|| panic!("no apply span of {projection}: {ours:#?}"));
            assert_eq!(apply.parent_span_id, publish.span_id, "{projection}");
            assert_eq!(apply.service_name, service_name, "{projection}");
            assert_eq!(apply.attributes["messaging.operation.type"], "process");
            assert_eq!(&apply.attributes["messaging.destination.name"], subject);
            assert_eq!(
                apply.attributes["messaging.message.id"],
                publish.attributes["messaging.message.id"]
            );
        }

        let unimplemented = spans
            .iter()
            .find(|span| span.name.ends_with("NoSuchMethod"))
            .unwrap();
        assert!(unimplemented.error, "{unimplemented:?}");
        assert_eq!(unimplemented.service_name, "ics-trusts");
        deployment.finish().await;
    }
}
