use super::*;
use crate::codes::USER_CODE_ALPHABET;

fn policy() -> Policy {
    Policy {
        interval: Duration::from_secs(2),
        device_code_lifetime: Duration::from_secs(600),
        access_token_lifetime: Duration::from_secs(3600),
        refresh_token_lifetime: None,
        issue_refresh_tokens: true,
        rotate_refresh_tokens: true,
        poll_tolerance: Duration::ZERO,
        slow_down_step: SLOW_DOWN_STEP,
        refresh_scope: None,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// An authority with one approved code, polled once into tokens.
fn logged_in(authority: &mut Authority, t0: Instant) -> Issued {
    let code = authority.start("cid", Some("read write"), Vec::new(), t0);
    authority.approve(&code.user_code, t0).unwrap();
    let mut v = Vec::new();
    match authority.poll(&code.device_code, "cid", t0 + secs(1), &mut v) {
        PollVerdict::Granted(issued) => issued,
        other => panic!("{other:?}"),
    }
}

#[test]
fn user_codes_look_right_and_are_unique() {
    let mut a = Authority::new(policy());
    let t0 = Instant::now();
    let codes: Vec<_> = (0..50)
        .map(|_| a.start("cid", None, Vec::new(), t0).user_code)
        .collect();
    for code in &codes {
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(
            code.chars()
                .all(|c| c == '-' || USER_CODE_ALPHABET.contains(&(c as u8)))
        );
    }
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), codes.len());
}

#[test]
fn poll_life_cycle() {
    let mut a = Authority::new(policy());
    let t0 = Instant::now();
    let code = a.start("cid", Some("read"), Vec::new(), t0);
    let mut v = Vec::new();
    let dc = code.device_code.as_str();
    assert!(matches!(
        a.poll(dc, "cid", t0, &mut v),
        PollVerdict::Pending
    ));
    assert!(matches!(
        a.poll(dc, "cid", t0 + secs(2), &mut v),
        PollVerdict::Pending
    ));
    // Typed the way people type it.
    let typed = code.user_code.to_lowercase().replace('-', " ");
    a.approve(&typed, t0 + secs(3)).unwrap();
    assert_eq!(
        a.approve(&code.user_code, t0),
        Err(ApprovalError::AlreadyApproved)
    );
    let PollVerdict::Granted(issued) = a.poll(dc, "cid", t0 + secs(4), &mut v) else {
        panic!()
    };
    assert_eq!(issued.scope.as_deref(), Some("read"));
    assert!(issued.refresh_token.is_some());
    assert!(v.is_empty(), "{v:?}");
    assert!(matches!(
        a.poll(dc, "cid", t0 + secs(6), &mut v),
        PollVerdict::AlreadyUsed
    ));
    assert_eq!(v.len(), 1, "polling after the tokens is a violation");
    assert_eq!(a.codes(t0)[0].status, CodeStatus::Consumed);
}

#[test]
fn too_fast_polls_slow_down_and_grow_the_interval() {
    let mut a = Authority::new(policy());
    let t0 = Instant::now();
    let dc = a.start("cid", None, Vec::new(), t0).device_code;
    let mut v = Vec::new();
    assert!(matches!(
        a.poll(&dc, "cid", t0, &mut v),
        PollVerdict::Pending
    ));
    let verdict = a.poll(&dc, "cid", t0 + Duration::from_millis(1999), &mut v);
    assert!(matches!(verdict, PollVerdict::SlowDown { interval } if interval == secs(7)));
    assert_eq!(v.len(), 1);
    // The interval counts from the last poll, and is now 7 s.
    let t1 = t0 + Duration::from_millis(1999);
    assert!(matches!(
        a.poll(&dc, "cid", t1 + secs(6), &mut v),
        PollVerdict::SlowDown { .. }
    ));
    assert!(matches!(
        a.poll(&dc, "cid", t1 + secs(6 + 12), &mut v),
        PollVerdict::Pending
    ));
    assert_eq!(v.len(), 2);
    assert_eq!(a.codes(t0)[0].interval, secs(12));
}

