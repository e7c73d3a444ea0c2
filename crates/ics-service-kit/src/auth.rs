//! Admission on the server: every call's bearer token turned into its [`Principal`] before any
//! handler runs, the token keys it is verified against, and each tenant's share of the server.
//!
//! Principals, tokens and the tenancy policy live in [`ics_auth`], shared with clients. Here:
//! - [`Authenticator::start`] builds the verifier from configuration: the identity provider's
//!   published keys (`ICS_TOKEN_JWKS`, a file or an `https://` URL, refreshed every
//!   `ICS_TOKEN_JWKS_REFRESH_SECS` so that rotated keys are used without a restart), or the
//!   HS256 shared secret (`ICS_TOKEN_SECRET`) for development and tests; never both;
//! - [`Authenticator::admit_call`] authenticates every call (the server runs it before routing,
//!   see [`crate::server`]) and puts the principal into the request extensions, where handlers
//!   read it with [`principal`] and ask it for permission with the `authorize_*` methods
//!   (architecture decision 7);
//! - a tenant (a trust writer's or a board's token subject) gets a sustained call rate
//!   (`ICS_TENANT_CALLS_PER_SEC`, a token bucket) and a number of calls in flight
//!   (`ICS_TENANT_CONCURRENT_CALLS`): beyond its rate a call is answered RESOURCE_EXHAUSTED
//!   after the time it should have waited (so a client that retries at once is slowed to the
//!   rate, not served refusals as fast as it can ask), and beyond its calls in flight a call
//!   queues behind the tenant's own, so that one tenant's flood takes its share of the
//!   machine and no more.
//!
//! ```no_run
//! # use ics_service_kit::{auth::principal, error::ServiceError};
//! # fn handler(request: tonic::Request<()>, trust_ods_code: &str) -> Result<(), ServiceError> {
//! let caller = principal(&request)?;
//! caller.authorize_trust_write(trust_ods_code)?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use ics_auth::{AuthError, Denied, KeySet, Principal, TokenVerifier, mint_token};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::config::{AuthConfig, AuthMode};
use crate::error::ServiceError;
use crate::limits::TenantSlots;

/// Secrets shorter than this are accepted but warned about: HS256 keys should carry at least
/// as much entropy as the hash output.
const RECOMMENDED_SECRET_BYTES: usize = 32;

/// How long fetching a key set from its URL may take.
const KEY_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

impl From<AuthError> for ServiceError {
    fn from(error: AuthError) -> Self {
        ServiceError::Unauthenticated(error.to_string())
    }
}

impl From<Denied> for ServiceError {
    fn from(denied: Denied) -> Self {
        denied.audit();
        ServiceError::PermissionDenied(denied.to_string())
    }
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
    /// Calls per tenant (trust writers and boards), so that one cannot flood the rest.
    tenant_limit: Option<Arc<TenantLimit>>,
    /// Calls in flight per tenant.
    tenant_calls: Option<TenantSlots>,
}

/// How long a call may queue behind its tenant's calls in flight before it is refused.
const TENANT_QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How long a rate-limited call is held before its refusal goes out: the time it should have
/// waited, but at least the minimum (a client that retries at once makes a few refusals a
/// second per connection, not hundreds) and at most the maximum.
const MIN_REFUSAL_DELAY: Duration = Duration::from_millis(100);
const MAX_REFUSAL_DELAY: Duration = Duration::from_secs(1);

/// An admitted call: who, until when, and its place among its tenant's calls in flight, held
/// until the call's response is ready.
#[derive(Debug)]
pub struct Admitted {
    pub principal: Principal,
    pub expires_at: Option<SystemTime>,
    pub slot: Option<OwnedSemaphorePermit>,
}

type TenantLimit = governor::DefaultKeyedRateLimiter<String>;

impl fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode.as_ref() {
            Mode::Development => "development".to_owned(),
            Mode::Token(verifier) => format!("{verifier:?}"),
        };
        formatter
            .debug_struct("Authenticator")
            .field("mode", &mode)
            .finish()
    }
}

