use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;

use crate::principal::{Principal, ROLE_BOARD_READER, ROLE_OPERATOR, ROLE_TRUST_WRITER};

/// Clock skew tolerated between the token issuer and this service.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(30);

/// Tokens longer than this are rejected unparsed: real ones are a few hundred bytes (an RS256
/// signature adds 342), and the limit keeps a hostile header from costing decode time.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Scope identifiers (ODS codes, programme ids) end up in labels and logs; anything outside
/// this alphabet is refused so that a token cannot smuggle log-breaking text.
const MAX_SCOPE_BYTES: usize = 64;

/// Why a bearer token was refused. Messages describe the problem and never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token in the authorization metadata")]
    MissingToken,
    #[error("authorization metadata must be 'Bearer <token>'")]
    MalformedHeader,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("token is signed with a key the identity provider does not publish")]
    UnknownKey,
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
    #[error("cannot sign a token: {0}")]
    CannotSign(String),
}

/// Why a published key set could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("the key set is not a JWKS document: {0}")]
    NotJwks(String),
    #[error("the key set holds no RS256 or ES256 signing key with a kid")]
    NoSigningKeys,
}

/// The signing keys an identity provider publishes (its JWKS), by `kid`. Cloned handles share
/// one set, which [`replace_with_json`](Self::replace_with_json) swaps whole when the provider
/// rotates its keys: verifiers pick the change up without a restart.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Arc<RwLock<Arc<KeysById>>>,
}

/// Each published key with the one algorithm it may verify.
type KeysById = HashMap<String, (Algorithm, DecodingKey)>;

impl fmt::Debug for KeySet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("KeySet")
            .field("kids", &self.kids())
            .finish()
    }
}

impl KeySet {
    pub fn from_json(json: &str) -> Result<KeySet, KeySetError> {
        let key_set = KeySet::default();
        key_set.replace_with_json(json)?;
        Ok(key_set)
    }

    /// Replaces the keys with those of a JWKS document; returns how many signing keys it
    /// holds. A document without a usable key is refused and the current keys stay.
    pub fn replace_with_json(&self, json: &str) -> Result<usize, KeySetError> {
        let document: JwkSet =
            serde_json::from_str(json).map_err(|error| KeySetError::NotJwks(error.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &document.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(curve), None | Some(KeyAlgorithm::ES256))
                    if curve.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            keys.insert(kid, (algorithm, key));
        }
        if keys.is_empty() {
            return Err(KeySetError::NoSigningKeys);
        }
        let count = keys.len();
        let mut current = self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Arc::new(keys);
        Ok(count)
    }

    /// The key ids now published, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.current().keys().cloned().collect();
        kids.sort();
        kids
    }

    fn current(&self) -> Arc<KeysById> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

enum Keys {
    /// HS256 with the platform's shared secret: development and tests.
    Shared(DecodingKey),
    /// RS256 or ES256 with the identity provider's published keys.
    Published(KeySet),
}

