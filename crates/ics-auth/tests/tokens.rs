//! Bearer tokens: HS256 with the shared secret, RS256 and ES256 against published keys, key
//! rotation, unknown keys, algorithm confusion, expiry, issuer and audience (security S2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ics_auth::{AuthError, KeySet, Principal, TokenVerifier, claims_for, mint_token};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
const ISSUER: &str = "https://login.example.nhs.uk";
const AUDIENCE: &str = "ics-platform";

const RSA_1: &str = include_str!("keys/rsa-1.pem");
const RSA_1_PUBLIC: &str = include_str!("keys/rsa-1.pub.pem");
const RSA_2: &str = include_str!("keys/rsa-2.pem");
const EC_1: &str = include_str!("keys/ec-1.pem");
const JWKS_1: &str = include_str!("keys/jwks-1.json");
const JWKS_2: &str = include_str!("keys/jwks-2.json");

fn writer() -> Principal {
    Principal::TrustWriter {
        ods_code: "RTP".to_owned(),
    }
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

fn signed(
    algorithm: Algorithm,
    kid: Option<&str>,
    key: &EncodingKey,
    claims: &serde_json::Value,
) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rsa(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

fn ec(pem: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
}

fn published() -> TokenVerifier {
    TokenVerifier::with_key_set(KeySet::from_json(JWKS_1).unwrap(), ISSUER, AUDIENCE)
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[test]
fn rs256_and_es256_tokens_from_the_published_keys_verify_to_their_principal() {
    let verifier = published();
    let claims = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    let rs256 = signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), &claims);
    assert_eq!(verifier.verify(&rs256).unwrap(), writer());
    let es256 = signed(Algorithm::ES256, Some("ec-1"), &ec(EC_1), &claims);
    assert_eq!(verifier.verify(&es256).unwrap(), writer());
}

#[test]
fn keys_rotate_without_a_new_verifier() {
    let keys = KeySet::from_json(JWKS_1).unwrap();
    let verifier = TokenVerifier::with_key_set(keys.clone(), ISSUER, AUDIENCE);
    let claims = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    let old = signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), &claims);
    let new = signed(Algorithm::RS256, Some("rsa-2"), &rsa(RSA_2), &claims);
    assert!(verifier.verify(&old).is_ok());
    assert_eq!(verifier.verify(&new), Err(AuthError::UnknownKey));

    assert_eq!(keys.replace_with_json(JWKS_2).unwrap(), 2);
    assert_eq!(keys.kids(), vec!["ec-1", "rsa-2"]);
    assert!(
        verifier.verify(&new).is_ok(),
        "the rotated-in key is used at once"
    );
    assert_eq!(
        verifier.verify(&old),
        Err(AuthError::UnknownKey),
        "the rotated-out key is refused"
    );
}

#[test]
fn a_key_set_without_signing_keys_is_refused_and_the_current_keys_stay() {
    let keys = KeySet::from_json(JWKS_1).unwrap();
    assert!(keys.replace_with_json(r#"{"keys": []}"#).is_err());
    assert!(keys.replace_with_json("not json").is_err());
    assert_eq!(keys.kids(), vec!["ec-1", "rsa-1"]);
}

#[test]
fn an_unknown_or_missing_kid_is_refused() {
    let claims = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    let unknown = signed(Algorithm::RS256, Some("rsa-9"), &rsa(RSA_1), &claims);
    assert_eq!(published().verify(&unknown), Err(AuthError::UnknownKey));
    let missing = signed(Algorithm::RS256, None, &rsa(RSA_1), &claims);
    assert!(matches!(
        published().verify(&missing),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn a_key_is_used_only_with_its_own_algorithm() {
    let claims = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    // The EC key's kid on an RS256 token signed by the RSA key.
    let mismatched = signed(Algorithm::RS256, Some("ec-1"), &rsa(RSA_1), &claims);
    assert_eq!(
        published().verify(&mismatched),
        Err(AuthError::UnsupportedAlgorithm)
    );
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // Algorithm confusion: a verifier that took the token's word for the algorithm would check
    // this HMAC with the public key as its secret, and pass it.
    let claims = claims_for(ISSUER, AUDIENCE, &Principal::Operator, hour());
    let confused = signed(
        Algorithm::HS256,
        Some("rsa-1"),
        &EncodingKey::from_secret(RSA_1_PUBLIC.as_bytes()).unwrap(),
        &claims,
    );
    assert_eq!(
        published().verify(&confused),
        Err(AuthError::UnsupportedAlgorithm)
    );
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    let claims = serde_json::to_vec(&claims_for(ISSUER, AUDIENCE, &writer(), hour())).unwrap();
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let none = format!(
        "{}.{}.",
        encode(br#"{"alg":"none","typ":"JWT"}"#),
        encode(&claims)
    );
    assert!(published().verify(&none).is_err());
    let shared = TokenVerifier::with_secret(SECRET, ISSUER, AUDIENCE).unwrap();
    assert!(shared.verify(&none).is_err());
    // A correctly signed RS256 token is refused by a shared-secret verifier.
    let rs256 = signed(
        Algorithm::RS256,
        Some("rsa-1"),
        &rsa(RSA_1),
        &claims_for(ISSUER, AUDIENCE, &writer(), hour()),
    );
    assert_eq!(shared.verify(&rs256), Err(AuthError::UnsupportedAlgorithm));
    let hs384 = signed(
        Algorithm::HS384,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        &claims_for(ISSUER, AUDIENCE, &writer(), hour()),
    );
    assert_eq!(shared.verify(&hs384), Err(AuthError::UnsupportedAlgorithm));
}

#[test]
fn expiry_and_not_before_are_enforced_beyond_the_leeway() {
    let verifier = published();
    let mut claims = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    claims["exp"] = (now() - 120).into();
    let expired = signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), &claims);
    assert_eq!(verifier.verify(&expired), Err(AuthError::Expired));
    claims["exp"] = (now() - 10).into();
    let within_leeway = signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), &claims);
    assert!(verifier.verify(&within_leeway).is_ok());
    let mut early = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    early["nbf"] = (now() + 600).into();
    let not_yet = signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), &early);
    assert_eq!(verifier.verify(&not_yet), Err(AuthError::NotYetValid));
    let mut without_exp = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    without_exp.as_object_mut().unwrap().remove("exp");
    let forever = signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), &without_exp);
    assert_eq!(
        verifier.verify(&forever),
        Err(AuthError::MissingClaim("exp"))
    );
}

