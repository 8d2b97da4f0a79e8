#!/usr/bin/env bash
# Builds the Debian package of tokend with cargo and dpkg's own tools only
# (dpkg-deb; dpkg-shlibdeps from dpkg-dev for the library dependencies):
#
#   dist/deb/build.sh    ->  TARGET/debian/tokend_VERSION-REV_ARCH.deb
#
# The last line of the output is the path of the package. Check it with
# dist/deb/check.sh. Environment:
#   CARGO_TARGET_DIR   as for cargo (TARGET: cargo's target directory, which
#                      a config's build.target-dir may set too; default target)
#   DEB_MAINTAINER     Maintainer field (default: Cargo.toml [package.metadata.deb])
#   DEB_REVISION       Debian revision (default: 1)
#   SOURCE_DATE_EPOCH  the date of the files, the changelog and the man pages
#                      (default: the last commit), for reproducible builds
#
# `cargo deb` (cargo-deb) builds the same package from [package.metadata.deb]
# once the generated files exist; see the README.
set -euo pipefail
umask 022
cd "$(dirname "$0")/../.."

say() { printf '%s\n' "$*" >&2; }
need() {
    command -v "$1" >/dev/null 2>&1 || { say "build.sh: $1 is missing: apt-get install $2"; exit 1; }
}
need dpkg-deb dpkg
need dpkg-shlibdeps dpkg-dev
need strip binutils
need gzip gzip

# Where cargo puts what it builds ($CARGO_TARGET_DIR, a config's
# build.target-dir, else target/), as cargo reports it.
target=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target" ] || { say "build.sh: cargo metadata names no target directory"; exit 1; }
release="$target/release"
gen="$release/dist"

say "==> cargo build --release (tokend, tokenctl, and the generator)"
# Two builds: in one, cargo would unify the generator's dependency features
# into the daemon's, so the daemon would differ from `cargo build --release`
# (and from the demo's build, which shares this one).
cargo build --release --locked --bin tokend --bin tokenctl >&2
cargo build --release --locked -p tokend-dist-gen >&2

# One date for the whole package, the source's, never the build's: the
# files' dates, the changelog's and the man pages' (.TH). The last commit's,
# or in a tree without git (a release tarball) its newest file's.
newest_file() {
    find Cargo.toml Cargo.lock src dist config -type f -printf '%T@\n' | sort -n | tail -n 1 | cut -d. -f1
}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || newest_file)}
rm -rf "$gen"
"$release/tokend-dist-gen" "$gen"

version=$(cargo pkgid | sed 's/.*[#@]//')
revision=${DEB_REVISION:-1}
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-$(sed -n '/^\[package\.metadata\.deb\]/,/^\[/ s/^maintainer = "\(.*\)"$/\1/p' Cargo.toml)}
[ -n "$maintainer" ] || { say "build.sh: no maintainer: set DEB_MAINTAINER"; exit 1; }

work="$target/debian/tokend_${version}-${revision}_${arch}"
root="$work/root"
rm -rf "$work"
mkdir -p "$root/DEBIAN"

# install MODE SOURCE /DESTINATION
put() { install -D -m "$1" "$2" "$root$3"; }

say "==> staging $root"
put 0755 "$release/tokend" /usr/bin/tokend
put 0755 "$release/tokenctl" /usr/bin/tokenctl
# The release profile keeps symbols for backtraces; a package ships without.
strip --strip-unneeded "$root/usr/bin/tokend" "$root/usr/bin/tokenctl"
# The docker credential helper is tokenctl under the helper's name.
ln -s tokenctl "$root/usr/bin/docker-credential-tokend"

put 0644 dist/systemd/tokend.service /usr/lib/systemd/system/tokend.service
put 0644 dist/systemd/user/tokend.service /usr/lib/systemd/user/tokend.service
put 0644 dist/systemd/tokend.sysusers /usr/lib/sysusers.d/tokend.conf
put 0644 dist/dbus/org.tokend.Broker1.conf /usr/share/dbus-1/system.d/org.tokend.Broker1.conf
put 0644 dist/dbus/system-services/org.tokend.Broker1.service \
    /usr/share/dbus-1/system-services/org.tokend.Broker1.service
put 0644 dist/dbus/services/org.tokend.Broker1.service \
    /usr/share/dbus-1/services/org.tokend.Broker1.service
# The introspection XML, where D-Bus tools and code generators look for it.
put 0644 dist/dbus/org.tokend.Broker1.xml /usr/share/dbus-1/interfaces/org.tokend.Broker1.xml

