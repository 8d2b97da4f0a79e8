//! The pacing of refreshes: backoff after failures, spacing of requests,
//! tokens that arrive spent, refresh tokens that die first. (A provider's
//! `Retry-After` is in `retry_after.rs`.)

use std::time::Duration;

use super::*;
use crate::broker::timing;

/// A client asking in a loop while the provider is down (an expired token:
/// a refresh on demand every 5 s): the first failure is said (a warning,
/// the attention that runs `on_event`), the ones after it quietly; a
/// background retry still says it.
#[test]
fn repeated_failures_of_requested_refreshes_are_said_once() {
    let mut m = logged_in(3600);
    let strict = || Event::TokenRequested {
        want: Freshness::AtLeast(Duration::from_secs(60)),
    };
    let mut said = Vec::new();
    for step in 0..4 {
        let now = at(3590 + step * 6);
        let effects = feed(&mut m, now, strict());
        assert!(effects.contains(&"start_refresh(r1)".into()), "{effects:?}");
        let effects = briefs(&answer(&mut m, now, Err(transient())));
        said.push(effects.contains(&"emit(refresh_failed)".to_owned()));
        assert!(
            effects.iter().any(|e| e.starts_with("log(RefreshFailed")),
            "{effects:?}"
        );
    }
    assert_eq!(said, [true, false, false, false]);
    // A failure of another kind (a refusal, after the network came back)
    // is said, even asked for by a request.
    let now = at(3590 + 4 * 6);
    let effects = feed(&mut m, now, strict());
    assert!(effects.contains(&"start_refresh(r1)".into()), "{effects:?}");
    let effects = briefs(&answer(&mut m, now, Err(refused())));
    assert!(
        effects.contains(&"emit(refresh_failed)".to_owned()),
        "{effects:?}"
    );
    // The background's retry, when it comes, is said.
    let due = m.next_refresh().unwrap();
    let effects = feed(&mut m, due, Event::RefreshDue);
    assert!(effects.contains(&"start_refresh(r1)".into()), "{effects:?}");
    let effects = briefs(&answer(&mut m, due, Err(transient())));
    assert!(
        effects.contains(&"emit(refresh_failed)".to_owned()),
        "{effects:?}"
    );
}

/// While a client asks in a loop, its refreshes' failures neither put off
/// the background's retry planned before them (pushed back by each, it
/// never came, and the log said nothing for the whole outage) nor hide a
/// change of the provider's answer: a 500, then a 429 asking for 15
/// minutes, is said, and the provider's wait is kept.
#[test]
fn requests_failures_keep_the_background_retry_and_say_a_new_answer() {
    let mut m = logged_in(3600);
    // The background's retries have backed off to over a minute.
    let mut now = at(4000);
    for _ in 0..6 {
        feed(&mut m, now, Event::RefreshDue);
        answer(&mut m, now, Err(unavailable(500, None)));
        now = m.next_refresh().unwrap();
    }
    let failed_at = m.last_attempt.unwrap();
    let planned = m.next_refresh().unwrap();
    assert!(planned >= failed_at + Duration::from_secs(60));
    let strict = || Event::TokenRequested {
        want: Freshness::AtLeast(Duration::from_secs(60)),
    };
    for step in 1..4 {
        let now = failed_at + Duration::from_secs(step * 6);
        let effects = feed(&mut m, now, strict());
        assert!(effects.contains(&"start_refresh(r1)".into()), "{effects:?}");
        // A gateway's outage mixes its statuses: no news either.
        let status = [502, 503, 504][usize::try_from(step).unwrap() - 1];
        let effects = briefs(&answer(&mut m, now, Err(unavailable(status, None))));
        assert!(!effects.contains(&"emit(refresh_failed)".to_owned()));
        assert_eq!(m.next_refresh(), Some(planned), "put off by a request");
    }
    let now = failed_at + Duration::from_secs(24);
    feed(&mut m, now, strict());
    let effects = briefs(&answer(&mut m, now, Err(unavailable(429, Some(900)))));
    assert!(
        effects.contains(&"emit(refresh_failed)".to_owned()),
        "{effects:?}"
    );
    assert!(m.next_refresh().unwrap() >= now + Duration::from_secs(900));
}

