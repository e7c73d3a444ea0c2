//! Authentication and authorisation: who is calling, and may they touch this resource.
//!
//! Every RPC carries `authorization: Bearer <token>`, an HS256 JWT signed with the platform's
//! shared secret. The [`Authenticator`]'s interceptor verifies it before any handler runs and
//! puts the caller's [`Principal`] into the request extensions; handlers read it back with
//! [`principal`] and ask it for permission with the `authorize_*` helpers. The tenant always
//! comes from the principal, never from the request body (architecture decision 7).
//!
//! ```no_run
//! # use ics_service_kit::{auth::{principal, Authenticator}, config::AuthConfig, error::ServiceError};
//! # fn handler(request: tonic::Request<()>, trust_ods_code: &str) -> Result<(), ServiceError> {
//! let caller = principal(&request)?;
//! caller.authorize_trust_write(trust_ods_code)?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::config::{AuthConfig, AuthMode};
use crate::error::ServiceError;
use crate::server::RpcPath;

type HmacSha256 = Hmac<Sha256>;

/// Clock skew tolerated between the token issuer and this service.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(30);

/// Tokens longer than this are rejected unparsed: real ones are a few hundred bytes, and the
/// limit keeps a hostile header from costing decode and HMAC time.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Scope identifiers (ODS codes, programme ids) end up in labels and logs; anything outside
/// this alphabet is refused so that a token cannot smuggle log-breaking text.
const MAX_SCOPE_BYTES: usize = 64;

const ROLE_TRUST_WRITER: &str = "trust_writer";
const ROLE_BOARD_READER: &str = "board_reader";
const ROLE_OPERATOR: &str = "operator";
/// Minted for [`Principal::Development`] only so that `mint_token` stays total; the verifier
/// never accepts it, because development access must come from configuration, not a token.
const ROLE_DEVELOPMENT: &str = "development";

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A hospital trust's systems: may write only that trust's data.
    TrustWriter { ods_code: String },
    /// An ICS board or programme team: may read only its own ICS and/or programme.
    BoardReader {
        ics_ods_code: Option<String>,
        programme_id: Option<String>,
    },
    /// Platform operators: everything, including administrative RPCs.
    Operator,
    /// Every caller when authentication is switched off (development mode only).
    Development,
}

impl Principal {
    /// A short, log-safe description: `trust-writer:RTP`, `board-reader:ics:QWO`, `operator`.
    pub fn label(&self) -> String {
        match self {
            Principal::TrustWriter { ods_code } => format!("trust-writer:{ods_code}"),
            Principal::BoardReader {
                ics_ods_code,
                programme_id,
            } => {
                let mut label = String::from("board-reader");
                if let Some(ics_ods_code) = ics_ods_code {
                    label.push_str(":ics:");
                    label.push_str(ics_ods_code);
                }
                if let Some(programme_id) = programme_id {
                    label.push_str(":programme:");
                    label.push_str(programme_id);
                }
                label
            }
            Principal::Operator => "operator".to_owned(),
            Principal::Development => "development".to_owned(),
        }
    }

    fn is_unrestricted(&self) -> bool {
        matches!(self, Principal::Operator | Principal::Development)
    }

    /// Writing anything that belongs to the trust `ods_code`.
    pub fn authorize_trust_write(&self, ods_code: &str) -> Result<(), ServiceError> {
        let allowed = self.is_unrestricted()
            || matches!(self, Principal::TrustWriter { ods_code: own } if own == ods_code);
        self.decide(allowed, "write", &format!("trust {ods_code}"))
    }

    /// Reading a single trust's own records (lookups of its aggregates).
    pub fn authorize_trust_read(&self, ods_code: &str) -> Result<(), ServiceError> {
        let allowed = self.is_unrestricted()
            || matches!(self, Principal::TrustWriter { ods_code: own } if own == ods_code);
        self.decide(allowed, "read", &format!("trust {ods_code}"))
    }

    /// Administrative RPCs (rebuilds, dead letters, organisation registry).
    pub fn authorize_operator(&self) -> Result<(), ServiceError> {
        self.decide(self.is_unrestricted(), "administer", "the platform")
    }

    /// Reading the cross-trust views of the ICS `ics_ods_code`.
    pub fn authorize_ics_read(&self, ics_ods_code: &str) -> Result<(), ServiceError> {
        let allowed = self.is_unrestricted()
            || matches!(
                self,
                Principal::BoardReader { ics_ods_code: Some(own), .. } if own == ics_ods_code
            );
        self.decide(allowed, "read", &format!("ics {ics_ods_code}"))
    }

