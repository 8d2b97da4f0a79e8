#!/usr/bin/env bash
# Installs, upgrades, removes and purges a tokend .deb for real, with apt
# and dpkg and the maintainer scripts, but in a private mount namespace where
# /usr, /etc and /var are overlays on temporary directories: the machine
# itself is left untouched (no package, no user `tokend`, none of the
# dependencies apt may have to install). Needs root (or sudo) and overlayfs;
# without them it says so and exits 0.
#
#   dist/deb/install-test.sh target/debian/tokend_0.1.0-1_amd64.deb
set -euo pipefail

deb=$(realpath "${1:?usage: dist/deb/install-test.sh PACKAGE.deb}")

if [ "${TOKEND_INSTALL_TEST_INNER:-}" != 1 ]; then
    if [ "$(id -u)" = 0 ]; then as_root=(); elif sudo -n true 2>/dev/null; then as_root=(sudo -n); else
        echo "dist/deb/install-test.sh: needs root or password-less sudo; skipped" >&2
        exit 0
    fi
    # The overlays' upper and work directories live in $work.
    work=$(mktemp -d -t tokend-install-test.XXXXXX)
    status=0
    "${as_root[@]}" env TOKEND_INSTALL_TEST_INNER=1 TOKEND_INSTALL_TEST_WORK="$work" \
        unshare --mount --propagation private "$0" "$deb" || status=$?
    "${as_root[@]}" rm -rf "$work"
    exit "$status"
fi

work=$TOKEND_INSTALL_TEST_WORK
for dir in usr etc var; do
    mkdir -p "$work/$dir/upper" "$work/$dir/work"
    if ! mount -t overlay overlay \
        -o "lowerdir=/$dir,upperdir=$work/$dir/upper,workdir=$work/$dir/work" "/$dir" 2>/dev/null; then
        echo "dist/deb/install-test.sh: cannot mount an overlay on /$dir here; skipped" >&2
        exit 0
    fi
done
# No systemd runs here: the scripts must notice and not call systemctl.
mount -t tmpfs tmpfs /run
# man-db rebuilds its index at every dpkg run that installs or removes man
# pages (3 s each, 45 of this test's 52 s); the pages are checked by path
# (`man -w`), which needs no index. Off in the overlay only.
rm -f /var/lib/man-db/auto-update

