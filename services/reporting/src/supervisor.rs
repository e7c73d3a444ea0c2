//! Keeps the overview projection running and rebuilds it on an operator's request.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use ics_projection::{Projection, ProjectionRunner, list_dead_letters};
use ics_proto::admin::v1::DeadLetter;
use ics_service_kit::admin::ProjectionAdmin;
use ics_service_kit::error::ServiceError;
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a rebuild may take to catch up before the call gives up waiting (it keeps going).
const REBUILD_CATCH_UP: Duration = Duration::from_secs(300);

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Supervisor<P: Projection> {
    pool: PgPool,
    runner: ProjectionRunner<P>,
    shutdown: CancellationToken,
    running: Mutex<Option<Running>>,
}

impl<P: Projection> Supervisor<P> {
    pub fn new(
        pool: PgPool,
        runner: ProjectionRunner<P>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Supervisor {
            pool,
            runner,
            shutdown,
            running: Mutex::new(None),
        })
    }

    pub async fn start(&self) {
        let mut running = self.running.lock().await;
        *running = Some(self.spawn());
    }

    fn spawn(&self) -> Running {
        let stop = self.shutdown.child_token();
        let task = tokio::spawn(self.runner.clone().run(stop.clone()));
        Running { stop, task }
    }

    /// Waits for the runner to stop after shutdown.
    pub async fn stopped(&self) {
        if let Some(running) = self.running.lock().await.take() {
            running.stop.cancel();
            let _ = running.task.await;
        }
    }
}

impl<P: Projection> ProjectionAdmin for Supervisor<P> {
    fn dead_letters<'a>(
        &'a self,
        projection: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, ServiceError>> {
        Box::pin(async move {
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

    fn rebuild<'a>(&'a self, projection: &'a str) -> BoxFuture<'a, Result<u64, ServiceError>> {
        Box::pin(async move {
            if projection != self.runner.projection().name() {
                return Err(ServiceError::NotFound {
                    resource: format!("projection {projection}"),
                });
            }
            let mut running = self.running.lock().await;
            if let Some(current) = running.take() {
                current.stop.cancel();
                let _ = current.task.await;
            }
            let reset = self.runner.reset_for_rebuild().await;
            *running = Some(self.spawn());
            drop(running);
            reset.map_err(|error| ServiceError::Unavailable(format!("rebuild failed: {error}")))?;
            self.runner
                .wait_caught_up(REBUILD_CATCH_UP)
                .await
                .map_err(|error| ServiceError::Unavailable(error.to_string()))?;
            self.runner
                .events_applied()
                .await
                .map_err(|error| ServiceError::Unavailable(error.to_string()))
        })
    }
}