    /// Reading the outcomes of improvement programme `programme_id`.
    pub fn authorize_programme_read(&self, programme_id: &str) -> Result<(), ServiceError> {
        let allowed = self.is_unrestricted()
            || matches!(
                self,
                Principal::BoardReader { programme_id: Some(own), .. } if own == programme_id
            );
        self.decide(allowed, "read", &format!("programme {programme_id}"))
    }

    fn decide(&self, allowed: bool, action: &str, resource: &str) -> Result<(), ServiceError> {
        if allowed {
            return Ok(());
        }
        let label = self.label();
        // The audit trail of refusals (security scenario S10): who, what, on which resource.
        tracing::info!(principal = %label, action, resource, "permission denied");
        Err(ServiceError::PermissionDenied(format!(
            "{label} may not {action} {resource}"
        )))
    }

    fn role_claim(&self) -> &'static str {
        match self {
            Principal::TrustWriter { .. } => ROLE_TRUST_WRITER,
            Principal::BoardReader { .. } => ROLE_BOARD_READER,
            Principal::Operator => ROLE_OPERATOR,
            Principal::Development => ROLE_DEVELOPMENT,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.label())
    }
}

/// Why a bearer token was refused. Messages describe the problem and never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token in the authorization metadata")]
    MissingToken,
    #[error("authorization metadata must be 'Bearer <token>'")]
    MalformedHeader,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported token algorithm; only HS256 is accepted")]
    UnsupportedAlgorithm,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token role is not recognised")]
    UnknownRole,
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("token claim {0} is not a valid identifier")]
    InvalidClaim(&'static str),
}

impl From<AuthError> for ServiceError {
    fn from(error: AuthError) -> Self {
        ServiceError::Unauthenticated(error.to_string())
    }
}

/// Verifies HS256 bearer tokens against one secret, issuer and audience.
#[derive(Clone)]
pub struct TokenVerifier {
    keyed_mac: HmacSha256,
    issuer: String,
    audience: String,
    leeway: Duration,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TokenVerifier")
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, expected: &str) -> bool {
        match self {
            Audience::One(audience) => audience == expected,
            Audience::Many(audiences) => audiences.iter().any(|audience| audience == expected),
        }
    }
}

/// Every claim is optional here so that a missing one is reported by name rather than as a
/// generic parse failure.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    role: Option<String>,
    ods: Option<String>,
    ics: Option<String>,
    programme: Option<String>,
}

impl TokenVerifier {
    pub fn new(
        secret: impl AsRef<[u8]>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            keyed_mac: keyed_mac(secret.as_ref()),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: CLOCK_LEEWAY,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_at(token, SystemTime::now())
    }

    /// [`verify`](Self::verify) as if the clock read `now`.
    pub fn verify_at(&self, token: &str, now: SystemTime) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed("token is too long"));
        }
        let mut segments = token.split('.');
        let (Some(header_segment), Some(claims_segment), Some(signature_segment), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(AuthError::Malformed(
                "expected three dot-separated segments",
            ));
        };

        let header: Header = decode_json_segment(
            header_segment,
            "header is not base64url",
            "header is not a JSON object",
        )?;
        if header.alg != "HS256" {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        if header.crit.is_some() {
            return Err(AuthError::Malformed(
                "critical header extensions are not supported",
            ));
        }

        let signature = URL_SAFE_NO_PAD
            .decode(signature_segment)
            .map_err(|_| AuthError::Malformed("signature is not base64url"))?;
        let signing_input_length = header_segment.len() + 1 + claims_segment.len();
        let mut mac = self.keyed_mac.clone();
        mac.update(&token.as_bytes()[..signing_input_length]);
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;

        let claims: Claims = decode_json_segment(
            claims_segment,
            "claims are not base64url",
            "claims are not a JSON object with the expected claim types",
        )?;
        self.check_claims(claims, unix_seconds(now))
    }

    fn check_claims(&self, claims: Claims, now: i64) -> Result<Principal, AuthError> {
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let expires_at = claims.exp.ok_or(AuthError::MissingClaim("exp"))?;
        if now > expires_at.saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        let not_yet_valid = claims
            .nbf
            .is_some_and(|not_before| now.saturating_add(leeway) < not_before);
        if not_yet_valid {
            return Err(AuthError::NotYetValid);
        }
        if claims.sub.is_none_or(|subject| subject.is_empty()) {
            return Err(AuthError::MissingClaim("sub"));
        }
        let issuer = claims.iss.ok_or(AuthError::MissingClaim("iss"))?;
        if issuer != self.issuer {
            return Err(AuthError::WrongIssuer);
        }
        let audience = claims.aud.ok_or(AuthError::MissingClaim("aud"))?;
        if !audience.contains(&self.audience) {
            return Err(AuthError::WrongAudience);
        }

        let role = claims.role.ok_or(AuthError::MissingClaim("role"))?;
        match role.as_str() {
            ROLE_TRUST_WRITER => {
                let ods_code =
                    scope_claim(claims.ods, "ods")?.ok_or(AuthError::MissingClaim("ods"))?;
                Ok(Principal::TrustWriter { ods_code })
            }
            ROLE_BOARD_READER => {
                let ics_ods_code = scope_claim(claims.ics, "ics")?;
                let programme_id = scope_claim(claims.programme, "programme")?;
                if ics_ods_code.is_none() && programme_id.is_none() {
                    return Err(AuthError::MissingClaim("ics or programme"));
                }
                Ok(Principal::BoardReader {
                    ics_ods_code,
                    programme_id,
                })
            }
            ROLE_OPERATOR => Ok(Principal::Operator),
            _ => Err(AuthError::UnknownRole),
        }
    }
}

