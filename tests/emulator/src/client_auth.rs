//! Client authentication, strictly (RFC 6749 §2.3): the one client an
//! emulator knows, and how it must prove who it is.
//!
//! The emulator is stricter than most real providers on purpose: whatever
//! it lets through, a real provider may refuse. Every refusal caused by the
//! client is also recorded as a violation, so a test fails even when the
//! client happened to recover.

// A refusal is a whole answer (`Reply`), passed back once per request: its
// size does not matter, and `?` on it keeps the endpoint code linear.
#![allow(clippy::result_large_err)]

use crate::form::Form;
use crate::received::Received;
use crate::reply::Reply;

/// How a client must authenticate (RFC 6749 §2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientAuthMode {
    /// A public client: `client_id` in the body, no secret at all.
    #[default]
    Public,
    /// `client_secret` in the body beside `client_id` (`client_secret_post`).
    SecretPost(String),
    /// HTTP Basic with the form-encoded id and secret (`client_secret_basic`);
    /// `client_id` may also be in the body, and must then match.
    SecretBasic(String),
}

/// The one client an emulator knows.
#[derive(Debug, Clone)]
pub(crate) struct ClientRegistration {
    /// Its id.
    pub client_id: String,
    /// How it must authenticate.
    pub auth: ClientAuthMode,
}

impl ClientRegistration {
    /// Checks the client authentication of a form request.
    ///
    /// # Errors
    /// 401 `invalid_client` for missing, wrong or unexpected credentials,
    /// 400 `invalid_request` for two methods at once; each with a violation.
    pub(crate) fn authenticate(&self, request: &Received, form: &Form) -> Result<(), Reply> {
        let refuse = |why: &str| {
            Reply::invalid_client(why).violation(format!("client authentication: {why}"))
        };
        let basic = match request.basic_credentials() {
            Some(Ok(credentials)) => Some(credentials),
            Some(Err(why)) => return Err(refuse(why)),
            None => None,
        };
        let post_secret = form.get("client_secret");
        if basic.is_some() && post_secret.is_some() {
            return Err(Reply::invalid_request(
                "the client used HTTP Basic and client_secret at once (RFC 6749 §2.3: one method per request)",
            ));
        }
        let body_id = form.get("client_id");
        if let (Some((basic_id, _)), Some(body_id)) = (&basic, body_id)
            && basic_id != body_id
        {
            return Err(refuse(
                "`client_id` in the body differs from the HTTP Basic user",
            ));
        }
        let Some(id) = basic.as_ref().map(|(id, _)| id.as_str()).or(body_id) else {
            return Err(refuse("no client authentication and no `client_id`"));
        };
        if id != self.client_id {
            return Err(refuse(&format!("unknown client `{id}`")));
        }
        let basic_secret = basic.as_ref().map(|(_, secret)| secret.as_str());
        // Plain comparisons: this is a test tool, timing attacks are moot.
        match (&self.auth, basic_secret, post_secret) {
            (ClientAuthMode::Public, None, None) => Ok(()),
            (ClientAuthMode::Public, _, _) => Err(refuse(
                "the client is public (no secret registered) but sent a secret",
            )),
            (ClientAuthMode::SecretPost(secret), None, Some(sent)) if sent == secret => Ok(()),
            (ClientAuthMode::SecretBasic(secret), Some(sent), None) if sent == secret => Ok(()),
            (ClientAuthMode::SecretPost(_), Some(_), _) => Err(refuse(
                "the client must use client_secret_post but sent HTTP Basic",
            )),
            (ClientAuthMode::SecretBasic(_), _, Some(_)) => Err(refuse(
                "the client must use client_secret_basic but sent client_secret in the body",
            )),
            (_, None, None) => Err(refuse("the client sent no secret")),
            _ => Err(refuse("wrong client secret")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::received::test_post;

    const FORM: &str = "application/x-www-form-urlencoded";

    fn check(auth: ClientAuthMode, body: &str, authorization: Option<&str>) -> Result<(), u16> {
        let client = ClientRegistration {
            client_id: "cid".into(),
            auth,
        };
        let r = test_post(Some(FORM), body, authorization);
        let form = Form::parse_strict(&r).unwrap();
        client.authenticate(&r, &form).map_err(|reply| {
            assert!(!reply.violations.is_empty());
            reply.status
        })
    }

    #[test]
    fn client_authentication_modes() {
        let basic = Some("Basic Y2lkOnNlY3JldA=="); // cid:secret
        let post = || ClientAuthMode::SecretPost("secret".into());
        let basic_mode = || ClientAuthMode::SecretBasic("secret".into());
        assert_eq!(check(ClientAuthMode::Public, "client_id=cid", None), Ok(()));
        assert_eq!(
            check(ClientAuthMode::Public, "client_id=other", None),
            Err(401)
        );
        assert_eq!(check(ClientAuthMode::Public, "", None), Err(401));
        assert_eq!(
            check(ClientAuthMode::Public, "client_id=cid", basic),
            Err(401)
        );
        assert_eq!(
            check(post(), "client_id=cid&client_secret=secret", None),
            Ok(())
        );
        assert_eq!(
            check(post(), "client_id=cid&client_secret=nope", None),
            Err(401)
        );
        assert_eq!(check(post(), "client_id=cid", None), Err(401));
        assert_eq!(check(post(), "client_id=cid", basic), Err(401));
        assert_eq!(check(basic_mode(), "client_id=cid", basic), Ok(()));
        assert_eq!(check(basic_mode(), "", basic), Ok(()));
        assert_eq!(check(basic_mode(), "client_id=other", basic), Err(401));
        assert_eq!(
            check(basic_mode(), "client_id=cid&client_secret=secret", None),
            Err(401)
        );
        assert_eq!(
            check(basic_mode(), "client_id=cid&client_secret=secret", basic),
            Err(400)
        );
    }
}
