//! The standard dialect: RFC 8628 device authorization, RFC 6749 token
//! endpoint, OIDC discovery and a userinfo endpoint.
//!
//! Strict on purpose: form bodies only, each parameter once, client
//! authentication exactly as registered, polls no faster than the interval.

// Refusals are whole answers; see `client_auth.rs`.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::time::Duration;

use hyper::Method;
use serde_json::{Map, json};

use crate::approval::{self, ApprovalPaths};
use crate::authority::{
    Authority, DEFAULT_INTERVAL, Issued, Policy, PollVerdict, RefreshVerdict, SLOW_DOWN_STEP,
    TokenCheck,
};
use crate::body::ReplyBody;
use crate::client_auth::{ClientAuthMode, ClientRegistration};
use crate::dialect::{DemoSettings, Dialect, EmulatedDialect, toml_string};
use crate::form::Form;
use crate::received::Received;
use crate::record::{DEVICE_CODE_GRANT, Endpoint, Grant};
use crate::reply::{REALM, Reply};
use crate::wire::{error_body, token_body};

mod quirks;

pub use quirks::{ByteOrderMarks, FormAnswers, Rfc8628Quirks};

/// Entra's refusal of a refresh without `scope` for a token of the app's
/// own API ([`Rfc8628Quirks::refresh_needs_scope`]).
const AADSTS90009: &str = "AADSTS90009: Application is requesting a token for itself. This scenario is supported only if resource is specified using the GUID based App Identifier.";

/// How the standard-dialect emulator behaves. Start from `Default` and set
/// what the test cares about.
#[derive(Debug, Clone)]
// Independent switches, set with struct-update syntax: bools read best.
#[allow(clippy::struct_excessive_bools)]
pub struct Rfc8628Options {
    /// The one registered client (default `tokend-test`).
    pub client_id: String,
    /// How that client must authenticate (default: public).
    pub client_auth: ClientAuthMode,
    /// Interval given to new device codes and sent as `interval` (default
    /// 5 s). Sent in whole seconds, rounded up. Not sent (`send_interval`
    /// false), RFC 8628's 5 s is enforced instead.
    pub interval: Duration,
    /// Whether device authorization answers carry `interval` (RFC 8628
    /// makes it optional; without it clients must use 5 s).
    pub send_interval: bool,
    /// Whether device authorization answers carry `verification_uri_complete`.
    pub send_verification_uri_complete: bool,
    /// Lifetime of device codes, sent as `expires_in` (default 600 s).
    pub device_code_lifetime: Duration,
    /// Lifetime of access tokens, sent as `expires_in` (default 3600 s).
    pub access_token_lifetime: Duration,
    /// Lifetime of refresh tokens (default `None`: until used or revoked),
    /// sent as `refresh_token_expires_in` with each new refresh token (as
    /// `refresh_expires_in` with [`Rfc8628Quirks::refresh_expires_in`]).
    pub refresh_token_lifetime: Option<Duration>,
    /// Whether grants include a refresh token (default true).
    pub issue_refresh_tokens: bool,
    /// Whether each refresh replaces the refresh token (default true). The
    /// replaced one is then dead, and presenting it again revokes the login.
    pub rotate_refresh_tokens: bool,
    /// Scopes a client may ask for; `None` (default) allows any.
    pub allowed_scopes: Option<Vec<String>>,
    /// How much earlier than the interval a poll may arrive before it is
    /// too fast (default zero: strict).
    pub poll_tolerance: Duration,
    /// A path every route lives under, like `/realms/test` (default none).
    /// It is also the issuer's path.
    pub path_prefix: String,
    /// Deviations of real providers to reproduce (default none).
    pub quirks: Rfc8628Quirks,
}

impl Default for Rfc8628Options {
    fn default() -> Self {
        Self {
            client_id: "tokend-test".into(),
            client_auth: ClientAuthMode::Public,
            interval: Duration::from_secs(5),
            send_interval: true,
            send_verification_uri_complete: true,
            device_code_lifetime: Duration::from_secs(600),
            access_token_lifetime: Duration::from_secs(3600),
            refresh_token_lifetime: None,
            issue_refresh_tokens: true,
            rotate_refresh_tokens: true,
            allowed_scopes: None,
            poll_tolerance: Duration::ZERO,
            path_prefix: String::new(),
            quirks: Rfc8628Quirks::default(),
        }
    }
}

