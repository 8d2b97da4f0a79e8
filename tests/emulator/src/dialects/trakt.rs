//! Trakt's device flow, server side (`shared/dialects.md` §1).
//!
//! JSON bodies only; the poll's device code under `code`, with the client
//! id and secret; poll answers in the status code alone with empty (or
//! plain-text) bodies: 400 pending, 404 unknown code, 409 already used, 410
//! expired, 418 denied, 429 slow down; refreshes at their own endpoint with
//! the registered `redirect_uri`; single-use refresh tokens; `created_at`.
//! A client that sends a form, a wrong key, a missing key, a wrong secret
//! or polls too fast is refused and recorded as a violation (a malformed
//! poll gets Trakt's bare 400, which reads as "pending": a trap real
//! clients fall into, caught here by the violation).

// Refusals are whole answers; see `client_auth.rs`.
#![allow(clippy::result_large_err)]

use std::time::{Duration, SystemTime};

use hyper::Method;
use serde_json::Value;

use crate::approval::{self, ApprovalPaths};
use crate::authority::{Authority, Issued, Policy, PollVerdict, RefreshVerdict, SLOW_DOWN_STEP};
use crate::body::ReplyBody;
use crate::dialect::{
    DemoSettings, Dialect, EmulatedDialect, FixedPaths, base_url_keys, toml_string,
};
use crate::form::{Encoding, Form};
use crate::received::Received;
use crate::record::{Endpoint, Grant};
use crate::reply::Reply;
use crate::wire::{token_body, wire_seconds};

/// The redirect URI of device apps.
pub const OOB_REDIRECT_URI: &str = "urn:ietf:wg:oauth:2.0:oob";

const DEVICE_CODE_PATH: &str = "/oauth/device/code";
const POLL_PATH: &str = "/oauth/device/token";
const REFRESH_PATH: &str = "/oauth/token";

/// What non-200 poll answers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraktPollBodies {
    /// Nothing (the documented behaviour).
    #[default]
    Empty,
    /// A line of plain text, which a client must not take for JSON.
    Text,
}

/// How refresh failures look (Trakt changed this over the years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraktRefreshErrors {
    /// 400 with `{"error", "error_description"}` (current docs).
    #[default]
    Json400,
    /// 401 with `{"error": "invalid_grant", ...}` (historical).
    Json401,
    /// 400 with no body at all.
    Empty400,
}

/// How the Trakt emulator behaves. Start from `Default`.
#[derive(Debug, Clone)]
pub struct TraktOptions {
    /// The app's client id (default `tokend-test`).
    pub client_id: String,
    /// The app's client secret (default `tokend-test-secret`).
    pub client_secret: String,
    /// The app's redirect URI, required in refreshes (default the OOB URI).
    pub redirect_uri: String,
    /// Poll interval (default 5 s).
    pub interval: Duration,
    /// Device code lifetime (default 600 s).
    pub device_code_lifetime: Duration,
    /// Access token lifetime (default 7 days, as documented now).
    pub access_token_lifetime: Duration,
    /// Whether refreshes replace the refresh token (default true: Trakt's
    /// refresh tokens are single-use).
    pub rotate_refresh_tokens: bool,
    /// What non-200 poll answers carry.
    pub poll_bodies: TraktPollBodies,
    /// How refresh failures look.
    pub refresh_errors: TraktRefreshErrors,
    /// How much earlier than the interval a poll may come (default zero).
    pub poll_tolerance: Duration,
}

impl Default for TraktOptions {
    fn default() -> Self {
        Self {
            client_id: "tokend-test".into(),
            client_secret: "tokend-test-secret".into(),
            redirect_uri: OOB_REDIRECT_URI.into(),
            interval: Duration::from_secs(5),
            device_code_lifetime: Duration::from_secs(600),
            access_token_lifetime: Duration::from_secs(7 * 24 * 3600),
            rotate_refresh_tokens: true,
            poll_bodies: TraktPollBodies::Empty,
            refresh_errors: TraktRefreshErrors::Json400,
            poll_tolerance: Duration::ZERO,
        }
    }
}

