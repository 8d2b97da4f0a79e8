//! A dialect described wholly by data: a [`WireFormat`] for its requests
//! and an [`AnswerFormat`] for its answers. Dialects with no quirk that
//! data cannot express (Oracle, generic-v1) are one of these.

use super::oauth::{self, AnswerFormat};
use super::wire::WireFormat;
use super::{
    ClientIdentity, DeviceAuthorization, DialectSpec, Endpoints, HttpRequest, HttpResponse,
    PollOutcome, ProviderDialect, ProviderError, TokenGrant,
};
use crate::secret::Secret;

/// A dialect that is only data.
#[derive(Debug)]
pub struct DataOnlyDialect {
    spec: &'static DialectSpec,
    wire: WireFormat,
    answers: AnswerFormat,
    client: ClientIdentity,
}

impl DataOnlyDialect {
    /// Dialect `spec`, speaking `wire` and reading `answers`, for `client`.
    #[must_use]
    pub fn new(
        spec: &'static DialectSpec,
        wire: WireFormat,
        answers: AnswerFormat,
        client: ClientIdentity,
    ) -> Self {
        Self {
            spec,
            wire,
            answers,
            client,
        }
    }
}

impl ProviderDialect for DataOnlyDialect {
    fn spec(&self) -> &'static DialectSpec {
        self.spec
    }

    fn device_authorization_request(&self, endpoints: &Endpoints) -> HttpRequest {
        self.wire
            .device_request(&self.client, endpoints.device_authorization.clone())
    }

    fn parse_device_authorization(
        &self,
        response: &HttpResponse,
    ) -> Result<DeviceAuthorization, ProviderError> {
        oauth::device_authorization(&self.answers, response)
    }

    fn poll_request(&self, endpoints: &Endpoints, device_code: &Secret) -> HttpRequest {
        self.wire
            .poll_request(&self.client, endpoints.token.clone(), device_code)
    }

    fn parse_poll(&self, response: &HttpResponse) -> PollOutcome {
        oauth::poll_answer(&self.answers, response)
    }

    fn refresh_request(&self, endpoints: &Endpoints, refresh_token: &Secret) -> HttpRequest {
        self.wire
            .refresh_request(&self.client, endpoints.refresh_url().clone(), refresh_token)
    }

    fn parse_refresh(&self, response: &HttpResponse) -> Result<TokenGrant, ProviderError> {
        oauth::refresh_answer(&self.answers, response)
    }
}
