#!/usr/bin/env bash
# Checks a tokend .deb built by dist/deb/build.sh: exactly the expected files
# (none missing, none extra) with the expected owners and modes, the control
# fields, the conffiles and the maintainer scripts; then lintian, when it is
# installed (errors fail, warnings are shown).
#
#   dist/deb/check.sh target/debian/tokend_0.1.0-1_amd64.deb
set -euo pipefail
cd "$(dirname "$0")/../.."

deb=${1:?usage: dist/deb/check.sh PACKAGE.deb}
fail() { printf 'dist/deb/check.sh: %s\n' "$*" >&2; exit 1; }

# Every file the package installs, with its mode. Directories are checked
# apart: all 0755 root/root.
expected=$(LC_ALL=C sort <<'EOF'
-rw-r--r-- ./etc/tokend/config.toml
-rwxr-xr-x ./usr/bin/tokenctl
lrwxrwxrwx ./usr/bin/docker-credential-tokend
-rwxr-xr-x ./usr/bin/tokend
-rw-r--r-- ./usr/lib/systemd/system/tokend.service
-rw-r--r-- ./usr/lib/systemd/user/tokend.service
-rw-r--r-- ./usr/lib/sysusers.d/tokend.conf
-rw-r--r-- ./usr/share/bash-completion/completions/tokenctl
-rw-r--r-- ./usr/share/bash-completion/completions/tokend
-rw-r--r-- ./usr/share/dbus-1/services/org.tokend.Broker1.service
-rw-r--r-- ./usr/share/dbus-1/system-services/org.tokend.Broker1.service
-rw-r--r-- ./usr/share/dbus-1/interfaces/org.tokend.Broker1.xml
-rw-r--r-- ./usr/share/dbus-1/system.d/org.tokend.Broker1.conf
-rw-r--r-- ./usr/share/doc/tokend/changelog.Debian.gz
-rw-r--r-- ./usr/share/doc/tokend/copyright
-rw-r--r-- ./usr/share/doc/tokend/README.md.gz
-rw-r--r-- ./usr/share/doc/tokend/examples/example.toml
-rw-r--r-- ./usr/share/fish/vendor_completions.d/tokenctl.fish
-rw-r--r-- ./usr/share/fish/vendor_completions.d/tokend.fish
-rw-r--r-- ./usr/share/lintian/overrides/tokend
-rw-r--r-- ./usr/share/man/man1/docker-credential-tokend.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-credential-git.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-credential-kubernetes.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-credential.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-exec.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-login.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-logout.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-metrics.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-status.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-token.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl-version.1.gz
-rw-r--r-- ./usr/share/man/man1/tokenctl.1.gz
-rw-r--r-- ./usr/share/man/man8/tokend.8.gz
-rw-r--r-- ./usr/share/zsh/vendor-completions/_tokenctl
-rw-r--r-- ./usr/share/zsh/vendor-completions/_tokend
EOF
)
# Every config/*.toml and dist/examples/* is shipped as an example.
for example in config/*.toml dist/examples/*; do
    expected+=$'\n'"-rw-r--r-- ./usr/share/doc/tokend/examples/${example##*/}"
done
expected=$(LC_ALL=C sort -u <<<"$expected")

listing=$(dpkg-deb -c "$deb")
owners=$(awk '{print $2}' <<<"$listing" | sort -u)
[ "$owners" = root/root ] || fail "files not owned by root/root: $owners"
bad_dirs=$(awk '/^d/ && $1 != "drwxr-xr-x" {print $1, $6}' <<<"$listing")
[ -z "$bad_dirs" ] || fail "directories not 0755: $bad_dirs"
actual=$(awk '!/^d/ {print $1, $6}' <<<"$listing" | LC_ALL=C sort)
if [ "$actual" != "$expected" ]; then
    diff <(echo "$expected") <(echo "$actual") >&2 || true
    fail "the package's files differ from the expected list (< expected, > in the package)"
fi

