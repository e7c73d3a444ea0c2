//! The one error type every service handler returns, and its single mapping to gRPC.
//!
//! Handlers return `Result<_, ServiceError>` and convert with `?`/`.into()` at the RPC boundary;
//! nothing else in a service builds a `tonic::Status` by hand, so codes and details stay
//! consistent across services (see architecture decisions 3 and 5).

use std::collections::HashMap;
use std::fmt;

use ics_eventstore::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use ics_validate::{FieldViolation, InvalidRequest, Violations};

/// `ErrorInfo.reason` of an optimistic-concurrency conflict.
pub const VERSION_CONFLICT_REASON: &str = "VERSION_CONFLICT";
/// `ErrorInfo.domain` of every error detail this platform emits.
pub const ERROR_DOMAIN: &str = "ics";
/// `ErrorInfo.metadata` key carrying the stream's current version on a conflict.
pub const CURRENT_VERSION_KEY: &str = "current_version";
/// `ErrorInfo.metadata` key carrying the conflicting stream id.
pub const STREAM_ID_KEY: &str = "stream_id";

/// What a service can answer other than success. Deliberately small: each variant has exactly
/// one gRPC code, chosen in `From<ServiceError> for Status`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid request: {}", describe_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{resource} not found")]
    NotFound { resource: String },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("stream {stream_id} was changed concurrently; current version {current_version}")]
    Conflict {
        stream_id: String,
        current_version: u64,
    },
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A single-field `InvalidArgument`, for the common case of one bad field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn not_found(resource: impl Into<String>) -> Self {
        Self::NotFound {
            resource: resource.into(),
        }
    }

    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }
}

fn describe_violations(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ServiceError {
    /// The gRPC code this error answers with: the one place errors meet codes.
    pub fn code(&self) -> Code {
        match self {
            ServiceError::InvalidArgument(_) => Code::InvalidArgument,
            ServiceError::NotFound { .. } => Code::NotFound,
            ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
            ServiceError::Conflict { .. } => Code::Aborted,
            ServiceError::PermissionDenied(_) => Code::PermissionDenied,
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::ResourceExhausted(_) => Code::ResourceExhausted,
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Internal(_) => Code::Internal,
        }
    }

    /// What is wrong, without the "invalid request" framing: for one item's refusal listed
    /// among many (a bulk call's rejections).
    pub fn reason(&self) -> String {
        match self {
            ServiceError::InvalidArgument(violations) => describe_violations(violations),
            other => other.to_string(),
        }
    }
}

pub use ics_client::code_name;

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let code = error.code();
        match error {
            ServiceError::InvalidArgument(violations) => {
                let message = bounded(format!(
                    "invalid request: {}",
                    describe_violations(&violations)
                ));
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|violation| {
                            tonic_types::FieldViolation::new(
                                bounded(violation.field),
                                bounded(violation.description),
                            )
                        })
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(code, message, details)
            }
            ServiceError::Conflict {
                stream_id,
                current_version,
            } => {
                let message = format!(
                    "stream {stream_id} was changed concurrently; current version {current_version}"
                );
                let metadata = HashMap::from([
                    (CURRENT_VERSION_KEY.to_owned(), current_version.to_string()),
                    (STREAM_ID_KEY.to_owned(), stream_id),
                ]);
                let details =
                    ErrorDetails::with_error_info(VERSION_CONFLICT_REASON, ERROR_DOMAIN, metadata);
                Status::with_error_details(code, message, details)
            }
            ServiceError::Internal(detail) => {
                // The detail may carry SQL, paths or payload fragments: it goes to the log for
                // operators, and the caller gets nothing it could use to probe the system.
                tracing::error!(detail = %detail, "internal error");
                Status::new(code, "internal error")
            }
            other => Status::new(code, bounded(other.to_string())),
        }
    }
}

