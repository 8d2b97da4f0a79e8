//! A generic device API v1 as a Django REST framework service serves it
//! (`shared/dialects.md` §4; shape inferred from its generated client and
//! django-oauth-toolkit).
//!
//! `POST /api/v1/oauth/device-authorization/` (trailing slash) takes JSON,
//! form or multipart with `client_id`, optional `scope` and the required
//! device metadata `device_type` and `device_os`; missing fields are DRF
//! field errors (`{"device_type": ["This field is required."]}`). Without
//! the slash Django's `APPEND_SLASH` redirects (301), losing the POST.
//! `POST /api/v1/oauth/token` (no slash; with one: 404) takes a form:
//! pending, denied and expired are RFC-style 400s, an unknown device code
//! is `404 device_not_found`, a bad client `401 invalid_client`. It never
//! sends `slow_down`: a too-fast poll is noted and answered "pending", and
//! a forced slow-down is DRF's throttle (429 with `Retry-After`).

// Refusals are whole answers; see `client_auth.rs`.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use hyper::Method;
use serde_json::{Map, Value, json};

use crate::approval::{self, ApprovalPaths};
use crate::authority::{Authority, Policy, PollVerdict, RefreshVerdict};
use crate::client_auth::{ClientAuthMode, ClientRegistration};
use crate::dialect::{
    DemoSettings, Dialect, EmulatedDialect, FixedPaths, base_url_keys, toml_string,
};
use crate::form::{Encoding, Form};
use crate::received::Received;
use crate::record::{DEVICE_CODE_GRANT, Endpoint, Grant};
use crate::reply::Reply;
use crate::wire::{token_body, wire_seconds};

const DEVICE_PATH: &str = "/api/v1/oauth/device-authorization/";
const TOKEN_PATH: &str = "/api/v1/oauth/token";
const PATHS: FixedPaths = FixedPaths {
    device: DEVICE_PATH,
    token: TOKEN_PATH,
};
const REQUIRED_DEVICE_FIELDS: &[&str] = &["client_id", "device_type", "device_os"];

/// How the generic-v1 emulator behaves. Start from `Default`.
#[derive(Debug, Clone)]
pub struct GenericV1Options {
    /// The client id (default `tokend-test`).
    pub client_id: String,
    /// How the client must authenticate (default public).
    pub client_auth: ClientAuthMode,
    /// Poll interval (default 5 s).
    pub interval: Duration,
    /// Device code lifetime (default 600 s).
    pub device_code_lifetime: Duration,
    /// Access token lifetime (default 3600 s).
    pub access_token_lifetime: Duration,
    /// Whether refreshes replace the refresh token (default true, as
    /// django-oauth-toolkit does).
    pub rotate_refresh_tokens: bool,
    /// Whether `verification_uri` is sent empty (the person learns the
    /// URL some other way) (default false).
    pub empty_verification_uri: bool,
    /// How much earlier than the interval a poll may come (default zero).
    pub poll_tolerance: Duration,
}

impl Default for GenericV1Options {
    fn default() -> Self {
        Self {
            client_id: "tokend-test".into(),
            client_auth: ClientAuthMode::Public,
            interval: Duration::from_secs(5),
            device_code_lifetime: Duration::from_secs(600),
            access_token_lifetime: Duration::from_secs(3600),
            rotate_refresh_tokens: true,
            empty_verification_uri: false,
            poll_tolerance: Duration::ZERO,
        }
    }
}

impl EmulatedDialect for GenericV1Options {
    const NAME: &'static str = "generic-v1";
    const TITLE: &'static str = "generic-v1";

    fn policy(&self) -> Policy {
        Policy {
            interval: self.interval,
            device_code_lifetime: self.device_code_lifetime,
            access_token_lifetime: self.access_token_lifetime,
            refresh_token_lifetime: None,
            issue_refresh_tokens: true,
            rotate_refresh_tokens: self.rotate_refresh_tokens,
            poll_tolerance: self.poll_tolerance,
            // It never says "slow down", so it never moves the interval.
            slow_down_step: Duration::ZERO,
            refresh_scope: None,
        }
    }