#[test]
fn forced_slow_downs_are_not_violations() {
    let mut a = Authority::new(policy());
    let t0 = Instant::now();
    let dc = a.start("cid", None, Vec::new(), t0).device_code;
    a.force_slow_downs(1);
    let mut v = Vec::new();
    assert!(matches!(
        a.poll(&dc, "cid", t0, &mut v),
        PollVerdict::SlowDown { interval } if interval == secs(7)
    ));
    assert!(matches!(
        a.poll(&dc, "cid", t0 + secs(7), &mut v),
        PollVerdict::Pending
    ));
    assert!(v.is_empty());
}

#[test]
fn denial_expiry_and_strangers() {
    let mut a = Authority::new(policy());
    let t0 = Instant::now();
    let mut v = Vec::new();
    let denied = a.start("cid", None, Vec::new(), t0);
    a.deny(&denied.user_code, t0).unwrap();
    assert!(matches!(
        a.poll(&denied.device_code, "cid", t0, &mut v),
        PollVerdict::Denied
    ));
    let expired = a.start("cid", None, Vec::new(), t0);
    a.expire_codes(t0 + secs(1));
    assert_eq!(
        a.approve(&expired.user_code, t0 + secs(1)),
        Err(ApprovalError::Expired)
    );
    assert!(matches!(
        a.poll(&expired.device_code, "cid", t0 + secs(1), &mut v),
        PollVerdict::Expired
    ));
    assert!(v.is_empty());
    assert!(matches!(
        a.poll(&expired.device_code, "other", t0 + secs(9), &mut v),
        PollVerdict::WrongClient
    ));
    assert!(matches!(
        a.poll("dc_nope", "cid", t0, &mut v),
        PollVerdict::UnknownCode
    ));
    assert_eq!(v.len(), 2);
    assert_eq!(a.approve("ZZZZ-ZZZZ", t0), Err(ApprovalError::UnknownCode));
}

#[test]
fn rotation_and_replay_revokes_the_family() {
    let mut a = Authority::new(policy());
    let t0 = Instant::now();
    let first = logged_in(&mut a, t0);
    let mut v = Vec::new();
    let rt1 = first.refresh_token.clone().unwrap();
    let RefreshVerdict::Refreshed(second) = a.refresh(&rt1, "cid", None, t0, &mut v) else {
        panic!()
    };
    let rt2 = second.refresh_token.clone().unwrap();
    assert_ne!(rt1, rt2);
    assert!(matches!(
        a.check_access(&second.access_token, t0),
        TokenCheck::Valid { .. }
    ));
    assert!(v.is_empty());
    // Replay of the rotated token: the whole login goes.
    assert!(matches!(
        a.refresh(&rt1, "cid", None, t0, &mut v),
        RefreshVerdict::InvalidGrant(_)
    ));
    assert_eq!(v.len(), 1);
    assert_eq!(a.check_access(&first.access_token, t0), TokenCheck::Revoked);
    assert_eq!(
        a.check_access(&second.access_token, t0),
        TokenCheck::Revoked
    );
    assert!(matches!(
        a.refresh(&rt2, "cid", None, t0, &mut v),
        RefreshVerdict::InvalidGrant(_)
    ));
    assert_eq!(
        v.len(),
        1,
        "the newest token is refused, but was not misused"
    );
    assert!(matches!(
        a.refresh(&rt2, "cid", None, t0, &mut v),
        RefreshVerdict::InvalidGrant(_)
    ));
    assert_eq!(v.len(), 2, "using it again after invalid_grant is misuse");
    assert_eq!(a.check_access("at_nope", t0), TokenCheck::Unknown);
}

