//! HL7 FHIR R4 from the measures projection: measure definitions as `Measure`s and a trust's
//! figures as `MeasureReport`s, each answer a searchset `Bundle` (the mapping itself is
//! `ics-fhir`'s). Served by the gRPC API (`GetFhirMeasures`, `GetFhirMeasureReports`) and on
//! the HTTP surface:
//!
//! - `GET /fhir/Measure`
//! - `GET /fhir/MeasureReport?subject=<ODS>&period=<start>/<end>[&measure=<code>][&aggregate=true]`
//!
//! Both take the bearer token (or the dashboard's session) and answer `application/fhir+json`;
//! a refusal is an `OperationOutcome` with the HTTP status of its kind. A board reads the
//! trusts of its own ICS (or programme); a trust's systems read their own trust.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use ics_proto::events::v1::{Date, MeasureDefinition, SeriesRecord};
use ics_proto::reporting::v1::{FhirResource, Scope, scope};
use ics_service_kit::Principal;
use ics_service_kit::error::{ServiceError, Violations};
use ics_service_kit::validate;
use prost::Message as _;
use serde_json::{Value, json};
use sqlx::{PgPool, Row as _};

use crate::dashboard::{Dashboard, Refused, with_retry_after};
use crate::views::scope_trusts;

/// The media type of every answer (R4 is FHIR 4.0).
pub const CONTENT_TYPE: &str = "application/fhir+json; fhirVersion=4.0";

/// What a MeasureReport search asks for, checked.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    pub ods_code: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub measure_code: Option<String>,
    pub aggregate: bool,
}

impl ReportQuery {
    /// Checks the fields, naming each one that is wrong.
    pub fn check(
        ods_code: &str,
        period_start: Option<&Date>,
        period_end: Option<&Date>,
        measure_code: &str,
        aggregate: bool,
    ) -> Result<ReportQuery, ServiceError> {
        let mut violations = Violations::default();
        validate::ods_code(&mut violations, "ods_code", ods_code);
        let start = validate::required_date(&mut violations, "period_start", period_start);
        let end = validate::required_date(&mut violations, "period_end", period_end);
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            violations.add("period_end", "must not be before period_start");
        }
        if !measure_code.is_empty() && !ics_measures::is_measure_code(measure_code) {
            violations.add("measure_code", "is not a measure code");
        }
        ServiceError::check(violations)?;
        let (Some(period_start), Some(period_end)) = (start, end) else {
            return Err(ServiceError::invalid_field("period_start", "is required"));
        };
        Ok(ReportQuery {
            ods_code: ods_code.to_owned(),
            period_start,
            period_end,
            measure_code: (!measure_code.is_empty()).then(|| measure_code.to_owned()),
            aggregate,
        })
    }
}

/// Whether `principal` may read the trust's reports: through a scope (its own, checked with
/// `authorize_scope`) of which the trust is a member today, or, with no scope, as the trust's
/// own systems, an operator, or a board whose scope the token names.
pub async fn authorize_subject(
    pool: &PgPool,
    principal: &Principal,
    scope: Option<Scope>,
    ods_code: &str,
) -> Result<(), ServiceError> {
    let scope = match scope {
        Some(scope) => scope,
        None => match principal {
            Principal::BoardReader {
                ics_ods_code: Some(ics),
                ..
            } => Scope {
                scope: Some(scope::Scope::IcsOdsCode(ics.clone())),
            },
            Principal::BoardReader {
                programme_id: Some(programme_id),
                ..
            } => Scope {
                scope: Some(scope::Scope::ProgrammeId(programme_id.clone())),
            },
            _ => return Ok(principal.authorize_trust_read(ods_code)?),
        },
    };
    let scope = crate::api::authorize_scope(principal, Some(&scope))?;
    let today = chrono::Utc::now().date_naive();
    // NOT_FOUND outside the scope, as for a trust that does not exist.
    scope_trusts(pool, &scope, ods_code, today).await?;
    Ok(())
}

/// Every measure definition as a `Measure`, by code.
pub async fn measures(pool: &PgPool, base: &str) -> Result<Value, ServiceError> {
    let rows = sqlx::query("SELECT definition, revision FROM measure_definitions ORDER BY code")
        .fetch_all(pool)
        .await?;
    let mut resources = Vec::with_capacity(rows.len());
    for row in rows {
        let definition = definition(&row.try_get::<Vec<u8>, _>("definition")?)?;
        let revision = u32::try_from(row.try_get::<i32, _>("revision")?).unwrap_or(0);
        resources.push(ics_fhir::measure(base, &definition, revision));
    }
    Ok(ics_fhir::searchset_bundle(base, resources))
}

