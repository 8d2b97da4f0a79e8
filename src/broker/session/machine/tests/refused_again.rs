//! Tokens a server keeps refusing: each refusal of the token a refusal's
//! refresh brought waits longer for the next refresh (a minute, doubling),
//! where every retry of a client (git's `erase` at each attempt) had a
//! refresh and a rotation of the refresh token.

use super::*;

/// `token` refused where it was used, at `now`: the effects in brief.
fn refuse(m: &mut SessionMachine, now: SystemTime, token: &str) -> Vec<String> {
    feed(
        m,
        now,
        Event::TokenRequested {
            want: Freshness::Replacing(TokenFingerprint::of(token)),
        },
    )
}

/// The refresh out answered at `now` with `access` and `refresh`, saved.
fn refreshed(m: &mut SessionMachine, now: SystemTime, access: &str, refresh: &str) {
    let save = answer(m, now, Ok(grant(access, Some(refresh), 3600)));
    written_ok(m, now, save);
}

fn started(effects: &[String]) -> bool {
    effects.iter().any(|e| e.starts_with("start_refresh"))
}

#[test]
fn replacements_refused_in_a_row_are_spaced_out_doubling() {
    let mut m = logged_in(3600);
    // The first refusal: replaced at once.
    let effects = refuse(&mut m, at(10), "a1");
    assert!(started(&effects), "{effects:?}");
    refreshed(&mut m, at(10), "a2", "r2");
    // Its replacement refused too: no refresh for a minute, the token as
    // it is meanwhile; said at once, once (it was said only at the
    // replacement, a minute later, or never).
    for later in [16, 69] {
        let effects = refuse(&mut m, at(later), "a2");
        assert!(!started(&effects), "{later}: {effects:?}");
        assert!(
            effects.contains(&"reply(token a2)".to_owned()),
            "{effects:?}"
        );
        assert_eq!(
            effects.contains(&"log(RefusedAgain)".to_owned()),
            later == 16,
            "{later}: {effects:?}"
        );
    }
    let effects = refuse(&mut m, at(71), "a2");
    assert!(started(&effects), "{effects:?}");
    assert!(
        effects.contains(&"log(RefusedAgain)".to_owned()),
        "{effects:?}"
    );
    refreshed(&mut m, at(71), "a3", "r3");
    // The next one waits two minutes.
    assert!(!started(&refuse(&mut m, at(71 + 119), "a3")));
    assert!(started(&refuse(&mut m, at(71 + 121), "a3")));
    refreshed(&mut m, at(192), "a4", "r4");
    // A token the background's refresh brought is a new start: its first
    // refusal is replaced at once.
    let due = m.next_refresh().expect("a refresh planned");
    assert!(started(&feed(&mut m, due, Event::RefreshDue)));
    refreshed(&mut m, due, "a5", "r5");
    let effects = refuse(&mut m, due + Duration::from_secs(6), "a5");
    assert!(started(&effects), "{effects:?}");
    assert!(!effects.contains(&"log(RefusedAgain)".to_owned()));
}

/// A replacement that worked a while before it was refused (a token of
/// unknown life that died ten minutes on) is replaced at once, without a
/// warning: counted "again", such tokens were handed back dead for up to
/// an hour, every refresh being a refusal's.
#[test]
fn a_replacement_refused_after_it_worked_a_while_is_replaced_at_once() {
    let mut m = logged_in(3600);
    let mut token = "a1".to_owned();
    for (i, at_secs) in [10_u64, 610, 1210, 1810].into_iter().enumerate() {
        let effects = refuse(&mut m, at(at_secs), &token);
        assert!(started(&effects), "{at_secs}: {effects:?}");
        assert!(
            !effects.contains(&"log(RefusedAgain)".to_owned()),
            "{at_secs}: {effects:?}"
        );
        token = format!("a{}", i + 2);
        refreshed(&mut m, at(at_secs), &token, &format!("r{}", i + 2));
    }
}

#[test]
fn the_spacing_doubles_up_to_an_hour() {
    use crate::broker::timing::refused_again_spacing;
    assert_eq!(refused_again_spacing(1), Duration::from_secs(60));
    assert_eq!(refused_again_spacing(2), Duration::from_secs(120));
    assert_eq!(refused_again_spacing(6), Duration::from_secs(1920));
    assert_eq!(refused_again_spacing(7), Duration::from_secs(3600));
    assert_eq!(refused_again_spacing(u32::MAX), Duration::from_secs(3600));
}
