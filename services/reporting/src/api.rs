//! The reporting service's gRPC API over the overview, outcomes and measures projections, and
//! the board packs rendered from them.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::NaiveDate;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use ics_proto::events::v1::SpcSeries;
use ics_proto::reporting::v1::{
    self as api, MeasureView, MeasureViewUpdate, Outcomes, OutcomesUpdate, Overview,
    OverviewUpdate, PeerChange, PeerComparison, Scope, scope,
};
use ics_service_kit::auth::{token_expired, token_expired_status, token_expiry};
use ics_service_kit::error::{ServiceError, Violations};
use ics_service_kit::limits::{OpenCall, OpenCallLimit};
use ics_service_kit::validate;
use ics_service_kit::{Principal, principal};
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::board_pack;
use crate::encoded::Encoded;
use crate::fhir;
use crate::grpc::reporting_service_server::ReportingService;
use crate::lookups;
use crate::measures;
use crate::measures_projection::MEASURES;
use crate::outcome_records::OutcomeRecords;
use crate::outcomes_projection::OUTCOMES;
use crate::projection::OVERVIEW;
use crate::view_cache::ViewCache;
use crate::views;
use crate::watch::{Change, ChangeHub};

/// Changes arriving within this window are folded into one recomputation of a watch's view.
const WATCH_COALESCE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct ReportingApi {
    pool: PgPool,
    changes: ChangeHub,
    watches: OpenCallLimit,
    /// Printed on board packs (`ICS_DATA_LABEL`).
    data_label: Option<String>,
    /// The root of the FHIR resources' canonical URLs (`ICS_FHIR_BASE_URL`).
    fhir_base: String,
    /// Views served again until a projection they read changes (see [`crate::view_cache`]).
    overviews: Arc<ViewCache<(String, NaiveDate), Overview>>,
    outcomes: Arc<ViewCache<(String, NaiveDate), Outcomes>>,
    /// Shared and encoded once: hundreds of rows, asked for thousands of times a second.
    measure_views: Arc<ViewCache<(String, String, NaiveDate), Encoded<MeasureView>>>,
    /// The counted workshops every outcomes view reads (see [`OutcomeRecords`]).
    outcome_records: Arc<OutcomeRecords>,
    shutdown: CancellationToken,
}

impl ReportingApi {
    /// `changes` must hear the overview and outcomes projections; `watches` caps the live
    /// watches each tenant holds open.
    pub fn new(
        pool: PgPool,
        changes: ChangeHub,
        watches: OpenCallLimit,
        shutdown: CancellationToken,
    ) -> Self {
        ReportingApi {
            overviews: Arc::new(ViewCache::new(changes.clone(), &[OVERVIEW])),
            outcomes: Arc::new(ViewCache::new(changes.clone(), &[OUTCOMES, OVERVIEW])),
            measure_views: Arc::new(ViewCache::new(changes.clone(), &[MEASURES, OVERVIEW])),
            outcome_records: Arc::new(OutcomeRecords::new(pool.clone())),
            pool,
            changes,
            watches,
            data_label: None,
            fhir_base: ics_fhir::EXAMPLE_BASE.to_owned(),
            shutdown,
        }
    }

    /// The deployment's notice on its data (the demo's SAMPLE and SYNTHETIC label), printed on
    /// every board pack.
    pub fn with_data_label(mut self, data_label: Option<String>) -> Self {
        self.data_label = data_label.filter(|label| !label.trim().is_empty());
        self
    }

    /// The root of the FHIR resources' canonical URLs.
    pub fn with_fhir_base(mut self, fhir_base: &str) -> Self {
        self.fhir_base = fhir_base.to_owned();
        self
    }

    /// Counted workshops shared with the process's other outcomes views (the dashboard's),
    /// rather than a set of its own.
    pub fn with_outcome_records(mut self, outcome_records: Arc<OutcomeRecords>) -> Self {
        self.outcome_records = outcome_records;
        self
    }
}

