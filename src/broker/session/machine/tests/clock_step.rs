//! The wall clock set ahead or back: the refresh token's own expiry moves
//! with it, so the session keeps its distance from the end the provider
//! set (taken as passed, the session warned early and gave up while the
//! provider would still take the token).

use std::time::Duration;

use super::*;
use crate::broker::clock::ClockStep;

#[test]
fn the_refresh_tokens_expiry_moves_with_the_clock() {
    let with_refresh_lifetime = TokenGrant {
        refresh_expires_in: Some(Duration::from_secs(600)),
        ..grant("a1", Some("r1"), 3600)
    };
    for step in [
        ClockStep::Ahead(Duration::from_secs(3600)),
        ClockStep::Back(Duration::from_secs(3600)),
    ] {
        let mut m = machine();
        let login = m.handle(
            &ctx(t0()),
            Event::LoginGranted {
                grant: with_refresh_lifetime.clone(),
                sent_at: t0(),
            },
        );
        written_ok(&mut m, t0(), login);
        assert_eq!(m.tokens().unwrap().refresh_expires_at, Some(at(600)));
        let now = step.shift(at(10));
        m.handle(&ctx(now), Event::ClockStepped(step));
        assert_eq!(
            m.tokens().unwrap().refresh_expires_at,
            Some(step.shift(at(600))),
            "{step:?}"
        );
    }
}