field() { dpkg-deb -f "$deb" "$1"; }
version=$(cargo pkgid | sed 's/.*[#@]//')
[ "$(field Package)" = tokend ] || fail "Package is $(field Package)"
[[ "$(field Version)" == "$version"-* ]] || fail "Version $(field Version) is not $version-REVISION"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture is $(field Architecture)"
[[ "$(field Depends)" == *"libc6 (>= "* ]] || fail "Depends lacks a versioned libc6: $(field Depends)"
# postinst runs systemd-sysusers (and never adduser).
[[ "$(field Depends)" == *"systemd | systemd-standalone-sysusers | systemd-sysusers"* ]] \
    || fail "Depends lacks systemd | systemd-standalone-sysusers | systemd-sysusers: $(field Depends)"
# The units' ExecReload runs /bin/kill, which procps ships (not in a
# minimal or container install).
[[ "$(field Depends)" == *"procps"* ]] || fail "Depends lacks procps (/bin/kill for ExecReload): $(field Depends)"
[ "$(field Recommends)" = dbus-user-session ] || fail "Recommends is not dbus-user-session: $(field Recommends)"
# The packaged config has bus = "system": the service needs a system bus.
[[ "$(field Depends)" == *"default-dbus-system-bus | dbus-system-bus"* ]] \
    || fail "Depends lacks default-dbus-system-bus | dbus-system-bus: $(field Depends)"
[[ "$(field Maintainer)" == *"<"*"@"*">" ]] || fail "Maintainer is not 'Name <email>': $(field Maintainer)"
[ -n "$(field Description)" ] || fail "no Description"
[ "$(field Installed-Size)" -gt 0 ] || fail "no Installed-Size"

[ "$(dpkg-deb -I "$deb" conffiles)" = /etc/tokend/config.toml ] || fail "conffiles is not /etc/tokend/config.toml"
scripts=$(mktemp -d)
trap 'rm -rf "$scripts"' EXIT
dpkg-deb -e "$deb" "$scripts"
for script in postinst prerm postrm; do
    [ -x "$scripts/$script" ] || fail "$script missing or not executable"
    sh -n "$scripts/$script" || fail "$script: syntax error"
done

# The man pages have the changelog's date, the source's (SOURCE_DATE_EPOCH
# or the last commit), not the build's.
contents=$(mktemp -d)
trap 'rm -rf "$scripts" "$contents"' EXIT
dpkg-deb -x "$deb" "$contents"
changed=$(zcat "$contents/usr/share/doc/tokend/changelog.Debian.gz" | sed -n 's/^ -- .*>  //p' | head -n 1)
[ -n "$changed" ] || fail "the changelog has no date line"
date=$(date -u -d "$changed" +%F) || fail "the changelog's date is not a date: $changed"
for page in "$contents"/usr/share/man/man*/*.gz; do
    title=$(zcat "$page" | grep -m 1 '^\.TH ' || true)
    # .TH title section date source manual; the date may be quoted.
    [ "$(awk '{ gsub(/"/, "", $4); print $4 }' <<<"$title")" = "$date" ] \
        || fail "${page#"$contents"}: '$title' is not dated $date as the changelog"
done

# The packaged config is valid and starts the system service with no
# providers (the test in tests/e2e/dist.rs checks its content in detail).
config="$scripts/config.toml"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/tokend/config.toml >"$config"
target=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
"$target/release/tokend" --check --config "$config" >/dev/null 2>&1 \
    || fail "the packaged /etc/tokend/config.toml does not pass tokend --check"

if command -v lintian >/dev/null 2>&1; then
    # Errors fail; warnings are printed for people to judge. The placeholder
    # maintainer of Cargo.toml (an .invalid address) is not an error here:
    # releases set DEB_MAINTAINER.
    suppress=()
    if [[ "$(field Maintainer)" == *"@invalid>" ]]; then
        suppress=(--suppress-tags "bogus-mail-host,bogus-mail-host-in-debian-changelog")
    fi
    lintian --fail-on error "${suppress[@]}" "$deb" >&2 || fail "lintian reports errors"
else
    echo "dist/deb/check.sh: lintian is not installed; skipped" >&2
fi
echo "dist/deb/check.sh: $deb is complete ($(wc -l <<<"$expected") files)" >&2
