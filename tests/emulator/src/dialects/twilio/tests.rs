use super::*;

fn twilio(date_format: TwilioDateFormat, error_style: TwilioErrorStyle) -> Twilio {
    Twilio::new(
        TwilioOptions {
            date_format,
            error_style,
            ..TwilioOptions::default()
        },
        "http://127.0.0.1:1",
    )
}

#[test]
fn dates_in_every_format() {
    // 2026-12-04T16:25:33.414021Z
    let now = SystemTime::UNIX_EPOCH
        + Duration::from_secs(1_796_401_533)
        + Duration::from_micros(414_021);
    let hour = Duration::from_secs(3600);
    for (format, expected) in [
        (TwilioDateFormat::Iso8601, "2026-12-04T17:25:33Z"),
        (TwilioDateFormat::Rfc2822, "Fri, 04 Dec 2026 17:25:33 +0000"),
        (
            TwilioDateFormat::Iso8601NoOffset,
            "2026-12-04T17:25:33.414021",
        ),
    ] {
        let dialect = twilio(format, TwilioErrorStyle::OAuth);
        assert_eq!(dialect.date(now, hour), json!(expected), "{format:?}");
    }
}

#[test]
fn opaque_errors_say_no_oauth_word() {
    let dialect = twilio(TwilioDateFormat::Iso8601, TwilioErrorStyle::TwilioOpaque);
    let words = [
        "_", "pending", "slow", "too many", "denied", "declined", "expired", "grant",
    ];
    for (reply, status, code, outcome) in [
        (
            dialect.error(400, "authorization_pending", "not yet"),
            400,
            20001,
            "authorization_pending",
        ),
        (
            dialect.error(400, "slow_down", "polling too fast"),
            429,
            20429,
            "slow_down",
        ),
        (
            dialect.invalid_grant("refresh token", "the refresh token expired"),
            400,
            20001,
            "invalid_grant",
        ),
        (
            dialect.invalid_grant("device code", "the device code is not valid"),
            400,
            20001,
            "invalid_grant",
        ),
        (
            dialect.error(401, "invalid_client", "wrong ClientSecret"),
            401,
            20003,
            "invalid_client",
        ),
    ] {
        let body = reply.json_body();
        assert_eq!(reply.status, status, "{body}");
        assert_eq!(reply.outcome, outcome, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], status, "{body}");
        assert!(body.get("error").is_none(), "{body}");
        let message = body["message"].as_str().unwrap().to_ascii_lowercase();
        for word in words {
            assert!(!message.contains(word), "{word:?} in {body}");
        }
    }
    // A denial and an expiry are told apart from pending by their words.
    let denied = dialect.error(400, "access_denied", "the person denied the request");
    assert!(
        denied.json_body()["message"]
            .as_str()
            .unwrap()
            .contains("rejected"),
    );
    let expired = dialect.error(400, "expired_token", "the device code expired");
    assert!(
        expired.json_body()["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
    );
}

#[test]
fn the_other_styles_are_unchanged() {
    let oauth = twilio(TwilioDateFormat::Iso8601, TwilioErrorStyle::OAuth)
        .invalid_grant("refresh token", "the login was revoked");
    assert_eq!(oauth.status, 400);
    assert_eq!(oauth.json_body()["error"], "invalid_grant");
    let twilio = twilio(TwilioDateFormat::Iso8601, TwilioErrorStyle::Twilio).error(
        400,
        "slow_down",
        "polling too fast",
    );
    assert_eq!(twilio.status, 400);
    assert_eq!(twilio.json_body()["message"], "slow_down: polling too fast");
}
