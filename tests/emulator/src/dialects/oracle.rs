//! Oracle identity domains (IDCS), server side (`shared/dialects.md` §3).
//!
//! `/oauth2/v1/device` is unauthenticated and requires all of
//! `response_type=device_code`, `scope` and `client_id`; its answer has no
//! `interval` (clients must use 5 s) and no complete URI, and points at
//! `/ui/v1/device`. `/oauth2/v1/token` is RFC 6749's, with the three client
//! authentications (a confidential client's secret in HTTP Basic or the
//! body when it polls, in HTTP Basic when it refreshes); a refresh token
//! comes only with `offline_access`.

// Refusals are whole answers; see `client_auth.rs`.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use hyper::Method;
use serde_json::json;

use crate::approval::{self, ApprovalPaths};
use crate::authority::{Authority, Policy, SLOW_DOWN_STEP};
use crate::client_auth::ClientAuthMode;
use crate::dialect::{DemoSettings, Dialect, EmulatedDialect, FixedPaths, base_url_keys};
use crate::dialects::rfc8628::{Rfc8628, Rfc8628Options};
use crate::form::Form;
use crate::received::Received;
use crate::record::{Endpoint, Grant};
use crate::reply::Reply;
use crate::wire::wire_seconds;

const DEVICE_PATH: &str = "/oauth2/v1/device";
const TOKEN_PATH: &str = "/oauth2/v1/token";
const PATHS: FixedPaths = FixedPaths {
    device: DEVICE_PATH,
    token: TOKEN_PATH,
};

/// The scope that brings a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// How the Oracle emulator behaves. Start from `Default`.
#[derive(Debug, Clone)]
pub struct OracleOptions {
    /// The client id (default `tokend-test`).
    pub client_id: String,
    /// The client's registration (default public). With a secret, in
    /// either mode, polls may send it in HTTP Basic or in the body and
    /// refreshes must send it in HTTP Basic, as Oracle wants.
    pub client_auth: ClientAuthMode,
    /// The poll interval enforced, never sent (default RFC 8628's 5 s).
    pub interval: Duration,
    /// Device code lifetime (default 300 s, Oracle's usual).
    pub device_code_lifetime: Duration,
    /// Access token lifetime (default 3600 s).
    pub access_token_lifetime: Duration,
    /// Refresh token lifetime (default a week).
    pub refresh_token_lifetime: Option<Duration>,
    /// Whether refreshes replace the refresh token (default true).
    pub rotate_refresh_tokens: bool,
    /// Scopes a client may ask for; `None` (default) allows any.
    pub allowed_scopes: Option<Vec<String>>,
    /// How much earlier than the interval a poll may come (default zero).
    pub poll_tolerance: Duration,
}

impl Default for OracleOptions {
    fn default() -> Self {
        Self {
            client_id: "tokend-test".into(),
            client_auth: ClientAuthMode::Public,
            interval: Duration::from_secs(5),
            device_code_lifetime: Duration::from_secs(300),
            access_token_lifetime: Duration::from_secs(3600),
            refresh_token_lifetime: Some(Duration::from_secs(7 * 24 * 3600)),
            rotate_refresh_tokens: true,
            allowed_scopes: None,
            poll_tolerance: Duration::ZERO,
        }
    }
}

impl EmulatedDialect for OracleOptions {
    const NAME: &'static str = "oracle";
    const TITLE: &'static str = "Oracle";

    fn policy(&self) -> Policy {
        Policy {
            interval: self.interval,
            device_code_lifetime: self.device_code_lifetime,
            access_token_lifetime: self.access_token_lifetime,
            refresh_token_lifetime: self.refresh_token_lifetime,
            issue_refresh_tokens: true,
            rotate_refresh_tokens: self.rotate_refresh_tokens,
            poll_tolerance: self.poll_tolerance,
            slow_down_step: SLOW_DOWN_STEP,
            refresh_scope: Some(OFFLINE_ACCESS.into()),
        }
    }

    fn server(self, origin: &str) -> Box<dyn Dialect> {
        Box::new(Oracle::new(self, origin))
    }

    /// Oracle sends no interval: clients poll every 5 s whatever is set.
    fn demo(settings: &DemoSettings) -> Self {
        Self {
            client_id: settings.client_id.clone(),
            access_token_lifetime: settings.access_token_lifetime,
            ..Self::default()
        }
    }

    fn tokend_keys(&self, origin: &str) -> String {
        format!(
            "{}scopes = [\"openid\", \"{OFFLINE_ACCESS}\"]\n",
            base_url_keys(Self::NAME, origin, &self.client_id)
        )
    }
}

