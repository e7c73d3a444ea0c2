//! The workshops service's gRPC API: validation, authorisation, then a command on one workshop.

use chrono::NaiveDate;
use ics_eventstore::{EventStore, ExpectedVersion, NewEvent};
use ics_proto::events::v1::{
    CommandResult, FollowUpCheckpoint, MetricKind, MetricUnit, MetricValue, TargetMetric,
    WorkshopChartered, WorkshopKind,
};
use ics_proto::workshops::v1::{self as api, workshops_service_server::WorkshopsService};
use ics_service_kit::command::{self, Command};
use ics_service_kit::error::{ServiceError, Violations};
use ics_service_kit::validate::{self, MAX_LONG_TEXT_CHARS, MAX_TEXT_CHARS};
use ics_service_kit::{Principal, principal};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::workshop::{self, Workshop};
use crate::workshop_list::{self, workshop_view};

/// Most metrics one target sheet may hold.
const MAX_METRICS: usize = 20;
/// Longest metric id.
const MAX_METRIC_ID_CHARS: usize = 64;
/// Largest team a workshop may record.
const MAX_TEAM_SIZE: u32 = 100;

type Reply = Result<Response<CommandResult>, Status>;

#[derive(Debug, Clone)]
pub struct WorkshopsApi {
    store: EventStore,
    pool: PgPool,
    max_workshop_days: u32,
}

impl WorkshopsApi {
    pub fn new(store: EventStore, pool: PgPool, max_workshop_days: u32) -> Self {
        WorkshopsApi {
            store,
            pool,
            max_workshop_days,
        }
    }

    async fn workshop(&self, workshop_id: &str) -> Result<Workshop, ServiceError> {
        self.store
            .load(&workshop::stream_id(workshop_id), Workshop::folding())
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                resource: format!("workshop {workshop_id}"),
            })
    }

    /// Loads the workshop a command names and checks the caller may write for its trust.
    async fn authorize_workshop(
        &self,
        principal: &Principal,
        workshop_id: &str,
    ) -> Result<(), ServiceError> {
        let owner = self.workshop(workshop_id).await?.ods_code().to_string();
        Ok(principal.authorize_trust_write(&owner)?)
    }

    async fn execute<F>(
        &self,
        command: Command<'_>,
        workshop_id: &str,
        expected: Option<ExpectedVersion>,
        decide: F,
    ) -> Reply
    where
        F: Fn(&Option<Workshop>) -> Result<Vec<NewEvent>, ServiceError>,
    {
        let stream_id = workshop::stream_id(workshop_id);
        let fold = Workshop::folding();
        command::execute(&self.store, command, &stream_id, expected, fold, decide).await
    }
}

fn validate_metric(violations: &mut Violations, field: &str, metric: &TargetMetric) {
    if metric.metric_id.trim().is_empty() {
        violations.add(format!("{field}.metric_id"), "is required");
    } else if metric.metric_id.chars().count() > MAX_METRIC_ID_CHARS {
        violations.add(
            format!("{field}.metric_id"),
            format!("must be at most {MAX_METRIC_ID_CHARS} characters"),
        );
    }
    validate::name(violations, &format!("{field}.name"), &metric.name);
    let kind =
        validate::enum_value::<MetricKind>(violations, &format!("{field}.kind"), metric.kind);
    let unit =
        validate::enum_value::<MetricUnit>(violations, &format!("{field}.unit"), metric.unit);
    if let (Some(kind), Some(unit)) = (kind, unit)
        && !workshop::unit_fits(kind, unit)
    {
        violations.add(
            format!("{field}.unit"),
            format!(
                "{} does not measure {}: process time is in minutes, hours or days, an error \
                 count in counts, an error rate in percent",
                unit.as_str_name(),
                kind.as_str_name()
            ),
        );
    }
    let kind = kind.unwrap_or(MetricKind::Unspecified);
    workshop::check_measure(
        violations,
        &format!("{field}.baseline"),
        kind,
        metric.baseline,
    );
    workshop::check_measure(violations, &format!("{field}.target"), kind, metric.target);
    if metric.baseline.is_finite() && metric.baseline == 0.0 {
        violations.add(
            format!("{field}.baseline"),
            "must be above zero: a reduction is measured against it",
        );
    }
}

fn validate_values(violations: &mut Violations, field: &str, values: &[MetricValue]) {
    if values.is_empty() {
        violations.add(field, "needs one value per target-sheet metric");
    }
    if values.len() > MAX_METRICS {
        violations.add(field, format!("must hold at most {MAX_METRICS} values"));
    }
    for (index, value) in values.iter().enumerate().take(MAX_METRICS) {
        if !value.value.is_finite() {
            violations.add(format!("{field}[{index}].value"), "must be a finite number");
        }
    }
}

