//! The board dashboard in a real browser (Debian's chromium, driven by playwright-core from
//! `tests/browser/dashboard.mjs`) against the real binaries: sign-in, tenancy, table semantics,
//! keyboard use, and a rating published over gRPC appearing on the open page within a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ics_auth::Principal;
use ics_e2e::{Deployment, authorized, channel, http_get, http_get_as};
use ics_proto::date::from_naive;
use ics_proto::events::v1::{CqcRating, CqcRatings, OrganisationKind};
use ics_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use ics_proto::reporting::v1::{GetOverviewRequest, Scope, scope};
use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
use ics_proto::trusts::v1::{
    JoinProgrammeRequest, LinkOrganisationRequest, PublishCqcRatingRequest,
    RegisterOrganisationRequest, RegisterProgrammeRequest,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WEST_YORKSHIRE: [(&str, &str); 6] = [
    ("RR8", "Leeds Teaching Hospitals NHS Trust"),
    ("RAE", "Bradford Teaching Hospitals NHS Foundation Trust"),
    ("RXF", "Mid Yorkshire Teaching NHS Trust"),
    ("RWY", "Calderdale and Huddersfield NHS Foundation Trust"),
    ("RCF", "Airedale NHS Foundation Trust"),
    ("RCD", "Harrogate and District NHS Foundation Trust"),
];
const SURREY: (&str, &str) = ("RTP", "Surrey and Sussex Healthcare NHS Trust");
const DATA_LABEL: &str = "SAMPLE data for demonstration only";
const FFT: &str = "FFT_POSITIVE";
const FFT_NAME: &str = "Friends and Family Test % positive";
const PROGRAMME_NAME: &str = "West Yorkshire improvement programme";

fn browser_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/browser"))
}

