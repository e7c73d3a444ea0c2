//! The metrics service's gRPC API: validation, authorisation, then a command on one measure,
//! series or peer group.

use chrono::NaiveDate;
use ics_eventstore::{EventStore, Fold, NewEvent};
use ics_measures::{
    MEASURE_STREAM_PREFIX, measure_stream, normalised, peer_group_stream, series_stream,
    validate_definition, validate_series_key,
};
use ics_proto::events::v1::{
    CommandResult, MeasureDefinition, OrganisationKind, PartitionMarkKind, PeerGroupDefined,
    PeerGroupMethod, SeriesKey, SpcSeries,
};
use ics_proto::metrics::v1::{
    self as api, IngestObservationsRequest, IngestSummary, ObservationInput,
    metrics_service_server::MetricsService,
};
use ics_references::is_trust;
use ics_service_kit::command::{self, Command};
use ics_service_kit::error::{ServiceError, Violations};
use ics_service_kit::validate::{self, MAX_LONG_TEXT_CHARS};
use ics_service_kit::{Principal, principal};
use sqlx::PgPool;
use tonic::{Request, Response, Status, Streaming};

use crate::measure::Measure;
use crate::references::{References, Resolved};
use crate::series::{self, Incoming, MarkChange};
use crate::{ingest, peer_group};

/// Most members a custom peer group may list.
const MAX_PEER_GROUP_MEMBERS: usize = 500;

type Reply = Result<Response<CommandResult>, Status>;

#[derive(Debug, Clone)]
pub struct MetricsApi {
    store: EventStore,
    pool: PgPool,
}

impl MetricsApi {
    pub fn new(store: EventStore, pool: PgPool) -> Self {
        MetricsApi { store, pool }
    }

    async fn measure(&self, code: &str) -> Result<MeasureDefinition, ServiceError> {
        Ok(crate::measure::require(&self.store, code).await?.definition)
    }

    /// Checks a series command's key, reason and caller, and returns the series' measure.
    async fn series_command(
        &self,
        principal: &Principal,
        mut violations: Violations,
        key: Option<&SeriesKey>,
        reason: &str,
    ) -> Result<(SeriesKey, MeasureDefinition), ServiceError> {
        validate_series_key(&mut violations, "series", key);
        validate::text(
            &mut violations,
            "reason",
            reason,
            false,
            MAX_LONG_TEXT_CHARS,
        );
        ServiceError::check(violations)?;
        let mut key = key.cloned().unwrap_or_default();
        key.value_stream_id = key.value_stream_id.to_ascii_lowercase();
        let measure = self.measure(&key.measure_code).await?;
        References::new(self.store.clone(), self.pool.clone())
            .check_series_owner(principal, &key, "series.")
            .await?
            .map_err(|rejection| rejection.into_error())?;
        Ok((key, measure))
    }

    /// Checks the one observation a unary command carries, as bulk ingest checks each row.
    async fn resolve_observation(
        &self,
        principal: &Principal,
        input: Option<&ObservationInput>,
    ) -> Result<Resolved, ServiceError> {
        let input =
            input.ok_or_else(|| ServiceError::invalid_field("observation", "is required"))?;
        References::new(self.store.clone(), self.pool.clone())
            .resolve(principal, input, "observation.")
            .await?
            .map_err(|rejection| rejection.into_error())
    }

    async fn execute<S, F>(
        &self,
        command: Command<'_>,
        stream_id: &str,
        fold: Fold<S, ServiceError>,
        decide: F,
    ) -> Reply
    where
        S: Clone + Send + 'static,
        F: Fn(&S) -> Result<Vec<NewEvent>, ServiceError>,
    {
        command::execute(&self.store, command, stream_id, None, fold, decide).await
    }
}

fn required_period(
    violations: &mut Violations,
    field: &str,
    date: Option<&ics_proto::events::v1::Date>,
) -> NaiveDate {
    validate::required_date(violations, field, date).unwrap_or_default()
}

#[tonic::async_trait]
impl MetricsService for MetricsApi {
    async fn define_measure(&self, request: Request<api::DefineMeasureRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate_definition(&mut violations, "definition", body.definition.as_ref());
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        let definition = normalised(&body.definition.clone().unwrap_or_default());
        self.execute(
            Command::new(&principal, body.options.as_ref(), "DefineMeasure", &body),
            &measure_stream(&definition.code),
            Measure::folding(),
            |state| crate::measure::define(state, &definition),
        )
        .await
    }

    async fn get_measure(
        &self,
        request: Request<api::GetMeasureRequest>,
    ) -> Result<Response<api::Measure>, Status> {
        principal(&request)?;
        let code = request.into_inner().code;
        let measure = crate::measure::require(&self.store, &code).await?;
        Ok(Response::new(api::Measure {
            definition: Some(measure.definition),
            revision: measure.revision,
        }))
    }

