//! Starts the real `icsd` binaries and speaks gRPC to them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ics_e2e::{Deployment, authorized, channel, options, violated_fields};
use ics_proto::date::from_naive;
use ics_proto::events::v1::{CqcRating, CqcRatings, OrganisationKind};
use ics_proto::reporting::v1::{
    GetCqcHistoryRequest, GetOverviewRequest, Scope, WatchOverviewRequest,
    reporting_service_client::ReportingServiceClient, scope,
};
use ics_proto::trusts::v1::{
    LinkOrganisationRequest, PublishCqcRatingRequest, RegisterOrganisationRequest,
    trusts_service_client::TrustsServiceClient,
};
use ics_service_kit::Principal;
use tonic::Code;
use tonic::transport::Channel;

fn day(year: i32, month: u32, day: u32) -> Option<ics_proto::events::v1::Date> {
    Some(from_naive(chrono_date(year, month, day)))
}

fn chrono_date(year: i32, month: u32, day: u32) -> ics_proto_chrono::NaiveDate {
    ics_proto_chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

mod ics_proto_chrono {
    pub use sqlx::types::chrono::NaiveDate;
}

fn ics(code: &str) -> Option<Scope> {
    Some(Scope {
        scope: Some(scope::Scope::IcsOdsCode(code.to_string())),
    })
}

fn ratings(overall: CqcRating) -> Option<CqcRatings> {
    Some(CqcRatings {
        overall: overall as i32,
        safe: CqcRating::Good as i32,
        effective: CqcRating::Good as i32,
        caring: CqcRating::Outstanding as i32,
        responsive: CqcRating::RequiresImprovement as i32,
        well_led: overall as i32,
    })
}

async fn register(
    client: &mut TrustsServiceClient<Channel>,
    token: &str,
    ods_code: &str,
    name: &str,
    kind: OrganisationKind,
    parent: Option<&str>,
) {
    client
        .register_organisation(authorized(
            token,
            RegisterOrganisationRequest {
                options: options(),
                ods_code: ods_code.into(),
                name: name.into(),
                kind: kind as i32,
            },
        ))
        .await
        .unwrap();
    if let Some(parent) = parent {
        client
            .link_organisation(authorized(
                token,
                LinkOrganisationRequest {
                    options: options(),
                    ods_code: ods_code.into(),
                    parent_ods_code: parent.into(),
                    valid_from: day(2022, 7, 1),
                },
            ))
            .await
            .unwrap();
    }
}

/// West Yorkshire with Leeds, and Surrey Heartlands with Surrey and Sussex.
async fn register_two_icss(client: &mut TrustsServiceClient<Channel>, operator: &str) {
    for (ods_code, name, kind, parent) in [
        ("QWO", "NHS West Yorkshire ICB", OrganisationKind::Icb, None),
        (
            "QXU",
            "NHS Surrey Heartlands ICB",
            OrganisationKind::Icb,
            None,
        ),
        (
            "RR8",
            "The Leeds Teaching Hospitals NHS Trust",
            OrganisationKind::Trust,
            Some("QWO"),
        ),
        (
            "RTP",
            "Surrey and Sussex Healthcare NHS Trust",
            OrganisationKind::Trust,
            Some("QXU"),
        ),
    ] {
        register(client, operator, ods_code, name, kind, parent).await;
    }
}

/// Projections are eventually consistent: polls the overview until `ready` holds (10 s at most).
async fn wait_for_overview(
    reporting: &mut ReportingServiceClient<Channel>,
    token: &str,
    scope: Option<Scope>,
    as_of: Option<ics_proto::events::v1::Date>,
    ready: impl Fn(&ics_proto::reporting::v1::Overview) -> bool,
) -> ics_proto::reporting::v1::Overview {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let overview = reporting
            .get_overview(authorized(
                token,
                GetOverviewRequest {
                    scope: scope.clone(),
                    as_of,
                },
            ))
            .await;
        if let Ok(overview) = overview {
            let overview = overview.into_inner();
            if ready(&overview) {
                return overview;
            }
        }
        assert!(Instant::now() < deadline, "the overview never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Charters a workshop, retrying while the workshops service has not yet learnt of its trust
/// and value stream from the trusts service's events; returns the workshop id.
async fn charter_when_known(
    workshops: &mut ics_proto::workshops::v1::workshops_service_client::WorkshopsServiceClient<
        Channel,
    >,
    token: &str,
    request: ics_proto::workshops::v1::CharterWorkshopRequest,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match workshops
            .charter_workshop(authorized(token, request.clone()))
            .await
        {
            Ok(result) => {
                return result
                    .into_inner()
                    .stream_id
                    .trim_start_matches("workshop-")
                    .to_string();
            }
            Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("charter refused: {status:?}"),
        }
    }
}

async fn event_count(deployment: &Deployment) -> i64 {
    let pool = deployment.database.pool("trusts").await;
    let count = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

async fn metrics_event_count(deployment: &Deployment) -> i64 {
    let pool = deployment.database.pool("metrics").await;
    let count = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

#[tokio::test]
async fn a_rating_reaches_the_ics_overview_and_an_open_watch_and_no_other_board() {
    let deployment = Deployment::new().await;
    let mut trusts_server = deployment.start("trusts").await;
    let mut reporting_server = deployment.start("reporting").await;
    let mut trusts = TrustsServiceClient::new(channel(&trusts_server.url).await);
    let mut reporting = ReportingServiceClient::new(channel(&reporting_server.url).await);

    let operator = deployment.token(&Principal::Operator);
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    let surrey = deployment.token(&Principal::TrustWriter {
        ods_code: "RTP".into(),
    });
    let west_yorkshire_board = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    });
    let surrey_board = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QXU".into()),
        programme_id: None,
    });

    register_two_icss(&mut trusts, &operator).await;

    // Projections are eventually consistent: wait until the membership has arrived.
    wait_for_overview(
        &mut reporting,
        &west_yorkshire_board,
        ics("QWO"),
        None,
        |overview| overview.trusts.len() == 1,
    )
    .await;

    // The board of West Yorkshire watches its ICS.
    let mut watch = reporting
        .watch_overview(authorized(
            &west_yorkshire_board,
            WatchOverviewRequest { scope: ics("QWO") },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.overview.unwrap().scope, ics("QWO"));

    // Leeds publishes its rating; the watch shows it within a second of the ack.
    trusts
        .publish_cqc_rating(authorized(
            &leeds,
            PublishCqcRatingRequest {
                options: options(),
                ods_code: "RR8".into(),
                published_on: day(2023, 3, 1),
                ratings: ratings(CqcRating::Good),
            },
        ))
        .await
        .unwrap();
    let acked = Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let update = watch.next().await.unwrap().unwrap();
            let overview = update.overview.unwrap();
            let leeds_rating = overview
                .trusts
                .iter()
                .find(|trust| trust.ods_code == "RR8")
                .and_then(|trust| trust.current_cqc);
            if let Some(rating) = leeds_rating {
                return (update.event_type, rating);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the rating did not reach the watch within 1 s"));
    assert_eq!(seen.0, "ics.events.v1.CqcRatingPublished");
    assert_eq!(seen.1.ratings.unwrap().overall, CqcRating::Good as i32);
    assert!(acked.elapsed() < Duration::from_secs(1));

    // The query agrees, and names the ICS and its member.
    let overview = reporting
        .get_overview(authorized(
            &west_yorkshire_board,
            GetOverviewRequest {
                scope: ics("QWO"),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overview.name, "NHS West Yorkshire ICB");
    let members: Vec<&str> = overview
        .trusts
        .iter()
        .map(|trust| trust.ods_code.as_str())
        .collect();
    assert_eq!(members, vec!["RR8"]);
    // At once, as the watch showed it: the view read before the rating (while waiting for the
    // membership above) is not served again once the projection has changed.
    assert!(
        overview.trusts[0].current_cqc.is_some(),
        "a stale view: {overview:?}"
    );

    // Membership follows the date: before the link started, the ICS had no members here.
    let earlier = reporting
        .get_overview(authorized(
            &west_yorkshire_board,
            GetOverviewRequest {
                scope: ics("QWO"),
                as_of: day(2021, 1, 1),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(earlier.trusts.is_empty());

    // Another ICS's board sees none of it: refused for QWO, and RR8 absent from its own view.
    for status in [
        reporting
            .get_overview(authorized(
                &surrey_board,
                GetOverviewRequest {
                    scope: ics("QWO"),
                    as_of: None,
                },
            ))
            .await
            .unwrap_err(),
        reporting
            .watch_overview(authorized(
                &surrey_board,
                WatchOverviewRequest { scope: ics("QWO") },
            ))
            .await
            .unwrap_err(),
        reporting
            .get_cqc_history(authorized(
                &surrey_board,
                GetCqcHistoryRequest {
                    scope: ics("QWO"),
                    ods_code: "RR8".into(),
                    as_of: None,
                },
            ))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    let not_in_scope = reporting
        .get_cqc_history(authorized(
            &surrey_board,
            GetCqcHistoryRequest {
                scope: ics("QXU"),
                ods_code: "RR8".into(),
                as_of: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(not_in_scope.code(), Code::NotFound);
    let own = reporting
        .get_overview(authorized(
            &surrey_board,
            GetOverviewRequest {
                scope: ics("QXU"),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(own.trusts.iter().all(|trust| trust.ods_code != "RR8"));

    // Surrey's systems cannot write for Leeds; bad input and missing tokens write nothing.
    let before = event_count(&deployment).await;
    let denied = trusts
        .publish_cqc_rating(authorized(
            &surrey,
            PublishCqcRatingRequest {
                options: options(),
                ods_code: "RR8".into(),
                published_on: day(2024, 1, 1),
                ratings: ratings(CqcRating::Inadequate),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let invalid = trusts
        .register_organisation(authorized(
            &operator,
            RegisterOrganisationRequest {
                options: options(),
                ods_code: "leeds!".into(),
                name: String::new(),
                kind: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&invalid);
    fields.sort();
    assert_eq!(fields, vec!["kind", "name", "ods_code"]);
    let future = trusts
        .publish_cqc_rating(authorized(
            &leeds,
            PublishCqcRatingRequest {
                options: options(),
                ods_code: "RR8".into(),
                published_on: day(2999, 1, 1),
                ratings: ratings(CqcRating::Good),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&future), vec!["published_on"]);
    let unknown = trusts
        .link_organisation(authorized(
            &operator,
            LinkOrganisationRequest {
                options: options(),
                ods_code: "RTP".into(),
                parent_ods_code: "QZZ".into(),
                valid_from: day(2024, 1, 1),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let anonymous = trusts
        .register_organisation(RegisterOrganisationRequest {
            options: options(),
            ods_code: "RXX".into(),
            name: "Nobody".into(),
            kind: OrganisationKind::Trust as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(event_count(&deployment).await, before);

    drop(watch);
    assert!(
        trusts_server.terminate().await,
        "trusts did not shut down cleanly"
    );
    assert!(
        reporting_server.terminate().await,
        "reporting did not shut down cleanly"
    );
    deployment.finish().await;
}

fn programme_scope(programme_id: &str) -> Option<Scope> {
    Some(Scope {
        scope: Some(scope::Scope::ProgrammeId(programme_id.to_string())),
    })
}

#[tokio::test]
async fn commands_are_idempotent_concurrency_is_optimistic_and_value_streams_keep_their_history() {
    use ics_proto::events::v1::{
        CommandOptions, ValueStreamDefinition, ValueStreamOrigin, ValueStreamStatus,
    };
    use ics_proto::trusts::v1::{
        CloseValueStreamRequest, DefineValueStreamRequest, GetValueStreamRequest,
        RenameOrganisationRequest, ReviseValueStreamRequest,
    };

    let mut deployment = Deployment::new().await;
    // Fifty writes of one trust race below: the tenant's call limits would queue and refuse
    // most of them before they could race (tests/tests/security.rs covers those limits).
    deployment.environment.extend([
        ("ICS_TENANT_CALLS_PER_SEC".to_owned(), "0".to_owned()),
        ("ICS_TENANT_CONCURRENT_CALLS".to_owned(), "0".to_owned()),
    ]);
    let mut server = deployment.start("trusts").await;
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let operator = deployment.token(&Principal::Operator);
    let surrey = deployment.token(&Principal::TrustWriter {
        ods_code: "RTP".into(),
    });
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    register(
        &mut trusts,
        &operator,
        "RTP",
        "Surrey and Sussex Healthcare NHS Trust",
        OrganisationKind::Trust,
        None,
    )
    .await;

    // A retried command returns the first result and writes nothing new.
    let definition = ValueStreamDefinition {
        name: "Discharge".into(),
        pathway: "Emergency admission to discharge home".into(),
        sponsor: "Chief Operating Officer".into(),
        lead: "Head of Improvement".into(),
        origin: ValueStreamOrigin::TopDown as i32,
        outcome_measures: vec!["Length of stay".into()],
    };
    let define = DefineValueStreamRequest {
        options: Some(CommandOptions {
            request_id: "define-discharge".into(),
            expected_version: None,
        }),
        ods_code: "RTP".into(),
        definition: Some(definition.clone()),
        status: ValueStreamStatus::Active as i32,
    };
    let before = event_count(&deployment).await;
    let first = trusts
        .define_value_stream(authorized(&surrey, define.clone()))
        .await
        .unwrap()
        .into_inner();
    let retry = trusts
        .define_value_stream(authorized(&surrey, define.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed);
    assert!(retry.replayed);
    assert_eq!(retry.stream_id, first.stream_id);
    assert_eq!(retry.event_ids, first.event_ids);
    assert_eq!(event_count(&deployment).await, before + 1);
    // The same request id for a different command is refused.
    let mut changed = define.clone();
    changed.definition = Some(ValueStreamDefinition {
        name: "Outpatients".into(),
        ..definition.clone()
    });
    let reused = trusts
        .define_value_stream(authorized(&surrey, changed))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::FailedPrecondition);

    let value_stream_id = first
        .stream_id
        .trim_start_matches("value-stream-")
        .to_string();

    // Another trust's systems cannot touch it, even by its id alone.
    let denied = trusts
        .close_value_stream(authorized(
            &leeds,
            CloseValueStreamRequest {
                options: options(),
                value_stream_id: value_stream_id.clone(),
                closed_on: day(2021, 1, 1),
                reason: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // A revision needs a rationale and keeps the earlier definition readable.
    let no_rationale = trusts
        .revise_value_stream(authorized(
            &surrey,
            ReviseValueStreamRequest {
                options: options(),
                value_stream_id: value_stream_id.clone(),
                definition: Some(ValueStreamDefinition {
                    name: "Discharge and flow".into(),
                    ..definition.clone()
                }),
                rationale: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_rationale), vec!["rationale"]);
    trusts
        .revise_value_stream(authorized(
            &surrey,
            ReviseValueStreamRequest {
                options: options(),
                value_stream_id: value_stream_id.clone(),
                definition: Some(ValueStreamDefinition {
                    name: "Discharge and flow".into(),
                    ..definition.clone()
                }),
                rationale: "Widened to the whole flow after the first workshops".into(),
            },
        ))
        .await
        .unwrap();
    trusts
        .close_value_stream(authorized(
            &surrey,
            CloseValueStreamRequest {
                options: options(),
                value_stream_id: value_stream_id.clone(),
                closed_on: day(2021, 6, 30),
                reason: "Programme ended".into(),
            },
        ))
        .await
        .unwrap();
    let closed = trusts
        .revise_value_stream(authorized(
            &surrey,
            ReviseValueStreamRequest {
                options: options(),
                value_stream_id: value_stream_id.clone(),
                definition: Some(definition.clone()),
                rationale: "Reopen".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(closed.code(), Code::FailedPrecondition);
    let value_stream = trusts
        .get_value_stream(authorized(
            &surrey,
            GetValueStreamRequest {
                value_stream_id: value_stream_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<String> = value_stream
        .revisions
        .iter()
        .map(|revision| revision.definition.clone().unwrap_or_default().name)
        .collect();
    assert_eq!(names, vec!["Discharge", "Discharge and flow"]);
    assert_eq!(value_stream.status, ValueStreamStatus::Closed as i32);

    // Fifty concurrent commands expecting the same version: exactly one wins, the rest are
    // ABORTED and told the current version.
    let version = trusts
        .get_organisation(authorized(
            &operator,
            ics_proto::trusts::v1::GetOrganisationRequest {
                ods_code: "RTP".into(),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .version;
    let mut racers = Vec::new();
    for attempt in 0..50 {
        let mut client = trusts.clone();
        let token = surrey.clone();
        racers.push(tokio::spawn(async move {
            client
                .rename_organisation(authorized(
                    &token,
                    RenameOrganisationRequest {
                        options: Some(CommandOptions {
                            request_id: format!("race-{attempt}"),
                            expected_version: Some(version),
                        }),
                        ods_code: "RTP".into(),
                        name: format!("Surrey and Sussex Healthcare NHS Trust ({attempt})"),
                    },
                ))
                .await
        }));
    }
    let mut winners = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(result) => {
                assert_eq!(result.into_inner().version, version + 1);
                winners += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Aborted, "{status:?}");
                assert_eq!(
                    ics_service_kit::conflict_version(&status),
                    Some(version + 1)
                );
            }
        }
    }
    assert_eq!(winners, 1);

    assert!(server.terminate().await);
    deployment.finish().await;
}

#[tokio::test]
async fn a_programme_board_sees_its_programme_across_icss_and_a_rebuild_equals_live() {
    use ics_proto::admin::v1::{
        RebuildProjectionRequest, TailEventsRequest, admin_service_client::AdminServiceClient,
    };
    use ics_proto::trusts::v1::{JoinProgrammeRequest, RegisterProgrammeRequest};

    let deployment = Deployment::new().await;
    let mut trusts_server = deployment.start("trusts").await;
    let mut reporting_server = deployment.start("reporting").await;
    let mut trusts = TrustsServiceClient::new(channel(&trusts_server.url).await);
    let mut reporting = ReportingServiceClient::new(channel(&reporting_server.url).await);
    let operator = deployment.token(&Principal::Operator);

    register_two_icss(&mut trusts, &operator).await;
    register(
        &mut trusts,
        &operator,
        "RAE",
        "Bradford Teaching Hospitals NHS Foundation Trust",
        OrganisationKind::FoundationTrust,
        Some("QWO"),
    )
    .await;
    let registered = trusts
        .register_programme(authorized(
            &operator,
            RegisterProgrammeRequest {
                options: options(),
                name: "NHS–VMI partnership".into(),
                description: "Five trusts".into(),
                starts_on: day(2015, 7, 1),
                ends_on: day(2021, 6, 30),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let programme_id = registered
        .stream_id
        .trim_start_matches("programme-")
        .to_string();
    for trust in ["RR8", "RTP"] {
        trusts
            .join_programme(authorized(
                &operator,
                JoinProgrammeRequest {
                    options: options(),
                    programme_id: programme_id.clone(),
                    ods_code: trust.into(),
                    joined_on: day(2015, 7, 1),
                },
            ))
            .await
            .unwrap();
    }

    let board = deployment.token(&Principal::BoardReader {
        ics_ods_code: None,
        programme_id: Some(programme_id.clone()),
    });
    let live = wait_for_overview(
        &mut reporting,
        &board,
        programme_scope(&programme_id),
        day(2020, 1, 1),
        |overview| overview.trusts.len() == 2,
    )
    .await;
    // The programme spans two ICSs; each trust carries the ICB it belonged to on the date.
    let members: Vec<(&str, &str)> = live
        .trusts
        .iter()
        .map(|trust| (trust.ods_code.as_str(), trust.icb_ods_code.as_str()))
        .collect();
    assert_eq!(
        members,
        vec![("RR8", ""), ("RTP", "")],
        "links start in 2022, after the date asked"
    );
    let today = reporting
        .get_overview(authorized(
            &board,
            GetOverviewRequest {
                scope: programme_scope(&programme_id),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let members: Vec<(&str, &str)> = today
        .trusts
        .iter()
        .map(|trust| (trust.ods_code.as_str(), trust.icb_ods_code.as_str()))
        .collect();
    assert_eq!(members, vec![("RR8", "QWO"), ("RTP", "QXU")]);
    // The programme board reads neither ICS as a whole.
    let denied = reporting
        .get_overview(authorized(
            &board,
            GetOverviewRequest {
                scope: ics("QWO"),
                as_of: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Operators rebuild the projection from the stream; the views are the same afterwards.
    let mut admin = AdminServiceClient::new(channel(&reporting_server.url).await);
    let refused = admin
        .rebuild_projection(authorized(
            &board,
            RebuildProjectionRequest {
                projection: "overview".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let rebuilt = admin
        .rebuild_projection(authorized(
            &operator,
            RebuildProjectionRequest {
                projection: "overview".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let events = event_count(&deployment).await;
    assert_eq!(rebuilt.events_applied, u64::try_from(events).unwrap());
    let after = reporting
        .get_overview(authorized(
            &board,
            GetOverviewRequest {
                scope: programme_scope(&programme_id),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, today);

    // The event log can be tailed by operators, in commit order.
    let mut trusts_admin = AdminServiceClient::new(channel(&trusts_server.url).await);
    let tailed: Vec<_> = trusts_admin
        .tail_events(authorized(
            &operator,
            TailEventsRequest {
                from_position: 0,
                follow: false,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert_eq!(tailed.len(), usize::try_from(events).unwrap());
    assert_eq!(
        tailed[0].as_ref().unwrap().event_type,
        "ics.events.v1.OrganisationRegistered"
    );

    assert!(trusts_server.terminate().await);
    assert!(reporting_server.terminate().await);
    deployment.finish().await;
}

#[tokio::test]
async fn the_demo_runs_against_every_service_in_one_process_and_replays_on_a_second_run() {
    let mut deployment = Deployment::new().await;
    // The demo back-loads 2016–2020 workshops: with the production grace period, follow-ups the
    // demo does not record are not declared missed while it loads (nor between its two runs).
    deployment.follow_up_grace_days = 7;
    let mut server = deployment.start("all").await;

    let (succeeded, first) = deployment.icsctl(&server, &["demo"]).await;
    assert!(succeeded, "icsctl demo failed:\n{first}");
    assert!(
        first.contains("SAMPLE"),
        "the demo must say its data is sample data:\n{first}"
    );
    for expected in ["NHS West Yorkshire ICB", "RR8", "RAE", "RTP", "RF4"] {
        assert!(
            first.contains(expected),
            "{expected} missing from:\n{first}"
        );
    }
    // The reference measures and SYNTHETIC monthly figures: 10 trusts × 2 measures × 36
    // months, and the ICS's measure view with Bradford's last FFT month a concern.
    assert!(
        first.contains("reference measures: 13 (13 defined, 0 already installed)"),
        "{first}"
    );
    assert!(
        first.contains("20 series, 720 observations: 720 recorded, 0 unchanged"),
        "{first}"
    );
    let measure_rows = |output: &str, ods_code: &str, measure_code: &str| {
        output
            .lines()
            .find(|line| {
                line.starts_with(&format!("{ods_code} "))
                    && line.contains(&format!(" {measure_code} "))
            })
            .unwrap_or_else(|| panic!("no {measure_code} row of {ods_code} in:\n{output}"))
            .to_owned()
    };
    assert!(measure_rows(&first, "RAE", "FFT_POSITIVE").contains("concern-low"));
    assert!(measure_rows(&first, "RR8", "FFT_POSITIVE").contains("common-cause"));
    assert!(measure_rows(&first, "RXF", "STAFF_LEAVER_RATE").contains("improvement-low"));

    // Deterministic request ids: a second run replays every command, writes nothing, and prints
    // the same overviews; the same observations again are left unchanged.
    let events = event_count(&deployment).await;
    let measure_events = metrics_event_count(&deployment).await;
    let (succeeded, second) = deployment.icsctl(&server, &["demo"]).await;
    assert!(succeeded, "a second icsctl demo failed:\n{second}");
    assert!(second.contains(" 0 written"), "{second}");
    assert!(
        second.contains("reference measures: 13 (0 defined, 13 already installed)"),
        "{second}"
    );
    assert!(
        second.contains("20 series, 720 observations: 0 recorded, 720 unchanged"),
        "{second}"
    );
    assert_eq!(event_count(&deployment).await, events);
    assert_eq!(metrics_event_count(&deployment).await, measure_events);

    // The ICS's board pack shows the measures: an XmR chart per series, a funnel for FFT.
    let pack = std::env::temp_dir().join(format!("ics-e2e-{}-qwo.html", uuid::Uuid::now_v7()));
    let (succeeded, output) = deployment
        .icsctl(
            &server,
            &[
                "report",
                "board-pack",
                "--ics",
                "QWO",
                "--format",
                "html",
                "--out",
                pack.to_str().unwrap(),
            ],
        )
        .await;
    assert!(succeeded, "{output}");
    assert!(
        output.contains("with 12 measure rows, 12 XmR charts and 1 funnel plot)"),
        "{output}"
    );
    let page = std::fs::read_to_string(&pack).unwrap();
    std::fs::remove_file(&pack).ok();
    let measures = &page[page.find("<h2>Measures</h2>").expect("a measures section")..];
    // Twelve XmR charts and a funnel plot, beside a Making Data Count icon for each row's
    // variation and each assurance.
    let icons = measures.matches("class=\"mdc-icon\"").count();
    assert_eq!(measures.matches("<svg ").count() - icons, 13);
    assert!(icons >= 12, "{icons} icons");
    assert!(measures.contains("<span>special cause concern (low values)</span>"));

    // As CSV, the service sends one file per table: the outcomes, then the measures, with fixed
    // decimals and no figure where there is no data.
    let directory = std::env::temp_dir().join(format!("ics-e2e-{}-qwo", uuid::Uuid::now_v7()));
    let (succeeded, output) = deployment
        .icsctl(
            &server,
            &[
                "report",
                "board-pack",
                "--ics",
                "QWO",
                "--format",
                "csv",
                "--out",
                directory.to_str().unwrap(),
            ],
        )
        .await;
    assert!(succeeded, "{output}");
    assert!(
        output.contains("(2 files, with 12 measure rows)"),
        "{output}"
    );
    let mut files: Vec<String> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let today = chrono::Utc::now().date_naive();
    assert_eq!(
        files,
        [
            format!("board-pack-QWO-{today}-measures.csv"),
            format!("board-pack-QWO-{today}-outcomes.csv"),
        ]
    );
    let measures_csv =
        std::fs::read_to_string(directory.join(&files[0])).expect("the measures table");
    let outcomes_csv =
        std::fs::read_to_string(directory.join(&files[1])).expect("the outcomes table");
    std::fs::remove_dir_all(&directory).ok();
    assert!(outcomes_csv.starts_with("scope_type,scope_id,scope_name,as_of,level,"));
    assert!(measures_csv.starts_with("scope_type,scope_id,scope_name,as_of,ods_code,"));
    assert_eq!(measures_csv.lines().count(), 1 + 12);
    let bradford_fft = measures_csv
        .lines()
        .find(|line| line.contains(",RAE,") && line.contains(",FFT_POSITIVE,"))
        .expect("Bradford's FFT row");
    assert!(bradford_fft.contains(",concern-low,"), "{bradford_fft}");
    for table in [&outcomes_csv, &measures_csv] {
        assert!(!table.contains("\r\n\r\n"), "one table a file:\n{table}");
        for line in table.lines().skip(1) {
            for cell in line.split(',') {
                // Fixed decimals: never a binary fraction written out in full.
                let decimals = cell.split_once('.').map_or(0, |(_, after)| after.len());
                assert!(
                    cell.parse::<f64>().is_err() || decimals <= 4,
                    "{cell} in {line}"
                );
            }
        }
    }
    // One table on its own, into the file named.
    let single = std::env::temp_dir().join(format!("ics-e2e-{}.csv", uuid::Uuid::now_v7()));
    let (succeeded, output) = deployment
        .icsctl(
            &server,
            &[
                "report",
                "board-pack",
                "--ics",
                "QWO",
                "--format",
                "csv",
                "--table",
                "measures",
                "--out",
                single.to_str().unwrap(),
            ],
        )
        .await;
    assert!(succeeded, "{output}");
    assert_eq!(std::fs::read_to_string(&single).unwrap(), measures_csv);
    std::fs::remove_file(&single).ok();
    check_lookups(&deployment, &server).await;
    check_fhir(&deployment, &server).await;
    let overviews =
        |output: &str| output[output.find("Programme overview").unwrap_or(0)..].to_string();
    assert_eq!(overviews(&first), overviews(&second));

    assert!(
        server.terminate().await,
        "icsd all did not shut down cleanly"
    );
    deployment.finish().await;
}

/// The demo's measures as HL7 FHIR R4, over gRPC and HTTP, each answer valid under HL7's R4
/// JSON schema, and a trust read only within the caller's scope.
async fn check_fhir(deployment: &Deployment, server: &ics_e2e::Server) {
    use ics_e2e::http_request;
    use ics_proto::reporting::v1::{GetFhirMeasureReportsRequest, GetFhirMeasuresRequest};
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../crates/ics-fhir/tests/fixtures/fhir.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let valid = |json: &str| -> serde_json::Value {
        let resource: serde_json::Value = serde_json::from_str(json).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&resource)
            .map(|error| error.to_string())
            .take(5)
            .collect();
        assert!(errors.is_empty(), "not FHIR R4: {errors:?}\n{json}");
        resource
    };
    let board = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    });
    let bradford = deployment.token(&Principal::TrustWriter {
        ods_code: "RAE".into(),
    });
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);

    let measures = reporting
        .get_fhir_measures(authorized(&board, GetFhirMeasuresRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(measures.content_type.starts_with("application/fhir+json"));
    let measures = valid(&measures.json);
    assert_eq!(measures["resourceType"], "Bundle");
    assert_eq!(measures["total"], 13, "the reference measures");

    // Every period of Bradford's two series, one report each, then one per measure over them.
    let wide = "period=2000-01-01/2030-12-31";
    let reports = http_request(
        &server.dashboard_url,
        &format!("/fhir/MeasureReport?subject=RAE&{wide}"),
        Some(&board),
    )
    .await;
    assert_eq!(reports.status, 200, "{}", reports.body);
    assert!(
        reports
            .header("content-type")
            .is_some_and(|value| value.starts_with("application/fhir+json")),
        "{}",
        reports.head
    );
    let bundle = valid(&reports.body);
    assert_eq!(bundle["total"], 72);
    let first = &bundle["entry"][0]["resource"];
    assert_eq!(first["resourceType"], "MeasureReport");
    assert_eq!(
        first["reporter"]["identifier"]["system"],
        "https://fhir.nhs.uk/Id/ods-organization-code"
    );
    assert_eq!(first["reporter"]["identifier"]["value"], "RAE");
    let aggregated = http_request(
        &server.dashboard_url,
        &format!("/fhir/MeasureReport?subject=https://fhir.nhs.uk/Id/ods-organization-code|RAE&{wide}&aggregate=true&measure=FFT_POSITIVE"),
        Some(&bradford),
    )
    .await;
    assert_eq!(aggregated.status, 200, "{}", aggregated.body);
    assert_eq!(valid(&aggregated.body)["total"], 1);
    // The same over gRPC, through the board's scope.
    let grpc = reporting
        .get_fhir_measure_reports(authorized(
            &board,
            GetFhirMeasureReportsRequest {
                scope: ics("QWO"),
                ods_code: "RAE".into(),
                period_start: day(2000, 1, 1),
                period_end: day(2030, 12, 31),
                measure_code: String::new(),
                aggregate: true,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(valid(&grpc.json)["total"], 2);

    // Refusals, each an OperationOutcome: another ICS's trust is not found for the board, and
    // forbidden to another trust; no token; a malformed period.
    for (path, token, status) in [
        (
            format!("/fhir/MeasureReport?subject=RTP&{wide}"),
            Some(&board),
            404,
        ),
        (
            format!("/fhir/MeasureReport?subject=RR8&{wide}"),
            Some(&bradford),
            403,
        ),
        (format!("/fhir/MeasureReport?subject=RAE&{wide}"), None, 401),
        (
            "/fhir/MeasureReport?subject=RAE&period=2024".to_owned(),
            Some(&board),
            400,
        ),
        ("/fhir/Measure".to_owned(), None, 401),
    ] {
        let refused = http_request(&server.dashboard_url, &path, token.map(String::as_str)).await;
        assert_eq!(refused.status, status, "{path}: {}", refused.body);
        let outcome = valid(&refused.body);
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{path}");
    }
    let refused = http_request(
        &server.dashboard_url,
        "/fhir/MeasureReport?subject=RAE&period=2024",
        Some(&board),
    )
    .await;
    assert!(refused.body.contains("period"), "{}", refused.body);
}

/// The lookups over the demo's world: the pages of a list are the whole list, in order, each
/// entry belongs to the board's scope, and a page token is refused with another scope or other
/// filters.
async fn check_lookups(deployment: &Deployment, server: &ics_e2e::Server) {
    use ics_proto::reporting::v1::{
        ListPeerGroupsRequest, ListProgrammesRequest, ListSeriesRequest, ListValueStreamsRequest,
    };
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);
    let board = |ics: &str| {
        deployment.token(&Principal::BoardReader {
            ics_ods_code: Some(ics.into()),
            programme_id: None,
        })
    };
    let (west_yorkshire, surrey) = (board("QWO"), board("QXU"));
    let members =
        |overview: ics_proto::reporting::v1::Overview| -> std::collections::BTreeSet<String> {
            overview
                .trusts
                .into_iter()
                .map(|trust| trust.ods_code)
                .collect()
        };
    let west_yorkshire_trusts = members(
        reporting
            .get_overview(authorized(
                &west_yorkshire,
                GetOverviewRequest {
                    scope: ics("QWO"),
                    as_of: None,
                },
            ))
            .await
            .unwrap()
            .into_inner(),
    );

    let series_page = |token: &str, scope: &str, measure: &str, page_size: u32| ListSeriesRequest {
        scope: ics(scope),
        measure_code: measure.to_owned(),
        page_size,
        page_token: token.to_owned(),
        ..Default::default()
    };
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = reporting
            .list_series(authorized(
                &west_yorkshire,
                series_page(&token, "QWO", "", 3),
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.series.len() <= 3);
        pages += 1;
        paged.extend(page.series);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let whole = reporting
        .list_series(authorized(
            &west_yorkshire,
            series_page("", "QWO", "", 1000),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(whole.next_page_token.is_empty());
    // Six member trusts with two measures each, as the board pack's twelve rows.
    assert_eq!(whole.series.len(), 12);
    assert_eq!(paged, whole.series);
    assert_eq!(pages, 4);
    for entry in &whole.series {
        let key = entry.series.as_ref().unwrap();
        assert!(west_yorkshire_trusts.contains(&key.ods_code), "{key:?}");
        assert_eq!(entry.points, 36, "{key:?}");
    }

    // A token is bound to its scope and filters: not Surrey's to replay, nor the operator's
    // with another scope, nor West Yorkshire's with a measure filter added.
    let first = reporting
        .list_series(authorized(&west_yorkshire, series_page("", "QWO", "", 5)))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let operator = deployment.token(&Principal::Operator);
    for (token, scope, measure) in [
        (&surrey, "QXU", ""),
        (&operator, "QXU", ""),
        (&west_yorkshire, "QWO", "FFT_POSITIVE"),
    ] {
        let refused = reporting
            .list_series(authorized(
                token,
                series_page(&first.next_page_token, scope, measure, 5),
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(violated_fields(&refused), ["page_token"]);
    }
    // Surrey's own list holds none of West Yorkshire's trusts, and West Yorkshire cannot read it.
    let surreys = reporting
        .list_series(authorized(&surrey, series_page("", "QXU", "", 1000)))
        .await
        .unwrap()
        .into_inner();
    assert!(!surreys.series.is_empty());
    for entry in &surreys.series {
        assert!(!west_yorkshire_trusts.contains(&entry.series.as_ref().unwrap().ods_code));
    }
    let refused = reporting
        .list_series(authorized(&west_yorkshire, series_page("", "QXU", "", 10)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Value streams of the scope's trusts; a trust outside it is NOT_FOUND.
    let value_streams = reporting
        .list_value_streams(authorized(
            &west_yorkshire,
            ListValueStreamsRequest {
                scope: ics("QWO"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!value_streams.value_streams.is_empty());
    for value_stream in &value_streams.value_streams {
        assert!(west_yorkshire_trusts.contains(&value_stream.ods_code));
    }
    let outside = reporting
        .list_value_streams(authorized(
            &west_yorkshire,
            ListValueStreamsRequest {
                scope: ics("QWO"),
                ods_code: "RTP".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(outside.code(), Code::NotFound);

    // The programme the demo registered, joined by West Yorkshire's trusts.
    let programmes = reporting
        .list_programmes(authorized(
            &west_yorkshire,
            ListProgrammesRequest {
                scope: ics("QWO"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(programmes.programmes.len(), 1, "{programmes:?}");
    assert!(programmes.programmes[0].trusts >= 1);
    let peer_groups = reporting
        .list_peer_groups(authorized(
            &west_yorkshire,
            ListPeerGroupsRequest {
                ics_ods_code: "QWO".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(peer_groups.next_page_token.is_empty());

    // The same lists from icsctl, which reads every page.
    let (succeeded, output) = deployment
        .icsctl(
            server,
            &["series", "list", "--ics", "QWO", "--page-size", "5"],
        )
        .await;
    assert!(succeeded, "{output}");
    assert!(output.contains("12 series"), "{output}");
    let (succeeded, output) = deployment
        .icsctl(server, &["programme", "list", "--ics", "QWO"])
        .await;
    assert!(succeeded, "{output}");
    assert!(
        output.contains(&programmes.programmes[0].programme_id),
        "{output}"
    );
    let (succeeded, output) = deployment
        .icsctl(
            server,
            &[
                "value-stream",
                "list",
                "--ics",
                "QWO",
                "--page-size",
                "1",
                "--page-token",
                &first.next_page_token,
            ],
        )
        .await;
    assert!(
        !succeeded,
        "another list's token must be refused:\n{output}"
    );
}

#[tokio::test]
async fn a_workshop_from_charter_to_follow_up_moves_the_ics_outcomes_on_an_open_watch() {
    use ics_proto::events::v1::{
        FollowUpCheckpoint, MetricKind, MetricUnit, MetricValue, TargetMetric,
        ValueStreamDefinition, ValueStreamOrigin, ValueStreamStatus,
    };
    use ics_proto::reporting::v1::WatchOutcomesRequest;
    use ics_proto::trusts::v1::{CloseValueStreamRequest, DefineValueStreamRequest};
    use ics_proto::workshops::v1::{
        CharterWorkshopRequest, DeliverReportOutRequest, GetWorkshopRequest, RecordFollowUpRequest,
        RecordWorkshopHeldRequest, ScheduleWorkshopRequest,
        workshops_service_client::WorkshopsServiceClient,
    };

    let deployment = Deployment::new().await;
    let mut server = deployment.start("all").await;
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let mut workshops = WorkshopsServiceClient::new(channel(&server.workshops_url).await);
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);
    let operator = deployment.token(&Principal::Operator);
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    let surrey = deployment.token(&Principal::TrustWriter {
        ods_code: "RTP".into(),
    });
    let board = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    });
    register_two_icss(&mut trusts, &operator).await;
    let define = |name: &str| DefineValueStreamRequest {
        options: options(),
        ods_code: "RR8".into(),
        definition: Some(ValueStreamDefinition {
            name: name.into(),
            pathway: "Referral to first appointment".into(),
            sponsor: String::new(),
            lead: String::new(),
            origin: ValueStreamOrigin::BottomUp as i32,
            outcome_measures: vec![],
        }),
        status: ValueStreamStatus::Active as i32,
    };
    let outpatients = trusts
        .define_value_stream(authorized(&leeds, define("Outpatients")))
        .await
        .unwrap()
        .into_inner()
        .stream_id
        .trim_start_matches("value-stream-")
        .to_string();
    let pathology = trusts
        .define_value_stream(authorized(&leeds, define("Pathology")))
        .await
        .unwrap()
        .into_inner()
        .stream_id
        .trim_start_matches("value-stream-")
        .to_string();

    let charter = |value_stream_id: &str, metric: TargetMetric| CharterWorkshopRequest {
        options: options(),
        ods_code: "RR8".into(),
        value_stream_id: value_stream_id.into(),
        kind: 0,
        title: "Clinic letters within 48 hours".into(),
        roles: None,
        preparation_starts_on: day(2017, 1, 9),
        target_sheet: vec![metric],
    };
    let hours = TargetMetric {
        metric_id: "wait".into(),
        name: "Letter turnaround".into(),
        kind: MetricKind::ProcessTime as i32,
        unit: MetricUnit::Hours as i32,
        baseline: 120.0,
        target: 48.0,
    };
    let workshop_id =
        charter_when_known(&mut workshops, &leeds, charter(&outpatients, hours.clone())).await;

    // Bad input: a unit that does not fit, an error rate over 100%, another trust's writer.
    let mut minutes_as_percent = hours.clone();
    minutes_as_percent.unit = MetricUnit::Percent as i32;
    let refused = workshops
        .charter_workshop(authorized(
            &leeds,
            charter(&outpatients, minutes_as_percent),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), vec!["target_sheet[0].unit"]);
    let rate = TargetMetric {
        metric_id: "errors".into(),
        name: "Letters with errors".into(),
        kind: MetricKind::ErrorRate as i32,
        unit: MetricUnit::Percent as i32,
        baseline: 140.0,
        target: 5.0,
    };
    let refused = workshops
        .charter_workshop(authorized(&leeds, charter(&outpatients, rate)))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), vec!["target_sheet[0].baseline"]);
    let refused = workshops
        .schedule_workshop(authorized(
            &surrey,
            ScheduleWorkshopRequest {
                options: options(),
                workshop_id: workshop_id.clone(),
                starts_on: day(2017, 3, 6),
                ends_on: day(2017, 3, 10),
                duration_override_reason: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // A follow-up before the workshop was held.
    let refused = workshops
        .record_follow_up(authorized(
            &leeds,
            RecordFollowUpRequest {
                options: options(),
                workshop_id: workshop_id.clone(),
                checkpoint: FollowUpCheckpoint::Day30 as i32,
                measured_on: day(2017, 4, 10),
                values: vec![MetricValue {
                    metric_id: "wait".into(),
                    value: 50.0,
                }],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    // A workshop chartered on a value stream that then closes carries on; new ones are refused.
    let chartered_before_closing =
        charter_when_known(&mut workshops, &leeds, charter(&pathology, hours.clone())).await;
    trusts
        .close_value_stream(authorized(
            &leeds,
            CloseValueStreamRequest {
                options: options(),
                value_stream_id: pathology.clone(),
                closed_on: day(2021, 6, 30),
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = workshops
            .charter_workshop(authorized(&leeds, charter(&pathology, hours.clone())))
            .await;
        match attempt {
            Err(status) if status.code() == Code::FailedPrecondition => break,
            // Until the closure reaches the workshops service, the charter may pass or the
            // value stream be unknown; a charter that passed is harmless here.
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "the closed value stream still takes workshops"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    workshops
        .schedule_workshop(authorized(
            &leeds,
            ScheduleWorkshopRequest {
                options: options(),
                workshop_id: chartered_before_closing,
                starts_on: day(2017, 3, 6),
                ends_on: day(2017, 3, 8),
                duration_override_reason: String::new(),
            },
        ))
        .await
        .expect("a workshop chartered before its value stream closed carries on");

    // The board of West Yorkshire watches its outcomes.
    let mut watch = reporting
        .watch_outcomes(authorized(
            &board,
            WatchOutcomesRequest { scope: ics("QWO") },
        ))
        .await
        .unwrap()
        .into_inner();
    watch.next().await.unwrap().unwrap();

    workshops
        .schedule_workshop(authorized(
            &leeds,
            ScheduleWorkshopRequest {
                options: options(),
                workshop_id: workshop_id.clone(),
                starts_on: day(2017, 3, 6),
                ends_on: day(2017, 3, 10),
                duration_override_reason: String::new(),
            },
        ))
        .await
        .unwrap();
    workshops
        .record_workshop_held(authorized(
            &leeds,
            RecordWorkshopHeldRequest {
                options: options(),
                workshop_id: workshop_id.clone(),
                held_from: None,
                held_to: None,
            },
        ))
        .await
        .unwrap();
    workshops
        .deliver_report_out(authorized(
            &leeds,
            DeliverReportOutRequest {
                options: options(),
                workshop_id: workshop_id.clone(),
                delivered_on: day(2017, 3, 10),
                after: vec![MetricValue {
                    metric_id: "wait".into(),
                    value: 30.0,
                }],
            },
        ))
        .await
        .unwrap();
    let process_time = |outcomes: &ics_proto::reporting::v1::Outcomes| {
        outcomes
            .headline
            .iter()
            .find(|kind| kind.kind == MetricKind::ProcessTime as i32)
            .cloned()
            .unwrap_or_default()
    };
    let reported = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let update = watch.next().await.unwrap().unwrap();
            let headline = process_time(update.outcomes.as_ref().unwrap());
            if headline.workshops == 1 {
                return headline;
            }
        }
    })
    .await
    .expect("the report-out reached the watch");
    assert!(
        (reported.pooled_reduction - 0.75).abs() < 1e-9,
        "{reported:?}"
    );
    assert!((reported.absolute_reduction - 90.0).abs() < 1e-9);

    workshops
        .record_follow_up(authorized(
            &leeds,
            RecordFollowUpRequest {
                options: options(),
                workshop_id: workshop_id.clone(),
                checkpoint: FollowUpCheckpoint::Day30 as i32,
                measured_on: day(2017, 4, 10),
                values: vec![MetricValue {
                    metric_id: "wait".into(),
                    value: 40.0,
                }],
            },
        ))
        .await
        .unwrap();
    let sustained = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let update = watch.next().await.unwrap().unwrap();
            let headline = process_time(update.outcomes.as_ref().unwrap());
            let day30 = headline
                .sustainment
                .iter()
                .find(|row| row.checkpoint == FollowUpCheckpoint::Day30 as i32)
                .cloned()
                .unwrap_or_default();
            if day30.measured == 1 {
                return day30;
            }
        }
    })
    .await
    .expect("the follow-up reached the watch");
    assert_eq!(sustained.sustained, 1);

    // The 60-, 90- and 365-day follow-ups were due years ago: the service records them missed
    // by itself (the scheduler runs every second in tests).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let workshop = workshops
            .get_workshop(authorized(
                &leeds,
                GetWorkshopRequest {
                    workshop_id: workshop_id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let missed = workshop
            .follow_ups
            .iter()
            .filter(|follow_up| {
                follow_up.state == ics_proto::workshops::v1::FollowUpState::Missed as i32
            })
            .count();
        if missed == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missed follow-ups were not recorded: {workshop:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    drop(watch);
    assert!(
        server.terminate().await,
        "icsd all did not shut down cleanly"
    );
    deployment.finish().await;
}

/// Operators reach every service's projections by name: the reporting views, the workshops'
/// and metrics' read models of the trusts service, and the trusts' and workshops' lists; an
/// unknown name is answered with the valid ones.
#[tokio::test]
async fn operators_reach_every_projection_by_name() {
    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;
    let output = deployment
        .icsctl_output(
            &server,
            &["admin", "dead-letters", "--projection", "references"],
        )
        .await;
    assert!(output.success, "{}", output.stderr);
    assert!(
        output.stdout.contains("0 dead letters"),
        "{}",
        output.stdout
    );
    let output = deployment
        .icsctl_output(
            &server,
            &["admin", "rebuild", "--projection", "metrics_references"],
        )
        .await;
    assert!(output.success, "{}", output.stderr);
    assert!(
        output
            .stdout
            .contains("rebuilt projection metrics_references"),
        "{}",
        output.stdout
    );
    let output = deployment
        .icsctl_output(&server, &["admin", "rebuild", "--projection", "overveiw"])
        .await;
    assert!(!output.success);
    for name in [
        "overview",
        "outcomes",
        "measures",
        "references",
        "follow_ups",
        "metrics_references",
        "organisation_list",
        "workshop_list",
    ] {
        assert!(
            output.stderr.contains(name),
            "{name} missing from: {}",
            output.stderr
        );
    }
    deployment.finish().await;
}
