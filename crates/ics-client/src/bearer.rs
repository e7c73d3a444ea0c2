//! The bearer token on every call.

use std::fmt;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

use crate::RetryingChannel;

/// What generated clients are built on: a [`RetryingChannel`] that sends the [`Bearer`] token
/// with every call, e.g. `TrustsServiceClient<BearerChannel>`.
pub type BearerChannel = InterceptedService<RetryingChannel, Bearer>;

/// Adds `authorization: Bearer …` to every call, or nothing when no token is configured (a
/// server in development mode accepts that).
#[derive(Clone, Default)]
pub struct Bearer {
    header: Option<MetadataValue<Ascii>>,
}

/// A token that cannot be sent in a header. The token itself is never echoed: error messages
/// end up in terminals and logs.
#[derive(Debug, thiserror::Error)]
#[error("the token contains characters not allowed in a header")]
pub struct InvalidToken;

impl fmt::Debug for Bearer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = if self.header.is_some() {
            "<redacted>"
        } else {
            "<none>"
        };
        formatter
            .debug_struct("Bearer")
            .field("token", &token)
            .finish()
    }
}

impl Bearer {
    pub fn new(token: Option<&str>) -> Result<Self, InvalidToken> {
        let header = token
            .map(|token| {
                format!("Bearer {}", token.trim())
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| InvalidToken)
            })
            .transpose()?;
        Ok(Self { header })
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_header_is_added_to_every_call() {
        let mut bearer = Bearer::new(Some("abc")).expect("ascii token");
        let request = bearer.call(Request::new(())).expect("passes");
        assert_eq!(
            request
                .metadata()
                .get("authorization")
                .and_then(|value| value.to_str().ok()),
            Some("Bearer abc")
        );
        let mut anonymous = Bearer::default();
        let request = anonymous.call(Request::new(())).expect("passes");
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn a_token_that_is_not_a_header_value_is_refused_without_being_echoed() {
        let error = Bearer::new(Some("abc\ndef")).expect_err("a line break");
        assert!(!error.to_string().contains("abc"));
        assert!(!format!("{:?}", Bearer::new(Some("secret")).expect("ascii")).contains("secret"));
    }
}