impl EmulatedDialect for Rfc8628Options {
    const NAME: &'static str = "rfc8628";
    const TITLE: &'static str = "RFC 8628";

    fn policy(&self) -> Policy {
        Policy {
            interval: if self.send_interval {
                self.interval
            } else {
                DEFAULT_INTERVAL
            },
            device_code_lifetime: self.device_code_lifetime,
            access_token_lifetime: self.access_token_lifetime,
            refresh_token_lifetime: self.refresh_token_lifetime,
            issue_refresh_tokens: self.issue_refresh_tokens,
            rotate_refresh_tokens: self.rotate_refresh_tokens,
            poll_tolerance: self.poll_tolerance,
            slow_down_step: SLOW_DOWN_STEP,
            refresh_scope: None,
        }
    }

    fn server(self, origin: &str) -> Box<dyn Dialect> {
        Box::new(Rfc8628::new(self, origin))
    }

    fn demo(settings: &DemoSettings) -> Self {
        Self {
            client_id: settings.client_id.clone(),
            interval: settings.interval,
            access_token_lifetime: settings.access_token_lifetime,
            ..Self::default()
        }
    }

    /// The endpoints themselves rather than `dialect` and `base_url`: the
    /// standard dialect has no fixed paths (a prefix moves them).
    fn tokend_keys(&self, origin: &str) -> String {
        let server = Rfc8628::new(self.clone(), origin);
        format!(
            "device_authorization_endpoint = {}\ntoken_endpoint = {}\nclient_id = {}\n",
            toml_string(&server.url(Endpoint::DeviceAuthorization)),
            toml_string(&server.url(Endpoint::Token)),
            toml_string(&self.client_id)
        )
    }
}

/// The standard dialect, server side.
#[derive(Debug)]
pub(crate) struct Rfc8628 {
    options: Rfc8628Options,
    client: ClientRegistration,
    /// `http://127.0.0.1:PORT`.
    origin: String,
    /// The origin plus the prefix, no trailing slash.
    issuer: String,
    approval: ApprovalPaths,
}

impl Rfc8628 {
    /// The dialect for a server reachable at `origin` (`http://127.0.0.1:PORT`).
    pub(crate) fn new(options: Rfc8628Options, origin: &str) -> Self {
        let prefix = options.path_prefix.trim_end_matches('/').to_owned();
        let client = ClientRegistration {
            client_id: options.client_id.clone(),
            auth: options.client_auth.clone(),
        };
        Self {
            approval: ApprovalPaths {
                page: format!("{prefix}/device"),
                approve: format!("{prefix}/device/approve"),
                deny: format!("{prefix}/device/deny"),
            },
            issuer: format!("{origin}{prefix}"),
            origin: origin.to_owned(),
            options: Rfc8628Options {
                path_prefix: prefix,
                ..options
            },
            client,
        }
    }

    fn url(&self, endpoint: Endpoint) -> String {
        format!("{}{}", self.origin, self.path(endpoint).unwrap_or_default())
    }

    fn device_authorization(
        &self,
        request: &Received,
        authority: &mut Authority,
    ) -> Result<Reply, Reply> {
        let form = Form::parse_strict(request)?;
        self.client.authenticate(request, &form)?;
        let scope = form.get("scope");
        if let (Some(allowed), Some(scope)) = (&self.options.allowed_scopes, scope)
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
        let params = form.other_than(&["client_id", "client_secret", "scope"]);
        let code = authority.start(&self.client.client_id, scope, params, request.at);
        let verification_uri = self.url(Endpoint::Approval);
        let mut body = Map::new();
        body.insert("device_code".into(), code.device_code.clone().into());
        body.insert("user_code".into(), code.user_code.clone().into());
        body.insert("verification_uri".into(), verification_uri.clone().into());
        let quirks = &self.options.quirks;
        body.insert(
            "expires_in".into(),
            quirks.seconds(authority.policy.device_code_lifetime),
        );
        if self.options.send_verification_uri_complete {
            body.insert(
                "verification_uri_complete".into(),
                format!("{verification_uri}?user_code={}", code.user_code).into(),
            );
        }
        if self.options.send_interval {
            body.insert("interval".into(), quirks.seconds(code.interval));
        }
        quirks.device_answer(&mut body);
        Ok(quirks
            .encode(request, 200, body)
            .outcome("issued")
            .detail(format!("user code {}", code.user_code)))
    }

