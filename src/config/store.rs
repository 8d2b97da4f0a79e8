//! The `[daemon]` keys of the encrypted file store: where its files go and
//! where its key comes from. The key is read and checked here, so
//! `tokend --check` reports a missing, short or loose key at its position.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::reader::{self, TableReader};
use super::{Diagnostics, Environment, StoreKind};
use crate::store::StoreKey;

/// The keys this module reads.
pub(super) use super::daemon_keys::STORE_KEYS as KEYS;

/// The credential name used when the config names no key.
pub const DEFAULT_KEY_CREDENTIAL: &str = "tokend-store-key";

/// Settings of `store = "encrypted-file"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFileConfig {
    /// The state directory; records go to its `sessions/` subdirectory.
    pub state_directory: PathBuf,
    /// The key, read and checked when the config was loaded.
    pub key: StoreKey,
    /// Where the key came from, for messages.
    pub key_path: PathBuf,
}

/// Reads the encrypted file store's keys. `Ok(None)` for the other stores
/// (whose config ignores these keys, with a warning).
pub(super) fn encrypted_file_config(
    table: &mut TableReader<'_, '_>,
    store: Option<(StoreKind, Range<usize>)>,
    config_path: &Path,
    env: &Environment,
    diags: &mut Diagnostics<'_>,
) -> Result<Option<EncryptedFileConfig>, ()> {
    let Some((StoreKind::EncryptedFile, store_span)) = store else {
        for key in KEYS {
            if let Some(value) = table.take(key) {
                diags.warning(
                    &value.span(),
                    format!("`{key}` is used only with store = \"encrypted-file\""),
                );
            }
        }
        return Ok(None);
    };
    let state_directory = state_directory(table, env, &store_span, diags);
    let key = key(table, &store_span, config_path, env, diags);
    match (state_directory, key) {
        (Some(state_directory), Some((key, key_path))) => Ok(Some(EncryptedFileConfig {
            state_directory,
            key,
            key_path,
        })),
        _ => Err(()),
    }
}

fn state_directory(
    table: &mut TableReader<'_, '_>,
    env: &Environment,
    store_span: &Range<usize>,
    diags: &mut Diagnostics<'_>,
) -> Option<PathBuf> {
    if let Some(value) = table.take("state_directory") {
        let path = PathBuf::from(reader::expect_str(diags, "state_directory", value)?);
        if !path.is_absolute() {
            diags.error(&value.span(), "`state_directory` must be an absolute path");
            return None;
        }
        return Some(path);
    }
    let default = env.default_state_directory();
    if default.is_none() {
        diags.error(
            store_span,
            "no state directory for the encrypted file store: $STATE_DIRECTORY, $XDG_STATE_HOME \
             and $HOME are unset; set `state_directory` in [daemon]",
        );
    }
    default
}

fn key(
    table: &mut TableReader<'_, '_>,
    store_span: &Range<usize>,
    config_path: &Path,
    env: &Environment,
    diags: &mut Diagnostics<'_>,
) -> Option<(StoreKey, PathBuf)> {
    if table.has("store_key_file") && table.has("store_key_credential") {
        let span = table.key_span("store_key_credential").unwrap_or(0..0);
        diags.error(
            &span,
            "set only one of `store_key_file`, `store_key_credential`",
        );
        table.take("store_key_file");
        table.take("store_key_credential");
        return None;
    }
    // Whether the value is a path that may be quoted back (as for client
    // secrets: `secrets::file_for_message`).
    let mut shown = false;
    let (span, path) = if let Some(value) = table.take("store_key_file") {
        let name = reader::expect_str(diags, "store_key_file", value)?;
        shown = name.contains('/');
        let path = match super::secrets::named_file(config_path, name) {
            Ok(path) => path,
            Err(problem) => {
                diags.error(&value.span(), format!("`store_key_file`: {problem}"));
                return None;
            }
        };
        (value.span(), path)
    } else {
        let (span, name) = match table.take("store_key_credential") {
            Some(value) => (
                value.span(),
                reader::expect_str(diags, "store_key_credential", value)?,
            ),
            None => (store_span.clone(), DEFAULT_KEY_CREDENTIAL),
        };
        if name.is_empty() || name.contains('/') {
            diags.error(
                &span,
                "`store_key_credential` must be a credential name, not a path",
            );
            return None;
        }
        // The name quoted back only when it is the default one: another
        // may be the key itself, pasted in the wrong key.
        let said = if name == DEFAULT_KEY_CREDENTIAL {
            name
        } else {
            "NAME"
        };
        let Some(dir) = &env.credentials_directory else {
            if env.checking {
                diags.warning(
                    &span,
                    format!(
                        "the store key comes from the credential `{said}` in \
                         $CREDENTIALS_DIRECTORY, which systemd sets for the service only: \
                         not checked here"
                    ),
                );
                return Some((StoreKey::stand_in(), PathBuf::from(name)));
            }
            diags.error(
                &span,
                format!(
                    "the encrypted file store needs its key: no $CREDENTIALS_DIRECTORY for the \
                     credential `{said}` (run under systemd with \
                     LoadCredentialEncrypted={said}:/etc/credstore.encrypted/{said}), or set \
                     `store_key_file`"
                ),
            );
            return None;
        };
        (span, dir.join(name))
    };
    match StoreKey::read_file(&path) {
        Ok(key) => {
            if env.checking
                && let Ok(meta) = std::fs::metadata(&path)
                && let Some(problem) = super::file_access::unreadable_by_daemon(
                    &path,
                    super::file_access::FileAccess::of(&meta),
                    config_path,
                    env,
                )
            {
                diags.warning(&span, problem);
            }
            Some((key, path))
        }
        Err(problem) => {
            let what = super::secrets::file_for_message(&path, shown);
            diags.error(
                &span,
                format!("cannot use {what} as the store key: {problem}"),
            );
            None
        }
    }
}