/// Where the identity provider publishes its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(std::path::PathBuf),
    Url(String),
}

impl KeySource {
    /// `https://…` (or `http://` to a loopback address, for tests) is a URL; anything else a
    /// file path.
    pub fn parse(value: &str) -> anyhow::Result<KeySource> {
        if let Some(rest) = value.strip_prefix("http://") {
            let host = rest.split(['/', ':']).next().unwrap_or_default();
            anyhow::ensure!(
                matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
                "ICS_TOKEN_JWKS must be an https:// URL (plain http only to a loopback address)"
            );
            return Ok(KeySource::Url(value.to_owned()));
        }
        if value.starts_with("https://") {
            return Ok(KeySource::Url(value.to_owned()));
        }
        Ok(KeySource::File(value.into()))
    }

    /// The JWKS document as it stands now.
    pub async fn read(&self) -> anyhow::Result<String> {
        match self {
            KeySource::File(path) => tokio::fs::read_to_string(path).await.map_err(|error| {
                anyhow::anyhow!("cannot read the token keys at {}: {error}", path.display())
            }),
            KeySource::Url(url) => {
                let client = reqwest::Client::builder()
                    .timeout(KEY_FETCH_TIMEOUT)
                    .build()?;
                let response = client.get(url).send().await?.error_for_status()?;
                Ok(response.text().await?)
            }
        }
    }
}

impl Authenticator {
    /// The authenticator `config` describes. With published keys, a task refreshes them every
    /// `ICS_TOKEN_JWKS_REFRESH_SECS` until `shutdown`; a failed refresh keeps the current keys.
    pub async fn start(config: &AuthConfig, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        if config.auth_mode == AuthMode::Development {
            return Ok(Self::development());
        }
        let verifier = Self::verifier(config, shutdown).await?;
        Ok(Self::with_verifier(verifier)
            .with_tenant_limit(config.tenant_calls_per_sec, config.tenant_call_burst)
            .with_tenant_concurrency(config.tenant_concurrent_calls))
    }

    async fn verifier(
        config: &AuthConfig,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<TokenVerifier> {
        let secret = match &config.token_secret_file {
            Some(path) => crate::config::read_secret_file(path, "ICS_TOKEN_SECRET_FILE")?,
            None => config.token_secret.clone().unwrap_or_default(),
        };
        let secret = secret.as_str();
        match (config.token_jwks.as_deref(), secret.is_empty()) {
            (Some(_), false) => anyhow::bail!(
                "set either ICS_TOKEN_JWKS (the identity provider's keys) or ICS_TOKEN_SECRET \
                 (development and tests), not both"
            ),
            (None, true) => anyhow::bail!(
                "token authentication needs the identity provider's keys (ICS_TOKEN_JWKS) or, \
                 for development and tests, a signing secret (ICS_TOKEN_SECRET or \
                 ICS_TOKEN_SECRET_FILE); or \
                 ICS_AUTH_MODE=development on a laptop"
            ),
            (None, false) => {
                if secret.len() < RECOMMENDED_SECRET_BYTES {
                    tracing::warn!(
                        secret_bytes = secret.len(),
                        recommended_bytes = RECOMMENDED_SECRET_BYTES,
                        "token secret is short"
                    );
                }
                Ok(TokenVerifier::with_secret(
                    secret,
                    config.token_issuer.clone(),
                    config.token_audience.clone(),
                )?)
            }
            (Some(jwks), true) => {
                let source = KeySource::parse(jwks)?;
                let keys = KeySet::from_json(&source.read().await?)?;
                tracing::info!(kids = ?keys.kids(), "token keys loaded");
                tokio::spawn(refresh_keys(
                    source,
                    keys.clone(),
                    Duration::from_secs(config.token_jwks_refresh_secs.max(1)),
                    shutdown.clone(),
                ));
                Ok(TokenVerifier::with_key_set(
                    keys,
                    config.token_issuer.clone(),
                    config.token_audience.clone(),
                ))
            }
        }
    }

    pub fn with_verifier(verifier: TokenVerifier) -> Self {
        Self {
            mode: Arc::new(Mode::Token(verifier)),
            tenant_limit: None,
            tenant_calls: None,
        }
    }

    /// Lets each tenant have at most `per_tenant` calls in flight; more queue (none when 0).
    pub fn with_tenant_concurrency(mut self, per_tenant: u32) -> Self {
        self.tenant_calls = (per_tenant > 0).then(|| TenantSlots::new(per_tenant));
        self
    }

    /// Limits each tenant to `per_second` calls sustained, `burst` at once (none when 0).
    pub fn with_tenant_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.tenant_limit = std::num::NonZeroU32::new(per_second).map(|per_second| {
            let burst =
                std::num::NonZeroU32::new(burst.max(per_second.get())).unwrap_or(per_second);
            Arc::new(governor::RateLimiter::dashmap(
                governor::Quota::per_second(per_second).allow_burst(burst),
            ))
        });
        self
    }

