//! Security scenarios against the real binaries (the matrix grows with issue 9's work).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ics_auth::{Principal, claims_for};
use ics_e2e::{Authority, Deployment, RawCodec, authorized, channel, write};
use ics_proto::trusts::v1::ListOrganisationsRequest;
use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Code;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/ics-auth/tests/keys");

fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{name}")).unwrap()
}

/// An RS256 token as the identity provider would issue it, signed with key `kid`.
fn provider_token(kid: &str, principal: &Principal) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(key_file(&format!("{kid}.pem")).as_bytes()).unwrap();
    let claims = claims_for(
        ics_e2e::ISSUER,
        ics_e2e::AUDIENCE,
        principal,
        Duration::from_secs(600),
    );
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// S2 with the identity provider's keys: the services verify RS256 tokens against a JWKS file,
/// pick up a rotated key set without a restart, and then refuse the rotated-out key.
#[tokio::test]
async fn tokens_are_verified_against_the_published_keys_which_rotate_without_a_restart() {
    let mut deployment = Deployment::new().await;
    let jwks = std::env::temp_dir().join(format!("ics-jwks-{}.json", ics_testing::unique_token()));
    std::fs::write(&jwks, key_file("jwks-1.json")).unwrap();
    deployment.environment = vec![
        ("ICS_TOKEN_JWKS".into(), jwks.display().to_string()),
        ("ICS_TOKEN_JWKS_REFRESH_SECS".into(), "1".into()),
    ];
    let server = deployment.start("trusts").await;
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let list = |token: &str| authorized(token, ListOrganisationsRequest::default());

    let old_key = provider_token("rsa-1", &Principal::Operator);
    let new_key = provider_token("rsa-2", &Principal::Operator);
    trusts.list_organisations(list(&old_key)).await.unwrap();
    let unknown = trusts.list_organisations(list(&new_key)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    // The platform's development secret means nothing to a deployment on published keys.
    let shared = deployment.token(&Principal::Operator);
    let refused = trusts.list_organisations(list(&shared)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    std::fs::write(&jwks, key_file("jwks-2.json")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while trusts.list_organisations(list(&new_key)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the rotated key set was never picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rotated_out = trusts.list_organisations(list(&old_key)).await.unwrap_err();
    assert_eq!(rotated_out.code(), Code::Unauthenticated);

    let _ = std::fs::remove_file(&jwks);
    deployment.finish().await;
}

/// S1: TLS and mutual TLS on the listeners. A client without a certificate, with one from an
/// untrusted authority, or speaking plaintext fails in the handshake and reaches no handler; a
/// renewed server certificate is served without a restart.
#[tokio::test]
async fn listeners_serve_tls_require_trusted_client_certificates_and_reload_them() {
    let dir = std::env::temp_dir().join(format!("ics-tls-{}", ics_testing::unique_token()));
    std::fs::create_dir_all(&dir).unwrap();
    let platform = Authority::new("ICS test platform CA");
    let hospitals = Authority::new("ICS test hospitals CA");
    let rogue = Authority::new("someone else's CA");
    let (server_cert, server_key) = platform.sign(&["127.0.0.1", "localhost"]);
    let (client_cert, client_key) = hospitals.sign(&["hospital-system"]);
    let (rogue_cert, rogue_key) = rogue.sign(&["hospital-system"]);
    let ca = write(&dir, "platform-ca.pem", &platform.pem);
    let cert = write(&dir, "server.pem", &server_cert);
    let key = write(&dir, "server.key", &server_key);
    let client_ca = write(&dir, "hospitals-ca.pem", &hospitals.pem);
    let client = (
        write(&dir, "client.pem", &client_cert),
        write(&dir, "client.key", &client_key),
    );
    let stranger = (
        write(&dir, "rogue.pem", &rogue_cert),
        write(&dir, "rogue.key", &rogue_key),
    );

    let mut deployment = Deployment::new().await;
    deployment.environment = vec![
        ("ICS_TLS_CERT".into(), cert.display().to_string()),
        ("ICS_TLS_KEY".into(), key.display().to_string()),
        ("ICS_TLS_CLIENT_CA".into(), client_ca.display().to_string()),
        ("ICS_TLS_RELOAD_SECS".into(), "1".into()),
    ];
    let trusted = ics_client::ClientTls {
        ca: Some(ca.clone()),
        cert: Some(client.0.clone()),
        key: Some(client.1.clone()),
    };
    deployment.client_tls = trusted.clone();
    let server = deployment.start("trusts").await;
    assert!(server.url.starts_with("https://"));
    let token = deployment.token(&Principal::Operator);

    let call = |tls: ics_client::ClientTls, url: String, token: String| async move {
        let channel = ics_client::endpoint(&url, &tls)?.connect().await?;
        TrustsServiceClient::new(channel)
            .list_organisations(authorized(&token, ListOrganisationsRequest::default()))
            .await
            .map_err(|status| -> Box<dyn std::error::Error> { Box::new(status) })?;
        Ok::<(), Box<dyn std::error::Error>>(())
    };

    call(trusted.clone(), server.url.clone(), token.clone())
        .await
        .expect("a trusted client certificate is served");
    let without_certificate = ics_client::ClientTls {
        ca: Some(ca.clone()),
        ..Default::default()
    };
    assert!(
        call(without_certificate, server.url.clone(), token.clone())
            .await
            .is_err(),
        "no client certificate"
    );
    let untrusted = ics_client::ClientTls {
        ca: Some(ca.clone()),
        cert: Some(stranger.0.clone()),
        key: Some(stranger.1.clone()),
    };
    assert!(
        call(untrusted, server.url.clone(), token.clone())
            .await
            .is_err(),
        "a certificate from an untrusted authority"
    );
    let plaintext = server.url.replace("https://", "http://");
    assert!(
        call(ics_client::ClientTls::default(), plaintext, token.clone())
            .await
            .is_err(),
        "plaintext"
    );

    // The health probe takes the same TLS settings.
    let probe = std::process::Command::new(ics_e2e::binary("icsd"))
        .args(["healthcheck", "--url", &server.url])
        .env("ICS_TLS_CA", &ca)
        .env("ICS_TLS_CLIENT_CERT", &client.0)
        .env("ICS_TLS_CLIENT_KEY", &client.1)
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    // Renewal: a certificate from a new platform CA replaces the files; new connections get
    // it without a restart.
    let renewed = Authority::new("ICS test platform CA, renewed");
    let (renewed_cert, renewed_key) = renewed.sign(&["127.0.0.1", "localhost"]);
    let renewed_ca = write(&dir, "renewed-ca.pem", &renewed.pem);
    write(&dir, "server.key", &renewed_key);
    write(&dir, "server.pem", &renewed_cert);
    let trusting_renewed = ics_client::ClientTls {
        ca: Some(renewed_ca),
        ..trusted.clone()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while call(trusting_renewed.clone(), server.url.clone(), token.clone())
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        call(trusted, server.url.clone(), token).await.is_err(),
        "the old certificate is no longer served"
    );

    let _ = std::fs::remove_dir_all(&dir);
    deployment.finish().await;
}

/// S5 for the organisation registry: an operator reads every organisation; a trust writer only
/// its own trust (another is PERMISSION_DENIED); a board the organisations of its ICS as of the
/// date asked and nothing of another ICS (NOT_FOUND, as for one that does not exist).
#[tokio::test]
async fn organisation_reads_are_scoped_to_the_caller_as_of_the_date() {
    use ics_proto::date::from_naive;
    use ics_proto::events::v1::{Date, OrganisationKind};
    use ics_proto::trusts::v1::{
        GetOrganisationRequest, LinkOrganisationRequest, RegisterOrganisationRequest,
        UnlinkOrganisationRequest,
    };

    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;
    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let day =
        |year, month, day| from_naive(chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap());
    let register = |ods_code: &str, kind: OrganisationKind| RegisterOrganisationRequest {
        options: ics_e2e::options(),
        ods_code: ods_code.into(),
        name: format!("{ods_code} organisation"),
        kind: kind as i32,
    };
    let link = |ods_code: &str, parent: &str, from: Date| LinkOrganisationRequest {
        options: ics_e2e::options(),
        ods_code: ods_code.into(),
        parent_ods_code: parent.into(),
        valid_from: Some(from),
    };
    for (ods_code, kind) in [
        ("QWO", OrganisationKind::Icb),
        ("QYG", OrganisationKind::Icb),
        ("RR8", OrganisationKind::Trust),
        ("RTP", OrganisationKind::Trust),
        ("RXF", OrganisationKind::Trust),
    ] {
        trusts
            .register_organisation(authorized(&operator, register(ods_code, kind)))
            .await
            .unwrap();
    }
    for (ods_code, parent) in [("RR8", "QWO"), ("RTP", "QYG"), ("RXF", "QYG")] {
        trusts
            .link_organisation(authorized(
                &operator,
                link(ods_code, parent, day(2020, 1, 1)),
            ))
            .await
            .unwrap();
    }
    // RXF moved from QYG to QWO on 1 July 2024.
    trusts
        .unlink_organisation(authorized(
            &operator,
            UnlinkOrganisationRequest {
                options: ics_e2e::options(),
                ods_code: "RXF".into(),
                parent_ods_code: "QYG".into(),
                valid_to: Some(day(2024, 6, 30)),
            },
        ))
        .await
        .unwrap();
    let linked = trusts
        .link_organisation(authorized(&operator, link("RXF", "QWO", day(2024, 7, 1))))
        .await
        .unwrap()
        .into_inner();
    let listing = channel(&server.url).await;
    // The list is a read model a few milliseconds behind the record.
    ics_e2e::wait_until_organisation_listed(&listing, &operator, "RXF", linked.version).await;

    let listed = |token: String, as_of: Option<Date>| {
        let listing = listing.clone();
        async move {
            let request = ListOrganisationsRequest {
                as_of,
                ..Default::default()
            };
            let codes: Vec<String> = ics_e2e::list_organisations(&listing, &token, request)
                .await
                .into_iter()
                .map(|organisation| organisation.ods_code)
                .collect();
            assert!(codes.is_sorted(), "listed in ODS code order: {codes:?}");
            codes
        }
    };
    let west_yorkshire = deployment.token(&Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    });
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    assert_eq!(listed(operator.clone(), None).await.len(), 5);
    assert_eq!(listed(leeds.clone(), None).await, vec!["RR8"]);
    assert_eq!(
        listed(west_yorkshire.clone(), None).await,
        vec!["QWO", "RR8", "RXF"]
    );
    assert_eq!(
        listed(west_yorkshire.clone(), Some(day(2023, 1, 1))).await,
        vec!["QWO", "RR8"],
        "membership as of the date asked"
    );

    let get = |token: &str, ods_code: &str| {
        authorized(
            token,
            GetOrganisationRequest {
                ods_code: ods_code.into(),
                as_of: None,
            },
        )
    };
    trusts
        .get_organisation(get(&west_yorkshire, "RXF"))
        .await
        .unwrap();
    let other_ics = trusts
        .get_organisation(get(&west_yorkshire, "RTP"))
        .await
        .unwrap_err();
    assert_eq!(other_ics.code(), Code::NotFound);
    let missing = trusts
        .get_organisation(get(&west_yorkshire, "ZZZ"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        other_ics.message().replace("RTP", "ZZZ"),
        missing.message(),
        "outside the scope reads as absent"
    );
    let other_trust = trusts
        .get_organisation(get(&leeds, "RTP"))
        .await
        .unwrap_err();
    assert_eq!(other_trust.code(), Code::PermissionDenied);

    // CQC history takes membership as of the date too, not "ever a member".
    use ics_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
    use ics_proto::reporting::v1::{GetCqcHistoryRequest, Scope, scope};
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);
    let board = |ics: &str| {
        deployment.token(&Principal::BoardReader {
            ics_ods_code: Some(ics.into()),
            programme_id: None,
        })
    };
    let history = |ics: &str, as_of: Option<Date>| {
        authorized(
            &board(ics),
            GetCqcHistoryRequest {
                scope: Some(Scope {
                    scope: Some(scope::Scope::IcsOdsCode(ics.into())),
                }),
                ods_code: "RXF".into(),
                as_of,
            },
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reporting
        .get_cqc_history(history("QWO", None))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the move never reached reporting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (ics, as_of, in_scope) in [
        ("QWO", Some(day(2023, 1, 1)), false),
        ("QYG", None, false),
        ("QYG", Some(day(2023, 1, 1)), true),
    ] {
        let answer = reporting.get_cqc_history(history(ics, as_of)).await;
        match answer {
            Ok(_) => assert!(in_scope, "{ics} {as_of:?} read a trust outside its scope"),
            Err(status) => {
                assert!(!in_scope, "{ics} {as_of:?}: {status:?}");
                assert_eq!(status.code(), Code::NotFound);
            }
        }
    }
    deployment.finish().await;
}

/// A live watch ends with UNAUTHENTICATED when the token it was opened with expires, rather
/// than streaming on with authority that has run out.
#[tokio::test]
async fn a_live_watch_ends_when_its_token_expires() {
    use futures_util::StreamExt;
    use ics_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
    use ics_proto::reporting::v1::{Scope, WatchOverviewRequest, scope};

    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;
    let board = Principal::BoardReader {
        ics_ods_code: Some("QWO".into()),
        programme_id: None,
    };
    let operator = deployment.token(&Principal::Operator);
    TrustsServiceClient::new(channel(&server.url).await)
        .register_organisation(authorized(
            &operator,
            ics_proto::trusts::v1::RegisterOrganisationRequest {
                options: ics_e2e::options(),
                ods_code: "QWO".into(),
                name: "NHS West Yorkshire ICB".into(),
                kind: ics_proto::events::v1::OrganisationKind::Icb as i32,
            },
        ))
        .await
        .unwrap();
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);
    let overview = || {
        authorized(
            &operator,
            ics_proto::reporting::v1::GetOverviewRequest {
                scope: Some(Scope {
                    scope: Some(scope::Scope::IcsOdsCode("QWO".into())),
                }),
                as_of: None,
            },
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reporting.get_overview(overview()).await.is_err() {
        assert!(Instant::now() < deadline, "the ICS never reached reporting");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Expiry is whole seconds: the token runs out between 2 and 3 seconds from now.
    let minted = Instant::now();
    let short_lived = ics_auth::mint_token(
        &deployment.secret,
        ics_e2e::ISSUER,
        ics_e2e::AUDIENCE,
        &board,
        Duration::from_secs(3),
    )
    .unwrap();
    let mut updates = reporting
        .watch_overview(authorized(
            &short_lived,
            WatchOverviewRequest {
                scope: Some(Scope {
                    scope: Some(scope::Scope::IcsOdsCode("QWO".into())),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // The first update is the current view; then nothing changes until the token runs out.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match updates.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the watch outlived its token by far");
    let status = ended.expect("the watch ends with a status, not silently");
    assert_eq!(status.code(), Code::Unauthenticated);
    let lasted = minted.elapsed();
    assert!(
        lasted >= Duration::from_millis(1900) && lasted < Duration::from_secs(10),
        "ended {lasted:?} after the token was minted"
    );
    deployment.finish().await;
}

/// Live watches are capped per tenant: one more than `ICS_TENANT_WATCHES` is
/// RESOURCE_EXHAUSTED, other tenants are unaffected, and a closed watch frees its place.
#[tokio::test]
async fn live_watches_are_capped_per_tenant() {
    use futures_util::StreamExt;
    use ics_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
    use ics_proto::reporting::v1::{Scope, WatchOverviewRequest, scope};

    let mut deployment = Deployment::new().await;
    deployment
        .environment
        .push(("ICS_TENANT_WATCHES".into(), "2".into()));
    let server = deployment.start("all").await;
    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    for ods_code in ["QWO", "QYG"] {
        trusts
            .register_organisation(authorized(
                &operator,
                ics_proto::trusts::v1::RegisterOrganisationRequest {
                    options: ics_e2e::options(),
                    ods_code: ods_code.into(),
                    name: format!("{ods_code} ICB"),
                    kind: ics_proto::events::v1::OrganisationKind::Icb as i32,
                },
            ))
            .await
            .unwrap();
    }
    let board = |ics: &str| {
        deployment.token(&Principal::BoardReader {
            ics_ods_code: Some(ics.into()),
            programme_id: None,
        })
    };
    let (west, east) = (board("QWO"), board("QYG"));
    let mut reporting = ReportingServiceClient::new(channel(&server.reporting_url).await);
    let request = |token: &str, ics: &str| {
        authorized(
            token,
            WatchOverviewRequest {
                scope: Some(Scope {
                    scope: Some(scope::Scope::IcsOdsCode(ics.into())),
                }),
            },
        )
    };
    // Both ICSs reach reporting first, so that every watch opens on a view.
    let deadline = Instant::now() + Duration::from_secs(20);
    for ics in ["QWO", "QYG"] {
        let overview = || {
            authorized(
                &operator,
                ics_proto::reporting::v1::GetOverviewRequest {
                    scope: Some(Scope {
                        scope: Some(scope::Scope::IcsOdsCode(ics.into())),
                    }),
                    as_of: None,
                },
            )
        };
        while let Err(status) = reporting.get_overview(overview()).await {
            assert!(Instant::now() < deadline, "no view of {ics}: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let first = reporting
        .watch_overview(request(&west, "QWO"))
        .await
        .unwrap()
        .into_inner();
    let mut second = reporting
        .watch_overview(request(&west, "QWO"))
        .await
        .unwrap()
        .into_inner();
    assert!(second.next().await.is_some_and(|update| update.is_ok()));
    let refused = reporting
        .watch_overview(request(&west, "QWO"))
        .await
        .expect_err("a third watch of the same tenant is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Another tenant still opens its own.
    let mut other = reporting
        .watch_overview(request(&east, "QYG"))
        .await
        .expect("another tenant is not limited by the first")
        .into_inner();
    assert!(other.next().await.is_some_and(|update| update.is_ok()));
    // Closing a watch frees its place (once the server has seen the stream end).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match reporting.watch_overview(request(&west, "QWO")).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(Instant::now() < deadline, "a closed watch kept its place");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
    deployment.finish().await;
}

/// Refusals and administrative actions go to each service's audit trail, whatever the log
/// level, with the call they happened in (RPC, request id, trace id, peer), and the trail
/// survives a restart; only operators read it.
#[tokio::test]
async fn denials_and_admin_actions_are_kept_in_an_audit_trail_that_survives_restarts() {
    use ics_proto::admin::v1::admin_service_client::AdminServiceClient;
    use ics_proto::admin::v1::{AuditRecord, ListAuditRecordsRequest, RepublishRequest};
    use ics_proto::trusts::v1::RenameOrganisationRequest;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let deployment = Deployment::new().await;
    let mut server = deployment.start("all").await;
    let operator = deployment.token(&Principal::Operator);
    let writer = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let mut rename = authorized(
        &writer,
        RenameOrganisationRequest {
            options: ics_e2e::options(),
            ods_code: "RTP".into(),
            name: "Taken over".into(),
        },
    );
    rename
        .metadata_mut()
        .insert("x-request-id", "audit-test-1".parse().unwrap());
    rename.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let refused = trusts.rename_organisation(rename).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let anonymous = trusts
        .list_organisations(ListOrganisationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    AdminServiceClient::new(channel(&server.url).await)
        .republish(authorized(&operator, RepublishRequest { from_position: 0 }))
        .await
        .unwrap();

    let trail = |url: String| {
        let operator = operator.clone();
        async move {
            AdminServiceClient::new(channel(&url).await)
                .list_audit_records(authorized(&operator, ListAuditRecordsRequest::default()))
                .await
                .unwrap()
                .into_inner()
                .records
        }
    };
    let find = |records: &[AuditRecord], kind: &str| -> Option<AuditRecord> {
        records.iter().find(|record| record.kind == kind).cloned()
    };
    // The writer flushes a few times a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let records = loop {
        let records = trail(server.url.clone()).await;
        if ["denied", "unauthenticated", "admin"]
            .iter()
            .all(|kind| find(&records, kind).is_some())
        {
            break records;
        }
        assert!(Instant::now() < deadline, "the trail holds {records:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let denied = find(&records, "denied").unwrap();
    assert_eq!(denied.principal, "trust-writer:RR8");
    assert!(denied.resource.contains("RTP"), "{denied:?}");
    assert!(!denied.action.is_empty(), "{denied:?}");
    assert_eq!(denied.service, "trusts");
    assert_eq!(
        denied.rpc,
        "/ics.trusts.v1.TrustsService/RenameOrganisation"
    );
    assert_eq!(denied.request_id, "audit-test-1");
    assert_eq!(denied.trace_id, TRACE_ID);
    assert!(denied.peer.starts_with("127.0.0.1:"), "{denied:?}");
    let unauthenticated = find(&records, "unauthenticated").unwrap();
    assert_eq!(
        unauthenticated.rpc,
        "/ics.trusts.v1.TrustsService/ListOrganisations"
    );
    // A call that named no request id gets one, and a trace id, from the server.
    assert!(
        !unauthenticated.request_id.is_empty(),
        "{unauthenticated:?}"
    );
    assert_eq!(unauthenticated.trace_id.len(), 32, "{unauthenticated:?}");
    assert!(unauthenticated.peer.starts_with("127.0.0.1:"));
    let admin = find(&records, "admin").unwrap();
    assert_eq!(admin.principal, "operator");
    assert_eq!(admin.action, "republish");

    deployment.restart(&mut server).await;
    let after = trail(server.url.clone()).await;
    for kind in ["denied", "unauthenticated", "admin"] {
        assert_eq!(
            find(&after, kind),
            find(&records, kind),
            "{kind} after a restart"
        );
    }
    let output = deployment
        .icsctl_output(&server, &["admin", "audit", "--service", "trusts"])
        .await;
    assert!(output.success, "{}", output.stderr);
    assert!(
        output.stdout.contains("trust-writer:RR8"),
        "{}",
        output.stdout
    );
    assert!(output.stdout.contains("audit-test-1"), "{}", output.stdout);
    // The trail is for operators only.
    let refused = AdminServiceClient::new(channel(&server.url).await)
        .list_audit_records(authorized(&writer, ListAuditRecordsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    deployment.finish().await;
}

/// A `trust_writer` token must name a trust: one naming an ICB writes nothing, even about that
/// ICB itself.
#[tokio::test]
async fn a_trust_writer_token_naming_an_icb_writes_nothing() {
    use ics_proto::events::v1::{CqcRating, Date, ExecutiveRole, OrganisationKind};
    use ics_proto::trusts::v1::{
        AppointExecutiveRequest, PublishCqcRatingRequest, RegisterOrganisationRequest,
        RenameOrganisationRequest,
    };

    let deployment = Deployment::new().await;
    let server = deployment.start("trusts").await;
    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    for (ods_code, kind) in [
        ("QWO", OrganisationKind::Icb),
        ("RR8", OrganisationKind::Trust),
    ] {
        trusts
            .register_organisation(authorized(
                &operator,
                RegisterOrganisationRequest {
                    options: ics_e2e::options(),
                    ods_code: ods_code.into(),
                    name: format!("{ods_code} organisation"),
                    kind: kind as i32,
                },
            ))
            .await
            .unwrap();
    }
    let rename = |ods_code: &str| RenameOrganisationRequest {
        options: ics_e2e::options(),
        ods_code: ods_code.into(),
        name: "Renamed".into(),
    };
    let icb_writer = deployment.token(&Principal::TrustWriter {
        ods_code: "QWO".into(),
    });
    let refused = trusts
        .rename_organisation(authorized(&icb_writer, rename("QWO")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("not a trust"),
        "{}",
        refused.message()
    );
    // Every write on the ICB's own stream, each decided with the command, not only a rename.
    let refused = trusts
        .publish_cqc_rating(authorized(
            &icb_writer,
            PublishCqcRatingRequest {
                options: ics_e2e::options(),
                ods_code: "QWO".into(),
                published_on: Some(Date {
                    year: 2019,
                    month: 3,
                    day: 1,
                }),
                ratings: ics_e2e::uniform_ratings(CqcRating::Good),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = trusts
        .appoint_executive(authorized(
            &icb_writer,
            AppointExecutiveRequest {
                options: ics_e2e::options(),
                ods_code: "QWO".into(),
                role: ExecutiveRole::ChiefExecutive as i32,
                person_name: "A Chief Executive".into(),
                started_on: Some(Date {
                    year: 2019,
                    month: 4,
                    day: 1,
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    let renamed = trusts
        .rename_organisation(authorized(&leeds, rename("RR8")))
        .await
        .expect("a trust's own writer renames it")
        .into_inner();
    let listing = channel(&server.url).await;
    ics_e2e::wait_until_organisation_listed(&listing, &operator, "RR8", renamed.version).await;
    let organisations =
        ics_e2e::list_organisations(&listing, &operator, ListOrganisationsRequest::default()).await;
    let qwo = organisations
        .iter()
        .find(|organisation| organisation.ods_code == "QWO")
        .unwrap();
    assert_eq!(qwo.name, "QWO organisation", "nothing was written");
    let qwo = trusts
        .get_organisation(authorized(
            &operator,
            ics_proto::trusts::v1::GetOrganisationRequest {
                ods_code: "QWO".into(),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(qwo.version, 1, "only the registration: {qwo:?}");
    deployment.finish().await;
}

/// S7 input hygiene: NUL or a bidirectional override in any string field (request ids too) and
/// an undecodable body are INVALID_ARGUMENT naming what is wrong, never INTERNAL; dates outside
/// 1900–2100 are refused; a reply quotes at most a few hundred characters of its input.
#[tokio::test]
async fn bad_bytes_are_invalid_arguments_that_name_the_field_and_echo_little() {
    use ics_proto::events::v1::{CommandOptions, CqcRating, Date, OrganisationKind};
    use ics_proto::trusts::v1::{
        GetOrganisationRequest, PublishCqcRatingRequest, RegisterOrganisationRequest,
    };

    let deployment = Deployment::new().await;
    let server = deployment.start("trusts").await;
    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let register = |request_id: &str, name: &str| RegisterOrganisationRequest {
        options: Some(CommandOptions {
            request_id: request_id.into(),
            expected_version: None,
        }),
        ods_code: "RTP".into(),
        name: name.into(),
        kind: OrganisationKind::Trust as i32,
    };
    for (request, field) in [
        (register("id\u{0}nul", "Surrey"), "options.request_id"),
        (register("id-1", "Surrey\u{202E}yerruS"), "name"),
        (register("id-2", "Surrey\u{0}"), "name"),
    ] {
        let refused = trusts
            .register_organisation(authorized(&operator, request))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(ics_e2e::violated_fields(&refused), vec![field]);
    }

    let mut raw = tonic::client::Grpc::new(channel(&server.url).await);
    raw.ready().await.unwrap();
    let undecodable = raw
        .unary(
            authorized(&operator, vec![0x12, 0x7f, 0x01]),
            "/ics.trusts.v1.TrustsService/RegisterOrganisation"
                .parse()
                .unwrap(),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(undecodable.code(), Code::InvalidArgument, "{undecodable:?}");

    trusts
        .register_organisation(authorized(&operator, register("id-3", "Surrey")))
        .await
        .unwrap();
    let ancient = trusts
        .publish_cqc_rating(authorized(
            &operator,
            PublishCqcRatingRequest {
                options: ics_e2e::options(),
                ods_code: "RTP".into(),
                published_on: Some(Date {
                    year: -5,
                    month: 3,
                    day: 1,
                }),
                ratings: ics_e2e::uniform_ratings(CqcRating::Good),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(ancient.code(), Code::InvalidArgument);
    assert_eq!(ics_e2e::violated_fields(&ancient), vec!["published_on"]);

    let huge = "R".repeat(1_000_000);
    let echoed = trusts
        .get_organisation(authorized(
            &operator,
            GetOrganisationRequest {
                ods_code: huge,
                as_of: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(echoed.code(), Code::InvalidArgument);
    assert!(
        echoed.message().chars().count() < 400,
        "a reply quoted {} characters of its input",
        echoed.message().chars().count()
    );
    deployment.finish().await;
}

/// S9: one tenant's flood is RESOURCE_EXHAUSTED with the time to wait, while another tenant and
/// operators keep being served.
#[tokio::test]
async fn a_flooding_tenant_is_limited_and_the_others_are_not() {
    use tonic_types::StatusExt;

    let mut deployment = Deployment::new().await;
    deployment.environment = vec![
        ("ICS_TENANT_CALLS_PER_SEC".into(), "5".into()),
        ("ICS_TENANT_CALL_BURST".into(), "5".into()),
    ];
    let server = deployment.start("trusts").await;
    let mut trusts = TrustsServiceClient::new(channel(&server.url).await);
    let leeds = deployment.token(&Principal::TrustWriter {
        ods_code: "RR8".into(),
    });
    let surrey = deployment.token(&Principal::TrustWriter {
        ods_code: "RTP".into(),
    });
    let operator = deployment.token(&Principal::Operator);
    let list = |token: &str| authorized(token, ListOrganisationsRequest::default());

    let mut limited = None;
    for _ in 0..30 {
        if let Err(status) = trusts.list_organisations(list(&leeds)).await {
            limited = Some(status);
            break;
        }
    }
    let limited = limited.expect("30 calls at once exceed a burst of 5");
    assert_eq!(limited.code(), Code::ResourceExhausted);
    let retry = limited
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("the refusal says how long to wait");
    assert!(retry <= Duration::from_secs(1), "{retry:?}");
    trusts
        .list_organisations(list(&surrey))
        .await
        .expect("another tenant is served");
    for _ in 0..30 {
        trusts
            .list_organisations(list(&operator))
            .await
            .expect("operators are not limited");
    }
    tokio::time::sleep(retry).await;
    trusts
        .list_organisations(list(&leeds))
        .await
        .expect("served again after the wait");
    deployment.finish().await;
}