    fn server(self, origin: &str) -> Box<dyn Dialect> {
        Box::new(GenericV1::new(self, origin))
    }

    fn demo(settings: &DemoSettings) -> Self {
        Self {
            client_id: settings.client_id.clone(),
            interval: settings.interval,
            access_token_lifetime: settings.access_token_lifetime,
            ..Self::default()
        }
    }

    /// With the approval page as `verification_uri`, as a config for such
    /// a service should have it (the service may send an empty one, and
    /// `tokend --check` warns of a config without it).
    fn tokend_keys(&self, origin: &str) -> String {
        let page = GenericV1::new(self.clone(), origin).approval.page;
        format!(
            "{}verification_uri = {}\n",
            base_url_keys(Self::NAME, origin, &self.client_id),
            toml_string(&format!("{}{page}", origin.trim_end_matches('/')))
        )
    }
}

/// generic-v1, server side.
#[derive(Debug)]
pub(crate) struct GenericV1 {
    options: GenericV1Options,
    client: ClientRegistration,
    origin: String,
    approval: ApprovalPaths,
}

impl GenericV1 {
    /// The dialect for a server at `origin`.
    pub(crate) fn new(options: GenericV1Options, origin: &str) -> Self {
        Self {
            client: ClientRegistration {
                client_id: options.client_id.clone(),
                auth: options.client_auth.clone(),
            },
            options,
            origin: origin.to_owned(),
            approval: ApprovalPaths {
                page: "/device".into(),
                approve: "/device/approve".into(),
                deny: "/device/deny".into(),
            },
        }
    }

    fn device(&self, request: &Received, authority: &mut Authority) -> Result<Reply, Reply> {
        let encodings = [Encoding::Json, Encoding::Form, Encoding::Multipart];
        let form = Form::read(request, &encodings, &[]).map_err(|problem| {
            Reply::json(400, &json!({ "detail": problem }))
                .outcome("parse_error")
                .violation(format!("invalid request: {problem}"))
        })?;
        // DRF reports every missing field at once.
        let missing: Map<String, Value> = REQUIRED_DEVICE_FIELDS
            .iter()
            .filter(|f| form.get(f).is_none())
            .map(|f| ((*f).to_owned(), json!(["This field is required."])))
            .collect();
        if !missing.is_empty() {
            let names: Vec<_> = missing.keys().cloned().collect();
            return Err(Reply::json(400, &Value::Object(missing))
                .outcome("field_errors")
                .violation(format!("missing field(s) `{}`", names.join("`, `"))));
        }
        self.client.authenticate(request, &form)?;
        let scope = form.get("scope");
        let params = form.other_than(&["client_id", "client_secret", "scope"]);
        let code = authority.start(&self.options.client_id, scope, params, request.at);
        let uri = if self.options.empty_verification_uri {
            String::new()
        } else {
            format!("{}{}", self.origin, self.approval.page)
        };
        let body = json!({
            "device_code": code.device_code,
            "user_code": code.user_code,
            "verification_uri": uri,
            "expires_in": wire_seconds(authority.policy.device_code_lifetime),
            "interval": wire_seconds(code.interval),
        });
        Ok(Reply::json(200, &body)
            .outcome("issued")
            .detail(format!("user code {}", code.user_code)))
    }

