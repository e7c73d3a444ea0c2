//! The trusts service's gRPC API: validation, authorisation, then a command on one aggregate.

use ics_eventstore::{EventStore, ExpectedVersion, Fold, NewEvent};
use ics_proto::date::from_naive;
use ics_proto::events::v1::{
    BoardMeetingHeld, BoardMemberAdded, CommandResult, CompactAdopted, CqcRatings, ExecutiveRole,
    OrganisationKind, ProgrammeRegistered, TrainingParticipationRecorded, ValueStreamDefinition,
    ValueStreamOrigin, ValueStreamStatus,
};
use ics_proto::trusts::v1::{self as api, trusts_service_server::TrustsService};
use ics_service_kit::error::{ServiceError, Violations};
use ics_service_kit::{Principal, principal};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use chrono::NaiveDate;
use std::collections::HashSet;

use crate::organisation::{self, Organisation};
use crate::organisation_list::{self, OrganisationScope, organisation_view};
use crate::programme::{self, Programme};
use crate::training::{self, Cohort, CohortDetails};
use crate::value_stream::{self, ValueStream};
use ics_service_kit::command::{self, Command};
use ics_service_kit::validate::{self, MAX_LONG_TEXT_CHARS, MAX_TEXT_CHARS};

/// Most outcome measures, behaviours, signatories… one list may hold.
const MAX_LIST_ITEMS: usize = 100;

#[derive(Debug, Clone)]
pub struct TrustsApi {
    store: EventStore,
    /// The service's schema, where the organisation list's read model lives.
    pool: PgPool,
}

type Reply = Result<Response<CommandResult>, Status>;

impl TrustsApi {
    pub fn new(store: EventStore, pool: PgPool) -> Self {
        TrustsApi { store, pool }
    }

    async fn execute<S, F>(
        &self,
        command: Command<'_>,
        stream_id: &str,
        expected: Option<ExpectedVersion>,
        fold: Fold<S, ServiceError>,
        decide: F,
    ) -> Reply
    where
        S: Clone + Send + 'static,
        F: Fn(&S) -> Result<Vec<NewEvent>, ServiceError>,
    {
        command::execute(&self.store, command, stream_id, expected, fold, decide).await
    }

    async fn organisation(&self, ods_code: &str) -> Result<Option<Organisation>, ServiceError> {
        self.store
            .load(&organisation::stream_id(ods_code), Organisation::folding())
            .await
    }

