//! The provider's memory: device codes, access tokens and refresh families.
//!
//! Dialect-free: every dialect maps its own wire format onto these verdicts,
//! so they all share one idea of what "pending", "too fast", "reused" and
//! "revoked" mean. Every decision takes the request's arrival time, never
//! "now", so the verdict does not depend on how fast the emulator runs.
//!
//! Tokens are random but not cryptographically strong (`fastrand`): this is
//! a test tool, and its tokens guard nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use crate::codes::{ApprovalError, CodeStatus, IssuedCode};
use crate::codes::{new_user_code, normalize_user_code};

/// What RFC 8628 §3.5 adds to a code's interval on each `slow_down`.
pub(crate) const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The interval a client must keep when the device answer gives none
/// (RFC 8628 §3.2): an emulator that sends none enforces this one, not its
/// configured interval, so a client that polls faster is caught.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Timing and token rules; the emulator handle can change them at run time.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Interval given to new device codes.
    pub interval: Duration,
    /// Lifetime of new device codes.
    pub device_code_lifetime: Duration,
    /// Lifetime of new access tokens.
    pub access_token_lifetime: Duration,
    /// Lifetime of new refresh tokens (`None`: until used or revoked).
    pub refresh_token_lifetime: Option<Duration>,
    /// Whether grants include a refresh token.
    pub issue_refresh_tokens: bool,
    /// Whether each refresh replaces the refresh token.
    pub rotate_refresh_tokens: bool,
    /// How much earlier than the interval a poll may come without counting
    /// as too fast.
    pub poll_tolerance: Duration,
    /// What each slow-down adds to a code's interval: RFC 8628 §3.5's 5 s,
    /// or zero for providers that never tell clients to slow down.
    pub slow_down_step: Duration,
    /// A scope without which no refresh token is issued (Oracle's
    /// `offline_access`); `None`: every grant gets one.
    pub refresh_scope: Option<String>,
}

/// Tokens handed out by a grant or a refresh.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub access_token: String,
    pub expires_in: Duration,
    /// `None` on a refresh without rotation: the old one stays valid.
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

/// The answer to a device-code poll. Distinct refusals, because dialects
/// tell them apart on the wire (Trakt: 404 unknown, 409 used).
#[derive(Debug)]
pub(crate) enum PollVerdict {
    Pending,
    /// Too fast (or told to slow down): the code's interval is now `interval`.
    SlowDown {
        interval: Duration,
    },
    Denied,
    Expired,
    Granted(Issued),
    /// Never issued here.
    UnknownCode,
    /// Issued to another client.
    WrongClient,
    /// Already exchanged for tokens.
    AlreadyUsed,
}

/// The answer to a refresh.
#[derive(Debug)]
pub(crate) enum RefreshVerdict {
    Refreshed(Issued),
    InvalidGrant(&'static str),
    InvalidScope(String),
}

/// What an access token is worth.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    Valid {
        login: u64,
        client_id: String,
        scope: Option<String>,
        expires_at: Instant,
    },
    Expired,
    Revoked,
    Unknown,
}

#[derive(Debug)]
struct DeviceGrant {
    code: IssuedCode,
    last_poll: Option<Instant>,
    /// A final answer (tokens, denied, expired) was sent: polling on is a bug.
    finished: Option<&'static str>,
}

/// One login and every token descended from it.
#[derive(Debug)]
struct Family {
    client_id: String,
    scope: Option<String>,
    revoked: bool,
}

#[derive(Debug)]
struct AccessEntry {
    family: u64,
    scope: Option<String>,
    expires_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Active,
    /// Replaced by a newer one: using it again is a replay.
    Rotated,
    /// Answered `invalid_grant` once already.
    Refused,
}

#[derive(Debug)]
struct RefreshEntry {
    family: u64,
    state: RefreshState,
    expires_at: Option<Instant>,
}

/// Codes, tokens and families.
#[derive(Debug)]
pub(crate) struct Authority {
    pub policy: Policy,
    codes: Vec<DeviceGrant>,
    families: Vec<Family>,
    access: HashMap<String, AccessEntry>,
    refresh: HashMap<String, RefreshEntry>,
    forced_slow_downs: usize,
    /// Whether an expired code is answered "pending", not `expired_token`.
    silent_expiry: bool,
    rng: fastrand::Rng,
}