/// The trust's reports: its organisation-level series (of one measure, or all), by measure.
/// The caller has checked the query and authorised the trust.
pub async fn measure_reports(
    pool: &PgPool,
    base: &str,
    query: &ReportQuery,
) -> Result<Value, ServiceError> {
    let rows = sqlx::query(
        "SELECT s.record, d.definition FROM measure_series s
         JOIN measure_definitions d ON d.code = s.measure_code
         WHERE s.ods_code = $1 AND s.value_stream_id = ''
           AND ($2::text IS NULL OR s.measure_code = $2)
         ORDER BY s.measure_code",
    )
    .bind(&query.ods_code)
    .bind(query.measure_code.as_deref())
    .fetch_all(pool)
    .await?;
    let (start, end) = (
        ics_proto::date::from_naive(query.period_start),
        ics_proto::date::from_naive(query.period_end),
    );
    let mut resources = Vec::new();
    for row in rows {
        let definition = definition(&row.try_get::<Vec<u8>, _>("definition")?)?;
        let record = SeriesRecord::decode(row.try_get::<Vec<u8>, _>("record")?.as_slice())
            .map_err(ServiceError::internal)?;
        if query.aggregate {
            resources.push(ics_fhir::series_range_report(
                base,
                &definition,
                &record,
                &start,
                &end,
            ));
        } else {
            resources.extend(ics_fhir::series_reports(
                base,
                &definition,
                &record,
                &start,
                &end,
            ));
        }
    }
    Ok(ics_fhir::searchset_bundle(base, resources))
}

fn definition(bytes: &[u8]) -> Result<MeasureDefinition, ServiceError> {
    MeasureDefinition::decode(bytes).map_err(ServiceError::internal)
}

/// A bundle as the gRPC API answers it.
pub fn resource(value: &Value) -> FhirResource {
    FhirResource {
        content_type: CONTENT_TYPE.to_owned(),
        json: value.to_string(),
    }
}

// --- HTTP ----------------------------------------------------------------------------------------

/// The query string of `GET /fhir/MeasureReport`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ReportSearch {
    subject: Option<String>,
    period: Option<String>,
    measure: Option<String>,
    aggregate: Option<String>,
}

fn fhir_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A refusal as FHIR answers one: an `OperationOutcome` with the status of its kind.
fn outcome(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    fhir_response(
        status,
        &json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": code, "diagnostics": diagnostics }],
        }),
    )
}

fn error_response(error: ServiceError) -> Response {
    let status = tonic::Status::from(error);
    let (http, code) = match status.code() {
        tonic::Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid"),
        tonic::Code::NotFound => (StatusCode::NOT_FOUND, "not-found"),
        tonic::Code::PermissionDenied => (StatusCode::FORBIDDEN, "forbidden"),
        tonic::Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "exception"),
    };
    outcome(http, code, status.message())
}

/// The caller, or the refusal: 401 without a valid token, 429 past the tenant's call rate.
fn caller(dashboard: &Dashboard, headers: &HeaderMap) -> Result<Principal, Response> {
    match dashboard.admitted_caller(headers) {
        Ok((principal, _)) => Ok(principal),
        Err(Refused::NoToken) => {
            let mut refused = outcome(
                StatusCode::UNAUTHORIZED,
                "login",
                "a bearer token is required",
            );
            refused
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(refused)
        }
        Err(Refused::TooFast(wait)) => Err(with_retry_after(
            outcome(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "the tenant's call rate is used up: retry later",
            ),
            wait,
        )),
    }
}

pub(crate) async fn measure_search(
    State(dashboard): State<Dashboard>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = caller(&dashboard, &headers) {
        return refused;
    }
    match measures(dashboard.pool(), dashboard.fhir_base()).await {
        Ok(bundle) => fhir_response(StatusCode::OK, &bundle),
        Err(error) => error_response(error),
    }
}

pub(crate) async fn measure_report_search(
    State(dashboard): State<Dashboard>,
    headers: HeaderMap,
    Query(search): Query<ReportSearch>,
) -> Response {
    let principal = match caller(&dashboard, &headers) {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let answer = async {
        let query = search.checked()?;
        authorize_subject(dashboard.pool(), &principal, None, &query.ods_code).await?;
        measure_reports(dashboard.pool(), dashboard.fhir_base(), &query).await
    };
    match answer.await {
        Ok(bundle) => fhir_response(StatusCode::OK, &bundle),
        Err(error) => error_response(error),
    }
}

impl ReportSearch {
    /// The search parameters as a [`ReportQuery`]: `period` is `<start>/<end>` in ISO dates.
    fn checked(&self) -> Result<ReportQuery, ServiceError> {
        let Some(subject) = self.subject.as_deref() else {
            return Err(ServiceError::invalid_field(
                "subject",
                "is required: the trust's ODS code",
            ));
        };
        let period = self.period.as_deref().unwrap_or_default();
        let parse = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
        let Some((start, end)) = period
            .split_once('/')
            .and_then(|(start, end)| Some((parse(start)?, parse(end)?)))
        else {
            return Err(ServiceError::invalid_field(
                "period",
                "must be <start>/<end> in YYYY-MM-DD, e.g. 2024-04-01/2025-03-31",
            ));
        };
        let aggregate = match self.aggregate.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ServiceError::invalid_field(
                    "aggregate",
                    "must be true (one report over the range) or false (one per period)",
                ));
            }
        };
        // An ODS code, or the FHIR token form `<system>|<code>` in the ODS code system.
        let subject = subject
            .strip_prefix(ics_fhir::ODS_ORGANIZATION_CODE)
            .and_then(|rest| rest.strip_prefix('|'))
            .unwrap_or(subject);
        ReportQuery::check(
            subject,
            Some(&ics_proto::date::from_naive(start)),
            Some(&ics_proto::date::from_naive(end)),
            self.measure.as_deref().unwrap_or_default(),
            aggregate,
        )
    }
}
