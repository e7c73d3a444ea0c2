//! The reporting service's gRPC API over the overview and outcomes projections.

use std::pin::Pin;
use std::time::Duration;

use chrono::NaiveDate;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use ics_proto::date::to_naive;
use ics_proto::reporting::v1::{
    self as api, Outcomes, OutcomesUpdate, Overview, OverviewUpdate, Scope,
    reporting_service_server::ReportingService, scope,
};
use ics_service_kit::error::{ServiceError, Violations};
use ics_service_kit::{Principal, principal};
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::outcomes_projection::OUTCOMES;
use crate::projection::OVERVIEW;
use crate::views;
use crate::watch::{Change, ChangeHub};

/// Changes arriving within this window are folded into one recomputation of a watch's view.
const WATCH_COALESCE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct ReportingApi {
    pool: PgPool,
    changes: ChangeHub,
    shutdown: CancellationToken,
}

impl ReportingApi {
    /// `changes` must hear the overview and outcomes projections.
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

type UpdateStream<U> = Pin<Box<dyn Stream<Item = Result<U, Status>> + Send>>;

/// Computes a view of a scope on a date.
type ViewFn<V> = fn(PgPool, Scope, NaiveDate) -> BoxFuture<'static, Result<V, ServiceError>>;

impl ReportingApi {
    /// Streams `first`, then the view again whenever a change of one of `projections` alters
    /// it; `update` wraps a view and the change that caused it.
    fn watch<V, U>(
        &self,
        scope: Scope,
        projections: &'static [&'static str],
        mut changes: broadcast::Receiver<Change>,
        first: V,
        view: ViewFn<V>,
        update: fn(V, Change) -> U,
    ) -> UpdateStream<U>
    where
        V: Clone + PartialEq + Send + 'static,
        U: Send + 'static,
    {
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let pool = self.pool.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut last = first.clone();
            if sender
                .send(Ok(update(first, Change::default())))
                .await
                .is_err()
            {
                return;
            }
            let relevant = |change: &Change| projections.contains(&change.projection.as_str());
            loop {
                let change = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sender.closed() => return,
                    change = changes.recv() => change,
                };
                let mut cause = match change {
                    Ok(change) if relevant(&change) => change,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => Change::default(),
                    Err(RecvError::Closed) => return,
                };
                tokio::time::sleep(WATCH_COALESCE).await;
                while let Ok(next) = changes.try_recv() {
                    if relevant(&next) {
                        cause = next;
                    }
                }
                let today = chrono::Utc::now().date_naive();
                let current = match view(pool.clone(), scope.clone(), today).await {
                    Ok(current) => current,
                    Err(error) => {
                        let _ = sender.send(Err(error.into())).await;
                        return;
                    }
                };
                if current == last {
                    continue;
                }
                last = current.clone();
                if sender.send(Ok(update(current, cause))).await.is_err() {
                    return;
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
    }
}

fn overview_view(
    pool: PgPool,
    scope: Scope,
    as_of: NaiveDate,
) -> BoxFuture<'static, Result<Overview, ServiceError>> {
    Box::pin(async move { views::overview(&pool, &scope, as_of).await })
}

fn outcomes_view(
    pool: PgPool,
    scope: Scope,
    as_of: NaiveDate,
) -> BoxFuture<'static, Result<Outcomes, ServiceError>> {
    Box::pin(async move { views::outcomes(&pool, &scope, as_of).await })
}

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

    type WatchOverviewStream = UpdateStream<OverviewUpdate>;

    async fn watch_overview(
        &self,
        request: Request<api::WatchOverviewRequest>,
    ) -> Result<Response<Self::WatchOverviewStream>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        // Subscribe before the first read so no change between the two is missed.
        let changes = self.changes.subscribe();
        let first = views::overview(&self.pool, &scope, chrono::Utc::now().date_naive()).await?;
        Ok(Response::new(self.watch(
            scope,
            &[OVERVIEW],
            changes,
            first,
            overview_view,
            |overview, cause| OverviewUpdate {
                overview: Some(overview),
                event_type: cause.event_type,
                event_id: cause.event_id,
            },
        )))
    }

    async fn get_outcomes(
        &self,
        request: Request<api::GetOutcomesRequest>,
    ) -> Result<Response<Outcomes>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let as_of = as_of(body.as_of.as_ref())?;
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let outcomes = views::outcomes(&self.pool, &scope, as_of).await?;
        Ok(Response::new(outcomes))
    }

    type WatchOutcomesStream = UpdateStream<OutcomesUpdate>;

    async fn watch_outcomes(
        &self,
        request: Request<api::WatchOutcomesRequest>,
    ) -> Result<Response<Self::WatchOutcomesStream>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let changes = self.changes.subscribe();
        let first = views::outcomes(&self.pool, &scope, chrono::Utc::now().date_naive()).await?;
        // Membership and names come from the overview, so its changes can alter outcomes too.
        Ok(Response::new(self.watch(
            scope,
            &[OUTCOMES, OVERVIEW],
            changes,
            first,
            outcomes_view,
            |outcomes, cause| OutcomesUpdate {
                outcomes: Some(outcomes),
                event_type: cause.event_type,
                event_id: cause.event_id,
            },
        )))
    }
}