    fn token(&self, request: &Received, authority: &mut Authority) -> Result<Reply, Reply> {
        let form = Form::parse_strict(request)?;
        self.client.authenticate(request, &form)?;
        let client_id = self.options.client_id.as_str();
        let mut violations = Vec::new();
        let error = Reply::oauth_error;
        let reply = match form.require("grant_type")? {
            DEVICE_CODE_GRANT => {
                let code = form.require("device_code")?;
                match authority.poll(code, client_id, request.at, &mut violations) {
                    PollVerdict::Pending => {
                        error(400, "authorization_pending", "Authorization pending")
                            .outcome("pending")
                    }
                    // Too fast: noted by the authority; it answers as if on time.
                    PollVerdict::SlowDown { .. } if !violations.is_empty() => {
                        error(400, "authorization_pending", "Authorization pending")
                            .outcome("pending")
                    }
                    PollVerdict::SlowDown { interval } => {
                        let wait = wire_seconds(interval);
                        Reply::json(
                            429,
                            &json!({ "detail": format!("Request was throttled. Expected available in {wait} seconds.") }),
                        )
                        .header(hyper::header::RETRY_AFTER, &wait.to_string())
                        .outcome("throttled")
                    }
                    PollVerdict::Denied => error(400, "access_denied", "Access denied"),
                    PollVerdict::Expired => error(400, "expired_token", "Device code expired"),
                    PollVerdict::UnknownCode | PollVerdict::WrongClient => {
                        error(404, "device_not_found", "Device not found")
                    }
                    PollVerdict::AlreadyUsed => {
                        error(400, "invalid_grant", "Device code already used")
                    }
                    PollVerdict::Granted(issued) => {
                        Reply::json(200, &Value::Object(token_body(&issued))).outcome("granted")
                    }
                }
            }
            "refresh_token" => {
                let token = form.require("refresh_token")?;
                match authority.refresh(
                    token,
                    client_id,
                    form.get("scope"),
                    request.at,
                    &mut violations,
                ) {
                    RefreshVerdict::Refreshed(issued) => {
                        Reply::json(200, &Value::Object(token_body(&issued))).outcome("refreshed")
                    }
                    RefreshVerdict::InvalidGrant(why) => error(400, "invalid_grant", why),
                    RefreshVerdict::InvalidScope(why) => error(400, "invalid_scope", &why),
                }
            }
            other => error(400, "unsupported_grant_type", "Unsupported grant type")
                .violation(format!("unsupported grant_type `{other}`")),
        };
        Ok(reply.violations(violations))
    }
}

impl Dialect for GenericV1 {
    fn endpoint(&self, path: &str) -> Endpoint {
        // The paths with the wrong trailing slash name the same roles, so
        // the mistake is recorded against them.
        match path {
            _ if path == DEVICE_PATH.trim_end_matches('/') => Endpoint::DeviceAuthorization,
            _ if path.strip_suffix('/') == Some(TOKEN_PATH) => Endpoint::Token,
            _ => PATHS.endpoint(path, &self.approval),
        }
    }

    fn path(&self, endpoint: Endpoint) -> Option<String> {
        PATHS.path(endpoint, &self.approval)
    }

    fn grant(&self, request: &Received) -> Option<Grant> {
        request.grant("grant_type")
    }

    fn answer(&self, request: &Received, endpoint: Endpoint, authority: &mut Authority) -> Reply {
        let post = request.method == Method::POST;
        let result = match (endpoint, request.path.as_str()) {
            (Endpoint::DeviceAuthorization, DEVICE_PATH) if post => self.device(request, authority),
            (Endpoint::Token, TOKEN_PATH) if post => self.token(request, authority),
            (Endpoint::DeviceAuthorization, DEVICE_PATH) | (Endpoint::Token, TOKEN_PATH) => {
                Ok(Reply::method_not_allowed("POST"))
            }
            // Django's APPEND_SLASH: a redirect that drops the POST body.
            (Endpoint::DeviceAuthorization, _) => Ok(Reply::text(301, "")
                .header(hyper::header::LOCATION, DEVICE_PATH)
                .outcome("redirect")
                .violation("the device authorization path needs its trailing slash")),
            (Endpoint::Token, _) => Ok(Reply::text(404, "Not Found\n")
                .outcome("not_found")
                .violation("the token path has no trailing slash")),
            (Endpoint::Approval, _) => Ok(approval::answer(request, &self.approval, authority)),
            _ => Ok(Reply::not_found()),
        };
        result.unwrap_or_else(|refusal| refusal)
    }
}
