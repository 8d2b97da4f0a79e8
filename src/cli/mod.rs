//! The command lines of `tokend` and `tokenctl`.
//!
//! They live in the library, not in the binaries, so that one definition
//! serves both the programs that parse them and the generator of the man
//! pages and shell completions (the `tokend-dist-gen` crate in `dist/gen/`): the
//! documentation cannot drift from the options.

pub mod exit_status;
mod tokenctl_args;
mod tokend_args;

pub use tokenctl_args::{
    CredentialProtocol, DEFAULT_TOKEN_VARIABLE, TokenctlArgs, TokenctlCommand,
};
pub use tokend_args::TokendArgs;

/// Ends the process for a command line that asked for no work: `--help`
/// and `--version` (printed on stdout, exit 0, or exit 1 saying so when
/// stdout cannot take them: clap's own exit said nothing and exited 0
/// with the text lost, as on a full disk), or a usage error (on stderr,
/// exit 2). `program` names the binary in the message.
///
/// A reader that went away (`tokenctl --help | head -1`) is not told so,
/// as no verb tells it: it stopped reading on purpose, and the line would
/// be noise on the terminal. The exit status still says 1.
pub fn exit_for(program: &str, error: &clap::Error) -> ! {
    use std::io::Write as _;
    if error.use_stderr() {
        error.exit();
    }
    let written = error
        .print()
        .and_then(|()| std::io::stdout().lock().flush());
    match written {
        Ok(()) => std::process::exit(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(1),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{program}: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests;