#[tokio::test]
async fn a_board_reads_its_live_ics_overview_in_the_browser() {
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test does)"
    );
    let mut deployment = Deployment::new().await;
    deployment
        .environment
        .push(("ICS_DATA_LABEL".into(), DATA_LABEL.into()));
    let server = deployment.start("all").await;
    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let register =
        |ods_code: &str, name: &str, kind: OrganisationKind| RegisterOrganisationRequest {
            options: ics_e2e::options(),
            ods_code: ods_code.into(),
            name: name.into(),
            kind: kind as i32,
        };
    for (ods_code, name, kind) in [
        ("QWO", "NHS West Yorkshire ICB", OrganisationKind::Icb),
        ("QYG", "NHS Surrey Heartlands ICB", OrganisationKind::Icb),
    ] {
        trusts
            .register_organisation(authorized(&operator, register(ods_code, name, kind)))
            .await
            .unwrap();
    }
    let linked_since = from_naive(chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap());
    for ((ods_code, name), parent) in WEST_YORKSHIRE
        .iter()
        .map(|trust| (*trust, "QWO"))
        .chain([(SURREY, "QYG")])
    {
        trusts
            .register_organisation(authorized(
                &operator,
                register(ods_code, name, OrganisationKind::Trust),
            ))
            .await
            .unwrap();
        trusts
            .link_organisation(authorized(
                &operator,
                LinkOrganisationRequest {
                    options: ics_e2e::options(),
                    ods_code: ods_code.into(),
                    parent_ods_code: parent.into(),
                    valid_from: Some(linked_since),
                },
            ))
            .await
            .unwrap();
    }
    // The ICS reaches the overview projection before the browser looks.
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let overview = reporting
            .get_overview(authorized(
                &operator,
                GetOverviewRequest {
                    scope: Some(Scope {
                        scope: Some(scope::Scope::IcsOdsCode("QWO".into())),
                    }),
                    as_of: None,
                },
            ))
            .await;
        if overview.is_ok_and(|overview| overview.into_inner().trusts.len() == 6) {
            break;
        }
        assert!(Instant::now() < deadline, "QWO never showed its six trusts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    record_a_measure(&server, &operator).await;
    let programme = trusts
        .register_programme(authorized(
            &operator,
            RegisterProgrammeRequest {
                options: ics_e2e::options(),
                name: PROGRAMME_NAME.into(),
                description: "Leeds and partners".into(),
                starts_on: Some(linked_since),
                ends_on: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .stream_id
        .trim_start_matches("programme-")
        .to_owned();
    trusts
        .join_programme(authorized(
            &operator,
            JoinProgrammeRequest {
                options: ics_e2e::options(),
                programme_id: programme.clone(),
                ods_code: "RR8".into(),
                joined_on: Some(linked_since),
            },
        ))
        .await
        .unwrap();
    let programme_board = deployment.token(&Principal::BoardReader {
        ics_ods_code: None,
        programme_id: Some(programme.clone()),
    });

    let board = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    });
    let names = |trusts: &[(&str, &str)]| {
        trusts
            .iter()
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut browser = tokio::process::Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .env("DASHBOARD_URL", &server.dashboard_url)
        .env("BOARD_TOKEN", &board)
        .env("ICS_ODS", "QWO")
        .env("OTHER_ICS_ODS", "QYG")
        .env("OWN_TRUSTS", names(&WEST_YORKSHIRE))
        .env("OTHER_TRUSTS", names(&[SURREY]))
        .env("LIVE_TRUST", WEST_YORKSHIRE[0].1)
        .env("DATA_LABEL", DATA_LABEL)
        .env("MEASURE_NAME", FFT_NAME)
        .env("OTHER_TRUST_CODE", SURREY.0)
        .env("PROGRAMME_ID", &programme)
        .env("PROGRAMME_NAME", PROGRAMME_NAME)
        .env("PROGRAMME_TOKEN", &programme_board)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node (tests/browser/dashboard.mjs)");
    let mut said = BufReader::new(browser.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), said.next_line())
        .await
        .expect("the browser got ready within a minute")
        .unwrap();
    if ready.as_deref() == Some("READY") {
        trusts
            .publish_cqc_rating(authorized(
                &operator,
                PublishCqcRatingRequest {
                    options: ics_e2e::options(),
                    ods_code: WEST_YORKSHIRE[0].0.into(),
                    published_on: Some(from_naive(
                        chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
                    )),
                    ratings: Some(CqcRatings {
                        overall: CqcRating::Outstanding as i32,
                        safe: CqcRating::Good as i32,
                        effective: CqcRating::Outstanding as i32,
                        caring: CqcRating::Outstanding as i32,
                        responsive: CqcRating::Good as i32,
                        well_led: CqcRating::Outstanding as i32,
                    }),
                },
            ))
            .await
            .unwrap();
    }
    // A browser script that failed early has closed its input already; its output says why.
    let mut stdin = browser.stdin.take().unwrap();
    let _ = stdin.write_all(b"PUBLISHED\n").await;
    let _ = stdin.flush().await;
    let mut rest = Vec::new();
    while let Ok(Some(line)) = said.next_line().await {
        if line == "MEASURES_READY" {
            record_month(&server, &operator, 20).await;
            let _ = stdin.write_all(b"RECORDED\n").await;
            let _ = stdin.flush().await;
        }
        rest.push(line);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), browser.wait())
        .await
        .expect("the browser finished")
        .unwrap();
    assert!(
        status.success() && rest.last().map(String::as_str) == Some("OK"),
        "the browser checks failed (first line {ready:?}, then {rest:?}); see its stderr above"
    );
    deployment.finish().await;
}

