//! Each service reaches NATS and PostgreSQL as itself, over TLS, and its credentials open only
//! what the service needs: security scenario S6 (NATS users with the permissions of
//! `deploy/nats/permissions.conf`) and the database roles of `deploy/postgres/roles.sql`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, Event};
use ics_auth::Principal;
use ics_e2e::{Authority, Deployment, Server, authorized, write};
use ics_proto::admin::v1::VerifyRequest;
use ics_proto::admin::v1::admin_service_client::AdminServiceClient;
use ics_proto::events::v1::OrganisationKind;
use ics_proto::trusts::v1::RegisterOrganisationRequest;
use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
use ics_service_kit::config::NatsConfig;
use ics_testing::{PrivateNats, PrivatePostgres, TestDatabase, unique_token};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use tokio::sync::mpsc;

const SERVICES: [&str; 4] = ["trusts", "workshops", "metrics", "reporting"];

fn repository_file(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display()))
}

/// The four services' backends: a NATS server with one user per service and the repository's
/// permissions, and a PostgreSQL cluster with the repository's roles; both only over TLS.
struct Backends {
    dir: PathBuf,
    ca: PathBuf,
    nats: PrivateNats,
    postgres: PrivatePostgres,
    database: String,
    /// Each service's NATS password, which is also its database role's password.
    passwords: Vec<(&'static str, String)>,
}

impl Backends {
    async fn start() -> (Backends, TestDatabase) {
        let dir = std::env::temp_dir().join(format!("ics-least-{}", unique_token()));
        std::fs::create_dir_all(&dir).unwrap();
        let authority = Authority::new("backends");
        let (certificate, key) = authority.sign(&["localhost", "127.0.0.1"]);
        let ca = write(&dir, "ca.pem", &authority.pem);
        let certificate_file = write(&dir, "server.pem", &certificate);
        let key_file = write(&dir, "server-key.pem", &key);
        let passwords: Vec<(&'static str, String)> = SERVICES
            .iter()
            .map(|service| (*service, unique_token()))
            .collect();

        let users = passwords
            .iter()
            .map(|(service, password)| {
                format!(
                    "    {{ user: {service}, password: \"{password}\", permissions: ${}_PERMISSIONS }}",
                    service.to_uppercase()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        // As deploy/generate-secrets writes it: NATS variables are visible only in the file that
        // includes theirs, so the users file includes the permissions it refers to.
        let users_conf =
            format!("include permissions.conf\nauthorization {{\n  users = [\n{users}\n  ]\n}}\n");
        let server_conf = format!(
            "include users.conf\n\
             tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            certificate_file.display(),
            key_file.display()
        );
        let nats = PrivateNats::start_with_config(
            &server_conf,
            &[
                (
                    "permissions.conf",
                    &repository_file("deploy/nats/permissions.conf"),
                ),
                ("users.conf", &users_conf),
            ],
        )
        .await;

        let mut postgres = PrivatePostgres::start();
        let database = TestDatabase::create_on(&postgres.server_url()).await;
        let mut admin = PgConnection::connect(&database.url).await.unwrap();
        // As a deployment from before the roles left it: a schema filled by the superuser.
        sqlx::raw_sql("CREATE SCHEMA trusts; CREATE TABLE trusts.earlier (id bigserial)")
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::raw_sql(&repository_file("deploy/postgres/roles.sql"))
            .execute(&mut admin)
            .await
            .expect("roles.sql runs");
        // Idempotent: a second run changes nothing and fails on nothing.
        sqlx::raw_sql(&repository_file("deploy/postgres/roles.sql"))
            .execute(&mut admin)
            .await
            .expect("roles.sql runs again");
        for (service, password) in &passwords {
            sqlx::raw_sql(&format!("ALTER ROLE ics_{service} PASSWORD '{password}'"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
        admin.close().await.unwrap();
        postgres.require_tls_and_passwords(&certificate, &key);
        let name = database.name.clone();
        (
            Backends {
                dir,
                ca,
                nats,
                postgres,
                database: name,
                passwords,
            },
            database,
        )
    }

    fn password(&self, service: &str) -> &str {
        &self
            .passwords
            .iter()
            .find(|(name, _)| *name == service)
            .unwrap()
            .1
    }

    fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// What `icsd <service>` is given: its own NATS user and database role, each from a file,
    /// and the CA that both servers' certificates chain to.
    fn environment(&self, service: &str) -> Vec<(&'static str, String)> {
        let creds = write(
            &self.dir,
            &format!("nats-{service}.creds"),
            &format!("{service}:{}\n", self.password(service)),
        );
        let password = write(
            &self.dir,
            &format!("pg-{service}.password"),
            &format!("{}\n", self.password(service)),
        );
        vec![
            ("ICS_NATS_CREDS", creds.display().to_string()),
            ("ICS_NATS_CA", self.ca.display().to_string()),
            (
                "ICS_DATABASE_URL",
                format!(
                    "postgres://ics_{service}@127.0.0.1:{}/{}",
                    self.postgres.port, self.database
                ),
            ),
            ("ICS_DATABASE_PASSWORD_FILE", password.display().to_string()),
            ("ICS_DATABASE_CA", self.ca.display().to_string()),
        ]
    }

    /// A connection as `service`'s database role, over TLS.
    async fn database_as(&self, service: &str) -> PgConnection {
        PgConnection::connect_with(
            &PgConnectOptions::new()
                .host("127.0.0.1")
                .port(self.postgres.port)
                .database(&self.database)
                .username(&format!("ics_{service}"))
                .password(self.password(service))
                .ssl_mode(PgSslMode::VerifyFull)
                .ssl_root_cert(&self.ca),
        )
        .await
        .unwrap_or_else(|error| panic!("ics_{service} connects over tls: {error}"))
    }

    /// A NATS client as `service`'s user, and the server errors it is sent (where permission
    /// violations arrive).
    async fn nats_as(
        &self,
        service: &str,
    ) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
        let (errors, received) = mpsc::unbounded_channel();
        let client = ConnectOptions::with_user_and_password(
            service.to_owned(),
            self.password(service).to_owned(),
        )
        .add_root_certificates(self.ca.clone())
        .require_tls(true)
        .custom_inbox_prefix(format!("_INBOX_{service}"))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let Event::ServerError(error) = event {
                    let _ = errors.send(error.to_string().to_lowercase());
                }
            }
        })
        .connect(self.nats_url())
        .await
        .unwrap_or_else(|error| panic!("{service} connects to nats: {error}"));
        (client, received)
    }
}

/// Waits for the server's permissions-violation error naming `subject`.
async fn refused(errors: &mut mpsc::UnboundedReceiver<String>, subject: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(error)) = tokio::time::timeout_at(deadline.into(), errors.recv()).await {
        if error.contains("permissions violation") && error.contains(&subject.to_lowercase()) {
            return true;
        }
    }
    false
}

/// Every service's `Verify` finds nothing missing, and each projection of the trusts stream
/// has applied at least `organisations` events: the relay published under its own user, and
/// every consumer read under its own.
async fn wait_until_consistent(deployment: &Deployment, servers: &[Server], organisations: u64) {
    let operator = deployment.token(&Principal::Operator);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut problems = Vec::new();
        for server in servers {
            let mut admin = AdminServiceClient::new(deployment.channel(&server.url).await);
            match admin.verify(authorized(&operator, VerifyRequest {})).await {
                Ok(response) => {
                    let response = response.into_inner();
                    if let Some(log) = &response.log {
                        problems
                            .extend(log.gaps.iter().map(|gap| format!("{}: {gap}", log.service)));
                    }
                    for check in &response.projections {
                        problems.extend(
                            check
                                .gaps
                                .iter()
                                .map(|gap| format!("{}: {gap}", check.projection)),
                        );
                        if check.source_service == "trusts" && check.applied_events < organisations
                        {
                            problems.push(format!(
                                "{} applied {} of the trusts log's events",
                                check.projection, check.applied_events
                            ));
                        }
                    }
                }
                Err(status) => problems.push(format!("verify: {status:?}")),
            }
        }
        if problems.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the services did not converge: {problems:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Security scenario S6 and the database roles: the four services run with credentials of
/// their own, over TLS to both backends, and the platform works; then each credential is tried
/// where its service has no business, and refused.
#[tokio::test]
async fn each_service_reaches_nats_and_postgres_as_itself_with_least_privilege_over_tls() {
    let (backends, database) = Backends::start().await;
    let mut deployment = Deployment::on(database, backends.nats_url());
    let secret_file = write(
        &backends.dir,
        "token-secret",
        &format!("{}\n", deployment.secret),
    );
    deployment.environment = vec![
        // The permissions name the production prefix.
        ("ICS_SUBJECT_PREFIX".into(), "ics".into()),
        (
            "ICS_TOKEN_SECRET_FILE".into(),
            secret_file.display().to_string(),
        ),
    ];
    let mut servers = Vec::new();
    for service in SERVICES {
        servers.push(
            deployment
                .start_with(service, &backends.environment(service))
                .await,
        );
    }

    let operator = deployment.token(&Principal::Operator);
    let mut trusts = TrustsServiceClient::new(deployment.channel(&servers[0].url).await);
    for (ods_code, kind) in [
        ("QWO", OrganisationKind::Icb),
        ("RTP", OrganisationKind::Trust),
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
            .expect("registered through a trusts service that runs as itself");
    }
    wait_until_consistent(&deployment, &servers, 2).await;

    // NATS: each user is refused outside its own subjects, inbox and streams.
    let (trusts_nats, mut trusts_errors) = backends.nats_as("trusts").await;
    trusts_nats
        .publish("ics.workshops._.WorkshopScheduled", "forged".into())
        .await
        .unwrap();
    trusts_nats.flush().await.unwrap();
    assert!(
        refused(&mut trusts_errors, "ics.workshops._.WorkshopScheduled").await,
        "trusts published on the workshops service's subjects"
    );
    let _subscription = trusts_nats.subscribe("ics.metrics.>").await.unwrap();
    trusts_nats.flush().await.unwrap();
    assert!(
        refused(&mut trusts_errors, "ics.metrics.>").await,
        "trusts subscribed to the metrics service's events"
    );
    let trusts_jetstream = async_nats::jetstream::new(trusts_nats.clone());
    assert!(
        trusts_jetstream
            .delete_stream("ICS_WORKSHOPS")
            .await
            .is_err(),
        "trusts deleted another service's stream"
    );
    assert!(refused(&mut trusts_errors, "$JS.API.STREAM.DELETE.ICS_WORKSHOPS").await);
    // Not even its own stream may be deleted or purged: the relay only creates and updates it.
    assert!(
        trusts_jetstream.delete_stream("ICS_TRUSTS").await.is_err(),
        "trusts deleted its own stream"
    );
    assert!(refused(&mut trusts_errors, "$JS.API.STREAM.DELETE.ICS_TRUSTS").await);

    let (workshops_nats, mut workshops_errors) = backends.nats_as("workshops").await;
    let _subscription = workshops_nats.subscribe("_INBOX_trusts.>").await.unwrap();
    workshops_nats.flush().await.unwrap();
    assert!(
        refused(&mut workshops_errors, "_INBOX_trusts.>").await,
        "workshops listened to the trusts service's replies"
    );

    let (reporting_nats, mut reporting_errors) = backends.nats_as("reporting").await;
    let reporting_jetstream = async_nats::jetstream::new(reporting_nats.clone());
    let mut trusts_stream = reporting_jetstream
        .get_stream("ICS_TRUSTS")
        .await
        .expect("reporting may look up a stream it projects");
    assert!(trusts_stream.info().await.unwrap().state.messages >= 2);
    // Another service's durable consumer is not reporting's to read or replace.
    let stolen = trusts_stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("ics_references".into()),
            ..Default::default()
        })
        .await;
    assert!(
        stolen.is_err(),
        "reporting took over the workshops consumer"
    );
    assert!(
        refused(
            &mut reporting_errors,
            "$JS.API.CONSUMER.CREATE.ICS_TRUSTS.ics_references"
        )
        .await
    );
    let update = reporting_jetstream
        .update_stream(async_nats::jetstream::stream::Config {
            name: "ICS_TRUSTS".into(),
            subjects: vec!["ics.trusts.>".into()],
            max_messages: 1,
            ..Default::default()
        })
        .await;
    assert!(update.is_err(), "reporting reconfigured the trusts stream");
    assert!(refused(&mut reporting_errors, "$JS.API.STREAM.UPDATE.ICS_TRUSTS").await);
    reporting_nats
        .publish("ics.trusts.RTP.OrganisationRegistered", "forged".into())
        .await
        .unwrap();
    reporting_nats.flush().await.unwrap();
    assert!(
        refused(
            &mut reporting_errors,
            "ics.trusts.RTP.OrganisationRegistered"
        )
        .await,
        "reporting published a trusts event"
    );
    assert!(
        trusts_stream.info().await.unwrap().state.messages >= 2,
        "the trusts stream lost its events"
    );

    // A wrong password, or no TLS, gets no connection at all.
    let wrong = write(&backends.dir, "wrong.creds", "trusts:not-the-password\n");
    let refused_login = ics_service_kit::connect_nats(
        &NatsConfig {
            nats_url: backends.nats_url(),
            nats_creds: Some(wrong),
            nats_ca: Some(backends.ca.clone()),
            nats_cert: None,
            nats_key: None,
        },
        "trusts",
    )
    .await;
    assert!(
        refused_login
            .expect_err("a wrong password is refused")
            .to_string()
            .contains("refused the credentials"),
    );
    let plaintext =
        ConnectOptions::with_user_and_password("trusts".into(), backends.password("trusts").into())
            .connection_timeout(Duration::from_secs(2))
            .connect(backends.nats_url())
            .await;
    assert!(
        plaintext.is_err(),
        "nats accepted a client that cannot verify it"
    );

    // PostgreSQL: each role owns its schema and reads nothing else but the logs it checks.
    let mut superuser = PgConnection::connect(&format!(
        "{}/{}",
        backends.postgres.server_url(),
        backends.database
    ))
    .await
    .unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT schemaname::text, tablename::text FROM pg_tables
         WHERE schemaname = ANY($1) ORDER BY 1, 2",
    )
    .bind(SERVICES.map(str::to_owned).to_vec())
    .fetch_all(&mut superuser)
    .await
    .unwrap();
    assert!(
        tables.len() > 8,
        "the services created their tables: {tables:?}"
    );
    let owners: Vec<(String, String)> = sqlx::query_as(
        "SELECT nspname::text, pg_get_userbyid(nspowner)::text FROM pg_namespace
         WHERE nspname = ANY($1) ORDER BY 1",
    )
    .bind(SERVICES.map(str::to_owned).to_vec())
    .fetch_all(&mut superuser)
    .await
    .unwrap();
    for (schema, owner) in &owners {
        assert_eq!(owner, &format!("ics_{schema}"));
    }
    let foreign: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT schemaname::text, tablename::text, tableowner::text FROM pg_tables
         WHERE schemaname = ANY($1) AND tableowner <> 'ics_' || schemaname",
    )
    .bind(SERVICES.map(str::to_owned).to_vec())
    .fetch_all(&mut superuser)
    .await
    .unwrap();
    assert!(
        foreign.is_empty(),
        "tables not owned by their service: {foreign:?}"
    );

