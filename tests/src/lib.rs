//! Harness for end-to-end tests: starts the real `icsd` binaries against the machine's Postgres
//! and NATS, each test with its own database, subject prefix, ports and token secret.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which `scripts/test`
//! does); they are found beside the test executable's `deps/` folder, or in `ICS_BIN_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ics_auth::{Principal, mint_token};
use ics_proto::events::v1::CommandOptions;
use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
use ics_proto::trusts::v1::{ListOrganisationsRequest, Organisation};
use ics_proto::workshops::v1::workshops_service_client::WorkshopsServiceClient;
use ics_proto::workshops::v1::{ListWorkshopsRequest, Workshop};
use ics_testing::{TestDatabase, free_port, unique_token};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

pub const ISSUER: &str = "ics";
pub const AUDIENCE: &str = "ics-platform";

/// Where the workspace's binaries were built.
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("ICS_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> → target/<profile>
            exe.parent()
                .and_then(|deps| deps.parent())
                .expect("target dir")
                .to_path_buf()
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A running `icsd` process.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// How the harness reaches it.
    tls: ics_client::ClientTls,
    /// What the process runs (`all`, `trusts`…), and where, for a restart on the same ports.
    service: String,
    listen: Listen,
    /// Environment of this server's own, kept for a restart.
    environment: Vec<(String, String)>,
    /// The service's URL (`trusts` for `icsd all`).
    pub url: String,
    /// The other services' URLs when the server runs every service.
    pub workshops_url: String,
    pub metrics_url: String,
    pub reporting_url: String,
    /// The board dashboard, where the server runs the reporting service.
    pub dashboard_url: String,
}

/// Where each service of a server listens.
#[derive(Debug, Clone)]
struct Listen {
    trusts: String,
    workshops: String,
    metrics: String,
    reporting: String,
    http: String,
}

impl Server {
    /// Sends SIGTERM and waits for a clean exit; returns whether it exited successfully.
    /// Async so that the test's own gRPC connections keep answering the server's GOAWAY while
    /// it drains.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..600 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Server {
    async fn wait_serving(&self) {
        wait_serving(&self.url, &self.service, &self.tls).await;
        if self.service == "all" {
            wait_serving(&self.workshops_url, "workshops", &self.tls).await;
            wait_serving(&self.metrics_url, "metrics", &self.tls).await;
            wait_serving(&self.reporting_url, "reporting", &self.tls).await;
        }
    }

