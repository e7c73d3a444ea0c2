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

    // The projections apply the two registrations; the page reads their lag at the scrape.
    let mut page = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let (status, body) = http_get(&all.dashboard_url, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        page = body;
        let lagging = ["reporting", "workshops", "metrics"].iter().any(|service| {
            page.lines().any(|line| {
                line.starts_with("ics_projection_lag_events{")
                    && line.contains(&format!("service=\"{service}\""))
                    && !line.ends_with(" 0")
            })
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
    }
    for (service, projection, source) in [
        ("reporting", "overview", "trusts"),
        ("reporting", "outcomes", "workshops"),
        ("reporting", "measures", "metrics"),
        ("workshops", "references", "trusts"),
        ("metrics", "metrics_references", "trusts"),
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