/// Checks the scope's shape and that the caller may read it. The tenant comes from the
/// principal: a board reader asking for another scope is refused before anything is read.
pub(crate) fn authorize_scope(
    principal: &Principal,
    scope: Option<&Scope>,
) -> Result<Scope, ServiceError> {
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
    let mut violations = Violations::default();
    let as_of = validate::optional_date(&mut violations, "as_of", value);
    ServiceError::check(violations)?;
    Ok(as_of.unwrap_or_else(|| chrono::Utc::now().date_naive()))
}

type UpdateStream<U> = Pin<Box<dyn Stream<Item = Result<U, Status>> + Send>>;

/// Computes the view of the scope a watch follows (an ICS or programme, or an ICS with a peer
/// group) on a date.
type ViewFn<V> = Box<dyn Fn(NaiveDate) -> BoxFuture<'static, Result<V, ServiceError>> + Send>;

impl ReportingApi {
    /// Streams `first`, then the view again whenever a change of one of `projections` alters
    /// it; `update` wraps a view and the change that caused it.
    #[allow(clippy::too_many_arguments)]
    fn watch<V, U>(
        &self,
        open: OpenCall,
        expires_at: Option<SystemTime>,
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
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            // Counted against the tenant's open watches until this task ends.
            let _open = open;
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
                    () = token_expired(expires_at) => {
                        let _ = sender.send(Err(token_expired_status())).await;
                        return;
                    }
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
                let current = match view(today).await {
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

fn overview_view(pool: PgPool, scope: Scope) -> ViewFn<Overview> {
    Box::new(move |as_of| {
        let (pool, scope) = (pool.clone(), scope.clone());
        Box::pin(async move { views::overview(&pool, &scope, as_of).await })
    })
}

fn measure_view(pool: PgPool, ics_ods_code: String, peer_group_id: String) -> ViewFn<MeasureView> {
    Box::new(move |as_of| {
        let (pool, ics_ods_code, peer_group_id) =
            (pool.clone(), ics_ods_code.clone(), peer_group_id.clone());
        Box::pin(async move {
            measures::measure_view(&pool, &ics_ods_code, &peer_group_id, as_of).await
        })
    })
}

/// The ICS a measures request names, which the caller must be allowed to read.
fn authorize_ics(principal: &Principal, ics_ods_code: &str) -> Result<(), ServiceError> {
    let mut violations = Violations::default();
    validate::ods_code(&mut violations, "ics_ods_code", ics_ods_code);
    ServiceError::check(violations)?;
    Ok(principal.authorize_ics_read(ics_ods_code)?)
}

/// The ICS a measures request names, which the caller must be allowed to read, and the peer
/// group it compares against: a board only one of its own ICS or region (see
/// [`measures::peer_group_fits_ics`]); another is NOT_FOUND, as an unknown one is. Operators
/// may use any.
async fn authorize_peers(
    pool: &sqlx::PgPool,
    principal: &Principal,
    ics_ods_code: &str,
    peer_group_id: &str,
) -> Result<(), ServiceError> {
    authorize_ics(principal, ics_ods_code)?;
    if peer_group_id.is_empty() || !matches!(principal, Principal::BoardReader { .. }) {
        return Ok(());
    }
    let today = chrono::Utc::now().date_naive();
    if measures::peer_group_fits_ics(pool, peer_group_id, ics_ods_code, today).await? {
        return Ok(());
    }
    // Answered as if the group did not exist, but audited as the refusal it is.
    tracing::info!(
        target: ics_service_kit::audit::TARGET,
        kind = "denied",
        principal = %principal.label(),
        action = "compare against",
        resource = format!("peer group {peer_group_id} (outside ICS {ics_ods_code} and its region)"),
        "permission denied"
    );
    Err(ServiceError::not_found(format!(
        "peer group {peer_group_id}"
    )))
}

fn required_measure(violations: &mut Violations, measure_code: &str) {
    if !ics_measures::is_measure_code(measure_code) {
        violations.add("measure_code", "is not a measure code");
    }
}

fn optional_peer_group(violations: &mut Violations, peer_group_id: &str) {
    if !peer_group_id.is_empty() {
        validate::uuid(violations, "peer_group_id", peer_group_id);
    }
}

impl ReportingApi {
    /// The scope's outcomes on a date, through the view cache: a change is computed into the
    /// view once, however many watches and reads of the scope want it.
    fn outcomes_view(&self, scope: Scope) -> ViewFn<Outcomes> {
        let (pool, records, cache) = (
            self.pool.clone(),
            self.outcome_records.clone(),
            self.outcomes.clone(),
        );
        Box::new(move |as_of| {
            let (pool, records, cache, scope) =
                (pool.clone(), records.clone(), cache.clone(), scope.clone());
            Box::pin(async move {
                cache
                    .get_or_compute((views::scope_key(&scope), as_of), || {
                        views::outcomes(&pool, &records, &scope, as_of)
                    })
                    .await
            })
        })
    }
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
        let overview = self
            .overviews
            .get_or_compute((views::scope_key(&scope), as_of), || {
                views::overview(&self.pool, &scope, as_of)
            })
            .await?;
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
        ServiceError::check(violations)?;
        let as_of = as_of(body.as_of.as_ref())?;
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let ratings = views::cqc_history(&self.pool, &scope, &body.ods_code, as_of).await?;
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
        let open = self.watches.open(&principal, "watch")?;
        let expires_at = token_expiry(&request);
        let body = request.into_inner();
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        // Subscribe before the first read so no change between the two is missed.
        let changes = self.changes.subscribe();
        let first = views::overview(&self.pool, &scope, chrono::Utc::now().date_naive()).await?;
        Ok(Response::new(self.watch(
            open,
            expires_at,
            &[OVERVIEW],
            changes,
            first,
            overview_view(self.pool.clone(), scope),
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
        let outcomes = self.outcomes_view(scope)(as_of).await?;
        Ok(Response::new(outcomes))
    }

    type WatchOutcomesStream = UpdateStream<OutcomesUpdate>;

    async fn watch_outcomes(
        &self,
        request: Request<api::WatchOutcomesRequest>,
    ) -> Result<Response<Self::WatchOutcomesStream>, Status> {
        let principal = principal(&request)?;
        let open = self.watches.open(&principal, "watch")?;
        let expires_at = token_expiry(&request);
        let body = request.into_inner();
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let changes = self.changes.subscribe();
        let view = self.outcomes_view(scope);
        let first = view(chrono::Utc::now().date_naive()).await?;
        // Membership and names come from the overview, so its changes can alter outcomes too.
        Ok(Response::new(self.watch(
            open,
            expires_at,
            &[OUTCOMES, OVERVIEW],
            changes,
            first,
            view,
            |outcomes, cause| OutcomesUpdate {
                outcomes: Some(outcomes),
                event_type: cause.event_type,
                event_id: cause.event_id,
            },
        )))
    }

    async fn get_measure_view(
        &self,
        request: Request<api::GetMeasureViewRequest>,
    ) -> Result<Response<Encoded<MeasureView>>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        optional_peer_group(&mut violations, &body.peer_group_id);
        ServiceError::check(violations)?;
        authorize_peers(
            &self.pool,
            &principal,
            &body.ics_ods_code,
            &body.peer_group_id,
        )
        .await?;
        let as_of = as_of(body.as_of.as_ref())?;
        let key = (body.ics_ods_code.clone(), body.peer_group_id.clone(), as_of);
        let view = self
            .measure_views
            .get_or_compute(key, || {
                let view = measures::measure_view(
                    &self.pool,
                    &body.ics_ods_code,
                    &body.peer_group_id,
                    as_of,
                );
                async { view.await.map(Encoded::new) }
            })
            .await?;
        Ok(Response::new(view))
    }

    type WatchMeasureViewStream = UpdateStream<MeasureViewUpdate>;

    async fn watch_measure_view(
        &self,
        request: Request<api::WatchMeasureViewRequest>,
    ) -> Result<Response<Self::WatchMeasureViewStream>, Status> {
        let principal = principal(&request)?;
        let open = self.watches.open(&principal, "watch")?;
        let expires_at = token_expiry(&request);
        let body = request.into_inner();
        let mut violations = Violations::default();
        optional_peer_group(&mut violations, &body.peer_group_id);
        ServiceError::check(violations)?;
        authorize_peers(
            &self.pool,
            &principal,
            &body.ics_ods_code,
            &body.peer_group_id,
        )
        .await?;
        let changes = self.changes.subscribe();
        let today = chrono::Utc::now().date_naive();
        let first =
            measures::measure_view(&self.pool, &body.ics_ods_code, &body.peer_group_id, today)
                .await?;
        // Membership and names come from the overview, so its changes can alter the view too.
        Ok(Response::new(self.watch(
            open,
            expires_at,
            &[MEASURES, OVERVIEW],
            changes,
            first,
            measure_view(self.pool.clone(), body.ics_ods_code, body.peer_group_id),
            |view, cause| MeasureViewUpdate {
                view: Some(view),
                event_type: cause.event_type,
                event_id: cause.event_id,
            },
        )))
    }

    async fn get_series_chart(
        &self,
        request: Request<api::GetSeriesChartRequest>,
    ) -> Result<Response<SpcSeries>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        ics_measures::validate_series_key(&mut violations, "series", body.series.as_ref());
        ServiceError::check(violations)?;
        authorize_ics(&principal, &body.ics_ods_code)?;
        let key = body.series.unwrap_or_default();
        let chart = measures::series_chart(
            &self.pool,
            &body.ics_ods_code,
            &key,
            chrono::Utc::now().date_naive(),
        )
        .await?;
        Ok(Response::new(chart))
    }

    async fn get_peer_comparison(
        &self,
        request: Request<api::GetPeerComparisonRequest>,
    ) -> Result<Response<PeerComparison>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        required_measure(&mut violations, &body.measure_code);
        optional_peer_group(&mut violations, &body.peer_group_id);
        let period =
            validate::optional_date(&mut violations, "period_start", body.period_start.as_ref());
        ServiceError::check(violations)?;
        authorize_peers(
            &self.pool,
            &principal,
            &body.ics_ods_code,
            &body.peer_group_id,
        )
        .await?;
        let comparison = measures::peer_comparison(
            &self.pool,
            &body.ics_ods_code,
            &body.measure_code,
            &body.peer_group_id,
            period,
            chrono::Utc::now().date_naive(),
        )
        .await?;
        Ok(Response::new(comparison))
    }

    async fn get_peer_change(
        &self,
        request: Request<api::GetPeerChangeRequest>,
    ) -> Result<Response<PeerChange>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        required_measure(&mut violations, &body.measure_code);
        optional_peer_group(&mut violations, &body.peer_group_id);
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        let from = validate::required_date(
            &mut violations,
            "from_period_start",
            body.from_period_start.as_ref(),
        );
        let to = validate::required_date(
            &mut violations,
            "to_period_start",
            body.to_period_start.as_ref(),
        );
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            violations.add("to_period_start", "must be after from_period_start");
        }
        ServiceError::check(violations)?;
        authorize_peers(
            &self.pool,
            &principal,
            &body.ics_ods_code,
            &body.peer_group_id,
        )
        .await?;
        let change = measures::peer_change(
            &self.pool,
            &body.ics_ods_code,
            &body.measure_code,
            &body.peer_group_id,
            &body.ods_code,
            (from.unwrap_or_default(), to.unwrap_or_default()),
            chrono::Utc::now().date_naive(),
        )
        .await?;
        Ok(Response::new(change))
    }

