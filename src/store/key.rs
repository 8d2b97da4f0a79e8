//! The key of the encrypted file store: 32 random bytes from a systemd
//! credential or a key file, never from the config text.
//!
//! The raw key is used only as input to HKDF-SHA256: one derived key seals
//! the records (ChaCha20-Poly1305), another derivation names the key (its
//! [`KeyId`], stored in every file), so a file written under another key is
//! told apart from a damaged one without trying to decrypt it.

mod access;

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ring::{aead, hkdf};
use zeroize::Zeroizing;

/// Length of a store key in bytes: `head -c 32 /dev/urandom` makes one.
pub const KEY_LEN: usize = 32;

/// Length of a [`KeyId`] in bytes.
pub const KEY_ID_LEN: usize = 8;

/// HKDF salt: fixes the derivations to this use of the key.
const SALT: &[u8] = b"tokend encrypted-file store";
/// HKDF info of the record-sealing key.
const SEAL_INFO: &[u8] = b"tokend session record key v1";
/// HKDF info of the key id.
const ID_INFO: &[u8] = b"tokend store key id v1";

/// A store key. `Debug` shows only its [`KeyId`].
///
/// It holds what is derived from the key bytes, not the bytes: both
/// derivations run once, when the key is read, instead of once per record
/// (thousands of records are opened at start), and the bytes are zeroed as
/// soon as they are derived from.
#[derive(Clone)]
pub struct StoreKey {
    id: KeyId,
    sealing: aead::LessSafeKey,
}

/// A public name of a key: derived from it, useless for finding it, and
/// stored in every record so that "written with another key" is a clear
/// error rather than a failed decryption.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl PartialEq for StoreKey {
    /// Keys are the same when their ids are: the id is derived from every
    /// key byte, and comparing ids keeps the key bytes out of comparisons.
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for StoreKey {}