    /// Whether `principal` may make another call now; when not, how long until it may. The
    /// gRPC calls' admission asks it, and so do the dashboard's pages.
    pub fn admit(&self, principal: &Principal) -> Result<(), Duration> {
        let Some(limit) = &self.tenant_limit else {
            return Ok(());
        };
        if !crate::limits::is_tenant(principal) {
            return Ok(());
        }
        limit.check_key(&principal.label()).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }

    /// Trusts every caller with everything. Says so loudly, because it must never be mistaken
    /// for a working configuration.
    pub fn development() -> Self {
        tracing::warn!("authentication disabled: development mode, every caller is trusted");
        Self {
            mode: Arc::new(Mode::Development),
            tenant_limit: None,
            tenant_calls: None,
        }
    }

    /// The principal behind a call's metadata.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, AuthError> {
        self.authenticate_header(metadata.get("authorization").map(|value| value.as_bytes()))
            .map(|(principal, _)| principal)
    }

    /// The principal behind a bare bearer token (a session cookie's), and when it expires
    /// (never, in development mode).
    pub fn authenticate_token(
        &self,
        token: &str,
    ) -> Result<(Principal, Option<SystemTime>), AuthError> {
        match self.mode.as_ref() {
            Mode::Development => Ok((Principal::Development, None)),
            Mode::Token(verifier) => {
                let (principal, expires_at) = verifier.verify_until(token.trim())?;
                Ok((principal, Some(expires_at)))
            }
        }
    }

    /// The principal behind an `authorization` header, and when its token expires.
    fn authenticate_header(
        &self,
        header: Option<&[u8]>,
    ) -> Result<(Principal, Option<SystemTime>), AuthError> {
        // Development mode needs no header at all.
        if matches!(self.mode.as_ref(), Mode::Development) {
            return Ok((Principal::Development, None));
        }
        let header = std::str::from_utf8(header.ok_or(AuthError::MissingToken)?)
            .map_err(|_| AuthError::MalformedHeader)?;
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::MalformedHeader)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::MalformedHeader);
        }
        self.authenticate_token(token)
    }

    /// Admits the call to `rpc` with these headers, or answers why not: UNAUTHENTICATED without
    /// a valid token; RESOURCE_EXHAUSTED, with the time to wait, beyond the tenant's rate (after
    /// holding the call for that time, at most a second) or after queueing
    /// [`TENANT_QUEUE_WAIT`] behind the tenant's calls in flight. Refusals are audited.
    pub async fn admit_call(
        &self,
        headers: &http::HeaderMap,
        rpc: &str,
    ) -> Result<Admitted, Status> {
        let authorization = headers.get(http::header::AUTHORIZATION);
        let (principal, expires_at) = self
            .authenticate_header(authorization.map(|value| value.as_bytes()))
            .map_err(|error| {
                tracing::info!(
                    target: crate::audit::TARGET,
                    kind = "unauthenticated",
                    rpc,
                    reason = %error,
                    "unauthenticated call refused"
                );
                Status::unauthenticated(error.to_string())
            })?;
        if let Err(wait) = self.admit(&principal) {
            tracing::info!(principal = %principal.label(), rpc, wait_ms = wait.as_millis() as u64, "tenant call limit reached");
            let held = wait.clamp(MIN_REFUSAL_DELAY, MAX_REFUSAL_DELAY);
            tokio::time::sleep(held).await;
            let wait = wait.saturating_sub(held);
            let mut details = tonic_types::ErrorDetails::new();
            details.set_retry_info(Some(wait));
            return Err(<Status as tonic_types::StatusExt>::with_error_details(
                tonic::Code::ResourceExhausted,
                format!(
                    "too many calls from {}; retry in {} ms",
                    principal.label(),
                    wait.as_millis().max(1)
                ),
                details,
            ));
        }
        let slot = match &self.tenant_calls {
            Some(calls) => match calls.enter(&principal, TENANT_QUEUE_WAIT).await {
                Ok(slot) => slot,
                Err(crate::limits::SlotsTaken) => {
                    let tenant = principal.label();
                    let in_flight = calls.per_tenant();
                    tracing::info!(principal = %tenant, rpc, in_flight, "tenant calls in flight limit reached");
                    return Err(Status::resource_exhausted(format!(
                        "{tenant} has {in_flight} calls in flight and more waiting; retry later"
                    )));
                }
            },
            None => None,
        };
        Ok(Admitted {
            principal,
            expires_at,
            slot,
        })
    }
}

