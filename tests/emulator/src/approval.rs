//! The page where a person approves or denies a device (RFC 8628 §3.3),
//! plus curl-friendly shortcuts for the demo.
//!
//! Shared by every dialect; each chooses its own paths. The page is plain
//! HTML with a label, one input and two buttons: it works with a keyboard,
//! a screen reader and without JavaScript. Everything echoed is escaped.

use std::fmt::Write as _;

use crate::authority::{ApprovalError, Authority, IssuedCode};
use crate::received::Received;
use crate::reply::Reply;

/// Where the approval routes live.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalPaths {
    /// `GET`: the form; `POST`: its submission (`user_code`, `action`).
    pub page: String,
    /// `POST user_code=...`: approve, answered in plain text.
    pub approve: String,
    /// `POST user_code=...`: deny, answered in plain text.
    pub deny: String,
}

impl ApprovalPaths {
    /// Whether `path` is one of these routes.
    pub(crate) fn contains(&self, path: &str) -> bool {
        path == self.page || path == self.approve || path == self.deny
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Approve,
    Deny,
}

/// Text safe inside HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Answers a request to one of the approval routes.
pub(crate) fn answer(
    request: &Received,
    paths: &ApprovalPaths,
    authority: &mut Authority,
) -> Reply {
    let post = request.method == hyper::Method::POST;
    let get = request.method == hyper::Method::GET;
    // The page is for browsers and curl: read the form leniently.
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if request.path == paths.page {
        if get {
            let typed = request.query_value("user_code").unwrap_or_default();
            let pending = authority.pending(&typed, request.at);
            return Reply::html(200, form_page(&paths.page, &typed, pending.as_ref()))
                .outcome("page");
        }
        if !post {
            return Reply::method_not_allowed("GET, POST");
        }
        let decision = match field("action").as_deref() {
            Some("approve") => Decision::Approve,
            Some("deny") => Decision::Deny,
            _ => {
                return Reply::html(
                    400,
                    result_page(&paths.page, "Choose Approve or Deny", None),
                )
                .outcome("approval_failed");
            }
        };
        return decide(
            authority,
            request,
            field("user_code"),
            decision,
            |status, title, text| Reply::html(status, result_page(&paths.page, title, Some(text))),
        );
    }
    if !post {
        return Reply::method_not_allowed("POST");
    }
    let decision = if request.path == paths.approve {
        Decision::Approve
    } else {
        Decision::Deny
    };
    decide(
        authority,
        request,
        field("user_code"),
        decision,
        |status, _, text| Reply::text(status, format!("{text}\n")),
    )
}

/// Applies `decision` and renders the outcome with `render(status, title, text)`.
fn decide(
    authority: &mut Authority,
    request: &Received,
    user_code: Option<String>,
    decision: Decision,
    render: impl Fn(u16, &str, &str) -> Reply,
) -> Reply {
    let Some(user_code) = user_code else {
        return render(400, "No code", "Enter the code shown on the device.")
            .outcome("approval_failed");
    };
    let result = match decision {
        Decision::Approve => authority.approve(&user_code, request.at),
        Decision::Deny => authority.deny(&user_code, request.at),
    };
    match result {
        Ok(code) => {
            let (title, text, outcome) = match decision {
                Decision::Approve => (
                    "Device connected",
                    format!(
                        "Approved {}: the device now gets its tokens.",
                        code.user_code
                    ),
                    "approved",
                ),
                Decision::Deny => (
                    "Access denied",
                    format!("Denied {}: the device gets no tokens.", code.user_code),
                    "denied",
                ),
            };
            render(200, title, &text)
                .outcome(outcome)
                .detail(format!("user code {}", code.user_code))
        }
        Err(error) => {
            let status = if error == ApprovalError::UnknownCode {
                404
            } else {
                409
            };
            render(
                status,
                "Not done",
                &format!("{}: {error}.", user_code.to_uppercase()),
            )
            .outcome("approval_failed")
            .detail(error.to_string())
        }
    }
}

const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>Connect a device - tokend provider emulator</title>\n\
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;line-height:1.5}\
input{font-size:1.5rem;letter-spacing:.15em;text-transform:uppercase;width:12ch}\
button{font-size:1rem;padding:.4rem 1rem;margin:.5rem .5rem 0 0}</style>\n</head>\n<body>\n<main>\n";

const FOOT: &str = "<p><small>tokend provider emulator: a test provider, its tokens open nothing.</small></p>\n</main>\n</body>\n</html>\n";

