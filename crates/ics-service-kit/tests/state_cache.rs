//! The event log a service starts keeps as many bytes of recently commanded streams' folded
//! states in memory as its operator configured (`ICS_STATE_CACHE_MB`), not the built-in default.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ics_service_kit::config::DEFAULT_STATE_CACHE_MB;
use ics_service_kit::{CommonConfig, EventLog};
use ics_testing::{TestDatabase, unique_token};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_log_keeps_the_configured_bytes_of_states_in_memory() {
    let database = TestDatabase::create().await;
    let pool = database.pool("trusts").await;
    let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
    for megabytes in [256, 0, DEFAULT_STATE_CACHE_MB] {
        let common = CommonConfig {
            subject_prefix: unique_token(),
            state_cache_mb: megabytes,
            ..CommonConfig::default()
        };
        let shutdown = CancellationToken::new();
        let log = EventLog::start(&common, "trusts", pool.clone(), nats.clone(), &shutdown);
        assert_eq!(
            u64::try_from(log.store.state_cache_bytes()).unwrap(),
            megabytes << 20
        );
        shutdown.cancel();
        log.stopped().await;
    }
    pool.close().await;
    database.drop_database().await;
}
