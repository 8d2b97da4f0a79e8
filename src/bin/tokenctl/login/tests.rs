use tokend::protocol::ErrorCode;

use super::view::*;
use super::*;
use tokend::protocol::LoginPrompt;

/// A terminal that does not say its size: the size a test gives stays.
fn no_size() -> Option<(u16, u16)> {
    None
}

fn prompt(complete: Option<&str>, message: Option<&str>) -> LoginPrompt {
    LoginPrompt {
        user_code: "ABCD-EFGH".into(),
        verification_uri: "https://example.test/device".into(),
        verification_uri_complete: complete.map(Into::into),
        expires_in: 900,
        message: message.map(Into::into),
    }
}

#[test]
fn prompt_shows_code_link_and_message() {
    let text = prompt_text(
        "gh",
        &prompt(
            Some("https://example.test/device?c=ABCD"),
            Some("Say \x1b[31mhi"),
        ),
        None,
        Terminal::plain(),
    );
    assert!(
        text.contains("\n    https://example.test/device\n"),
        "{text}"
    );
    assert!(text.contains("\n    ABCD-EFGH\n"), "{text}");
    assert!(
        text.contains("Or open https://example.test/device?c=ABCD"),
        "{text}"
    );
    assert!(text.contains("Say  [31mhi"), "escape not cleaned: {text}");
}

#[test]
fn prompt_with_qr_code() {
    let text = prompt_text(
        "gh",
        &prompt(Some("https://x.test/d?c=1"), None),
        Some("QRQR\n"),
        Terminal::plain(),
    );
    assert!(
        text.contains("QRQR\n\nOr scan the QR code, or open "),
        "{text}"
    );
    assert!(!text.contains("Or open"), "{text}");
}

/// Twilio may send only the complete link, which is then the page too:
/// shown once, not a second time as "the code is filled in".
#[test]
fn a_complete_link_that_is_the_page_is_shown_once() {
    let mut only = prompt(Some("https://example.test/device"), None);
    only.verification_uri = "https://example.test/device".into();
    let text = prompt_text("tw", &only, None, Terminal::plain());
    assert_eq!(
        text.matches("https://example.test/device").count(),
        1,
        "{text}"
    );
    let text = prompt_text("tw", &only, Some("QRQR\n"), Terminal::plain());
    assert_eq!(
        text.matches("https://example.test/device").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("Or scan the QR code: it has the code filled in."),
        "{text}"
    );
}

#[test]
fn countdown_text_and_pace() {
    assert_eq!(waiting_text(872, "…"), "Waiting for approval… 14:32 left");
    assert_eq!(
        waiting_text(872, "..."),
        "Waiting for approval... 14:32 left"
    );
    assert!(waiting_text(0, "…").contains("expired"));
    let start = Moment::now();
    assert!(progress_due(None, start));
    assert!(!progress_due(Some(start), start + Duration::from_secs(29)));
    assert!(progress_due(Some(start), start + PROGRESS_EVERY));
}

