//! ListOrganisations and ListWorkshops against the real binaries: served a page at a time from
//! the services' read models of their own streams, each entry what folding its stream gives
//! (GetOrganisation and GetWorkshop fold the record), tokens bound to their caller and filters,
//! and a rebuild of either read model giving the same list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ics_e2e::{Deployment, authorized, channel, options, violated_fields};
use ics_proto::admin::v1::admin_service_client::AdminServiceClient;
use ics_proto::admin::v1::{RebuildProjectionRequest, VerifyRequest};
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    CqcRating, CqcRatings, Date, ExecutiveRole, FollowUpCheckpoint, MetricKind, MetricUnit,
    MetricValue, OrganisationKind, TargetMetric, ValueStreamDefinition, ValueStreamOrigin,
    ValueStreamStatus,
};
use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
use ics_proto::trusts::v1::{
    AppointExecutiveRequest, DefineValueStreamRequest, GetOrganisationRequest,
    LinkOrganisationRequest, ListOrganisationsRequest, ListOrganisationsResponse, Organisation,
    PublishCqcRatingRequest, RecordExecutiveDepartureRequest, RegisterOrganisationRequest,
    RenameOrganisationRequest, UnlinkOrganisationRequest,
};
use ics_proto::workshops::v1::workshops_service_client::WorkshopsServiceClient;
use ics_proto::workshops::v1::{
    CancelWorkshopRequest, CharterWorkshopRequest, DeliverReportOutRequest, FollowUpState,
    GetWorkshopRequest, ListWorkshopsRequest, ListWorkshopsResponse, RecordFollowUpRequest,
    RecordWorkshopHeldRequest, ScheduleWorkshopRequest, Workshop,
};
use ics_service_kit::Principal;
use tonic::Code;
use tonic::transport::Channel;

/// More entries than two default pages hold.
const ENTRIES: usize = 250;
/// Calls in flight while the test writes its many entries.
const WRITERS: usize = 8;

fn day(year: i32, month: u32, day: u32) -> Option<Date> {
    Some(from_naive(
        chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap(),
    ))
}

fn trust_code(index: usize) -> String {
    format!("R{index:03}")
}

/// Runs the calls `WRITERS` at a time, in any order.
async fn all<F: Future<Output = ()>>(calls: impl IntoIterator<Item = F>) {
    futures_util::stream::iter(calls)
        .buffer_unordered(WRITERS)
        .collect::<Vec<()>>()
        .await;
}

/// Polls `read` until it equals `expected` (the read models follow the record within
/// milliseconds), and fails with both after 20 s.
async fn until_equal<T, F, Fut>(what: &str, expected: &T, mut read: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = read().await;
        if &read == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never matched:\nread {read:#?}\nexpected {expected:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn organisation_page(
    trusts: &mut TrustsServiceClient<Channel>,
    token: &str,
    request: ListOrganisationsRequest,
) -> Result<ListOrganisationsResponse, tonic::Status> {
    trusts
        .list_organisations(authorized(token, request))
        .await
        .map(tonic::Response::into_inner)
}

/// Every page of size `page_size`, each checked to be full but the last.
async fn organisations_by_page(
    trusts: &mut TrustsServiceClient<Channel>,
    token: &str,
    request: ListOrganisationsRequest,
    page_size: u32,
) -> Vec<Vec<Organisation>> {
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = organisation_page(
            trusts,
            token,
            ListOrganisationsRequest {
                page_size,
                page_token,
                ..request.clone()
            },
        )
        .await
        .unwrap();
        let last = page.next_page_token.is_empty();
        assert!(
            last || page.organisations.len() == page_size as usize,
            "a page before the last is full"
        );
        pages.push(page.organisations);
        if last {
            return pages;
        }
        page_token = page.next_page_token;
    }
}

