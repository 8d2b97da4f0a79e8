#!/usr/bin/env bash
# tokend's zero-credential demo: a local demo provider (the RFC 8628
# emulator), the daemon, and a device login you approve yourself — in a
# browser, or with the curl command it prints. No OAuth app to register.
#
# Installs what it needs on Debian/Ubuntu (a C compiler, curl, Rust) when
# missing, builds tokend, and leaves the daemon running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
    # A Debian installed with a root password has no sudo.
    echo "the demo needs ${missing[*]}: install them as root (su -c 'apt-get install ${missing[*]}'), then run it again" >&2
    exit 1
fi
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# shellcheck source=dist/rust-toolchain.sh
. dist/rust-toolchain.sh
use_new_enough_rust || exit 1

echo "==> building tokend (release; the first build takes a few minutes)"
# Ask cargo where it put each program (CARGO_TARGET_DIR, build.target-dir
# and the like move them): the "executable" of its build messages. The
# emulator is built on its own so that tokend is the same build as
# `cargo build --release` (one build would unify the emulator's
# dependency features into the daemon's).
executables() {
    cargo build --release --quiet --message-format=json-render-diagnostics "$@" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p'
}
built=$(executables --bin tokend --bin tokenctl; executables -p tokend-emulator --bin tokend-emulator)
path_of() {
    local found
    found=$(grep -m1 "/$1\$" <<<"$built") || { echo "cargo built no $1" >&2; exit 1; }
    printf '%s\n' "$found"
}
tokend=$(path_of tokend)
tokenctl=$(path_of tokenctl)
emulator=$(path_of tokend-emulator)

work=$(mktemp -d -t tokend-demo.XXXXXX)
pids=()
cleanup() {
    # A second signal (Ctrl-C again, a wrapper passing the first one on)
    # must not cut the cleanup short and leave the directory behind.
    trap - EXIT
    trap '' INT TERM HUP
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# Ctrl-C, kill, and closing the terminal (SIGHUP) all end the demo through
# its cleanup. The daemon treats SIGHUP as "reload" and would outlive the
# terminal otherwise.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# Should this script die without its traps (SIGKILL), the kernel stops its
# children too: setpriv --pdeathsig.
background() { setpriv --pdeathsig TERM "$@" & pids+=($!); }

# The demo provider: 2 s poll interval, 5-minute tokens so refreshes show up.
background "$emulator" --interval 2 --token-lifetime 300 --config-out "$work/config.toml" \
    >"$work/provider.out" 2>"$work/provider.log"
for _ in $(seq 100); do [ -s "$work/config.toml" ] && break; sleep 0.1; done
[ -s "$work/config.toml" ] || { cat "$work/provider.log"; echo "the demo provider did not start" >&2; exit 1; }
approve_url=$(grep -o 'http://127.0.0.1:[0-9]*/device' "$work/provider.out" | head -n1)

# The daemon, with its socket in the demo's directory.
sed -i "s|^\[daemon\]$|[daemon]\nsocket = \"$work/tokend.sock\"|" "$work/config.toml"
background "$tokend" --config "$work/config.toml" 2>"$work/tokend.log"
for _ in $(seq 100); do [ -S "$work/tokend.sock" ] && break; sleep 0.1; done
[ -S "$work/tokend.sock" ] || { cat "$work/tokend.log"; echo "tokend did not start" >&2; exit 1; }

export TOKEND_SOCKET="$work/tokend.sock"
cat <<INFO

==> tokend is running with one provider, "demo", served on this machine.
    Approve the login below in a browser at $approve_url
    (the code is filled in if you open the full link shown), or from
    another terminal with:
      curl -d user_code=CODE $approve_url/approve
    Ctrl-C ends the demo (tokenctl's hint below, that the login goes on in
    tokend, is of a daemon of your own).

INFO
echo "\$ tokenctl login demo"
"$tokenctl" login demo
echo
echo "\$ tokenctl token demo"
"$tokenctl" token demo
echo
echo "\$ tokenctl status"
"$tokenctl" status
cat <<INFO

==> The daemon keeps the session fresh until you stop it (Ctrl-C).
    From another terminal, try:
      TOKEND_SOCKET=$work/tokend.sock $tokenctl token demo
      TOKEND_SOCKET=$work/tokend.sock $tokenctl status
    Logs: $work/tokend.log
INFO
wait "${pids[1]}"
