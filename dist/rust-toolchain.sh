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

# Makes a new enough cargo the one on PATH: rustup's, installed when there
# is none (with the components named, e.g. `rustfmt clippy`), and updated
# when rustup's own stable is too old as well (installed long ago: sourcing
# ~/.cargo/env alone left cargo 1.80 and the build failed on rust-version).
# Fails, saying why, when neither gives one.
use_new_enough_rust() {
    needs_rustup || return 0
    local components=""
    [ $# -gt 0 ] && components=$(IFS=,; echo "$*")
    if [ ! -f "$HOME/.cargo/env" ]; then
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --profile minimal ${components:+-c "$components"}
    fi
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
    if needs_rustup && command -v rustup >/dev/null 2>&1; then
        echo "==> installing rustup's stable Rust for this build (older than Cargo.toml's rust-version; your default toolchain is left as it is)"
        rustup toolchain install stable --profile minimal ${components:+-c "$components"} &&
            export RUSTUP_TOOLCHAIN=stable
    fi
    if needs_rustup; then
        echo "$(cargo --version 2>/dev/null || echo 'no cargo') is older than Cargo.toml's rust-version; install a newer Rust (https://rustup.rs)" >&2
        return 1
    fi
}
