//! The supervisor keeps projection runners alive: one that panics is restarted, logged and
//! counted, and the event it died on is applied by the restarted runner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use ics_eventstore::relay::{Relay, RelayConfig};
use ics_eventstore::{CommandContext, EventStore, ExpectedVersion, NewEvent, StoreError, migrate};
use ics_projection::{Projection, ProjectionError, RunnerConfig};
use ics_proto::events::v1::{EventEnvelope, OrganisationRenamed};
use ics_service_kit::supervisor::Supervisor;
use ics_testing::{TestDatabase, unique_token};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

/// Panics on the first event it is given (a bug, not a rejection); records events after that.
struct PanicsOnce {
    panicked: AtomicBool,
}

impl Projection for PanicsOnce {
    fn name(&self) -> &str {
        "panics_once"
    }

    fn apply<'a>(
        &'a self,
        connection: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            if !self.panicked.swap(true, Ordering::SeqCst) {
                panic!("a projection bug");
            }
            sqlx::query("INSERT INTO seen (event_id) VALUES ($1)")
                .bind(&event.event_id)
                .execute(&mut *connection)
                .await?;
            Ok(())
        })
    }

    fn reset<'a>(
        &'a self,
        connection: &'a mut PgConnection,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM seen")
                .execute(&mut *connection)
                .await?;
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_runner_that_panics_is_restarted_and_applies_the_event_it_died_on() {
    let database = TestDatabase::create().await;
    let pool = database.pool("trusts").await;
    migrate(
        &pool,
        &[
            ics_projection::MIGRATIONS,
            &[("test_seen", "CREATE TABLE seen (event_id text PRIMARY KEY)")],
        ]
        .concat(),
    )
    .await
    .unwrap();
    let store = EventStore::new(pool.clone(), "trusts");
    let prefix = unique_token();
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    let relay = Relay::new(store.clone(), nats.clone(), RelayConfig::new(&prefix));
    relay.ensure_stream().await.unwrap();
    store
        .execute_on_history(
            &CommandContext {
                request_id: "rename-1".into(),
                principal: "operator".into(),
                ..Default::default()
            },
            "Rename",
            b"rename-1",
            "organisation-RTP",
            ExpectedVersion::Any,
            |_| {
                Ok::<_, StoreError>(vec![NewEvent::encode(
                    "RTP",
                    &OrganisationRenamed {
                        ods_code: "RTP".into(),
                        previous_name: String::new(),
                        name: "Leeds".into(),
                    },
                )])
            },
        )
        .await
        .unwrap();
    // Transaction ids are cluster-wide: another test's open transaction can briefly hold back
    // what the relay may publish, so publish until the event went out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while relay.publish_pending().await.unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event was held back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let shutdown = CancellationToken::new();
    let supervisor = Supervisor::new(pool.clone(), nats.clone(), shutdown.clone())
        .supervise(
            Arc::new(PanicsOnce {
                panicked: AtomicBool::new(false),
            }),
            RunnerConfig {
                ack_wait: Duration::from_secs(1),
                ..RunnerConfig::new(&prefix, &["trusts"])
            },
        )
        .start()
        .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM seen")
            .fetch_one(&pool)
            .await
            .unwrap();
        if seen == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted runner never applied the event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(supervisor.restarts("panics_once").unwrap() >= 1);
    // An unknown name is answered with the valid ones.
    let unknown = supervisor.restarts("panic_once").unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert!(
        unknown.to_string().contains("projections: panics_once"),
        "{unknown}"
    );
    shutdown.cancel();
    supervisor.stopped().await;
    ics_testing::delete_streams(&nats, &prefix).await;
    database.drop_database().await;
}