/// Reloads the published keys every `period`, logging a change of key ids (a rotation).
async fn refresh_keys(
    source: KeySource,
    keys: KeySet,
    period: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let before = keys.kids();
        let refreshed = match source.read().await {
            Ok(document) => keys
                .replace_with_json(&document)
                .map_err(anyhow::Error::from),
            Err(error) => Err(error),
        };
        match refreshed {
            Ok(_) if keys.kids() != before => {
                tracing::info!(kids = ?keys.kids(), previous = ?before, "token keys rotated");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "token keys not refreshed; keeping the current ones");
            }
        }
    }
}

/// When the token of the call expires: long-lived calls (live watches, following tails) end
/// then with UNAUTHENTICATED rather than outlive the authority they were opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenExpiry(pub SystemTime);

/// The expiry admission attached to this request (none in development mode).
pub fn token_expiry<T>(request: &Request<T>) -> Option<SystemTime> {
    request
        .extensions()
        .get::<TokenExpiry>()
        .map(|expiry| expiry.0)
}

/// Waits until `expires_at` (forever when there is none): for a `select!` arm that ends a
/// long-lived call when its token expires.
pub async fn token_expired(expires_at: Option<SystemTime>) {
    match expires_at {
        None => std::future::pending().await,
        Some(expires_at) => {
            let left = expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            tokio::time::sleep(left).await;
        }
    }
}

/// The status a long-lived call ends with when its token expires.
pub fn token_expired_status() -> Status {
    Status::unauthenticated("the token expired; open the call again with a fresh token")
}

