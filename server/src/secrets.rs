//! Secrets at rest: each value sealed with AES-256-GCM under the server's key, the secret's name
//! and version bound in as associated data (a value copied to another name or version does not
//! open). The key is a file of 32 random bytes in the data directory, readable by its owner only,
//! made at the first start; without it the stored secrets cannot be read.

use crate::store::SecretRow;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Longest secret value kept.
pub const MAX_VALUE: usize = 64 * 1024;

pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key {path}: {why}")]
    Key { path: String, why: String },
    #[error("secret `{0}` does not open with this server's key (was the key file replaced?)")]
    Sealed(String),
}

impl SecretBox {
    /// Reads the key at `path`, making it first if there is none.
    pub fn open_or_create(path: &Path) -> Result<SecretBox, SecretError> {
        let err = |why: String| SecretError::Key {
            path: path.display().to_string(),
            why,
        };
        let rng = SystemRandom::new();
        let mut key = [0u8; 32];
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc_nofollow())
            .open(path)
        {
            Ok(mut f) => {
                rng.fill(&mut key)
                    .map_err(|_| err("no random bytes to make it from".into()))?;
                f.write_all(&key)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| err(format!("cannot write it: {e}")))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc_nofollow())
                    .open(path)
                    .map_err(|e| err(format!("cannot open it: {e}")))?;
                let meta = f.metadata().map_err(|e| err(e.to_string()))?;
                if !meta.is_file() || meta.len() != 32 {
                    return Err(err("is not a file of 32 bytes".into()));
                }
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(err(format!(
                        "others may read it (mode {:o}): chmod 600 it",
                        meta.permissions().mode() & 0o777
                    )));
                }
                f.read_exact(&mut key)
                    .map_err(|e| err(format!("cannot read it: {e}")))?;
            }
            Err(e) => return Err(err(format!("cannot make it: {e}"))),
        }
        let key = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| err("unusable".into()))?;
        Ok(SecretBox {
            key: LessSafeKey::new(key),
            rng,
        })
    }

    fn aad(name: &str, version: u32) -> Vec<u8> {
        format!("sluice-secret\0{name}\0{version}").into_bytes()
    }

    /// Seals `value` as version `version` of `name`: (nonce, ciphertext with its tag).
    pub fn seal(&self, name: &str, version: u32, value: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut out = value.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(name, version)),
                &mut out,
            )
            .expect("AES-GCM seals any value under its size limit");
        (nonce.to_vec(), out)
    }

    /// The value of a stored secret.
    pub fn open(&self, row: &SecretRow) -> Result<String, SecretError> {
        let sealed = || SecretError::Sealed(row.name.clone());
        let nonce = Nonce::try_assume_unique_for_key(&row.nonce).map_err(|_| sealed())?;
        let mut buf = row.ciphertext.clone();
        let plain = self
            .key
            .open_in_place(
                nonce,
                Aad::from(Self::aad(&row.name, row.version)),
                &mut buf,
            )
            .map_err(|_| sealed())?;
        String::from_utf8(plain.to_vec()).map_err(|_| sealed())
    }
}

fn libc_nofollow() -> i32 {
    libc::O_NOFOLLOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_as_itself_with_its_key() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("secrets.key");
        let b = SecretBox::open_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (nonce, ciphertext) = b.seal("hf-token", 3, b"s3cr3t-value");
        assert!(!ciphertext.windows(6).any(|w| w == b"s3cr3t"));
        let row = |name: &str, version| SecretRow {
            name: name.into(),
            version,
            nonce: nonce.clone(),
            ciphertext: ciphertext.clone(),
            updated_at: 0,
        };
        // The same key, read back from its file.
        let again = SecretBox::open_or_create(&path).unwrap();
        assert_eq!(again.open(&row("hf-token", 3)).unwrap(), "s3cr3t-value");
        // Another name or version does not open it; nor does another key.
        assert!(again.open(&row("other", 3)).is_err());
        assert!(again.open(&row("hf-token", 2)).is_err());
        let other = SecretBox::open_or_create(&d.path().join("other.key")).unwrap();
        assert!(other.open(&row("hf-token", 3)).is_err());
        // A key others may read, or a link, is refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretBox::open_or_create(&path).err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::os::unix::fs::symlink(&path, d.path().join("link.key")).unwrap();
        assert!(SecretBox::open_or_create(&d.path().join("link.key")).is_err());
    }
}
