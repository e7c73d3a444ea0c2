//! What one request needs to check its observations' references, looked up once and kept for
//! the rest of the request: measures from the event log, organisations and value streams from
//! the read model of the trusts service's events.

use std::collections::HashMap;
use std::sync::Arc;

use ics_eventstore::EventStore;
use ics_measures::{Checked, check_observation, is_measure_code};
use ics_proto::events::v1::{MeasureDefinition, OrganisationKind, SeriesKey};
use ics_proto::metrics::v1::ObservationInput;
use ics_service_kit::Principal;
use ics_service_kit::auth::Denied;
use ics_service_kit::error::{FieldViolation, ServiceError};
use sqlx::PgPool;

/// Why one observation was refused: the field to blame and the error it would have had alone,
/// and who was refused what when it is a refusal of permission.
#[derive(Debug)]
pub struct Rejection {
    pub field: String,
    pub error: ServiceError,
    pub denied: Option<Denied>,
}

impl Rejection {
    fn new(field: impl Into<String>, error: ServiceError) -> Self {
        Rejection {
            field: field.into(),
            error,
            denied: None,
        }
    }

    fn denied(field: impl Into<String>, denied: Denied) -> Self {
        Rejection {
            field: field.into(),
            error: ServiceError::PermissionDenied(denied.to_string()),
            denied: Some(denied),
        }
    }

    /// The error a unary call answers with.
    /// The error a unary call answers with; a refusal is audited, once, as the call's.
    pub fn into_error(self) -> ServiceError {
        if let Some(denied) = &self.denied {
            denied.audit();
        }
        self.error
    }
}

/// A checked observation and its measure.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub checked: Checked,
    pub measure: Arc<MeasureDefinition>,
}

#[derive(Debug)]
pub struct References {
    store: EventStore,
    pool: PgPool,
    measures: HashMap<String, Option<Arc<MeasureDefinition>>>,
    organisations: HashMap<String, OrganisationKind>,
    organisations_loaded: bool,
    value_streams: HashMap<String, Option<String>>,
}

impl References {
    pub fn new(store: EventStore, pool: PgPool) -> Self {
        References {
            store,
            pool,
            measures: HashMap::new(),
            organisations: HashMap::new(),
            organisations_loaded: false,
            value_streams: HashMap::new(),
        }
    }

    pub async fn measure(
        &mut self,
        code: &str,
    ) -> Result<Option<Arc<MeasureDefinition>>, ServiceError> {
        if let Some(known) = self.measures.get(code) {
            return Ok(known.clone());
        }
        let definition = crate::measure::load(&self.store, code)
            .await?
            .map(|measure| Arc::new(measure.definition));
        self.measures.insert(code.to_string(), definition.clone());
        Ok(definition)
    }

    async fn organisation_known(&mut self, ods_code: &str) -> Result<bool, ServiceError> {
        if !self.organisations.contains_key(ods_code) && !self.organisations_loaded {
            // One reload per request: an organisation registered a moment ago is found, and a
            // file full of unknown codes does not query the table once per row.
            self.organisations = ics_references::organisations(&self.pool).await?;
            self.organisations_loaded = true;
        }
        Ok(self.organisations.contains_key(ods_code))
    }

    pub async fn organisation_kind(
        &mut self,
        ods_code: &str,
    ) -> Result<Option<OrganisationKind>, ServiceError> {
        self.organisation_known(ods_code).await?;
        Ok(self.organisations.get(ods_code).copied())
    }

    async fn value_stream_owner(
        &mut self,
        value_stream_id: &str,
    ) -> Result<Option<String>, ServiceError> {
        if let Some(owner) = self.value_streams.get(value_stream_id) {
            return Ok(owner.clone());
        }
        let owner = ics_references::value_stream_owner(&self.pool, value_stream_id).await?;
        self.value_streams
            .insert(value_stream_id.to_string(), owner.clone());
        Ok(owner)
    }

    /// Checks who may write to a series and that it can exist: the caller may write for its
    /// organisation (a trust writer's token naming a trust, not an ICB or region), the
    /// organisation is known, and its value stream, if any, exists and belongs to it. The outer
    /// error is a failure to look anything up; the inner one refuses this series only.
    pub async fn check_series_owner(
        &mut self,
        principal: &Principal,
        key: &SeriesKey,
        prefix: &str,
    ) -> Result<Result<(), Rejection>, ServiceError> {
        let field = |name: &str| format!("{prefix}{name}");
        // Permission first: a trust learns nothing about which other organisations exist.
        // Not audited row by row: a call audits its refusals once (see `Rejection::into_error`
        // and the ingest summary).
        if let Err(denied) = principal.authorize_trust_write(&key.ods_code) {
            return Ok(Err(Rejection::denied(field("ods_code"), denied)));
        }
        let Some(kind) = self.organisation_kind(&key.ods_code).await? else {
            return Ok(Err(Rejection::new(
                field("ods_code"),
                ServiceError::not_found(format!("organisation {}", key.ods_code)),
            )));
        };
        if matches!(principal, Principal::TrustWriter { .. }) && !ics_references::is_trust(kind) {
            // A trust writer token must name a trust; one naming an ICB writes nothing.
            return Ok(Err(Rejection::denied(
                field("ods_code"),
                Denied {
                    principal: principal.label(),
                    action: "write as a trust",
                    resource: format!("organisation {} (not a trust)", key.ods_code),
                },
            )));
        }
        let value_stream = &key.value_stream_id;
        if !value_stream.is_empty() {
            match self.value_stream_owner(value_stream).await? {
                None => {
                    return Ok(Err(Rejection::new(
                        field("value_stream_id"),
                        ServiceError::not_found(format!("value stream {value_stream}")),
                    )));
                }
                Some(owner) if owner != key.ods_code => {
                    return Ok(Err(Rejection::new(
                        field("value_stream_id"),
                        ServiceError::InvalidArgument(vec![FieldViolation::new(
                            field("value_stream_id"),
                            format!("belongs to {owner}, not {}", key.ods_code),
                        )]),
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(Ok(()))
    }

    /// Checks one observation: its fields, that its measure, organisation and value stream
    /// exist, and that the caller may write for the organisation. The outer error is a failure
    /// to look anything up; the inner one refuses this observation only.
    pub async fn resolve(
        &mut self,
        principal: &Principal,
        input: &ObservationInput,
        prefix: &str,
    ) -> Result<Result<Resolved, Rejection>, ServiceError> {
        let field = |name: &str| format!("{prefix}{name}");
        if !is_measure_code(&input.measure_code) {
            return Ok(Err(Rejection::new(
                field("measure_code"),
                ServiceError::invalid_field(field("measure_code"), "is not a measure code"),
            )));
        }
        let Some(measure) = self.measure(&input.measure_code).await? else {
            return Ok(Err(Rejection::new(
                field("measure_code"),
                ServiceError::not_found(format!("measure {}", input.measure_code)),
            )));
        };
        let checked = match check_observation(input, &measure, prefix) {
            Ok(checked) => checked,
            Err(violations) => {
                let first = violations
                    .first()
                    .map(|violation| violation.field.clone())
                    .unwrap_or_default();
                return Ok(Err(Rejection::new(
                    first,
                    ServiceError::InvalidArgument(violations),
                )));
            }
        };
        if let Err(rejection) = self
            .check_series_owner(principal, &checked.key, prefix)
            .await?
        {
            return Ok(Err(rejection));
        }
        Ok(Ok(Resolved { checked, measure }))
    }
}