#[test]
fn live_countdown_redraws_in_place() {
    let start = Moment::now();
    let mut countdown = Countdown {
        ends: start + Duration::from_secs(90),
        live: true,
        last_line: None,
        drawn: false,
        terminal: Terminal::plain(),
        size_now: no_size,
    };
    let mut out = Vec::new();
    countdown.draw(&mut out, start).unwrap();
    countdown
        .draw(&mut out, start + Duration::from_secs(1))
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\r\x1b[2KWaiting for approval… 1:30 left\r\x1b[2KWaiting for approval… 1:29 left"
    );
}

/// A live countdown on a terminal of `columns`, `secs` from its end.
fn narrow_countdown(columns: u16, secs: u64) -> String {
    let start = Moment::now();
    let mut countdown = Countdown {
        ends: start + Duration::from_secs(secs),
        live: true,
        last_line: None,
        drawn: false,
        terminal: Terminal {
            tty: true,
            interactive: true,
            color: false,
            size: Some((columns, 24)),
            utf8: true,
        },
        size_now: no_size,
    };
    let mut out = Vec::new();
    countdown.draw(&mut out, start).unwrap();
    let text = String::from_utf8(out).unwrap();
    text.strip_prefix("\r\x1b[2K").unwrap().to_owned()
}

/// On a narrow terminal the live line fits one row (a wrapped one left a
/// stale row behind at each redraw: the erase clears one row), by
/// shortening its words, never by cutting the time: at 26 columns
/// "Waiting for approval… 0:50 left" was cut to "… 0:5", five seconds,
/// and at 20 the time was gone.
#[test]
fn a_live_countdown_fits_a_narrow_terminal_with_its_time_whole() {
    assert_eq!(narrow_countdown(80, 50), "Waiting for approval… 0:50 left");
    assert_eq!(narrow_countdown(26, 50), "0:50 left");
    assert_eq!(narrow_countdown(20, 50), "0:50 left");
    assert_eq!(narrow_countdown(10, 50), "0:50 left");
    assert_eq!(narrow_countdown(9, 50), "0:50");
    assert_eq!(narrow_countdown(6, 3599), "59:59");
    // Not even the time fits: nothing rather than a part of it.
    assert_eq!(narrow_countdown(4, 50), "");
    assert_eq!(narrow_countdown(10, 86_400), "24:00:00");
    for columns in 1..=40 {
        for secs in [0, 5, 50, 872, 4000] {
            let line = narrow_countdown(columns, secs);
            let time = crate::format::countdown(secs);
            assert!(
                line.chars().count() < usize::from(columns),
                "{columns}: {line:?}"
            );
            assert!(
                secs == 0 || line.is_empty() || line.contains(time.as_str()),
                "{columns}: {line:?}"
            );
        }
    }
    assert_eq!(
        narrow_countdown(40, 0),
        "The code has expired",
        "words kept whole too"
    );
    assert_eq!(narrow_countdown(10, 0), "Expired");
}

/// The width of the terminal of [`a_live_countdown_follows_a_resize`],
/// in columns, which the test changes between redraws.
static COLUMNS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(80);

/// A window made narrower while the countdown runs: the next redraw fits
/// the new width (the size was read once, at the start, and the line
/// wrapped after a resize, a stale row at each redraw).
#[test]
fn a_live_countdown_follows_a_resize() {
    let start = Moment::now();
    COLUMNS.store(60, std::sync::atomic::Ordering::Relaxed);
    let mut view = HumanView {
        terminal: Terminal {
            tty: true,
            interactive: true,
            color: false,
            size: Some((60, 24)),
            utf8: true,
        },
        countdown: None,
        asking_said: false,
        hint_said: true,
        size_now: || Some((COLUMNS.load(std::sync::atomic::Ordering::Relaxed), 24)),
    };
    let mut out = Vec::new();
    view.prompt(&mut out, "gh", &prompt(None, None), false)
        .unwrap();
    COLUMNS.store(20, std::sync::atomic::Ordering::Relaxed);
    let mut redraw = Vec::new();
    view.tick(&mut redraw, "gh", start + Duration::from_secs(1))
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Waiting for approval… 1"), "{text}");
    let redraw = String::from_utf8(redraw).unwrap();
    let line = redraw.strip_prefix("\r\x1b[2K").unwrap();
    assert!(
        !line.starts_with("Waiting") && line.ends_with(" left") && line.chars().count() < 20,
        "{redraw:?}"
    );
}

/// The QR code is drawn only when the prompt's text above and below it
/// fits on screen with it: at 80x30 the link and the code scrolled away.
#[test]
fn the_qr_code_leaves_room_for_the_prompt() {
    let link = "https://github.com/login/device?user_code=ABCD-EFGH";
    let terminal = |rows| Terminal {
        tty: true,
        interactive: true,
        color: false,
        size: Some((80, rows)),
        utf8: true,
    };
    for (rows, drawn) in [(30, false), (60, true)] {
        let mut view = HumanView {
            terminal: terminal(rows),
            countdown: None,
            asking_said: false,
            hint_said: false,
            size_now: no_size,
        };
        let mut out = Vec::new();
        view.prompt(&mut out, "gh", &prompt(Some(link), None), false)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.contains('█'), drawn, "{rows} rows:\n{text}");
        if drawn {
            assert!(text.lines().count() <= usize::from(rows), "{text}");
        }
    }
}

#[test]
fn quiet_countdown_prints_now_and_then() {
    let start = Moment::now();
    let mut countdown = Countdown {
        ends: start + Duration::from_secs(900),
        live: false,
        last_line: None,
        drawn: false,
        terminal: Terminal::plain(),
        size_now: no_size,
    };
    let mut out = Vec::new();
    for secs in 0..=60 {
        countdown
            .draw(&mut out, start + Duration::from_secs(secs))
            .unwrap();
    }
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 3);
}

/// A prompt whose code would live longer than the clock can count (a
/// daemon that does not cap it) shows a countdown, not a panic.
#[test]
fn an_absurd_expiry_does_not_overflow_the_countdown() {
    let mut view = HumanView {
        terminal: Terminal::plain(),
        countdown: None,
        asking_said: false,
        hint_said: false,
        size_now: no_size,
    };
    let absurd = LoginPrompt {
        expires_in: u64::MAX,
        ..prompt(None, None)
    };
    let mut out = Vec::new();
    view.prompt(&mut out, "gh", &absurd, false).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Waiting for approval… 24:00:00 left"),
        "{text}"
    );
}

