//! `tokenctl credential kubernetes NAME`: kubectl's exec credential plugin.
//!
//! kubectl runs the plugin named in the kubeconfig's `users[].user.exec`,
//! says in `$KUBERNETES_EXEC_INFO` (a JSON `ExecCredential` with the
//! `apiVersion` it speaks) what it expects, and reads one `ExecCredential`
//! on stdout whose `status` carries the token and its expiry, which kubectl
//! caches until then. Errors go to stderr with a non-zero exit, which
//! kubectl shows.

use std::io::Write;

use serde_json::json;
use tokend::client::Client;

use crate::exit::{self, Failure};
use crate::format;

/// The `ExecCredential` versions kubectl speaks.
const API_VERSIONS: [&str; 2] = [
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];

/// Writes the `ExecCredential` of `name`'s token to `out`, in the version
/// `exec_info` (the content of `$KUBERNETES_EXEC_INFO`) names, else v1.
pub fn exec_credential(
    client: &mut Client,
    name: &str,
    exec_info: Option<&str>,
    mut out: impl Write,
) -> Result<(), Failure> {
    let api_version = api_version(exec_info)?;
    let answer = crate::credential::token_for_a_keeping_client(client, name)?;
    let token = crate::usable(name, answer.access_token.expose())?;
    let mut status = json!({ "token": token });
    if let Some(expires_at) = answer.expires_at {
        status["expirationTimestamp"] = json!(format::rfc3339(expires_at));
    }
    let credential = json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": status,
    });
    let mut text = credential.to_string();
    text.push('\n');
    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    zeroize::Zeroize::zeroize(&mut text);
    written.map_err(|e| Failure::output(&e))
}

/// The version kubectl asked for in `$KUBERNETES_EXEC_INFO`; v1 when it
/// says nothing (kubectl before 1.22 sets no variable).
fn api_version(exec_info: Option<&str>) -> Result<&'static str, Failure> {
    let Some(info) = exec_info.filter(|i| !i.trim().is_empty()) else {
        return Ok(API_VERSIONS[0]);
    };
    let parsed: serde_json::Value = serde_json::from_str(info).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!("$KUBERNETES_EXEC_INFO is not JSON: {e}"),
        )
    })?;
    let asked = parsed["apiVersion"].as_str().unwrap_or_default();
    API_VERSIONS
        .iter()
        .find(|v| **v == asked)
        .copied()
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!(
                    "kubectl asks for ExecCredential `{}`; tokenctl speaks {}",
                    format::clean(asked),
                    API_VERSIONS.join(" and ")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_one_kubectl_asks_for() {
        assert_eq!(api_version(None).unwrap(), API_VERSIONS[0]);
        let beta = r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#;
        assert_eq!(api_version(Some(beta)).unwrap(), API_VERSIONS[1]);
        let err =
            api_version(Some(r#"{"apiVersion":"client.authentication.k8s.io/v9"}"#)).unwrap_err();
        assert!(err.message.contains("v9"), "{}", err.message);
        assert!(api_version(Some("{")).is_err());
    }
}