impl EmulatedDialect for TraktOptions {
    const NAME: &'static str = "trakt";
    const TITLE: &'static str = "Trakt";

    fn policy(&self) -> Policy {
        Policy {
            interval: self.interval,
            device_code_lifetime: self.device_code_lifetime,
            access_token_lifetime: self.access_token_lifetime,
            refresh_token_lifetime: None,
            issue_refresh_tokens: true,
            rotate_refresh_tokens: self.rotate_refresh_tokens,
            poll_tolerance: self.poll_tolerance,
            slow_down_step: SLOW_DOWN_STEP,
            refresh_scope: None,
        }
    }

    fn server(self, origin: &str) -> Box<dyn Dialect> {
        Box::new(Trakt::new(self, origin))
    }

    fn demo(settings: &DemoSettings) -> Self {
        Self {
            client_id: settings.client_id.clone(),
            interval: settings.interval,
            access_token_lifetime: settings.access_token_lifetime,
            ..Self::default()
        }
    }

    fn tokend_keys(&self, origin: &str) -> String {
        format!(
            "{}client_secret = {}\n",
            base_url_keys(Self::NAME, origin, &self.client_id),
            toml_string(&self.client_secret)
        )
    }
}

/// Trakt, server side.
#[derive(Debug)]
pub(crate) struct Trakt {
    options: TraktOptions,
    origin: String,
    approval: ApprovalPaths,
}

impl Trakt {
    /// The dialect for a server at `origin`.
    pub(crate) fn new(options: TraktOptions, origin: &str) -> Self {
        Self {
            options,
            origin: origin.to_owned(),
            approval: ApprovalPaths {
                page: "/activate".into(),
                approve: "/activate/approve".into(),
                deny: "/activate/deny".into(),
            },
        }
    }

    /// A status-only answer, its body as the options say.
    fn bare(&self, status: u16, text: &str) -> Reply {
        match self.options.poll_bodies {
            TraktPollBodies::Empty => Reply::new(status, None, ReplyBody::empty()),
            TraktPollBodies::Text => Reply::text(status, format!("{text}\n")),
        }
    }

    /// Reads a JSON body with exactly the `required` keys; anything else is
    /// refused with `refusal` and noted as a violation.
    fn read(
        request: &Received,
        required: &[&str],
        refusal: impl Fn(&str) -> Reply,
    ) -> Result<Form, Reply> {
        let refuse =
            |problem: String| refusal(&problem).violation(format!("invalid request: {problem}"));
        let form = Form::read(request, &[Encoding::Json], &[]).map_err(&refuse)?;
        if let Some(missing) = required.iter().find(|k| form.get(k).is_none()) {
            return Err(refuse(format!("missing key `{missing}`")));
        }
        let unknown = form.unknown(required);
        if !unknown.is_empty() {
            return Err(refuse(format!(
                "unknown key(s) `{}`; this endpoint takes `{}`",
                unknown.join("`, `"),
                required.join("`, `")
            )));
        }
        Ok(form)
    }

    /// Notes wrong API headers (they are optional on the OAuth endpoints,
    /// but when sent they must be right).
    fn header_violations(&self, request: &Received) -> Vec<String> {
        let mut found = Vec::new();
        if let Some(key) = request.header("trakt-api-key")
            && key != self.options.client_id
        {
            found.push("`trakt-api-key` is not the client id".to_owned());
        }
        if let Some(version) = request.header("trakt-api-version")
            && version != "2"
        {
            found.push(format!(
                "`trakt-api-version: {version}`; the API is version 2"
            ));
        }
        found
    }