    async fn get_board_pack(
        &self,
        request: Request<api::GetBoardPackRequest>,
    ) -> Result<Response<api::BoardPack>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let as_of = as_of(body.as_of.as_ref())?;
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let wanted = board_pack::Wanted::of(body.format, &body.table, &scope)?;
        // The server's clock, as the footer of every pack it renders says.
        let generated_at = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
        let pack = board_pack::board_pack(
            &self.pool,
            &self.outcome_records,
            &scope,
            as_of,
            &wanted,
            &generated_at,
            self.data_label.as_deref(),
        )
        .await?;
        Ok(Response::new(pack))
    }

    async fn list_programmes(
        &self,
        request: Request<api::ListProgrammesRequest>,
    ) -> Result<Response<api::ListProgrammesResponse>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let today = chrono::Utc::now().date_naive();
        let page = lookups::programmes(&self.pool, &scope, body.page_size, &body.page_token, today)
            .await?;
        Ok(Response::new(page))
    }

    async fn list_value_streams(
        &self,
        request: Request<api::ListValueStreamsRequest>,
    ) -> Result<Response<api::ListValueStreamsResponse>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        optional_trust(&body.ods_code)?;
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let today = chrono::Utc::now().date_naive();
        let page = lookups::value_streams(
            &self.pool,
            &scope,
            &body.ods_code,
            body.page_size,
            &body.page_token,
            today,
        )
        .await?;
        Ok(Response::new(page))
    }

    async fn list_series(
        &self,
        request: Request<api::ListSeriesRequest>,
    ) -> Result<Response<api::ListSeriesResponse>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        optional_trust(&body.ods_code)?;
        if !body.measure_code.is_empty() {
            let mut violations = Violations::default();
            required_measure(&mut violations, &body.measure_code);
            ServiceError::check(violations)?;
        }
        let scope = authorize_scope(&principal, body.scope.as_ref())?;
        let today = chrono::Utc::now().date_naive();
        let page = lookups::series(
            &self.pool,
            &scope,
            &body.ods_code,
            &body.measure_code,
            body.page_size,
            &body.page_token,
            today,
        )
        .await?;
        Ok(Response::new(page))
    }

    async fn list_peer_groups(
        &self,
        request: Request<api::ListPeerGroupsRequest>,
    ) -> Result<Response<api::ListPeerGroupsResponse>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        authorize_ics(&principal, &body.ics_ods_code)?;
        let today = chrono::Utc::now().date_naive();
        let page = lookups::peer_groups(
            &self.pool,
            &body.ics_ods_code,
            body.page_size,
            &body.page_token,
            today,
        )
        .await?;
        Ok(Response::new(page))
    }

    async fn get_fhir_measures(
        &self,
        request: Request<api::GetFhirMeasuresRequest>,
    ) -> Result<Response<api::FhirResource>, Status> {
        // Shared reference data, as GetMeasure is: any authenticated caller.
        principal(&request)?;
        let bundle = fhir::measures(&self.pool, &self.fhir_base).await?;
        Ok(Response::new(fhir::resource(&bundle)))
    }

    async fn get_fhir_measure_reports(
        &self,
        request: Request<api::GetFhirMeasureReportsRequest>,
    ) -> Result<Response<api::FhirResource>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let query = fhir::ReportQuery::check(
            &body.ods_code,
            body.period_start.as_ref(),
            body.period_end.as_ref(),
            &body.measure_code,
            body.aggregate,
        )?;
        fhir::authorize_subject(&self.pool, &principal, body.scope, &query.ods_code).await?;
        let bundle = fhir::measure_reports(&self.pool, &self.fhir_base, &query).await?;
        Ok(Response::new(fhir::resource(&bundle)))
    }
}

/// A lookup's optional trust filter must be an ODS code when given.
fn optional_trust(ods_code: &str) -> Result<(), ServiceError> {
    let mut violations = Violations::default();
    if !ods_code.is_empty() {
        validate::ods_code(&mut violations, "ods_code", ods_code);
    }
    ServiceError::check(violations)
}