/// A reader of the `done` line tokenctl writes itself learns from its
/// code what the exit status says.
#[test]
fn own_done_codes_agree_with_the_exit_status() {
    let errors = [
        ClientError::Connect {
            path: "/x".into(),
            source: io::ErrorKind::NotFound.into(),
        },
        ClientError::Closed,
        ClientError::Timeout {
            timeout: Duration::from_secs(1),
        },
        ClientError::LoginUnfinished,
        ClientError::Io {
            source: io::ErrorKind::ConnectionReset.into(),
        },
        ClientError::BadAnswer {
            reason: "not JSON".into(),
        },
        ClientError::Daemon(ErrorBody {
            code: ErrorCode::RequestTooLarge,
            message: "too long".into(),
        }),
    ];
    for error in errors {
        let body = own_error(&error);
        assert_eq!(body.message, error.to_string());
        assert_eq!(
            exit::for_login_failure(Some(body.code)),
            Failure::from(error).status,
            "{body:?}"
        );
    }
}

/// On a terminal the person is told what Ctrl-C does before the
/// countdown starts; off one (a log, a pipe) nothing is added.
#[test]
fn a_terminal_is_told_what_ctrl_c_does() {
    let interactive = Terminal {
        tty: true,
        interactive: true,
        color: false,
        size: Some((80, 24)),
        utf8: true,
    };
    // A terminal that takes no escapes (`TERM=dumb`) is still read by a
    // person: the hint is plain text.
    let dumb = Terminal {
        interactive: false,
        ..interactive
    };
    for (terminal, no_wait, told) in [
        (interactive, false, true),
        (interactive, true, false),
        (dumb, false, true),
        (Terminal::plain(), false, false),
    ] {
        let mut view = HumanView {
            terminal,
            countdown: None,
            asking_said: false,
            hint_said: false,
            size_now: no_size,
        };
        let mut out = Vec::new();
        view.prompt(&mut out, "gh", &prompt(None, None), no_wait)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.contains(
                "Ctrl-C stops waiting, not the login: it goes on in tokend until the code expires\n\
                 (`tokenctl login gh --cancel` cancels it).\n"
            ),
            told,
            "{text}"
        );
    }
}

#[test]
fn failed_logins_use_the_daemons_words() {
    let denied = login_failure(
        "gh",
        Some(ErrorBody {
            code: ErrorCode::LoginFailed,
            message: "provider `gh`: the login was denied".into(),
        }),
    );
    assert_eq!(denied.status, exit::LOGIN_FAILED);
    assert_eq!(denied.message, "provider `gh`: the login was denied");
    let silent = login_failure("gh", None);
    assert_eq!(silent.status, exit::LOGIN_FAILED);
    assert!(silent.message.contains("tokenctl login gh"));
}

/// While tokend still asks the provider for a code, a person at a
/// terminal is told what Ctrl-C does (it leaves the login going on there
/// too): with the line that says so, and not again at the prompt.
#[test]
fn a_terminal_is_told_what_ctrl_c_does_while_the_code_is_asked_for() {
    let mut view = HumanView {
        terminal: Terminal {
            tty: true,
            interactive: true,
            color: false,
            size: Some((80, 24)),
            utf8: true,
        },
        countdown: None,
        asking_said: false,
        hint_said: false,
        size_now: no_size,
    };
    let mut out = Vec::new();
    view.tick(&mut out, "gh", Moment::now()).unwrap();
    let asking = String::from_utf8(out).unwrap();
    assert!(
        asking.starts_with("Asking gh for a login code…\nCtrl-C stops waiting, not the login"),
        "{asking}"
    );
    let mut out = Vec::new();
    view.prompt(&mut out, "gh", &prompt(None, None), false)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("ABCD-EFGH") && !text.contains("Ctrl-C"),
        "{text}"
    );
}

/// A connection tokend closes after the prompt is tokend gone mid-login
/// (killed, crashed): said as an orderly stop is, that the login ended
/// with it and is to be done again, not that tokend never answered; exit
/// 3, and with `--json` a `done` line with `shutting_down`. Before the
/// prompt it did not answer, and that is said.
#[test]
fn a_daemon_gone_after_the_prompt_ended_the_login() {
    let json = LoginOptions {
        json: true,
        no_wait: false,
    };
    let mut out = Vec::new();
    let failure = stream_failure(ClientError::Closed, "gh", json, &mut out, true);
    assert_eq!(failure.status, exit::DAEMON_UNREACHABLE);
    assert_eq!(
        failure.message,
        "tokend closed the connection during the login (did it stop or crash?): the login \
         ended with it; run `tokenctl login gh` again once tokend is back"
    );
    let done: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["error"]["code"], "shutting_down");
    let before = stream_failure(ClientError::Closed, "gh", json, &mut Vec::new(), false);
    assert_eq!(before.status, exit::DAEMON_UNREACHABLE);
    assert!(
        before.message.contains("before answering"),
        "{}",
        before.message
    );
}

/// Before the prompt, the first tick says what tokenctl waits for, once.
#[test]
fn a_wait_for_the_code_is_said_once() {
    let mut view = HumanView {
        terminal: Terminal::plain(),
        countdown: None,
        asking_said: false,
        hint_said: false,
        size_now: no_size,
    };
    let mut out = Vec::new();
    let now = Moment::now();
    view.tick(&mut out, "gh", now).unwrap();
    view.tick(&mut out, "gh", now).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Asking gh for a login code…\n"
    );
}