fn decode_json_segment<T: serde::de::DeserializeOwned>(
    segment: &str,
    not_base64: &'static str,
    not_json: &'static str,
) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed(not_base64))?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed(not_json))
}

/// An absent or empty scope claim is `None`; a present one must be a plain identifier.
fn scope_claim(value: Option<String>, claim: &'static str) -> Result<Option<String>, AuthError> {
    let Some(value) = value.filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    let plain = value.len() <= MAX_SCOPE_BYTES
        && value
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || matches!(character, '-' | '_'));
    if plain {
        Ok(Some(value))
    } else {
        Err(AuthError::InvalidClaim(claim))
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since_epoch) => i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        Err(before_epoch) => -i64::try_from(before_epoch.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// HMAC keyed the way RFC 2104 prescribes (long keys hashed, short keys zero-padded to the
/// block size), done here so that keying is infallible and needs no `unwrap`.
fn keyed_mac(secret: &[u8]) -> HmacSha256 {
    let mut key = Key::<HmacSha256>::default();
    if secret.len() > key.len() {
        let digest = Sha256::digest(secret);
        key[..digest.len()].copy_from_slice(&digest);
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    <HmacSha256 as KeyInit>::new(&key)
}

/// Signs a token for `principal`, valid for `ttl` from now. For `icsctl`, the demo and tests;
/// production tokens would come from the organisation's identity provider with the same claims.
pub fn mint_token(
    secret: impl AsRef<[u8]>,
    issuer: &str,
    audience: &str,
    principal: &Principal,
    ttl: Duration,
) -> String {
    let issued_at = unix_seconds(SystemTime::now());
    let expires_at = issued_at.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    let mut claims = serde_json::json!({
        "sub": principal.label(),
        "iss": issuer,
        "aud": audience,
        "iat": issued_at,
        "exp": expires_at,
        "role": principal.role_claim(),
    });
    match principal {
        Principal::TrustWriter { ods_code } => {
            claims["ods"] = ods_code.as_str().into();
        }
        Principal::BoardReader {
            ics_ods_code,
            programme_id,
        } => {
            if let Some(ics_ods_code) = ics_ods_code {
                claims["ics"] = ics_ods_code.as_str().into();
            }
            if let Some(programme_id) = programme_id {
                claims["programme"] = programme_id.as_str().into();
            }
        }
        Principal::Operator | Principal::Development => {}
    }
    sign_claims(secret.as_ref(), &claims)
}

fn sign_claims(secret: &[u8], claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = keyed_mac(secret);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

enum Mode {
    Development,
    Token(TokenVerifier),
}

/// Turns the `authorization` metadata of a call into a [`Principal`], according to the
/// configured [`AuthMode`].
#[derive(Clone)]
pub struct Authenticator {
    mode: Arc<Mode>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode.as_ref() {
            Mode::Development => "development",
            Mode::Token(_) => "token",
        };
        formatter
            .debug_struct("Authenticator")
            .field("mode", &mode)
            .finish()
    }
}

/// Secrets shorter than this are accepted but warned about: HS256 keys should carry at least
/// as much entropy as the hash output.
const RECOMMENDED_SECRET_BYTES: usize = 32;

impl Authenticator {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        match config.auth_mode {
            AuthMode::Development => Ok(Self::development()),
            AuthMode::Token => {
                let secret = config.token_secret.as_deref().unwrap_or_default();
                if secret.is_empty() {
                    anyhow::bail!(
                        "token authentication needs a signing secret: set ICS_TOKEN_SECRET \
                         (or ICS_AUTH_MODE=development on a laptop)"
                    );
                }
                if secret.len() < RECOMMENDED_SECRET_BYTES {
                    tracing::warn!(
                        secret_bytes = secret.len(),
                        recommended_bytes = RECOMMENDED_SECRET_BYTES,
                        "token secret is short"
                    );
                }
                Ok(Self::with_verifier(TokenVerifier::new(
                    secret,
                    config.token_issuer.clone(),
                    config.token_audience.clone(),
                )))
            }
        }
    }

    pub fn with_verifier(verifier: TokenVerifier) -> Self {
        Self {
            mode: Arc::new(Mode::Token(verifier)),
        }
    }

    /// Trusts every caller with everything. Says so loudly, because it must never be mistaken
    /// for a working configuration.
    pub fn development() -> Self {
        tracing::warn!("authentication disabled: development mode, every caller is trusted");
        Self {
            mode: Arc::new(Mode::Development),
        }
    }

    /// The principal behind a call's metadata.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, AuthError> {
        let verifier = match self.mode.as_ref() {
            Mode::Development => return Ok(Principal::Development),
            Mode::Token(verifier) => verifier,
        };
        let header = metadata
            .get("authorization")
            .ok_or(AuthError::MissingToken)?
            .to_str()
            .map_err(|_| AuthError::MalformedHeader)?;
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::MalformedHeader)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::MalformedHeader);
        }
        verifier.verify(token.trim())
    }

    /// A tonic interceptor that authenticates every call before its handler runs:
    /// `TrustsServiceServer::with_interceptor(service, authenticator.interceptor())`.
    pub fn interceptor(&self) -> AuthInterceptor {
        AuthInterceptor {
            authenticator: self.clone(),
        }
    }
}