/// Oracle, server side. Its token endpoint is the standard one, with
/// Oracle's rule for a confidential client: polls may carry the secret in
/// HTTP Basic or in the body, refreshes only in HTTP Basic.
#[derive(Debug)]
pub(crate) struct Oracle {
    options: OracleOptions,
    /// The token endpoint for the registered authentication.
    token_endpoint: Rfc8628,
    /// For a confidential client: the same endpoint taking the secret in
    /// the body (polls) and in HTTP Basic (polls and refreshes).
    confidential: Option<(Rfc8628, Rfc8628)>,
    origin: String,
    approval: ApprovalPaths,
}

impl Oracle {
    /// The dialect for a server at `origin`.
    pub(crate) fn new(options: OracleOptions, origin: &str) -> Self {
        let standard = |client_auth: ClientAuthMode| {
            Rfc8628::new(
                Rfc8628Options {
                    client_id: options.client_id.clone(),
                    client_auth,
                    ..Rfc8628Options::default()
                },
                origin,
            )
        };
        let confidential = match &options.client_auth {
            ClientAuthMode::Public => None,
            ClientAuthMode::SecretPost(secret) | ClientAuthMode::SecretBasic(secret) => Some((
                standard(ClientAuthMode::SecretPost(secret.clone())),
                standard(ClientAuthMode::SecretBasic(secret.clone())),
            )),
        };
        Self {
            token_endpoint: standard(options.client_auth.clone()),
            confidential,
            options,
            origin: origin.to_owned(),
            approval: ApprovalPaths {
                page: "/ui/v1/device".into(),
                approve: "/ui/v1/device/approve".into(),
                deny: "/ui/v1/device/deny".into(),
            },
        }
    }

    fn device(&self, request: &Received, authority: &mut Authority) -> Result<Reply, Reply> {
        let form = Form::parse_strict(request)?;
        let mut notes = Vec::new();
        if request.basic_credentials().is_some() || form.get("client_secret").is_some() {
            // IDCS ignores them; a secret sent where none is needed is exposed for nothing.
            notes.push("client credentials sent to the unauthenticated device endpoint".to_owned());
        }
        match form.require("response_type")? {
            "device_code" => {}
            other => {
                return Err(Reply::oauth_error(
                    400,
                    "unsupported_response_type",
                    "`response_type` must be `device_code`",
                )
                .violation(format!("response_type `{other}`")));
            }
        }
        let scope = form.require("scope")?;
        let client_id = form.require("client_id")?;
        if client_id != self.options.client_id {
            return Err(Reply::invalid_client("unknown client").violation(format!(
                "client authentication: unknown client `{client_id}`"
            )));
        }
        if let Some(allowed) = &self.options.allowed_scopes
            && let Some(unknown) = scope
                .split(' ')
                .find(|s| !s.is_empty() && !allowed.iter().any(|a| a == s))
        {
            return Ok(Reply::oauth_error(
                400,
                "invalid_scope",
                &format!("unknown scope `{unknown}`"),
            ));
        }
        let params = form.other_than(&["client_id", "client_secret", "scope", "response_type"]);
        let code = authority.start(client_id, Some(scope), params, request.at);
        let body = json!({
            "device_code": code.device_code,
            "user_code": code.user_code,
            "verification_uri": format!("{}{}", self.origin, self.approval.page),
            "expires_in": wire_seconds(authority.policy.device_code_lifetime),
        });
        Ok(Reply::json(200, &body)
            .outcome("issued")
            .detail(format!("user code {}", code.user_code))
            .violations(notes))
    }
}

impl Oracle {
    /// The token endpoint: a confidential client's refresh must use HTTP
    /// Basic (`shared/dialects.md` §3), its polls either way.
    fn token(&self, request: &Received, authority: &mut Authority) -> Result<Reply, Reply> {
        let Some((in_body, in_basic)) = &self.confidential else {
            return self.token_endpoint.token(request, authority);
        };
        let refresh = self.grant(request) == Some(Grant::RefreshToken);
        if refresh || request.basic_credentials().is_some() {
            in_basic.token(request, authority)
        } else {
            in_body.token(request, authority)
        }
    }
}

impl Dialect for Oracle {
    fn endpoint(&self, path: &str) -> Endpoint {
        PATHS.endpoint(path, &self.approval)
    }

    fn path(&self, endpoint: Endpoint) -> Option<String> {
        PATHS.path(endpoint, &self.approval)
    }

    fn grant(&self, request: &Received) -> Option<Grant> {
        self.token_endpoint.grant(request)
    }

    fn answer(&self, request: &Received, endpoint: Endpoint, authority: &mut Authority) -> Reply {
        let post = request.method == Method::POST;
        let result = match endpoint {
            Endpoint::DeviceAuthorization if post => self.device(request, authority),
            Endpoint::Token if post => self.token(request, authority),
            Endpoint::DeviceAuthorization | Endpoint::Token => {
                Ok(Reply::method_not_allowed("POST"))
            }
            Endpoint::Approval => Ok(approval::answer(request, &self.approval, authority)),
            _ => Ok(Reply::not_found()),
        };
        result.unwrap_or_else(|refusal| refusal)
    }
}
