//! Date-times as providers write them: ISO 8601 / RFC 3339 (Twilio in
//! practice), RFC 2822 (Twilio's description) and HTTP dates (`Date:`).

use std::time::{Duration, SystemTime};

use time::format_description::well_known::{Iso8601, Rfc2822, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// `at` (Unix seconds) as a person reads it in the daemon's words:
/// `2026-09-21 14:13:20 UTC` (as `tokenctl status` writes times).
#[must_use]
pub fn utc_text(at: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(at) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{at} s after 1970 UTC"),
    }
}

/// Reads an absolute date-time in any of the formats providers use:
/// RFC 3339 (`2025-07-01T12:00:00Z`), the wider ISO 8601
/// (`2025-07-01T12:00:00.000+02:00`), ISO 8601 without an offset read as
/// UTC (`2025-07-01T12:00:00`, or Python's `utcnow().isoformat()`,
/// `2025-07-01T12:00:00.414021`: Twilio's API is UTC throughout), any of
/// these with a space for the `T` (`2025-07-01 12:00:00`), RFC 2822
/// (`Tue, 01 Jul 2025 12:00:00 +0000`) and the HTTP date (`Tue, 01 Jul 2025
/// 12:00:00 GMT`). `None` for anything else, and for times before 1970.
#[must_use]
pub fn parse(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    // RFC 3339 §5.6 lets a space stand for the `T` between date and time
    // (Python's `str(datetime)`, SQL's timestamps): read it as the `T`.
    let with_t;
    let text = if text.len() > 11 && text.as_bytes()[10] == b' ' && text.as_bytes()[4] == b'-' {
        with_t = format!("{}T{}", &text[..10], &text[11..]);
        with_t.as_str()
    } else {
        text
    };
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .or_else(|_| {
            PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|_| OffsetDateTime::parse(text, &Rfc2822))
        .or_else(|_| http_date(text))
        .ok()
        .or_else(|| obsolete_http_date(text))?;
    let secs = u64::try_from(parsed.unix_timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, parsed.nanosecond()))
}

/// An HTTP date (RFC 9110 §5.6.7, IMF-fixdate) is RFC 2822 with the
/// obsolete zone name `GMT`, which strict RFC 2822 parsers may refuse.
fn http_date(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    let numeric = text
        .strip_suffix(" GMT")
        .or_else(|| text.strip_suffix(" UTC"))
        .or_else(|| text.strip_suffix(" UT"))
        .map_or_else(|| text.to_owned(), |rest| format!("{rest} +0000"));
    OffsetDateTime::parse(&numeric, &Rfc2822)
}

/// The two obsolete HTTP date forms, which RFC 9110 §5.6.7 says a
/// recipient must still read (a `Retry-After` in them was taken as none):
/// RFC 850's `Sunday, 06-Nov-94 08:49:37 GMT`, its two-digit year read as
/// the RFC says (one more than 50 years ahead is in the past), and C's
/// asctime `Sun Nov  6 08:49:37 1994`.
fn obsolete_http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::format_description::parse_borrowed::<2>;
    if let Some((weekday_day, rest)) = text.strip_suffix(" GMT").and_then(|t| t.split_once(", ")) {
        // `06-Nov-94 08:49:37`: the year widened to four digits.
        let (date, clock) = rest.split_once(' ')?;
        let (day_month, year) = date.rsplit_once('-')?;
        let year: i32 = year.parse().ok().filter(|_| year.len() == 2)?;
        let now = OffsetDateTime::now_utc().year();
        let mut full = now - now % 100 + year;
        if full > now + 50 {
            full -= 100;
        }
        let widened = format!("{weekday_day}, {day_month}-{full} {clock}");
        let layout =
            format("[weekday], [day]-[month repr:short]-[year] [hour]:[minute]:[second]").ok()?;
        return PrimitiveDateTime::parse(&widened, &layout)
            .ok()
            .map(PrimitiveDateTime::assume_utc);
    }
    let layout = format(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]",
    )
    .ok()?;
    PrimitiveDateTime::parse(text, &layout)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn every_format_providers_use() {
        // 2025-07-01T12:00:00Z
        let noon = unix(1_751_371_200);
        for text in [
            "2025-07-01T12:00:00Z",
            "2025-07-01T12:00:00+00:00",
            "2025-07-01T14:00:00+02:00",
            "2025-07-01T12:00:00.000Z",
            "Tue, 01 Jul 2025 12:00:00 +0000",
            "Tue, 01 Jul 2025 08:00:00 -0400",
            "Tue, 01 Jul 2025 12:00:00 GMT",
            " 2025-07-01T12:00:00Z ",
            // The obsolete HTTP dates (RFC 9110 §5.6.7): RFC 850's and
            // asctime's (a Retry-After in them was taken as none).
            "Tuesday, 01-Jul-25 12:00:00 GMT",
            "Tue Jul  1 12:00:00 2025",
        ] {
            assert_eq!(parse(text), Some(noon), "{text}");
        }
        assert_eq!(
            parse("9999-01-01T00:00:00Z"),
            Some(unix(253_370_764_800)),
            "far future dates are read (and judged by the caller)"
        );
    }

    #[test]
    fn utc_text_is_as_tokenctl_writes_times() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(1_790_000_000), "2026-09-21 14:13:20 UTC");
        assert_eq!(utc_text(951_825_600), "2000-02-29 12:00:00 UTC");
    }

    #[test]
    fn iso_8601_without_an_offset_is_utc() {
        let noon = unix(1_751_371_200);
        for text in [
            "2025-07-01T12:00:00",
            "2025-07-01T12:00:00.000",
            "2025-07-01T12:00",
            "20250701T120000",
        ] {
            assert_eq!(parse(text), Some(noon), "{text}");
        }
        // Python's `datetime.utcnow().isoformat()`: microseconds.
        assert_eq!(
            parse("2026-12-04T16:25:33.414021"),
            Some(unix(1_796_401_533) + Duration::from_micros(414_021))
        );
    }

    #[test]
    fn a_space_may_stand_for_the_t() {
        let noon = unix(1_751_371_200);
        for text in [
            "2025-07-01 12:00:00",
            "2025-07-01 12:00:00Z",
            "2025-07-01 14:00:00+02:00",
            "2025-07-01 12:00:00.000000",
        ] {
            assert_eq!(parse(text), Some(noon), "{text}");
        }
        for text in [
            "2025-07-01 ",
            "2025-07-01 noon",
            "Tue, 01 Jul 2025",
            "ééééé 12:00:00",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[test]
    fn garbage_and_prehistory_are_refused() {
        for text in [
            "",
            "tomorrow",
            "1751371200",
            "2025-07-01",
            "12:00:00",
            "2025-07-01T",
            "2025-07-01T25:00:00",
            "2025-07-01 noon",
            "2025-07-01T12:00:00 tomorrow",
            "2025-13-01T12:00:00Z",
            "2025-13-01T12:00:00",
            "1969-12-31T23:59:59Z",
            "1969-12-31T23:59:59",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