/// Every organisation folded from the record, as GetOrganisation answers the operator.
async fn folded_organisations(
    trusts: &mut TrustsServiceClient<Channel>,
    operator: &str,
    codes: &[String],
) -> Vec<Organisation> {
    let mut folded = Vec::new();
    for ods_code in codes {
        folded.push(
            trusts
                .get_organisation(authorized(
                    operator,
                    GetOrganisationRequest {
                        ods_code: ods_code.clone(),
                        as_of: None,
                    },
                ))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    folded
}

fn codes(organisations: &[Organisation]) -> Vec<String> {
    organisations
        .iter()
        .map(|organisation| organisation.ods_code.clone())
        .collect()
}

/// The parent an organisation belonged to on `date` (what the scope of a board follows).
fn parent_on(organisation: &Organisation, date: chrono::NaiveDate) -> Option<&str> {
    organisation
        .parents
        .iter()
        .find(|link| {
            let from = link.valid_from.as_ref().and_then(ics_proto::date::to_naive);
            let to = link.valid_to.as_ref().and_then(ics_proto::date::to_naive);
            from.is_some_and(|from| from <= date) && to.is_none_or(|to| date <= to)
        })
        .map(|link| link.parent_ods_code.as_str())
}

fn refused_naming_page_token(result: Result<ListOrganisationsResponse, tonic::Status>) {
    let status = result.expect_err("another caller's or query's token is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), vec!["page_token"], "{status:?}");
}

#[tokio::test]
async fn organisations_are_listed_a_page_at_a_time_from_their_read_model() {
    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;
    let trusts_channel = channel(&server.url).await;
    let mut trusts = TrustsServiceClient::new(trusts_channel.clone());
    let operator = deployment.token(&Principal::Operator);
    let client = trusts.clone();
    let register = |ods_code: String, kind: OrganisationKind| {
        let mut trusts = client.clone();
        let operator = operator.clone();
        async move {
            trusts
                .register_organisation(authorized(
                    &operator,
                    RegisterOrganisationRequest {
                        options: options(),
                        name: format!("{ods_code} organisation"),
                        ods_code,
                        kind: kind as i32,
                    },
                ))
                .await
                .unwrap();
        }
    };
    let link = |ods_code: String, parent: &'static str, valid_from: Option<Date>| {
        let mut trusts = client.clone();
        let operator = operator.clone();
        async move {
            trusts
                .link_organisation(authorized(
                    &operator,
                    LinkOrganisationRequest {
                        options: options(),
                        ods_code,
                        parent_ods_code: parent.into(),
                        valid_from,
                    },
                ))
                .await
                .unwrap();
        }
    };
    // Two ICBs, and 250 trusts in West Yorkshire (even) or Surrey Heartlands (odd) since 2020.
    all([
        register("QWO".into(), OrganisationKind::Icb),
        register("QXU".into(), OrganisationKind::Icb),
    ])
    .await;
    all((0..ENTRIES).map(|index| register(trust_code(index), OrganisationKind::Trust))).await;
    let ics_of = |index: usize| {
        if index.is_multiple_of(2) {
            "QWO"
        } else {
            "QXU"
        }
    };
    all((0..ENTRIES).map(|index| link(trust_code(index), ics_of(index), day(2020, 1, 1)))).await;

    // What the read model must follow: renames, a move between ICSs, ratings (the later first),
    // an executive appointed and departed.
    for (ods_code, name) in [("R001", "Renamed once"), ("R001", "Renamed twice")] {
        trusts
            .rename_organisation(authorized(
                &operator,
                RenameOrganisationRequest {
                    options: options(),
                    ods_code: ods_code.into(),
                    name: name.into(),
                },
            ))
            .await
            .unwrap();
    }
    trusts
        .unlink_organisation(authorized(
            &operator,
            UnlinkOrganisationRequest {
                options: options(),
                ods_code: "R003".into(),
                parent_ods_code: "QXU".into(),
                valid_to: day(2024, 6, 30),
            },
        ))
        .await
        .unwrap();
    link("R003".into(), "QWO", day(2024, 7, 1)).await;
    for (published_on, overall) in [
        (day(2023, 5, 1), CqcRating::RequiresImprovement),
        (day(2021, 5, 1), CqcRating::Good),
    ] {
        trusts
            .publish_cqc_rating(authorized(
                &operator,
                PublishCqcRatingRequest {
                    options: options(),
                    ods_code: "R004".into(),
                    published_on,
                    ratings: Some(CqcRatings {
                        overall: overall as i32,
                        safe: CqcRating::Good as i32,
                        effective: CqcRating::Good as i32,
                        caring: CqcRating::Outstanding as i32,
                        responsive: CqcRating::Good as i32,
                        well_led: overall as i32,
                    }),
                },
            ))
            .await
            .unwrap();
    }
    trusts
        .appoint_executive(authorized(
            &operator,
            AppointExecutiveRequest {
                options: options(),
                ods_code: "R005".into(),
                role: ExecutiveRole::ChiefExecutive as i32,
                person_name: "A Chief Executive".into(),
                started_on: day(2019, 4, 1),
            },
        ))
        .await
        .unwrap();
    let appointment_id = folded_organisations(&mut trusts, &operator, &["R005".into()]).await[0]
        .executives[0]
        .appointment_id
        .clone();
    trusts
        .record_executive_departure(authorized(
            &operator,
            RecordExecutiveDepartureRequest {
                options: options(),
                ods_code: "R005".into(),
                appointment_id,
                left_on: day(2024, 3, 31),
                reason: "Retired".into(),
            },
        ))
        .await
        .unwrap();

    // Each listed organisation is what folding its stream gives, in ODS code order.
    let mut all_codes: Vec<String> = (0..ENTRIES).map(trust_code).collect();
    all_codes.extend(["QWO".to_owned(), "QXU".to_owned()]);
    all_codes.sort();
    let folded = folded_organisations(&mut trusts, &operator, &all_codes).await;
    let whole = |token: String, request: ListOrganisationsRequest| {
        let listing = trusts_channel.clone();
        async move { ics_e2e::list_organisations(&listing, &token, request).await }
    };
    until_equal("the operator's list", &folded, || {
        whole(operator.clone(), ListOrganisationsRequest::default())
    })
    .await;
    let r001 = folded.iter().find(|o| o.ods_code == "R001").unwrap();
    assert_eq!((r001.name.as_str(), r001.version), ("Renamed twice", 4));
    let r004 = folded.iter().find(|o| o.ods_code == "R004").unwrap();
    assert_eq!(r004.cqc_ratings[0].published_on, day(2021, 5, 1));

    // Pages of 100 concatenated are the whole list: 100, 100 and 52.
    let pages = organisations_by_page(
        &mut trusts,
        &operator,
        ListOrganisationsRequest::default(),
        100,
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [100, 100, ENTRIES + 2 - 200]
    );
    assert_eq!(pages.concat(), folded);
    // A size above the most is lowered to it; 0 is the default of 100.
    let one_page = organisation_page(
        &mut trusts,
        &operator,
        ListOrganisationsRequest {
            page_size: 5000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(one_page.organisations, folded);
    assert!(one_page.next_page_token.is_empty());
    let first = organisation_page(&mut trusts, &operator, ListOrganisationsRequest::default())
        .await
        .unwrap();
    assert_eq!(first.organisations, pages[0]);

    // Filters and scopes hold across pages: kind, a board's ICS on the day, a trust's writer.
    let icbs = whole(
        operator.clone(),
        ListOrganisationsRequest {
            kind: OrganisationKind::Icb as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(codes(&icbs), ["QWO", "QXU"]);
    let west_yorkshire = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    });
    for as_of in [None, day(2023, 1, 1)] {
        let on = as_of
            .as_ref()
            .and_then(ics_proto::date::to_naive)
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        let expected: Vec<Organisation> = folded
            .iter()
            .filter(|o| o.ods_code == "QWO" || parent_on(o, on) == Some("QWO"))
            .cloned()
            .collect();
        let request = ListOrganisationsRequest {
            as_of,
            ..Default::default()
        };
        let pages = organisations_by_page(&mut trusts, &west_yorkshire, request.clone(), 40).await;
        assert_eq!(pages.len(), expected.len().div_ceil(40));
        assert_eq!(pages.concat(), expected, "as of {on}");
        assert_eq!(
            codes(&expected).contains(&"R003".to_owned()),
            as_of.is_none(),
            "R003 moved to West Yorkshire in July 2024"
        );
    }
    let writer = deployment.token(&Principal::TrustWriter {
        ods_code: "R010".into(),
    });
    assert_eq!(
        codes(&whole(writer.clone(), ListOrganisationsRequest::default()).await),
        ["R010"]
    );

    // A token belongs to its caller and filters: replayed by another caller, with another
    // kind or on another day, it is INVALID_ARGUMENT naming page_token, and leaks nothing.
    let token = first.next_page_token.clone();
    let replay = |kind: OrganisationKind, as_of: Option<Date>| ListOrganisationsRequest {
        kind: kind as i32,
        as_of,
        page_size: 0,
        page_token: token.clone(),
    };
    for caller in [&west_yorkshire, &writer] {
        refused_naming_page_token(
            organisation_page(
                &mut trusts,
                caller,
                replay(OrganisationKind::Unspecified, None),
            )
            .await,
        );
    }
    refused_naming_page_token(
        organisation_page(
            &mut trusts,
            &operator,
            replay(OrganisationKind::Trust, None),
        )
        .await,
    );
    refused_naming_page_token(
        organisation_page(
            &mut trusts,
            &operator,
            replay(OrganisationKind::Unspecified, day(2023, 1, 1)),
        )
        .await,
    );
    let second = organisation_page(
        &mut trusts,
        &operator,
        replay(OrganisationKind::Unspecified, None),
    )
    .await
    .unwrap();
    assert_eq!(second.organisations, pages[1]);

    // icsctl reads every page, or the one page a token names.
    let (succeeded, output) = deployment
        .icsctl(&server, &["org", "list", "--page-size", "100"])
        .await;
    assert!(succeeded, "{output}");
    assert!(output.contains("252 organisations"), "{output}");
    let (succeeded, output) = deployment
        .icsctl(
            &server,
            &["org", "list", "--page-size", "100", "--page-token", &token],
        )
        .await;
    assert!(succeeded, "{output}");
    assert!(output.contains("100 organisations"), "{output}");
    assert!(output.contains("next page: --page-token "), "{output}");

    // The operators' tools know the projection: verify finds it complete, and a rebuild from
    // the record gives the same list.
    let mut admin = AdminServiceClient::new(trusts_channel.clone());
    let verified = admin
        .verify(authorized(&operator, VerifyRequest {}))
        .await
        .unwrap()
        .into_inner();
    let check = verified
        .projections
        .iter()
        .find(|check| check.projection == "organisation_list")
        .expect("verify checks the organisation list");
    assert!(check.gaps.is_empty(), "{check:?}");
    let rebuilt = admin
        .rebuild_projection(authorized(
            &operator,
            RebuildProjectionRequest {
                projection: "organisation_list".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rebuilt.events_applied, check.log_events);
    until_equal("the rebuilt list", &folded, || {
        whole(operator.clone(), ListOrganisationsRequest::default())
    })
    .await;
    deployment.finish().await;
}

async fn workshop_page(
    workshops: &mut WorkshopsServiceClient<Channel>,
    token: &str,
    ods_code: &str,
    page_size: u32,
    page_token: &str,
) -> Result<ListWorkshopsResponse, tonic::Status> {
    workshops
        .list_workshops(authorized(
            token,
            ListWorkshopsRequest {
                ods_code: ods_code.into(),
                page_size,
                page_token: page_token.into(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn workshops_are_listed_a_page_at_a_time_from_their_read_model() {
    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let workshops_channel = channel(&server.workshops_url).await;
    let mut workshops = WorkshopsServiceClient::new(workshops_channel.clone());
    let operator = deployment.token(&Principal::Operator);
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    let surrey = deployment.token(&Principal::TrustWriter {
        ods_code: "RTP".into(),
    });
    let mut value_streams = Vec::new();
    for ods_code in ["RR8", "RTP"] {
        trusts
            .register_organisation(authorized(
                &operator,
                RegisterOrganisationRequest {
                    options: options(),
                    ods_code: ods_code.into(),
                    name: format!("{ods_code} trust"),
                    kind: OrganisationKind::Trust as i32,
                },
            ))
            .await
            .unwrap();
        let defined = trusts
            .define_value_stream(authorized(
                &operator,
                DefineValueStreamRequest {
                    options: options(),
                    ods_code: ods_code.into(),
                    definition: Some(ValueStreamDefinition {
                        name: "Outpatients".into(),
                        pathway: "Referral to first appointment".into(),
                        sponsor: String::new(),
                        lead: String::new(),
                        origin: ValueStreamOrigin::BottomUp as i32,
                        outcome_measures: vec![],
                    }),
                    status: ValueStreamStatus::Active as i32,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        value_streams.push(
            defined
                .stream_id
                .trim_start_matches("value-stream-")
                .to_owned(),
        );
    }
    let charter = |ods_code: &str, value_stream_id: &str, index: usize| CharterWorkshopRequest {
        options: options(),
        ods_code: ods_code.into(),
        value_stream_id: value_stream_id.into(),
        kind: 0,
        title: format!("Clinic letters {index}"),
        roles: None,
        preparation_starts_on: day(2017, 1, 9),
        target_sheet: vec![TargetMetric {
            metric_id: "wait".into(),
            name: "Letter turnaround".into(),
            kind: MetricKind::ProcessTime as i32,
            unit: MetricUnit::Hours as i32,
            baseline: 120.0,
            target: 48.0,
        }],
    };
    // The workshops service learns of the trusts from their events: the first charter of each
    // waits for that.
    let deadline = Instant::now() + Duration::from_secs(20);
    for (ods_code, value_stream_id) in [("RR8", &value_streams[0]), ("RTP", &value_streams[1])] {
        loop {
            match workshops
                .charter_workshop(authorized(&operator, charter(ods_code, value_stream_id, 0)))
                .await
            {
                Ok(_) => break,
                Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("charter refused: {status:?}"),
            }
        }
    }
    all((1..ENTRIES).map(|index| {
        let mut workshops = workshops.clone();
        let request = charter("RR8", &value_streams[0], index);
        let operator = operator.clone();
        async move {
            workshops
                .charter_workshop(authorized(&operator, request))
                .await
                .unwrap();
        }
    }))
    .await;

    // Each listed workshop is what folding its stream gives (GetWorkshop), in id order.
    let folded = |token: String, ods_code: &'static str| {
        let listing = workshops_channel.clone();
        async move {
            let mut workshops = WorkshopsServiceClient::new(listing.clone());
            let mut folded = Vec::new();
            for listed in ics_e2e::list_workshops(&listing, &token, ods_code).await {
                folded.push(
                    workshops
                        .get_workshop(authorized(
                            &token,
                            GetWorkshopRequest {
                                workshop_id: listed.workshop_id,
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner(),
                );
            }
            folded
        }
    };
    let listed = |token: String, ods_code: &'static str| {
        let listing = workshops_channel.clone();
        async move { ics_e2e::list_workshops(&listing, &token, ods_code).await }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while listed(operator.clone(), "RR8").await.len() < ENTRIES {
        assert!(Instant::now() < deadline, "the charters never all listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = listed(operator.clone(), "RR8")
        .await
        .into_iter()
        .map(|workshop| workshop.workshop_id)
        .collect();
    assert!(ids.is_sorted(), "listed in workshop id order");

    // Move four of them on: scheduled; held; reported out and followed up; cancelled.
    let (scheduled, held, reported, cancelled) = (&ids[10], &ids[20], &ids[30], &ids[40]);
    for workshop_id in [scheduled, held, reported, cancelled] {
        workshops
            .schedule_workshop(authorized(
                &operator,
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
    }
    for workshop_id in [held, reported] {
        workshops
            .record_workshop_held(authorized(
                &operator,
                RecordWorkshopHeldRequest {
                    options: options(),
                    workshop_id: workshop_id.clone(),
                    held_from: day(2017, 3, 7),
                    held_to: day(2017, 3, 10),
                },
            ))
            .await
            .unwrap();
    }
    let value = |value: f64| {
        vec![MetricValue {
            metric_id: "wait".into(),
            value,
        }]
    };
    workshops
        .deliver_report_out(authorized(
            &operator,
            DeliverReportOutRequest {
                options: options(),
                workshop_id: reported.clone(),
                delivered_on: day(2017, 3, 17),
                after: value(40.0),
            },
        ))
        .await
        .unwrap();
    workshops
        .record_follow_up(authorized(
            &operator,
            RecordFollowUpRequest {
                options: options(),
                workshop_id: reported.clone(),
                checkpoint: FollowUpCheckpoint::Day30 as i32,
                measured_on: day(2017, 4, 10),
                values: value(50.0),
            },
        ))
        .await
        .unwrap();
    workshops
        .cancel_workshop(authorized(
            &operator,
            CancelWorkshopRequest {
                options: options(),
                workshop_id: cancelled.clone(),
                cancelled_on: day(2017, 3, 1),
                reason: "Team redeployed".into(),
            },
        ))
        .await
        .unwrap();
    // The service records the reported-out workshop's overdue follow-ups as missed by itself
    // (the tests' grace is 0 days): once it has, the record stands still.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let workshop = workshops
            .get_workshop(authorized(
                &operator,
                GetWorkshopRequest {
                    workshop_id: reported.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let missed = workshop
            .follow_ups
            .iter()
            .filter(|follow_up| follow_up.state == FollowUpState::Missed as i32)
            .count();
        if missed == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "misses never recorded: {workshop:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected: Vec<Workshop> = folded(operator.clone(), "RR8").await;
    until_equal("Leeds's workshops", &expected, || {
        listed(operator.clone(), "RR8")
    })
    .await;
    let statuses: Vec<i32> = [scheduled, held, reported, cancelled]
        .iter()
        .map(|id| {
            expected
                .iter()
                .find(|w| &&w.workshop_id == id)
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(
        statuses,
        [2, 3, 4, 6],
        "scheduled, held, reported out, cancelled"
    );
    let reported_out = expected
        .iter()
        .find(|w| &w.workshop_id == reported)
        .unwrap();
    assert_eq!(
        reported_out.version, 8,
        "charter, schedule, held, report-out, a follow-up and three misses"
    );

    // Pages of 100 concatenated are the whole list: 100, 100 and 50, as Leeds's own writer
    // reads them (a tenant with a call rate: the operator made the many calls above).
    let mut pages: Vec<Vec<Workshop>> = Vec::new();
    let mut token = String::new();
    let mut first_token = String::new();
    loop {
        let page = workshop_page(&mut workshops, &leeds, "RR8", 100, &token)
            .await
            .unwrap();
        pages.push(page.workshops);
        if page.next_page_token.is_empty() {
            break;
        }
        if first_token.is_empty() {
            first_token = page.next_page_token.clone();
        }
        token = page.next_page_token;
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [100, 100, ENTRIES - 200]
    );
    assert_eq!(pages.concat(), expected);
    let default_size = workshop_page(&mut workshops, &leeds, "RR8", 0, "")
        .await
        .unwrap();
    assert_eq!(default_size.workshops, pages[0]);
    assert_eq!(default_size.next_page_token, first_token);

    // Another trust's list holds only its own; its writer reads nothing of Leeds's.
    let surrey_list = listed(surrey.clone(), "RTP").await;
    assert_eq!(surrey_list.len(), 1);
    assert!(
        surrey_list
            .iter()
            .all(|workshop| workshop.ods_code == "RTP")
    );
    let refused = workshop_page(&mut workshops, &surrey, "RR8", 0, "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // A token belongs to its caller and trust.
    for (caller, ods_code) in [(&operator, "RR8"), (&operator, "RTP"), (&surrey, "RTP")] {
        let refused = workshop_page(&mut workshops, caller, ods_code, 0, &first_token)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(violated_fields(&refused), vec!["page_token"]);
    }
    let second = workshop_page(&mut workshops, &leeds, "RR8", 100, &first_token)
        .await
        .unwrap();
    assert_eq!(second.workshops, pages[1]);

    // icsctl reads every page.
    let (succeeded, output) = deployment
        .icsctl(&server, &["workshop", "list", "RR8", "--page-size", "100"])
        .await;
    assert!(succeeded, "{output}");
    assert!(output.contains("250 workshops"), "{output}");

    // A rebuild of the read model gives the same list.
    let mut admin = AdminServiceClient::new(workshops_channel.clone());
    admin
        .rebuild_projection(authorized(
            &operator,
            RebuildProjectionRequest {
                projection: "workshop_list".into(),
            },
        ))
        .await
        .unwrap();
    until_equal("the rebuilt list", &expected, || {
        listed(operator.clone(), "RR8")
    })
    .await;
    deployment.finish().await;
}
