//! The command lines of `tokend` and `tokenctl`.
//!
//! They live in the library, not in the binaries, so that one definition
//! serves both the programs that parse them and the generator of the man
//! pages and shell completions (the `tokend-dist-gen` crate in `dist/gen/`): the
//! documentation cannot drift from the options.

pub mod exit_status;
mod tokenctl_args;
mod tokend_args;

pub use tokenctl_args::{CredentialProtocol, TokenctlArgs, TokenctlCommand};
pub use tokend_args::TokendArgs;

#[cfg(test)]
mod tests;
