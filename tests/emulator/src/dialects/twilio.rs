//! Twilio OAuth v1, device era, server side (`shared/dialects.md` §2).
//!
//! Every request must carry HTTP Basic with the account SID and auth token.
//! Form bodies with PascalCase keys; `Scopes` (required) and `Audiences`
//! as repeated keys; answers 201; token answers without `expires_in` or
//! `token_type` but with an absolute `access_token_expires_at` in ISO 8601
//! (with or without an offset) or RFC 2822 (an option); nullable fields;
//! error bodies RFC-style or Twilio-style, with or without OAuth words in
//! the message (an option, since the real ones are undocumented).

// Refusals are whole answers; see `client_auth.rs`.
#![allow(clippy::result_large_err)]

use std::time::{Duration, SystemTime};

use hyper::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

use crate::approval::{self, ApprovalPaths};
use crate::authority::{
    Authority, DEFAULT_INTERVAL, Issued, Policy, PollVerdict, RefreshVerdict, SLOW_DOWN_STEP,
};
use crate::dialect::{
    DemoSettings, Dialect, EmulatedDialect, FixedPaths, base_url_keys, toml_string,
};
use crate::form::{Encoding, Form};
use crate::received::Received;
use crate::record::{DEVICE_CODE_GRANT, Endpoint, Grant};
use crate::reply::Reply;
use crate::wire::wire_seconds;

const DEVICE_CODE_PATH: &str = "/v1/device/code";
const TOKEN_PATH: &str = "/v1/token";
const PATHS: FixedPaths = FixedPaths {
    device: DEVICE_CODE_PATH,
    token: TOKEN_PATH,
};
const DEVICE_KEYS: &[&str] = &["ClientSid", "Scopes", "Audiences"];
const TOKEN_KEYS: &[&str] = &[
    "GrantType",
    "ClientSid",
    "ClientSecret",
    "Code",
    "CodeVerifier",
    "DeviceCode",
    "DeviceId",
    "RefreshToken",
];

/// How absolute expiries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TwilioDateFormat {
    /// `2025-07-01T12:00:00Z` (what the API sends in practice).
    #[default]
    Iso8601,
    /// `Tue, 01 Jul 2025 12:00:00 +0000` (what its description says).
    Rfc2822,
    /// `2025-07-01T12:00:00.414021`: ISO 8601 in UTC without an offset,
    /// as Python's `datetime.utcnow().isoformat()` writes it (microseconds).
    Iso8601NoOffset,
}

/// How OAuth errors are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TwilioErrorStyle {
    /// `{"error": "authorization_pending", "error_description": ...}`.
    #[default]
    OAuth,
    /// Twilio's `{"code": 20001, "message": "authorization_pending: ...",
    /// "more_info": ..., "status": 400}`.
    Twilio,
    /// Twilio's body with messages of its own, no OAuth code in them:
    /// pending is 400 "Authorization request is awaiting user approval",
    /// slow down 429 (code 20429) "Polling too frequently", a spent grant 400
    /// "Invalid refresh token" / "Invalid device code", a bad client 401
    /// (code 20003) "Client authentication failed". Only a denial ("... was
    /// rejected by the user") and an expiry ("Device code has expired") say
    /// what happened in words, as no status tells them from pending.
    TwilioOpaque,
}

/// How the Twilio emulator behaves. Start from `Default`.
#[derive(Debug, Clone)]
pub struct TwilioOptions {
    /// The account SID, the HTTP Basic user (default `ACtokendtest`).
    pub account_sid: String,
    /// The account's auth token, the HTTP Basic password.
    pub auth_token: String,
    /// The OAuth app's `ClientSid` (default `OQtokendtest`).
    pub client_sid: String,
    /// The app's `ClientSecret`; `None` (default): none may be sent.
    pub client_secret: Option<String>,
    /// Poll interval (default 5 s).
    pub interval: Duration,
    /// Device code lifetime (default 600 s).
    pub device_code_lifetime: Duration,
    /// Access token lifetime (default 3600 s).
    pub access_token_lifetime: Duration,
    /// Refresh token lifetime, sent as `refresh_token_expires_at` (default none: null).
    pub refresh_token_lifetime: Option<Duration>,
    /// Whether refreshes replace the refresh token (default true).
    pub rotate_refresh_tokens: bool,
    /// How expiries are written.
    pub date_format: TwilioDateFormat,
    /// How errors are written.
    pub error_style: TwilioErrorStyle,
    /// Whether optional device-answer fields are null
    /// (`verification_uri_complete`, `interval`) instead of filled in.
    pub null_fields: bool,
    /// How much earlier than the interval a poll may come (default zero).
    pub poll_tolerance: Duration,
}