    let mut overreach = Vec::new();
    for service in SERVICES {
        let mut connection = backends.database_as(service).await;
        for (schema, table) in &tables {
            let own = schema == service;
            // The log readers (every service but trusts) may read the other services' logs, and
            // nothing else of theirs; reporting records no log of its own.
            let log = table == "events" && schema != "reporting";
            let readable = own || (log && service != "trusts");
            let read = sqlx::raw_sql(&format!("SELECT 1 FROM {schema}.{table} LIMIT 1"))
                .execute(&mut connection)
                .await;
            if read.is_ok() != readable {
                overreach.push(format!("ics_{service} read {schema}.{table}: {read:?}"));
            }
            if !own {
                let write = sqlx::raw_sql(&format!("DELETE FROM {schema}.{table}"))
                    .execute(&mut connection)
                    .await;
                if write.is_ok() {
                    overreach.push(format!("ics_{service} deleted from {schema}.{table}"));
                }
            }
        }
        for statement in [
            "CREATE SCHEMA intruder".to_owned(),
            "CREATE TABLE public.intruder (id int)".to_owned(),
            "CREATE TEMPORARY TABLE intruder (id int)".to_owned(),
            format!("CREATE DATABASE intruder_{service}"),
        ] {
            if sqlx::raw_sql(&statement)
                .execute(&mut connection)
                .await
                .is_ok()
            {
                overreach.push(format!("ics_{service}: {statement}"));
            }
        }
        connection.close().await.unwrap();
    }
    assert!(overreach.is_empty(), "{overreach:#?}");

