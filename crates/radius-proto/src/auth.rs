//! The cryptographic pieces of RADIUS: User-Password hiding (RFC 2865 §5.2), CHAP
//! (RFC 1994 / RFC 2865 §2.2), authenticators (RFC 2865 §3, RFC 2866 §3, RFC 5176 §2.3) and
//! Message-Authenticator (RFC 3579 §3.2).
//!
//! These are the building blocks [`crate::Packet`] uses; they are public so that a server
//! (or a test) can work on raw bytes too.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

use crate::error::{Error, Result};

/// Length of the Authenticator field and of a Message-Authenticator value.
pub const AUTHENTICATOR_LEN: usize = 16;

/// The longest password that can be hidden in User-Password.
pub const MAX_PASSWORD_LEN: usize = 128;

/// Hides a password for the User-Password attribute (RFC 2865 §5.2).
///
/// The password is padded with NULs to a multiple of 16 octets (at least 16); each 16-octet
/// block is XORed with `MD5(secret | previous block)`, the first "previous block" being the
/// Request Authenticator.
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; AUTHENTICATOR_LEN],
) -> Result<Vec<u8>> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::PasswordTooLong {
            len: password.len(),
        });
    }
    let padded_len = password.len().div_ceil(16).max(1) * 16;
    let mut out = password.to_vec();
    out.resize(padded_len, 0);
    let mut prev: [u8; 16] = *request_authenticator;
    for block in out.chunks_exact_mut(16) {
        let b = md5_two(secret, &prev);
        for (p, k) in block.iter_mut().zip(b.iter()) {
            *p ^= k;
        }
        prev.copy_from_slice(block);
    }
    Ok(out)
}

/// Recovers a password hidden by [`hide_password`]; trailing NUL padding is removed.
pub fn unhide_password(
    hidden: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; AUTHENTICATOR_LEN],
) -> Result<Vec<u8>> {
    if hidden.is_empty() || hidden.len() % 16 != 0 || hidden.len() > MAX_PASSWORD_LEN {
        return Err(Error::InvalidHiddenPassword { len: hidden.len() });
    }
    let mut out = Vec::with_capacity(hidden.len());
    let mut prev: &[u8] = request_authenticator;
    for block in hidden.chunks_exact(16) {
        let b = md5_two(secret, prev);
        out.extend(block.iter().zip(b.iter()).map(|(c, k)| c ^ k));
        prev = block;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// The 16-octet CHAP response `MD5(chap_id | password | challenge)` (RFC 1994 §4.1).
///
/// The CHAP-Password attribute value is `chap_id` followed by this response; the challenge is
/// the CHAP-Challenge attribute if present, else the Request Authenticator.
pub fn chap_response(chap_id: u8, password: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update([chap_id]);
    h.update(password);
    h.update(challenge);
    h.finalize().into()
}

/// `MD5(packet | secret)`, where `packet` already carries in its Authenticator field what
/// the computation needs: 16 zero octets for an Accounting/CoA/Disconnect Request
/// Authenticator, the Request Authenticator for a Response Authenticator.
pub fn packet_digest(packet: &[u8], secret: &[u8]) -> [u8; 16] {
    md5_two(packet, secret)
}

/// `HMAC-MD5(secret, packet)` for Message-Authenticator. `packet` must have the
/// Message-Authenticator value zeroed and the Authenticator field set as RFC 3579 §3.2 /
/// RFC 5176 §3.5 require (see [`crate::Packet::encode`]).
pub fn message_authenticator(packet: &[u8], secret: &[u8]) -> [u8; 16] {
    // HMAC accepts keys of every length, so this never fails.
    let mut mac = match Hmac::<Md5>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-MD5 accepts keys of any length"),
    };
    mac.update(packet);
    mac.finalize().into_bytes().into()
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn md5_two(a: &[u8], b: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hide_round_trips_and_pads() {
        let ra = [7u8; 16];
        for len in [0usize, 1, 15, 16, 17, 100, 128] {
            let pw: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let h = hide_password(&pw, b"s3cret", &ra).unwrap();
            assert_eq!(h.len(), len.div_ceil(16).max(1) * 16);
            assert_eq!(unhide_password(&h, b"s3cret", &ra).unwrap(), pw);
        }
        assert!(matches!(
            hide_password(&[1; 129], b"s", &ra),
            Err(Error::PasswordTooLong { len: 129 })
        ));
        for bad in [0usize, 15, 17, 144] {
            assert!(unhide_password(&vec![0; bad], b"s", &ra).is_err());
        }
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn hmac_md5_rfc2104_vector() {
        // RFC 2104 appendix test vector 2.
        let mac = message_authenticator(b"what do ya want for nothing?", b"Jefe");
        assert_eq!(hex::encode(mac), "750c783e6ab0b503eaa86e310a5db738");
    }
}
