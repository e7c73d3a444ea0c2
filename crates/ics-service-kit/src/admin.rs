//! `ics.admin.v1.AdminService`: what operators need from every service — the event log as a
//! stream, re-publishing to JetStream, dead letters and projection rebuilds. Only an operator
//! principal may call it.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use futures_util::future::BoxFuture;
use ics_eventstore::relay::{Relay, StreamEnd};
use ics_eventstore::{EventStore, LogCursor};
use ics_proto::admin::v1::{self as api, DeadLetter, admin_service_server::AdminService};
use ics_proto::events::v1::EventEnvelope;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::audit::{self, AuditTrail};
use crate::auth::{principal, token_expired, token_expired_status, token_expiry};
use crate::error::ServiceError;

/// How often a following tail looks for new events.
const TAIL_POLL: Duration = Duration::from_millis(200);
const TAIL_BATCH: u32 = 500;

/// Projection operations a service with projections offers to operators.
pub trait ProjectionAdmin: Send + Sync + 'static {
    /// Dead letters of one projection, or of all when `projection` is empty.
    fn dead_letters<'a>(
        &'a self,
        projection: &'a str,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, ServiceError>>;

    /// Drops and rebuilds a projection from the beginning of its streams; returns how many
    /// events the rebuilt projection applied.
    fn rebuild<'a>(&'a self, projection: &'a str) -> BoxFuture<'a, Result<u64, ServiceError>>;

    /// Each projection compared with the logs it reads, one check per source service.
    fn verify(&self) -> BoxFuture<'_, Result<Vec<api::ProjectionCheck>, ServiceError>>;
}

#[derive(Clone)]
pub struct AdminApi {
    store: Option<EventStore>,
    relay: Option<Relay>,
    projections: Option<Arc<dyn ProjectionAdmin>>,
    audit: Option<AuditTrail>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AdminApi")
            .field("has_event_log", &self.store.is_some())
            .field("has_projections", &self.projections.is_some())
            .finish()
    }
}

impl AdminApi {
    /// `shutdown` ends following tails so that a draining server is not held open.
    pub fn new(shutdown: CancellationToken) -> Self {
        AdminApi {
            store: None,
            relay: None,
            projections: None,
            audit: None,
            shutdown,
        }
    }

    /// For a service that records events: tail and re-publish its log.
    pub fn with_event_log(mut self, store: EventStore, relay: Relay) -> Self {
        self.store = Some(store);
        self.relay = Some(relay);
        self
    }

    pub fn with_projections(mut self, projections: Arc<dyn ProjectionAdmin>) -> Self {
        self.projections = Some(projections);
        self
    }

    pub fn with_audit_trail(mut self, audit: AuditTrail) -> Self {
        self.audit = Some(audit);
        self
    }

    fn unsupported(what: &str) -> Status {
        ServiceError::FailedPrecondition(format!("this service has no {what}")).into()
    }
}

type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<EventEnvelope, Status>> + Send>>;

#[tonic::async_trait]
impl AdminService for AdminApi {
    type TailEventsStream = EnvelopeStream;

