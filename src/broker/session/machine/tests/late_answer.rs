//! A refresh with no answer in time whose answer is listened for
//! (`session::refresh`): the failure is said while the refresh stays in
//! flight, and its late answer is taken as any answer.

use super::*;

fn unanswered(listening: bool) -> ProviderError {
    ProviderError::Unanswered {
        endpoint: "http://127.0.0.1/token".into(),
        waited_secs: 30,
        listening,
    }
}

fn overdue(m: &mut SessionMachine, now: SystemTime) -> Vec<String> {
    let generation = m.generation;
    feed(
        m,
        now,
        Event::RefreshOverdue {
            generation,
            failure: unanswered(true),
        },
    )
}

/// While the answer is listened for, no other refresh is sent with the
/// same refresh token (the provider may still act on the one out): the
/// scheduler's wake-up starts none, a request joins the one out. The
/// failure is said meanwhile; the late answer's tokens are installed.
#[test]
fn an_overdue_refresh_stays_in_flight_until_its_late_answer() {
    let mut m = refreshing(at(10));
    let said = overdue(&mut m, at(40));
    assert!(said.contains(&"log(RefreshOverdue)".to_owned()), "{said:?}");
    assert!(said.contains(&"emit(state_changed)".to_owned()), "{said:?}");
    assert!(matches!(
        m.last_failure(),
        Some(BrokerError::ProviderUnavailable {
            source: ProviderError::Unanswered {
                listening: true,
                ..
            },
            ..
        })
    ));

    let due = feed(&mut m, at(100), Event::RefreshDue);
    assert!(
        !due.iter().any(|e| e.starts_with("start_refresh")),
        "{due:?}"
    );
    let asked = feed(
        &mut m,
        at(101),
        Event::TokenRequested {
            want: Freshness::AtLeast(MORE_THAN_LEFT),
        },
    );
    assert_eq!(asked, s(&["reply(join)"]));

    let save = answer(&mut m, at(300), Ok(grant("a2", Some("r2"), 3600)));
    written_ok(&mut m, at(300), save);
    assert_eq!(
        feed(&mut m, at(301), want_default()),
        s(&["reply(token a2)"])
    );
    assert!(m.last_failure().is_none(), "{:?}", m.last_failure());
}

/// A late answer that refuses is the provider's last word, taken as an
/// answer in time would be; the end of the listening (no answer at all)
/// backs off, and the next refresh goes out after it.
#[test]
fn a_late_refusal_or_no_answer_at_all_is_taken_as_any_answer() {
    let mut m = refreshing(at(10));
    overdue(&mut m, at(40));
    let delete = answer(&mut m, at(200), Err(revoked()));
    written_ok(&mut m, at(200), delete);
    assert_eq!(describe(&m), "needs_login");

    let mut m = refreshing(at(10));
    overdue(&mut m, at(40));
    let failed = briefs(&answer(&mut m, at(610), Err(unanswered(false))));
    assert!(failed.contains(&"schedule".to_owned()), "{failed:?}");
    let again = feed(&mut m, at(700), Event::RefreshDue);
    assert!(again.contains(&"start_refresh(r1)".to_owned()), "{again:?}");
}

/// A word of a refresh that is no longer the session's (a logout or a
/// new login meanwhile) changes nothing.
#[test]
fn an_overdue_word_of_an_older_generation_changes_nothing() {
    let mut m = refreshing(at(10));
    let old = m.generation;
    let logout = m.handle(&ctx(at(11)), Event::LogoutRequested);
    written_ok(&mut m, at(11), logout);
    let said = feed(
        &mut m,
        at(40),
        Event::RefreshOverdue {
            generation: old,
            failure: unanswered(true),
        },
    );
    assert!(said.is_empty(), "{said:?}");
    assert_eq!(describe(&m), "logged_out");
}

/// While a refresh's answer is listened for, a session whose access token
/// has expired reads `expired` (with the error), not `active`: no failure
/// is counted yet, but none of its tokens can be served.
#[test]
fn a_session_whose_refresh_is_overdue_reads_expired_once_its_token_has() {
    let mut m = refreshing(at(10));
    overdue(&mut m, at(40));
    assert_eq!(
        m.phase(at(4000)),
        crate::broker::report::SessionPhase::Expired
    );
}