    /// Checks the client: its id always, its secret when `secret_required`
    /// (polls and refreshes carry it; the device-code request has none).
    fn client_matches(&self, form: &Form, secret_required: bool) -> Result<(), &'static str> {
        if form.get("client_id") != Some(self.options.client_id.as_str()) {
            return Err("unknown client id");
        }
        match form.get("client_secret") {
            None | Some("") if secret_required => Err("no client secret"),
            None | Some("") => Ok(()),
            Some(secret) if secret == self.options.client_secret => Ok(()),
            Some(_) => Err("wrong client secret"),
        }
    }

    fn device_code(&self, request: &Received, authority: &mut Authority) -> Result<Reply, Reply> {
        let form = Self::read(request, &["client_id"], |_| {
            Reply::new(400, None, ReplyBody::empty())
        })?;
        if let Err(why) = self.client_matches(&form, false) {
            return Err(self
                .bare(401, "invalid client")
                .outcome("invalid_client")
                .violation(format!("client authentication: {why}")));
        }
        let code = authority.start(&self.options.client_id, None, Vec::new(), request.at);
        let body = serde_json::json!({
            "device_code": code.device_code,
            "user_code": code.user_code,
            "verification_url": format!("{}{}", self.origin, self.approval.page),
            "expires_in": wire_seconds(authority.policy.device_code_lifetime),
            "interval": wire_seconds(code.interval),
        });
        Ok(Reply::json(200, &body)
            .outcome("issued")
            .detail(format!("user code {}", code.user_code)))
    }

    fn poll(&self, request: &Received, authority: &mut Authority) -> Result<Reply, Reply> {
        let form = Self::read(request, &["code", "client_id", "client_secret"], |_| {
            self.bare(400, "Bad Request")
        })?;
        if let Err(why) = self.client_matches(&form, true) {
            return Err(self
                .bare(401, "invalid client")
                .outcome("invalid_client")
                .violation(format!("client authentication: {why}")));
        }
        let code = form.get("code").unwrap_or_default();
        let mut violations = Vec::new();
        let client_id = self.options.client_id.as_str();
        let reply = match authority.poll(code, client_id, request.at, &mut violations) {
            PollVerdict::Pending => self
                .bare(400, "Pending - waiting for the user to authorize your app")
                .outcome("pending"),
            PollVerdict::SlowDown { interval } => self
                .bare(429, "Slow Down - your app is polling too quickly")
                .outcome("slow_down")
                .detail(format!("interval now {} s", interval.as_secs())),
            PollVerdict::Denied => self
                .bare(418, "Denied - user explicitly denied this code")
                .outcome("denied"),
            PollVerdict::Expired => self
                .bare(
                    410,
                    "Expired - the tokens have expired, restart the process",
                )
                .outcome("expired"),
            PollVerdict::UnknownCode | PollVerdict::WrongClient => self
                .bare(404, "Not Found - invalid device_code")
                .outcome("not_found"),
            PollVerdict::AlreadyUsed => self
                .bare(409, "Already Used - user already approved this code")
                .outcome("already_used"),
            PollVerdict::Granted(issued) => {
                Self::tokens(&issued, request.at_system).outcome("granted")
            }
        };
        Ok(reply.violations(violations))
    }

    fn refresh(&self, request: &Received, authority: &mut Authority) -> Result<Reply, Reply> {
        let required = [
            "refresh_token",
            "client_id",
            "client_secret",
            "redirect_uri",
            "grant_type",
        ];
        let form = Self::read(request, &required, |problem| {
            Reply::oauth_error(400, "invalid_request", problem)
        })?;
        if let Err(why) = self.client_matches(&form, true) {
            return Err(
                Reply::invalid_client(why).violation(format!("client authentication: {why}"))
            );
        }
        if form.get("grant_type") != Some("refresh_token") {
            return Err(Reply::invalid_request(
                "`grant_type` must be `refresh_token`",
            ));
        }
        if form.get("redirect_uri") != Some(self.options.redirect_uri.as_str()) {
            return Err(Reply::invalid_request(
                "`redirect_uri` is not the app's registered redirect URI",
            ));
        }
        let token = form.get("refresh_token").unwrap_or_default();
        let mut violations = Vec::new();
        let client_id = self.options.client_id.as_str();
        let reply = match authority.refresh(token, client_id, None, request.at, &mut violations) {
            RefreshVerdict::Refreshed(issued) => {
                Self::tokens(&issued, request.at_system).outcome("refreshed")
            }
            RefreshVerdict::InvalidGrant(why) => match self.options.refresh_errors {
                TraktRefreshErrors::Json400 => Reply::oauth_error(400, "invalid_grant", why),
                TraktRefreshErrors::Json401 => Reply::oauth_error(401, "invalid_grant", why),
                TraktRefreshErrors::Empty400 => {
                    Reply::new(400, None, ReplyBody::empty()).outcome("invalid_grant")
                }
            },
            RefreshVerdict::InvalidScope(why) => Reply::oauth_error(400, "invalid_scope", &why),
        };
        Ok(reply.violations(violations))
    }

    /// A token answer; `created_at` is `now` on the emulator's clock.
    fn tokens(issued: &Issued, now: SystemTime) -> Reply {
        let mut body = token_body(issued);
        body.insert("token_type".into(), "bearer".into());
        body.insert("scope".into(), "public".into());
        let created_at = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        body.insert("created_at".into(), created_at.into());
        Reply::json(200, &Value::Object(body))
    }
}

