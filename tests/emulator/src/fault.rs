//! Injected failures: what a bad network, a proxy or a broken provider does.
//!
//! A fault replaces the answer to one request; the request never reaches
//! the emulated provider, so no state changes (except [`Fault::Delay`],
//! which delays a real answer, and [`Fault::Garbled`], which spoils one). Faults wait in a queue per endpoint and each
//! request takes the first one for its endpoint.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use crate::body::ReplyBody;
use crate::record::Endpoint;
use crate::reply::{Delivery, Reply};

/// A failure to inject into the answers of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a short `text/plain` body (a load
    /// balancer's 502, a 503 during maintenance, a 429).
    Status(u16),
    /// Answer with this status (429, 503) and a `Retry-After` header of
    /// this value (seconds, or an HTTP-date), as a rate limiter or a
    /// service in maintenance does.
    RetryAfter {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` value, verbatim.
        retry_after: String,
    },
    /// Answer with this status and an OAuth error (`invalid_grant` for 400,
    /// else `server_error`) whose `error_description` echoes the request's
    /// body and `Authorization` header, as a debugging proxy or a
    /// framework's error page may: secrets included.
    EchoRequest(u16),
    /// Answer with this status and an HTML page (a captive portal's 200,
    /// a proxy's 500 error page).
    Html(u16),
    /// Answer with exactly this status, content type and body.
    Body {
        /// HTTP status.
        status: u16,
        /// The `Content-Type` header; `None` sends none.
        content_type: Option<String>,
        /// The body, verbatim.
        body: Bytes,
    },
    /// 200 `application/json` with a body of this many bytes (filler), its
    /// `Content-Length` announced up front.
    Huge(u64),
    /// 200 `application/json` with a chunked body that never ends, sent as
    /// fast as the client reads.
    Endless,
    /// 200 `application/json` with a chunked body of one byte per period,
    /// forever: only a total timeout ends it.
    Drip(Duration),
    /// Never answer; the connection stays open until the client gives up
    /// or the emulator stops.
    Hang,
    /// Close the connection without any answer (an "empty reply").
    Close,
    /// Send 200 and part of a JSON body whose `Content-Length` promises
    /// more, then reset the connection (TCP RST).
    ResetMidBody,
    /// `307 Temporary Redirect` to this location (a redirect that would
    /// resend the POST, credentials included, elsewhere).
    Redirect(String),
    /// Answer as the provider does (its state changes: a refresh token it
    /// rotates is retired), with the JSON body spoiled as `Garble` says: a
    /// provider's bug, or a middlebox's, after the provider did its part.
    /// Only a success answer is spoiled and counted: an error answer (a
    /// pending poll) passes as it is, and the fault waits for a success.
    Garbled(Garble),
    /// Answer normally, but only after this long. The answer is decided
    /// (and state changed) on arrival, so a client that gives up earlier
    /// loses an answer the provider did give: a rotated refresh token is
    /// gone.
    Delay(Duration),
    /// As [`Self::Delay`], for a success answer only: an error answer (a
    /// pending poll) passes at once, and the fault waits for a success.
    /// A login whose approved poll's answer comes too late: the provider
    /// has spent the device code on tokens the client never reads.
    LateSuccess(Duration),
}

/// How [`Fault::Garbled`] spoils a real answer's JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garble {
    /// The `access_token` field left out, the rest (a new refresh token)
    /// as the provider sent it.
    WithoutAccessToken,
    /// Bytes after the JSON object (a proxy's comment), which no JSON
    /// reader takes.
    TrailingBytes,
}

impl Garble {
    /// `body`, a JSON object, spoiled; unchanged when it is not one.
    #[must_use]
    pub fn apply(self, body: &[u8]) -> Bytes {
        match self {
            Self::WithoutAccessToken => {
                match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
                    Ok(mut object) => {
                        object.remove("access_token");
                        Bytes::from(serde_json::Value::Object(object).to_string())
                    }
                    Err(_) => Bytes::copy_from_slice(body),
                }
            }
            Self::TrailingBytes => {
                let mut spoiled = body.to_vec();
                spoiled.extend_from_slice(b"\n<!-- served by a proxy -->\n");
                Bytes::from(spoiled)
            }
        }
    }
}

/// `at` as an HTTP-date (IMF-fixdate, RFC 9110 §5.6.7):
/// `Sun, 06 Nov 1994 08:49:37 GMT`, for [`Fault::RetryAfter`].
#[must_use]
pub fn http_date(at: std::time::SystemTime) -> String {
    use time::format_description::well_known::Rfc2822;
    // RFC 2822's form with the zone written `GMT`, as HTTP wants it.
    time::OffsetDateTime::from(at)
        .format(&Rfc2822)
        .map(|date| date.replace("+0000", "GMT"))
        .unwrap_or_default()
}

impl Fault {
    /// The outcome label recorded for a request this fault answered.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Status(_) => "fault:status",
            Self::RetryAfter { .. } => "fault:retry_after",
            Self::EchoRequest(_) => "fault:echo",
            Self::Html(_) => "fault:html",
            Self::Body { .. } => "fault:body",
            Self::Huge(_) => "fault:huge",
            Self::Endless => "fault:endless",
            Self::Drip(_) => "fault:drip",
            Self::Hang => "fault:hang",
            Self::Close => "fault:close",
            Self::ResetMidBody => "fault:reset",
            Self::Redirect(_) => "fault:redirect",
            Self::Delay(_) => "fault:delay",
            Self::LateSuccess(_) => "fault:late_success",
            Self::Garbled(_) => "fault:garbled",
        }
    }

    /// The answer this fault gives to `request`, or `None` for
    /// [`Fault::Delay`], whose answer is the real one.
    pub(crate) fn reply_to(&self, request: &crate::received::Received) -> Option<Reply> {
        let Self::EchoRequest(status) = self else {
            return self.reply();
        };
        let echoed = format!(
            "could not process {} with Authorization {}",
            String::from_utf8_lossy(&request.body),
            request.header("authorization").unwrap_or("none")
        );
        let error = if *status == 400 {
            "invalid_grant"
        } else {
            "server_error"
        };
        let body = serde_json::json!({"error": error, "error_description": echoed});
        Some(
            Reply::new(
                *status,
                Some("application/json"),
                ReplyBody::full(Bytes::from(body.to_string())),
            )
            .outcome(self.label()),
        )
    }

    /// The answer this fault gives, or `None` for [`Fault::Delay`], whose
    /// answer is the real one (and for [`Fault::EchoRequest`], which needs
    /// the request: [`Self::reply_to`]).
    pub(crate) fn reply(&self) -> Option<Reply> {
        const JSON: Option<&str> = Some("application/json");
        let reply = match self {
            Self::Status(status) => {
                Reply::text(*status, format!("injected fault: HTTP {status}\n"))
            }
            Self::RetryAfter {
                status,
                retry_after,
            } => Reply::text(*status, format!("injected fault: HTTP {status}\n"))
                .header(hyper::header::RETRY_AFTER, retry_after),
            Self::Html(status) => Reply::html(*status, html_page(*status)),
            Self::Body {
                status,
                content_type,
                body,
            } => Reply::new(
                *status,
                content_type.as_deref(),
                ReplyBody::full(body.clone()),
            ),
            Self::Huge(len) => Reply::new(200, JSON, ReplyBody::Sized { remaining: *len }),
            Self::Endless => Reply::new(200, JSON, ReplyBody::Endless),
            Self::Drip(period) => Reply::new(200, JSON, ReplyBody::drip(*period)),
            Self::Hang => Reply {
                delivery: Delivery::Never,
                ..Reply::new(200, None, ReplyBody::empty())
            },
            Self::Close => Reply {
                delivery: Delivery::Close,
                ..Reply::new(200, None, ReplyBody::empty())
            },
            Self::ResetMidBody => {
                let head = Bytes::from_static(b"{\"access_token\":\"at_cut_");
                Reply {
                    delivery: Delivery::NowThenReset,
                    ..Reply::new(200, JSON, ReplyBody::cut(head, 1024))
                }
            }
            Self::Redirect(location) => {
                Reply::text(307, "redirected\n").header(hyper::header::LOCATION, location)
            }
            Self::Delay(_) | Self::LateSuccess(_) | Self::EchoRequest(_) | Self::Garbled(_) => {
                return None;
            }
        };
        Some(reply.outcome(self.label()))
    }
}

fn html_page(status: u16) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Network login</title></head>\n\
         <body><h1>Sign in to the network</h1><p>Injected fault: an HTML page with HTTP {status} \
         where an OAuth answer was expected.</p></body></html>\n"
    )
}

/// Faults waiting for requests, in the order they were injected.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    queue: VecDeque<(Endpoint, Fault, usize)>,
}

impl FaultPlan {
    /// The next `count` requests to `endpoint` (after the ones already
    /// planned for it) get `fault`.
    pub(crate) fn add(&mut self, endpoint: Endpoint, fault: Fault, count: usize) {
        if count > 0 {
            self.queue.push_back((endpoint, fault, count));
        }
    }

    /// The fault for one request to `endpoint`, if any is planned.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let index = self.queue.iter().position(|(e, _, _)| *e == endpoint)?;
        let entry = &mut self.queue[index];
        entry.2 -= 1;
        let fault = entry.1.clone();
        if entry.2 == 0 {
            self.queue.remove(index);
        }
        Some(fault)
    }

    /// Plans `fault` again for the next request to `endpoint`, before any
    /// other planned for it (a fault that did not apply to this one).
    pub(crate) fn put_back(&mut self, endpoint: Endpoint, fault: Fault) {
        self.queue.push_front((endpoint, fault, 1));
    }

    /// Forgets every planned fault.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_taken_in_order_per_endpoint() {
        let mut plan = FaultPlan::default();
        plan.add(Endpoint::Token, Fault::Status(503), 2);
        plan.add(Endpoint::DeviceAuthorization, Fault::Hang, 1);
        plan.add(Endpoint::Token, Fault::Endless, 1);
        plan.add(Endpoint::Token, Fault::Close, 0);
        assert_eq!(plan.take(Endpoint::Discovery), None);
        assert_eq!(plan.take(Endpoint::Token), Some(Fault::Status(503)));
        assert_eq!(plan.take(Endpoint::DeviceAuthorization), Some(Fault::Hang));
        assert_eq!(plan.take(Endpoint::Token), Some(Fault::Status(503)));
        assert_eq!(plan.take(Endpoint::Token), Some(Fault::Endless));
        assert_eq!(plan.take(Endpoint::Token), None);
        plan.add(Endpoint::Token, Fault::Close, 5);
        plan.clear();
        assert_eq!(plan.take(Endpoint::Token), None);
    }

    #[test]
    fn http_dates_are_imf_fixdates() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(super::http_date(at), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn fault_answers() {
        let reply = Fault::Status(503).reply().unwrap();
        assert_eq!(
            (reply.status, reply.outcome.as_str()),
            (503, "fault:status")
        );
        let reply = Fault::Redirect("http://elsewhere/".into()).reply().unwrap();
        assert_eq!(reply.status, 307);
        assert_eq!(
            reply.header_value(&hyper::header::LOCATION),
            Some("http://elsewhere/")
        );
        assert_eq!(Fault::Hang.reply().unwrap().recorded_status(), None);
        assert_eq!(Fault::Close.reply().unwrap().recorded_status(), None);
        assert_eq!(
            Fault::ResetMidBody.reply().unwrap().recorded_status(),
            Some(200)
        );
        assert!(Fault::Delay(Duration::from_secs(1)).reply().is_none());
    }
}