/// Twenty months of the Friends and Family Test for Leeds (RR8) and Bradford (RAE), stable at
/// 91–93% against a 90% target, until the reporting service's measure view shows them.
async fn record_a_measure(server: &ics_e2e::Server, operator: &str) {
    use ics_proto::events::v1::{
        ImprovementDirection, MeasureDefinition, MeasureFrequency, MeasureScoring, SpcConflictRule,
        SpcRuleSet,
    };
    use ics_proto::metrics::v1::metrics_service_client::MetricsServiceClient;
    use ics_proto::metrics::v1::{DefineMeasureRequest, IngestObservationsRequest};
    use ics_proto::reporting::v1::GetMeasureViewRequest;

    let mut metrics = MetricsServiceClient::new(channel(&server.metrics_url).await);
    metrics
        .define_measure(authorized(
            operator,
            DefineMeasureRequest {
                options: ics_e2e::options(),
                definition: Some(MeasureDefinition {
                    code: FFT.into(),
                    name: FFT_NAME.into(),
                    description: String::new(),
                    unit: "%".into(),
                    direction: ImprovementDirection::Increase as i32,
                    scoring: MeasureScoring::Proportion as i32,
                    frequency: MeasureFrequency::Monthly as i32,
                    target: Some(0.9),
                    rule_set: SpcRuleSet::MdcV25 as i32,
                    conflict_rule: SpcConflictRule::Improvement as i32,
                    display_scale: 100.0,
                }),
            },
        ))
        .await
        .unwrap();
    // Two trusts, so that the measure has a funnel plot too.
    let observations: Vec<_> = ["RR8", "RAE"]
        .into_iter()
        .flat_map(|ods_code| (0..20u32).map(move |offset| fft_month(ods_code, offset)))
        .collect();
    // The metrics service learns of the trusts from the trusts service's events.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let summary = metrics
            .ingest_observations(authorized(
                operator,
                futures_util::stream::iter([IngestObservationsRequest {
                    observations: observations.clone(),
                }]),
            ))
            .await
            .unwrap()
            .into_inner();
        if summary.rejected == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "observations refused: {summary:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = reporting
            .get_measure_view(authorized(
                operator,
                GetMeasureViewRequest {
                    ics_ods_code: "QWO".into(),
                    peer_group_id: String::new(),
                    as_of: None,
                },
            ))
            .await;
        if view.is_ok_and(|view| view.into_inner().rows.iter().any(|row| row.points == 20)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the measure never reached the view"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A trust's Friends and Family Test for the month `offset` months after January 2023.
fn fft_month(ods_code: &str, offset: u32) -> ics_proto::metrics::v1::ObservationInput {
    let start = chrono::NaiveDate::from_ymd_opt(2023, 1, 1)
        .unwrap()
        .checked_add_months(chrono::Months::new(offset))
        .unwrap();
    let end = start
        .checked_add_months(chrono::Months::new(1))
        .unwrap()
        .pred_opt()
        .unwrap();
    ics_proto::metrics::v1::ObservationInput {
        measure_code: FFT.into(),
        ods_code: ods_code.into(),
        value_stream_id: String::new(),
        period_start: Some(from_naive(start)),
        period_end: Some(from_naive(end)),
        value: None,
        numerator: Some(910.0 + f64::from(offset % 3) * 10.0),
        denominator: Some(1000.0),
        source: "fft-extract".into(),
    }
}

/// One more month, recorded with a unary call.
async fn record_month(server: &ics_e2e::Server, operator: &str, offset: u32) {
    use ics_proto::metrics::v1::RecordObservationRequest;
    use ics_proto::metrics::v1::metrics_service_client::MetricsServiceClient;
    MetricsServiceClient::new(channel(&server.metrics_url).await)
        .record_observation(authorized(
            operator,
            RecordObservationRequest {
                options: ics_e2e::options(),
                observation: Some(fft_month("RR8", offset)),
            },
        ))
        .await
        .unwrap();
}

/// Every process serves HTTP on its own address: `/healthz` everywhere, the dashboard only where
/// the reporting service runs.
#[tokio::test]
async fn every_process_serves_http_and_only_reporting_serves_the_dashboard() {
    let deployment = Deployment::new().await;
    let trusts = deployment.start("trusts").await;
    let reporting = deployment.start("reporting").await;
    assert_ne!(trusts.dashboard_url, reporting.dashboard_url);
    for server in [&trusts, &reporting] {
        let (status, body) = http_get(&server.dashboard_url, "/healthz").await;
        assert_eq!(
            (status, body.trim()),
            (200, "ok"),
            "{}",
            server.dashboard_url
        );
    }
    let (status, _) = http_get(&trusts.dashboard_url, "/sign-in").await;
    assert_eq!(status, 404, "the trusts process serves no dashboard");
    let (status, body) = http_get(&reporting.dashboard_url, "/ics/QWO").await;
    assert_eq!(status, 401, "a dashboard page without a token");
    assert!(body.contains("id=\"sign-in\""), "{body}");
    deployment.finish().await;
}

/// The tenant's call rate covers the dashboard's pages: a board beyond it gets 429 with the
/// time to wait, and another board is unaffected.
#[tokio::test]
async fn a_board_reading_beyond_its_rate_is_told_to_wait() {
    let mut deployment = Deployment::new().await;
    deployment.environment.extend([
        ("ICS_TENANT_CALLS_PER_SEC".to_owned(), "1".to_owned()),
        ("ICS_TENANT_CALL_BURST".to_owned(), "2".to_owned()),
    ]);
    let server = deployment.start("reporting").await;
    let board = |ics: &str| {
        deployment.token(&Principal::BoardReader {
            ics_ods_code: Some(ics.into()),
            programme_id: None,
        })
    };
    let (west, east) = (board("QWO"), board("QYG"));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            http_get_as(&server.dashboard_url, "/ics/QWO", Some(&west))
                .await
                .0,
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // No ICS is registered: past the limit, the other board's page is simply not found.
    let (status, _) = http_get_as(&server.dashboard_url, "/ics/QYG", Some(&east)).await;
    assert_ne!(status, 429);
    deployment.finish().await;
}
