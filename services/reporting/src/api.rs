//! The reporting service's gRPC API over the overview projection.

use std::pin::Pin;
use std::time::Duration;

use chrono::NaiveDate;
use futures_util::Stream;
use ics_proto::date::to_naive;
use ics_proto::reporting::v1::{
    self as api, Overview, OverviewUpdate, Scope, reporting_service_server::ReportingService, scope,
};
use ics_service_kit::error::{ServiceError, Violations};
use ics_service_kit::{Principal, principal};
use sqlx::PgPool;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::views;
use crate::watch::ChangeHub;

/// Changes arriving within this window are folded into one recomputation of a watch's view.
const WATCH_COALESCE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct ReportingApi {
    pool: PgPool,
    changes: ChangeHub,
    shutdown: CancellationToken,
}

impl ReportingApi {
    pub fn new(pool: PgPool, changes: ChangeHub, shutdown: CancellationToken) -> Self {
        ReportingApi {
            pool,
            changes,
            shutdown,
        }
    }
}

/// Checks the scope's shape and that the caller may read it. The tenant comes from the
/// principal: a board reader asking for another scope is refused before anything is read.
fn authorize_scope(principal: &Principal, scope: Option<&Scope>) -> Result<Scope, ServiceError> {
    let Some(scope) = scope.filter(|scope| scope.scope.is_some()) else {
        return Err(ServiceError::invalid_field(
            "scope",
            "is required: an ics_ods_code or a programme_id",
        ));
    };
    match &scope.scope {
        Some(scope::Scope::IcsOdsCode(ics)) => {
            let well_formed = (3..=5).contains(&ics.len())
                && ics
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if !well_formed {
                return Err(ServiceError::invalid_field(
                    "scope.ics_ods_code",
                    "must be an ODS code: 3 to 5 upper-case letters or digits, e.g. QWO",
                ));
            }
            principal.authorize_ics_read(ics)?;
        }
        Some(scope::Scope::ProgrammeId(programme_id)) => {
            if uuid::Uuid::parse_str(programme_id).is_err() {
                return Err(ServiceError::invalid_field(
                    "scope.programme_id",
                    "must be a UUID",
                ));
            }
            principal.authorize_programme_read(programme_id)?;
        }
        None => {}
    }
    Ok(scope.clone())
}

fn as_of(value: Option<&ics_proto::events::v1::Date>) -> Result<NaiveDate, ServiceError> {
    match value {
        None => Ok(chrono::Utc::now().date_naive()),
        Some(date) => to_naive(date)
            .ok_or_else(|| ServiceError::invalid_field("as_of", "is not a valid calendar date")),
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<OverviewUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl ReportingService for ReportingApi {
    async fn get_overview(
        &self,
        request: Request<api::GetOverviewRequest>,
    ) -> Result<Response<Overview>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let as_of = as_of(body.as_of.as_ref())?;
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let overview = views::overview(&self.pool, &scope, as_of).await?;
        Ok(Response::new(overview))
    }

    async fn get_cqc_history(
        &self,
        request: Request<api::GetCqcHistoryRequest>,
    ) -> Result<Response<api::CqcHistory>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        if body.ods_code.is_empty() {
            violations.add("ods_code", "is required");
        }
        violations.into_result()?;
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let ratings = views::cqc_history(&self.pool, &scope, &body.ods_code).await?;
        Ok(Response::new(api::CqcHistory {
            ods_code: body.ods_code,
            ratings,
        }))
    }

    type WatchOverviewStream = UpdateStream;

    async fn watch_overview(
        &self,
        request: Request<api::WatchOverviewRequest>,
    ) -> Result<Response<Self::WatchOverviewStream>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        // Subscribe before the first read so no change between the two is missed.
        let mut changes = self.changes.subscribe();
        let first = views::overview(&self.pool, &scope, chrono::Utc::now().date_naive()).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let pool = self.pool.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut last = first.clone();
            let initial = OverviewUpdate {
                overview: Some(first),
                event_type: String::new(),
                event_id: String::new(),
            };
            if sender.send(Ok(initial)).await.is_err() {
                return;
            }
            loop {
                let change = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sender.closed() => return,
                    change = changes.recv() => change,
                };
                let mut cause = match change {
                    Ok(change) => change,
                    Err(RecvError::Lagged(_)) => Default::default(),
                    Err(RecvError::Closed) => return,
                };
                tokio::time::sleep(WATCH_COALESCE).await;
                while let Ok(next) = changes.try_recv() {
                    cause = next;
                }
                let today = chrono::Utc::now().date_naive();
                let overview = match views::overview(&pool, &scope, today).await {
                    Ok(overview) => overview,
                    Err(error) => {
                        let _ = sender.send(Err(error.into())).await;
                        return;
                    }
                };
                if overview == last {
                    continue;
                }
                last = overview.clone();
                let update = OverviewUpdate {
                    overview: Some(overview),
                    event_type: cause.event_type,
                    event_id: cause.event_id,
                };
                if sender.send(Ok(update)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}