impl Default for TwilioOptions {
    fn default() -> Self {
        Self {
            account_sid: "ACtokendtest".into(),
            auth_token: "tokend-test-auth-token".into(),
            client_sid: "OQtokendtest".into(),
            client_secret: None,
            interval: Duration::from_secs(5),
            device_code_lifetime: Duration::from_secs(600),
            access_token_lifetime: Duration::from_secs(3600),
            refresh_token_lifetime: None,
            rotate_refresh_tokens: true,
            date_format: TwilioDateFormat::Iso8601,
            error_style: TwilioErrorStyle::OAuth,
            null_fields: false,
            poll_tolerance: Duration::ZERO,
        }
    }
}

impl EmulatedDialect for TwilioOptions {
    const NAME: &'static str = "twilio";
    const TITLE: &'static str = "Twilio";

    fn policy(&self) -> Policy {
        Policy {
            // A null `interval` leaves the client RFC 8628's 5 s.
            interval: if self.null_fields {
                DEFAULT_INTERVAL
            } else {
                self.interval
            },
            device_code_lifetime: self.device_code_lifetime,
            access_token_lifetime: self.access_token_lifetime,
            refresh_token_lifetime: self.refresh_token_lifetime,
            issue_refresh_tokens: true,
            rotate_refresh_tokens: self.rotate_refresh_tokens,
            poll_tolerance: self.poll_tolerance,
            slow_down_step: SLOW_DOWN_STEP,
            refresh_scope: None,
        }
    }

    fn server(self, origin: &str) -> Box<dyn Dialect> {
        Box::new(Twilio::new(self, origin))
    }

    fn demo(settings: &DemoSettings) -> Self {
        Self {
            client_sid: settings.client_id.clone(),
            interval: settings.interval,
            access_token_lifetime: settings.access_token_lifetime,
            ..Self::default()
        }
    }

    fn tokend_keys(&self, origin: &str) -> String {
        format!(
            "{}account_sid = {}\nauth_token = {}\nscopes = [\"offline_access\"]\n",
            base_url_keys(Self::NAME, origin, &self.client_sid),
            toml_string(&self.account_sid),
            toml_string(&self.auth_token)
        )
    }
}

/// Twilio, server side.
#[derive(Debug)]
pub(crate) struct Twilio {
    options: TwilioOptions,
    origin: String,
    approval: ApprovalPaths,
}

impl Twilio {
    /// The dialect for a server at `origin`.
    pub(crate) fn new(options: TwilioOptions, origin: &str) -> Self {
        Self {
            options,
            origin: origin.to_owned(),
            approval: ApprovalPaths {
                page: "/device".into(),
                approve: "/device/approve".into(),
                deny: "/device/deny".into(),
            },
        }
    }

    /// The account's Basic credentials, which every request needs.
    fn check_account(&self, request: &Received) -> Result<(), Reply> {
        let refuse = |why: &str| {
            Self::twilio_error(401, 20003, "Authenticate")
                .header(
                    hyper::header::WWW_AUTHENTICATE,
                    "Basic realm=\"Twilio API\"",
                )
                .outcome("unauthenticated")
                .violation(format!("account authentication: {why}"))
        };
        match request.basic_credentials() {
            None => Err(refuse("no HTTP Basic credentials (AccountSid:AuthToken)")),
            Some(Err(why)) => Err(refuse(why)),
            Some(Ok((sid, _))) if sid != self.options.account_sid => {
                Err(refuse("the Basic user is not the account SID"))
            }
            Some(Ok((_, token))) if token != self.options.auth_token => {
                Err(refuse("wrong auth token"))
            }
            Some(Ok(_)) => Ok(()),
        }
    }