impl Dialect for Trakt {
    fn endpoint(&self, path: &str) -> Endpoint {
        match path {
            DEVICE_CODE_PATH => Endpoint::DeviceAuthorization,
            // Polls and refreshes: one role, two paths.
            POLL_PATH | REFRESH_PATH => Endpoint::Token,
            _ if self.approval.contains(path) => Endpoint::Approval,
            _ => Endpoint::Unknown,
        }
    }

    fn path(&self, endpoint: Endpoint) -> Option<String> {
        // The poll path stands for the token role; refreshes have their own.
        FixedPaths {
            device: DEVICE_CODE_PATH,
            token: POLL_PATH,
        }
        .path(endpoint, &self.approval)
    }

    fn grant(&self, request: &Received) -> Option<Grant> {
        let fields = request.fields();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        match (field("grant_type"), field("code")) {
            (Some("refresh_token"), _) => Some(Grant::RefreshToken),
            (Some(other), _) => Some(Grant::Other(other.to_owned())),
            (None, Some(_)) => Some(Grant::DeviceCode),
            (None, None) => None,
        }
    }

    fn answer(&self, request: &Received, endpoint: Endpoint, authority: &mut Authority) -> Reply {
        if matches!(endpoint, Endpoint::DeviceAuthorization | Endpoint::Token)
            && request.method != Method::POST
        {
            return Reply::method_not_allowed("POST");
        }
        let headers = self.header_violations(request);
        let result = match (endpoint, request.path.as_str(), self.grant(request)) {
            (Endpoint::DeviceAuthorization, _, _) => self.device_code(request, authority),
            (Endpoint::Token, POLL_PATH, Some(Grant::RefreshToken)) => {
                Err(self.bare(400, "Bad Request").violation(
                    "a refresh sent to the device token endpoint; refreshes go to /oauth/token",
                ))
            }
            (Endpoint::Token, POLL_PATH, _) => self.poll(request, authority),
            (Endpoint::Token, _, Some(Grant::DeviceCode)) => Err(Reply::invalid_request(
                "a device-code poll sent to /oauth/token; polls go to /oauth/device/token",
            )),
            (Endpoint::Token, _, _) => self.refresh(request, authority),
            (Endpoint::Approval, _, _) => Ok(approval::answer(request, &self.approval, authority)),
            _ => Ok(Reply::not_found()),
        };
        result.unwrap_or_else(|refusal| refusal).violations(headers)
    }
}