fn checkpoint(violations: &mut Violations, value: i32) -> Option<FollowUpCheckpoint> {
    validate::enum_value::<FollowUpCheckpoint>(violations, "checkpoint", value)
}

fn past_date(
    violations: &mut Violations,
    field: &str,
    value: Option<&ics_proto::events::v1::Date>,
) -> Option<NaiveDate> {
    let date = validate::required_date(violations, field, value);
    validate::not_in_future(violations, field, date);
    date
}

#[tonic::async_trait]
impl WorkshopsService for WorkshopsApi {
    async fn charter_workshop(&self, request: Request<api::CharterWorkshopRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        validate::uuid(&mut violations, "value_stream_id", &body.value_stream_id);
        let kind = match WorkshopKind::try_from(body.kind) {
            Ok(WorkshopKind::Unspecified) => WorkshopKind::Rpiw,
            Ok(kind) => kind,
            Err(_) => {
                violations.add("kind", "is not a known value");
                WorkshopKind::Rpiw
            }
        };
        validate::name(&mut violations, "title", &body.title);
        let roles = body.roles.clone().unwrap_or_default();
        for (field, value) in [
            ("roles.sponsor", &roles.sponsor),
            ("roles.process_owner", &roles.process_owner),
            ("roles.workshop_lead", &roles.workshop_lead),
            ("roles.team_lead", &roles.team_lead),
        ] {
            validate::text(&mut violations, field, value, false, MAX_TEXT_CHARS);
        }
        if roles.team_size > MAX_TEAM_SIZE {
            violations.add(
                "roles.team_size",
                format!("must be at most {MAX_TEAM_SIZE}"),
            );
        }
        past_date(
            &mut violations,
            "preparation_starts_on",
            body.preparation_starts_on.as_ref(),
        );
        if body.target_sheet.is_empty() {
            violations.add("target_sheet", "needs at least one metric");
        }
        if body.target_sheet.len() > MAX_METRICS {
            violations.add(
                "target_sheet",
                format!("must hold at most {MAX_METRICS} metrics"),
            );
        }
        for (index, metric) in body.target_sheet.iter().enumerate().take(MAX_METRICS) {
            validate_metric(&mut violations, &format!("target_sheet[{index}]"), metric);
            if body.target_sheet[..index]
                .iter()
                .any(|earlier| earlier.metric_id == metric.metric_id)
            {
                violations.add(
                    format!("target_sheet[{index}].metric_id"),
                    "is used by another metric of the sheet",
                );
            }
        }
        ServiceError::check(violations)?;
        principal.authorize_trust_write(&body.ods_code)?;
        ics_references::check_charter(&self.pool, &body.ods_code, &body.value_stream_id).await?;
        let workshop_id = Uuid::now_v7().to_string();
        let chartered = WorkshopChartered {
            workshop_id: workshop_id.clone(),
            ods_code: body.ods_code.clone(),
            value_stream_id: body.value_stream_id.clone(),
            kind: kind as i32,
            title: body.title.clone(),
            roles: Some(roles),
            preparation_starts_on: body.preparation_starts_on,
            target_sheet: body.target_sheet.clone(),
        };
        self.execute(
            Command::new(&principal, body.options.as_ref(), "CharterWorkshop", &body),
            &workshop_id,
            Some(ExpectedVersion::NoStream),
            |state| workshop::charter(state, &chartered),
        )
        .await
    }