    async fn tail_events(
        &self,
        request: Request<api::TailEventsRequest>,
    ) -> Result<Response<Self::TailEventsStream>, Status> {
        principal(&request)?.authorize_operator()?;
        let expires_at = token_expiry(&request);
        let body = request.into_inner();
        let store = self
            .store
            .clone()
            .ok_or_else(|| Self::unsupported("event log"))?;
        let shutdown = self.shutdown.clone();
        let (sender, receiver) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let mut cursor = LogCursor::default();
            loop {
                let batch = match store
                    .read_committed(cursor, body.from_position, TAIL_BATCH)
                    .await
                {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = sender.send(Err(ServiceError::from(error).into())).await;
                        return;
                    }
                };
                let exhausted = batch.len() < TAIL_BATCH as usize;
                for event in &batch {
                    cursor = LogCursor::after(event);
                    if sender
                        .send(Ok(event.to_envelope(store.service())))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if exhausted {
                    if !body.follow {
                        return;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = sender.closed() => return,
                        () = token_expired(expires_at) => {
                            let _ = sender.send(Err(token_expired_status())).await;
                            return;
                        }
                        _ = tokio::time::sleep(TAIL_POLL) => {}
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn republish(
        &self,
        request: Request<api::RepublishRequest>,
    ) -> Result<Response<api::RepublishResponse>, Status> {
        let caller = principal(&request)?;
        caller.authorize_operator()?;
        let relay = self
            .relay
            .clone()
            .ok_or_else(|| Self::unsupported("event log"))?;
        let from_position = request.into_inner().from_position;
        let published = relay
            .republish(from_position)
            .await
            .map_err(|error| ServiceError::Unavailable(format!("re-publishing failed: {error}")))?;
        tracing::info!(
            target: audit::TARGET,
            kind = "admin",
            principal = %caller.label(),
            action = "republish",
            resource = format!("event log from position {from_position}"),
            published,
            "operator re-published the event log"
        );
        Ok(Response::new(api::RepublishResponse { published }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<api::ListDeadLettersRequest>,
    ) -> Result<Response<api::ListDeadLettersResponse>, Status> {
        principal(&request)?.authorize_operator()?;
        let projections = self
            .projections
            .clone()
            .ok_or_else(|| Self::unsupported("projections"))?;
        let projection = request.into_inner().projection;
        let dead_letters = projections.dead_letters(&projection).await?;
        Ok(Response::new(api::ListDeadLettersResponse { dead_letters }))
    }

    async fn verify(
        &self,
        request: Request<api::VerifyRequest>,
    ) -> Result<Response<api::VerifyResponse>, Status> {
        principal(&request)?.authorize_operator()?;
        let log = match (&self.store, &self.relay) {
            (Some(store), Some(relay)) => Some(verify_log(store, relay).await?),
            _ => None,
        };
        let projections = match &self.projections {
            Some(projections) => projections.verify().await?,
            None => Vec::new(),
        };
        Ok(Response::new(api::VerifyResponse { log, projections }))
    }

    async fn rebuild_projection(
        &self,
        request: Request<api::RebuildProjectionRequest>,
    ) -> Result<Response<api::RebuildProjectionResponse>, Status> {
        let caller = principal(&request)?;
        caller.authorize_operator()?;
        let projections = self
            .projections
            .clone()
            .ok_or_else(|| Self::unsupported("projections"))?;
        let projection = request.into_inner().projection;
        let rebuilt = projections.rebuild(&projection).await;
        // Audited whatever the outcome: a refused or failed rebuild was still attempted.
        tracing::info!(
            target: audit::TARGET,
            kind = "admin",
            principal = %caller.label(),
            action = "rebuild",
            resource = format!("projection {projection}"),
            outcome = match &rebuilt {
                Ok(_) => "rebuilt".to_owned(),
                Err(error) => error.to_string(),
            },
            "operator rebuilt a projection"
        );
        let events_applied = rebuilt?;
        Ok(Response::new(api::RebuildProjectionResponse {
            events_applied,
        }))
    }

    async fn list_audit_records(
        &self,
        request: Request<api::ListAuditRecordsRequest>,
    ) -> Result<Response<api::ListAuditRecordsResponse>, Status> {
        principal(&request)?.authorize_operator()?;
        let body = request.into_inner();
        let limit = match body.limit {
            0 => AUDIT_PAGE,
            limit if limit <= AUDIT_PAGE_MAX => limit,
            _ => {
                return Err(ServiceError::invalid_field(
                    "limit",
                    format!("must be at most {AUDIT_PAGE_MAX}"),
                )
                .into());
            }
        };
        let audit = self
            .audit
            .clone()
            .ok_or_else(|| Self::unsupported("audit trail"))?;
        let records = audit.list(body.before_id, limit).await?;
        let next_before_id = if records.len() == limit as usize {
            records.last().map(|record| record.id).unwrap_or_default()
        } else {
            0
        };
        Ok(Response::new(api::ListAuditRecordsResponse {
            records,
            next_before_id,
        }))
    }
}

/// Records per page of the audit trail when the request names none, and at most.
const AUDIT_PAGE: u32 = 100;
const AUDIT_PAGE_MAX: u32 = 1_000;

/// Events the relay has not published, and how long the oldest has waited.
pub(crate) async fn relay_lag(
    store: &EventStore,
    relay: &Relay,
) -> Result<(u64, Duration), ics_eventstore::StoreError> {
    relay_lag_after(store, relay.checkpoint().await?.unwrap_or_default()).await
}

/// [`relay_lag`] from a checkpoint already read.
async fn relay_lag_after(
    store: &EventStore,
    checkpoint: LogCursor,
) -> Result<(u64, Duration), ics_eventstore::StoreError> {
    let unpublished = store.count_after(checkpoint).await?;
    let oldest_age = waited_since(store.oldest_after(checkpoint).await?);
    Ok((unpublished, oldest_age))
}

/// How long an event recorded at `recorded_at` has waited; nothing when there is none (or its
/// clock reads ahead of this one).
pub(crate) fn waited_since(recorded_at: Option<chrono::DateTime<chrono::Utc>>) -> Duration {
    recorded_at
        .and_then(|recorded_at| (chrono::Utc::now() - recorded_at).to_std().ok())
        .unwrap_or_default()
}

/// The log compared with its relay checkpoint and its stream.
async fn verify_log(store: &EventStore, relay: &Relay) -> Result<api::LogCheck, ServiceError> {
    let log_events = store.count().await?;
    let checkpoint = relay.checkpoint().await?;
    let stream = relay.stream_name();
    let mut gaps = Vec::new();
    // NATS being away is itself worth reporting, with what the log alone can tell.
    let (stream_messages, stream_end) = match relay.stream_messages().await {
        Ok(0) => (0, StreamEnd::Empty),
        Ok(messages) => match relay.stream_end().await {
            Ok(end) => (messages, end),
            Err(error) => {
                gaps.push(format!("cannot read stream {stream}: {error}"));
                (messages, StreamEnd::Empty)
            }
        },
        Err(error) => {
            gaps.push(format!("cannot read stream {stream}: {error}"));
            (0, StreamEnd::Empty)
        }
    };
    // The stored checkpoint trails publication by up to the relay's checkpoint interval, so a
    // converged log would show its last few events as unpublished. The stream's last message,
    // when it is an event of this log, says how far publication has really got; events lost
    // before it show as the stream holding fewer messages than that.
    let published_through = match (&stream_end, checkpoint) {
        (StreamEnd::At(end), Some(checkpoint)) => (*end).max(checkpoint),
        (StreamEnd::At(end), None) => *end,
        (_, checkpoint) => checkpoint.unwrap_or_default(),
    };
    let (unpublished_events, oldest_unpublished_age) =
        relay_lag_after(store, published_through).await?;
    let oldest_unpublished_age_ms =
        u64::try_from(oldest_unpublished_age.as_millis()).unwrap_or(u64::MAX);
    let published = log_events - unpublished_events.min(log_events);
    if gaps.is_empty() && stream_messages < published {
        gaps.push(format!(
            "stream {stream} holds {stream_messages} messages but the relay has published \
             {published} events: the stream lost events (the relay re-publishes them when it \
             next starts relaying)"
        ));
    }
    if unpublished_events > 0 {
        gaps.push(format!(
            "{unpublished_events} events of the log are not published yet"
        ));
    }
    match (&stream_end, checkpoint) {
        (StreamEnd::Foreign(last), _) => gaps.push(format!(
            "stream {stream} ends with {last}, which is not an event of this log"
        )),
        (StreamEnd::At(end), Some(checkpoint)) if *end < checkpoint => gaps.push(format!(
            "stream {stream} ends at global position {} before the relay's checkpoint at {}",
            end.global_position, checkpoint.global_position
        )),
        _ => {}
    }
    if checkpoint.is_none() && log_events > 0 {
        gaps.push("the relay has recorded no checkpoint for this stream yet".to_string());
    }
    Ok(api::LogCheck {
        service: store.service().to_string(),
        stream,
        log_events,
        stream_messages,
        unpublished_events,
        checkpoint_recorded: checkpoint.is_some(),
        stream_ends_in_log: matches!(stream_end, StreamEnd::At(_)),
        gaps,
        oldest_unpublished_age_ms,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use ics_eventstore::relay::RelayConfig;
    use ics_eventstore::{CommandContext, ExpectedVersion, NewEvent, StoreError, migrate};
    use ics_proto::events::v1::OrganisationRenamed;
    use ics_testing::{TestDatabase, unique_token};

    use super::*;

    /// Right after the relay has published, its stored checkpoint may still trail by up to its
    /// checkpoint interval. Verify counts what the stream holds as published, so a converged
    /// log shows no gap however far the checkpoint trails.
    #[tokio::test]
    async fn verify_finds_no_gap_while_the_stored_checkpoint_trails_the_stream() {
        let database = TestDatabase::create().await;
        let pool = database.pool("trusts").await;
        migrate(&pool, &[]).await.unwrap();
        let store = EventStore::new(pool, "trusts");
        let prefix = unique_token();
        let nats = async_nats::connect(ics_testing::nats_url()).await.unwrap();
        let relay = || {
            Relay::new(
                store.clone(),
                nats.clone(),
                RelayConfig {
                    checkpoint_interval: Duration::from_secs(3600),
                    ..RelayConfig::new(&prefix)
                },
            )
        };
        let stop = CancellationToken::new();
        let running = tokio::spawn(relay().run(stop.clone()));
        let events = 5;
        for index in 0..events {
            let request_id = format!("rename-{index}");
            store
                .execute_on_history(
                    &CommandContext {
                        request_id: request_id.clone(),
                        principal: "trust-writer:RTP".to_string(),
                        ..Default::default()
                    },
                    "Rename",
                    request_id.as_bytes(),
                    "organisation-RTP",
                    ExpectedVersion::Any,
                    |_history| {
                        Ok::<_, StoreError>(vec![NewEvent::encode(
                            "RTP",
                            &OrganisationRenamed {
                                ods_code: "RTP".to_string(),
                                previous_name: String::new(),
                                name: request_id.clone(),
                            },
                        )])
                    },
                )
                .await
                .unwrap();
        }
        let verifier = relay();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while verifier.stream_messages().await.unwrap_or(0) < events {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the relay published"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let StreamEnd::At(end) = verifier.stream_end().await.unwrap() else {
            panic!("the stream ends with an event of the log");
        };
        let checkpoint = verifier.checkpoint().await.unwrap().unwrap_or_default();
        assert!(
            checkpoint < end,
            "the stored checkpoint {checkpoint:?} trails the stream's end {end:?}"
        );

        let check = verify_log(&store, &verifier).await.unwrap();
        assert_eq!(check.log_events, events);
        assert_eq!(check.stream_messages, events);
        assert_eq!(check.unpublished_events, 0);
        assert!(check.gaps.is_empty(), "{:?}", check.gaps);

        stop.cancel();
        running.await.unwrap();
        ics_testing::delete_streams(&nats, &prefix).await;
        database.drop_database().await;
    }
}