/// Backoff: transient failures double from 5 s to a cap of 5 min (spread
/// over the upper half by the jitter), refusals from a minute; a success
/// starts over.
#[test]
fn failures_back_off_and_a_success_resets() {
    let mut m = logged_in(3600);
    let mut now = at(4000);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let effects = feed(&mut m, now, Event::RefreshDue);
        assert!(effects.contains(&"start_refresh(r1)".into()), "{effects:?}");
        answer(&mut m, now, Err(transient()));
        let next = m.next_refresh().unwrap();
        delays.push(next.duration_since(now).unwrap().as_secs());
        now = next;
    }
    // Jitter 0: half of each doubled delay.
    assert_eq!(delays, [2, 5, 10, 20, 40, 80, 150, 150]);
    assert_eq!(m.failures, 8);

    let mut m = logged_in(3600);
    feed(&mut m, at(4000), Event::RefreshDue);
    answer(&mut m, at(4000), Err(refused()));
    assert_eq!(
        m.next_refresh(),
        Some(at(4030)),
        "refusals start at a minute"
    );

    feed(&mut m, at(4030), Event::RefreshDue);
    let save = answer(&mut m, at(4030), Ok(grant("a2", None, 3600)));
    written_ok(&mut m, at(4030), save);
    assert_eq!(m.failures, 0);
    assert!(m.last_failure().is_none());
}

/// Callers asking in a loop during an outage get the last error, not a
/// request each; a token that still works is handed out instead.
#[test]
fn requests_after_a_failure_are_spaced() {
    let mut m = refreshing(at(10));
    answer(&mut m, at(10), Err(transient()));
    let strict = || Event::TokenRequested {
        want: Freshness::AtLeast(MORE_THAN_LEFT),
    };
    assert_eq!(
        feed(&mut m, at(12), strict()),
        s(&["reply(error unavailable)"])
    );
    assert_eq!(
        feed(&mut m, at(12), want_default()),
        s(&["reply(token a1)"])
    );
    let later = feed(&mut m, at(16), strict());
    assert_eq!(
        later,
        s(&["log(RefreshOnDemand)", "start_refresh(r1)", "reply(join)"])
    );

    // The wall clock set back by an hour after a failure: the spacing is
    // over, not an hour long.
    let mut m = refreshing(at(3610));
    answer(&mut m, at(3610), Err(transient()));
    let set_back = feed(&mut m, at(10), strict());
    assert_eq!(
        set_back,
        s(&["log(RefreshOnDemand)", "start_refresh(r1)", "reply(join)"])
    );
}

/// Tokens that come spent (the answer took longer than they live, or the
/// clock is off) are not refreshed again at once, forever: the next
/// refresh backs off, further each time in a row, with a warning; tokens
/// that come with their life are refreshed as planned again, never sooner
/// than a second after the refresh before.
#[test]
fn tokens_that_come_spent_are_not_refreshed_back_to_back() {
    let mut m = logged_in(3600);
    let mut waits = Vec::new();
    let mut now = at(3000);
    for _ in 0..4 {
        feed(&mut m, now, Event::RefreshDue);
        // Sent 3 s before the answer, the token lived 2 s: dead on arrival.
        let generation = m.generation;
        let save = m.handle(
            &ctx(now),
            Event::RefreshAnswered {
                generation,
                sent_at: now - Duration::from_secs(3),
                answer: Ok(grant("a2", Some("r2"), 2)),
            },
        );
        let installed = written_ok(&mut m, now, save);
        assert!(
            installed.contains(&"log(ArrivedSpent)".to_owned()),
            "{installed:?}"
        );
        let next = m.next_refresh().unwrap();
        waits.push(next.duration_since(now).unwrap().as_millis());
        now = next;
    }
    // Backoff doubling from 5 s (jitter 0: the lower half of each step).
    assert_eq!(waits, [2_500, 5_000, 10_000, 20_000]);

    // Half of a 2 s token eaten by the round trip: spent too.
    feed(&mut m, now, Event::RefreshDue);
    let generation = m.generation;
    let sent_at = now - Duration::from_millis(1500);
    let save = m.handle(
        &ctx(now),
        Event::RefreshAnswered {
            generation,
            sent_at,
            answer: Ok(grant("a3", Some("r3"), 2)),
        },
    );
    let installed = written_ok(&mut m, now, save);
    assert!(installed.contains(&"log(ArrivedSpent)".to_owned()));

    // A 1 s token that comes whole: not spent, so the backoff starts over;
    // planned at half its life, but not sooner than a second after this
    // refresh.
    now = m.next_refresh().unwrap();
    feed(&mut m, now, Event::RefreshDue);
    let save = answer(&mut m, now, Ok(grant("a4", Some("r4"), 1)));
    let installed = written_ok(&mut m, now, save);
    assert!(!installed.contains(&"log(ArrivedSpent)".to_owned()));
    assert_eq!(m.next_refresh(), Some(now + timing::MIN_REFRESH_SPACING));
    assert_eq!(m.expired_grants, 0);
}