/// Most characters of a message a reply carries: a message that quotes its input (an unknown
/// 1 MB code, say) is cut, so a reply never echoes more than a few hundred characters back.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// `message`, cut to [`MAX_MESSAGE_CHARS`] with an ellipsis.
pub fn bounded(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict {
                stream_id,
                current_version,
            } => ServiceError::Conflict {
                stream_id,
                current_version,
            },
            StoreError::RequestIdReused { request_id } => ServiceError::FailedPrecondition(
                format!("request id {request_id} was already used for a different command"),
            ),
            StoreError::Unavailable(source) => {
                // The sqlx error text names hosts and ports; keep it in the log, not the reply.
                tracing::warn!(error = %source, "event store unavailable");
                ServiceError::Unavailable("event store unavailable; retry later".to_owned())
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    /// For handlers that query their own read models directly: the same classification the
    /// event store uses, so a dropped connection is `UNAVAILABLE` (retryable), not `INTERNAL`.
    fn from(error: sqlx::Error) -> Self {
        ServiceError::from(StoreError::from_sqlx(error))
    }
}

/// Reads the stream's current version back from an `ABORTED` status produced by a
/// [`ServiceError::Conflict`], so a client can re-read and retry with the right expected version.
pub fn conflict_version(status: &Status) -> Option<u64> {
    if status.code() != Code::Aborted {
        return None;
    }
    let error_info = status.get_details_error_info()?;
    if error_info.reason != VERSION_CONFLICT_REASON {
        return None;
    }
    error_info.metadata.get(CURRENT_VERSION_KEY)?.parse().ok()
}

impl From<InvalidRequest> for ServiceError {
    fn from(invalid: InvalidRequest) -> Self {
        ServiceError::InvalidArgument(invalid.0)
    }
}

impl ServiceError {
    /// `Ok(())` when nothing was recorded, otherwise `INVALID_ARGUMENT` naming every field: what
    /// a handler answers after checking a request's fields.
    pub fn check(violations: Violations) -> Result<(), ServiceError> {
        Ok(violations.into_result()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_violation() {
        let mut violations = Violations::default();
        violations
            .require(false, "workshop.title", "must not be empty")
            .require(true, "workshop.trust_ods_code", "never recorded")
            .add("workshop.starts_on", "must be before ends_on");
        let error = ServiceError::check(violations).expect_err("two violations were added");

        let status = Status::from(error);

        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("workshop.title"));
        assert!(status.message().contains("workshop.starts_on"));
        let bad_request = status
            .get_details_bad_request()
            .expect("status carries google.rpc.BadRequest");
        let fields: Vec<(&str, &str)> = bad_request
            .field_violations
            .iter()
            .map(|violation| (violation.field.as_str(), violation.description.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("workshop.title", "must not be empty"),
                ("workshop.starts_on", "must be before ends_on"),
            ]
        );
    }

    #[test]
    fn empty_violations_are_ok() {
        let mut violations = Violations::default();
        violations.require(true, "name", "must not be empty");
        assert!(violations.into_result().is_ok());
    }

    #[test]
    fn conflict_is_aborted_with_readable_current_version() {
        let status = Status::from(ServiceError::Conflict {
            stream_id: "trust-RTP".to_owned(),
            current_version: 7,
        });

        assert_eq!(status.code(), Code::Aborted);
        assert!(status.message().contains("current version 7"));
        assert_eq!(conflict_version(&status), Some(7));
        let error_info = status.get_details_error_info().expect("ErrorInfo detail");
        assert_eq!(error_info.reason, VERSION_CONFLICT_REASON);
    }

    #[test]
    fn conflict_version_ignores_other_statuses() {
        assert_eq!(
            conflict_version(&Status::aborted("current version 7")),
            None
        );
        let not_found = Status::from(ServiceError::not_found("trust RTP"));
        assert_eq!(not_found.code(), Code::NotFound);
        assert_eq!(conflict_version(&not_found), None);
    }

    #[test]
    fn store_errors_map_to_their_service_meaning() {
        let conflict = ServiceError::from(StoreError::Conflict {
            stream_id: "s".to_owned(),
            current_version: 3,
        });
        assert!(matches!(
            conflict,
            ServiceError::Conflict {
                current_version: 3,
                ..
            }
        ));

        let reused = ServiceError::from(StoreError::RequestIdReused {
            request_id: "r-1".to_owned(),
        });
        assert_eq!(Status::from(reused).code(), Code::FailedPrecondition);

        let unavailable = ServiceError::from(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
        assert_eq!(Status::from(unavailable).code(), Code::Unavailable);

        let database = ServiceError::from(StoreError::Database(sqlx::Error::RowNotFound));
        assert!(matches!(database, ServiceError::Internal(_)));
    }

    #[test]
    fn internal_detail_never_reaches_the_caller() {
        let status = Status::from(ServiceError::internal(
            "relation \"events\" does not exist at 10.0.0.5",
        ));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
