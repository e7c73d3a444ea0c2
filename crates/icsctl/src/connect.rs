//! Reaching the services: channels, the bearer token on every call, and command options.

use std::time::Duration;

use anyhow::Context as _;
use ics_auth::{Principal, mint_token};
use ics_client::{Bearer, BearerChannel, ClientTls, RetryingChannel};
use ics_proto::admin::v1::admin_service_client::AdminServiceClient;
use ics_proto::events::v1::CommandOptions;
use ics_proto::metrics::v1::metrics_service_client::MetricsServiceClient;
use ics_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
use ics_proto::workshops::v1::workshops_service_client::WorkshopsServiceClient;

use crate::cli::{GlobalArgs, OutputFormat, ServiceName};

/// Long enough for the demo and for starting a watch or a tail (the server checks the token
/// when a call starts), short enough that a leaked token soon stops working.
const MINTED_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub type Trusts = TrustsServiceClient<BearerChannel>;
pub type Workshops = WorkshopsServiceClient<BearerChannel>;
pub type Metrics = MetricsServiceClient<BearerChannel>;
pub type Reporting = ReportingServiceClient<BearerChannel>;
pub type Admin = AdminServiceClient<BearerChannel>;

/// The token to send: `--token` as given, else one minted from `--token-secret` for `--as`,
/// else none.
pub fn resolve_token(global: &GlobalArgs) -> anyhow::Result<Option<String>> {
    if let Some(token) = global.token.as_deref().filter(|token| !token.is_empty()) {
        return Ok(Some(token.to_owned()));
    }
    if let Some(secret) = signing_secret(global)? {
        let principal = global.as_principal.clone().unwrap_or(Principal::Operator);
        return Ok(Some(mint_token(
            &secret,
            &global.token_issuer,
            &global.token_audience,
            &principal,
            MINTED_TOKEN_TTL,
        )?));
    }
    if let Some(principal) = &global.as_principal {
        // Silently calling without a token would make the server answer for someone else.
        anyhow::bail!(
            "a token for {principal} (--as) is minted with --token-secret (or ICS_TOKEN_SECRET) \
             or --token-secret-file (ICS_TOKEN_SECRET_FILE), neither of which is set; or pass \
             --token"
        );
    }
    Ok(None)
}

/// The signing secret given with `--token-secret`, or read from `--token-secret-file` (without
/// the line end an editor or `echo` leaves); none when neither is set.
pub fn signing_secret(global: &GlobalArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &global.token_secret_file {
        let contents = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
        let secret = contents.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
        return Ok(Some(secret.to_owned()));
    }
    Ok(global
        .token_secret
        .clone()
        .filter(|secret| !secret.is_empty()))
}

/// What every command needs: where the services are, how to authenticate, how to answer.
#[derive(Debug)]
pub struct Context {
    pub trusts_url: String,
    pub workshops_url: String,
    pub metrics_url: String,
    pub reporting_url: String,
    pub bearer: Bearer,
    pub tls: ClientTls,
    pub request_id: Option<String>,
    pub expected_version: Option<u64>,
    pub output: OutputFormat,
}

impl Context {
    pub fn new(global: &GlobalArgs) -> anyhow::Result<Self> {
        let token = resolve_token(global)?;
        Ok(Self {
            trusts_url: global.trusts_url.clone(),
            workshops_url: global.workshops_url.clone(),
            metrics_url: global.metrics_url.clone(),
            reporting_url: global.reporting_url.clone(),
            bearer: Bearer::new(token.as_deref())?,
            tls: ClientTls::from(&global.tls),
            request_id: global.request_id.clone(),
            expected_version: global.expected_version,
            output: global.output,
        })
    }

    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// Options for the one command this invocation sends: the caller's request id so that a
    /// script can retry idempotently, or a fresh UUIDv7.
    pub fn options(&self) -> CommandOptions {
        CommandOptions {
            request_id: self
                .request_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            expected_version: self.expected_version,
        }
    }

    pub async fn trusts(&self) -> anyhow::Result<Trusts> {
        let channel = connect(&self.trusts_url, "trusts", &self.tls)?;
        Ok(TrustsServiceClient::with_interceptor(
            channel,
            self.bearer.clone(),
        ))
    }

    pub async fn workshops(&self) -> anyhow::Result<Workshops> {
        let channel = connect(&self.workshops_url, "workshops", &self.tls)?;
        Ok(WorkshopsServiceClient::with_interceptor(
            channel,
            self.bearer.clone(),
        ))
    }

    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let channel = connect(&self.metrics_url, "metrics", &self.tls)?;
        Ok(MetricsServiceClient::with_interceptor(
            channel,
            self.bearer.clone(),
        ))
    }

    pub async fn reporting(&self) -> anyhow::Result<Reporting> {
        let channel = connect(&self.reporting_url, "reporting", &self.tls)?;
        Ok(ReportingServiceClient::with_interceptor(
            channel,
            self.bearer.clone(),
        ))
    }

    /// The admin API of one service, at that service's URL.
    pub async fn admin(&self, service: ServiceName) -> anyhow::Result<Admin> {
        let (url, name) = match service {
            ServiceName::Trusts => (&self.trusts_url, "trusts"),
            ServiceName::Workshops => (&self.workshops_url, "workshops"),
            ServiceName::Metrics => (&self.metrics_url, "metrics"),
            ServiceName::Reporting => (&self.reporting_url, "reporting"),
        };
        let channel = connect(url, name, &self.tls)?;
        Ok(AdminServiceClient::with_interceptor(
            channel,
            self.bearer.clone(),
        ))
    }
}

/// A channel that connects on first use and retries calls the server could not take (see
/// [`RetryingChannel`]), so a restarting or draining server does not fail a demo or an import.
/// An https:// URL always gets TLS (see [`ics_client::endpoint`]).
fn connect(url: &str, service: &str, tls: &ClientTls) -> anyhow::Result<RetryingChannel> {
    let endpoint = ics_client::endpoint(url, tls)
        .with_context(|| format!("cannot use the {service} service's address"))?
        .connect_timeout(CONNECT_TIMEOUT);
    Ok(RetryingChannel::new(endpoint.connect_lazy()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::Cli;

    fn global(arguments: &[&str]) -> GlobalArgs {
        let mut argv = vec!["icsctl"];
        argv.extend_from_slice(arguments);
        argv.extend_from_slice(&["org", "get", "RTP"]);
        Cli::try_parse_from(argv).expect("parses").global
    }

    #[test]
    fn an_explicit_token_is_sent_as_given() {
        let token = resolve_token(&global(&["--token", "abc.def.ghi"])).expect("resolves");
        assert_eq!(token.as_deref(), Some("abc.def.ghi"));
    }

    #[test]
    fn a_secret_mints_a_token_for_the_principal() {
        let secret = "a-test-secret-that-is-at-least-32-bytes";
        let token = resolve_token(&global(&["--token-secret", secret, "--as", "trust:RTP"]))
            .expect("resolves")
            .expect("a token");
        let verifier =
            ics_auth::TokenVerifier::with_secret(secret, "ics", "ics-platform").expect("a secret");
        assert_eq!(
            verifier.verify(&token),
            Ok(Principal::TrustWriter {
                ods_code: "RTP".to_owned()
            })
        );
    }

    #[test]
    fn a_principal_without_a_secret_is_refused() {
        let error = resolve_token(&global(&["--as", "operator"])).expect_err("no secret");
        assert!(error.to_string().contains("--token-secret"));
    }
}
