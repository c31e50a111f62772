//! Voucher codes: drawn from the OS CSPRNG over an alphabet without look-alikes, and sealed
//! (AES-256-GCM) so the database can give them back for printing but a dump cannot.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::TryRngCore;

/// The symbols of a code. Left out, because they are misread on a receipt or a phone
/// screen: 0 O Q D (round), 1 I L (strokes), 2 Z, 5 S, 8 B, U V. What remains is 21
/// symbols, 4.39 bits each: the default 10-symbol code carries 43.9 bits.
pub const ALPHABET: &[u8; 21] = b"ACEFGHJKMNPRTWXY34679";

/// Symbols drawn when a batch does not say.
pub const DEFAULT_CODE_LENGTH: usize = 10;

/// Bytes of a sealed code's nonce and tag.
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The largest multiple of the alphabet's size that fits in a byte: random bytes at or above
/// it are thrown away, so every symbol is equally likely (no modulo bias).
const ACCEPT_BELOW: u8 = (256 / ALPHABET.len() * ALPHABET.len()) as u8;

/// Draws codes from the OS CSPRNG, a buffer of random bytes at a time.
pub struct CodeGenerator {
    buf: Vec<u8>,
    pos: usize,
}

impl CodeGenerator {
    /// A generator with an empty buffer.
    pub fn new() -> Self {
        Self {
            buf: vec![0; 4096],
            pos: 4096,
        }
    }

    fn byte(&mut self) -> std::io::Result<u8> {
        if self.pos == self.buf.len() {
            rand::rngs::OsRng
                .try_fill_bytes(&mut self.buf)
                .map_err(std::io::Error::other)?;
            self.pos = 0;
        }
        self.pos += 1;
        Ok(self.buf[self.pos - 1])
    }

    /// One symbol of [`ALPHABET`], uniformly (rejection sampling).
    fn symbol(&mut self) -> std::io::Result<u8> {
        loop {
            let b = self.byte()?;
            if b < ACCEPT_BELOW {
                return Ok(ALPHABET[usize::from(b) % ALPHABET.len()]);
            }
        }
    }

    /// `prefix` followed by `length` random symbols.
    pub fn code(&mut self, prefix: &str, length: usize) -> std::io::Result<String> {
        let mut code = String::with_capacity(prefix.len() + length);
        code.push_str(prefix);
        for _ in 0..length {
            code.push(char::from(self.symbol()?));
        }
        Ok(code)
    }
}

impl Default for CodeGenerator {
    fn default() -> Self {
        Self::new()
    }
}

/// A code written in groups of four for printing (`ACEF-3467-XY`); the module ignores the
/// dashes, so it may be typed either way.
pub fn grouped(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + code.len() / 4);
    for (i, c) in code.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Why a sealed code could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("a voucher code could not be decrypted (was the voucher key file replaced?)")]
pub struct UnsealError;

/// Encrypts `code` under the print key, bound to its row's `lookup_name` (so a sealed code
/// copied onto another row does not open): nonce || ciphertext || tag.
pub fn seal(print_key: &[u8; 32], lookup_name: &str, code: &str) -> std::io::Result<Vec<u8>> {
    let cipher = Aes256Gcm::new(print_key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(std::io::Error::other)?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: code.as_bytes(),
                aad: lookup_name.as_bytes(),
            },
        )
        .map_err(|_| std::io::Error::other("AES-GCM encryption failed"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts what [`seal`] made for `lookup_name`.
pub fn unseal(
    print_key: &[u8; 32],
    lookup_name: &str,
    sealed: &[u8],
) -> Result<String, UnsealError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(UnsealError);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(print_key.into());
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: rest,
                aad: lookup_name.as_bytes(),
            },
        )
        .map_err(|_| UnsealError)?;
    String::from_utf8(plain).map_err(|_| UnsealError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jasiyo_snapshot::voucher::{VoucherKey, normalize};

    #[test]
    fn the_alphabet_has_no_look_alikes_and_survives_normalizing() {
        for c in b"0OQD1IL2Z5S8BUV" {
            assert!(!ALPHABET.contains(c), "{}", char::from(*c));
        }
        let mut seen = ALPHABET.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ALPHABET.len());
        let mut g = CodeGenerator::new();
        let code = g.code("HS", 10).unwrap();
        assert_eq!(normalize(&code).as_deref(), Some(code.as_str()));
        assert_eq!(normalize(&grouped(&code)).as_deref(), Some(code.as_str()));
        assert_eq!(grouped("ACEF3467XY"), "ACEF-3467-XY");
        assert_eq!(grouped("ACEF3467"), "ACEF-3467");
    }

    #[test]
    fn symbols_are_uniform() {
        // 210,000 symbols: each of the 21 expected 10,000 times. A modulo-biased draw
        // (256 % 21 = 4 symbols favoured by 1/12) would put those near 10,800.
        let mut g = CodeGenerator::new();
        let mut counts = [0u32; 256];
        for _ in 0..21_000 {
            for b in g.code("", 10).unwrap().bytes() {
                counts[usize::from(b)] += 1;
            }
        }
        for &c in ALPHABET {
            let n = counts[usize::from(c)];
            assert!((9_400..=10_600).contains(&n), "{}: {n}", char::from(c));
        }
        assert_eq!(counts.iter().sum::<u32>(), 210_000, "only alphabet symbols");
    }

    #[test]
    fn sealed_codes_open_only_with_their_key_and_row() {
        let key = VoucherKey::from_hex(&"3c".repeat(32)).unwrap();
        let other = VoucherKey::from_hex(&"c3".repeat(32)).unwrap();
        let sealed = seal(key.print_key(), "~aa", "ACEF3467XY").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"ACEF3467XY"));
        assert_eq!(
            unseal(key.print_key(), "~aa", &sealed).unwrap(),
            "ACEF3467XY"
        );
        assert!(unseal(other.print_key(), "~aa", &sealed).is_err());
        assert!(unseal(key.print_key(), "~bb", &sealed).is_err());
        assert!(unseal(key.print_key(), "~aa", &sealed[..20]).is_err());
        // A fresh nonce each time.
        assert_ne!(seal(key.print_key(), "~aa", "ACEF3467XY").unwrap(), sealed);
    }
}