#[test]
fn without_rotation_the_refresh_token_stays() {
    let mut a = Authority::new(Policy {
        rotate_refresh_tokens: false,
        ..policy()
    });
    let t0 = Instant::now();
    let rt = logged_in(&mut a, t0).refresh_token.unwrap();
    let mut v = Vec::new();
    for _ in 0..3 {
        let RefreshVerdict::Refreshed(issued) = a.refresh(&rt, "cid", None, t0, &mut v) else {
            panic!()
        };
        assert!(issued.refresh_token.is_none());
    }
    assert!(v.is_empty());
}

#[test]
fn scopes_lifetimes_and_revocation() {
    let mut a = Authority::new(Policy {
        refresh_token_lifetime: Some(secs(100)),
        ..policy()
    });
    let t0 = Instant::now();
    let issued = logged_in(&mut a, t0);
    let rt = issued.refresh_token.unwrap();
    let mut v = Vec::new();
    assert!(matches!(
        a.refresh(&rt, "cid", Some("read admin"), t0, &mut v),
        RefreshVerdict::InvalidScope(_)
    ));
    assert!(matches!(
        a.refresh(&rt, "other", None, t0, &mut v),
        RefreshVerdict::InvalidGrant(_)
    ));
    assert_eq!(v.len(), 1);
    let RefreshVerdict::Refreshed(narrow) = a.refresh(&rt, "cid", Some("read"), t0, &mut v) else {
        panic!()
    };
    assert_eq!(narrow.scope.as_deref(), Some("read"));
    // Access tokens expire with their lifetime, or when told to.
    assert_eq!(
        a.check_access(&narrow.access_token, t0 + secs(3600)),
        TokenCheck::Expired
    );
    a.expire_access_tokens(t0 + secs(1));
    assert_eq!(
        a.check_access(&narrow.access_token, t0 + secs(1)),
        TokenCheck::Expired
    );
    // Refresh tokens expire with theirs.
    let rt2 = narrow.refresh_token.unwrap();
    assert!(matches!(
        a.refresh(&rt2, "cid", None, t0 + secs(100), &mut v),
        RefreshVerdict::InvalidGrant(_)
    ));
    // Revocation reaches every family.
    let other = logged_in(&mut a, t0);
    a.revoke_all();
    assert_eq!(a.check_access(&other.access_token, t0), TokenCheck::Revoked);
    assert!(matches!(
        a.refresh(&other.refresh_token.unwrap(), "cid", None, t0, &mut v),
        RefreshVerdict::InvalidGrant(_)
    ));
}

#[test]
fn no_refresh_tokens_when_disabled() {
    let mut a = Authority::new(Policy {
        issue_refresh_tokens: false,
        ..policy()
    });
    assert!(logged_in(&mut a, Instant::now()).refresh_token.is_none());
}

#[test]
fn refresh_tokens_only_with_the_refresh_scope() {
    let mut a = Authority::new(Policy {
        refresh_scope: Some("offline_access".into()),
        ..policy()
    });
    let t0 = Instant::now();
    let mut v = Vec::new();
    for (scope, expected) in [("openid", false), ("openid offline_access", true)] {
        let code = a.start("cid", Some(scope), Vec::new(), t0);
        a.approve(&code.user_code, t0).unwrap();
        let PollVerdict::Granted(issued) = a.poll(&code.device_code, "cid", t0, &mut v) else {
            panic!("not granted")
        };
        assert_eq!(issued.refresh_token.is_some(), expected, "{scope}");
    }
    assert!(v.is_empty());
}

#[test]
fn a_zero_slow_down_step_leaves_the_interval_alone() {
    let mut a = Authority::new(Policy {
        slow_down_step: Duration::ZERO,
        ..policy()
    });
    let t0 = Instant::now();
    let code = a.start("cid", None, Vec::new(), t0);
    let mut v = Vec::new();
    assert!(matches!(
        a.poll(&code.device_code, "cid", t0, &mut v),
        PollVerdict::Pending
    ));
    assert!(matches!(
        a.poll(&code.device_code, "cid", t0, &mut v),
        PollVerdict::SlowDown { interval } if interval == secs(2)
    ));
    assert_eq!(v.len(), 1);
}