/// A refresh token that expires before the access token's refresh is
/// refreshed ahead of its own expiry, as long as refreshes move that
/// expiry later; once one does not, only the access token plans it.
#[test]
fn a_refresh_token_that_dies_first_is_refreshed_before_it() {
    let with_refresh_lifetime = |access: &str, refresh: Option<&str>, rt_secs: u64| TokenGrant {
        refresh_expires_in: Some(Duration::from_secs(rt_secs)),
        ..grant(access, refresh, 3600)
    };
    let mut m = machine();
    let login = m.handle(
        &ctx(t0()),
        Event::LoginGranted {
            grant: with_refresh_lifetime("a1", Some("r1"), 600),
            sent_at: t0(),
        },
    );
    written_ok(&mut m, t0(), login);
    // 600 s of refresh token: 15 % (90 s) before its end, not at 3000 s.
    assert_eq!(m.next_refresh(), Some(at(510)));

    // The refresh rotates it with a new 600 s: planned by the new one.
    feed(&mut m, at(510), Event::RefreshDue);
    let save = answer(
        &mut m,
        at(510),
        Ok(with_refresh_lifetime("a2", Some("r2"), 600)),
    );
    written_ok(&mut m, at(510), save);
    assert_eq!(m.next_refresh(), Some(at(1020)));

    // A refresh that keeps the refresh token and its expiry: no refresh
    // for it any more (a login is needed by then: the warning says so).
    feed(&mut m, at(1020), Event::RefreshDue);
    let save = answer(&mut m, at(1020), Ok(grant("a3", None, 3600)));
    written_ok(&mut m, at(1020), save);
    assert_eq!(m.next_refresh(), Some(at(1020 + 3060)));

    // A logout, then a login: the new refresh token is planned for again.
    let logout = m.handle(&ctx(at(1030)), Event::LogoutRequested);
    written_ok(&mut m, at(1030), logout);
    let login = m.handle(
        &ctx(at(1040)),
        Event::LoginGranted {
            grant: with_refresh_lifetime("a5", Some("r5"), 600),
            sent_at: at(1040),
        },
    );
    written_ok(&mut m, at(1040), login);
    assert_eq!(m.next_refresh(), Some(at(1040 + 510)));
}

