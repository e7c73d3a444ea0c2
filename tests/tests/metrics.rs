//! The metrics service and the ICS measure views, through the real binaries over gRPC.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ics_e2e::{Deployment, Server, authorized, channel, options, violated_fields};
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    Date, ImprovementDirection, MeasureDefinition, MeasureFrequency, MeasureScoring,
    OrganisationKind, PeerGroupMethod, SeriesKey, SpcClassification, SpcConflictRule, SpcRuleSet,
    VariationIcon,
};
use ics_proto::metrics::v1::{
    CorrectObservationRequest, DefineMeasureRequest, DefinePeerGroupRequest, GetPeerGroupRequest,
    GetSeriesRequest, IngestObservationsRequest, IngestSummary, ObservationInput,
    RecordObservationRequest, metrics_service_client::MetricsServiceClient,
};
use ics_proto::reporting::v1::{
    GetMeasureViewRequest, GetPeerChangeRequest, GetPeerComparisonRequest, GetSeriesChartRequest,
    MeasureView, PeerBand, WatchMeasureViewRequest,
    reporting_service_client::ReportingServiceClient,
};
use ics_proto::trusts::v1::{
    LinkOrganisationRequest, RegisterOrganisationRequest,
    trusts_service_client::TrustsServiceClient,
};
use ics_service_kit::Principal;
use tonic::Code;
use tonic::transport::Channel;

const FFT: &str = "FFT_POSITIVE";

fn month(offset: u32) -> (Date, Date) {
    let year = 2020 + (offset / 12) as i32;
    let month = offset % 12 + 1;
    let start = chrono::NaiveDate::from_ymd_opt(year, month, 1).unwrap();
    let end = start
        .checked_add_months(chrono::Months::new(1))
        .unwrap()
        .pred_opt()
        .unwrap();
    (from_naive(start), from_naive(end))
}

/// A monthly Friends and Family Test figure: `positive` of `responses`.
fn fft(ods_code: &str, offset: u32, positive: f64, responses: f64) -> ObservationInput {
    let (start, end) = month(offset);
    ObservationInput {
        measure_code: FFT.into(),
        ods_code: ods_code.into(),
        value_stream_id: String::new(),
        period_start: Some(start),
        period_end: Some(end),
        value: None,
        numerator: Some(positive),
        denominator: Some(responses),
        source: "fft-extract".into(),
    }
}

/// Twenty stable months: 91–93% positive of 1,000 responses.
fn stable_months(ods_code: &str) -> Vec<ObservationInput> {
    (0..20)
        .map(|offset| {
            fft(
                ods_code,
                offset,
                910.0 + f64::from(offset % 3) * 10.0,
                1000.0,
            )
        })
        .collect()
}