    async fn list_measures(
        &self,
        request: Request<api::ListMeasuresRequest>,
    ) -> Result<Response<api::ListMeasuresResponse>, Status> {
        principal(&request)?;
        let events = self
            .store
            .read_category(MEASURE_STREAM_PREFIX)
            .await
            .map_err(ServiceError::from)?;
        let mut measures = Vec::new();
        for stream in events.chunk_by(|a, b| a.stream_id == b.stream_id) {
            if let Some(measure) = Measure::fold(stream)? {
                measures.push(api::Measure {
                    definition: Some(measure.definition),
                    revision: measure.revision,
                });
            }
        }
        Ok(Response::new(api::ListMeasuresResponse { measures }))
    }

    async fn record_observation(&self, request: Request<api::RecordObservationRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        ServiceError::check(violations)?;
        let resolved = self
            .resolve_observation(&principal, body.observation.as_ref())
            .await?;
        let key = resolved.checked.key.clone();
        let incoming = [Incoming {
            index: 0,
            period_start: resolved.checked.period_start,
            point: resolved.checked.point.clone(),
        }];
        let measure = resolved.measure;
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "RecordObservation",
                &body,
            ),
            &series_stream(&key),
            series::folding(&key),
            |state| {
                let (events, outcome) = series::record(&key, &measure, state, &incoming)?;
                if let Some((_, reason)) = outcome.conflicts.first() {
                    return Err(ServiceError::FailedPrecondition(reason.clone()));
                }
                Ok(events)
            },
        )
        .await
    }

    async fn ingest_observations(
        &self,
        request: Request<Streaming<IngestObservationsRequest>>,
    ) -> Result<Response<IngestSummary>, Status> {
        let principal = principal(&request)?;
        let summary =
            ingest::ingest(&self.store, &self.pool, &principal, request.into_inner()).await?;
        Ok(Response::new(summary))
    }

    async fn correct_observation(&self, request: Request<api::CorrectObservationRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::text(
            &mut violations,
            "reason",
            &body.reason,
            true,
            MAX_LONG_TEXT_CHARS,
        );
        ServiceError::check(violations)?;
        let resolved = self
            .resolve_observation(&principal, body.observation.as_ref())
            .await?;
        let key = resolved.checked.key.clone();
        let measure = resolved.measure;
        let period_start = resolved.checked.period_start;
        let point = resolved.checked.point;
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "CorrectObservation",
                &body,
            ),
            &series_stream(&key),
            series::folding(&key),
            |state| series::correct(&key, &measure, state, period_start, &point, &body.reason),
        )
        .await
    }

    async fn ghost_observation(&self, request: Request<api::GhostObservationRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        let period_start =
            required_period(&mut violations, "period_start", body.period_start.as_ref());
        let (key, measure) = self
            .series_command(&principal, violations, body.series.as_ref(), &body.reason)
            .await?;
        self.execute(
            Command::new(&principal, body.options.as_ref(), "GhostObservation", &body),
            &series_stream(&key),
            series::folding(&key),
            |state| {
                series::ghost(
                    &key,
                    &measure,
                    state,
                    period_start,
                    body.ghosted,
                    &body.reason,
                )
            },
        )
        .await
    }

    async fn mark_partition(&self, request: Request<api::MarkPartitionRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        let period_start =
            required_period(&mut violations, "period_start", body.period_start.as_ref());
        let kind = validate::enum_value::<PartitionMarkKind>(&mut violations, "kind", body.kind)
            .unwrap_or(PartitionMarkKind::RecalculateFrom);
        if kind == PartitionMarkKind::Baseline && !body.remove && body.baseline_points < 2 {
            violations.add("baseline_points", "a baseline needs at least 2 points");
        }
        if kind == PartitionMarkKind::RecalculateFrom && body.baseline_points != 0 {
            violations.add(
                "baseline_points",
                "only a baseline takes a number of points",
            );
        }
        let (key, measure) = self
            .series_command(&principal, violations, body.series.as_ref(), &body.reason)
            .await?;
        let change = MarkChange {
            period_start,
            kind,
            baseline_points: body.baseline_points,
            remove: body.remove,
            reason: &body.reason,
        };
        self.execute(
            Command::new(&principal, body.options.as_ref(), "MarkPartition", &body),
            &series_stream(&key),
            series::folding(&key),
            |state| series::mark(&key, &measure, state, &change),
        )
        .await
    }

    async fn set_series_target(&self, request: Request<api::SetSeriesTargetRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        if let Some(target) = body.target {
            validate::number(&mut violations, "target", target, f64::MIN, f64::MAX);
        }
        let (key, measure) = self
            .series_command(&principal, violations, body.series.as_ref(), &body.reason)
            .await?;
        self.execute(
            Command::new(&principal, body.options.as_ref(), "SetSeriesTarget", &body),
            &series_stream(&key),
            series::folding(&key),
            |state| series::set_target(&key, &measure, state, body.target, &body.reason),
        )
        .await
    }

    async fn get_series(
        &self,
        request: Request<api::GetSeriesRequest>,
    ) -> Result<Response<SpcSeries>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate_series_key(&mut violations, "series", body.series.as_ref());
        ServiceError::check(violations)?;
        let mut key = body.series.unwrap_or_default();
        key.value_stream_id = key.value_stream_id.to_ascii_lowercase();
        principal.authorize_trust_read(&key.ods_code)?;
        let measure = self.measure(&key.measure_code).await?;
        let history = self
            .store
            .read_stream(&series_stream(&key))
            .await
            .map_err(ServiceError::from)?;
        if history.is_empty() {
            return Err(ServiceError::not_found(format!(
                "series of {} for {}",
                key.measure_code, key.ods_code
            ))
            .into());
        }
        let series = series::fold(&key, &history)?;
        Ok(Response::new(series.spc_series(&measure)))
    }

    async fn define_peer_group(&self, request: Request<api::DefinePeerGroupRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "peer_group_id", &body.peer_group_id);
        validate::name(&mut violations, "name", &body.name);
        let method =
            validate::enum_value::<PeerGroupMethod>(&mut violations, "method", body.method);
        match method {
            Some(PeerGroupMethod::Custom) => {
                if !body.anchor_ods_code.is_empty() {
                    violations.add(
                        "anchor_ods_code",
                        "a custom group lists its members instead",
                    );
                }
                if body.members.len() < 2 {
                    violations.add("members", "a custom group needs at least 2 trusts");
                }
                if body.members.len() > MAX_PEER_GROUP_MEMBERS {
                    violations.add(
                        "members",
                        format!("must list at most {MAX_PEER_GROUP_MEMBERS} trusts"),
                    );
                }
                for (index, member) in body.members.iter().enumerate() {
                    validate::ods_code(&mut violations, &format!("members[{index}]"), member);
                    if body.members[..index].contains(member) {
                        violations.add(format!("members[{index}]"), "is listed twice");
                    }
                }
            }
            Some(_) => {
                validate::ods_code(&mut violations, "anchor_ods_code", &body.anchor_ods_code);
                if !body.members.is_empty() {
                    violations.add("members", "only a custom group lists its members");
                }
            }
            None => {}
        }
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        let mut references = References::new(self.store.clone(), self.pool.clone());
        match method {
            Some(PeerGroupMethod::Custom) => {
                for (index, member) in body.members.iter().enumerate() {
                    match references.organisation_kind(member).await? {
                        None => {
                            return Err(
                                ServiceError::not_found(format!("organisation {member}")).into()
                            );
                        }
                        Some(kind) if !is_trust(kind) => {
                            return Err(ServiceError::invalid_field(
                                format!("members[{index}]"),
                                format!("{member} is not a trust"),
                            )
                            .into());
                        }
                        Some(_) => {}
                    }
                }
            }
            Some(method) => {
                let expected = if method == PeerGroupMethod::Region {
                    OrganisationKind::Region
                } else {
                    OrganisationKind::Icb
                };
                match references.organisation_kind(&body.anchor_ods_code).await? {
                    None => {
                        return Err(ServiceError::not_found(format!(
                            "organisation {}",
                            body.anchor_ods_code
                        ))
                        .into());
                    }
                    Some(kind) if kind != expected => {
                        return Err(ServiceError::invalid_field(
                            "anchor_ods_code",
                            format!(
                                "{} is not {}",
                                body.anchor_ods_code,
                                if expected == OrganisationKind::Region {
                                    "an NHS region"
                                } else {
                                    "an ICB"
                                }
                            ),
                        )
                        .into());
                    }
                    Some(_) => {}
                }
            }
            None => {}
        }
        let definition = PeerGroupDefined {
            peer_group_id: body.peer_group_id.to_ascii_lowercase(),
            name: body.name.trim().to_string(),
            method: body.method,
            anchor_ods_code: body.anchor_ods_code.clone(),
            members: body.members.clone(),
            version: 0,
        };
        command::execute(
            &self.store,
            Command::new(&principal, body.options.as_ref(), "DefinePeerGroup", &body),
            &peer_group_stream(&definition.peer_group_id),
            None,
            peer_group::folding(),
            |state| peer_group::define(state, &definition),
        )
        .await
    }

    async fn get_peer_group(
        &self,
        request: Request<api::GetPeerGroupRequest>,
    ) -> Result<Response<PeerGroupDefined>, Status> {
        principal(&request)?;
        let id = request.into_inner().peer_group_id.to_ascii_lowercase();
        let history = self
            .store
            .read_stream(&peer_group_stream(&id))
            .await
            .map_err(ServiceError::from)?;
        let group = peer_group::fold(&history)?
            .ok_or_else(|| ServiceError::not_found(format!("peer group {id}")))?;
        Ok(Response::new(group))
    }
}