/// The principal admission attached to this request.
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

    fn authenticator() -> Authenticator {
        Authenticator::with_verifier(
            TokenVerifier::with_secret(SECRET, ISSUER, AUDIENCE).expect("a secret"),
        )
    }

    fn trust_writer(ods_code: &str) -> Principal {
        Principal::TrustWriter {
            ods_code: ods_code.to_owned(),
        }
    }

    fn bearer(token: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("ascii header"),
        );
        headers
    }

    fn token_for(principal: &Principal) -> String {
        mint_token(SECRET, ISSUER, AUDIENCE, principal, Duration::from_secs(60)).expect("minted")
    }

    #[tokio::test]
    async fn admission_names_the_principal_of_a_valid_token() {
        let admitted = authenticator()
            .admit_call(&bearer(&token_for(&trust_writer("RTP"))), "/rpc")
            .await
            .expect("valid token is accepted");
        assert_eq!(admitted.principal, trust_writer("RTP"));
        assert!(admitted.expires_at.is_some());
    }

    #[tokio::test]
    async fn admission_refuses_calls_without_a_valid_token_without_echoing_it() {
        let missing = authenticator()
            .admit_call(&http::HeaderMap::new(), "/rpc")
            .await
            .expect_err("no token");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);

        let bogus_token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2VjcmV0";
        let refused = authenticator()
            .admit_call(&bearer(bogus_token), "/rpc")
            .await
            .expect_err("alg none");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(!refused.message().contains(bogus_token));
    }

    /// A tenant's calls beyond its share wait for one in flight to end; other tenants and
    /// operators do not wait.
    #[tokio::test]
    async fn a_tenant_queues_behind_its_own_calls_in_flight_only() {
        let authenticator = authenticator().with_tenant_concurrency(1);
        let writer = bearer(&token_for(&trust_writer("RTP")));
        let first = authenticator
            .admit_call(&writer, "/rpc")
            .await
            .expect("first");
        let queued = authenticator.admit_call(&writer, "/rpc");
        tokio::pin!(queued);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut queued)
                .await
                .is_err(),
            "the second call of the tenant waits"
        );
        let other = bearer(&token_for(&trust_writer("RR8")));
        authenticator
            .admit_call(&other, "/rpc")
            .await
            .expect("another tenant");
        let operator = bearer(&token_for(&Principal::Operator));
        let _operators = (
            authenticator
                .admit_call(&operator, "/rpc")
                .await
                .expect("operator"),
            authenticator
                .admit_call(&operator, "/rpc")
                .await
                .expect("operator"),
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), queued)
            .await
            .expect("admitted once the first call ended");
        assert!(second.is_ok());
    }

    /// Beyond its rate, a tenant's call is held for the time it should have waited before the
    /// refusal goes out: a client retrying at once is slowed to the rate.
    #[tokio::test]
    async fn a_refusal_for_rate_is_held_for_the_wait() {
        let authenticator = authenticator().with_tenant_limit(10, 10);
        let writer = bearer(&token_for(&trust_writer("RTP")));
        // The burst first (as many as the sustained rate at least).
        for _ in 0..10 {
            authenticator
                .admit_call(&writer, "/rpc")
                .await
                .expect("within the burst");
        }
        let started = std::time::Instant::now();
        let refused = authenticator
            .admit_call(&writer, "/rpc")
            .await
            .expect_err("beyond the rate");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "refused after {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn handlers_without_a_principal_are_unauthenticated() {
        assert!(matches!(
            principal(&Request::new(())),
            Err(ServiceError::Unauthenticated(_))
        ));
    }

    #[test]
    fn a_denial_is_permission_denied_naming_who_what_and_which() {
        let denied = trust_writer("RTP")
            .authorize_trust_write("RR8")
            .expect_err("another trust");
        let error = ServiceError::from(denied);
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            error.to_string(),
            "trust-writer:RTP may not write trust RR8"
        );
    }

    #[test]
    fn key_sources_are_https_urls_loopback_http_or_files() {
        assert!(matches!(
            KeySource::parse("https://login.example.nhs.uk/jwks"),
            Ok(KeySource::Url(_))
        ));
        assert!(matches!(
            KeySource::parse("http://127.0.0.1:8080/jwks"),
            Ok(KeySource::Url(_))
        ));
        assert!(KeySource::parse("http://idp.example.nhs.uk/jwks").is_err());
        assert!(matches!(
            KeySource::parse("/etc/ics/jwks.json"),
            Ok(KeySource::File(_))
        ));
    }
}
