//! An artifact's digest, written `ALGORITHM:HEX`: `blake3:…` for what workers hash now (BLAKE3:
//! a 2 GB output is hashed in about a third of a second, so the step after it starts sooner),
//! `sha256:…` for what was kept before, when digests were SHA-256 and written as bare hex.

use serde::{Deserialize, Deserializer};

/// The algorithm of the digests workers make.
pub const ALGORITHM: &str = "blake3";

/// `ALGORITHM:HEX` for a BLAKE3 digest given as hex.
pub fn blake3(hex: &str) -> String {
    format!("{ALGORITHM}:{hex}")
}

/// A digest as kept: with its algorithm, or bare hex from before digests said theirs (SHA-256).
pub fn normalize(d: String) -> String {
    if d.contains(':') || d.is_empty() {
        d
    } else {
        format!("sha256:{d}")
    }
}

/// Reads a digest as [`normalize`] writes it (serde's `deserialize_with`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(normalize)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_digest_from_before_is_sha256() {
        assert_eq!(super::normalize("ab12".into()), "sha256:ab12");
        assert_eq!(super::normalize("blake3:ab12".into()), "blake3:ab12");
        assert_eq!(super::blake3("ff"), "blake3:ff");
    }
}