fail() { printf 'dist/deb/install-test.sh: FAILED: %s\n' "$*" >&2; exit 1; }
quiet() { "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; fail "$*"; }; }

# The first install as the README's (apt install ./PACKAGE.deb): apt also
# installs what the package depends on and the machine lacks (a system bus,
# where dbus is not installed), into the overlays like the rest. Package
# lists are fetched (into the overlay) only when apt finds none to use.
apt_install() {
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb"
}
if ! apt_install >"$work/out" 2>&1; then
    quiet apt-get update -q
    quiet apt_install
fi
dpkg-query -W -f='${Status}' tokend 2>/dev/null | grep -q 'install ok installed' \
    || fail "apt did not install the package"
getent passwd tokend >/dev/null || fail "postinst created no user tokend"
# As /usr/lib/sysusers.d/tokend.conf declares it (systemd-sysusers made it):
# a system user with its own group, no login shell.
IFS=: read -r _ _ uid gid gecos home shell < <(getent passwd tokend)
[ "$gecos:$home" = "tokend OAuth 2.0 token broker:/var/lib/tokend" ] && [ "$uid" -lt 1000 ] \
    && [ "$(getent group tokend | cut -d: -f3)" = "$gid" ] && [ "${shell##*/}" = nologin ] \
    || fail "user tokend is not as the sysusers file declares: $(getent passwd tokend)"
[ "$(stat -c '%U:%G %a' /etc/tokend/config.toml)" = "root:tokend 640" ] \
    || fail "/etc/tokend/config.toml is $(stat -c '%U:%G %a' /etc/tokend/config.toml), not root:tokend 640"
quiet tokend --check --config /etc/tokend/config.toml
quiet tokenctl --version
quiet man -w tokend tokenctl docker-credential-tokend

# Reaching the socket and reading the secrets are separate permissions: a
# member of the socket's group connects but cannot read the config. The
# daemon is started as the unit starts it (its User=, Group= and
# SupplementaryGroups=), on a copy of the config without the system bus
# (none runs here) and with socket_mode "0660".
getent group tokend-clients >/dev/null || fail "postinst created no group tokend-clients"
[ -z "$(getent group tokend | cut -d: -f4)" ] || fail "group tokend (may read the config) has members"
unit=/usr/lib/systemd/system/tokend.service
unit_key() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
[ "$(unit_key User)" = tokend ] && [ "$(unit_key Group)" = tokend-clients ] \
    && [ "$(unit_key SupplementaryGroups)" = tokend ] \
    || fail "the unit runs as $(unit_key User):$(unit_key Group) +$(unit_key SupplementaryGroups), not tokend:tokend-clients +tokend"
sed -e 's/^bus = "system"/bus = "none"\nsocket_mode = "0660"/' \
    /etc/tokend/config.toml >/etc/tokend/socket-test.toml
grep -q '^socket_mode = "0660"' /etc/tokend/socket-test.toml || fail "the packaged config has no bus = \"system\" line to edit"
chown root:tokend /etc/tokend/socket-test.toml && chmod 0640 /etc/tokend/socket-test.toml
install -d -m 0755 -o tokend -g tokend-clients /run/tokend
quiet useradd --system --no-create-home --groups tokend-clients tokend-test-client
RUNTIME_DIRECTORY=/run/tokend setpriv --reuid=tokend --regid=tokend-clients --groups=tokend \
    /usr/bin/tokend --config /etc/tokend/socket-test.toml >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do [ -S /run/tokend/tokend.sock ] && break; sleep 0.1; done
as_client() { setpriv --reuid=tokend-test-client --regid=nogroup --init-groups "$@"; }
as_client tokenctl --socket /run/tokend/tokend.sock version >"$work/out" 2>&1 \
    || { cat "$work/out" "$work/daemon.log" >&2; fail "a member of tokend-clients cannot reach the socket"; }
if as_client cat /etc/tokend/config.toml >/dev/null 2>&1; then
    fail "a member of tokend-clients can read /etc/tokend/config.toml"
fi
kill "$daemon" && wait "$daemon" || true
userdel tokend-test-client
rm /etc/tokend/socket-test.toml

# An upgrade keeps the user and the config's owner and mode.
echo '# edited by the administrator' >>/etc/tokend/config.toml
quiet dpkg -i "$deb"
grep -q 'edited by the administrator' /etc/tokend/config.toml || fail "the upgrade replaced an edited config"
[ "$(stat -c '%G %a' /etc/tokend/config.toml)" = "tokend 640" ] || fail "the upgrade changed the config's mode"

# An upgrade of a running system service, staged with stand-ins for
# systemctl and deb-systemd-invoke that note their calls (no systemd runs
# here): one that keeps its sessions in memory (the packaged config) is not
# restarted, which would log every provider out, and the administrator is
# told; one with a store that survives a restart is restarted.
stand_ins=/usr/local/sbin
mkdir -p "$stand_ins" /run/systemd/system
for tool in systemctl deb-systemd-invoke; do
    printf '#!/bin/sh\necho "%s $*" >>%s/calls\nexit 0\n' "$tool" "$work" >"$stand_ins/$tool"
    chmod 0755 "$stand_ins/$tool"
done
: >"$work/calls"
PATH="$stand_ins:$PATH" dpkg -i "$deb" >"$work/out" 2>&1 || { cat "$work/out" >&2; fail "upgrade with a running service"; }
! grep -q 'deb-systemd-invoke try-restart' "$work/calls" \
    || fail "an upgrade restarted a service that keeps its sessions in memory"
grep -q 'so it is not restarted' "$work/out" || fail "the upgrade did not say why it left the service running: $(cat "$work/out")"
sed -i 's/^store = "memory"/store = "encrypted-file"/' /etc/tokend/config.toml
: >"$work/calls"
PATH="$stand_ins:$PATH" quiet dpkg -i "$deb"
grep -q 'deb-systemd-invoke try-restart tokend.service' "$work/calls" \
    || fail "an upgrade did not restart a service whose sessions survive it: $(cat "$work/calls")"
# TOML's literal string is the same key.
sed -i "s/^store = \"encrypted-file\"/store = 'memory'/" /etc/tokend/config.toml
: >"$work/calls"
PATH="$stand_ins:$PATH" quiet dpkg -i "$deb"
! grep -q 'deb-systemd-invoke try-restart' "$work/calls" \
    || fail "an upgrade restarted a service that keeps its sessions in memory (store = 'memory')"
# No store line: the default, the Secret Service, which a system service
# has none of, keeps the sessions in memory too.
sed -i "s/^store = 'memory'/# store = \"memory\"/" /etc/tokend/config.toml
: >"$work/calls"
PATH="$stand_ins:$PATH" quiet dpkg -i "$deb"
! grep -q 'deb-systemd-invoke try-restart' "$work/calls" \
    || fail "an upgrade restarted a service whose config names no store (its sessions in memory)"
sed -i 's/^# store = "memory"/store = "memory"/' /etc/tokend/config.toml
rm -r "$stand_ins/systemctl" "$stand_ins/deb-systemd-invoke" /run/systemd/system

# A config the administrator deleted (a desktop running only the user
# service) stays deleted, and the upgrade or reinstall still configures.
cp -p /etc/tokend/config.toml "$work/config.toml"
rm /etc/tokend/config.toml
quiet dpkg -i "$deb"
dpkg-query -W -f='${Status}' tokend | grep -q 'install ok installed' \
    || fail "a reinstall without /etc/tokend/config.toml left the package $(dpkg-query -W -f='${Status}' tokend)"
[ ! -e /etc/tokend/config.toml ] || fail "the reinstall brought back a deleted config"
cp -p "$work/config.toml" /etc/tokend/config.toml

quiet dpkg -r tokend
[ ! -e /usr/bin/tokend ] || fail "remove left /usr/bin/tokend"
[ -e /etc/tokend/config.toml ] || fail "remove deleted the config (only purge may)"

mkdir -p /var/lib/tokend && touch /var/lib/tokend/session
quiet dpkg -P tokend
[ ! -e /etc/tokend ] || fail "purge left /etc/tokend"
[ ! -e /var/lib/tokend ] || fail "purge left the stored sessions in /var/lib/tokend"

# An enabled unit is disabled by the purge: no link is left (it would
# point at nothing, and a reinstall would start enabled), nor
# deb-systemd-helper's record of it. With deb-systemd-helper (what it
# recorded in postinst) and without it (uninstalled before the purge: its
# record is there, the helper is not). Moving it aside is done in the
# overlay.
leftovers() {
    find /etc/systemd /var/lib/systemd -name 'tokend.service*' 2>/dev/null || true
}
helpers=(absent)
if command -v deb-systemd-helper >/dev/null 2>&1; then helpers=(present absent); fi
for helper in "${helpers[@]}"; do
    quiet dpkg -i "$deb"
    quiet systemctl --root=/ enable tokend.service
    quiet systemctl --root=/ --global enable tokend.service
    [ -L /etc/systemd/system/multi-user.target.wants/tokend.service ] \
        && [ -L /etc/systemd/user/default.target.wants/tokend.service ] \
        || fail "systemctl enable made no links: $(leftovers)"
    if [ "$helper" = absent ] && [ "${#helpers[@]}" = 2 ]; then
        mv "$(command -v deb-systemd-helper)" "$work/deb-systemd-helper"
    fi
    quiet dpkg -P tokend
    [ -z "$(leftovers)" ] || fail "purge (deb-systemd-helper $helper) left:"$'\n'"$(leftovers)"
done
[ ! -e "$work/deb-systemd-helper" ] || mv "$work/deb-systemd-helper" /usr/bin/deb-systemd-helper
quiet dpkg -i "$deb"
for scope in --system --global; do
    enabled=$(systemctl --root=/ "$scope" is-enabled tokend.service 2>&1 || true)
    [ "$enabled" = disabled ] || fail "after a purge, a reinstall's unit ($scope) is $enabled"
done
quiet dpkg -P tokend
echo "dist/deb/install-test.sh: install, upgrade, remove and purge (which disables) behave" >&2