    async fn existing_organisation(
        &self,
        field: &str,
        ods_code: &str,
    ) -> Result<Organisation, ServiceError> {
        self.organisation(ods_code)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                resource: format!("organisation {ods_code} (named by {field})"),
            })
    }

    /// A write for `ods_code` on another stream than its own: the caller may write for it and,
    /// when a trust writer, its token names a trust (a `trust_writer` token naming an ICB or
    /// region writes nothing).
    async fn authorize_trust_writer(
        &self,
        principal: &Principal,
        ods_code: &str,
    ) -> Result<(), ServiceError> {
        principal.authorize_trust_write(ods_code)?;
        if let Principal::TrustWriter { .. } = principal {
            let kind = self
                .organisation(ods_code)
                .await?
                .map(|organisation| organisation.kind);
            refuse_trust_writer_of_non_trust(principal, ods_code, kind)?;
        }
        Ok(())
    }

    /// A command on `ods_code`'s own stream, for a caller who may write for it: whether a
    /// trust writer's token names a trust is decided within the command, on the state it
    /// reads anyway (cached between commands), rather than by reading the whole stream once
    /// more before it.
    async fn execute_on_organisation<F>(
        &self,
        principal: &Principal,
        command: Command<'_>,
        ods_code: &str,
        decide: F,
    ) -> Reply
    where
        F: Fn(&Option<Organisation>) -> Result<Vec<NewEvent>, ServiceError>,
    {
        principal.authorize_trust_write(ods_code)?;
        self.execute(
            command,
            &organisation::stream_id(ods_code),
            None,
            Organisation::folding(),
            |state| {
                if let Principal::TrustWriter { .. } = principal {
                    let kind = state.as_ref().map(|organisation| organisation.kind);
                    refuse_trust_writer_of_non_trust(principal, ods_code, kind)?;
                }
                decide(state)
            },
        )
        .await
    }

    async fn existing_trust(
        &self,
        field: &str,
        ods_code: &str,
    ) -> Result<Organisation, ServiceError> {
        let organisation = self.existing_organisation(field, ods_code).await?;
        if !organisation.is_trust() {
            return Err(ServiceError::invalid_field(
                field,
                format!("{ods_code} is not a trust"),
            ));
        }
        Ok(organisation)
    }

    async fn value_stream(&self, value_stream_id: &str) -> Result<ValueStream, ServiceError> {
        self.store
            .load(
                &value_stream::stream_id(value_stream_id),
                ValueStream::folding(),
            )
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                resource: format!("value stream {value_stream_id}"),
            })
    }

    /// Which organisations `principal` may see, with membership taken on `as_of`.
    async fn organisation_scope(
        &self,
        principal: &Principal,
        as_of: NaiveDate,
    ) -> Result<OrganisationScope, ServiceError> {
        Ok(match principal {
            Principal::Operator | Principal::Development => OrganisationScope::All,
            Principal::TrustWriter { ods_code } => OrganisationScope::Trust(ods_code.clone()),
            Principal::BoardReader {
                ics_ods_code,
                programme_id,
            } => {
                let mut programme_trusts = HashSet::new();
                if let Some(programme_id) = programme_id {
                    let programme = self
                        .store
                        .load(&programme::stream_id(programme_id), Programme::folding())
                        .await?;
                    if let Some(programme) = programme {
                        programme_trusts.extend(
                            programme
                                .trusts
                                .iter()
                                .filter(|joined| {
                                    joined
                                        .joined_on
                                        .as_ref()
                                        .and_then(ics_proto::date::to_naive)
                                        .is_some_and(|joined_on| joined_on <= as_of)
                                })
                                .map(|joined| joined.ods_code.clone()),
                        );
                    }
                }
                OrganisationScope::Board {
                    ics_ods_code: ics_ods_code.clone(),
                    programme_trusts,
                    as_of,
                }
            }
        })
    }

    async fn programme(&self, programme_id: &str) -> Result<Programme, ServiceError> {
        self.store
            .load(&programme::stream_id(programme_id), Programme::folding())
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                resource: format!("programme {programme_id}"),
            })
    }
}

fn validate_definition(violations: &mut Violations, definition: Option<&ValueStreamDefinition>) {
    let Some(definition) = definition else {
        violations.add("definition", "is required");
        return;
    };
    validate::name(violations, "definition.name", &definition.name);
    validate::text(
        violations,
        "definition.pathway",
        &definition.pathway,
        false,
        MAX_TEXT_CHARS,
    );
    validate::text(
        violations,
        "definition.sponsor",
        &definition.sponsor,
        false,
        MAX_TEXT_CHARS,
    );
    validate::text(
        violations,
        "definition.lead",
        &definition.lead,
        false,
        MAX_TEXT_CHARS,
    );
    validate::enum_value::<ValueStreamOrigin>(violations, "definition.origin", definition.origin);
    validate_list(
        violations,
        "definition.outcome_measures",
        &definition.outcome_measures,
    );
}

fn validate_list(violations: &mut Violations, field: &str, items: &[String]) {
    if items.len() > MAX_LIST_ITEMS {
        violations.add(field, format!("must hold at most {MAX_LIST_ITEMS} items"));
    }
    for (index, item) in items.iter().enumerate().take(MAX_LIST_ITEMS) {
        validate::text(
            violations,
            &format!("{field}[{index}]"),
            item,
            true,
            MAX_LONG_TEXT_CHARS,
        );
    }
}