impl Authority {
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            policy,
            codes: Vec::new(),
            families: Vec::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            forced_slow_downs: 0,
            silent_expiry: false,
            rng: fastrand::Rng::new(),
        }
    }

    fn token(&mut self, prefix: &str) -> String {
        let rng = &mut self.rng;
        let random: String = std::iter::repeat_with(|| rng.alphanumeric())
            .take(32)
            .collect();
        format!("{prefix}{random}")
    }

    /// Issues a device and user code (RFC 8628 §3.2).
    pub(crate) fn start(
        &mut self,
        client_id: &str,
        scope: Option<&str>,
        params: Vec<(String, String)>,
        at: Instant,
    ) -> IssuedCode {
        let codes = &self.codes;
        let user_code = new_user_code(&mut self.rng, |code| {
            codes.iter().any(|g| g.code.user_code == code)
        });
        let code = IssuedCode {
            device_code: self.token("dc_"),
            user_code,
            client_id: client_id.to_owned(),
            scope: scope.map(str::to_owned),
            params,
            issued_at: at,
            expires_at: at + self.policy.device_code_lifetime,
            interval: self.policy.interval,
            status: CodeStatus::Pending,
        };
        self.codes.push(DeviceGrant {
            code: code.clone(),
            last_poll: None,
            finished: None,
        });
        code
    }

    /// Every code issued, oldest first, with its status as of `at`.
    pub(crate) fn codes(&self, at: Instant) -> Vec<IssuedCode> {
        self.codes
            .iter()
            .map(|g| {
                let mut code = g.code.clone();
                if at >= code.expires_at
                    && matches!(code.status, CodeStatus::Pending | CodeStatus::Approved)
                {
                    code.status = CodeStatus::Expired;
                }
                code
            })
            .collect()
    }

    /// Whether `device_code`'s expiry was already answered (`expired_token`
    /// sent): a dialect may answer the polls after it otherwise (Auth0's
    /// `invalid_grant`).
    pub(crate) fn expiry_told(&self, device_code: &str) -> bool {
        self.codes
            .iter()
            .any(|g| g.code.device_code == device_code && g.finished == Some("expired_token"))
    }

    /// One poll with `device_code` (RFC 8628 §3.4, §3.5).
    pub(crate) fn poll(
        &mut self,
        device_code: &str,
        client_id: &str,
        at: Instant,
        violations: &mut Vec<String>,
    ) -> PollVerdict {
        let Some(index) = self
            .codes
            .iter()
            .position(|g| g.code.device_code == device_code)
        else {
            violations.push("poll with a device code this provider never issued".into());
            return PollVerdict::UnknownCode;
        };
        let tolerance = self.policy.poll_tolerance;
        let grant = &mut self.codes[index];
        if grant.code.client_id != client_id {
            violations.push("poll with a device code issued to another client".into());
            return PollVerdict::WrongClient;
        }
        let previous = grant.last_poll.replace(at);
        if let Some(answer) = grant.finished {
            violations.push(format!("kept polling after the final answer `{answer}`"));
        }
        if grant.code.status == CodeStatus::Consumed {
            return PollVerdict::AlreadyUsed;
        }
        if at >= grant.code.expires_at {
            if self.silent_expiry {
                // A server that never says `expired_token`: the client must
                // stop on its own once `expires_in` has passed.
                violations.push(
                    "polled after the device code's expires_in had passed (RFC 8628 §3.2: stop polling)"
                        .into(),
                );
                return PollVerdict::Pending;
            }
            grant.finished = Some("expired_token");
            grant.code.status = CodeStatus::Expired;
            return PollVerdict::Expired;
        }
        if let Some(previous) = previous {
            let waited = at.saturating_duration_since(previous);
            if waited + tolerance < grant.code.interval {
                violations.push(format!(
                    "polled {} ms after the previous poll; the interval is {} s (RFC 8628 §3.5)",
                    waited.as_millis(),
                    grant.code.interval.as_secs_f64()
                ));
                grant.code.interval += self.policy.slow_down_step;
                return PollVerdict::SlowDown {
                    interval: grant.code.interval,
                };
            }
        }
        if self.forced_slow_downs > 0 {
            self.forced_slow_downs -= 1;
            grant.code.interval += self.policy.slow_down_step;
            return PollVerdict::SlowDown {
                interval: grant.code.interval,
            };
        }
        match grant.code.status {
            CodeStatus::Pending => PollVerdict::Pending,
            CodeStatus::Denied | CodeStatus::Expired => {
                grant.finished = Some("access_denied");
                PollVerdict::Denied
            }
            CodeStatus::Approved | CodeStatus::Consumed => {
                grant.finished = Some("tokens");
                grant.code.status = CodeStatus::Consumed;
                let (client, scope) = (grant.code.client_id.clone(), grant.code.scope.clone());
                self.families.push(Family {
                    client_id: client,
                    scope: scope.clone(),
                    revoked: false,
                });
                let family = self.families.len() as u64 - 1;
                PollVerdict::Granted(self.mint(family, scope, at, true))
            }
        }
    }

    fn decide(
        &mut self,
        user_code: &str,
        at: Instant,
        approve: bool,
    ) -> Result<IssuedCode, ApprovalError> {
        let wanted = normalize_user_code(user_code);
        let grant = self
            .codes
            .iter_mut()
            .find(|g| normalize_user_code(&g.code.user_code) == wanted)
            .ok_or(ApprovalError::UnknownCode)?;
        match grant.code.status {
            CodeStatus::Approved => return Err(ApprovalError::AlreadyApproved),
            CodeStatus::Denied => return Err(ApprovalError::AlreadyDenied),
            CodeStatus::Consumed => return Err(ApprovalError::AlreadyUsed),
            CodeStatus::Expired => return Err(ApprovalError::Expired),
            CodeStatus::Pending if at >= grant.code.expires_at => {
                return Err(ApprovalError::Expired);
            }
            CodeStatus::Pending => {}
        }
        grant.code.status = if approve {
            CodeStatus::Approved
        } else {
            CodeStatus::Denied
        };
        Ok(grant.code.clone())
    }

    /// The person approves `user_code` (case and dashes do not matter).
    pub(crate) fn approve(
        &mut self,
        user_code: &str,
        at: Instant,
    ) -> Result<IssuedCode, ApprovalError> {
        self.decide(user_code, at, true)
    }

    /// The person denies `user_code`.
    pub(crate) fn deny(
        &mut self,
        user_code: &str,
        at: Instant,
    ) -> Result<IssuedCode, ApprovalError> {
        self.decide(user_code, at, false)
    }

    /// The pending code with `user_code`, for the approval page.
    pub(crate) fn pending(&self, user_code: &str, at: Instant) -> Option<IssuedCode> {
        let wanted = normalize_user_code(user_code);
        self.codes(at).into_iter().find(|c| {
            c.status == CodeStatus::Pending && normalize_user_code(&c.user_code) == wanted
        })
    }

    /// Every code not yet exchanged expires at `at`.
    /// Every access and refresh token issued so far (live or not): secrets
    /// a client must never show.
    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        self.access
            .keys()
            .chain(self.refresh.keys())
            .cloned()
            .collect()
    }

    pub(crate) fn expire_codes(&mut self, at: Instant) {
        for grant in &mut self.codes {
            grant.code.expires_at = grant.code.expires_at.min(at);
        }
    }

    /// Every access token issued so far expires at `at`.
    pub(crate) fn expire_access_tokens(&mut self, at: Instant) {
        for entry in self.access.values_mut() {
            entry.expires_at = entry.expires_at.min(at);
        }
    }

    /// Every login is revoked: its tokens stop working.
    pub(crate) fn revoke_all(&mut self) {
        for family in &mut self.families {
            family.revoked = true;
        }
    }

    /// The next `count` polls are told to slow down, whatever their timing.
    pub(crate) fn force_slow_downs(&mut self, count: usize) {
        self.forced_slow_downs = count;
    }

    /// Whether expired codes are answered "pending" (see the field).
    pub(crate) fn set_silent_expiry(&mut self, silent: bool) {
        self.silent_expiry = silent;
    }
}

mod tokens;

#[cfg(test)]
mod tests;
