//! Text for people: durations, times, and daemon-supplied strings made safe
//! to print.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now as Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A duration, rounded to its two largest units: `45s`, `14m 32s`, `2h 5m`, `3d 4h`.
pub fn duration(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) if seconds == 0 => format!("{minutes}m"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, 0) => format!("{hours}h"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        (_, 0, _) => format!("{days}d"),
        _ => format!("{days}d {hours}h"),
    }
}

/// A countdown clock: `14:32`, `1:02:03`.
pub fn countdown(secs: u64) -> String {
    let (hours, minutes, seconds) = (secs / 3_600, secs / 60 % 60, secs % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// `at` relative to `now`: `in 5m`, `3m ago`, `now`.
pub fn relative(at: i64, now: i64) -> String {
    let delta = at.saturating_sub(now);
    match delta.cmp(&0) {
        std::cmp::Ordering::Greater => format!("in {}", duration(delta.unsigned_abs())),
        std::cmp::Ordering::Less => format!("{} ago", duration(delta.unsigned_abs())),
        std::cmp::Ordering::Equal => "now".into(),
    }
}

/// Unix seconds as `2026-05-01 12:00:00 UTC`.
///
/// UTC because the time zone database is not worth a dependency in a
/// helper whose job is one request; the relative form says the rest.
pub fn utc(at: i64) -> String {
    let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `at` (Unix seconds) as RFC 3339 in UTC: `2026-09-21T14:13:20Z`.
pub fn rfc3339(at: i64) -> String {
    let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`, exact for every `i64` day count that fits a year).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A daemon- or provider-supplied string fit for one line of a terminal:
/// control characters (newlines, escape sequences a hostile provider could
/// use to rewrite the screen) and the invisible ones that reorder or break
/// text become spaces: the daemon's own rule for provider text
/// (`url_rule::is_deceptive`), kept here too for an older daemon.
pub fn clean(text: &str) -> Cow<'_, str> {
    use tokend::provider::url_rule::is_deceptive;
    if text.chars().any(is_deceptive) {
        Cow::Owned(
            text.chars()
                .map(|c| if is_deceptive(c) { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_two_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(60), "1m");
        assert_eq!(duration(872), "14m 32s");
        assert_eq!(duration(3_600), "1h");
        assert_eq!(duration(7_530), "2h 5m");
        assert_eq!(duration(86_400 * 3 + 3_600 * 4 + 59), "3d 4h");
        assert_eq!(duration(86_400 * 2 + 60), "2d");
    }

    #[test]
    fn countdowns_are_clocks() {
        assert_eq!(countdown(0), "0:00");
        assert_eq!(countdown(872), "14:32");
        assert_eq!(countdown(3_723), "1:02:03");
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(1_000 + 300, 1_000), "in 5m");
        assert_eq!(relative(1_000 - 180, 1_000), "3m ago");
        assert_eq!(relative(1_000, 1_000), "now");
        // Absurd times from a broken daemon saturate instead of overflowing.
        assert!(relative(i64::MIN, i64::MAX).ends_with(" ago"));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_790_000_000), "2026-09-21 14:13:20 UTC");
        assert_eq!(utc(951_825_600), "2000-02-29 12:00:00 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(rfc3339(1_790_000_000), "2026-09-21T14:13:20Z");
    }

    #[test]
    fn control_characters_are_blanked() {
        assert!(matches!(clean("plain"), Cow::Borrowed("plain")));
        assert_eq!(clean("a\nb\x1b[2Jc"), "a b [2Jc");
        assert_eq!(clean("gh\u{202E}ved"), "gh ved");
    }
}
