//! Keeps a service's projections running and rebuilds one on an operator's request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::admin::ProjectionAdmin;
use crate::error::ServiceError;
use async_nats::jetstream;
use futures_util::future::BoxFuture;
use ics_eventstore::subject;
use ics_projection::{
    Projection, ProjectionError, ProjectionRunner, RunnerConfig, list_dead_letters,
};
use ics_proto::admin::v1::{DeadLetter, ProjectionCheck};
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a rebuild may take to catch up before the call gives up waiting (it keeps going).
const REBUILD_CATCH_UP: Duration = Duration::from_secs(300);

/// Longest pause between looks for a source stream that does not exist yet.
const STREAM_WAIT_MAX: Duration = Duration::from_secs(2);

/// Pause before restarting a task that died, doubling up to the maximum.
const RESTART_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Runs the task `start` makes until `stop` is cancelled, starting it again (after a growing
/// pause) whenever it panics or returns before then; each restart is logged and counted in
/// `restarts`. Relays and projection runners only return on `stop`, so anything else is a
/// failure that must not leave the service serving without them.
pub async fn keep_running<F, Fut>(
    task_name: String,
    stop: CancellationToken,
    restarts: Arc<AtomicU64>,
    start: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = RESTART_BACKOFF_FIRST;
    loop {
        let outcome = tokio::spawn(start()).await;
        if stop.is_cancelled() {
            return;
        }
        let restart = restarts.fetch_add(1, Ordering::SeqCst) + 1;
        match outcome {
            Err(error) if error.is_panic() => {
                tracing::error!(task = %task_name, restart, backoff_ms = backoff.as_millis() as u64, "task panicked; restarting it");
            }
            _ => {
                tracing::error!(task = %task_name, restart, backoff_ms = backoff.as_millis() as u64, "task stopped unexpectedly; restarting it");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
    }
}

/// A projection runner with its projection type erased, so one supervisor can hold several.
trait Runner: Send + Sync {
    fn run(&self, stop: CancellationToken) -> BoxFuture<'static, ()>;
    fn rebuild_from_record(&self) -> BoxFuture<'_, Result<u64, ProjectionError>>;
    fn replay_streams(&self) -> BoxFuture<'_, Result<(), ProjectionError>>;
    fn pending(&self, service: &str) -> BoxFuture<'_, Result<u64, ProjectionError>>;
    fn wait_caught_up(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ProjectionError>>;
    fn events_applied(&self) -> BoxFuture<'_, Result<u64, ProjectionError>>;
}

impl<P: Projection> Runner for ProjectionRunner<P> {
    fn run(&self, stop: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(ProjectionRunner::run(self.clone(), stop))
    }

    fn rebuild_from_record(&self) -> BoxFuture<'_, Result<u64, ProjectionError>> {
        Box::pin(ProjectionRunner::rebuild_from_record(self))
    }

    fn replay_streams(&self) -> BoxFuture<'_, Result<(), ProjectionError>> {
        Box::pin(ProjectionRunner::replay_streams(self))
    }

    fn pending(&self, service: &str) -> BoxFuture<'_, Result<u64, ProjectionError>> {
        let service = service.to_string();
        Box::pin(async move { ProjectionRunner::pending(self, &service).await })
    }

    fn wait_caught_up(&self, timeout: Duration) -> BoxFuture<'_, Result<(), ProjectionError>> {
        Box::pin(ProjectionRunner::wait_caught_up(self, timeout))
    }

    fn events_applied(&self) -> BoxFuture<'_, Result<u64, ProjectionError>> {
        Box::pin(ProjectionRunner::events_applied(self))
    }
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct Supervised {
    name: String,
    runner: Arc<dyn Runner>,
    /// The services whose logs feed the projection, and their JetStream streams, pairwise.
    source_services: Vec<String>,
    source_streams: Vec<String>,
    running: Mutex<Option<Running>>,
    /// How often its runner died and was started again.
    restarts: Arc<AtomicU64>,
}

/// Runs every reporting projection, each from its own source streams, and serves the admin
/// API's projection operations by projection name.
pub struct Supervisor {
    pool: PgPool,
    nats: async_nats::Client,
    shutdown: CancellationToken,
    projections: Vec<Supervised>,
    replay_from_start: bool,
}