    pub(crate) fn token(
        &self,
        request: &Received,
        authority: &mut Authority,
    ) -> Result<Reply, Reply> {
        let form = Form::parse_strict(request)?;
        self.client.authenticate(request, &form)?;
        let client_id = self.client.client_id.as_str();
        let mut violations = Vec::new();
        let quirks = &self.options.quirks;
        let poll_error = |error: &str, description: &str, interval: Option<Duration>| {
            let (status, error) = quirks.poll_error(error);
            if quirks.bare_pending && error == "authorization_pending" {
                return Reply::new(status, None, ReplyBody::empty()).outcome(error);
            }
            let mut body = error_body(error, description);
            if let (Some(interval), true) = (interval, quirks.slow_down_interval) {
                body.insert("interval".into(), quirks.seconds(interval));
            }
            quirks.encode(request, status, body).outcome(error)
        };
        let tokens = |issued: &Issued, outcome: &str| {
            let mut body = token_body(issued);
            // As GitHub does: a refresh token that expires says when;
            // Keycloak says it of every refresh token, 0 for "never".
            match (&issued.refresh_token, self.options.refresh_token_lifetime) {
                (Some(_), lifetime) if quirks.refresh_expires_in => {
                    let lifetime = lifetime.map_or(0.into(), |l| quirks.seconds(l));
                    body.insert("refresh_expires_in".into(), lifetime);
                }
                (Some(_), Some(lifetime)) => {
                    body.insert("refresh_token_expires_in".into(), quirks.seconds(lifetime));
                }
                _ => {}
            }
            quirks.token_answer(&mut body, issued.expires_in);
            quirks.encode(request, 200, body).outcome(outcome)
        };
        let reply = match form.require("grant_type")? {
            DEVICE_CODE_GRANT => {
                let device_code = form.require("device_code")?;
                let expiry_told = authority.expiry_told(device_code);
                match authority.poll(device_code, client_id, request.at, &mut violations) {
                    PollVerdict::Pending => poll_error(
                        "authorization_pending",
                        "the person has not answered yet",
                        None,
                    )
                    .outcome("pending"),
                    PollVerdict::SlowDown { interval } => poll_error(
                        "slow_down",
                        "polling too fast; wait 5 s longer between polls",
                        Some(interval),
                    )
                    .outcome("slow_down")
                    .detail(format!("interval now {} s", interval.as_secs())),
                    PollVerdict::Denied => {
                        poll_error("access_denied", "the person denied the request", None)
                    }
                    PollVerdict::Expired => {
                        let (error, description) = quirks.expired_error(expiry_told);
                        poll_error(error, description, None)
                    }
                    PollVerdict::Granted(issued) => tokens(&issued, "granted"),
                    PollVerdict::UnknownCode => {
                        poll_error("invalid_grant", "unknown device code", None)
                    }
                    PollVerdict::WrongClient => poll_error(
                        "invalid_grant",
                        "the device code was issued to another client",
                        None,
                    ),
                    PollVerdict::AlreadyUsed => poll_error(
                        "invalid_grant",
                        "the device code was already exchanged for tokens",
                        None,
                    ),
                }
            }
            "refresh_token" => {
                let token = form.require("refresh_token")?;
                let scope = form.get("scope");
                if quirks.refresh_needs_scope && scope.is_none() {
                    return Ok(Reply::oauth_error(400, "invalid_request", AADSTS90009)
                        .outcome("invalid_request"));
                }
                let refresh_error = |error: &str, description: &str| {
                    let (status, error) = quirks.refresh_error(error);
                    quirks
                        .encode(request, status, error_body(error, description))
                        .outcome(error)
                };
                match authority.refresh(token, client_id, scope, request.at, &mut violations) {
                    RefreshVerdict::Refreshed(issued) => tokens(&issued, "refreshed"),
                    RefreshVerdict::InvalidGrant(why) => refresh_error("invalid_grant", why),
                    RefreshVerdict::InvalidScope(why) => refresh_error("invalid_scope", &why),
                }
            }
            other => Reply::oauth_error(
                400,
                "unsupported_grant_type",
                "this provider supports the device code and refresh token grants",
            )
            .violation(format!("unsupported grant_type `{other}`")),
        };
        Ok(reply.violations(violations))
    }

