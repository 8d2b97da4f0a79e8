//! The warning that a refresh token expires: only once a refresh has shown
//! that refreshing does not move its expiry, and then once per expiry.

use super::*;

/// What each step of a session's life warned: its login (access tokens of
/// 300 s, a refresh token of 1800 s, within the 7-day warning time), then
/// a refresh every 250 s answered by each of `answers` in turn.
fn warned_at_each_step(answers: &[TokenGrant]) -> Vec<bool> {
    warned_at_each_step_sent(answers, |_| Duration::ZERO)
}

/// [`warned_at_each_step`], each refresh sent `early(step)` before it is
/// answered (a relative expiry is placed from when the request was sent).
fn warned_at_each_step_sent(answers: &[TokenGrant], early: impl Fn(u64) -> Duration) -> Vec<bool> {
    let warns = |effects: Vec<String>| effects.contains(&"emit(refresh_token_expiring)".to_owned());
    let mut m = SessionMachine::new(
        "p".into(),
        IDENTITY.into(),
        Duration::from_secs(7 * 24 * 3600),
    );
    let login = m.handle(
        &ctx(t0()),
        Event::LoginGranted {
            grant: lasting(grant("a0", Some("r0"), 300), 1800),
            sent_at: t0(),
        },
    );
    let mut warned = vec![warns(written_ok(&mut m, t0(), login))];
    for (step, answered) in (1..).zip(answers) {
        let now = at(250 * step);
        let started = feed(&mut m, now, Event::RefreshDue);
        assert!(
            started.iter().any(|e| e.starts_with("start_refresh")),
            "{started:?}"
        );
        let generation = m.generation;
        let save = m.handle(
            &ctx(now),
            Event::RefreshAnswered {
                generation,
                sent_at: now - early(step),
                answer: Ok(answered.clone()),
            },
        );
        warned.push(warns(written_ok(&mut m, now, save)));
    }
    warned
}

/// `count` refreshes' grants, each with a new refresh token that ends when
/// the login's did (a session's absolute maximum): at 1800 s.
fn ending_with_the_first(count: u64) -> Vec<TokenGrant> {
    (1..=count)
        .map(|i| {
            let left = 1800 - 250 * i;
            lasting(grant(&format!("a{i}"), Some(&format!("r{i}")), 300), left)
        })
        .collect()
}

/// `grant` with a refresh token said to live `seconds`.
fn lasting(mut grant: TokenGrant, seconds: u64) -> TokenGrant {
    grant.refresh_expires_in = Some(Duration::from_secs(seconds));
    grant
}

/// A provider that slides the expiry at each refresh (a Keycloak realm's
/// idle timeout, GitHub's new six-month refresh token): no login is ever
/// needed while tokend refreshes, and nothing warns.
#[test]
fn an_expiry_each_refresh_moves_is_not_warned_about() {
    let sliding: Vec<TokenGrant> = (1..=4)
        .map(|i| lasting(grant(&format!("a{i}"), Some(&format!("r{i}")), 300), 1800))
        .collect();
    assert_eq!(warned_at_each_step(&sliding), [false; 5]);
}

/// A refresh token that is not replaced keeps its expiry: the first
/// refresh shows it, and the warning comes then, once.
#[test]
fn a_refresh_token_kept_by_refreshes_is_warned_about_once() {
    let kept: Vec<TokenGrant> = (1..=3)
        .map(|i| grant(&format!("a{i}"), None, 300))
        .collect();
    assert_eq!(warned_at_each_step(&kept), [false, true, false, false]);
}

/// A provider that sends the same refresh token back with each refresh,
/// and no lifetime for it: it is kept, not replaced, and keeps its expiry
/// (read as a new one with no expiry, the warning and the "log in by"
/// date were lost).
#[test]
fn a_refresh_token_sent_back_unchanged_keeps_its_expiry() {
    let echoed: Vec<TokenGrant> = (1..=3)
        .map(|i| grant(&format!("a{i}"), Some("r0"), 300))
        .collect();
    assert_eq!(warned_at_each_step(&echoed), [false, true, false, false]);
}