/// See [`Authenticator::interceptor`].
#[derive(Clone, Debug)]
pub struct AuthInterceptor {
    authenticator: Authenticator,
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        match self.authenticator.authenticate(request.metadata()) {
            Ok(principal) => {
                // Handlers have no use for the raw token, and without it they cannot log it.
                request.metadata_mut().remove("authorization");
                request.extensions_mut().insert(principal);
                Ok(request)
            }
            Err(error) => {
                let rpc = request
                    .extensions()
                    .get::<RpcPath>()
                    .map(|path| path.as_str())
                    .unwrap_or_default();
                tracing::info!(rpc, reason = %error, "unauthenticated call refused");
                Err(Status::unauthenticated(error.to_string()))
            }
        }
    }
}

/// The principal the interceptor attached to this request.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, ServiceError> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ServiceError::Unauthenticated("no authenticated principal".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
    const ISSUER: &str = "ics";
    const AUDIENCE: &str = "ics-platform";

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(SECRET, ISSUER, AUDIENCE)
    }

    fn trust_writer(ods_code: &str) -> Principal {
        Principal::TrustWriter {
            ods_code: ods_code.to_owned(),
        }
    }

    fn board_of_ics(ics_ods_code: &str) -> Principal {
        Principal::BoardReader {
            ics_ods_code: Some(ics_ods_code.to_owned()),
            programme_id: None,
        }
    }

    fn now() -> i64 {
        unix_seconds(SystemTime::now())
    }

    fn valid_claims() -> serde_json::Value {
        serde_json::json!({
            "sub": "trust-writer:RTP",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "exp": now() + 300,
            "role": "trust_writer",
            "ods": "RTP",
        })
    }

    fn with_claim(name: &str, value: serde_json::Value) -> String {
        let mut claims = valid_claims();
        claims[name] = value;
        sign_claims(SECRET.as_bytes(), &claims)
    }

    fn without_claim(name: &str) -> String {
        let mut claims = valid_claims();
        if let Some(object) = claims.as_object_mut() {
            object.remove(name);
        }
        sign_claims(SECRET.as_bytes(), &claims)
    }

    fn with_header(header: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(header);
        let payload = URL_SAFE_NO_PAD.encode(valid_claims().to_string());
        let signing_input = format!("{header}.{payload}");
        let mut mac = keyed_mac(SECRET.as_bytes());
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    #[test]
    fn minted_tokens_verify_to_their_principal() {
        let principals = [
            trust_writer("RTP"),
            board_of_ics("QWO"),
            Principal::BoardReader {
                ics_ods_code: None,
                programme_id: Some("0190a1b2-c3d4".to_owned()),
            },
            Principal::Operator,
        ];
        for principal in principals {
            let token = mint_token(
                SECRET,
                ISSUER,
                AUDIENCE,
                &principal,
                Duration::from_secs(60),
            );
            assert_eq!(verifier().verify(&token), Ok(principal));
        }
    }

    #[test]
    fn keying_matches_the_hmac_crate_for_short_and_long_secrets() {
        for secret in [&b"short"[..], &[7u8; 200][..]] {
            let mut ours = keyed_mac(secret);
            let mut reference =
                <HmacSha256 as Mac>::new_from_slice(secret).expect("hmac accepts any key length");
            ours.update(b"message");
            reference.update(b"message");
            assert_eq!(
                ours.finalize().into_bytes(),
                reference.finalize().into_bytes()
            );
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(valid_claims().to_string());
        assert_eq!(
            verifier().verify(&format!("{header}.{payload}.")),
            Err(AuthError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn other_algorithms_are_refused_even_when_correctly_signed() {
        let token = with_header(r#"{"alg":"HS512","typ":"JWT"}"#);
        assert_eq!(
            verifier().verify(&token),
            Err(AuthError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn tampered_payload_fails_the_signature() {
        let token = mint_token(
            SECRET,
            ISSUER,
            AUDIENCE,
            &trust_writer("RTP"),
            Duration::from_secs(60),
        );
        let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims = valid_claims();
        claims["ods"] = "RR8".into();
        segments[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(
            verifier().verify(&segments.join(".")),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn token_signed_with_another_secret_is_refused() {
        let token = mint_token(
            "some-other-secret",
            ISSUER,
            AUDIENCE,
            &Principal::Operator,
            Duration::from_secs(60),
        );
        assert_eq!(verifier().verify(&token), Err(AuthError::BadSignature));
    }

    #[test]
    fn expiry_is_enforced_beyond_the_leeway() {
        let just_expired = with_claim("exp", (now() - 10).into());
        assert!(verifier().verify(&just_expired).is_ok(), "within leeway");
        let expired = with_claim("exp", (now() - 120).into());
        assert_eq!(verifier().verify(&expired), Err(AuthError::Expired));
        assert_eq!(
            verifier().verify(&without_claim("exp")),
            Err(AuthError::MissingClaim("exp"))
        );
    }

    #[test]
    fn not_before_is_enforced_beyond_the_leeway() {
        let future = with_claim("nbf", (now() + 600).into());
        assert_eq!(verifier().verify(&future), Err(AuthError::NotYetValid));
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let token = mint_token(
            SECRET,
            "someone-else",
            AUDIENCE,
            &Principal::Operator,
            Duration::from_secs(60),
        );
        assert_eq!(verifier().verify(&token), Err(AuthError::WrongIssuer));
    }

    #[test]
    fn wrong_audience_is_refused_and_audience_lists_are_understood() {
        let token = mint_token(
            SECRET,
            ISSUER,
            "another-platform",
            &Principal::Operator,
            Duration::from_secs(60),
        );
        assert_eq!(verifier().verify(&token), Err(AuthError::WrongAudience));
        let listed = with_claim("aud", serde_json::json!(["other", AUDIENCE]));
        assert_eq!(verifier().verify(&listed), Ok(trust_writer("RTP")));
    }

    #[test]
    fn missing_scope_claims_are_refused() {
        assert_eq!(
            verifier().verify(&without_claim("ods")),
            Err(AuthError::MissingClaim("ods"))
        );
        let board_without_scope = with_claim("role", "board_reader".into());
        assert_eq!(
            verifier().verify(&board_without_scope),
            Err(AuthError::MissingClaim("ics or programme"))
        );
    }

    #[test]
    fn unknown_and_development_roles_are_refused() {
        let admin = with_claim("role", "admin".into());
        assert_eq!(verifier().verify(&admin), Err(AuthError::UnknownRole));
        let development = mint_token(
            SECRET,
            ISSUER,
            AUDIENCE,
            &Principal::Development,
            Duration::from_secs(60),
        );
        assert_eq!(verifier().verify(&development), Err(AuthError::UnknownRole));
    }

    #[test]
    fn scope_claims_must_be_plain_identifiers() {
        let injected = with_claim("ods", "RTP\n\"forged\"".into());
        assert_eq!(
            verifier().verify(&injected),
            Err(AuthError::InvalidClaim("ods"))
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for token in ["", "abc", "a.b", "a.b.c.d", "!!!.???.***"] {
            assert!(
                matches!(verifier().verify(token), Err(AuthError::Malformed(_))),
                "{token:?} should be malformed"
            );
        }
    }

    #[test]
    fn trust_writer_writes_only_its_own_trust() {
        let writer = trust_writer("RTP");
        assert!(writer.authorize_trust_write("RTP").is_ok());
        let denied = writer.authorize_trust_write("RR8");
        assert!(matches!(
            &denied,
            Err(ServiceError::PermissionDenied(message))
                if message.contains("trust-writer:RTP") && message.contains("trust RR8")
        ));
        assert!(writer.authorize_operator().is_err());
        assert!(writer.authorize_ics_read("QWO").is_err());
    }

    #[test]
    fn board_reader_reads_only_its_own_scope_and_never_writes() {
        let board = board_of_ics("QWO");
        assert!(board.authorize_ics_read("QWO").is_ok());
        assert!(board.authorize_ics_read("QXU").is_err());
        assert!(board.authorize_programme_read("p-1").is_err());
        assert!(board.authorize_trust_write("RTP").is_err());
        assert!(board.authorize_trust_read("RTP").is_err());

        let programme_board = Principal::BoardReader {
            ics_ods_code: None,
            programme_id: Some("p-1".to_owned()),
        };
        assert!(programme_board.authorize_programme_read("p-1").is_ok());
        assert!(programme_board.authorize_programme_read("p-2").is_err());
        assert!(programme_board.authorize_ics_read("QWO").is_err());
    }

    #[test]
    fn operator_and_development_may_do_everything() {
        for principal in [Principal::Operator, Principal::Development] {
            assert!(principal.authorize_trust_write("RTP").is_ok());
            assert!(principal.authorize_trust_read("RTP").is_ok());
            assert!(principal.authorize_operator().is_ok());
            assert!(principal.authorize_ics_read("QWO").is_ok());
            assert!(principal.authorize_programme_read("p-1").is_ok());
        }
    }

    #[test]
    fn labels_name_role_and_scope() {
        assert_eq!(trust_writer("RTP").label(), "trust-writer:RTP");
        assert_eq!(board_of_ics("QWO").label(), "board-reader:ics:QWO");
        assert_eq!(Principal::Operator.label(), "operator");
        assert_eq!(Principal::Development.label(), "development");
    }

    #[test]
    fn interceptor_attaches_the_principal_and_drops_the_token() {
        let authenticator = Authenticator::with_verifier(verifier());
        let token = mint_token(
            SECRET,
            ISSUER,
            AUDIENCE,
            &trust_writer("RTP"),
            Duration::from_secs(60),
        );
        let mut request = Request::new(());
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii metadata"),
        );

        let request = authenticator
            .interceptor()
            .call(request)
            .expect("valid token is accepted");

        assert_eq!(principal(&request).ok(), Some(trust_writer("RTP")));
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn interceptor_refuses_calls_without_a_valid_token_without_echoing_it() {
        let authenticator = Authenticator::with_verifier(verifier());

        let missing = authenticator
            .interceptor()
            .call(Request::new(()))
            .expect_err("no token");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);

        let bogus_token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2VjcmV0";
        let mut request = Request::new(());
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {bogus_token}")
                .parse()
                .expect("ascii metadata"),
        );
        let refused = authenticator
            .interceptor()
            .call(request)
            .expect_err("alg none");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(!refused.message().contains(bogus_token));
    }

    #[test]
    fn handlers_without_a_principal_are_unauthenticated() {
        assert!(matches!(
            principal(&Request::new(())),
            Err(ServiceError::Unauthenticated(_))
        ));
    }
}
