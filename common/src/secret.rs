//! Secrets at rest: database passwords are sealed (AES-256-GCM) before they
//! enter the Raft log, so neither the log, the snapshots nor a stolen data
//! directory give them away. The key ring is a file every coordinator holds:
//! one `<key-id> <base64 of 32 bytes>` per line, the last line the key new
//! values are sealed with; older lines still open what they sealed, which is
//! how a key is rotated (append a key, restart, re-seal, drop the old line).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::{Path, PathBuf};

/// What every sealed value starts with.
const PREFIX: &str = "sealed:v1:";
const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secrets key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("a sealed value names key `{0}`, which this key ring does not hold")]
    UnknownKey(String),
    #[error("a sealed value is damaged or was not sealed by key `{0}`")]
    Damaged(String),
    #[error("a sealed value is malformed")]
    Malformed,
    #[error("no randomness from the system")]
    Random,
}

struct RingKey {
    id: String,
    key: LessSafeKey,
}

/// The keys of a cluster; the last one seals.
pub struct Keyring {
    keys: Vec<RingKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("keys", &ids).finish()
    }
}

impl Keyring {
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let bad = |reason: String| SecretError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, encoded) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad(format!("line {}: not `<key-id> <base64 key>`", number + 1)))?;
            let bytes = BASE64
                .decode(encoded.trim())
                .map_err(|e| bad(format!("line {}: {e}", number + 1)))?;
            if bytes.len() != KEY_BYTES {
                return Err(bad(format!(
                    "line {}: a key is {KEY_BYTES} bytes, this one {}",
                    number + 1,
                    bytes.len()
                )));
            }
            if keys.iter().any(|k: &RingKey| k.id == id) {
                return Err(bad(format!(
                    "line {}: key `{id}` appears twice",
                    number + 1
                )));
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| bad(format!("line {}: unusable key", number + 1)))?;
            keys.push(RingKey {
                id: id.to_string(),
                key: LessSafeKey::new(key),
            });
        }
        if keys.is_empty() {
            return Err(bad("holds no key".to_string()));
        }
        Ok(Self {
            keys,
            random: SystemRandom::new(),
        })
    }

    /// A new key file line: a fresh random key under a fresh id.
    pub fn new_key_line() -> Result<String, SecretError> {
        let random = SystemRandom::new();
        let mut key = [0u8; KEY_BYTES];
        random.fill(&mut key).map_err(|_| SecretError::Random)?;
        let mut id = [0u8; 4];
        random.fill(&mut id).map_err(|_| SecretError::Random)?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("k-{id} {}", BASE64.encode(key)))
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current().id
    }

    fn current(&self) -> &RingKey {
        // `load` refuses an empty ring.
        &self.keys[self.keys.len() - 1]
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    /// The id of the key a sealed value was sealed with.
    pub fn key_of(value: &str) -> Option<&str> {
        value.strip_prefix(PREFIX)?.split(':').next()
    }

    pub fn seal(&self, plain: &str) -> Result<String, SecretError> {
        let key = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SecretError::Random)?;
        let mut data = plain.as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.id.as_bytes()),
                &mut data,
            )
            .map_err(|_| SecretError::Damaged(key.id.clone()))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        Ok(format!("{PREFIX}{}:{}", key.id, BASE64.encode(sealed)))
    }

    pub fn open(&self, value: &str) -> Result<String, SecretError> {
        let rest = value.strip_prefix(PREFIX).ok_or(SecretError::Malformed)?;
        let (id, encoded) = rest.split_once(':').ok_or(SecretError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::UnknownKey(id.to_string()))?;
        let bytes = BASE64.decode(encoded).map_err(|_| SecretError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Malformed)?;
        let mut data = sealed.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(key.id.as_bytes()), &mut data)
            .map_err(|_| SecretError::Damaged(id.to_string()))?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Malformed)
    }

    /// `value` sealed under the current key: plain values are sealed, values
    /// sealed under an older key are opened and sealed again.
    pub fn reseal(&self, value: &str) -> Result<String, SecretError> {
        if !Self::is_sealed(value) {
            return self.seal(value);
        }
        if Self::key_of(value) == Some(self.current_id()) {
            return Ok(value.to_string());
        }
        self.seal(&self.open(value)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_of(lines: &[String]) -> (tempfile::TempDir, Keyring) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets.key");
        std::fs::write(&path, lines.join("\n")).expect("write");
        let ring = Keyring::load(&path).expect("load");
        (dir, ring)
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_hide_the_plain_text() {
        let first = Keyring::new_key_line().expect("key");
        let (_dir, ring) = ring_of(std::slice::from_ref(&first));
        let sealed = ring.seal("Pl4nted-pa55").expect("seal");
        assert!(Keyring::is_sealed(&sealed));
        assert!(!sealed.contains("Pl4nted"));
        assert_ne!(
            sealed,
            ring.seal("Pl4nted-pa55").expect("seal"),
            "fresh nonce"
        );
        assert_eq!(ring.open(&sealed).expect("open"), "Pl4nted-pa55");

        let other = Keyring::new_key_line().expect("key");
        let (_d2, stranger) = ring_of(&[other]);
        assert!(matches!(
            stranger.open(&sealed),
            Err(SecretError::UnknownKey(_))
        ));

        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.open(&tampered).is_err());
    }

    #[test]
    fn rotation_seals_with_the_last_key_and_opens_with_any() {
        let old = Keyring::new_key_line().expect("key");
        let (_d1, before) = ring_of(std::slice::from_ref(&old));
        let sealed_before = before.seal("s3cret").expect("seal");
        let new = Keyring::new_key_line().expect("key");
        let (_d2, after) = ring_of(&[old, new]);
        assert_eq!(after.open(&sealed_before).expect("open"), "s3cret");
        let resealed = after.reseal(&sealed_before).expect("reseal");
        assert_eq!(Keyring::key_of(&resealed), Some(after.current_id()));
        assert_eq!(after.open(&resealed).expect("open"), "s3cret");
    }

    #[test]
    fn a_bad_key_file_names_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        std::fs::write(&path, "# comment\nk-1 c2hvcnQ=\n").expect("write");
        let message = Keyring::load(&path).expect_err("short key").to_string();
        assert!(
            message.contains("line 2") && message.contains("32 bytes"),
            "{message}"
        );
    }
}