impl Supervisor {
    pub fn new(pool: PgPool, nats: async_nats::Client, shutdown: CancellationToken) -> Self {
        Supervisor {
            pool,
            nats,
            shutdown,
            projections: Vec::new(),
            replay_from_start: false,
        }
    }

    /// Adds a projection fed by the streams `config` names.
    pub fn supervise<P: Projection>(mut self, projection: Arc<P>, config: RunnerConfig) -> Self {
        let name = projection.name().to_string();
        let config_services = config.source_services.clone();
        let source_streams = config
            .source_services
            .iter()
            .map(|service| subject::stream_name(&config.subject_prefix, service))
            .collect();
        let runner =
            ProjectionRunner::new(self.pool.clone(), self.nats.clone(), projection, config);
        self.projections.push(Supervised {
            name,
            runner: Arc::new(runner),
            source_services: config_services,
            source_streams,
            running: Mutex::new(None),
            restarts: Arc::new(AtomicU64::new(0)),
        });
        self
    }

    /// When `replay` (the schema was restored from a backup), the projections read their
    /// streams from the beginning once more, skipping what the restored state already holds.
    pub fn replay_from_start(mut self, replay: bool) -> Self {
        self.replay_from_start = replay;
        self
    }

    /// The supervised projections' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.projections
            .iter()
            .map(|projection| projection.name.as_str())
    }

    /// Starts every projection; each begins consuming once all its source streams exist.
    pub async fn start(self) -> Arc<Self> {
        for projection in &self.projections {
            if self.replay_from_start
                && let Err(error) = projection.runner.replay_streams().await
            {
                tracing::error!(projection = %projection.name, %error, "cannot restart the projection's consumers after a restore");
            }
            *projection.running.lock().await = Some(self.spawn(projection));
        }
        Arc::new(self)
    }

    fn spawn(&self, projection: &Supervised) -> Running {
        let stop = self.shutdown.child_token();
        let jetstream = subject::jetstream_context(self.nats.clone());
        let name = projection.name.clone();
        let streams = projection.source_streams.clone();
        let runner = projection.runner.clone();
        let restarts = projection.restarts.clone();
        let waiting = stop.clone();
        let task = tokio::spawn(async move {
            if wait_for_streams(&jetstream, &name, &streams, &waiting).await {
                let running = waiting.clone();
                keep_running(format!("projection {name}"), waiting, restarts, move || {
                    runner.run(running.clone())
                })
                .await;
            }
        });
        Running { stop, task }
    }

    /// How often the projection's runner died and was restarted.
    pub fn restarts(&self, projection: &str) -> Result<u64, ServiceError> {
        Ok(self.find(projection)?.restarts.load(Ordering::SeqCst))
    }

    fn find(&self, projection: &str) -> Result<&Supervised, ServiceError> {
        self.projections
            .iter()
            .find(|supervised| supervised.name == projection)
            .ok_or_else(|| {
                // Name the valid ones, so that an operator's typo is answered with the fix.
                let names: Vec<&str> = self
                    .projections
                    .iter()
                    .map(|supervised| supervised.name.as_str())
                    .collect();
                ServiceError::NotFound {
                    resource: format!(
                        "projection {projection} (this service's projections: {})",
                        names.join(", ")
                    ),
                }
            })
    }

    /// Waits for every runner to stop after shutdown.
    pub async fn stopped(&self) {
        for projection in &self.projections {
            if let Some(running) = projection.running.lock().await.take() {
                running.stop.cancel();
                let _ = running.task.await;
            }
        }
    }
}

/// The first of `streams` that does not exist or cannot be looked up right now, and why.
async fn first_missing<'a>(
    jetstream: &jetstream::Context,
    streams: &'a [String],
) -> Option<(&'a str, String)> {
    for stream in streams {
        if let Err(error) = jetstream.get_stream(stream).await {
            return Some((stream, error.to_string()));
        }
    }
    None
}

