//! `tokenctl login` on a terminal and in a pipeline: what Ctrl-C does, the
//! countdown's fit to the terminal, a reader that goes away, a slow
//! provider waited for with a word.

use super::login::{done_event, prompt_event};
use super::*;

/// `tokenctl login --help` says what Ctrl-C does to a login, and how to
/// cancel one.
#[test]
fn login_help_says_what_ctrl_c_does() {
    let output = tokenctl().args(["login", "--help"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let help = text(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "Ctrl-C (or any end of tokenctl) stops the waiting, not the login",
        "until its code expires",
        "`tokenctl login NAME --cancel` cancels it (the session stays",
    ] {
        assert!(help.contains(needle), "{needle:?} not in {help}");
    }
}

/// On a terminal (a pty, from `script`), the prompt says what Ctrl-C does
/// before the countdown starts: on one that takes no escapes
/// (`TERM=dumb`) too, as the hint is plain text.
#[test]
fn a_terminal_is_told_what_ctrl_c_does() {
    for term in ["xterm", "dumb"] {
        let daemon =
            CannedDaemon::answering(vec![json(&prompt_event(None)), json(&done_event(None))]);
        let command = format!(
            "{} --socket {} login github",
            env!("CARGO_BIN_EXE_tokenctl"),
            daemon.socket().display()
        );
        let output = Command::new("script")
            .args(["--quiet", "--return", "--command", &command, "/dev/null"])
            .env("TERM", term)
            .env("NO_COLOR", "1")
            .env("LC_ALL", "C.UTF-8")
            .env_remove("TOKEND_SOCKET")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        daemon.requests();
        assert_eq!(output.status.code(), Some(0), "{term}: {output:?}");
        let screen = text(&output.stdout).replace("\r\n", "\n");
        assert_eq!(
            screen
                .matches(
                    "Ctrl-C stops waiting, not the login: it goes on in tokend until the code expires\n\
                     (`tokenctl login github --cancel` cancels it).\n"
                )
                .count(),
            1,
            "{term}: {screen}"
        );
        assert!(screen.contains("Logged in to github."), "{term}: {screen}");
    }
}

/// The countdown on a terminal made narrower while it runs (the window's
/// size set on the pty, which sends SIGWINCH): a redraw after the resize
/// fits one row of the new width, its time whole. The size was read once:
/// the line kept its old length and wrapped, a stale row at each redraw;
/// and a line cut to the width cut its time ("… 0:5" for 0:50).
#[test]
fn the_countdown_fits_a_terminal_made_narrower() {
    let daemon = CannedDaemon::answering(vec![json(&prompt_event(None))]);
    // A pty whose size the script sets: 60 columns, and 20 once the
    // countdown has been drawn; it prints what tokenctl wrote, RESIZED
    // where the resize came, and what it wrote after, once two redraws
    // have come (the first may have been under way as the size changed).
    let driver = r#"
import fcntl, os, pty, select, signal, struct, sys, termios, time
def size(fd, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
pid, fd = pty.fork()
if pid == 0:
    size(0, 60)
    os.environ["TERM"] = "xterm"
    os.environ["NO_COLOR"] = "1"
    os.environ["LC_ALL"] = "C.UTF-8"
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
deadline = time.monotonic() + 30
def read_until(done):
    global out
    while time.monotonic() < deadline and not done(out):
        if select.select([fd], [], [], 0.5)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            out += chunk
read_until(lambda o: b"left" in o)
size(fd, 20)
mark = len(out)
read_until(lambda o: o[mark:].count(b"\r\x1b[2K") >= 2)
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
sys.stdout.buffer.write(out[:mark] + b"RESIZED" + out[mark:])
"#;
    let output = Command::new("/usr/bin/python3")
        .args(["-c", driver, env!("CARGO_BIN_EXE_tokenctl"), "--socket"])
        .arg(daemon.socket())
        .args(["login", "github"])
        .env_remove("TOKEND_SOCKET")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    daemon.requests();
    let screen = text(&output.stdout);
    let (before, after) = screen
        .split_once("RESIZED")
        .unwrap_or_else(|| panic!("{output:?}"));
    assert!(
        before.contains("\x1b[2KWaiting for approval… 1"),
        "not drawn in full before: {screen:?}"
    );
    let redraws: Vec<&str> = after
        .split("\r\x1b[2K")
        .map(|line| line.trim_matches(['\r', '\n']))
        .filter(|line| !line.is_empty())
        .collect();
    let last = redraws
        .last()
        .unwrap_or_else(|| panic!("no redraw after the resize: {screen:?}"));
    let time = last.strip_suffix(" left").unwrap_or(last);
    assert!(
        last.chars().count() < 20
            && time.len() >= 4
            && time.chars().all(|c| c.is_ascii_digit() || c == ':'),
        "{last:?} in {screen:?}"
    );
}

/// `tokenctl --json login NAME | head -1`, and the same without `--json`:
/// once the reader of stdout has gone, tokenctl stops waiting within a
/// tick or two and says the login goes on in tokend, exit 1 (output that
/// could not go out). With `--json` nothing is written between the
/// prompt and the verdict, so it waited for the code's whole life (15 to
/// 30 minutes), then exited 1 without a word; without it, until its next
/// progress line, 30 s later.
#[test]
fn a_reader_that_went_away_ends_the_wait() {
    use std::io::BufRead as _;
    use std::time::{Duration, Instant};

    for json_mode in [true, false] {
        let daemon = CannedDaemon::answering(vec![json(&prompt_event(None))]);
        let mut command = tokenctl();
        command.arg("--socket").arg(daemon.socket());
        if json_mode {
            command.arg("--json");
        }
        let mut child = command
            .args(["login", "github"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read up to the wait, as `head` would, then go away.
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let waiting = if json_mode {
            r#"{"event":"prompt""#
        } else {
            "Waiting for approval"
        };
        assert!(
            lines
                .by_ref()
                .map_while(Result::ok)
                .any(|line| line.contains(waiting)),
            "json {json_mode}: no wait began"
        );
        drop(lines);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("json {json_mode}: still waiting 10 s after stdout was closed");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        daemon.requests();
        assert_eq!(status.code(), Some(1), "json {json_mode}: {stderr}");
        assert_eq!(
            stderr,
            "tokenctl: stdout was closed: stopped waiting; the login goes on in tokend \
             (`tokenctl login github --cancel` stops it)\n",
            "json {json_mode}"
        );
    }
}

/// What the help says, held to the real daemon: after SIGINT ends
/// `tokenctl login`, the login goes on (its code still shown by `status`,
/// and an approval then logs in), and `tokenctl logout` cancels one.
#[test]
fn ctrl_c_stops_the_wait_and_logout_cancels_the_login() {
    use std::io::BufRead as _;

    use crate::support::daemon::{Daemon, spawn_tokenctl, stdout};
    use crate::support::provider::Provider;

    let provider = Provider::rfc8628();
    let daemon = Daemon::start(&provider.config("demo"));
    // A login waiting for its person, interrupted as Ctrl-C would
    // (`spawn_tokenctl` gives SIGINT its default action, as a terminal).
    let interrupted_login = || {
        let mut child = spawn_tokenctl(&daemon.socket, &["--json", "login", "demo"]);
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let prompt: serde_json::Value = serde_json::from_str(&first).unwrap();
        let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{status:?}");
        prompt["user_code"].as_str().unwrap().to_owned()
    };
    let pending = || {
        let out = daemon.tokenctl(&["--json", "status", "demo"]);
        let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        status[0]["login"]["user_code"].as_str().map(str::to_owned)
    };

    let code = interrupted_login();
    assert_eq!(pending().as_deref(), Some(code.as_str()));
    provider.approve(&code).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !daemon.tokenctl(&["token", "demo"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "the login did not go on; log:\n{}",
            daemon.log()
        );
        // The daemon polls the provider each second: look again shortly.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let code = interrupted_login();
    assert_eq!(pending().as_deref(), Some(code.as_str()));
    let out = daemon.tokenctl(&["logout", "demo"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(pending(), None);
}

/// A provider slow to give a code: `tokenctl login` says what it is
/// waiting for (once a tick has gone by without the prompt) rather than
/// leaving the screen blank for up to tokend's `http_timeout`.
#[test]
fn a_slow_provider_is_waited_for_with_a_word() {
    use crate::support::daemon::{Daemon, stdout};
    use crate::support::provider::Provider;
    use tokend_emulator::{Endpoint, Fault};

    let provider = Provider::rfc8628();
    provider.inject(
        Endpoint::DeviceAuthorization,
        Fault::Delay(std::time::Duration::from_secs(3)),
        1,
    );
    let daemon = Daemon::start(&provider.config("demo"));
    let out = daemon.tokenctl(&["login", "--no-wait", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let asking = text
        .find("Asking demo for a login code…")
        .unwrap_or_else(|| panic!("no word while waiting: {text}"));
    let prompt = text.find("To log in to demo").expect("the prompt");
    assert!(asking < prompt, "{text}");
    assert_eq!(text.matches("Asking demo").count(), 1, "{text}");
}
