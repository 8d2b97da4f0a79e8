#!/usr/bin/env bash
# Runs tokend's whole test suite on a Debian/Ubuntu machine, installing what
# it needs first: the Rust toolchain (if cargo is missing), and the real
# peers the tests talk to (dbus-daemon, gnome-keyring, secret-tool,
# systemd-analyze). This is what CI runs (.ci/run) and what the README's
# second command runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says how long the one before it took (SECONDS: bash's clock).
last_step=
step() {
    if [ -n "$last_step" ]; then printf '    (%ss)\n' $((SECONDS - last_step)); fi
    last_step=$SECONDS
    printf '\n==> %s\n' "$*"
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages the tests need, by the command that shows they are there.
missing=()
declare -A needed=(
    [dbus-daemon]=dbus-daemon
    [gnome-keyring-daemon]=gnome-keyring
    [secret-tool]=libsecret-tools
    [busctl]=systemd
    [systemd-analyze]=systemd
    [gdbus]=libglib2.0-bin
    [cc]=build-essential
    [curl]=curl
    # Real clients of the credential helpers (git, kubectl) and the
    # certificate of the stub API server kubectl talks to.
    [git]=git
    [kubectl]=kubernetes-client
    [openssl]=openssl
    # The .deb: library dependencies, stripping; man pages are rendered.
    [dpkg-shlibdeps]=dpkg-dev
    [strip]=binutils
    [groff]=groff-base
)
# The Python D-Bus example (dist/examples/get_token.py) is run by the tests.
/usr/bin/python3 -c 'import jeepney' 2>/dev/null || missing+=(python3-jeepney)
# An extra name service source, for the test that names resolve through NSS.
[ -e /usr/lib/libnss_extrausers.so.2 ] || missing+=(libnss-extrausers)
# The .deb depends on a system bus (`dbus`); the install test installs it
# with apt, which then needs nothing from the network.
dpkg-query -W -f '${Status}' dbus 2>/dev/null | grep -q 'ok installed' || missing+=(dbus)
for cmd in "${!needed[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${needed[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# shellcheck source=dist/rust-toolchain.sh
. dist/rust-toolchain.sh
if needs_rustup; then
    step "installing the Rust toolchain (rustup)"
fi
use_new_enough_rust rustfmt clippy || exit 1
# A toolchain that was already there may lack the two components the first
# steps need; rustup adds them (without rustup, the steps say what is missing).
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
        step "adding rustfmt and clippy to the Rust toolchain"
        rustup component add rustfmt clippy
    fi
fi

# The release build the package and the demo share goes outside the
# checkout (the demo must find cargo's programs wherever CARGO_TARGET_DIR
# puts them: it asks cargo, never guesses ./target). It starts now, in the
# background at the lowest priority: it fills the cores the checks below
# leave idle (the single-crate stages of clippy and of the test build, and
# the end-to-end tests, which mostly wait on emulated providers and buses)
# and yields to them otherwise. The same commands as dist/deb/build.sh and
# dist/demo.sh, so theirs find everything built.
release_target=${XDG_CACHE_HOME:-$HOME/.cache}/tokend/target
release_log=$(mktemp -t tokend-release-build.XXXXXX)
(
    export CARGO_TARGET_DIR="$release_target"
    nice -n 19 cargo build --release --locked --bin tokend --bin tokenctl &&
        nice -n 19 cargo build --release --locked -p tokend-dist-gen &&
        nice -n 19 cargo build --release --locked -p tokend-emulator --bin tokend-emulator
) >"$release_log" 2>&1 &
release_build=$!
stop_release_build() {
    pkill -TERM -P "$release_build" 2>/dev/null || true
    kill "$release_build" 2>/dev/null || true
    rm -f "$release_log"
}
trap stop_release_build EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings (the product crate, the emulators, the generator)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (binaries in a directory only this uid can enter)"
# As in a clone under /root or in a `mktemp -d` directory: the tests that
# act as a second uid must not depend on reaching target/ (they run copies
# of the binaries from a directory of their own: tests/e2e/support/other_uid.rs).
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
mkdir -p "$target_dir"
chmod 0700 "$target_dir"
# Ten tests at a time, whatever the cores: the end-to-end tests mostly
# wait (on emulated providers, buses, timeouts), they hardly compute (on
# 2 cores, 381 end-to-end tests: 179 s at six, 115 s at ten, with the
# whole run, daemons included, using about half of one core).
RUST_TEST_THREADS=${RUST_TEST_THREADS:-10} cargo test --workspace --no-fail-fast

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "systemd units: verify, exposure at most 1.5, sysusers"
dist/check-units.sh

step "the release build (started in the background at the beginning)"
if ! wait "$release_build"; then
    cat "$release_log" >&2
    echo "the release build failed" >&2
    exit 1
fi

step "Debian package: build (release, in $release_target) and check its contents"
deb=$(CARGO_TARGET_DIR="$release_target" dist/deb/build.sh | tail -n 1)
CARGO_TARGET_DIR="$release_target" dist/deb/check.sh "$deb"
# dpkg -i/-r/-P with the maintainer scripts, in overlays: the machine is untouched.
CARGO_TARGET_DIR="$release_target" dist/deb/install-test.sh "$deb"

step "the README's first command: dist/demo.sh in a terminal, ended by Ctrl-C and by hangup"
/usr/bin/python3 tests/demo.py "$release_target" ctrl-c hangup

step "all checks passed ($((SECONDS / 60)) min $((SECONDS % 60)) s)"