/// Replaced refresh tokens that all end when the first did (a session's
/// absolute maximum): the same.
#[test]
fn replaced_refresh_tokens_with_one_end_are_warned_about_once() {
    assert_eq!(
        warned_at_each_step(&ending_with_the_first(3)),
        [false, true, false, false]
    );
}

/// A fixed end read from a relative lifetime lands a little apart at each
/// refresh (whole seconds on the provider's clock, placed from when the
/// request was sent): still one expiry, warned about once, and not taken
/// for a sliding one.
#[test]
fn one_end_read_a_second_apart_is_one_expiry() {
    // Sent 0.9, 0.2, 0.5 and 0.1 s before the answer: the end read moves
    // back and forth by under a second.
    let early = |step: u64| {
        Duration::from_millis([900, 200, 500, 100][usize::try_from((step - 1) % 4).unwrap()])
    };
    assert_eq!(
        warned_at_each_step_sent(&ending_with_the_first(4), early),
        [false, true, false, false, false]
    );
}

/// A session whose refresh token slides, within the warning time, plans no
/// wake-up for a warning that will not come: it wakes for its refresh.
/// (Planned for now, such a wake-up came again at once, for ever: a busy
/// loop of the scheduler.)
#[test]
fn a_sliding_expiry_within_the_warning_time_plans_no_wake_up_now() {
    let mut m = SessionMachine::new(
        "p".into(),
        IDENTITY.into(),
        Duration::from_secs(7 * 24 * 3600),
    );
    let installed = logged_in_with(&mut m, lasting(grant("a0", Some("r0"), 300), 1800));
    let planned_wake = |effects: &[Effect]| {
        effects.iter().find_map(|e| match e {
            Effect::Schedule(at) => Some(*at),
            _ => None,
        })
    };
    assert_eq!(planned_wake(&installed), Some(m.next_refresh()));
    assert!(m.next_refresh() > Some(at(200)), "{:?}", m.next_refresh());
    let woke = m.handle(&ctx(at(1)), Event::RefreshDue);
    assert_eq!(planned_wake(&woke), Some(m.next_refresh()));
}

/// A sliding expiry (30 s, shorter than the access token's 300 s: a
/// Keycloak realm's idle timeout) refreshed again 1 s after the background
/// refresh, on demand: the second refresh moved it by a second only, which
/// says nothing of whether it slides. It is still taken as sliding, so the
/// refresh ahead of it stays planned and nothing warns (before: taken as
/// fixed, a warning that a login was needed, and the next refresh planned
/// after the refresh token's end).
#[test]
fn two_refreshes_a_second_apart_keep_a_sliding_expiry_sliding() {
    let mut m = SessionMachine::new(
        "p".into(),
        IDENTITY.into(),
        Duration::from_secs(7 * 24 * 3600),
    );
    logged_in_with(&mut m, lasting(grant("a0", Some("r0"), 300), 30));
    let due = m.next_refresh().unwrap();
    assert!(due < at(30), "{due:?}");
    let refresh = |m: &mut SessionMachine, now, event, access: &str, refresh: &str| {
        let started = feed(m, now, event);
        assert!(
            started.iter().any(|e| e.starts_with("start_refresh")),
            "{started:?}"
        );
        let save = answer(m, now, Ok(lasting(grant(access, Some(refresh), 300), 30)));
        written_ok(m, now, save)
    };
    refresh(&mut m, due, Event::RefreshDue, "a1", "r1");
    assert!(m.refresh_extends_refresh_token);
    let refused = Event::TokenRequested {
        want: Freshness::Replacing(TokenFingerprint::of("a1")),
    };
    let effects = refresh(&mut m, due + Duration::from_secs(1), refused, "a2", "r2");
    assert!(
        !effects.contains(&"emit(refresh_token_expiring)".to_owned()),
        "{effects:?}"
    );
    assert!(m.refresh_extends_refresh_token);
    let next = m.next_refresh().unwrap();
    assert!(next < due + Duration::from_secs(31), "{next:?}");
}
