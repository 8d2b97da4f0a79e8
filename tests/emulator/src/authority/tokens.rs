//! The authority's tokens: minting them, a login granted without a device
//! code, the refresh grant (rotation, reuse detection, expiry) and the
//! check of an access token a client presents.

use std::time::{Duration, Instant};

use super::{
    AccessEntry, Authority, Family, Issued, RefreshEntry, RefreshState, RefreshVerdict, TokenCheck,
};

impl Authority {
    /// A login that never went through a device code, as if one had been
    /// approved and polled at `at`: tokens for seeding a client's store
    /// (many sessions at once, for scale tests), with their own lifetime.
    pub(crate) fn grant_directly(
        &mut self,
        client_id: &str,
        scope: Option<String>,
        lifetime: Duration,
        at: Instant,
    ) -> Issued {
        self.families.push(Family {
            client_id: client_id.to_owned(),
            scope: scope.clone(),
            revoked: false,
        });
        let family = self.families.len() as u64 - 1;
        let mut issued = self.mint(family, scope, at, true);
        if let Some(entry) = self.access.get_mut(&issued.access_token) {
            entry.expires_at = at + lifetime;
        }
        issued.expires_in = lifetime;
        issued
    }

    /// New tokens for `family`, with a new refresh token when `new_refresh`.
    pub(super) fn mint(
        &mut self,
        family: u64,
        scope: Option<String>,
        at: Instant,
        new_refresh: bool,
    ) -> Issued {
        let access_token = self.token("at_");
        let expires_in = self.policy.access_token_lifetime;
        self.access.insert(
            access_token.clone(),
            AccessEntry {
                family,
                scope: scope.clone(),
                expires_at: at + expires_in,
            },
        );
        let offline = self.policy.refresh_scope.as_deref().is_none_or(|needed| {
            scope
                .as_deref()
                .is_some_and(|s| s.split(' ').any(|granted| granted == needed))
        });
        let refresh_token =
            (new_refresh && self.policy.issue_refresh_tokens && offline).then(|| {
                let token = self.token("rt_");
                let expires_at = self.policy.refresh_token_lifetime.map(|l| at + l);
                self.refresh.insert(
                    token.clone(),
                    RefreshEntry {
                        family,
                        state: RefreshState::Active,
                        expires_at,
                    },
                );
                token
            });
        Issued {
            access_token,
            expires_in,
            refresh_token,
            scope,
        }
    }

    /// A refresh (RFC 6749 §6), with rotation and replay detection.
    pub(crate) fn refresh(
        &mut self,
        token: &str,
        client_id: &str,
        scope: Option<&str>,
        at: Instant,
        violations: &mut Vec<String>,
    ) -> RefreshVerdict {
        let Some(entry) = self.refresh.get_mut(token) else {
            // Not a violation: the client may hold a token of an earlier run.
            return RefreshVerdict::InvalidGrant("unknown refresh token");
        };
        let family_id = entry.family;
        let family = &mut self.families[usize::try_from(family_id).unwrap_or(usize::MAX)];
        match entry.state {
            RefreshState::Refused => {
                violations.push(
                    "used a refresh token again after it was refused with invalid_grant".into(),
                );
                return RefreshVerdict::InvalidGrant("the refresh token is no longer valid");
            }
            RefreshState::Rotated => {
                // RFC 9700 §4.14.2: a replayed rotated token means it may be
                // stolen; end the whole login.
                entry.state = RefreshState::Refused;
                family.revoked = true;
                violations.push(
                    "reused a rotated refresh token; the whole login is revoked (RFC 9700 §4.14.2)"
                        .into(),
                );
                return RefreshVerdict::InvalidGrant(
                    "the refresh token was already used; every token of this login is revoked",
                );
            }
            RefreshState::Active => {}
        }
        if family.revoked {
            entry.state = RefreshState::Refused;
            return RefreshVerdict::InvalidGrant("the login was revoked");
        }
        if entry.expires_at.is_some_and(|end| at >= end) {
            entry.state = RefreshState::Refused;
            return RefreshVerdict::InvalidGrant("the refresh token expired");
        }
        if family.client_id != client_id {
            violations.push("refresh with a token issued to another client".into());
            return RefreshVerdict::InvalidGrant("the refresh token was issued to another client");
        }
        let scope = match scope {
            None => family.scope.clone(),
            Some(asked) => {
                let granted: Vec<&str> = family.scope.as_deref().unwrap_or("").split(' ').collect();
                if let Some(extra) = asked
                    .split(' ')
                    .find(|s| !s.is_empty() && !granted.contains(s))
                {
                    return RefreshVerdict::InvalidScope(format!(
                        "scope `{extra}` was not granted at login (RFC 6749 §6)"
                    ));
                }
                Some(asked.to_owned())
            }
        };
        let rotate = self.policy.rotate_refresh_tokens;
        if rotate {
            entry.state = RefreshState::Rotated;
        }
        RefreshVerdict::Refreshed(self.mint(family_id, scope, at, rotate))
    }

    /// Whether `token` is an access token this emulator would accept at `at`.
    pub(crate) fn check_access(&self, token: &str, at: Instant) -> TokenCheck {
        let Some(entry) = self.access.get(token) else {
            return TokenCheck::Unknown;
        };
        let family = &self.families[usize::try_from(entry.family).unwrap_or(usize::MAX)];
        if family.revoked {
            TokenCheck::Revoked
        } else if at >= entry.expires_at {
            TokenCheck::Expired
        } else {
            TokenCheck::Valid {
                login: entry.family,
                client_id: family.client_id.clone(),
                scope: entry.scope.clone(),
                expires_at: entry.expires_at,
            }
        }
    }
}