/// A token whose expiry the provider did not say (or said what cannot be
/// believed), with a refresh token: a request for some of its life has it
/// refreshed first ("refresh on demand"), at most once a minute from the
/// last refresh or login; a default request takes it as it is; so does any
/// while the store is down, and one whose refresh on demand fails (it may
/// well work).
#[test]
fn a_token_of_unknown_life_is_refreshed_on_demand() {
    let mut m = machine();
    let mut unknown = grant("a1", Some("r1"), 0);
    unknown.expiry = crate::provider::Expiry::Unknown;
    logged_in_with(&mut m, unknown.clone());
    let strict = || Event::TokenRequested {
        want: Freshness::AtLeast(Duration::from_secs(60)),
    };
    let refresh = s(&["log(RefreshOnDemand)", "start_refresh(r1)", "reply(join)"]);
    // Within a minute of the login: as fresh as a token can be had.
    assert_eq!(feed(&mut m, at(59), strict()), s(&["reply(token a1)"]));
    assert_eq!(
        feed(&mut m, at(100), want_default()),
        s(&["reply(token a1)"])
    );
    assert_eq!(feed(&mut m, at(100), strict()), refresh);
    answer(&mut m, at(100), Err(transient()));
    let awaited = feed(
        &mut m,
        at(100),
        Event::RefreshAwaited {
            want: Freshness::AtLeast(Duration::from_secs(60)),
            outcome: Err(crate::broker::error::BrokerError::ShuttingDown),
        },
    );
    assert_eq!(awaited, s(&["reply(token a1)"]));
    // Spaced after the failure as after a refresh: the token as it is.
    assert_eq!(feed(&mut m, at(106), strict()), s(&["reply(token a1)"]));
    assert_eq!(feed(&mut m, at(159), strict()), s(&["reply(token a1)"]));
    assert_eq!(feed(&mut m, at(160), strict()), refresh);
    unknown.access_token = crate::secret::Secret::from("a2");
    let save = answer(&mut m, at(160), Ok(unknown));
    written_ok(&mut m, at(160), save);
    assert_eq!(feed(&mut m, at(200), strict()), s(&["reply(token a2)"]));
    // No background refresh is planned for it: only demand brings one.
    assert_eq!(m.next_refresh(), None);
    // While the store is down, the refresh token it would bring could not
    // be saved: the token as it is.
    let store_down = Context {
        store_available: false,
        ..ctx(at(300))
    };
    let effects = m.handle(&store_down, strict());
    assert_eq!(briefs(&effects), s(&["reply(token a2)"]));
    assert_eq!(feed(&mut m, at(300), strict()), refresh);
}

/// Requests' refreshes are spaced from the failure, not from the send: a
/// refresh a request asked for that a slow provider fails 8 s later is not
/// followed at once by another for the next request (nor for a request a
/// reload handed to the new session as the answer came).
#[test]
fn requests_after_a_slow_failure_are_spaced_from_the_failure() {
    let mut m = refreshing(at(100));
    answer(&mut m, at(108), Err(transient()));
    let strict = || Event::TokenRequested {
        want: Freshness::AtLeast(MORE_THAN_LEFT),
    };
    assert_eq!(
        feed(&mut m, at(110), strict()),
        s(&["reply(error unavailable)"])
    );
    assert_eq!(
        feed(&mut m, at(113), strict()),
        s(&["log(RefreshOnDemand)", "start_refresh(r1)", "reply(join)"])
    );
}

/// Each session's refresh is spread by its own draw (`Context::jitter`):
/// sessions logged in or restored together would otherwise refresh in
/// the same second for good, a burst at the provider's rate limiter each
/// time. The draw reaches both plans: the access token's refresh (15 % of
/// an hour before its expiry at 0, 25 % at 1) and the refresh token's.
#[test]
fn the_sessions_draw_spreads_its_refresh() {
    let planned = |jitter: f64, grant: TokenGrant| {
        let mut m = machine();
        let context = Context {
            jitter,
            ..ctx(t0())
        };
        logged_in_in(&mut m, &context, grant);
        m.next_refresh().unwrap()
    };
    let hour = || grant("a1", Some("r1"), 3600);
    assert_eq!(planned(0.0, hour()), at(3600 - 540));
    assert_eq!(planned(1.0, hour()), at(3600 - 900));
    // A refresh token of 600 s, dying first: its own plan is spread too.
    let short_refresh = || TokenGrant {
        refresh_expires_in: Some(Duration::from_secs(600)),
        ..grant("a1", Some("r1"), 3600)
    };
    assert_eq!(planned(0.0, short_refresh()), at(600 - 90));
    assert_eq!(planned(1.0, short_refresh()), at(600 - 150));
}