put 0644 "$gen/etc/tokend/config.toml" /etc/tokend/config.toml
for example in config/*.toml dist/examples/*; do
    put 0644 "$example" "/usr/share/doc/tokend/examples/${example##*/}"
done
put 0644 dist/deb/copyright /usr/share/doc/tokend/copyright
# The config's comments, the units' and the daemon's messages say "see the
# README" (the ProtectProc= drop-in for allow_units, a socket directory
# the group cannot search): it is here, where a package's documentation is.
put 0644 README.md /usr/share/doc/tokend/README.md
gzip -9n "$root/usr/share/doc/tokend/README.md"
# What lintian reports that is meant so, each with the reason.
put 0644 dist/deb/lintian-overrides /usr/share/lintian/overrides/tokend
changelog="$root/usr/share/doc/tokend/changelog.Debian"
{
    printf 'tokend (%s-%s) unstable; urgency=medium\n\n' "$version" "$revision"
    printf '  * Built from the tokend source tree (dist/deb/build.sh).\n\n'
    printf ' -- %s  %s\n' "$maintainer" "$(date -R -u -d "@$SOURCE_DATE_EPOCH")"
} >"$changelog"
gzip -9n "$changelog"

for page in "$gen"/man/*; do
    section=${page##*.}
    put 0644 "$page" "/usr/share/man/man$section/${page##*/}"
    gzip -9n "$root/usr/share/man/man$section/${page##*/}"
done
for bin in tokend tokenctl; do
    put 0644 "$gen/completions/bash/$bin" "/usr/share/bash-completion/completions/$bin"
    put 0644 "$gen/completions/zsh/_$bin" "/usr/share/zsh/vendor-completions/_$bin"
    put 0644 "$gen/completions/fish/$bin.fish" "/usr/share/fish/vendor_completions.d/$bin.fish"
done

say "==> control files"
for script in postinst prerm postrm; do
    install -m 0755 "dist/deb/$script" "$root/DEBIAN/$script"
done
echo /etc/tokend/config.toml >"$root/DEBIAN/conffiles"
(cd "$root" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

# The shared libraries the binaries link (libc6, libgcc-s1), with the lowest
# versions that have every symbol they use: dpkg-shlibdeps reads a
# debian/control, so it gets a throwaway one.
shlibs_dir=$(mktemp -d)
trap 'rm -rf "$shlibs_dir"' EXIT
mkdir "$shlibs_dir/debian"
printf 'Source: tokend\n\nPackage: tokend\nArchitecture: any\n' >"$shlibs_dir/debian/control"
bins=("$root/usr/bin/tokend" "$root/usr/bin/tokenctl")
shlibs=$(cd "$shlibs_dir" && dpkg-shlibdeps -O "${bins[@]}" | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { say "build.sh: dpkg-shlibdeps found no dependencies"; exit 1; }

{
    printf 'Package: tokend\n'
    printf 'Version: %s-%s\n' "$version" "$revision"
    printf 'Architecture: %s\n' "$arch"
    printf 'Maintainer: %s\n' "$maintainer"
    printf 'Installed-Size: %s\n' "$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    # postinst creates the users and groups of /usr/lib/sysusers.d/tokend.conf
    # with systemd-sysusers: named as debhelper's dh_installsysusers names it
    # (systemd has it; the standalone packages for systems without systemd).
    # The packaged config has bus = "system": without a system bus the
    # service fails at start, so one is a dependency, named the Debian way
    # (dbus or dbus-broker provide it). Cargo.toml's [package.metadata.deb]
    # says the same (tests/e2e/dist.rs compares them).
    printf 'Depends: %s, systemd | systemd-standalone-sysusers | systemd-sysusers, default-dbus-system-bus | dbus-system-bus, procps\n' "$shlibs"
    # The user unit (systemctl --user) serves the user's session bus, which
    # dbus-user-session starts per login; without it the user's daemon fails
    # at start (the system service does not need it).
    printf 'Recommends: dbus-user-session\n'
    # A Secret Service for a user's daemon to keep sessions across restarts.
    printf 'Suggests: gnome-keyring | keepassxc\n'
    printf 'Section: net\n'
    printf 'Priority: optional\n'
    printf 'Description: OAuth 2.0 device-grant token broker for local programs\n'
    sed -e 's/^$/./' -e 's/^/ /' dist/deb/description
} >"$root/DEBIAN/control"

out="$target/debian/tokend_${version}-${revision}_${arch}.deb"
dpkg-deb --build --root-owner-group "$root" "$out" >&2
echo "$out"