/// Waits until every stream exists; false when `stop` came first. A source service that is not
/// deployed yet (no stream) is an expected state, not an error: it is announced once, and the
/// runner, whose retries warn each time, starts only when there is something to consume.
async fn wait_for_streams(
    jetstream: &jetstream::Context,
    projection: &str,
    streams: &[String],
    stop: &CancellationToken,
) -> bool {
    let mut pause = Duration::from_millis(100);
    let mut announced = false;
    loop {
        let Some((missing, error)) = first_missing(jetstream, streams).await else {
            if announced {
                tracing::info!(projection, "source streams available; projection starting");
            }
            return true;
        };
        if announced {
            tracing::debug!(projection, stream = missing, %error, "source stream still unavailable");
        } else {
            tracing::info!(projection, stream = missing, %error, "source stream unavailable; waiting for it");
            announced = true;
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(STREAM_WAIT_MAX);
    }
}

impl ProjectionAdmin for Supervisor {
    fn dead_letters<'a>(
        &'a self,
        projection: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, ServiceError>> {
        Box::pin(async move {
            if !projection.is_empty() {
                self.find(projection)?;
            }
            let letters = list_dead_letters(&self.pool, projection).await?;
            Ok(letters
                .into_iter()
                .map(|letter| DeadLetter {
                    projection: letter.projection,
                    subject: letter.subject,
                    event_id: letter.event_id,
                    event_type: letter.event_type,
                    deliveries: letter.deliveries,
                    error: letter.error,
                    recorded_at: letter.recorded_at.to_rfc3339(),
                })
                .collect())
        })
    }

    fn verify(&self) -> BoxFuture<'_, Result<Vec<ProjectionCheck>, ServiceError>> {
        Box::pin(async move {
            let mut pending = Vec::new();
            for supervised in &self.projections {
                let record = self.record_counts(&supervised.source_services).await?;
                for (service, log_events) in supervised.source_services.iter().zip(record) {
                    pending.push(self.verify_source(supervised, service, log_events));
                }
            }
            // Together, so that NATS being away costs one timeout, not one per projection.
            futures_util::future::try_join_all(pending).await
        })
    }

    fn rebuild<'a>(&'a self, projection: &'a str) -> BoxFuture<'a, Result<u64, ServiceError>> {
        Box::pin(async move {
            let supervised = self.find(projection)?;
            let record = self.record_counts(&supervised.source_services).await?;
            let mut running = supervised.running.lock().await;
            if let Some(current) = running.take() {
                current.stop.cancel();
                let _ = current.task.await;
            }
            let rebuilt = supervised.runner.rebuild_from_record().await;
            *running = Some(self.spawn(supervised));
            drop(running);
            rebuilt.map_err(|error| match error {
                ProjectionError::Database(error) => ServiceError::from(error),
                other => ServiceError::Unavailable(format!("rebuild failed: {other}")),
            })?;
            // What the log gained while the rebuild read it arrives through the streams.
            let jetstream = subject::jetstream_context(self.nats.clone());
            if first_missing(&jetstream, &supervised.source_streams)
                .await
                .is_none()
            {
                supervised
                    .runner
                    .wait_caught_up(REBUILD_CATCH_UP)
                    .await
                    .map_err(|error| ServiceError::Unavailable(error.to_string()))?;
            }
            self.check_rebuilt_holds_the_record(supervised, &record)
                .await?;
            supervised
                .runner
                .events_applied()
                .await
                .map_err(|error| ServiceError::Unavailable(error.to_string()))
        })
    }
}

