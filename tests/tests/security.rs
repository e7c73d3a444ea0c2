//! Security scenarios against the real binaries (the matrix grows with issue 9's work).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ics_auth::{Principal, claims_for};
use ics_e2e::{Deployment, authorized, channel};
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
