//! The on-disk format of one session record of the encrypted file store.
//!
//! ```text
//! offset  size  field
//!      0     7  magic "tokendS"
//!      7     1  format version (1)
//!      8     8  key id (see `KeyId`): which key sealed the record
//!     16    12  nonce, random per write
//!     28     n  ChaCha20-Poly1305 ciphertext of the record (JSON)
//!   28+n    16  Poly1305 tag
//! ```
//!
//! The associated data is the first 16 bytes (magic, version, key id)
//! followed by the provider name, so every header byte is authenticated and
//! a file renamed or copied to another provider's name fails to open: files
//! cannot be swapped. Nonces are random (96 bits): a record is written once
//! per refresh, so even a million sessions refreshing hourly for years stay
//! far below the birthday bound of 2^48 writes per key.

use ring::aead::{Aad, NONCE_LEN, Nonce};
use ring::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

use super::key::{KEY_ID_LEN, KeyId, StoreKey};

/// The magic bytes, then the version byte.
const MAGIC: &[u8; 7] = b"tokendS";
/// The format version written.
const VERSION: u8 = 1;
/// Magic, version and key id: the authenticated header.
const HEADER_LEN: usize = MAGIC.len() + 1 + KEY_ID_LEN;
/// Where the ciphertext starts.
const BODY_START: usize = HEADER_LEN + NONCE_LEN;
/// The Poly1305 tag.
const TAG_LEN: usize = 16;
/// Larger files are not records (a record is a few KiB at most); refusing
/// them keeps a planted file from making the daemon read gigabytes.
pub const MAX_FILE_LEN: u64 = 1 << 20;

/// Why a file could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed with another key (the one named).
    WrongKey(KeyId),
    /// Not a record, damaged, modified, or another provider's.
    Corrupt(String),
}

/// Seals a record's bytes for `provider`.
///
/// # Errors
/// The system's random number generator failed.
pub fn seal(key: &StoreKey, provider: &str, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| "the system's random number generator failed".to_owned())?;
    let header = header(key.id());
    // Sealed in a zeroizing buffer: it holds the plaintext until sealed.
    let mut body = Zeroizing::new(plaintext.to_vec());
    key.sealing_key()
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&header, provider)),
            &mut *body,
        )
        .map_err(|_| "the record could not be encrypted".to_owned())?;
    let mut file = Vec::with_capacity(BODY_START + body.len());
    file.extend_from_slice(&header);
    file.extend_from_slice(&nonce);
    file.extend_from_slice(&body);
    Ok(file)
}

/// Opens `file` as `provider`'s record; the plaintext stays in the
/// returned zeroizing buffer.
///
/// # Errors
/// [`OpenError::WrongKey`] for a record of another key, [`OpenError::Corrupt`]
/// for anything that is not an intact record of `provider`.
pub fn open(key: &StoreKey, provider: &str, file: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if file.len() < BODY_START + TAG_LEN || !file.starts_with(MAGIC) {
        return Err(OpenError::Corrupt(
            "not a tokend session file (no header)".into(),
        ));
    }
    if file[MAGIC.len()] > VERSION {
        return Err(OpenError::Corrupt(format!(
            "session file format {} was {} (this one reads format {VERSION})",
            file[MAGIC.len()],
            super::FROM_A_NEWER_TOKEND
        )));
    }
    if file[MAGIC.len()] != VERSION {
        return Err(OpenError::Corrupt(format!(
            "session file format {} is not supported (expected {VERSION})",
            file[MAGIC.len()]
        )));
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&file[MAGIC.len() + 1..HEADER_LEN]);
    let id = KeyId(id);
    if id != key.id() {
        // The id is not authenticated yet; a forged one only turns a corrupt
        // file into a "wrong key" message, never into a misread record.
        return Err(OpenError::WrongKey(id));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&file[HEADER_LEN..BODY_START]);
    let mut body = Zeroizing::new(file[BODY_START..].to_vec());
    let plaintext_len = key
        .sealing_key()
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&file[..HEADER_LEN], provider)),
            &mut body[..],
        )
        .map_err(|_| {
            OpenError::Corrupt(
                "it fails authentication: it was modified or damaged, or it is another \
                 provider's file"
                    .into(),
            )
        })?
        .len();
    body.truncate(plaintext_len);
    Ok(body)
}

fn header(id: KeyId) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..MAGIC.len()].copy_from_slice(MAGIC);
    header[MAGIC.len()] = VERSION;
    header[MAGIC.len() + 1..].copy_from_slice(&id.0);
    header
}

