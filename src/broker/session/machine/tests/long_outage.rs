//! A long outage: the background's retries that fail as the ones before
//! them did are said (a warning, an `on_event` run) at the 1st, 2nd, 4th,
//! 8th... failure in a row, the others at debug level.

use super::*;

/// The `Notice::RefreshFailed` among `effects`: whether it is a repeat
/// (debug), and its count of failures in a row.
fn said(effects: &[Effect]) -> (bool, u32) {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Log(Notice::RefreshFailed {
                repeated, in_a_row, ..
            }) => Some((*repeated, *in_a_row)),
            _ => None,
        })
        .expect("a refresh_failed line")
}

#[test]
fn a_long_outage_is_said_at_the_powers_of_two_of_its_failures() {
    let mut m = logged_in(3600);
    let mut now = m.next_refresh().expect("a refresh planned");
    let mut warned = Vec::new();
    let mut hooks = Vec::new();
    for _ in 0..17 {
        let started = feed(&mut m, now, Event::RefreshDue);
        assert!(
            started.contains(&"start_refresh(r1)".to_owned()),
            "{started:?}"
        );
        let effects = answer(&mut m, now, Err(transient()));
        let (repeated, in_a_row) = said(&effects);
        if !repeated {
            warned.push(in_a_row);
        }
        if briefs(&effects).contains(&"emit(refresh_failed)".to_owned()) {
            hooks.push(in_a_row);
        }
        now = m.next_refresh().expect("a retry planned");
    }
    assert_eq!(warned, [1, 2, 4, 8, 16]);
    assert_eq!(hooks, [1, 2, 4, 8, 16]);
    // A failure of another kind is news at once, whatever the count.
    assert!(feed(&mut m, now, Event::RefreshDue).contains(&"start_refresh(r1)".to_owned()));
    let (repeated, in_a_row) = said(&answer(&mut m, now, Err(refused())));
    assert_eq!((repeated, in_a_row), (false, 18));
}
