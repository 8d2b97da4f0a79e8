#!/usr/bin/env bash
# Checks the systemd files in dist/systemd:
#  - `systemd-analyze verify` on the system and the user unit: any message
#    at all is a failure (verify exits 0 on unknown keys and bad values, it
#    only warns);
#  - `systemd-analyze security --offline=yes` rates the system unit at most
#    MAX_EXPOSURE (the issue's bound is 1.5);
#  - `systemd-sysusers` accepts the sysusers.d file.
#
#   dist/check-units.sh [BINDIR]
#
# verify checks that ExecStart= can be executed, and tokend need not be
# installed: the units are copied to a temporary directory with
# /usr/bin/tokend replaced by BINDIR/tokend (default: the debug build in
# cargo's target directory). Man pages are not looked up (--man=no):
# they are generated, and tested in tests/e2e/dist.rs.
set -euo pipefail
units=$(cd "$(dirname "$0")" && pwd)
cd "$units/.."

MAX_EXPOSURE=1.5

fail() { printf 'dist/check-units.sh: FAILED: %s\n' "$*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing: apt-get install systemd"

# Cargo's own target directory ($CARGO_TARGET_DIR, a config's
# build.target-dir, else target/), as cargo reports it.
if [ -n "${1:-}" ]; then
    bindir=$(realpath -m "$1")
else
    target=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    bindir="$target/debug"
fi
[ -x "$bindir/tokend" ] || fail "$bindir/tokend is not built (cargo build, or pass BINDIR)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/system" "$tmp/user" "$tmp/runtime"
chmod 0700 "$tmp/runtime"
sed "s#/usr/bin/tokend#$bindir/tokend#g" "$units/systemd/tokend.service" >"$tmp/system/tokend.service"
sed "s#/usr/bin/tokend#$bindir/tokend#g" "$units/systemd/user/tokend.service" >"$tmp/user/tokend.service"

verify() {
    local what=$1
    shift
    local output
    output=$("$@" 2>&1) || fail "systemd-analyze verify ($what):"$'\n'"$output"
    [ -z "$output" ] || fail "systemd-analyze verify ($what) has complaints:"$'\n'"$output"
    echo "verify ($what): OK"
}
verify "system unit" systemd-analyze verify --man=no --generators=no "$tmp/system/tokend.service"
# A user manager needs a runtime directory, even offline.
verify "user unit" env XDG_RUNTIME_DIR="$tmp/runtime" \
    systemd-analyze verify --user --man=no --generators=no "$tmp/user/tokend.service"

# The score is rated on the unit as shipped (ExecStart does not matter).
report=$(systemd-analyze security --offline=yes "$units/systemd/tokend.service" 2>&1) \
    || fail "systemd-analyze security could not rate systemd/tokend.service:"$'\n'"$report"
summary=$(grep 'Overall exposure level' <<<"$report") \
    || fail "no exposure level in the report:"$'\n'"$report"
exposure=$(sed -n 's/.*: \([0-9][0-9.]*\) .*/\1/p' <<<"$summary")
echo "security: $summary"
if awk -v e="$exposure" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(e > max) }'; then
    grep '✗' <<<"$report" >&2 || true
    fail "systemd/tokend.service is exposed $exposure, above the bound $MAX_EXPOSURE." \
        "Restore the sandboxing settings, or explain a new exposure and its cost in the unit."
fi

mkdir -p "$tmp/root/etc"
systemd-sysusers --root="$tmp/root" "$units/systemd/tokend.sysusers" >/dev/null 2>&1 \
    || fail "systemd-sysusers rejects systemd/tokend.sysusers"
grep -q '^tokend:' "$tmp/root/etc/passwd" || fail "systemd/tokend.sysusers creates no user tokend"
echo "sysusers: OK"
