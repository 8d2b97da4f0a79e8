//! The warning that a refresh token expires: only once a refresh has shown
//! that refreshing does not move its expiry, and then once per expiry.

use super::*;

/// What each step of a session's life warned: its login (access tokens of
/// 300 s, a refresh token of 1800 s, within the 7-day warning time), then
/// a refresh every 250 s answered by each of `answers` in turn.
fn warned_at_each_step(answers: &[TokenGrant]) -> Vec<bool> {
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
        let save = answer(&mut m, now, Ok(answered.clone()));
        warned.push(warns(written_ok(&mut m, now, save)));
    }
    warned
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

/// Replaced refresh tokens that all end when the first did (a session's
/// absolute maximum): the same.
#[test]
fn replaced_refresh_tokens_with_one_end_are_warned_about_once() {
    let same_end: Vec<TokenGrant> = (1..=3)
        .map(|i| {
            let left = 1800 - 250 * i;
            lasting(grant(&format!("a{i}"), Some(&format!("r{i}")), 300), left)
        })
        .collect();
    assert_eq!(warned_at_each_step(&same_end), [false, true, false, false]);
}
