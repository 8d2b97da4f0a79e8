//! What the answers of every dialect share: durations in whole seconds and
//! the RFC 6749 token and error bodies, which each dialect then renames,
//! re-types or trims to its own taste.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::authority::Issued;

/// Whole seconds for the wire, rounded up so a client never polls faster.
pub(crate) fn wire_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The body of a successful token answer (RFC 6749 §5.1).
pub(crate) fn token_body(issued: &Issued) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("access_token".into(), issued.access_token.clone().into());
    body.insert("token_type".into(), "Bearer".into());
    body.insert("expires_in".into(), wire_seconds(issued.expires_in).into());
    if let Some(refresh_token) = &issued.refresh_token {
        body.insert("refresh_token".into(), refresh_token.clone().into());
    }
    if let Some(scope) = &issued.scope {
        body.insert("scope".into(), scope.clone().into());
    }
    body
}

/// The body of an OAuth error answer (RFC 6749 §5.2).
pub(crate) fn error_body(error: &str, description: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("error".into(), error.into());
    body.insert("error_description".into(), description.into());
    body
}