fn aad(header: &[u8], provider: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + provider.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(provider.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::key::KEY_LEN;

    fn key(byte: u8) -> StoreKey {
        StoreKey::from_bytes(&[byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let k = key(1);
        let a = seal(&k, "github", b"{\"refresh\":\"rt-1\"}").unwrap();
        let b = seal(&k, "github", b"{\"refresh\":\"rt-1\"}").unwrap();
        assert_ne!(a, b, "each write has its own nonce");
        assert!(!a.windows(4).any(|w| w == b"rt-1"), "encrypted");
        assert_eq!(&*open(&k, "github", &a).unwrap(), b"{\"refresh\":\"rt-1\"}");
        assert_eq!(a.len(), BODY_START + 18 + TAG_LEN);
    }

    #[test]
    fn every_modified_byte_is_detected() {
        let k = key(1);
        let sealed = seal(&k, "github", b"{\"refresh\":\"rt-1\"}").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let err = open(&k, "github", &bad).unwrap_err();
            // Flipping a key id byte reads as another key; nothing opens.
            let in_id = (MAGIC.len() + 1..HEADER_LEN).contains(&i);
            assert_eq!(matches!(err, OpenError::WrongKey(_)), in_id, "byte {i}");
        }
        for len in [0, 10, BODY_START, sealed.len() - 1] {
            assert!(matches!(
                open(&k, "github", &sealed[..len]),
                Err(OpenError::Corrupt(_))
            ));
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(matches!(
            open(&k, "github", &longer),
            Err(OpenError::Corrupt(_))
        ));
    }

    #[test]
    fn records_are_bound_to_their_provider_and_key() {
        let k = key(1);
        let sealed = seal(&k, "github", b"{}").unwrap();
        let err = open(&k, "gitlab", &sealed).unwrap_err();
        assert!(
            matches!(&err, OpenError::Corrupt(m) if m.contains("another provider")),
            "{err:?}"
        );
        assert_eq!(
            open(&key(2), "github", &sealed).unwrap_err(),
            OpenError::WrongKey(k.id())
        );
        let mut future = sealed.clone();
        future[MAGIC.len()] = 2;
        assert!(
            matches!(open(&k, "github", &future), Err(OpenError::Corrupt(m)) if m.contains("format 2"))
        );
        assert!(matches!(
            open(&k, "github", b"{\"refresh_token\":\"plain json\"}"),
            Err(OpenError::Corrupt(m)) if m.contains("not a tokend session file")
        ));
    }

    /// A record a newer tokend wrote (a downgrade after a bad upgrade),
    /// read through the store: said to be newer, with no advice to remove
    /// it (it works again once that version runs), for a record version
    /// above this one's and for a file format above this one's.
    #[test]
    fn a_record_from_a_newer_tokend_is_not_called_damaged() {
        use crate::store::{EncryptedFileStore, STORED_SESSION_VERSION, Store as _, StoredSession};
        let dir = tempfile::tempdir().unwrap();
        let store = EncryptedFileStore::new(dir.path(), key(1));
        let mut record = StoredSession {
            version: crate::store::ENDED_SESSION_VERSION + 1,
            identity: "rfc8628|https://example.org/token|c".into(),
            refresh_token: Some("rt-newer".to_owned().into()),
            obtained_at: 0,
            scope: None,
            access_token: None,
            token_type: None,
            expires_at: None,
            refresh_expires_at: None,
            ended: None,
        };
        store.save("github", &record).unwrap();
        let newer_record = store.load("github").unwrap_err().to_string();
        record.version = STORED_SESSION_VERSION;
        store.save("github", &record).unwrap();
        let path = dir.path().join("sessions").join("github.session");
        let mut file = std::fs::read(&path).unwrap();
        file[MAGIC.len()] = VERSION + 1;
        std::fs::write(&path, &file).unwrap();
        let newer_format = store.load("github").unwrap_err().to_string();
        for message in [newer_record, newer_format] {
            assert!(message.contains("written by a newer tokend"), "{message}");
            assert!(message.contains("tokenctl login github"), "{message}");
            assert!(!message.contains("logout"), "{message}");
            assert!(!message.contains("rt-newer"), "{message}");
        }
        // A damaged record keeps its advice.
        file[MAGIC.len()] = 0;
        std::fs::write(&path, &file).unwrap();
        let damaged = store.load("github").unwrap_err().to_string();
        assert!(damaged.contains("tokenctl logout github"), "{damaged}");
    }
}
