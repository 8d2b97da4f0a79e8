//! Reading a device authorization answer (RFC 8628 §3.2): the user code,
//! where to enter it, and how long and how often to poll.

use super::{
    AnswerFields, AnswerFormat, MAX_DEVICE_CODE_LIFETIME, MAX_POLL_INTERVAL, Rounding,
    clean_detail, describe_body, failure_from_answer, is_success, malformed,
};
use crate::provider::{DeviceAuthorization, HttpResponse, ProviderError};
use crate::secret::Secret;

/// Reads a device authorization answer (RFC 8628 §3.2), tolerating
/// `verification_url` and string numbers.
///
/// # Errors
/// A classified failure; [`ProviderError::IncompleteDeviceAnswer`] when a
/// required field is missing, [`ProviderError::Malformed`] when one is
/// unreadable or unbelievable.
pub fn device_authorization(
    format: &AnswerFormat,
    response: &HttpResponse,
) -> Result<DeviceAuthorization, ProviderError> {
    let fields = AnswerFields::parse(response);
    match fields {
        Some(f) if is_success(response) && format.read_error(&f).is_none() => {
            device_authorization_fields(format, response, &f)
        }
        // Named for what was expected here (the shared reading says "a
        // token answer").
        None if is_success(response) => Err(malformed(
            response,
            format!(
                "expected a device authorization answer, got {}",
                describe_body(response)
            ),
        )),
        other => Err(failure_from_answer(format, response, other.as_ref())),
    }
}

/// Reads the fields of a successful device authorization answer.
///
/// # Errors
/// [`ProviderError::IncompleteDeviceAnswer`] when a required field is
/// missing, [`ProviderError::Malformed`] when one is unreadable or
/// unbelievable.
pub fn device_authorization_fields(
    format: &AnswerFormat,
    response: &HttpResponse,
    fields: &AnswerFields,
) -> Result<DeviceAuthorization, ProviderError> {
    let malformed = |problem: String| malformed(response, problem);
    // A field left out (absent, null or empty) is the provider's answer
    // as it stands, which a new login gets again: not "retry later". A
    // field of the wrong type stays malformed, as any unreadable answer.
    let missing = |name: &str| ProviderError::IncompleteDeviceAnswer {
        endpoint: response.url.as_str().to_owned(),
        problem: fields.why_no_text(name),
    };
    let required = |name: &str| {
        fields
            .text(&[name])
            .filter(|v| !v.is_empty())
            .ok_or_else(|| match fields.map().get(name) {
                None | Some(serde_json::Value::Null | serde_json::Value::String(_)) => {
                    missing(name)
                }
                Some(_) => malformed(format!(
                    "{} in the device authorization answer",
                    fields.why_no_text(name)
                )),
            })
    };
    let device_code = Secret::new(required("device_code")?);
    let user_code = clean_detail(&required("user_code")?);
    let expires_in = fields
        // A longer life (a realm's two-day device codes) is used for a day:
        // the person has that long, and the login is possible at all.
        .seconds_at_most("expires_in", MAX_DEVICE_CODE_LIFETIME, Rounding::Down)
        .map_err(malformed)?
        // Only a dialect whose fields are documented nullable (Twilio)
        // has a lifetime to stand in for it.
        .or(format.default_device_lifetime)
        .ok_or_else(|| missing("expires_in"))?;
    if expires_in.is_zero() {
        return Err(malformed(
            "no usable `expires_in` in the device authorization answer (under a second)".to_owned(),
        ));
    }
    let interval = fields
        .seconds("interval", MAX_POLL_INTERVAL, Rounding::Up)
        .map_err(malformed)?;
    let non_empty = |names: &[&str]| fields.text(names).filter(|v| !v.trim().is_empty());
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri: non_empty(&["verification_uri", "verification_url"]),
        verification_uri_complete: non_empty(&[
            "verification_uri_complete",
            "verification_url_complete",
        ]),
        expires_in,
        interval: interval.filter(|d| !d.is_zero()),
        message: non_empty(&["message"]).map(|m| clean_detail(&m)),
    })
}
