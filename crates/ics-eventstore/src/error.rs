use thiserror::Error;

/// What can go wrong when reading or appending events.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The stream was not at the version the command expected (optimistic concurrency).
    #[error("stream {stream_id} is at version {current_version}, not the expected one")]
    Conflict {
        stream_id: String,
        current_version: u64,
    },
    /// The request id was already used by this principal for a different command.
    #[error("request id {request_id} was already used for a different command")]
    RequestIdReused { request_id: String },
    /// Postgres could not be reached or the connection broke.
    #[error("event store unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database failure.
    #[error("event store failure: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored value is not what the store ever writes (a negative version, an unreadable
    /// transaction id): reported, never read as a default.
    #[error("stored value is corrupt: {what}")]
    Corrupt { what: String },
    /// A stored payload could not be decoded.
    #[error("stored event {event_id} could not be decoded: {source}")]
    Decode {
        event_id: String,
        #[source]
        source: prost::DecodeError,
    },
}

impl StoreError {
    /// Classifies a sqlx error: connection-level failures are `Unavailable` so that callers can
    /// answer `UNAVAILABLE` (retryable) rather than `INTERNAL`.
    pub fn from_sqlx(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(error),
            sqlx::Error::Database(database_error)
                if database_error
                    .code()
                    .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")) =>
            {
                StoreError::Unavailable(error)
            }
            _ => StoreError::Database(error),
        }
    }

    /// An error of the same class as this one, for each of the commands a failed batch held
    /// ([`crate::group_commit`]): the service answers each as it would the original
    /// (`UNAVAILABLE` for a database that went away, `INTERNAL` otherwise), and the message
    /// is the original's.
    pub(crate) fn of_same_class(&self) -> Self {
        match self {
            StoreError::Conflict {
                stream_id,
                current_version,
            } => StoreError::Conflict {
                stream_id: stream_id.clone(),
                current_version: *current_version,
            },
            StoreError::RequestIdReused { request_id } => StoreError::RequestIdReused {
                request_id: request_id.clone(),
            },
            StoreError::Unavailable(error) => {
                StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(error.to_string())))
            }
            StoreError::Database(error) => {
                StoreError::Database(sqlx::Error::Protocol(error.to_string()))
            }
            StoreError::Corrupt { what } => StoreError::Corrupt { what: what.clone() },
            StoreError::Decode { event_id, source } => StoreError::Decode {
                event_id: event_id.clone(),
                source: source.clone(),
            },
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from_sqlx(error)
    }
}