fn validate_ratings(violations: &mut Violations, ratings: Option<&CqcRatings>) {
    let Some(ratings) = ratings else {
        violations.add("ratings", "is required");
        return;
    };
    for (field, value) in [
        ("ratings.overall", ratings.overall),
        ("ratings.safe", ratings.safe),
        ("ratings.effective", ratings.effective),
        ("ratings.caring", ratings.caring),
        ("ratings.responsive", ratings.responsive),
        ("ratings.well_led", ratings.well_led),
    ] {
        validate::enum_value::<ics_proto::events::v1::CqcRating>(violations, field, value);
    }
}

#[tonic::async_trait]
impl TrustsService for TrustsApi {
    async fn register_organisation(
        &self,
        request: Request<api::RegisterOrganisationRequest>,
    ) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        validate::name(&mut violations, "name", &body.name);
        let kind = validate::enum_value::<OrganisationKind>(&mut violations, "kind", body.kind);
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        let kind = kind.unwrap_or(OrganisationKind::Unspecified);
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "RegisterOrganisation",
                &body,
            ),
            &organisation::stream_id(&body.ods_code),
            None,
            Organisation::folding(),
            |state| organisation::register(state, &body.ods_code, &body.name, kind),
        )
        .await
    }

    async fn rename_organisation(&self, request: Request<api::RenameOrganisationRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        validate::name(&mut violations, "name", &body.name);
        ServiceError::check(violations)?;
        self.execute_on_organisation(
            &principal,
            Command::new(
                &principal,
                body.options.as_ref(),
                "RenameOrganisation",
                &body,
            ),
            &body.ods_code,
            |state| organisation::rename(state, &body.ods_code, &body.name),
        )
        .await
    }

    async fn link_organisation(&self, request: Request<api::LinkOrganisationRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        validate::ods_code(&mut violations, "parent_ods_code", &body.parent_ods_code);
        if body.ods_code == body.parent_ods_code && !body.ods_code.is_empty() {
            violations.add("parent_ods_code", "must differ from ods_code");
        }
        let valid_from =
            validate::required_date(&mut violations, "valid_from", body.valid_from.as_ref());
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        let parent = self
            .existing_organisation("parent_ods_code", &body.parent_ods_code)
            .await?;
        let valid_from = valid_from.unwrap_or_default();
        self.execute(
            Command::new(&principal, body.options.as_ref(), "LinkOrganisation", &body),
            &organisation::stream_id(&body.ods_code),
            None,
            Organisation::folding(),
            |state| organisation::link(state, &body.ods_code, &parent, valid_from),
        )
        .await
    }

    async fn unlink_organisation(&self, request: Request<api::UnlinkOrganisationRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        validate::ods_code(&mut violations, "parent_ods_code", &body.parent_ods_code);
        let valid_to = validate::required_date(&mut violations, "valid_to", body.valid_to.as_ref());
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        let valid_to = valid_to.unwrap_or_default();
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "UnlinkOrganisation",
                &body,
            ),
            &organisation::stream_id(&body.ods_code),
            None,
            Organisation::folding(),
            |state| organisation::unlink(state, &body.ods_code, &body.parent_ods_code, valid_to),
        )
        .await
    }

    async fn get_organisation(
        &self,
        request: Request<api::GetOrganisationRequest>,
    ) -> Result<Response<api::Organisation>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        let as_of = validate::optional_date(&mut violations, "as_of", body.as_of.as_ref());
        ServiceError::check(violations)?;
        // A trust writer naming another trust is refused as a write would be; a board asking
        // about an organisation outside its scope learns nothing of it.
        if let Principal::TrustWriter { .. } = caller {
            caller.authorize_trust_read(&body.ods_code)?;
        }
        let scope = self
            .organisation_scope(&caller, as_of.unwrap_or_else(today))
            .await?;
        let not_found = || ServiceError::NotFound {
            resource: format!("organisation {}", body.ods_code),
        };
        let organisation = self
            .organisation(&body.ods_code)
            .await?
            .ok_or_else(not_found)?;
        if !scope.shows(&organisation) {
            return Err(not_found().into());
        }
        Ok(Response::new(organisation_view(&organisation)))
    }

    async fn list_organisations(
        &self,
        request: Request<api::ListOrganisationsRequest>,
    ) -> Result<Response<api::ListOrganisationsResponse>, Status> {
        let caller = principal(&request)?;
        let body = request.into_inner();
        let kind_filter = match body.kind {
            0 => None,
            value => Some(
                OrganisationKind::try_from(value)
                    .map_err(|_| ServiceError::invalid_field("kind", "is not a known value"))?,
            ),
        };
        let mut violations = Violations::default();
        let as_of = validate::optional_date(&mut violations, "as_of", body.as_of.as_ref());
        ServiceError::check(violations)?;
        let scope = self
            .organisation_scope(&caller, as_of.unwrap_or_else(today))
            .await?;
        // A token is bound to the caller's scope (its principal) and to the filters as asked:
        // without `as_of`, the list of today whichever day the next page is read.
        let query = format!(
            "{}|kind:{}|as_of:{}",
            caller.label(),
            body.kind,
            as_of.map(|as_of| as_of.to_string()).unwrap_or_default()
        );
        let page = organisation_list::page(
            &self.pool,
            &scope,
            kind_filter,
            &query,
            body.page_size,
            &body.page_token,
        )
        .await?;
        Ok(Response::new(page))
    }

    async fn publish_cqc_rating(&self, request: Request<api::PublishCqcRatingRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        let published_on =
            validate::required_date(&mut violations, "published_on", body.published_on.as_ref());
        validate::not_in_future(&mut violations, "published_on", published_on);
        validate_ratings(&mut violations, body.ratings.as_ref());
        ServiceError::check(violations)?;
        let published_on = published_on.unwrap_or_default();
        let ratings = body.ratings.unwrap_or_default();
        self.execute_on_organisation(
            &principal,
            Command::new(&principal, body.options.as_ref(), "PublishCqcRating", &body),
            &body.ods_code,
            |state| organisation::publish_cqc_rating(state, &body.ods_code, published_on, &ratings),
        )
        .await
    }

    async fn appoint_executive(&self, request: Request<api::AppointExecutiveRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        let role = validate::enum_value::<ExecutiveRole>(&mut violations, "role", body.role);
        validate::name(&mut violations, "person_name", &body.person_name);
        let started_on =
            validate::required_date(&mut violations, "started_on", body.started_on.as_ref());
        ServiceError::check(violations)?;
        let role = role.unwrap_or(ExecutiveRole::Unspecified);
        let started_on = started_on.unwrap_or_default();
        let appointment_id = Uuid::now_v7().to_string();
        self.execute_on_organisation(
            &principal,
            Command::new(&principal, body.options.as_ref(), "AppointExecutive", &body),
            &body.ods_code,
            |state| {
                organisation::appoint_executive(
                    state,
                    &body.ods_code,
                    &appointment_id,
                    role,
                    &body.person_name,
                    started_on,
                )
            },
        )
        .await
    }

    async fn record_executive_departure(
        &self,
        request: Request<api::RecordExecutiveDepartureRequest>,
    ) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        validate::uuid(&mut violations, "appointment_id", &body.appointment_id);
        let left_on = validate::required_date(&mut violations, "left_on", body.left_on.as_ref());
        validate::not_in_future(&mut violations, "left_on", left_on);
        validate::text(
            &mut violations,
            "reason",
            &body.reason,
            false,
            MAX_LONG_TEXT_CHARS,
        );
        ServiceError::check(violations)?;
        let left_on = left_on.unwrap_or_default();
        self.execute_on_organisation(
            &principal,
            Command::new(
                &principal,
                body.options.as_ref(),
                "RecordExecutiveDeparture",
                &body,
            ),
            &body.ods_code,
            |state| {
                organisation::record_departure(
                    state,
                    &body.ods_code,
                    &body.appointment_id,
                    left_on,
                    &body.reason,
                )
            },
        )
        .await
    }

    async fn define_value_stream(&self, request: Request<api::DefineValueStreamRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        validate_definition(&mut violations, body.definition.as_ref());
        let status = match ValueStreamStatus::try_from(body.status) {
            Ok(ValueStreamStatus::Unspecified) => Some(ValueStreamStatus::Proposed),
            Ok(status @ (ValueStreamStatus::Proposed | ValueStreamStatus::Active)) => Some(status),
            Ok(_) => {
                violations.add("status", "a new value stream is proposed or active");
                None
            }
            Err(_) => {
                violations.add("status", "is not a known value");
                None
            }
        };
        ServiceError::check(violations)?;
        self.authorize_trust_writer(&principal, &body.ods_code)
            .await?;
        self.existing_trust("ods_code", &body.ods_code).await?;
        let definition = body.definition.clone().unwrap_or_default();
        let status = status.unwrap_or(ValueStreamStatus::Proposed);
        let value_stream_id = Uuid::now_v7().to_string();
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "DefineValueStream",
                &body,
            ),
            &value_stream::stream_id(&value_stream_id),
            Some(ExpectedVersion::NoStream),
            ValueStream::folding(),
            |state| {
                value_stream::define(state, &value_stream_id, &body.ods_code, &definition, status)
            },
        )
        .await
    }

    async fn revise_value_stream(&self, request: Request<api::ReviseValueStreamRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "value_stream_id", &body.value_stream_id);
        validate_definition(&mut violations, body.definition.as_ref());
        validate::text(
            &mut violations,
            "rationale",
            &body.rationale,
            true,
            MAX_LONG_TEXT_CHARS,
        );
        ServiceError::check(violations)?;
        let owner = self.value_stream(&body.value_stream_id).await?.ods_code;
        principal.authorize_trust_write(&owner)?;
        let definition = body.definition.clone().unwrap_or_default();
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "ReviseValueStream",
                &body,
            ),
            &value_stream::stream_id(&body.value_stream_id),
            None,
            ValueStream::folding(),
            |state| {
                value_stream::revise(state, &body.value_stream_id, &definition, &body.rationale)
            },
        )
        .await
    }

    async fn change_value_stream_status(
        &self,
        request: Request<api::ChangeValueStreamStatusRequest>,
    ) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "value_stream_id", &body.value_stream_id);
        let status =
            validate::enum_value::<ValueStreamStatus>(&mut violations, "status", body.status);
        if status == Some(ValueStreamStatus::Closed) {
            violations.add("status", "use CloseValueStream to close a value stream");
        }
        ServiceError::check(violations)?;
        let owner = self.value_stream(&body.value_stream_id).await?.ods_code;
        principal.authorize_trust_write(&owner)?;
        let status = status.unwrap_or(ValueStreamStatus::Unspecified);
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "ChangeValueStreamStatus",
                &body,
            ),
            &value_stream::stream_id(&body.value_stream_id),
            None,
            ValueStream::folding(),
            |state| value_stream::change_status(state, &body.value_stream_id, status),
        )
        .await
    }

    async fn close_value_stream(&self, request: Request<api::CloseValueStreamRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "value_stream_id", &body.value_stream_id);
        let closed_on =
            validate::required_date(&mut violations, "closed_on", body.closed_on.as_ref());
        validate::not_in_future(&mut violations, "closed_on", closed_on);
        validate::text(
            &mut violations,
            "reason",
            &body.reason,
            false,
            MAX_LONG_TEXT_CHARS,
        );
        ServiceError::check(violations)?;
        let owner = self.value_stream(&body.value_stream_id).await?.ods_code;
        principal.authorize_trust_write(&owner)?;
        let closed_on = closed_on.unwrap_or_default();
        self.execute(
            Command::new(&principal, body.options.as_ref(), "CloseValueStream", &body),
            &value_stream::stream_id(&body.value_stream_id),
            None,
            ValueStream::folding(),
            |state| value_stream::close(state, &body.value_stream_id, closed_on, &body.reason),
        )
        .await
    }

    async fn get_value_stream(
        &self,
        request: Request<api::GetValueStreamRequest>,
    ) -> Result<Response<api::ValueStream>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::uuid(&mut violations, "value_stream_id", &body.value_stream_id);
        ServiceError::check(violations)?;
        let value_stream = self.value_stream(&body.value_stream_id).await?;
        principal.authorize_trust_read(&value_stream.ods_code)?;
        Ok(Response::new(api::ValueStream {
            value_stream_id: value_stream.value_stream_id.clone(),
            ods_code: value_stream.ods_code.clone(),
            status: value_stream.status as i32,
            revisions: value_stream
                .revisions
                .iter()
                .map(|revision| api::ValueStreamRevision {
                    revision: revision.revision,
                    definition: Some(revision.definition.clone()),
                    rationale: revision.rationale.clone(),
                })
                .collect(),
            closed_on: value_stream.closed_on.map(from_naive),
            version: value_stream.version,
        }))
    }

    async fn register_training_cohort(
        &self,
        request: Request<api::RegisterTrainingCohortRequest>,
    ) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        if !body.programme_id.is_empty() {
            validate::uuid(&mut violations, "programme_id", &body.programme_id);
        }
        validate::name(&mut violations, "course", &body.course);
        validate::name(&mut violations, "name", &body.name);
        let starts_on =
            validate::required_date(&mut violations, "starts_on", body.starts_on.as_ref());
        let ends_on = validate::required_date(&mut violations, "ends_on", body.ends_on.as_ref());
        validate::ordered(&mut violations, "ends_on", starts_on, ends_on, "starts_on");
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        if !body.programme_id.is_empty() {
            self.programme(&body.programme_id).await?;
        }
        let cohort_id = Uuid::now_v7().to_string();
        let details = CohortDetails {
            programme_id: &body.programme_id,
            course: &body.course,
            name: &body.name,
            starts_on: starts_on.unwrap_or_default(),
            ends_on: ends_on.unwrap_or_default(),
        };
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "RegisterTrainingCohort",
                &body,
            ),
            &training::stream_id(&cohort_id),
            Some(ExpectedVersion::NoStream),
            Cohort::folding(),
            |state| training::register(state, &cohort_id, &details),
        )
        .await
    }

    async fn record_training_participation(
        &self,
        request: Request<api::RecordTrainingParticipationRequest>,
    ) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "cohort_id", &body.cohort_id);
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        if body.completed > body.participants {
            violations.add("completed", "must not exceed participants");
        }
        if body.survey_respondents > body.participants {
            violations.add("survey_respondents", "must not exceed participants");
        }
        if body.valued > body.survey_respondents {
            violations.add("valued", "must not exceed survey_respondents");
        }
        ServiceError::check(violations)?;
        self.authorize_trust_writer(&principal, &body.ods_code)
            .await?;
        self.existing_trust("ods_code", &body.ods_code).await?;
        let participation = TrainingParticipationRecorded {
            cohort_id: body.cohort_id.clone(),
            ods_code: body.ods_code.clone(),
            participants: body.participants,
            completed: body.completed,
            survey_respondents: body.survey_respondents,
            valued: body.valued,
        };
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "RecordTrainingParticipation",
                &body,
            ),
            &training::stream_id(&body.cohort_id),
            None,
            Cohort::folding(),
            |state| training::record_participation(state, &participation),
        )
        .await
    }

    async fn register_programme(&self, request: Request<api::RegisterProgrammeRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::name(&mut violations, "name", &body.name);
        validate::text(
            &mut violations,
            "description",
            &body.description,
            false,
            MAX_LONG_TEXT_CHARS,
        );
        let starts_on =
            validate::required_date(&mut violations, "starts_on", body.starts_on.as_ref());
        let ends_on = validate::optional_date(&mut violations, "ends_on", body.ends_on.as_ref());
        validate::ordered(&mut violations, "ends_on", starts_on, ends_on, "starts_on");
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        let programme_id = Uuid::now_v7().to_string();
        let registered = ProgrammeRegistered {
            programme_id: programme_id.clone(),
            name: body.name.clone(),
            description: body.description.clone(),
            starts_on: body.starts_on,
            ends_on: body.ends_on,
        };
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "RegisterProgramme",
                &body,
            ),
            &programme::stream_id(&programme_id),
            Some(ExpectedVersion::NoStream),
            Programme::folding(),
            |state| programme::register(state, &registered),
        )
        .await
    }

    async fn join_programme(&self, request: Request<api::JoinProgrammeRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "programme_id", &body.programme_id);
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        let joined_on =
            validate::required_date(&mut violations, "joined_on", body.joined_on.as_ref());
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        self.existing_trust("ods_code", &body.ods_code).await?;
        let joined_on = joined_on.unwrap_or_default();
        self.execute(
            Command::new(&principal, body.options.as_ref(), "JoinProgramme", &body),
            &programme::stream_id(&body.programme_id),
            None,
            Programme::folding(),
            |state| programme::join(state, &body.programme_id, &body.ods_code, joined_on),
        )
        .await
    }

    async fn add_board_member(&self, request: Request<api::AddBoardMemberRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "programme_id", &body.programme_id);
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        validate::name(&mut violations, "person_name", &body.person_name);
        validate::enum_value::<ics_proto::events::v1::BoardRole>(
            &mut violations,
            "role",
            body.role,
        );
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        self.existing_organisation("ods_code", &body.ods_code)
            .await?;
        let member = BoardMemberAdded {
            programme_id: body.programme_id.clone(),
            member_id: Uuid::now_v7().to_string(),
            ods_code: body.ods_code.clone(),
            person_name: body.person_name.clone(),
            role: body.role,
        };
        self.execute(
            Command::new(&principal, body.options.as_ref(), "AddBoardMember", &body),
            &programme::stream_id(&body.programme_id),
            None,
            Programme::folding(),
            |state| programme::add_board_member(state, &member),
        )
        .await
    }

    async fn adopt_compact(&self, request: Request<api::AdoptCompactRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "programme_id", &body.programme_id);
        validate::text(
            &mut violations,
            "vision",
            &body.vision,
            true,
            MAX_LONG_TEXT_CHARS,
        );
        validate_list(&mut violations, "behaviours", &body.behaviours);
        validate_list(&mut violations, "responsibilities", &body.responsibilities);
        validate_list(&mut violations, "signatories", &body.signatories);
        if body.signatories.is_empty() {
            violations.add("signatories", "a compact needs at least one signatory");
        }
        validate::required_date(&mut violations, "adopted_on", body.adopted_on.as_ref());
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        let compact = CompactAdopted {
            programme_id: body.programme_id.clone(),
            version: 0,
            vision: body.vision.clone(),
            behaviours: body.behaviours.clone(),
            responsibilities: body.responsibilities.clone(),
            signatories: body.signatories.clone(),
            adopted_on: body.adopted_on,
        };
        self.execute(
            Command::new(&principal, body.options.as_ref(), "AdoptCompact", &body),
            &programme::stream_id(&body.programme_id),
            None,
            Programme::folding(),
            |state| programme::adopt_compact(state, &compact),
        )
        .await
    }

    async fn record_board_meeting(
        &self,
        request: Request<api::RecordBoardMeetingRequest>,
    ) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "programme_id", &body.programme_id);
        let held_on = validate::required_date(&mut violations, "held_on", body.held_on.as_ref());
        validate::not_in_future(&mut violations, "held_on", held_on);
        validate::text(
            &mut violations,
            "notes",
            &body.notes,
            false,
            MAX_LONG_TEXT_CHARS,
        );
        if body.attending_member_ids.len() > MAX_LIST_ITEMS {
            violations.add(
                "attending_member_ids",
                format!("must hold at most {MAX_LIST_ITEMS} items"),
            );
        }
        ServiceError::check(violations)?;
        principal.authorize_operator()?;
        let meeting = BoardMeetingHeld {
            programme_id: body.programme_id.clone(),
            meeting_id: Uuid::now_v7().to_string(),
            held_on: body.held_on,
            attending_member_ids: body.attending_member_ids.clone(),
            compact_version_reviewed: body.compact_version_reviewed,
            notes: body.notes.clone(),
        };
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "RecordBoardMeeting",
                &body,
            ),
            &programme::stream_id(&body.programme_id),
            None,
            Programme::folding(),
            |state| programme::record_meeting(state, &meeting),
        )
        .await
    }

    async fn get_programme(
        &self,
        request: Request<api::GetProgrammeRequest>,
    ) -> Result<Response<api::Programme>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::uuid(&mut violations, "programme_id", &body.programme_id);
        ServiceError::check(violations)?;
        let programme = self.programme(&body.programme_id).await?;
        let member_trust = matches!(&principal, Principal::TrustWriter { ods_code }
            if programme.trusts.iter().any(|trust| &trust.ods_code == ods_code));
        if !member_trust {
            principal.authorize_programme_read(&body.programme_id)?;
        }
        Ok(Response::new(programme_view(&programme)))
    }
}

