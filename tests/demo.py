#!/usr/bin/env python3
"""Runs the README's first command, dist/demo.sh, the way a person does.

In a pseudo-terminal (the demo's controlling terminal, as in a terminal
window), with CARGO_TARGET_DIR pointing outside the checkout, it reads the
code the demo prints, approves it with the demo's own `curl` command, checks
that the demo's `tokenctl status` shows `demo` active, then ends the demo:

  ctrl-c   types Ctrl-C into the terminal (the line discipline sends SIGINT);
  hangup   closes the terminal (the kernel sends SIGHUP).

Either way no process of the demo may be left and its temporary directory
must be gone. Usage: tests/demo.py TARGET_DIR [ctrl-c|hangup ...]
(TARGET_DIR must lie outside the checkout). Exits non-zero on a failure.
"""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The first run may build the release binaries; later steps take seconds.
BUILD_TIMEOUT = 30 * 60
STEP_TIMEOUT = 60
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Failure(Exception):
    pass


class Terminal:
    """The master side of the demo's terminal, and everything it printed."""

    def __init__(self, fd):
        self.fd = fd
        self.seen = b""

    def text(self):
        return ANSI.sub(b"", self.seen).replace(b"\r", b"").decode("utf-8", "replace")

    def read_until(self, pattern, timeout, what):
        """Reads until `pattern` matches the plain text; returns the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.S)
        while True:
            found = regex.search(self.text())
            if found:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"no {what} within {timeout} s; the terminal showed:\n{self.text()}")
            if not self.read_some(left):
                raise Failure(f"the demo ended before {what}; the terminal showed:\n{self.text()}")

    def read_some(self, timeout):
        """One read; False at end of file (the demo's side is closed)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: every slave fd is closed
            return False
        self.seen += chunk
        return bool(chunk)

    def drain(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.read_some(deadline - time.monotonic()):
            pass


def processes_mentioning(needle):
    """Pids of processes whose command line contains `needle`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


def wait_for_exit(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    raise Failure(f"the demo (pid {pid}) did not exit within {timeout} s")


def run_demo(target_dir, ending):
    tmp = tempfile.mkdtemp(prefix="tokend-demo-test.")
    env = dict(os.environ, TMPDIR=tmp, CARGO_TARGET_DIR=target_dir, TERM="xterm")
    env.pop("TOKEND_SOCKET", None)
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execvpe("bash", ["bash", "dist/demo.sh"], env)
    term = Terminal(fd)
    try:
        code = term.read_until(r"and enter the code\s+(\S+)", BUILD_TIMEOUT, "user code").group(1)
        approve = term.read_until(r"curl -d user_code=CODE (http://127\.0\.0\.1:\d+/\S+)",
                                  STEP_TIMEOUT, "curl command").group(1)
        # The person, in another terminal, runs the printed command.
        subprocess.run(["curl", "-fsS", "-o", "/dev/null", "-d", f"user_code={code}", approve],
                       check=True, timeout=STEP_TIMEOUT)
        status = term.read_until(r"\$ tokenctl status\n(.*?)\n==> The daemon keeps", STEP_TIMEOUT,
                                 "tokenctl status").group(1)
        if not re.search(r"^demo\b.*\bactive\b", status, re.M):
            raise Failure(f"`tokenctl status` does not show demo active:\n{status}")
        # The demo prints it after the status, in the same block; the
        # terminal may hand that block over in pieces.
        work = term.read_until(r"Logs: (\S+)/tokend\.log", STEP_TIMEOUT, "the logs' path")
        if not work.group(1).startswith(tmp):
            raise Failure(f"the demo's directory is not under TMPDIR {tmp}:\n{term.text()}")
        work = work.group(1)
        binary = re.search(r"TOKEND_SOCKET=\S+ (\S+) token demo", term.text()).group(1)
        if not binary.startswith(os.path.realpath(target_dir)) and not binary.startswith(target_dir):
            raise Failure(f"the demo runs {binary}, not cargo's build in {target_dir}")
        if not processes_mentioning(work):
            raise Failure("no demo process found while the demo runs: the check below would prove nothing")
        if ending == "ctrl-c":
            os.write(fd, b"\x03")
            term.drain(STEP_TIMEOUT)
            os.close(fd)
        else:
            os.close(fd)
        status = wait_for_exit(pid, STEP_TIMEOUT)
        pid = None
        # The script's cleanup waits for its children, so once it has exited
        # they must be gone.
        left = processes_mentioning(work)
        if left:
            raise Failure(f"after {ending}, demo processes are still running: {left}")
        if os.listdir(tmp):
            raise Failure(f"after {ending}, the demo left {os.listdir(tmp)} in TMPDIR")
        print(f"demo ({ending}): approved with the printed curl command, status showed demo "
              f"active, exit status {os.waitstatus_to_exitcode(status)}, nothing left behind")
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        for leftover in processes_mentioning(tmp):
            try:
                os.kill(leftover, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["rm", "-rf", tmp], check=False)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    target_dir = os.path.abspath(sys.argv[1])
    if os.path.commonpath([target_dir, REPO]) == REPO:
        print(f"{target_dir} is inside the checkout: the test is of a target dir elsewhere",
              file=sys.stderr)
        return 2
    failed = []
    for ending in sys.argv[2:] or ["ctrl-c", "hangup"]:
        try:
            run_demo(target_dir, ending)
        except Failure as e:
            failed.append(ending)
            print(f"FAILED demo ({ending}): {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