fn form_page(action: &str, typed: &str, pending: Option<&IssuedCode>) -> String {
    let mut page = String::from(HEAD);
    page.push_str("<h1>Connect a device</h1>\n");
    match pending {
        Some(code) => {
            let _ = writeln!(
                page,
                "<p>The application <strong>{}</strong> asks for access{}.</p>",
                escape(&code.client_id),
                code.scope
                    .as_deref()
                    .map(|s| format!(" to <strong>{}</strong>", escape(s)))
                    .unwrap_or_default()
            );
        }
        None if !typed.is_empty() => {
            let _ = writeln!(
                page,
                "<p role=\"alert\">No device is waiting for the code {}.</p>",
                escape(typed)
            );
        }
        None => page.push_str("<p>Enter the code your device shows.</p>\n"),
    }
    let _ = write!(
        page,
        "<form method=\"post\" action=\"{}\">\n\
         <label for=\"user_code\">Code shown on the device</label><br>\n\
         <input id=\"user_code\" name=\"user_code\" value=\"{}\" required autocomplete=\"off\" \
         autocapitalize=\"characters\" spellcheck=\"false\" aria-describedby=\"code_help\"><br>\n\
         <small id=\"code_help\">Eight letters, like BCDF-GHJK; case and dash do not matter.</small><br>\n\
         <button type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\n\
         <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\n\
         </form>\n",
        escape(action),
        escape(typed)
    );
    page.push_str(FOOT);
    page
}

fn result_page(back: &str, title: &str, text: Option<&str>) -> String {
    let mut page = String::from(HEAD);
    let _ = writeln!(page, "<h1>{}</h1>", escape(title));
    if let Some(text) = text {
        let _ = writeln!(page, "<p role=\"status\">{}</p>", escape(text));
    }
    let _ = writeln!(
        page,
        "<p><a href=\"{}\">Enter another code</a></p>",
        escape(back)
    );
    page.push_str(FOOT);
    page
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime};

    use bytes::Bytes;
    use hyper::{HeaderMap, Method};

    use super::*;
    use crate::authority::{CodeStatus, Policy, SLOW_DOWN_STEP};

    fn authority() -> Authority {
        Authority::new(Policy {
            interval: Duration::from_secs(5),
            device_code_lifetime: Duration::from_secs(600),
            access_token_lifetime: Duration::from_secs(3600),
            refresh_token_lifetime: None,
            issue_refresh_tokens: true,
            rotate_refresh_tokens: true,
            poll_tolerance: Duration::ZERO,
            slow_down_step: SLOW_DOWN_STEP,
            refresh_scope: None,
        })
    }

    fn paths() -> ApprovalPaths {
        ApprovalPaths {
            page: "/device".into(),
            approve: "/device/approve".into(),
            deny: "/device/deny".into(),
        }
    }

    fn request(method: Method, path: &str, query: Option<&str>, body: &str) -> Received {
        Received {
            method,
            path: path.into(),
            query: query.map(str::to_owned),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            at: Instant::now(),
            at_system: SystemTime::now(),
        }
    }

    fn text(reply: &Reply) -> String {
        String::from_utf8(reply.body.bytes().unwrap().to_vec()).unwrap()
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn page_prefills_and_escapes() {
        let mut a = authority();
        let code = a.start("<cid>", Some("read"), Vec::new(), Instant::now());
        let query = format!("user_code={}", code.user_code);
        let reply = answer(
            &request(Method::GET, "/device", Some(&query), ""),
            &paths(),
            &mut a,
        );
        let page = text(&reply);
        assert_eq!(reply.status, 200);
        assert!(page.contains(&format!("value=\"{}\"", code.user_code)));
        assert!(page.contains("&lt;cid&gt;") && !page.contains("<cid>"));
        let reply = answer(
            &request(Method::GET, "/device", Some("user_code=%3Cscript%3E"), ""),
            &paths(),
            &mut a,
        );
        let page = text(&reply);
        assert!(!page.contains("<script>") && page.contains("&lt;script&gt;"));
    }

    #[test]
    fn form_and_curl_decisions() {
        let mut a = authority();
        let t0 = Instant::now();
        let first = a.start("cid", None, Vec::new(), t0);
        let second = a.start("cid", None, Vec::new(), t0);
        let body = format!(
            "user_code={}&action=approve",
            first.user_code.to_lowercase()
        );
        let reply = answer(
            &request(Method::POST, "/device", None, &body),
            &paths(),
            &mut a,
        );
        assert_eq!((reply.status, reply.outcome.as_str()), (200, "approved"));
        let reply = answer(
            &request(Method::POST, "/device", None, &body),
            &paths(),
            &mut a,
        );
        assert_eq!(
            (reply.status, reply.outcome.as_str()),
            (409, "approval_failed")
        );
        let body = format!("user_code={}", second.user_code);
        let reply = answer(
            &request(Method::POST, "/device/deny", None, &body),
            &paths(),
            &mut a,
        );
        assert_eq!(reply.status, 200);
        assert!(text(&reply).starts_with("Denied"));
        let reply = answer(
            &request(Method::POST, "/device/approve", None, "user_code=XXXX-XXXX"),
            &paths(),
            &mut a,
        );
        assert_eq!(reply.status, 404);
        let reply = answer(
            &request(Method::GET, "/device/approve", None, ""),
            &paths(),
            &mut a,
        );
        assert_eq!(reply.status, 405);
        let statuses: Vec<_> = a.codes(t0).iter().map(|c| c.status).collect();
        assert_eq!(statuses, [CodeStatus::Approved, CodeStatus::Denied]);
    }
}
