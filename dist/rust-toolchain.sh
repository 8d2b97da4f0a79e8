# Sourced by dist/demo.sh and tests/run.sh (the README's two set-up
# commands), from the repository's root.
# Whether a Rust toolchain must come from rustup: no cargo, or one older
# than Cargo.toml's rust-version (a distribution's: Debian 12 ships 1.63,
# which cannot build this crate). rustup's then comes first on PATH.
needs_rustup() {
    command -v cargo >/dev/null 2>&1 || return 0
    local want have
    want=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
    have=$(cargo --version 2>/dev/null | awk '{print $2}')
    [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]
}
