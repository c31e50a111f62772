//! Voucher codes as the database and the snapshot hold them: never in clear.
//!
//! A hotspot voucher is a subscriber row whose username is not the code but its **lookup
//! name**: [`VOUCHER_PREFIX`] followed by the hex of the first 16 bytes of
//! HMAC-SHA256(lookup key, normalized code). The lookup key is derived from a secret key file
//! that only the daemon and radiusd read, so a leaked database dump or snapshot file gives
//! nobody a usable code (codes are short enough to brute-force a plain hash), while
//! rlm_jasiyo turns the User-Name of a request into the same name and finds the row with the
//! ordinary username lookup. The daemon keeps the codes encrypted (with a second key derived
//! from the same file) for printing.
//!
//! The key file holds 64 hex digits (32 random bytes) and optional surrounding whitespace.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// First character of every voucher's lookup name. Operator usernames may not start with it.
pub const VOUCHER_PREFIX: char = '~';

/// Length of a lookup name: the prefix and 32 hex digits.
pub const LOOKUP_NAME_LEN: usize = 1 + 32;

/// The `reason` of the journaled accept (post-auth `AuthResult`) of a voucher nobody had used
/// yet: rlm_jasiyo writes it, and the daemon activates the voucher when it reads it.
pub const FIRST_USE_REASON: &str = "voucher first use";

/// Shortest and longest code accepted once normalized.
pub const CODE_LEN: std::ops::RangeInclusive<usize> = 4..=32;

/// Why a key file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum VoucherKeyError {
    /// It could not be read.
    #[error("reading the voucher key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It does not hold 64 hex digits.
    #[error("the voucher key file {0} must hold 64 hex digits (32 random bytes)")]
    Malformed(String),
}

/// The secret both the daemon and rlm_jasiyo derive their voucher keys from.
#[derive(Clone)]
pub struct VoucherKey {
    lookup: [u8; 32],
    print: [u8; 32],
}

impl std::fmt::Debug for VoucherKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoucherKey(..)")
    }
}

fn derive(master: &[u8; 32], purpose: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

impl VoucherKey {
    /// A key from its 32 secret bytes.
    pub fn from_bytes(master: &[u8; 32]) -> Self {
        Self {
            lookup: derive(master, b"jasiyo voucher lookup v1"),
            print: derive(master, b"jasiyo voucher print v1"),
        }
    }

    /// Parses the key file's text: 64 hex digits, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim().as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut master = [0u8; 32];
        for (byte, pair) in master.iter_mut().zip(text.chunks_exact(2)) {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            *byte = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Self::from_bytes(&master))
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, VoucherKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| VoucherKeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_hex(&text).ok_or_else(|| VoucherKeyError::Malformed(path.display().to_string()))
    }

    /// The key the daemon encrypts codes with for printing (rlm_jasiyo never needs it).
    pub fn print_key(&self) -> &[u8; 32] {
        &self.print
    }

    /// The lookup name of `code` (as typed: see [`normalize`]), written into `out`; None if
    /// it cannot be a code. Does not allocate: rlm_jasiyo calls it on the request path.
    pub fn lookup_name_into<'b>(
        &self,
        code: &[u8],
        out: &'b mut [u8; LOOKUP_NAME_LEN],
    ) -> Option<&'b str> {
        let mut normalized = [0u8; 32];
        let len = normalize_into(code, &mut normalized)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.lookup).expect("32-byte key");
        mac.update(&normalized[..len]);
        let digest = mac.finalize().into_bytes();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out[0] = VOUCHER_PREFIX as u8;
        for (i, b) in digest[..16].iter().enumerate() {
            out[1 + 2 * i] = HEX[usize::from(b >> 4)];
            out[2 + 2 * i] = HEX[usize::from(b & 0x0f)];
        }
        std::str::from_utf8(&out[..]).ok()
    }

    /// [`VoucherKey::lookup_name_into`], owned.
    pub fn lookup_name(&self, code: &str) -> Option<String> {
        let mut out = [0u8; LOOKUP_NAME_LEN];
        self.lookup_name_into(code.as_bytes(), &mut out)
            .map(str::to_owned)
    }
}

/// Writes the canonical form of a code as typed into `out` and returns its length: ASCII
/// letters upper-cased, spaces and dashes (which printed codes may be grouped with) dropped,
/// surrounding whitespace ignored. None unless the rest is 4 to 32 ASCII letters and digits.
/// Does not allocate (rlm_jasiyo compares a PAP password with the code through it).
pub fn normalize_into(code: &[u8], out: &mut [u8; 32]) -> Option<usize> {
    let mut len = 0;
    for &b in code.trim_ascii() {
        match b {
            b' ' | b'-' => continue,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => {
                *out.get_mut(len)? = b.to_ascii_uppercase();
                len += 1;
            }
            _ => return None,
        }
    }
    CODE_LEN.contains(&len).then_some(len)
}

/// The canonical form of a code as typed (see [`VoucherKey::lookup_name_into`]); None if it
/// cannot be a code.
pub fn normalize(code: &str) -> Option<String> {
    let mut out = [0u8; 32];
    let len = normalize_into(code.as_bytes(), &mut out)?;
    std::str::from_utf8(&out[..len]).ok().map(str::to_owned)
}

/// Whether `username` is a voucher's lookup name rather than an operator-chosen username.
pub fn is_lookup_name(username: &[u8]) -> bool {
    username.len() == LOOKUP_NAME_LEN
        && username[0] == VOUCHER_PREFIX as u8
        && username[1..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> VoucherKey {
        VoucherKey::from_hex(&"0f".repeat(32)).unwrap()
    }

    #[test]
    fn codes_are_normalized_before_hashing() {
        let k = key();
        let name = k.lookup_name("AB7K-Q9XZ").unwrap();
        assert_eq!(name.len(), LOOKUP_NAME_LEN);
        assert!(is_lookup_name(name.as_bytes()));
        assert_eq!(k.lookup_name(" ab7kq9xz ").as_deref(), Some(name.as_str()));
        assert_eq!(k.lookup_name("AB7K Q9XZ").as_deref(), Some(name.as_str()));
        assert_ne!(k.lookup_name("AB7KQ9XY").unwrap(), name);
    }

    #[test]
    fn other_keys_give_other_names() {
        let other = VoucherKey::from_hex(&"f0".repeat(32)).unwrap();
        assert_ne!(key().lookup_name("AB7KQ9XZ"), other.lookup_name("AB7KQ9XZ"));
        assert_ne!(key().print_key(), other.print_key());
    }

    #[test]
    fn what_cannot_be_a_code() {
        let k = key();
        assert_eq!(k.lookup_name("abc"), None, "too short");
        assert_eq!(k.lookup_name(&"A".repeat(33)), None, "too long");
        assert_eq!(k.lookup_name("alice@isp"), None);
        assert_eq!(k.lookup_name("AA:BB:CC:DD:EE:FF"), None, "a MAC login");
        assert_eq!(normalize("  xy-12 34 "), Some("XY1234".to_owned()));
    }

    #[test]
    fn key_files() {
        assert!(VoucherKey::from_hex(&format!("  {}\n", "ab".repeat(32))).is_some());
        assert!(VoucherKey::from_hex(&"ab".repeat(31)).is_none());
        assert!(VoucherKey::from_hex(&"zz".repeat(32)).is_none());
        assert_eq!(format!("{:?}", key()), "VoucherKey(..)");
        assert!(!is_lookup_name(b"alice"));
        assert!(!is_lookup_name(b"~ABCDEF0123456789abcdef0123456789"));
    }
}
