//! The fault suite: the real binaries on a private PostgreSQL cluster and a private nats-server
//! (spare loopback ports), writers under load, a fault injected, and a checker that compares
//! every acknowledged command with the event log, the JetStream stream and the projections.
//! Each scenario is bounded in count and time and prints one row:
//! `| scenario | sent | acked | lost | duplicated in the log | duplicate stream messages |
//! recovery ms |`, recovery being the time from the end of the fault until the stream and the
//! views hold the whole log.
//!
//! The checker holds, for every scenario:
//! - every acknowledged request id is in the log exactly once (lost = 0);
//! - the stream holds every event of the log, by `Nats-Msg-Id` (message duplicates are counted);
//! - every projection of the trusts stream (the reporting overview, the workshops' and metrics
//!   services' read models) has applied every stream of the log to its last version, nothing is
//!   parked, and the overview equals a rebuild of itself from the stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use ics_client::RetryingChannel;
use ics_e2e::{Deployment, Server, authorized};
use ics_proto::admin::v1::RebuildProjectionRequest;
use ics_proto::admin::v1::admin_service_client::AdminServiceClient;
use ics_proto::events::v1::{CommandOptions, EventEnvelope, OrganisationKind};
use ics_proto::trusts::v1::trusts_service_client::TrustsServiceClient;
use ics_proto::trusts::v1::{RegisterOrganisationRequest, RenameOrganisationRequest};
use ics_service_kit::Principal;
use ics_testing::{PrivateNats, PrivatePostgres, TestDatabase};
use prost::Message;
use sqlx::PgPool;
use tokio::sync::Mutex;
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const ORGANISATIONS: usize = 8;
const WRITERS: usize = 4;
/// Every projection fed by the trusts stream, with the schema it lives in: the reporting
/// overview, the workshops' and metrics services' read models of organisations, and the
/// trusts service's own organisation list.
const TRUSTS_PROJECTIONS: [(&str, &str); 4] = [
    ("reporting", "overview"),
    ("workshops", "references"),
    ("metrics", "metrics_references"),
    ("trusts", "organisation_list"),
];

/// The checker's connections name themselves, so they are not counted as the services'.
const CHECKER: &str = "ics-fault-checker";

/// A deployment on private servers.
struct Rig {
    postgres: PrivatePostgres,
    nats: PrivateNats,
    deployment: Deployment,
}

impl Rig {
    async fn new(next_transaction_id: Option<u64>) -> Rig {
        let postgres = PrivatePostgres::start_with_next_transaction_id(next_transaction_id);
        let nats = PrivateNats::start().await;
        let database = TestDatabase::create_on(&postgres.server_url()).await;
        let deployment = Deployment::on(database, nats.url());
        Rig {
            postgres,
            nats,
            deployment,
        }
    }

    fn operator(&self) -> String {
        self.deployment.token(&Principal::Operator)
    }

    async fn pool(&self) -> PgPool {
        checker_pool(&self.deployment).await
    }

    /// `icsd all`, serving, with the organisations the writers rename registered.
    async fn start_all(&self) -> Server {
        let server = self.deployment.start("all").await;
        register_organisations(&server.url, &self.operator()).await;
        server
    }
}

async fn checker_pool(deployment: &Deployment) -> PgPool {
    let options: sqlx::postgres::PgConnectOptions = deployment.database.url.parse().unwrap();
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.application_name(CHECKER))
        .await
        .unwrap()
}

fn trusts_client(url: &str) -> TrustsServiceClient<RetryingChannel> {
    TrustsServiceClient::new(RetryingChannel::new(
        Endpoint::from_shared(url.to_string())
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy(),
    ))
}

fn ods(index: usize) -> String {
    format!("F{index:02}")
}

async fn register_organisations(url: &str, token: &str) {
    let mut client = trusts_client(url);
    for index in 0..ORGANISATIONS {
        client
            .register_organisation(authorized(
                token,
                RegisterOrganisationRequest {
                    options: Some(CommandOptions {
                        request_id: format!("register-{index}"),
                        expected_version: None,
                    }),
                    ods_code: ods(index),
                    name: format!("Trust {index}"),
                    kind: OrganisationKind::Trust as i32,
                },
            ))
            .await
            .unwrap();
    }
}

