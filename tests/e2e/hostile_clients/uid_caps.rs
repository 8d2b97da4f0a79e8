//! The share of connections one caller may hold: a uid with a role has a
//! cap of its own, callers with no role share one whatever their uids, and
//! the daemon's own uid is served all the while (these need root, to run
//! as another uid).

use super::*;
use crate::support::other_uid::OtherUser;

/// A second uid holding its share of connections is told so on the next
/// one, while the daemon's own uid is still served; once it closes some,
/// it is served again. The uid may use a provider: its connections count
/// against it alone, not against the pool of callers with no role.
#[tokio::test]
async fn one_uid_cannot_take_every_connection() {
    let Some(other) = OtherUser::nobody_or_skip("one_uid_cannot_take_every_connection") else {
        return;
    };
    let server = serve_providers(
        Limits {
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
            ..short()
        },
        0o666,
        &format!(
            "[providers.shared]\ndevice_authorization_endpoint = \"https://idp.example/device\"\n\
             token_endpoint = \"https://idp.example/token\"\nclient_id = \"x\"\nallow_users = [{}]\n",
            other.uid
        ),
    );
    // As nobody: hold 4 (the cap), then one more, then close them all
    // and ask again on a new connection.
    let script = r#"
import socket, sys
path = sys.argv[1]
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s
def answer(s):
    s.sendall(b'{"op":"version"}\n')
    return s.makefile().readline().strip()
held = [connect() for _ in range(4)]
print(answer(held[0]))
extra = connect()
print(extra.makefile().readline().strip())
# tokenctl, which asks `version` first, is told of the cap too.
import subprocess
run = subprocess.run([sys.argv[2], '--socket', path, 'status'], capture_output=True, text=True)
print(run.returncode, run.stderr.strip().replace(chr(10), ' '))
for s in held + [extra]:
    s.close()
print(answer(connect()))
"#;
    let mut command = tokio::process::Command::new("/usr/bin/python3");
    command
        .args(["-c", script])
        .arg(&server.socket)
        .arg(other.binary("tokenctl"))
        .uid(other.uid)
        .gid(other.gid);
    let run = command.output();
    // Meanwhile the daemon's own uid is not counted against anyone.
    let (output, own) = tokio::join!(run, async {
        let mut answers = Vec::new();
        for _ in 0..8 {
            answers.push(ask(&server, r#"{"op":"version"}"#).await["ok"].clone());
        }
        answers
    });
    let output = output.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].contains("\"ok\":true"), "{stdout}");
    let capped = format!("uid {} holds 4 connections already", other.uid);
    assert!(
        lines[1].contains("\"ok\":false") && lines[1].contains(&capped),
        "the fifth connection of one uid was not refused: {stdout}"
    );
    // Not "did it stop or crash?" with exit 3 (tokend not reachable),
    // which took the cap's answer to `version` for a daemon too old to
    // know it and sent `status` on the closed connection.
    assert!(
        lines[2].contains(&capped) && !lines[2].starts_with("3 "),
        "tokenctl over the cap: {stdout}"
    );
    assert!(
        lines[3].contains("\"ok\":true"),
        "not served after closing: {stdout}"
    );
    assert!(own.iter().all(|ok| ok == true), "{own:?}");
}

/// Callers that may see no provider share one cap, whatever their uids: a
/// person with many uids (a user namespace's subordinate uids, each a uid
/// of its own to `SO_PEERCRED`) could hold the per-uid cap once per uid,
/// and so every connection the daemon serves. Another uid with no role is
/// refused while the first holds the cap; the daemon's own uid is served.
#[tokio::test]
async fn callers_with_no_role_share_one_cap_whatever_their_uids() {
    let Some(first) =
        OtherUser::nobody_or_skip("callers_with_no_role_share_one_cap_whatever_their_uids")
    else {
        return;
    };
    let server = serve_on(
        Limits {
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
            ..short()
        },
        0o666,
    );
    // The first uid holds the cap until told to let go.
    let holder = r#"
import socket, sys
path = sys.argv[1]
held = []
for _ in range(4):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    held.append(s)
held[0].sendall(b'{"op":"version"}\n')
print(held[0].makefile().readline().strip(), flush=True)
sys.stdin.readline()
"#;
    // A refused connection may be answered and closed before the request
    // is written: the answer is read all the same.
    let asker = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"op":"version"}\n')
except BrokenPipeError:
    pass
print(s.makefile().readline().strip())
"#;
    let mut holding = tokio::process::Command::new("/usr/bin/python3")
        .args(["-c", holder])
        .arg(&server.socket)
        .uid(first.uid)
        .gid(first.gid)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = tokio::io::BufReader::new(holding.stdout.take().unwrap()).lines();
    let line = said.next_line().await.unwrap().unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");

    // Another uid, no role either: refused, the shared cap named.
    let second_uid = 61_235;
    let ask_as_second = || {
        tokio::process::Command::new("/usr/bin/python3")
            .args(["-c", asker])
            .arg(&server.socket)
            .uid(second_uid)
            .gid(second_uid)
            .output()
    };
    let output = ask_as_second().await.unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        answer.contains("\"ok\":false")
            && answer.contains("callers that may see no provider hold 4 connections already"),
        "{answer}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ask(&server, r#"{"op":"version"}"#).await["ok"], true);

    // Let go: the second uid is served.
    holding
        .stdin
        .take()
        .unwrap()
        .write_all(b"go\n")
        .await
        .unwrap();
    assert!(holding.wait().await.unwrap().success());
    let output = ask_as_second().await.unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(answer.contains("\"ok\":true"), "{answer}");
}