    /// Kills the process as `kill -9` would: no drain, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process has exited by itself (a fault point, say), waiting up to `within`.
    pub async fn exited(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.child.as_mut().map(|child| child.try_wait()) {
                None | Some(Ok(Some(_))) => {
                    self.child = None;
                    return true;
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one `icsctl` run printed, and how it exited.
#[derive(Debug)]
pub struct IcsctlOutput {
    pub success: bool,
    /// The exit code (none when a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// One isolated deployment: a database, a NATS namespace and a token secret.
#[derive(Debug)]
pub struct Deployment {
    pub database: TestDatabase,
    pub subject_prefix: String,
    pub secret: String,
    /// `ICS_FOLLOW_UP_GRACE_DAYS` for the servers: 0 (tests see overdue follow-ups missed at
    /// once) unless a test back-loads history and wants the production default.
    pub follow_up_grace_days: u32,
    /// The NATS server the deployment's processes use.
    pub nats_url: String,
    /// Further environment for the servers (fault points, drain delays…).
    pub environment: Vec<(String, String)>,
    /// Where the servers' standard output (their log) goes, for tests that read it.
    pub server_log: Option<PathBuf>,
    /// How the harness itself reaches servers that serve TLS (`ICS_TLS_CERT` in the
    /// environment): their URLs are then `https://`.
    pub client_tls: ics_client::ClientTls,
}

impl Deployment {
    pub async fn new() -> Self {
        Self::on(TestDatabase::create().await, ics_testing::nats_url())
    }

    /// A deployment on a given database and NATS server (private ones, for fault tests).
    pub fn on(database: TestDatabase, nats_url: String) -> Self {
        Deployment {
            database,
            subject_prefix: unique_token(),
            secret: format!("secret-{}-{}", unique_token(), unique_token()),
            follow_up_grace_days: 0,
            nats_url,
            environment: Vec::new(),
            client_tls: ics_client::ClientTls::default(),
            server_log: None,
        }
    }

    fn serves_tls(&self) -> bool {
        self.environment
            .iter()
            .any(|(name, _)| name == "ICS_TLS_CERT")
    }

    /// A channel to `url` as this deployment's servers are reached (TLS or not).
    pub async fn channel(&self, url: &str) -> Channel {
        ics_client::endpoint(url, &self.client_tls)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Starts `icsd <service>` and waits until its health check says SERVING.
    pub async fn start(&self, service: &str) -> Server {
        self.start_with(service, &[]).await
    }

    /// As [`start`](Self::start), with environment of this server's own (its credentials,
    /// when each service has its own).
    pub async fn start_with(&self, service: &str, environment: &[(&str, String)]) -> Server {
        let listen = Listen {
            trusts: format!("127.0.0.1:{}", free_port()),
            workshops: format!("127.0.0.1:{}", free_port()),
            metrics: format!("127.0.0.1:{}", free_port()),
            reporting: format!("127.0.0.1:{}", free_port()),
            http: format!("127.0.0.1:{}", free_port()),
        };
        let own = match service {
            "reporting" => &listen.reporting,
            "workshops" => &listen.workshops,
            "metrics" => &listen.metrics,
            _ => &listen.trusts,
        };
        let scheme = if self.serves_tls() { "https" } else { "http" };
        let server = Server {
            child: Some(self.spawn(&["icsd", service], &listen, environment)),
            url: format!("{scheme}://{own}"),
            workshops_url: format!("{scheme}://{}", listen.workshops),
            metrics_url: format!("{scheme}://{}", listen.metrics),
            reporting_url: format!("{scheme}://{}", listen.reporting),
            dashboard_url: format!("{scheme}://{}", listen.http),
            service: service.to_string(),
            listen,
            environment: environment
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect(),
            tls: self.client_tls.clone(),
        };
        server.wait_serving().await;
        server
    }

    /// Starts a server again on the ports it had (after a kill, a crash or a stop), and waits
    /// until it serves.
    pub async fn restart(&self, server: &mut Server) {
        server.kill();
        let environment: Vec<(&str, String)> = server
            .environment
            .iter()
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect();
        server.child = Some(self.spawn(&["icsd", &server.service], &server.listen, &environment));
        server.wait_serving().await;
    }

    fn spawn(
        &self,
        command_line: &[&str],
        listen: &Listen,
        environment: &[(&str, String)],
    ) -> Child {
        let mut command = Command::new(binary(command_line[0]));
        command
            .args(&command_line[1..])
            .env("ICS_DATABASE_URL", &self.database.url)
            .env("ICS_NATS_URL", &self.nats_url)
            .env("ICS_SUBJECT_PREFIX", &self.subject_prefix)
            .env(
                "ICS_LOG",
                std::env::var("ICS_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("ICS_TRUSTS_LISTEN", &listen.trusts)
            .env("ICS_WORKSHOPS_LISTEN", &listen.workshops)
            .env("ICS_METRICS_LISTEN", &listen.metrics)
            .env("ICS_REPORTING_LISTEN", &listen.reporting)
            .env("ICS_HTTP_LISTEN", &listen.http)
            // Tests see follow-ups come due without waiting a minute.
            .env("ICS_FOLLOW_UP_SCAN_SECS", "1")
            .env(
                "ICS_FOLLOW_UP_GRACE_DAYS",
                self.follow_up_grace_days.to_string(),
            )
            // The test's own settings last, so that they override the harness's.
            .envs(self.environment.iter().map(|(name, value)| (name, value)))
            .envs(environment.iter().map(|(name, value)| (name, value)))
            // Server logs only when asked for: they would interleave with every test's output.
            .stdout(match &self.server_log {
                Some(file) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(file)
                        .expect("open the server log file"),
                ),
                None if std::env::var_os("ICS_TEST_LOG").is_some() => Stdio::inherit(),
                None => Stdio::null(),
            })
            .stderr(Stdio::inherit());
        // The identity provider's keys, or the secret in a file, replace the secret in the
        // environment when a test gives them.
        if !self
            .environment
            .iter()
            .any(|(name, _)| name == "ICS_TOKEN_JWKS" || name == "ICS_TOKEN_SECRET_FILE")
        {
            command.env("ICS_TOKEN_SECRET", &self.secret);
        }
        command.spawn().expect("start icsd")
    }

    /// Runs `icsctl` against a server started with `start("all")`; returns its exit status and
    /// standard output.
    pub async fn icsctl(&self, server: &Server, args: &[&str]) -> (bool, String) {
        let output = self.icsctl_output(server, args).await;
        if !output.success {
            eprintln!("{}", output.stderr);
        }
        (output.success, output.stdout)
    }

    /// As [`icsctl`](Self::icsctl), keeping standard error apart (where a refusal is reported)
    /// rather than echoing it.
    pub async fn icsctl_output(&self, server: &Server, args: &[&str]) -> IcsctlOutput {
        let mut command = Command::new(binary("icsctl"));
        command
            .args(args)
            .env("ICS_TRUSTS_URL", &server.url)
            .env("ICS_WORKSHOPS_URL", &server.workshops_url)
            .env("ICS_METRICS_URL", &server.metrics_url)
            .env("ICS_REPORTING_URL", &server.reporting_url)
            .env("ICS_TOKEN_SECRET", &self.secret);
        let tls = [
            ("ICS_TLS_CA", &self.client_tls.ca),
            ("ICS_TLS_CLIENT_CERT", &self.client_tls.cert),
            ("ICS_TLS_CLIENT_KEY", &self.client_tls.key),
        ];
        for (name, file) in tls {
            if let Some(file) = file {
                command.env(name, file);
            }
        }
        // Off the test's runtime thread, which must keep serving its own connections.
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("icsctl task")
            .expect("run icsctl");
        IcsctlOutput {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn token(&self, principal: &Principal) -> String {
        mint_token(
            &self.secret,
            ISSUER,
            AUDIENCE,
            principal,
            Duration::from_secs(3600),
        )
        .expect("the deployment's secret signs")
    }

    pub async fn finish(self) {
        if let Ok(nats) = async_nats::connect(&self.nats_url).await {
            ics_testing::delete_streams(&nats, &self.subject_prefix).await;
        }
        self.database.drop_database().await;
    }
}

async fn wait_serving(url: &str, service: &str, tls: &ics_client::ClientTls) {
    let service_name = match service {
        "trusts" => "ics.trusts.v1.TrustsService",
        "reporting" => "ics.reporting.v1.ReportingService",
        "workshops" => "ics.workshops.v1.WorkshopsService",
        "metrics" => "ics.metrics.v1.MetricsService",
        "all" => "ics.trusts.v1.TrustsService",
        _ => "",
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(channel) = ics_client::endpoint(url, tls).unwrap().connect().await {
            let mut health = HealthClient::new(channel);
            if let Ok(response) = health
                .check(HealthCheckRequest {
                    service: service_name.to_string(),
                })
                .await
                && response.into_inner().status == ServingStatus::Serving as i32
            {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "icsd {service} did not become SERVING at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A request carrying a bearer token.
pub fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

/// CQC ratings with `rating` in every domain and overall.
pub fn uniform_ratings(
    rating: ics_proto::events::v1::CqcRating,
) -> Option<ics_proto::events::v1::CqcRatings> {
    let rating = rating as i32;
    Some(ics_proto::events::v1::CqcRatings {
        overall: rating,
        safe: rating,
        effective: rating,
        caring: rating,
        responsive: rating,
        well_led: rating,
    })
}

/// Command options with a fresh request id.
pub fn options() -> Option<CommandOptions> {
    Some(CommandOptions {
        request_id: uuid::Uuid::now_v7().to_string(),
        expected_version: None,
    })
}

/// Every organisation ListOrganisations shows the caller of `token`, every page read in turn.
pub async fn list_organisations(
    channel: &Channel,
    token: &str,
    request: ListOrganisationsRequest,
) -> Vec<Organisation> {
    let mut trusts = TrustsServiceClient::new(channel.clone());
    let mut organisations = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = trusts
            .list_organisations(authorized(
                token,
                ListOrganisationsRequest {
                    page_token,
                    ..request.clone()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        organisations.extend(page.organisations);
        if page.next_page_token.is_empty() {
            return organisations;
        }
        page_token = page.next_page_token;
    }
}

/// Waits until ListOrganisations shows the operator of `token` the organisation `ods_code` at
/// `version` or later. The list is a read model that follows the trusts stream in order
/// (within milliseconds), so it then holds every event the stream carried before that one too.
pub async fn wait_until_organisation_listed(
    channel: &Channel,
    token: &str,
    ods_code: &str,
    version: u64,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let listed = list_organisations(channel, token, ListOrganisationsRequest::default()).await;
        if listed.iter().any(|organisation| {
            organisation.ods_code == ods_code && organisation.version >= version
        }) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "organisation {ods_code} at version {version} never reached ListOrganisations"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every workshop of `ods_code` ListWorkshops shows the caller of `token`, every page read.
pub async fn list_workshops(channel: &Channel, token: &str, ods_code: &str) -> Vec<Workshop> {
    let mut workshops = WorkshopsServiceClient::new(channel.clone());
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = workshops
            .list_workshops(authorized(
                token,
                ListWorkshopsRequest {
                    ods_code: ods_code.to_owned(),
                    page_size: 0,
                    page_token,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.workshops);
        if page.next_page_token.is_empty() {
            return listed;
        }
        page_token = page.next_page_token;
    }
}

/// Waits until ListWorkshops shows the workshop at `version` or later (see
/// [`wait_until_organisation_listed`]).
pub async fn wait_until_workshop_listed(
    channel: &Channel,
    token: &str,
    ods_code: &str,
    workshop_id: &str,
    version: u64,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let listed = list_workshops(channel, token, ods_code).await;
        if listed
            .iter()
            .any(|workshop| workshop.workshop_id == workshop_id && workshop.version >= version)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "workshop {workshop_id} at version {version} never reached ListWorkshops"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until, behind each of `channels`, the relay has published the whole log and every
/// projection has applied what it was sent (the admin service's Verify, as an operator), for
/// up to 30 s: a command checked against another service's read model sees what was written
/// before it only once that model has caught up.
pub async fn wait_until_caught_up<'a>(
    channels: impl IntoIterator<Item = &'a Channel>,
    operator_token: &str,
) {
    use ics_proto::admin::v1::VerifyRequest;
    use ics_proto::admin::v1::admin_service_client::AdminServiceClient;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for channel in channels {
        let mut admin = AdminServiceClient::new(channel.clone());
        loop {
            let verified = admin
                .verify(authorized(operator_token, VerifyRequest {}))
                .await
                .expect("Verify answers an operator")
                .into_inner();
            if verified.caught_up() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not caught up after 30 s: {verified:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The fields named by an INVALID_ARGUMENT status's `google.rpc.BadRequest`.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad_request| {
            bad_request
                .field_violations
                .into_iter()
                .map(|violation| violation.field)
                .collect()
        })
        .unwrap_or_default()
}

/// A certificate authority for the test, and the certificates it signs, written as PEM files.
pub struct Authority {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The authority's own certificate, PEM: what clients and servers are told to trust.
    pub pem: String,
}

impl Authority {
    pub fn new(name: &str) -> Authority {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let certificate = params.self_signed(&key).unwrap();
        Authority {
            pem: certificate.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for the loopback server (or a client), and its key, both PEM.
    pub fn sign(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let certificate = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &std::path::Path, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Bytes sent and received as they are, to put malformed or fuzzed bodies on the wire.
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

pub struct RawCoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCoder;
    type Decoder = RawCoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawCoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCoder
    }
}

impl tonic::codec::Encoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        destination: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        use bytes::BufMut;
        destination.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        source: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, Self::Error> {
        use bytes::Buf;
        Ok(Some(source.copy_to_bytes(source.remaining()).to_vec()))
    }
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub async fn http_get(base: &str, path: &str) -> (u16, String) {
    http_get_as(base, path, None).await
}

/// As [`http_get`], with a bearer token.
pub async fn http_get_as(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let response = http_request(base, path, token).await;
    (response.status, response.body)
}

/// An HTTP/1.1 response as read off the wire.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// The status line and headers, as sent.
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (header, value) = line.split_once(':')?;
            header
                .trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim())
        })
    }
}

/// A plain HTTP/1.1 GET with an optional bearer token, read whole.
pub async fn http_request(base: &str, path: &str, token: Option<&str>) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(head, body)| (head.to_owned(), body.to_owned()))
        .unwrap_or_default();
    HttpResponse { status, head, body }
}

/// The value of the sample `name{labels}` on a Prometheus page, where every label given is
/// present on the sample's line (in any order).
pub fn prometheus_sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.split(['{', ' '])
                .next()
                .is_some_and(|metric| metric == name)
        })
        .find(|line| {
            labels
                .iter()
                .all(|(label, value)| line.contains(&format!("{label}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