    fn userinfo(request: &Received, authority: &Authority) -> Reply {
        let challenge = |error: Option<(&str, &str)>| {
            let mut value = format!("Bearer realm=\"{REALM}\"");
            if let Some((code, description)) = error {
                let _ = write!(
                    value,
                    ", error=\"{code}\", error_description=\"{description}\""
                );
            }
            value
        };
        let Some(token) = request.bearer_token() else {
            // RFC 6750 §3.1: no error code when no token was sent.
            return Reply::text(401, "an access token is required\n")
                .header(hyper::header::WWW_AUTHENTICATE, &challenge(None))
                .outcome("no_token");
        };
        let why = match authority.check_access(token, request.at) {
            TokenCheck::Valid {
                login,
                client_id,
                scope,
                ..
            } => {
                return Reply::json(
                    200,
                    &json!({
                        "sub": "emulated-user",
                        "login": login,
                        "client_id": client_id,
                        "scope": scope,
                    }),
                )
                .outcome("accepted");
            }
            TokenCheck::Expired => "expired",
            TokenCheck::Revoked => "revoked",
            TokenCheck::Unknown => "unknown",
        };
        let description = format!("the access token is {why}");
        Reply::json(
            401,
            &json!({ "error": "invalid_token", "error_description": description }),
        )
        .header(
            hyper::header::WWW_AUTHENTICATE,
            &challenge(Some(("invalid_token", &description))),
        )
        .outcome("invalid_token")
        .detail(why)
    }

    fn discovery(&self) -> Reply {
        let auth_method = match self.client.auth {
            ClientAuthMode::Public => "none",
            ClientAuthMode::SecretPost(_) => "client_secret_post",
            ClientAuthMode::SecretBasic(_) => "client_secret_basic",
        };
        let mut body = json!({
            "issuer": self.issuer,
            "device_authorization_endpoint": self.url(Endpoint::DeviceAuthorization),
            "token_endpoint": self.url(Endpoint::Token),
            "userinfo_endpoint": self.url(Endpoint::UserInfo),
            "grant_types_supported": [DEVICE_CODE_GRANT, "refresh_token"],
            "token_endpoint_auth_methods_supported": [auth_method],
        });
        if let Some(scopes) = &self.options.allowed_scopes {
            body["scopes_supported"] = json!(scopes);
        }
        Reply::json(200, &body).outcome("discovery")
    }
}

impl Dialect for Rfc8628 {
    fn endpoint(&self, path: &str) -> Endpoint {
        [
            Endpoint::DeviceAuthorization,
            Endpoint::Token,
            Endpoint::Discovery,
            Endpoint::UserInfo,
        ]
        .into_iter()
        .find(|e| self.path(*e).as_deref() == Some(path))
        .unwrap_or_else(|| {
            if self.approval.contains(path) {
                Endpoint::Approval
            } else {
                Endpoint::Unknown
            }
        })
    }

    fn path(&self, endpoint: Endpoint) -> Option<String> {
        let prefix = &self.options.path_prefix;
        Some(match endpoint {
            Endpoint::DeviceAuthorization => format!("{prefix}/device/code"),
            Endpoint::Token => format!("{prefix}/token"),
            Endpoint::Discovery => format!("{prefix}/.well-known/openid-configuration"),
            Endpoint::UserInfo => format!("{prefix}/userinfo"),
            Endpoint::Approval => self.approval.page.clone(),
            Endpoint::Unknown => return None,
        })
    }

    fn grant(&self, request: &Received) -> Option<Grant> {
        request.grant("grant_type")
    }

    fn answer(&self, request: &Received, endpoint: Endpoint, authority: &mut Authority) -> Reply {
        let method = &request.method;
        let result = match endpoint {
            Endpoint::DeviceAuthorization if method == Method::POST => {
                self.device_authorization(request, authority)
            }
            Endpoint::Token if method == Method::POST => self.token(request, authority),
            Endpoint::DeviceAuthorization | Endpoint::Token => {
                Ok(Reply::method_not_allowed("POST"))
            }
            Endpoint::Discovery if method == Method::GET => Ok(self.discovery()),
            Endpoint::Discovery => Ok(Reply::method_not_allowed("GET")),
            // OpenID Connect Core §5.3.1 allows GET and POST.
            Endpoint::UserInfo if method == Method::GET || method == Method::POST => {
                Ok(Self::userinfo(request, authority))
            }
            Endpoint::UserInfo => Ok(Reply::method_not_allowed("GET, POST")),
            Endpoint::Approval => Ok(approval::answer(request, &self.approval, authority)),
            Endpoint::Unknown => Ok(Reply::not_found()),
        };
        result.unwrap_or_else(|refusal| refusal)
    }
}

#[cfg(test)]
mod tests;