    /// Reads a form with Twilio's keys; a snake_case or unknown key is a
    /// violation (Twilio would ignore it, and the parameter it was meant as
    /// would be missing).
    fn read(
        &self,
        request: &Received,
        known: &[&str],
        repeated: &[&str],
    ) -> Result<(Form, Vec<String>), Reply> {
        let form =
            Form::read(request, &[Encoding::Form], repeated).map_err(|p| self.invalid(&p))?;
        let notes = form
            .unknown(known)
            .into_iter()
            .map(|k| {
                format!(
                    "unknown parameter `{k}` (Twilio's keys are PascalCase: {})",
                    known.join(", ")
                )
            })
            .collect();
        Ok((form, notes))
    }

    fn require<'f>(&self, form: &'f Form, name: &str) -> Result<&'f str, Reply> {
        form.get(name)
            .ok_or_else(|| self.invalid(&format!("missing parameter `{name}`")))
    }

    /// Checks `ClientSid`, and `ClientSecret` where the endpoint takes one.
    fn check_client(&self, form: &Form, with_secret: bool) -> Result<(), Reply> {
        let refuse = |why: &str| {
            self.error(401, "invalid_client", why)
                .violation(format!("client authentication: {why}"))
        };
        if self.require(form, "ClientSid")? != self.options.client_sid {
            return Err(refuse("unknown ClientSid"));
        }
        if !with_secret {
            return Ok(());
        }
        match (&self.options.client_secret, form.get("ClientSecret")) {
            (None, None) => Ok(()),
            (Some(expected), Some(sent)) if expected == sent => Ok(()),
            (None, Some(_)) => Err(refuse("the app is public but a ClientSecret was sent")),
            (Some(_), None) => Err(refuse("no ClientSecret")),
            (Some(_), Some(_)) => Err(refuse("wrong ClientSecret")),
        }
    }

    fn device_code(&self, request: &Received, authority: &mut Authority) -> Result<Reply, Reply> {
        let (form, mut notes) = self.read(request, DEVICE_KEYS, &["Scopes", "Audiences"])?;
        // A misnamed key is worth reporting with the refusal it causes.
        self.check_client(&form, false)
            .map_err(|r| r.violations(notes.clone()))?;
        let scopes = form.get_all("Scopes");
        if scopes.is_empty() {
            return Err(self.invalid("missing parameter `Scopes`"));
        }
        if scopes.iter().any(|s| s.contains(' ')) {
            notes.push(
                "`Scopes` is a list: send one `Scopes` key per scope, not a space-separated string"
                    .into(),
            );
        }
        let params = form.other_than(&["ClientSid", "Scopes"]);
        let scope = scopes.join(" ");
        let code = authority.start(&self.options.client_sid, Some(&scope), params, request.at);
        let page = format!("{}{}", self.origin, self.approval.page);
        let nullable = |value: Value| {
            if self.options.null_fields {
                Value::Null
            } else {
                value
            }
        };
        let body = json!({
            "device_code": code.device_code,
            "user_code": code.user_code,
            "verification_uri": page,
            "verification_uri_complete": nullable(format!("{page}?user_code={}", code.user_code).into()),
            "expires_in": wire_seconds(authority.policy.device_code_lifetime),
            "interval": nullable(wire_seconds(code.interval).into()),
        });
        Ok(Reply::json(201, &body)
            .outcome("issued")
            .detail(format!("user code {}", code.user_code))
            .violations(notes))
    }

    fn token(&self, request: &Received, authority: &mut Authority) -> Result<Reply, Reply> {
        let (form, notes) = self.read(request, TOKEN_KEYS, &[])?;
        self.check_client(&form, true)
            .map_err(|r| r.violations(notes.clone()))?;
        let client = self.options.client_sid.as_str();
        let mut violations = Vec::new();
        let reply = match self.require(&form, "GrantType")? {
            DEVICE_CODE_GRANT => {
                let code = self.require(&form, "DeviceCode")?;
                match authority.poll(code, client, request.at, &mut violations) {
                    PollVerdict::Pending => self
                        .error(
                            400,
                            "authorization_pending",
                            "the person has not answered yet",
                        )
                        .outcome("pending"),
                    PollVerdict::SlowDown { interval } => self
                        .error(
                            400,
                            "slow_down",
                            "polling too fast; wait 5 s longer between polls",
                        )
                        .detail(format!("interval now {} s", interval.as_secs())),
                    PollVerdict::Denied => {
                        self.error(400, "access_denied", "the person denied the request")
                    }
                    PollVerdict::Expired => {
                        self.error(400, "expired_token", "the device code expired")
                    }
                    PollVerdict::Granted(issued) => {
                        self.tokens(&issued, request.at_system).outcome("granted")
                    }
                    PollVerdict::UnknownCode
                    | PollVerdict::WrongClient
                    | PollVerdict::AlreadyUsed => {
                        self.invalid_grant("device code", "the device code is not valid")
                    }
                }
            }
            "refresh_token" => {
                let token = self.require(&form, "RefreshToken")?;
                match authority.refresh(token, client, None, request.at, &mut violations) {
                    RefreshVerdict::Refreshed(issued) => {
                        self.tokens(&issued, request.at_system).outcome("refreshed")
                    }
                    RefreshVerdict::InvalidGrant(why) => self.invalid_grant("refresh token", why),
                    RefreshVerdict::InvalidScope(why) => self.error(400, "invalid_scope", &why),
                }
            }
            other => self
                .error(
                    400,
                    "unsupported_grant_type",
                    "GrantType must be the device code or refresh_token grant",
                )
                .violation(format!("unsupported GrantType `{other}`")),
        };
        Ok(reply.violations(violations).violations(notes))
    }

    /// The date `after` from `now` (the emulator's clock), as the options say.
    fn date(&self, now: SystemTime, after: Duration) -> Value {
        let at = OffsetDateTime::from(now + after);
        let text = match self.options.date_format {
            TwilioDateFormat::Iso8601 => at
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok()),
            TwilioDateFormat::Rfc2822 => at.format(&Rfc2822).ok(),
            // UTC, as `OffsetDateTime::from(SystemTime)` is.
            TwilioDateFormat::Iso8601NoOffset => Some(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second(),
                at.microsecond()
            )),
        };
        text.map_or(Value::Null, Value::from)
    }

    fn tokens(&self, issued: &Issued, now: SystemTime) -> Reply {
        let refresh_expiry = match (&issued.refresh_token, self.options.refresh_token_lifetime) {
            (Some(_), Some(lifetime)) => self.date(now, lifetime),
            _ => Value::Null,
        };
        Reply::json(
            201,
            &json!({
                "access_token": issued.access_token,
                "refresh_token": issued.refresh_token,
                "id_token": null,
                "access_token_expires_at": self.date(now, issued.expires_in),
                "refresh_token_expires_at": refresh_expiry,
            }),
        )
    }
}

impl Dialect for Twilio {
    fn endpoint(&self, path: &str) -> Endpoint {
        PATHS.endpoint(path, &self.approval)
    }

    fn path(&self, endpoint: Endpoint) -> Option<String> {
        PATHS.path(endpoint, &self.approval)
    }

    fn grant(&self, request: &Received) -> Option<Grant> {
        request.grant("GrantType")
    }

    fn answer(&self, request: &Received, endpoint: Endpoint, authority: &mut Authority) -> Reply {
        let api = matches!(endpoint, Endpoint::DeviceAuthorization | Endpoint::Token);
        if api && request.method != Method::POST {
            return Reply::method_not_allowed("POST");
        }
        if api && let Err(refusal) = self.check_account(request) {
            return refusal;
        }
        let result = match endpoint {
            Endpoint::DeviceAuthorization => self.device_code(request, authority),
            Endpoint::Token => self.token(request, authority),
            Endpoint::Approval => Ok(approval::answer(request, &self.approval, authority)),
            _ => Ok(Reply::not_found()),
        };
        result.unwrap_or_else(|refusal| refusal)
    }
}

mod errors;
#[cfg(test)]
mod tests;
