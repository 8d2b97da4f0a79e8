//! How a dialect lays out its requests, as data.
//!
//! Most of what tells dialects apart on the way out is naming and shape:
//! JSON or form, `client_id` or `ClientSid`, scopes space-separated or as
//! repeated keys, a `grant_type` on polls or none, fixed extra fields. A
//! [`WireFormat`] holds those facts and builds the three requests from
//! them; a dialect adds only what is truly its own (Twilio's account
//! credentials, Trakt's `redirect_uri`).

use url::Url;

use super::{ClientIdentity, FieldValue, HttpRequest, RequestBody, plain, secret};
use crate::secret::Secret;

/// The grant type of a device-code poll (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`.
    Json,
}

/// How the requested scopes are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeField {
    /// One field, scopes separated by spaces (RFC 6749 §3.3).
    Joined(&'static str),
    /// One field per scope, the key repeated (Twilio's arrays).
    Repeated(&'static str),
    /// Not sent: the client registration fixes them (Trakt).
    Omitted,
}

/// The facts of a dialect's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireFormat {
    /// Body encoding of every request.
    pub encoding: Encoding,
    /// The name of the client id field.
    pub client_id: &'static str,
    /// The name of the client secret field (`client_secret_post`).
    pub client_secret: &'static str,
    /// How scopes go into the device authorization request.
    pub scope: ScopeField,
    /// The name of the grant type field.
    pub grant_type: &'static str,
    /// The grant type of polls; `None` when polls carry none (Trakt).
    pub device_grant: Option<&'static str>,
    /// The name of the device code field in polls.
    pub device_code: &'static str,
    /// The name of the refresh token field in refreshes.
    pub refresh_token: &'static str,
    /// Fixed fields of every device authorization request.
    pub device_fields: &'static [(&'static str, &'static str)],
    /// Whether the device authorization request carries client
    /// authentication; some providers take it unauthenticated, and a secret
    /// sent where none is needed is a secret exposed for nothing.
    pub authenticate_device_request: bool,
}

impl WireFormat {
    /// RFC 8628 and RFC 6749 as written.
    pub const STANDARD: Self = Self {
        encoding: Encoding::Form,
        client_id: "client_id",
        client_secret: "client_secret",
        scope: ScopeField::Joined("scope"),
        grant_type: "grant_type",
        device_grant: Some(DEVICE_CODE_GRANT),
        device_code: "device_code",
        refresh_token: "refresh_token",
        device_fields: &[],
        authenticate_device_request: true,
    };

    fn request(&self, url: Url, fields: Vec<(String, FieldValue)>) -> HttpRequest {
        HttpRequest {
            url,
            body: match self.encoding {
                Encoding::Form => RequestBody::Form(fields),
                Encoding::Json => RequestBody::Json(fields),
            },
            basic_auth: None,
            headers: Vec::new(),
        }
    }

    /// The device authorization request: client id, scopes, the fixed
    /// fields, then the configured `device_params`.
    #[must_use]
    pub fn device_request(&self, client: &ClientIdentity, url: Url) -> HttpRequest {
        let mut fields = vec![plain(self.client_id, &client.client_id)];
        if !client.scopes.is_empty() {
            match self.scope {
                ScopeField::Joined(name) => fields.push(plain(name, client.scopes.join(" "))),
                ScopeField::Repeated(name) => {
                    fields.extend(client.scopes.iter().map(|s| plain(name, s)));
                }
                ScopeField::Omitted => {}
            }
        }
        fields.extend(self.device_fields.iter().map(|(n, v)| plain(n, *v)));
        fields.extend(client.device_params.iter().map(|(n, v)| plain(n, v)));
        let mut request = self.request(url, fields);
        if self.authenticate_device_request {
            client.authenticate_as(&mut request, self.client_secret);
        }
        request
    }

    /// One poll with `device_code`, client authentication included.
    #[must_use]
    pub fn poll_request(
        &self,
        client: &ClientIdentity,
        url: Url,
        device_code: &Secret,
    ) -> HttpRequest {
        let mut fields = Vec::with_capacity(4);
        if let Some(grant) = self.device_grant {
            fields.push(plain(self.grant_type, grant));
        }
        fields.push(secret(self.device_code, device_code));
        fields.push(plain(self.client_id, &client.client_id));
        let mut request = self.request(url, fields);
        client.authenticate_as(&mut request, self.client_secret);
        request
    }

    /// A refresh with `refresh_token`, client authentication included.
    #[must_use]
    pub fn refresh_request(
        &self,
        client: &ClientIdentity,
        url: Url,
        refresh_token: &Secret,
    ) -> HttpRequest {
        self.refresh_request_with_scopes(client, url, refresh_token, &[])
    }

    /// A refresh that also names `scopes` (RFC 6749 §6 makes `scope`
    /// optional: the scopes granted before). Sent only when the dialect
    /// joins scopes into one field and `scopes` is not empty.
    #[must_use]
    pub fn refresh_request_with_scopes(
        &self,
        client: &ClientIdentity,
        url: Url,
        refresh_token: &Secret,
        scopes: &[String],
    ) -> HttpRequest {
        let mut fields = vec![
            plain(self.grant_type, "refresh_token"),
            secret(self.refresh_token, refresh_token),
            plain(self.client_id, &client.client_id),
        ];
        if let (ScopeField::Joined(name), false) = (self.scope, scopes.is_empty()) {
            fields.push(plain(name, scopes.join(" ")));
        }
        let mut request = self.request(url, fields);
        client.authenticate_as(&mut request, self.client_secret);
        request
    }
}

/// The value of the first field named `name` in `request` (for tests).
#[cfg(test)]
pub(crate) fn field<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .body
        .fields()
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.wire_value())
}

/// Every value of the fields named `name` in `request` (for tests).
#[cfg(test)]
pub(crate) fn fields<'a>(request: &'a HttpRequest, name: &str) -> Vec<&'a str> {
    request
        .body
        .fields()
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.wire_value())
        .collect()
}