    // Without TLS the roles are not let in.
    let plaintext = PgConnection::connect_with(
        &PgConnectOptions::from_str(&format!(
            "postgres://ics_trusts:{}@127.0.0.1:{}/{}?sslmode=disable",
            backends.password("trusts"),
            backends.postgres.port,
            backends.database
        ))
        .unwrap(),
    )
    .await;
    assert!(plaintext.is_err(), "postgres let ics_trusts in without tls");

    for mut server in servers {
        server.kill();
    }
    let _ = std::fs::remove_dir_all(&backends.dir);
}

/// Kubernetes carries the NATS permissions in a ConfigMap: the same text as
/// `deploy/nats/permissions.conf`, which the test above tries.
#[test]
fn the_kubernetes_nats_permissions_are_the_tested_ones() {
    let manifest = repository_file("deploy/kubernetes/20-nats.yaml");
    let mut lines = manifest
        .lines()
        .skip_while(|line| line.trim_end() != "  permissions.conf: |")
        .skip(1);
    let mut embedded = String::new();
    for line in lines.by_ref() {
        if !line.is_empty() && !line.starts_with("    ") {
            break;
        }
        embedded.push_str(line.strip_prefix("    ").unwrap_or(line));
        embedded.push('\n');
    }
    assert!(
        !embedded.trim().is_empty(),
        "no permissions.conf in 20-nats.yaml"
    );
    assert_eq!(
        embedded.trim(),
        repository_file("deploy/nats/permissions.conf").trim(),
        "deploy/kubernetes/20-nats.yaml's permissions.conf differs from deploy/nats/permissions.conf"
    );
}