#[test]
fn issuer_and_audience_must_match() {
    let verifier = published();
    let other_issuer = claims_for("https://elsewhere.example", AUDIENCE, &writer(), hour());
    let token = signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), &other_issuer);
    assert_eq!(verifier.verify(&token), Err(AuthError::WrongIssuer));
    let other_audience = claims_for(ISSUER, "another-api", &writer(), hour());
    let token = signed(
        Algorithm::RS256,
        Some("rsa-1"),
        &rsa(RSA_1),
        &other_audience,
    );
    assert_eq!(verifier.verify(&token), Err(AuthError::WrongAudience));
    let mut listed = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    listed["aud"] = serde_json::json!(["another-api", AUDIENCE]);
    let token = signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), &listed);
    assert!(
        verifier.verify(&token).is_ok(),
        "audience lists are understood"
    );
}

#[test]
fn hs256_tokens_minted_with_the_secret_verify_and_others_do_not() {
    let shared = TokenVerifier::with_secret(SECRET, ISSUER, AUDIENCE).unwrap();
    for principal in [
        writer(),
        Principal::Operator,
        Principal::BoardReader {
            ics_ods_code: Some("QWO".to_owned()),
            programme_id: Some("p-1".to_owned()),
        },
    ] {
        let token = mint_token(SECRET, ISSUER, AUDIENCE, &principal, hour()).unwrap();
        assert_eq!(shared.verify(&token).unwrap(), principal);
    }
    let other = mint_token(
        "another-secret-of-32-bytes-or-more!",
        ISSUER,
        AUDIENCE,
        &writer(),
        hour(),
    )
    .unwrap();
    assert_eq!(shared.verify(&other), Err(AuthError::BadSignature));
    let development =
        mint_token(SECRET, ISSUER, AUDIENCE, &Principal::Development, hour()).unwrap();
    assert_eq!(shared.verify(&development), Err(AuthError::UnknownRole));
    assert!(TokenVerifier::with_secret("", ISSUER, AUDIENCE).is_err());
}

#[test]
fn role_and_scope_claims_are_required_and_plain() {
    let verifier = published();
    let sign =
        |claims: &serde_json::Value| signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), claims);
    let mut no_ods = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    no_ods.as_object_mut().unwrap().remove("ods");
    assert_eq!(
        verifier.verify(&sign(&no_ods)),
        Err(AuthError::MissingClaim("ods"))
    );
    let mut odd_ods = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    odd_ods["ods"] = "RTP\nforged log line".into();
    assert_eq!(
        verifier.verify(&sign(&odd_ods)),
        Err(AuthError::InvalidClaim("ods"))
    );
    let mut board = claims_for(ISSUER, AUDIENCE, &Principal::Operator, hour());
    board["role"] = "board_reader".into();
    assert_eq!(
        verifier.verify(&sign(&board)),
        Err(AuthError::MissingClaim("ics or programme"))
    );
    let mut no_role = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    no_role.as_object_mut().unwrap().remove("role");
    assert_eq!(
        verifier.verify(&sign(&no_role)),
        Err(AuthError::MissingClaim("role"))
    );
    let mut empty_subject = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    empty_subject["sub"] = "".into();
    assert_eq!(
        verifier.verify(&sign(&empty_subject)),
        Err(AuthError::MissingClaim("sub"))
    );
}

#[test]
fn malformed_and_oversized_tokens_are_refused() {
    let verifier = published();
    for token in ["", "a.b", "a.b.c", "not a token at all", &"x".repeat(9000)] {
        assert!(
            matches!(verifier.verify(token), Err(AuthError::Malformed(_))),
            "{token:.20}"
        );
    }
    let claims = claims_for(ISSUER, AUDIENCE, &writer(), hour());
    let token = signed(Algorithm::RS256, Some("rsa-1"), &rsa(RSA_1), &claims);
    let (head, signature) = token.rsplit_once('.').unwrap();
    let tampered = format!("{head}x.{signature}");
    assert!(verifier.verify(&tampered).is_err());
}