impl Supervisor {
    /// One projection compared with one source service's log.
    async fn verify_source(
        &self,
        supervised: &Supervised,
        service: &str,
        log_events: u64,
    ) -> Result<ProjectionCheck, ServiceError> {
        let projection = supervised.name.as_str();
        let count = |sql: String| {
            let pool = self.pool.clone();
            async move {
                let value: i64 = sqlx::query_scalar(&sql)
                    .bind(projection)
                    .bind(service)
                    .fetch_one(&pool)
                    .await?;
                Ok::<u64, ServiceError>(u64::try_from(value).unwrap_or_default())
            }
        };
        let applied_events = count(
            "SELECT coalesce(sum(version), 0)::bigint FROM projection_stream_versions
             WHERE projection = $1 AND source_service = $2"
                .to_string(),
        )
        .await?;
        let table = ics_eventstore::log_table(service);
        let streams_behind = if ics_eventstore::log_exists(&self.pool, service).await? {
            count(format!(
                "SELECT count(*) FROM
                     (SELECT stream_id, max(stream_version) AS version FROM {table}
                      GROUP BY stream_id) AS logged
                 FULL JOIN
                     (SELECT stream_id, version FROM projection_stream_versions
                      WHERE projection = $1 AND source_service = $2) AS applied
                 USING (stream_id)
                 WHERE logged.version IS DISTINCT FROM applied.version"
            ))
            .await?
        } else {
            count(
                "SELECT count(*) FROM projection_stream_versions
                 WHERE projection = $1 AND source_service = $2 AND version > 0"
                    .to_string(),
            )
            .await?
        };
        let parked_events = count(
            "SELECT count(*) FROM projection_parked WHERE projection = $1 AND source_service = $2"
                .to_string(),
        )
        .await?;
        let dead_letters = count(
            "SELECT count(*) FROM dead_letters
             WHERE projection = $1 AND split_part(subject, '.', 2) = $2"
                .to_string(),
        )
        .await?;
        let mut gaps = Vec::new();
        let consumer_pending = match supervised.runner.pending(service).await {
            Ok(pending) => pending,
            Err(error) => {
                gaps.push(format!("cannot read the {service} consumer: {error}"));
                0
            }
        };
        if streams_behind > 0 {
            gaps.push(format!(
                "{streams_behind} streams of the {service} log are not applied to their last \
                 version ({applied_events} of {log_events} events applied)"
            ));
        }
        if parked_events > 0 {
            gaps.push(format!(
                "{parked_events} events wait parked for a predecessor"
            ));
        }
        if dead_letters > 0 {
            gaps.push(format!(
                "{dead_letters} events were dead-lettered (icsctl admin dead-letters)"
            ));
        }
        Ok(ProjectionCheck {
            projection: projection.to_string(),
            source_service: service.to_string(),
            log_events,
            applied_events,
            streams_behind,
            parked_events,
            dead_letters,
            consumer_pending,
            gaps,
        })
    }

    /// How many events each source service's log holds now. Every service keeps its log in
    /// the schema named after it in the one database the deployment shares; a service whose
    /// schema does not exist has never run here, and its log holds nothing.
    async fn record_counts(&self, services: &[String]) -> Result<Vec<u64>, ServiceError> {
        let mut counts = Vec::with_capacity(services.len());
        for service in services {
            let table = ics_eventstore::log_table(service);
            let count: i64 = if ics_eventstore::log_exists(&self.pool, service).await? {
                // The name is a service's, validated as a schema name at start-up.
                sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                    .fetch_one(&self.pool)
                    .await?
            } else {
                0
            };
            counts.push(u64::try_from(count).unwrap_or_default());
        }
        Ok(counts)
    }

    /// After a rebuild caught up: every stream of every source must have been applied up to
    /// the events its log held when the rebuild began (applied versions add up to at least
    /// that many events), or the rebuild is reported as incomplete rather than OK.
    async fn check_rebuilt_holds_the_record(
        &self,
        supervised: &Supervised,
        record: &[u64],
    ) -> Result<(), ServiceError> {
        for (service, logged) in supervised.source_services.iter().zip(record) {
            let applied: i64 = sqlx::query_scalar(
                "SELECT coalesce(sum(version), 0)::bigint FROM projection_stream_versions
                 WHERE projection = $1 AND source_service = $2",
            )
            .bind(&supervised.name)
            .bind(service)
            .fetch_one(&self.pool)
            .await?;
            let applied = u64::try_from(applied).unwrap_or_default();
            if applied < *logged {
                return Err(ServiceError::FailedPrecondition(format!(
                    "the rebuilt projection {} holds {applied} of the {logged} events of the \
                     {service} log; it goes on consuming, but is not complete yet",
                    supervised.name
                )));
            }
        }
        Ok(())
    }
}