/// Writers renaming organisations as fast as they are answered, until stopped or `limit`
/// commands were sent. Calls the client could not get through (after its retries, with the same
/// request id) are counted as failed, never as acknowledged.
struct Load {
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    /// Commands sent at most.
    limit: u64,
}

impl Load {
    fn start(url: &str, token: &str, limit: u64) -> Load {
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers = (0..WRITERS)
            .map(|writer| {
                let (sent, failed, acked, stop) =
                    (sent.clone(), failed.clone(), acked.clone(), stop.clone());
                let mut client = trusts_client(url);
                let token = token.to_string();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut command = 0usize;
                    while !stop.load(Ordering::SeqCst)
                        && sent.load(Ordering::SeqCst) < limit
                        && started.elapsed() < Duration::from_secs(120)
                    {
                        command += 1;
                        sent.fetch_add(1, Ordering::SeqCst);
                        let request_id = format!("w{writer}-{command}-{}", uuid::Uuid::now_v7());
                        let renamed = client
                            .rename_organisation(authorized(
                                &token,
                                RenameOrganisationRequest {
                                    options: Some(CommandOptions {
                                        request_id: request_id.clone(),
                                        expected_version: None,
                                    }),
                                    ods_code: ods((writer + command * WRITERS) % ORGANISATIONS),
                                    name: format!("Trust {request_id}"),
                                },
                            ))
                            .await;
                        match renamed {
                            Ok(_) => acked.lock().await.push(request_id),
                            Err(_) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Load {
            sent,
            failed,
            acked,
            stop,
            writers,
            limit,
        }
    }

    async fn until_sent(&self, count: u64) {
        // Past its limit the load stops sending: waiting for more would look like a stall.
        let count = count.min(self.limit);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.sent.load(Ordering::SeqCst) < count {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the writers and waits for them: what was sent, failed and acknowledged.
    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.finish_after_limit().await
    }
}

/// What the checker found once everything converged.
#[derive(Debug)]
struct Verdict {
    lost: usize,
    log_duplicates: usize,
    stream_duplicates: usize,
    recovery: Duration,
}

/// How many messages the stream holds, asked with a short timeout: `None` while it cannot say
/// (a cluster electing the stream's leader), so that the checker asks again soon.
async fn stream_messages(nats_url: &str, stream_name: &str) -> Option<u64> {
    let nats = async_nats::connect(nats_url).await.ok()?;
    let mut jetstream = jetstream::new(nats);
    jetstream.set_timeout(Duration::from_millis(500));
    let mut stream = jetstream.get_stream(stream_name).await.ok()?;
    Some(stream.info().await.ok()?.state.messages)
}

/// Every event id in the stream, duplicates kept.
async fn read_stream_event_ids(
    nats_url: &str,
    stream_name: &str,
) -> Result<Vec<String>, async_nats::Error> {
    let nats = async_nats::connect(nats_url).await?;
    let mut ids = Vec::new();
    for payload in ics_testing::stream_payloads(&nats, stream_name).await? {
        ids.push(EventEnvelope::decode(payload.as_slice())?.event_id);
    }
    Ok(ids)
}

/// Waits (bounded) until the stream holds the whole log and the overview has applied it, then
/// checks the acknowledged commands and that the overview equals its own rebuild.
async fn check(rig: &Rig, server: &Server, acked: &[String], fault_ended: Instant) -> Verdict {
    check_deployment(
        &rig.deployment,
        &rig.nats.url(),
        &server.reporting_url,
        acked,
        fault_ended,
    )
    .await
}

async fn check_deployment(
    deployment: &Deployment,
    nats_url: &str,
    reporting_url: &str,
    acked: &[String],
    fault_ended: Instant,
) -> Verdict {
    let pool = checker_pool(deployment).await;
    let stream_name = format!("{}_TRUSTS", deployment.subject_prefix.to_uppercase());
    let deadline = Instant::now() + Duration::from_secs(90);
    // When the cheap signs of convergence first held, while they still do.
    let mut converged = None;
    let (stream_ids, recovery) = loop {
        let log: HashSet<String> = sqlx::query_scalar("SELECT event_id::text FROM trusts.events")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let mut unapplied = 0i64;
        for (schema, projection) in TRUSTS_PROJECTIONS {
            let present: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(format!("{schema}.projection_stream_versions"))
                .fetch_one(&pool)
                .await
                .unwrap();
            if !present {
                continue;
            }
            let behind: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM
                     (SELECT stream_id, max(stream_version) AS version FROM trusts.events
                      GROUP BY stream_id) AS log
                 FULL JOIN
                     (SELECT stream_id, version FROM {schema}.projection_stream_versions
                      WHERE projection = $1 AND source_service = 'trusts') AS applied
                 USING (stream_id)
                 WHERE log.version IS DISTINCT FROM applied.version"
            ))
            .bind(projection)
            .fetch_one(&pool)
            .await
            .unwrap();
            unapplied += behind;
        }
        // Converged when every projection has applied the whole log (which it read from the
        // stream) and the stream holds the log exactly. The stream is read whole only once the
        // cheap signs say so, and the recovery is when they first did, if the whole read then
        // confirms it: read on every poll, during a leader election each read waited out
        // JetStream's request timeout, and the recovery measured the checker's own timeouts
        // (steps of 10 s) rather than the deployment's. A stream may hold an event twice (a
        // republish JetStream's duplicate window no longer caught), so the sign is at least as
        // many messages as the log has events.
        let mut missing = None;
        if unapplied == 0
            && stream_messages(nats_url, &stream_name)
                .await
                .is_some_and(|messages| messages >= log.len() as u64)
        {
            let signs_at = *converged.get_or_insert_with(|| fault_ended.elapsed());
            match read_stream_event_ids(nats_url, &stream_name).await {
                Ok(stream_ids) => {
                    let in_stream: HashSet<String> = stream_ids.iter().cloned().collect();
                    if in_stream == log {
                        break (stream_ids, signs_at);
                    }
                    missing = Some(log.difference(&in_stream).count());
                    converged = None;
                }
                Err(error) => eprintln!("stream {stream_name} not readable yet: {error}"),
            }
        } else {
            converged = None;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: log {} events, {unapplied} streams not applied by a projection, \
             missing from the stream: {}",
            log.len(),
            missing.map_or_else(|| "not read".to_string(), |missing| missing.to_string())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT request_id, count(*) FROM trusts.events WHERE request_id = ANY($1)
         GROUP BY request_id",
    )
    .bind(acked)
    .fetch_all(&pool)
    .await
    .unwrap();
    let counts: HashMap<String, i64> = counts.into_iter().collect();
    let lost = acked
        .iter()
        .filter(|request_id| !counts.contains_key(*request_id))
        .count();
    let log_duplicates = counts.values().filter(|count| **count > 1).count();
    let distinct: HashSet<&String> = stream_ids.iter().collect();
    let stream_duplicates = stream_ids.len() - distinct.len();
    for (schema, _) in TRUSTS_PROJECTIONS {
        let present: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("{schema}.projection_parked"))
            .fetch_one(&pool)
            .await
            .unwrap();
        if present {
            let parked: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.projection_parked"))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert_eq!(parked, 0, "nothing is left parked in {schema}");
        }
    }

    // The live overview equals a rebuild from the stream.
    let overview = |pool: PgPool| async move {
        sqlx::query_as::<_, (String, String)>(
            "SELECT ods_code, name FROM reporting.organisations ORDER BY ods_code",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let live = overview(pool.clone()).await;
    let mut admin = AdminServiceClient::new(
        Endpoint::from_shared(reporting_url.to_string())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    admin
        .rebuild_projection(authorized(
            &deployment.token(&Principal::Operator),
            RebuildProjectionRequest {
                projection: "overview".into(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(overview(pool.clone()).await, live, "rebuild equals live");
    pool.close().await;
    Verdict {
        lost,
        log_duplicates,
        stream_duplicates,
        recovery,
    }
}

/// Prints the scenario's line and, when `ICS_FAULT_REPORT` names a file (scripts/test sets it),
/// appends it there, so the table survives the test harness capturing output.
fn report(scenario: &str, sent: u64, acked: usize, verdict: &Verdict) {
    let line = format!(
        "| {scenario} | {sent} | {acked} | {} | {} | {} | {} |",
        verdict.lost,
        verdict.log_duplicates,
        verdict.stream_duplicates,
        verdict.recovery.as_millis()
    );
    println!("{line}");
    if let Ok(path) = std::env::var("ICS_FAULT_REPORT") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
    assert_eq!(verdict.lost, 0, "{scenario}: acknowledged commands lost");
    assert_eq!(
        verdict.log_duplicates, 0,
        "{scenario}: a request recorded twice"
    );
}

/// R1: kill -9 the writing process mid-load; clients retry with the same request ids.
#[tokio::test]
async fn r1_kill_the_writer_mid_load() {
    let rig = Rig::new(None).await;
    let mut server = rig.start_all().await;
    let load = Load::start(&server.url, &rig.operator(), 600);
    load.until_sent(150).await;
    server.kill();
    rig.deployment.restart(&mut server).await;
    let restarted = Instant::now();
    let (sent, _failed, acked) = load.finish().await;
    let verdict = check(&rig, &server, &acked, restarted).await;
    report("R1 kill -9 writer", sent, acked.len(), &verdict);
}

/// R2: kill the relay between JetStream's ack and its checkpoint (a fault point aborts the
/// process there); after the restart, every event is published and nothing applies twice.
#[tokio::test]
async fn r2_crash_between_the_jetstream_ack_and_the_checkpoint() {
    let mut rig = Rig::new(None).await;
    rig.deployment.environment = vec![("ICS_FAULT_POINT".into(), "relay-after-ack:40".into())];
    let mut server = rig.start_all().await;
    let load = Load::start(&server.url, &rig.operator(), 400);
    assert!(
        server.exited(Duration::from_secs(60)).await,
        "the fault point ended the process"
    );
    rig.deployment.environment.clear();
    rig.deployment.restart(&mut server).await;
    let restarted = Instant::now();
    let (sent, _failed, acked) = load.finish().await;
    let verdict = check(&rig, &server, &acked, restarted).await;
    report("R2 crash after ack", sent, acked.len(), &verdict);
}

/// R3: kill -9 and restart nats-server under load: writes go on (PostgreSQL is the record) and
/// the relay resumes when NATS is back.
#[tokio::test]
async fn r3_kill_nats_under_load() {
    let mut rig = Rig::new(None).await;
    let server = rig.start_all().await;
    let load = Load::start(&server.url, &rig.operator(), 800);
    load.until_sent(100).await;
    rig.nats.kill();
    let during = load.sent.load(Ordering::SeqCst);
    load.until_sent(during + 150).await;
    rig.nats.restart().await;
    let back = Instant::now();
    let (sent, _failed, acked) = load.finish().await;
    let verdict = check(&rig, &server, &acked, back).await;
    report("R3 kill -9 nats", sent, acked.len(), &verdict);
    assert!(
        verdict.recovery < Duration::from_secs(30),
        "converged {:?} after NATS came back",
        verdict.recovery
    );
}

/// R5: PostgreSQL stops immediately during writes and comes back: calls in flight fail
/// (UNAVAILABLE, retried by the client with the same id), never OK without a commit, and the
/// pool recovers without restarting the service.
#[tokio::test]
async fn r5_postgres_immediate_stop_during_writes() {
    let mut rig = Rig::new(None).await;
    let server = rig.start_all().await;
    let load = Load::start(&server.url, &rig.operator(), 600);
    load.until_sent(150).await;
    rig.postgres.stop_immediately();
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.postgres.start_again();
    let back = Instant::now();
    let during = load.sent.load(Ordering::SeqCst);
    load.until_sent(during + 100).await;
    let (sent, _failed, acked) = load.finish().await;
    let verdict = check(&rig, &server, &acked, back).await;
    report("R5 postgres immediate stop", sent, acked.len(), &verdict);
}

/// R6: with NATS down, the unpublished backlog grows past the relay's batch (512) while the
/// cluster's transaction ids cross 100,000; once NATS is back, every event is published.
#[tokio::test]
async fn r6_backlog_across_a_power_of_ten_transaction_id() {
    let mut rig = Rig::new(Some(99_300)).await;
    let server = rig.start_all().await;
    rig.nats.kill();
    let load = Load::start(&server.url, &rig.operator(), 1_200);
    let (sent, _failed, acked) = load.finish_after_limit().await;
    let pool = rig.pool().await;
    let crossed: bool = sqlx::query_scalar(
        "SELECT min(transaction_id::text::bigint) < 100000 AND max(transaction_id::text::bigint) >= 100000
         FROM trusts.events",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(crossed, "the backlog spans 99,999 → 100,000");
    rig.nats.restart().await;
    let back = Instant::now();
    let verdict = check(&rig, &server, &acked, back).await;
    report("R6 backlog across 100,000", sent, acked.len(), &verdict);

    // Tailing lists, and re-publishing from 0 publishes, exactly the log's count.
    let pool = rig.pool().await;
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM trusts.events")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let tail = rig
        .deployment
        .icsctl_output(&server, &["events", "tail", "--service", "trusts"])
        .await;
    assert!(tail.success, "{}", tail.stderr);
    assert_eq!(
        tail.stdout.lines().count() as i64,
        logged,
        "tail lists every event"
    );
    let republished = rig
        .deployment
        .icsctl_output(
            &server,
            &["admin", "republish", "--service", "trusts", "--from", "0"],
        )
        .await;
    assert!(
        republished
            .stdout
            .contains(&format!("re-published {logged} events")),
        "{}{}",
        republished.stdout,
        republished.stderr
    );
}

impl Load {
    /// Waits for the writers to end (their whole limit sent, unless stopped).
    async fn finish_after_limit(self) -> (u64, u64, Vec<String>) {
        for writer in self.writers {
            writer.await.unwrap();
        }
        let acked = self.acked.lock().await.clone();
        (
            self.sent.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            acked,
        )
    }
}

/// O2: SIGTERM under load: health answers NOT_SERVING to a polling check before the listener
/// closes, calls in flight finish, the process exits in time, and nothing acknowledged is lost.
#[tokio::test]
async fn o2_sigterm_under_load() {
    let mut rig = Rig::new(None).await;
    rig.deployment.environment = vec![("ICS_SHUTDOWN_DRAIN_SECS".into(), "2".into())];
    let mut server = rig.start_all().await;
    let load = Load::start(&server.url, &rig.operator(), 5_000);
    load.until_sent(100).await;

    let health_url = server.url.clone();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let poller = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                let status = match Endpoint::from_shared(health_url.clone())
                    .unwrap()
                    .connect()
                    .await
                {
                    Ok(channel) => match HealthClient::new(channel)
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                    {
                        Ok(response) => match response.into_inner().status() {
                            ServingStatus::Serving => "SERVING",
                            _ => "NOT_SERVING",
                        },
                        Err(_) => "UNAVAILABLE",
                    },
                    Err(_) => "UNAVAILABLE",
                };
                let mut seen = seen.lock().await;
                if seen.last().map(String::as_str) != Some(status) {
                    seen.push(status.to_string());
                }
                if status == "UNAVAILABLE" {
                    return;
                }
                drop(seen);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    let clean = server.terminate().await;
    let exit_time = signalled.elapsed();
    poller.await.unwrap();
    let (sent, _failed, acked) = load.finish().await;
    assert!(clean, "the server exits cleanly on SIGTERM");
    assert!(
        exit_time < Duration::from_secs(30),
        "exit took {exit_time:?}"
    );
    assert_eq!(
        *seen.lock().await,
        vec!["SERVING", "NOT_SERVING", "UNAVAILABLE"],
        "health goes NOT_SERVING before the listener closes"
    );
    rig.deployment.restart(&mut server).await;
    let verdict = check(&rig, &server, &acked, Instant::now()).await;
    report("O2 SIGTERM under load", sent, acked.len(), &verdict);
}

/// O3 (and R7): pg_dump → pg_restore into a fresh cluster whose transaction counter is far
/// below the original's; the services started on the restore publish what the stream lacks and
/// every new event, and the views equal the record.
#[tokio::test]
async fn o3_restore_into_a_fresh_cluster() {
    let rig = Rig::new(Some(400_000)).await;
    let mut server = rig.start_all().await;
    let load = Load::start(&server.url, &rig.operator(), 300);
    let (sent_before, _, mut acked) = load.finish_after_limit().await;
    check(&rig, &server, &acked, Instant::now()).await;
    server.terminate().await;
    let dump = std::env::temp_dir().join(format!("ics-o3-{}", ics_testing::unique_token()));
    rig.postgres.dump(&rig.deployment.database.name, &dump);

    // The same deployment (NATS, prefix, secret) on a fresh cluster holding the backup.
    let fresh = PrivatePostgres::start();
    fresh.restore(&rig.deployment.database.name, &dump);
    let _ = std::fs::remove_file(&dump);
    let restored = Rig {
        deployment: Deployment {
            database: TestDatabase {
                name: rig.deployment.database.name.clone(),
                url: fresh.url(&rig.deployment.database.name),
                server: fresh.server_url(),
            },
            subject_prefix: rig.deployment.subject_prefix.clone(),
            secret: rig.deployment.secret.clone(),
            follow_up_grace_days: 0,
            nats_url: rig.nats.url(),
            environment: Vec::new(),
            client_tls: ics_client::ClientTls::default(),
            server_log: None,
        },
        postgres: fresh,
        nats: rig.nats,
    };
    let server = restored.deployment.start("all").await;
    let load = Load::start(&server.url, &restored.operator(), 200);
    let (sent_after, _, acked_after) = load.finish_after_limit().await;
    acked.extend(acked_after);
    let verdict = check(&restored, &server, &acked, Instant::now()).await;
    report(
        "O3 restore into a fresh cluster",
        sent_before + sent_after,
        acked.len(),
        &verdict,
    );
}

/// The trusts and reporting services in processes of their own, organisations registered, so
/// that the projection can be stopped while writers go on.
async fn start_apart(rig: &Rig) -> (Server, Server) {
    let trusts = rig.deployment.start("trusts").await;
    let reporting = rig.deployment.start("reporting").await;
    register_organisations(&trusts.url, &rig.operator()).await;
    (trusts, reporting)
}

/// R14: the projection is down while writers run; writes are unaffected (every command is
/// acknowledged) and it catches up fully once it is back.
#[tokio::test]
async fn r14_a_projection_down_while_writers_run() {
    let rig = Rig::new(None).await;
    let (trusts, mut reporting) = start_apart(&rig).await;
    let load = Load::start(&trusts.url, &rig.operator(), 600);
    load.until_sent(50).await;
    reporting.kill();
    let during = load.sent.load(Ordering::SeqCst);
    load.until_sent(during + 400).await;
    rig.deployment.restart(&mut reporting).await;
    let back = Instant::now();
    let (sent, failed, acked) = load.finish().await;
    assert_eq!(failed, 0, "writes do not depend on the projection");
    let verdict = check(&rig, &reporting, &acked, back).await;
    report("R14 projection down", sent, acked.len(), &verdict);
}

/// R15: the reporting process is killed mid catch-up and started again: it resumes from its
/// checkpoint, and the messages the dead instance held come back after the short ack wait
/// (seconds, not the 30 s they waited before).
#[tokio::test]
async fn r15_kill_the_projection_mid_catch_up() {
    let rig = Rig::new(None).await;
    let (trusts, mut reporting) = start_apart(&rig).await;
    let load = Load::start(&trusts.url, &rig.operator(), 1_000);
    load.until_sent(100).await;
    reporting.kill();
    let during = load.sent.load(Ordering::SeqCst);
    load.until_sent(during + 400).await;
    rig.deployment.restart(&mut reporting).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    reporting.kill();
    rig.deployment.restart(&mut reporting).await;
    let back = Instant::now();
    let (sent, _failed, acked) = load.finish().await;
    let verdict = check(&rig, &reporting, &acked, back).await;
    report(
        "R15 kill -9 projection mid catch-up",
        sent,
        acked.len(),
        &verdict,
    );
    assert!(
        verdict.recovery < Duration::from_secs(20),
        "caught up {:?} after the restart",
        verdict.recovery
    );
}

/// R4: NATS is down for longer than the streams' duplicate window (shortened to 1 s here with
/// `ICS_DUPLICATE_WINDOW_SECS`): the backlog drains, and whatever is published twice has no
/// second effect.
#[tokio::test]
async fn r4_nats_down_longer_than_the_duplicate_window() {
    let mut rig = Rig::new(None).await;
    rig.deployment.environment = vec![("ICS_DUPLICATE_WINDOW_SECS".into(), "1".into())];
    let server = rig.start_all().await;
    let load = Load::start(&server.url, &rig.operator(), 800);
    load.until_sent(100).await;
    rig.nats.kill();
    let during = load.sent.load(Ordering::SeqCst);
    load.until_sent(during + 200).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // What an operator's dashboard shows meanwhile: the backlog and how long it has waited.
    let (_, page) = ics_e2e::http_get(&server.dashboard_url, "/metrics").await;
    let trusts = [("service", "trusts")];
    let unpublished =
        ics_e2e::prometheus_sample(&page, "ics_relay_unpublished_events", &trusts).unwrap();
    let oldest =
        ics_e2e::prometheus_sample(&page, "ics_relay_oldest_unpublished_age_seconds", &trusts)
            .unwrap();
    assert!(
        unpublished >= 100.0,
        "{unpublished} events waiting:\n{page}"
    );
    assert!(oldest >= 1.5, "the oldest has waited {oldest} s");
    rig.nats.restart().await;
    let back = Instant::now();
    let (sent, _failed, acked) = load.finish().await;
    let verdict = check(&rig, &server, &acked, back).await;
    report(
        "R4 nats down past the duplicate window",
        sent,
        acked.len(),
        &verdict,
    );
}

/// R8: a three-node NATS cluster with R3 streams; the trusts stream's leader is killed under
/// load. Writes continue, nothing is lost, and the projections are exact.
#[tokio::test]
async fn r8_kill_the_stream_leader_of_a_three_node_cluster() {
    let mut cluster = ics_testing::PrivateNatsCluster::start().await;
    let postgres = PrivatePostgres::start();
    let database = TestDatabase::create_on(&postgres.server_url()).await;
    let mut deployment = Deployment::on(database, cluster.urls());
    deployment.environment = vec![("ICS_STREAM_REPLICAS".into(), "3".into())];
    let operator = deployment.token(&Principal::Operator);
    let server = deployment.start("all").await;
    register_organisations(&server.url, &operator).await;
    // Enough that the leader is killed while writes go on, however fast commands are; the
    // load is stopped once 200 more have been sent after the kill.
    let load = Load::start(&server.url, &operator, 20_000);
    load.until_sent(150).await;

    let stream_name = format!("{}_TRUSTS", deployment.subject_prefix.to_uppercase());
    let client = async_nats::connect(cluster.url(0)).await.unwrap();
    let jetstream_client = jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    // A busy cluster may still be electing the stream's first leader.
    let leader = loop {
        let leader = match jetstream_client.get_stream(&stream_name).await {
            Ok(mut stream) => stream
                .info()
                .await
                .ok()
                .and_then(|info| info.cluster.clone())
                .and_then(|cluster| cluster.leader),
            Err(_) => None,
        };
        if let Some(leader) = leader {
            break leader;
        }
        assert!(Instant::now() < deadline, "the R3 stream has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let leader_index = cluster.index_of(&leader).expect("the leader is a node");
    cluster.kill(leader_index);
    let killed = Instant::now();
    let during = load.sent.load(Ordering::SeqCst);
    load.until_sent(during + 200).await;
    let (sent, failed, acked) = load.finish().await;
    assert_eq!(
        failed, 0,
        "writes continue while the stream elects a new leader"
    );
    let survivor = cluster.url((leader_index + 1) % 3);
    let verdict = check_deployment(
        &deployment,
        &survivor,
        &server.reporting_url,
        &acked,
        killed,
    )
    .await;
    report(
        "R8 kill -9 the R3 stream leader",
        sent,
        acked.len(),
        &verdict,
    );
}

/// `icsd all` under load opens at most `ICS_DB_MAX_CONNECTIONS` (20 by default) connections,
/// pools and listeners together, so several instances fit PostgreSQL's default limit of 100.
#[tokio::test]
async fn icsd_all_stays_within_its_connection_budget() {
    let rig = Rig::new(None).await;
    let server = rig.start_all().await;
    let load = Load::start(&server.url, &rig.operator(), 400);
    let pool = rig.pool().await;
    let mut most = 0i64;
    while !load.writers.iter().all(|writer| writer.is_finished()) {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name <> $1",
        )
        .bind(CHECKER)
        .fetch_one(&pool)
        .await
        .unwrap();
        most = most.max(open);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, _, acked) = load.finish().await;
    pool.close().await;
    assert!(!acked.is_empty());
    assert!(most <= 20, "icsd all held {most} connections");
    println!("icsd all held at most {most} connections under load");
}

/// `icsctl admin verify` finds nothing on a converged deployment, reports the events a relay
/// could not publish while NATS is away (and exits 1), and nothing again once they are out.
#[tokio::test]
async fn admin_verify_reports_what_the_stream_and_views_lack() {
    let mut rig = Rig::new(None).await;
    let server = rig.start_all().await;
    let (_, _, mut acked) = Load::start(&server.url, &rig.operator(), 60)
        .finish_after_limit()
        .await;
    check(&rig, &server, &acked, Instant::now()).await;
    let clean = rig
        .deployment
        .icsctl_output(&server, &["admin", "verify"])
        .await;
    assert!(clean.success, "{}{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.contains("no gaps"), "{}", clean.stdout);

    rig.nats.kill();
    let (_, _, acked_offline) = Load::start(&server.url, &rig.operator(), 20)
        .finish_after_limit()
        .await;
    acked.extend(acked_offline);
    let offline = rig
        .deployment
        .icsctl_output(&server, &["admin", "verify"])
        .await;
    assert!(!offline.success, "a gap fails the command");
    assert!(
        offline
            .stdout
            .contains("events of the log are not published yet"),
        "{}",
        offline.stdout
    );

    rig.nats.restart().await;
    check(&rig, &server, &acked, Instant::now()).await;
    let again = rig
        .deployment
        .icsctl_output(&server, &["admin", "verify"])
        .await;
    assert!(again.success, "{}{}", again.stdout, again.stderr);
}

/// R7, second half: a backup restored beside the original, into another database under a new
/// subject prefix. Before its trusts service has published the log to the new stream, a rebuild
/// of the overview reads the record itself and holds every organisation; once the relay has
/// published, the streams' messages change nothing and the view equals the record.
#[tokio::test]
async fn a_restore_under_a_new_prefix_rebuilds_from_the_record_before_its_stream_holds_the_log() {
    let rig = Rig::new(None).await;
    let mut server = rig.start_all().await;
    let (_, _, acked) = Load::start(&server.url, &rig.operator(), 100)
        .finish_after_limit()
        .await;
    check(&rig, &server, &acked, Instant::now()).await;
    server.terminate().await;
    let dump = std::env::temp_dir().join(format!("ics-r7-{}", ics_testing::unique_token()));
    rig.postgres.dump(&rig.deployment.database.name, &dump);
    let copy_name = format!("{}_copy", rig.deployment.database.name);
    rig.postgres.restore(&copy_name, &dump);
    let _ = std::fs::remove_file(&dump);
    let copy = Deployment::on(
        TestDatabase {
            url: rig.postgres.url(&copy_name),
            name: copy_name,
            server: rig.postgres.server_url(),
        },
        rig.nats.url(),
    );
    let operator = copy.token(&Principal::Operator);

    let reporting = copy.start("reporting").await;
    let mut admin = AdminServiceClient::new(
        Endpoint::from_shared(reporting.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let pool = checker_pool(&copy).await;
    let streams: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT stream_id) FROM trusts.events WHERE stream_id LIKE 'organisation-%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM reporting.organisations")
        .execute(&pool)
        .await
        .unwrap();
    let rebuilt = admin
        .rebuild_projection(authorized(
            &operator,
            RebuildProjectionRequest {
                projection: "overview".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM trusts.events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        rebuilt.events_applied as i64, logged,
        "the whole record applied"
    );
    let organisations: i64 = sqlx::query_scalar("SELECT count(*) FROM reporting.organisations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        organisations, streams,
        "every organisation of the record, with no stream to read"
    );
    pool.close().await;

    let _trusts = copy.start("trusts").await;
    let verdict = check_deployment(
        &copy,
        &rig.nats.url(),
        &reporting.url,
        &acked,
        Instant::now(),
    )
    .await;
    report("R7 restore under a new prefix", 100, acked.len(), &verdict);
}

/// `icsctl` sends a command while its server is down and restarting: the channel retries with
/// the very same request (so the same request id), the command succeeds, and lands once.
#[tokio::test]
async fn icsctl_retries_a_command_while_the_server_restarts() {
    let rig = Rig::new(None).await;
    let mut server = rig.deployment.start("all").await;
    server.kill();
    let mut icsctl = std::process::Command::new(ics_e2e::binary("icsctl"));
    icsctl
        .args([
            "org",
            "register",
            "RR8",
            "--name",
            "The Leeds Teaching Hospitals NHS Trust",
            "--kind",
            "trust",
        ])
        .env("ICS_TRUSTS_URL", &server.url)
        .env("ICS_TOKEN_SECRET", &rig.deployment.secret);
    let command = tokio::task::spawn_blocking(move || icsctl.output().unwrap());
    tokio::time::sleep(Duration::from_millis(800)).await;
    rig.deployment.restart(&mut server).await;
    let output = command.await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pool = rig.pool().await;
    let registered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM trusts.events WHERE stream_id = 'organisation-RR8'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(registered, 1);
}
