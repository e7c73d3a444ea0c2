//! How failures reach the terminal: `error: <CODE>: <message>` for a gRPC status, then each
//! field violation of a `google.rpc.BadRequest` on its own line.

use std::io;

use ics_client::code_name;
use tonic::Status;
use tonic_types::StatusExt;

/// The lines printed for a status: the headline, each field violation, and the current version
/// of a concurrency conflict (what a caller needs to retry with --expected-version).
pub fn status_lines(status: &Status) -> Vec<String> {
    let mut lines = vec![format!(
        "error: {}: {}",
        code_name(status.code()),
        status.message()
    )];
    let details = status.get_error_details();
    if let Some(bad_request) = details.bad_request() {
        for violation in &bad_request.field_violations {
            lines.push(format!("  {}: {}", violation.field, violation.description));
        }
    }
    if let Some(current_version) = details
        .error_info()
        .and_then(|info| info.metadata.get("current_version"))
    {
        lines.push(format!("  current version: {current_version}"));
    }
    lines
}

/// Prints an error to stderr. A gRPC status anywhere in the chain is shown in the standard
/// form; the contexts wrapped around it (e.g. which demo step failed) follow as `while …`.
pub fn report(error: &anyhow::Error) {
    let status = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Status>());
    let Some(status) = status else {
        eprintln!("error: {error:#}");
        return;
    };
    for line in status_lines(status) {
        eprintln!("{line}");
    }
    for context in error
        .chain()
        .take_while(|cause| cause.downcast_ref::<Status>().is_none())
    {
        eprintln!("  while: {context}");
    }
}

/// `icsctl … | head` closes stdout early; that is the reader's choice, not a failure.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io_error| io_error.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::{ErrorDetails, FieldViolation};

    #[test]
    fn statuses_print_their_code_message_and_field_violations() {
        let details = ErrorDetails::with_bad_request(vec![
            FieldViolation::new("ods_code", "must be an ODS code"),
            FieldViolation::new("kind", "must be specified"),
        ]);
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "invalid request: ods_code: must be an ODS code; kind: must be specified",
            details,
        );
        assert_eq!(
            status_lines(&status),
            vec![
                "error: INVALID_ARGUMENT: invalid request: ods_code: must be an ODS code; kind: must be specified",
                "  ods_code: must be an ODS code",
                "  kind: must be specified",
            ]
        );
    }

    #[test]
    fn conflicts_show_the_current_version() {
        let details = ErrorDetails::with_error_info(
            "VERSION_CONFLICT",
            "ics",
            [("current_version".to_owned(), "7".to_owned())],
        );
        let status = Status::with_error_details(Code::Aborted, "changed concurrently", details);
        assert_eq!(
            status_lines(&status),
            vec![
                "error: ABORTED: changed concurrently",
                "  current version: 7"
            ]
        );
    }

    #[test]
    fn plain_statuses_print_one_line() {
        let status = Status::not_found("organisation XYZ not found");
        assert_eq!(
            status_lines(&status),
            vec!["error: NOT_FOUND: organisation XYZ not found"]
        );
    }
}
