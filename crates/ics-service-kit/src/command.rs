//! Running a command: who asks, with which idempotency key and expected version, on which
//! aggregate stream, deciding with which function. The same in every service.

use ics_eventstore::{CommandContext, EventStore, ExpectedVersion, Fold, NewEvent};
use ics_proto::events::v1::{CommandOptions, CommandResult};
use prost::Message;
use tonic::{Response, Status};
use tracing::Instrument as _;

use crate::auth::Principal;
use crate::error::ServiceError;
use crate::telemetry;

/// What every command carries besides its decision.
#[derive(Debug)]
pub struct Command<'a> {
    pub principal: &'a Principal,
    pub options: Option<&'a CommandOptions>,
    pub command_type: &'static str,
    /// The request's encoding: the same request id with another content is refused.
    pub fingerprint: Vec<u8>,
}

impl<'a> Command<'a> {
    pub fn new(
        principal: &'a Principal,
        options: Option<&'a CommandOptions>,
        command_type: &'static str,
        request: &impl Message,
    ) -> Self {
        Command {
            principal,
            options,
            command_type,
            fingerprint: request.encode_to_vec(),
        }
    }
}

/// Runs a command on one aggregate's stream and answers with its result: `decide` is given
/// the aggregate's state as `fold` makes it. `expected` overrides the request's own expected
/// version (creation commands always expect a new stream).
pub async fn execute<S, F>(
    store: &EventStore,
    command: Command<'_>,
    stream_id: &str,
    expected: Option<ExpectedVersion>,
    fold: Fold<S, ServiceError>,
    decide: F,
) -> Result<Response<CommandResult>, Status>
where
    S: Clone + Send + 'static,
    F: Fn(&S) -> Result<Vec<NewEvent>, ServiceError>,
{
    let Command {
        principal,
        options,
        command_type,
        fingerprint,
    } = command;
    let options = options.cloned().unwrap_or_default();
    // The append, as a span of the call: what the events store as their trace context, so the
    // relay's publish and every projection's apply follow it in the command's trace.
    let append = tracing::info_span!(
        "event_store_append",
        otel.name = %format!("append {command_type}"),
        otel.kind = "internal",
        service = store.service(),
        db.system.name = "postgresql",
        db.operation.name = "append",
        ics.command = command_type,
        ics.stream_id = stream_id,
    );
    let (traceparent, tracestate) = append.in_scope(telemetry::current_traceparent);
    let context = CommandContext {
        request_id: options.request_id.clone(),
        principal: principal.label(),
        correlation_id: options.request_id.clone(),
        causation_id: String::new(),
        traceparent,
        tracestate,
    };
    let expected =
        expected.unwrap_or_else(|| ExpectedVersion::from_request(options.expected_version));
    let outcome = store
        .execute(
            &context,
            command_type,
            &fingerprint,
            stream_id,
            expected,
            fold,
            decide,
        )
        .instrument(append)
        .await?;
    // Debug, not info: at thousands of commands a second a line each is a cost of its own,
    // and the call's span (exported when tracing) and the event log already record each one.
    tracing::debug!(
        command = command_type,
        stream = stream_id,
        version = outcome.version,
        replayed = outcome.replayed,
        principal = %context.principal,
        "command executed"
    );
    Ok(Response::new(outcome))
}