/// Verifies bearer tokens: their signature, `exp`/`nbf` (with [`CLOCK_LEEWAY`]), issuer,
/// audience and subject, then the platform's role and scope claims.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<Keys>,
    issuer: String,
    audience: String,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match self.keys.as_ref() {
            Keys::Shared(_) => "shared secret <redacted>".to_owned(),
            Keys::Published(set) => format!("published keys {:?}", set.kids()),
        };
        formatter
            .debug_struct("TokenVerifier")
            .field("keys", &keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// Every platform claim is optional here so that a missing one is reported by name.
#[derive(Deserialize)]
struct Claims {
    exp: Option<u64>,
    sub: Option<String>,
    role: Option<String>,
    ods: Option<String>,
    ics: Option<String>,
    programme: Option<String>,
}

impl TokenVerifier {
    /// HS256 tokens signed with `secret` (development and tests).
    pub fn with_secret(
        secret: impl AsRef<[u8]>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, AuthError> {
        let key = DecodingKey::from_secret(secret.as_ref())
            .map_err(|_| AuthError::CannotSign("the token secret is empty".to_owned()))?;
        Ok(Self {
            keys: Arc::new(Keys::Shared(key)),
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// RS256 and ES256 tokens signed with a key of `keys`, chosen by the token's `kid`.
    pub fn with_key_set(
        keys: KeySet,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            keys: Arc::new(Keys::Published(keys)),
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    /// The published keys this verifier uses, for whoever refreshes them.
    pub fn key_set(&self) -> Option<&KeySet> {
        match self.keys.as_ref() {
            Keys::Published(keys) => Some(keys),
            Keys::Shared(_) => None,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_until(token).map(|(principal, _)| principal)
    }

    /// [`verify`](Self::verify), with the moment the token expires: what a long-lived call
    /// (a live watch) must not outlast.
    pub fn verify_until(&self, token: &str) -> Result<(Principal, SystemTime), AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed("token is too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Malformed("not a JWT with a known algorithm"))?;
        // The algorithm is decided by the key, never by the token: a verifier of published
        // keys accepts no HMAC at all, and a key is used only with its own algorithm.
        let (algorithm, key) = match self.keys.as_ref() {
            Keys::Shared(key) => {
                if header.alg != Algorithm::HS256 {
                    return Err(AuthError::UnsupportedAlgorithm);
                }
                (Algorithm::HS256, key.clone())
            }
            Keys::Published(keys) => {
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(AuthError::UnsupportedAlgorithm);
                }
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or(AuthError::Malformed("token names no signing key (kid)"))?;
                let current = keys.current();
                let (algorithm, key) = current.get(kid).ok_or(AuthError::UnknownKey)?;
                if *algorithm != header.alg {
                    return Err(AuthError::UnsupportedAlgorithm);
                }
                (*algorithm, key.clone())
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = CLOCK_LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(refusal)?;
        let expires_at = data
            .claims
            .exp
            .map(|exp| UNIX_EPOCH + Duration::from_secs(exp))
            .ok_or(AuthError::MissingClaim("exp"))?;
        Ok((principal_from(data.claims)?, expires_at))
    }
}

/// jsonwebtoken's error as the platform's refusal.
fn refusal(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            AuthError::UnsupportedAlgorithm
        }
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(match claim.as_str() {
            "exp" => "exp",
            "iss" => "iss",
            "aud" => "aud",
            "sub" => "sub",
            _ => "required",
        }),
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
            AuthError::Malformed("claims are not a JSON object with the expected claim types")
        }
        _ => AuthError::Malformed("not a well-formed JWT"),
    }
}

fn principal_from(claims: Claims) -> Result<Principal, AuthError> {
    if claims.sub.is_none_or(|subject| subject.is_empty()) {
        return Err(AuthError::MissingClaim("sub"));
    }
    let role = claims.role.ok_or(AuthError::MissingClaim("role"))?;
    match role.as_str() {
        ROLE_TRUST_WRITER => {
            let ods_code = scope_claim(claims.ods, "ods")?.ok_or(AuthError::MissingClaim("ods"))?;
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

/// The claims the platform reads, for `principal`, valid for `ttl` from now: what an identity
/// provider's token for the platform must carry.
pub fn claims_for(
    issuer: &str,
    audience: &str,
    principal: &Principal,
    ttl: Duration,
) -> serde_json::Value {
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
    claims
}

/// An HS256 token for `principal`, valid for `ttl` from now. For `icsctl`, the demo and tests;
/// production tokens come from the organisation's identity provider with the same claims.
pub fn mint_token(
    secret: impl AsRef<[u8]>,
    issuer: &str,
    audience: &str,
    principal: &Principal,
    ttl: Duration,
) -> Result<String, AuthError> {
    let key = EncodingKey::from_secret(secret.as_ref())
        .map_err(|_| AuthError::CannotSign("the token secret is empty".to_owned()))?;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims_for(issuer, audience, principal, ttl),
        &key,
    )
    .map_err(|error| AuthError::CannotSign(error.to_string()))
}