    async fn schedule_workshop(&self, request: Request<api::ScheduleWorkshopRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "workshop_id", &body.workshop_id);
        let starts_on =
            validate::required_date(&mut violations, "starts_on", body.starts_on.as_ref());
        let ends_on = validate::required_date(&mut violations, "ends_on", body.ends_on.as_ref());
        validate::text(
            &mut violations,
            "duration_override_reason",
            &body.duration_override_reason,
            false,
            MAX_LONG_TEXT_CHARS,
        );
        ServiceError::check(violations)?;
        self.authorize_workshop(&principal, &body.workshop_id)
            .await?;
        let (starts_on, ends_on) = (starts_on.unwrap_or_default(), ends_on.unwrap_or_default());
        self.execute(
            Command::new(&principal, body.options.as_ref(), "ScheduleWorkshop", &body),
            &body.workshop_id,
            None,
            |state| {
                workshop::schedule(
                    state,
                    &body.workshop_id,
                    starts_on,
                    ends_on,
                    self.max_workshop_days,
                    &body.duration_override_reason,
                )
            },
        )
        .await
    }

    async fn record_workshop_held(
        &self,
        request: Request<api::RecordWorkshopHeldRequest>,
    ) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "workshop_id", &body.workshop_id);
        let held_from =
            validate::optional_date(&mut violations, "held_from", body.held_from.as_ref());
        let held_to = validate::optional_date(&mut violations, "held_to", body.held_to.as_ref());
        validate::not_in_future(&mut violations, "held_to", held_to);
        if held_from.is_some() != held_to.is_some() {
            violations.add("held_to", "give both held_from and held_to, or neither");
        }
        ServiceError::check(violations)?;
        self.authorize_workshop(&principal, &body.workshop_id)
            .await?;
        let held = held_from.zip(held_to);
        self.execute(
            Command::new(
                &principal,
                body.options.as_ref(),
                "RecordWorkshopHeld",
                &body,
            ),
            &body.workshop_id,
            None,
            |state| workshop::record_held(state, &body.workshop_id, held, self.max_workshop_days),
        )
        .await
    }

    async fn deliver_report_out(&self, request: Request<api::DeliverReportOutRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "workshop_id", &body.workshop_id);
        let delivered_on = past_date(&mut violations, "delivered_on", body.delivered_on.as_ref());
        validate_values(&mut violations, "after", &body.after);
        ServiceError::check(violations)?;
        self.authorize_workshop(&principal, &body.workshop_id)
            .await?;
        let delivered_on = delivered_on.unwrap_or_default();
        self.execute(
            Command::new(&principal, body.options.as_ref(), "DeliverReportOut", &body),
            &body.workshop_id,
            None,
            |state| {
                workshop::deliver_report_out(state, &body.workshop_id, delivered_on, &body.after)
            },
        )
        .await
    }

    async fn record_follow_up(&self, request: Request<api::RecordFollowUpRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "workshop_id", &body.workshop_id);
        let checkpoint = checkpoint(&mut violations, body.checkpoint);
        let measured_on = past_date(&mut violations, "measured_on", body.measured_on.as_ref());
        validate_values(&mut violations, "values", &body.values);
        ServiceError::check(violations)?;
        self.authorize_workshop(&principal, &body.workshop_id)
            .await?;
        let checkpoint = checkpoint.unwrap_or(FollowUpCheckpoint::Unspecified);
        let measured_on = measured_on.unwrap_or_default();
        self.execute(
            Command::new(&principal, body.options.as_ref(), "RecordFollowUp", &body),
            &body.workshop_id,
            None,
            |state| {
                workshop::record_follow_up(
                    state,
                    &body.workshop_id,
                    checkpoint,
                    measured_on,
                    &body.values,
                )
            },
        )
        .await
    }

    async fn cancel_workshop(&self, request: Request<api::CancelWorkshopRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "workshop_id", &body.workshop_id);
        let cancelled_on = past_date(&mut violations, "cancelled_on", body.cancelled_on.as_ref());
        validate::text(
            &mut violations,
            "reason",
            &body.reason,
            true,
            MAX_LONG_TEXT_CHARS,
        );
        ServiceError::check(violations)?;
        self.authorize_workshop(&principal, &body.workshop_id)
            .await?;
        let cancelled_on = cancelled_on.unwrap_or_default();
        self.execute(
            Command::new(&principal, body.options.as_ref(), "CancelWorkshop", &body),
            &body.workshop_id,
            None,
            |state| workshop::cancel(state, &body.workshop_id, cancelled_on, &body.reason),
        )
        .await
    }

    async fn close_workshop(&self, request: Request<api::CloseWorkshopRequest>) -> Reply {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::options(&mut violations, body.options.as_ref());
        validate::uuid(&mut violations, "workshop_id", &body.workshop_id);
        let closed_on = past_date(&mut violations, "closed_on", body.closed_on.as_ref());
        ServiceError::check(violations)?;
        self.authorize_workshop(&principal, &body.workshop_id)
            .await?;
        let closed_on = closed_on.unwrap_or_default();
        self.execute(
            Command::new(&principal, body.options.as_ref(), "CloseWorkshop", &body),
            &body.workshop_id,
            None,
            |state| workshop::close(state, &body.workshop_id, closed_on),
        )
        .await
    }

    async fn get_workshop(
        &self,
        request: Request<api::GetWorkshopRequest>,
    ) -> Result<Response<api::Workshop>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::uuid(&mut violations, "workshop_id", &body.workshop_id);
        ServiceError::check(violations)?;
        let workshop = self.workshop(&body.workshop_id).await?;
        principal.authorize_trust_read(workshop.ods_code())?;
        Ok(Response::new(workshop_view(&workshop)))
    }

    async fn list_workshops(
        &self,
        request: Request<api::ListWorkshopsRequest>,
    ) -> Result<Response<api::ListWorkshopsResponse>, Status> {
        let principal = principal(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        validate::ods_code(&mut violations, "ods_code", &body.ods_code);
        ServiceError::check(violations)?;
        principal.authorize_trust_read(&body.ods_code)?;
        // A token is bound to the caller and the trust it lists.
        let query = format!("{}|trust:{}", principal.label(), body.ods_code);
        let page = workshop_list::page(
            &self.pool,
            &body.ods_code,
            &query,
            body.page_size,
            &body.page_token,
        )
        .await?;
        Ok(Response::new(page))
    }
}
