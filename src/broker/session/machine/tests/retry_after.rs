//! A provider's `Retry-After`, and a refresh its endpoint held back: every
//! refresh waits it out, sessions held back together come back apart, and
//! a hold that only repeats says nothing new.

use std::time::Duration;

use super::*;

/// A provider's `Retry-After` holds every refresh back that long: the
/// background retry, a resume and token requests alike.
#[test]
fn a_retry_after_holds_back_every_refresh() {
    let limited = unavailable(429, Some(600));
    let mut m = refreshing(at(10));
    answer(&mut m, at(10), Err(limited));
    assert!(m.next_refresh() >= Some(at(610)), "{:?}", m.next_refresh());
    // A resume within the wait leaves the retry where it is (spread past
    // the wait's end: moved to it, sessions held back together would come
    // back together).
    let planned = m.next_refresh();
    let resumed = Event::RetryAt {
        at: at(20),
        change: WorldChange::Resumed,
    };
    assert_eq!(feed(&mut m, at(20), resumed), s(&["reply(changed false)"]));
    assert_eq!(m.next_refresh(), planned);
    // A request 100 s on (past the 5 s spacing) gets the failure, not a refresh.
    let want = Event::TokenRequested {
        want: Freshness::AtLeast(MORE_THAN_LEFT),
    };
    assert_eq!(
        feed(&mut m, at(110), want),
        s(&["reply(error unavailable)"])
    );
}

/// Sessions that one `Retry-After` holds back (an endpoint's rate limit
/// met by several at once) come back spread over a tenth of the wait, not
/// at one instant, which a rate limiter answers with 429 again.
#[test]
fn sessions_held_back_by_one_retry_after_come_back_apart() {
    let limited = || unavailable(429, Some(600));
    let back_at = |jitter: f64| {
        let mut m = refreshing(at(10));
        let generation = m.generation;
        let context = Context {
            jitter,
            ..ctx(at(10))
        };
        m.handle(
            &context,
            Event::RefreshAnswered {
                generation,
                sent_at: at(10),
                answer: Err(limited()),
            },
        );
        // A resume within the wait keeps them apart.
        let resumed = Event::RetryAt {
            at: at(100),
            change: WorldChange::Resumed,
        };
        m.handle(&context, resumed);
        m.next_refresh().unwrap()
    };
    assert_eq!(back_at(0.0), at(610));
    assert_eq!(back_at(0.5), at(640));
    assert_eq!(back_at(1.0), at(670));
}

/// A refresh its endpoint held back (another session was told to wait,
/// see `broker::endpoint_limit`) comes back when the wait is over, spread
/// as a told one is, with no backoff grown: the provider refused nothing
/// of this session's. Held back again as before, it says nothing new (no
/// warning, no `on_event` run once a second through a rate limit's
/// `Retry-After: 1`); a refresh the provider answers still backs off.
#[test]
fn a_refresh_held_back_by_its_endpoint_waits_the_wait_alone() {
    let mut m = logged_in(3600);
    let mut now = m.next_refresh().unwrap();
    let held_back = |m: &mut SessionMachine, now: SystemTime| {
        let started = feed(m, now, Event::RefreshDue);
        assert!(
            started.iter().any(|e| e.starts_with("start_refresh")),
            "{started:?}"
        );
        let generation = m.generation;
        let failure = unavailable(429, Some(1));
        let effects = m.handle(
            &ctx(now),
            Event::RefreshHeld {
                generation,
                failure,
            },
        );
        let warned = effects.iter().any(|e| {
            matches!(
                e,
                Effect::Log(Notice::RefreshFailed {
                    repeated: false,
                    ..
                })
            )
        });
        (briefs(&effects), warned)
    };
    let (first, warned) = held_back(&mut m, now);
    assert!(warned, "{first:?}");
    assert!(
        first.contains(&"emit(refresh_failed)".to_owned()),
        "{first:?}"
    );
    for _ in 0..3 {
        // Back when the 1 s wait is over (jitter 0: no spread), not after
        // a backoff of 2.5, 5, 10 s.
        let next = m.next_refresh().unwrap();
        assert_eq!(next.duration_since(now).unwrap(), Duration::from_secs(1));
        now = next;
        let (again, warned) = held_back(&mut m, now);
        assert!(!warned, "{again:?}");
        assert!(
            !again.contains(&"emit(refresh_failed)".to_owned()),
            "{again:?}"
        );
    }
    // Sent, and told the same: the backoff (2.5 s at jitter 0) outweighs
    // the asked second.
    now = m.next_refresh().unwrap();
    feed(&mut m, now, Event::RefreshDue);
    answer(&mut m, now, Err(unavailable(429, Some(1))));
    let next = m.next_refresh().unwrap();
    assert_eq!(
        next.duration_since(now).unwrap(),
        Duration::from_millis(2_500)
    );
}