/// An HKDF output length that is not a cipher key.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl StoreKey {
    /// A key from exactly [`KEY_LEN`] bytes.
    ///
    /// # Errors
    /// A sentence naming the wrong length (never the bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            format!(
                "the key must be exactly {KEY_LEN} bytes, not {} (make one with `head -c {KEY_LEN} /dev/urandom`)",
                bytes.len()
            )
        })?;
        let bytes = Zeroizing::new(array);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&bytes[..]);
        let mut id = [0u8; KEY_ID_LEN];
        // HKDF-SHA256 yields up to 8160 bytes: 8 and 32 cannot fail.
        prk.expand(&[ID_INFO], Len(KEY_ID_LEN))
            .and_then(|okm| okm.fill(&mut id))
            .map_err(|_| "cannot derive the key id".to_owned())?;
        let sealing = prk
            .expand(&[SEAL_INFO], &aead::CHACHA20_POLY1305)
            .map_err(|_| "cannot derive the sealing key".to_owned())?;
        Ok(Self {
            id: KeyId(id),
            sealing: aead::LessSafeKey::new(aead::UnboundKey::from(sealing)),
        })
    }

    /// A random key of this process alone, standing in for one that could
    /// not be read where it is not needed (`tokend --check` and `--prune`
    /// outside the service, which list and delete records but never open
    /// one): nothing sealed with it can be opened by the real key, nor the
    /// other way round.
    ///
    /// # Panics
    /// Never: [`Self::from_bytes`] fails only on a length other than
    /// [`KEY_LEN`].
    #[must_use]
    pub fn stand_in() -> Self {
        use ring::rand::SecureRandom as _;
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        // The system's random source; should it fail, the zero key is as
        // useless to anyone as a random one, which is all this key is for.
        let _ = ring::rand::SystemRandom::new().fill(&mut bytes[..]);
        Self::from_bytes(&bytes[..]).expect("KEY_LEN bytes make a key")
    }

    /// Reads a key file (or a systemd credential, which is one): a regular
    /// file of exactly [`KEY_LEN`] bytes that nobody but its owner and the
    /// user tokend runs as may read or write (by its mode or, when it has
    /// one, its ACL, as systemd gives a credential to a service of another user).
    ///
    /// # Errors
    /// A sentence saying what is wrong with the file and what to do.
    pub fn read_file(path: &Path) -> Result<Self, String> {
        use std::io::Read as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // Non-blocking, so that a FIFO put in the key's place is refused
        // below instead of waiting for a writer; a regular file's reads
        // ignore the flag.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
            .open(path)
            .map_err(|e| e.to_string())?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        let mode = meta.permissions().mode() & 0o777;
        let reader = rustix::process::geteuid().as_raw();
        if let Some(who) = access::others_with_access(&file, mode, reader) {
            return Err(format!(
                "the key is readable or writable by {who} (mode {mode:04o}): chmod 600 it, \
                 owned by the user tokend runs as (`chown tokend` for the system service), \
                 and make a new key if others may have read it"
            ));
        }
        // Checked before reading so a huge file is never read into memory.
        if meta.len() != KEY_LEN as u64 {
            return Err(format!(
                "the key must be exactly {KEY_LEN} bytes, not {} (make one with `head -c {KEY_LEN} /dev/urandom`)",
                meta.len()
            ));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        file.read_exact(&mut bytes[..]).map_err(|e| e.to_string())?;
        Self::from_bytes(&bytes[..])
    }

    /// The key's public name.
    #[must_use]
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The AEAD key that seals records.
    pub(crate) fn sealing_key(&self) -> &aead::LessSafeKey {
        &self.sealing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_per_key_and_debug_hides_the_bytes() {
        let a = StoreKey::from_bytes(&[7u8; KEY_LEN]).unwrap();
        let b = StoreKey::from_bytes(&[8u8; KEY_LEN]).unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id(), a.clone().id());
        let shown = format!("{a:?}");
        assert!(shown.contains(&a.id().to_string()), "{shown}");
        assert!(!shown.contains("7, 7"), "{shown}");
        assert_eq!(a.id().to_string().len(), 2 * KEY_ID_LEN);
    }

    #[test]
    fn key_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, [1u8; KEY_LEN]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(StoreKey::read_file(&path).is_ok());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = StoreKey::read_file(&path).unwrap_err();
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );

        std::fs::write(&path, b"0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        let err = StoreKey::read_file(&path).unwrap_err();
        assert!(err.contains("exactly 32 bytes, not 33"), "{err}");

        let err = StoreKey::read_file(&dir.path().join("missing")).unwrap_err();
        assert!(err.contains("No such file"), "{err}");
        let err = StoreKey::read_file(dir.path()).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    /// A systemd credential for a service of another user: mode 0400 and an
    /// ACL entry for that user, which shows as 0440. Set here as systemd
    /// sets it (the kernel checks the attribute and moves the mode).
    #[test]
    fn a_key_readable_through_its_acl_by_tokends_user_alone_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, [1u8; KEY_LEN]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        let me = rustix::process::geteuid().as_raw();
        let set_acl = |group_read: u16, user: u32| {
            let acl = access::acl(&access::systemd_credential_with(user, group_read));
            rustix::fs::setxattr(
                &path,
                "system.posix_acl_access",
                &acl,
                rustix::fs::XattrFlags::empty(),
            )
        };
        if let Err(e) = set_acl(0, me) {
            // Only where the file system keeps no ACLs (a tmpfs built
            // without them); the parsing is tested apart.
            assert_eq!(e, rustix::io::Errno::NOTSUP, "set the ACL");
            eprintln!("no ACLs on this file system: skipped");
            return;
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o440, "the mask shows in the group bits");
        assert!(StoreKey::read_file(&path).is_ok());

        set_acl(4, me).unwrap();
        let err = StoreKey::read_file(&path).unwrap_err();
        assert!(
            err.contains("by its group through its ACL (mode 0440)"),
            "{err}"
        );
        set_acl(0, me.wrapping_add(1)).unwrap();
        let err = StoreKey::read_file(&path).unwrap_err();
        assert!(
            err.contains(&format!("by user {} through its ACL", me.wrapping_add(1))),
            "{err}"
        );
    }
}