async fn setup(deployment: &Deployment, server: &Server) -> String {
    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    for (ods_code, name, kind) in [
        ("QWO", "NHS West Yorkshire ICB", OrganisationKind::Icb),
        ("RR8", "Leeds Teaching Hospitals", OrganisationKind::Trust),
        ("RXF", "Mid Yorkshire Teaching", OrganisationKind::Trust),
        (
            "RAE",
            "Bradford Teaching Hospitals",
            OrganisationKind::Trust,
        ),
    ] {
        trusts
            .register_organisation(authorized(
                &operator,
                RegisterOrganisationRequest {
                    options: options(),
                    ods_code: ods_code.into(),
                    name: name.into(),
                    kind: kind as i32,
                },
            ))
            .await
            .unwrap();
        if kind == OrganisationKind::Trust {
            trusts
                .link_organisation(authorized(
                    &operator,
                    LinkOrganisationRequest {
                        options: options(),
                        ods_code: ods_code.into(),
                        parent_ods_code: "QWO".into(),
                        valid_from: Some(from_naive(
                            chrono::NaiveDate::from_ymd_opt(2019, 1, 1).unwrap(),
                        )),
                    },
                ))
                .await
                .unwrap();
        }
    }
    let mut metrics = MetricsServiceClient::new(channel(&server.metrics_url).await);
    metrics
        .define_measure(authorized(
            &operator,
            DefineMeasureRequest {
                options: options(),
                definition: Some(MeasureDefinition {
                    code: FFT.into(),
                    name: "Friends and Family Test % positive".into(),
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
    operator
}

async fn ingest(
    metrics: &mut MetricsServiceClient<Channel>,
    token: &str,
    chunks: Vec<Vec<ObservationInput>>,
) -> Result<IngestSummary, tonic::Status> {
    let requests = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|observations| IngestObservationsRequest { observations }),
    );
    metrics
        .ingest_observations(authorized(token, requests))
        .await
        .map(tonic::Response::into_inner)
}

/// Ingests, retrying while the metrics service has not yet learnt of the organisations from the
/// trusts service's events.
async fn ingest_when_known(
    metrics: &mut MetricsServiceClient<Channel>,
    token: &str,
    observations: Vec<ObservationInput>,
) -> IngestSummary {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let summary = ingest(metrics, token, vec![observations.clone()])
            .await
            .unwrap();
        let unknown_organisation = summary
            .rejections
            .iter()
            .any(|rejection| rejection.code == "NOT_FOUND" && rejection.field == "ods_code");
        if !unknown_organisation || Instant::now() > deadline {
            return summary;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn row<'a>(
    view: &'a MeasureView,
    ods_code: &str,
) -> Option<&'a ics_proto::reporting::v1::MeasureRow> {
    view.rows
        .iter()
        .find(|row| row.ods_code == ods_code && row.measure_code == FFT)
}

#[tokio::test]
async fn a_trust_streams_a_series_across_a_process_limit_and_the_ics_watch_shows_concern() {
    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;
    setup(&deployment, &server).await;
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    let board = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    });
    let mut metrics = MetricsServiceClient::new(channel(&server.metrics_url).await);
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);

    // Twenty stable months: common cause, and the target (90%) sits below the lower limit.
    let summary = ingest_when_known(&mut metrics, &leeds, stable_months("RR8")).await;
    assert_eq!(
        (summary.received, summary.recorded, summary.rejected),
        (20, 20, 0),
        "{summary:?}"
    );
    assert!(summary.spc_events >= 1);

    let mut watch = reporting
        .watch_measure_view(authorized(
            &board,
            WatchMeasureViewRequest {
                ics_ods_code: "QWO".into(),
                peer_group_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let update = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("the watch goes quiet")
            .unwrap()
            .unwrap();
        let view = update.view.unwrap();
        if row(&view, "RR8").is_some_and(|row| row.points == 20) {
            let row = row(&view, "RR8").unwrap();
            assert_eq!(row.variation, VariationIcon::CommonCause as i32);
            break;
        }
        assert!(Instant::now() < deadline);
    }

    // Month 21 collapses to 60% positive: below the lower process limit of a higher-is-better
    // measure.
    let summary = ingest(
        &mut metrics,
        &leeds,
        vec![vec![fft("RR8", 20, 600.0, 1000.0)]],
    )
    .await
    .unwrap();
    assert_eq!(summary.recorded, 1);
    let started = Instant::now();
    loop {
        let update = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("the concern never reached the watch")
            .unwrap()
            .unwrap();
        let view = update.view.unwrap();
        if let Some(row) = row(&view, "RR8")
            && row.points == 21
        {
            assert_eq!(row.variation, VariationIcon::ConcernLow as i32);
            assert!((row.latest_value - 0.6).abs() < 1e-12);
            break;
        }
    }
    eprintln!("concern on the watch {:?} after the ack", started.elapsed());

    // The chart shows the point as special-cause concern, with the rule set named.
    let chart = reporting
        .get_series_chart(authorized(
            &board,
            GetSeriesChartRequest {
                ics_ods_code: "QWO".into(),
                series: Some(SeriesKey {
                    measure_code: FFT.into(),
                    ods_code: "RR8".into(),
                    value_stream_id: String::new(),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let last = chart.points.last().unwrap();
    assert_eq!(last.classification, SpcClassification::Concern as i32);
    assert!(last.value < last.lower_process_limit.unwrap());
    assert_eq!(chart.rule_set.unwrap().version, "2.5");

    // Sending the same history again records nothing and signals nothing.
    let pool = deployment.database.pool("metrics").await;
    let signals = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events WHERE event_type LIKE 'ics.events.v1.%Icon%'
                OR event_type = 'ics.events.v1.SpecialCauseDetected'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let before = signals(pool.clone()).await;
    let mut again = stable_months("RR8");
    again.push(fft("RR8", 20, 600.0, 1000.0));
    let summary = ingest(&mut metrics, &leeds, vec![again]).await.unwrap();
    assert_eq!((summary.recorded, summary.unchanged), (0, 21));
    assert_eq!(signals(pool.clone()).await, before);

    // Two streams racing with the same new months: each month is recorded once.
    let months: Vec<ObservationInput> = (21..41)
        .map(|offset| fft("RR8", offset, 900.0 + f64::from(offset % 4) * 10.0, 1000.0))
        .collect();
    let (mut one, mut other) = (metrics.clone(), metrics.clone());
    let (first, second) = tokio::join!(
        ingest(&mut one, &leeds, vec![months.clone()]),
        ingest(&mut other, &leeds, vec![months])
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.recorded + second.recorded, 20);
    assert_eq!(first.unchanged + second.unchanged, 20);
    let series = metrics
        .get_series(authorized(
            &leeds,
            GetSeriesRequest {
                series: Some(SeriesKey {
                    measure_code: FFT.into(),
                    ods_code: "RR8".into(),
                    value_stream_id: String::new(),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(series.points.len(), 41);

    // Other boards are kept out.
    let other_board = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QXU".into()),
        programme_id: None,
    });
    let denied = reporting
        .get_measure_view(authorized(
            &other_board,
            GetMeasureViewRequest {
                ics_ods_code: "QWO".into(),
                peer_group_id: String::new(),
                as_of: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    pool.close().await;
    drop(watch);
    let mut server = server;
    assert!(server.terminate().await);
    deployment.finish().await;
}

#[tokio::test]
async fn bad_observations_are_refused_by_field_and_the_good_ones_land() {
    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;
    let operator = setup(&deployment, &server).await;
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    let mut metrics = MetricsServiceClient::new(channel(&server.metrics_url).await);
    let first = ingest_when_known(&mut metrics, &leeds, vec![fft("RR8", 0, 900.0, 1000.0)]).await;
    assert_eq!(first.recorded, 1);

    let mut reversed = fft("RR8", 3, 900.0, 1000.0);
    reversed.period_end = Some(month(1).1);
    let mut percentage = fft("RR8", 4, 900.0, 1000.0);
    percentage.numerator = None;
    percentage.denominator = None;
    percentage.value = Some(90.0);
    let mut not_a_number = fft("RR8", 5, 900.0, 1000.0);
    not_a_number.numerator = None;
    not_a_number.denominator = None;
    not_a_number.value = Some(f64::NAN);
    let mut unknown_measure = fft("RR8", 6, 1.0, 2.0);
    unknown_measure.measure_code = "NO_SUCH_MEASURE".into();
    let chunk = vec![
        fft("RR8", 1, 920.0, 1000.0),  // 0: good
        fft("RR8", 2, 1001.0, 1000.0), // 1: numerator above denominator
        reversed,                      // 2: period ends before it starts
        percentage,                    // 3: a proportion outside 0–1
        not_a_number,                  // 4: NaN
        unknown_measure,               // 5: unknown measure
        fft("RXF", 7, 1.0, 2.0),       // 6: another trust's data
        fft("QQQ", 8, 1.0, 2.0),       // 7: not this trust's (whether it exists or not)
        fft("RR8", 0, 901.0, 1000.0),  // 8: a different value for a recorded period
        fft("RR8", 9, 930.0, 1000.0),  // 9: good
    ];
    let summary = ingest(&mut metrics, &leeds, vec![chunk]).await.unwrap();
    assert_eq!(
        (summary.received, summary.recorded, summary.rejected),
        (10, 2, 8)
    );
    let rejected: Vec<(u64, &str, &str)> = summary
        .rejections
        .iter()
        .map(|r| (r.index, r.field.as_str(), r.code.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "numerator", "INVALID_ARGUMENT"),
            (2, "period_end", "INVALID_ARGUMENT"),
            (3, "value", "INVALID_ARGUMENT"),
            (4, "value", "INVALID_ARGUMENT"),
            (5, "measure_code", "NOT_FOUND"),
            (6, "ods_code", "PERMISSION_DENIED"),
            (7, "ods_code", "PERMISSION_DENIED"),
            (8, "value", "FAILED_PRECONDITION"),
        ]
    );
    let unknown = ingest(&mut metrics, &operator, vec![vec![fft("QQQ", 8, 1.0, 2.0)]])
        .await
        .unwrap();
    assert_eq!(unknown.rejections[0].code, "NOT_FOUND");
    assert_eq!(unknown.rejections[0].field, "ods_code");

    // Unary: the same rules as gRPC errors, and nothing written.
    let key = SeriesKey {
        measure_code: FFT.into(),
        ods_code: "RR8".into(),
        value_stream_id: String::new(),
    };
    let points_now = |series: ics_proto::events::v1::SpcSeries| series.points.len();
    let series = metrics
        .get_series(authorized(
            &leeds,
            GetSeriesRequest {
                series: Some(key.clone()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(points_now(series), 3);
    let refused = metrics
        .record_observation(authorized(
            &leeds,
            RecordObservationRequest {
                options: options(),
                observation: Some(fft("RR8", 10, 5.0, 4.0)),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["observation.numerator"]);
    let conflict = metrics
        .record_observation(authorized(
            &leeds,
            RecordObservationRequest {
                options: options(),
                observation: Some(fft("RR8", 0, 950.0, 1000.0)),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::FailedPrecondition);

    // A correction supersedes, keeping the first figure in the log.
    metrics
        .correct_observation(authorized(
            &leeds,
            CorrectObservationRequest {
                options: options(),
                observation: Some(fft("RR8", 0, 950.0, 1000.0)),
                reason: "late survey returns".into(),
            },
        ))
        .await
        .unwrap();
    let series = metrics
        .get_series(authorized(&leeds, GetSeriesRequest { series: Some(key) }))
        .await
        .unwrap()
        .into_inner();
    let first_point = &series.points[0];
    assert_eq!((first_point.value, first_point.revision), (0.95, 2));
    assert_eq!(series.points.len(), 3);

    // A funnel across the ICS once a peer has data for the same month.
    let mid_yorks = deployment.token(&Principal::TrustWriter {
        ods_code: "RXF".into(),
    });
    let peer =
        ingest_when_known(&mut metrics, &mid_yorks, vec![fft("RXF", 9, 700.0, 1000.0)]).await;
    assert_eq!(peer.recorded, 1);
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    let comparison = loop {
        match reporting
            .get_peer_comparison(authorized(
                &operator,
                GetPeerComparisonRequest {
                    ics_ods_code: "QWO".into(),
                    measure_code: FFT.into(),
                    peer_group_id: String::new(),
                    period_start: None,
                },
            ))
            .await
        {
            Ok(comparison) => break comparison.into_inner(),
            // Until the reporting projections have the measure and the peer's month: NOT_FOUND
            // while the measure's definition has not reached them (a busy machine), then
            // FAILED_PRECONDITION while only one trust has data.
            Err(status) if Instant::now() < deadline => {
                assert!(
                    matches!(status.code(), Code::FailedPrecondition | Code::NotFound),
                    "{status:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("no comparison: {status:?}"),
        }
    };
    assert_eq!(comparison.units.len(), 2);
    assert_eq!(comparison.period_start, Some(month(9).0));
    let bands: Vec<i32> = comparison.units.iter().map(|unit| unit.band).collect();
    // 93% against 70% of 1,000 responses each is far apart, but two trusts are all the
    // evidence there is of how much trusts differ: the over-dispersion allowance swallows it.
    assert!(comparison.overdispersion_applied);
    assert!((comparison.target - 1630.0 / 2000.0).abs() < 1e-12);
    assert_eq!(
        bands,
        [PeerBand::AsExpected as i32, PeerBand::AsExpected as i32]
    );

    // Change against peers from month 1 to month 9: Leeds 92% → 93%, Mid Yorkshire 65% → 70%,
    // Bradford 86% → 88%. Leeds improved, but less than its peers did — not distinctly.
    let bradford = deployment.token(&Principal::TrustWriter {
        ods_code: "RAE".into(),
    });
    let more = ingest(
        &mut metrics,
        &mid_yorks,
        vec![vec![fft("RXF", 1, 650.0, 1000.0)]],
    )
    .await
    .unwrap();
    assert_eq!(more.recorded, 1);
    let more = ingest_when_known(
        &mut metrics,
        &bradford,
        vec![fft("RAE", 1, 860.0, 1000.0), fft("RAE", 9, 880.0, 1000.0)],
    )
    .await;
    assert_eq!(more.recorded, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let change = loop {
        let change = reporting
            .get_peer_change(authorized(
                &operator,
                GetPeerChangeRequest {
                    ics_ods_code: "QWO".into(),
                    measure_code: FFT.into(),
                    peer_group_id: String::new(),
                    ods_code: "RR8".into(),
                    from_period_start: Some(month(1).0),
                    to_period_start: Some(month(9).0),
                },
            ))
            .await;
        match change {
            Ok(change) if change.get_ref().units.len() == 3 => break change.into_inner(),
            Ok(_) | Err(_) if Instant::now() < deadline => {}
            other => panic!("no change against peers: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(change.units.len(), 3);
    assert!((change.change - 0.01).abs() < 1e-9);
    assert!((change.peer_mean_change - 0.035).abs() < 1e-9);
    assert_eq!(change.label, "improved, not distinctly from peers");

    // A custom peer group, versioned: Leeds compared with Mid Yorkshire alone.
    let group_id = uuid::Uuid::now_v7().to_string();
    let define = |members: Vec<&str>| DefinePeerGroupRequest {
        options: options(),
        peer_group_id: group_id.clone(),
        name: "Leeds and Mid Yorkshire".into(),
        method: PeerGroupMethod::Custom as i32,
        anchor_ods_code: String::new(),
        members: members.into_iter().map(String::from).collect(),
    };
    let unknown_member = metrics
        .define_peer_group(authorized(&operator, define(vec!["RR8", "QQQ"])))
        .await
        .unwrap_err();
    assert_eq!(unknown_member.code(), Code::NotFound);
    let not_a_trust = metrics
        .define_peer_group(authorized(&operator, define(vec!["RR8", "QWO"])))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&not_a_trust), ["members[1]"]);
    let by_a_trust = metrics
        .define_peer_group(authorized(&leeds, define(vec!["RR8", "RXF"])))
        .await
        .unwrap_err();
    assert_eq!(by_a_trust.code(), Code::PermissionDenied);
    metrics
        .define_peer_group(authorized(&operator, define(vec!["RR8", "RAE", "RXF"])))
        .await
        .unwrap();
    metrics
        .define_peer_group(authorized(&operator, define(vec!["RR8", "RXF"])))
        .await
        .unwrap();
    let group = metrics
        .get_peer_group(authorized(
            &operator,
            GetPeerGroupRequest {
                peer_group_id: group_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((group.version, group.members.len()), (2, 2));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = reporting
            .get_measure_view(authorized(
                &operator,
                GetMeasureViewRequest {
                    ics_ods_code: "QWO".into(),
                    peer_group_id: group_id.clone(),
                    as_of: None,
                },
            ))
            .await;
        match view {
            Ok(view) if view.get_ref().peer_group_version == 2 => break,
            _ if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("the peer group never reached reporting: {other:?}"),
        }
    }

    let mut server = server;
    assert!(server.terminate().await);
    deployment.finish().await;
}

/// Series commands check who owns the series: a trust writer may not set a target on another
/// trust's value stream, on a value stream that does not exist, on another trust's series, or
/// with a token naming an ICB rather than a trust; each is refused by name and writes nothing.
#[tokio::test]
async fn series_commands_check_the_organisation_and_value_stream_they_name() {
    use ics_proto::events::v1::{ValueStreamDefinition, ValueStreamOrigin, ValueStreamStatus};
    use ics_proto::metrics::v1::SetSeriesTargetRequest;
    use ics_proto::trusts::v1::DefineValueStreamRequest;

    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;
    setup(&deployment, &server).await;
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    let mid_yorkshire = deployment.token(&Principal::TrustWriter {
        ods_code: "RXF".into(),
    });
    let icb_as_trust = deployment.token(&Principal::TrustWriter {
        ods_code: "QWO".into(),
    });
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let discharge = trusts
        .define_value_stream(authorized(
            &leeds,
            DefineValueStreamRequest {
                options: options(),
                ods_code: "RR8".into(),
                definition: Some(ValueStreamDefinition {
                    name: "Discharge".into(),
                    pathway: "Admission to discharge".into(),
                    sponsor: "COO".into(),
                    lead: "Head of Improvement".into(),
                    origin: ValueStreamOrigin::TopDown as i32,
                    outcome_measures: vec![],
                }),
                status: ValueStreamStatus::Active as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .stream_id
        .trim_start_matches("value-stream-")
        .to_owned();

    let mut metrics = MetricsServiceClient::new(channel(&server.metrics_url).await);
    let target = |ods_code: &str, value_stream_id: &str| SetSeriesTargetRequest {
        options: options(),
        series: Some(SeriesKey {
            measure_code: FFT.into(),
            ods_code: ods_code.into(),
            value_stream_id: value_stream_id.into(),
        }),
        target: Some(0.95),
        reason: "board agreed".into(),
    };
    // The owner may, once the metrics service has heard of the value stream.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match metrics
            .set_series_target(authorized(&leeds, target("RR8", &discharge)))
            .await
        {
            Ok(_) => break,
            Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("the owner's target was refused: {status:?}"),
        }
    }

    let another_trusts_stream = metrics
        .set_series_target(authorized(&mid_yorkshire, target("RXF", &discharge)))
        .await
        .unwrap_err();
    assert_eq!(another_trusts_stream.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&another_trusts_stream),
        vec!["series.value_stream_id"]
    );
    let invented = metrics
        .set_series_target(authorized(
            &mid_yorkshire,
            target("RXF", "01890000-0000-7000-8000-000000000000"),
        ))
        .await
        .unwrap_err();
    assert_eq!(invented.code(), Code::NotFound);
    let another_trust = metrics
        .set_series_target(authorized(&mid_yorkshire, target("RR8", &discharge)))
        .await
        .unwrap_err();
    assert_eq!(another_trust.code(), Code::PermissionDenied);
    let icb = metrics
        .set_series_target(authorized(&icb_as_trust, target("QWO", "")))
        .await
        .unwrap_err();
    assert_eq!(icb.code(), Code::PermissionDenied);
    assert!(icb.message().contains("not a trust"), "{}", icb.message());

    let series = metrics
        .get_series(authorized(
            &deployment.token(&Principal::Operator),
            GetSeriesRequest {
                series: Some(SeriesKey {
                    measure_code: FFT.into(),
                    ods_code: "RXF".into(),
                    value_stream_id: discharge.clone(),
                }),
            },
        ))
        .await;
    assert!(
        series.is_err_and(|status| status.code() == Code::NotFound),
        "nothing was written for the refused commands"
    );
    server_shutdown(server, deployment).await;
}

async fn server_shutdown(mut server: Server, deployment: Deployment) {
    assert!(server.terminate().await);
    deployment.finish().await;
}

/// A board compares only against peer groups of its own ICS or region: another ICS's custom
/// list, or a group anchored at another ICS, reads as unknown (NOT_FOUND); operators may use
/// any group.
#[tokio::test]
async fn a_board_compares_only_against_peer_groups_of_its_own_ics_or_region() {
    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;
    setup(&deployment, &server).await;
    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    for (ods_code, kind) in [
        ("QYG", OrganisationKind::Icb),
        ("RTP", OrganisationKind::Trust),
    ] {
        trusts
            .register_organisation(authorized(
                &operator,
                RegisterOrganisationRequest {
                    options: options(),
                    ods_code: ods_code.into(),
                    name: format!("{ods_code} organisation"),
                    kind: kind as i32,
                },
            ))
            .await
            .unwrap();
    }
    trusts
        .link_organisation(authorized(
            &operator,
            LinkOrganisationRequest {
                options: options(),
                ods_code: "RTP".into(),
                parent_ods_code: "QYG".into(),
                valid_from: Some(from_naive(
                    chrono::NaiveDate::from_ymd_opt(2019, 1, 1).unwrap(),
                )),
            },
        ))
        .await
        .unwrap();
    let metrics = MetricsServiceClient::new(channel(&server.metrics_url).await);
    let define =
        |method: PeerGroupMethod, anchor: &str, members: Vec<&str>| DefinePeerGroupRequest {
            options: options(),
            peer_group_id: uuid::Uuid::now_v7().to_string(),
            name: "peers".into(),
            method: method as i32,
            anchor_ods_code: anchor.into(),
            members: members.into_iter().map(String::from).collect(),
        };
    let group = |request: DefinePeerGroupRequest| {
        let id = request.peer_group_id.clone();
        let mut metrics = metrics.clone();
        let operator = operator.clone();
        async move {
            // The metrics service learns of RTP from the trusts events.
            let deadline = Instant::now() + Duration::from_secs(20);
            while let Err(status) = metrics
                .define_peer_group(authorized(&operator, request.clone()))
                .await
            {
                assert!(Instant::now() < deadline, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            id
        }
    };
    let own = group(define(PeerGroupMethod::Custom, "", vec!["RR8", "RXF"])).await;
    let others_list = group(define(PeerGroupMethod::Custom, "", vec!["RR8", "RTP"])).await;
    let others_ics = group(define(PeerGroupMethod::IcsMembers, "QYG", vec![])).await;

    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);
    let board = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    });
    let view = |token: &str, peer_group_id: &str| {
        authorized(
            token,
            GetMeasureViewRequest {
                ics_ods_code: "QWO".into(),
                peer_group_id: peer_group_id.into(),
                as_of: None,
            },
        )
    };
    // Every group has reached reporting once the operator can read views with each.
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in [&own, &others_list, &others_ics] {
        while reporting
            .get_measure_view(view(&operator, id))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "peer group {id} never reached reporting"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    reporting
        .get_measure_view(view(&board, &own))
        .await
        .expect("the board's own ICS's list");
    for id in [&others_list, &others_ics] {
        let refused = reporting
            .get_measure_view(view(&board, id))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::NotFound, "{id}");
    }
    let mut server = server;
    assert!(server.terminate().await);
    deployment.finish().await;
}

/// S10 log volume: a stream of thousands of rows a trust may not write is refused row by row in
/// its summary, and audited once in the log, not once per row.
#[tokio::test]
async fn a_hostile_ingest_stream_is_audited_once_not_per_row() {
    let mut deployment = Deployment::new().await;
    let log = std::env::temp_dir().join(format!("ics-log-{}.txt", uuid::Uuid::now_v7()));
    deployment.server_log = Some(log.clone());
    deployment.environment = vec![("ICS_LOG".into(), "info".into())];
    let server = deployment.start("all").await;
    setup(&deployment, &server).await;
    let mid_yorkshire = deployment.token(&Principal::TrustWriter {
        ods_code: "RXF".into(),
    });
    let mut metrics = MetricsServiceClient::new(channel(&server.metrics_url).await);
    // Leeds' figures, sent by Mid Yorkshire: 20 chunks of 500 refused rows.
    let chunks: Vec<Vec<ObservationInput>> = (0..20)
        .map(|chunk| {
            (0..500)
                .map(|row| fft("RR8", (chunk * 500 + row) % 120, 900.0, 1000.0))
                .collect()
        })
        .collect();
    let summary = ingest(&mut metrics, &mid_yorkshire, chunks).await.unwrap();
    assert_eq!(summary.rejected, 10_000);
    assert_eq!(summary.recorded, 0);
    assert!(
        summary
            .rejections
            .iter()
            .all(|rejection| rejection.code == "PERMISSION_DENIED")
    );
    let mut server = server;
    assert!(server.terminate().await);
    let written = std::fs::read_to_string(&log).unwrap();
    let denials = written
        .lines()
        .filter(|line| line.contains("permission denied"))
        .count();
    assert_eq!(denials, 1, "one audit line for the stream:\n{written}");
    assert!(written.len() < 64 * 1024, "{} bytes of log", written.len());
    let _ = std::fs::remove_file(&log);
    deployment.finish().await;
}