fn programme_view(programme: &Programme) -> api::Programme {
    let registered = &programme.registered;
    api::Programme {
        programme_id: registered.programme_id.clone(),
        name: registered.name.clone(),
        description: registered.description.clone(),
        starts_on: registered.starts_on,
        ends_on: registered.ends_on,
        trusts: programme
            .trusts
            .iter()
            .map(|trust| api::ProgrammeTrust {
                ods_code: trust.ods_code.clone(),
                joined_on: trust.joined_on,
            })
            .collect(),
        board_members: programme
            .members
            .iter()
            .map(|member| api::BoardMember {
                member_id: member.member_id.clone(),
                ods_code: member.ods_code.clone(),
                person_name: member.person_name.clone(),
                role: member.role,
            })
            .collect(),
        compacts: programme
            .compacts
            .iter()
            .map(|compact| api::Compact {
                version: compact.version,
                vision: compact.vision.clone(),
                behaviours: compact.behaviours.clone(),
                responsibilities: compact.responsibilities.clone(),
                signatories: compact.signatories.clone(),
                adopted_on: compact.adopted_on,
            })
            .collect(),
        meetings: programme
            .meetings
            .iter()
            .map(|meeting| api::BoardMeeting {
                meeting_id: meeting.meeting_id.clone(),
                held_on: meeting.held_on,
                attending_member_ids: meeting.attending_member_ids.clone(),
                compact_version_reviewed: meeting.compact_version_reviewed,
                notes: meeting.notes.clone(),
            })
            .collect(),
        version: programme.version,
    }
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A `trust_writer` token naming an organisation registered as something other than a trust
/// (an ICB or a region) writes nothing for it.
fn refuse_trust_writer_of_non_trust(
    principal: &Principal,
    ods_code: &str,
    kind: Option<OrganisationKind>,
) -> Result<(), ServiceError> {
    match kind {
        Some(kind) if !organisation::is_trust_kind(kind) => {
            tracing::info!(principal = %principal.label(), ods_code, "trust writer token naming a non-trust refused");
            Err(ServiceError::PermissionDenied(format!(
                "{ods_code} is not a trust: trust writer tokens must name a trust"
            )))
        }
        _ => Ok(()),
    }
}
