//! The client side of MS-CHAPv2 (RFC 2759) as carried in RADIUS (RFC 2548): what a MikroTik
//! PPPoE server puts in MS-CHAP-Challenge and MS-CHAP2-Response, and the check of the
//! server's MS-CHAP2-Success.

use des::Des;
use des::cipher::{BlockEncrypt, KeyInit};
use md4::{Digest, Md4};
use sha1::Sha1;

/// NtPasswordHash: MD4 of the password in UTF-16LE (RFC 2759 §8.3).
pub fn nt_password_hash(password: &str) -> [u8; 16] {
    let unicode: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    Md4::digest(&unicode).into()
}

/// ChallengeHash: the first 8 octets of SHA-1(peer challenge, authenticator challenge,
/// user name) (RFC 2759 §8.2).
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
) -> [u8; 8] {
    let digest = Sha1::new()
        .chain_update(peer_challenge)
        .chain_update(authenticator_challenge)
        .chain_update(username)
        .finalize();
    let mut challenge = [0u8; 8];
    challenge.copy_from_slice(&digest[..8]);
    challenge
}

/// Spreads 7 key octets over 8, leaving the (ignored) DES parity bit of each octet clear.
fn des_key(seven: &[u8]) -> [u8; 8] {
    let bits = seven.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut key = [0u8; 8];
    for (i, octet) in key.iter_mut().enumerate() {
        *octet = (((bits >> (49 - 7 * i)) & 0x7F) as u8) << 1;
    }
    key
}

/// ChallengeResponse: the 8-octet challenge DES-encrypted under three keys cut from the
/// zero-padded password hash (RFC 2759 §8.5).
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut padded = [0u8; 21];
    padded[..16].copy_from_slice(password_hash);
    let mut response = [0u8; 24];
    for (key, out) in padded.chunks_exact(7).zip(response.chunks_exact_mut(8)) {
        let cipher = Des::new(&des_key(key).into());
        let mut block = (*challenge).into();
        cipher.encrypt_block(&mut block);
        out.copy_from_slice(&block);
    }
    response
}

/// GenerateNTResponse (RFC 2759 §8.1).
pub fn nt_response(
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: &[u8],
    password: &str,
) -> [u8; 24] {
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, username);
    challenge_response(&challenge, &nt_password_hash(password))
}

/// The value of MS-CHAP2-Response (RFC 2548 §2.3.2): ident, flags, peer challenge, 8 reserved
/// zero octets, NT-Response.
pub fn ms_chap2_response(
    ident: u8,
    authenticator_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    username: &[u8],
    password: &str,
) -> [u8; 50] {
    let mut value = [0u8; 50];
    value[0] = ident;
    value[2..18].copy_from_slice(peer_challenge);
    value[26..].copy_from_slice(&nt_response(
        authenticator_challenge,
        peer_challenge,
        username,
        password,
    ));
    value
}

/// The authenticator response `S=<40 hex digits>` the server must return in
/// MS-CHAP2-Success (RFC 2759 §8.7), which proves it knew the password too.
pub fn authenticator_response(
    password: &str,
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    authenticator_challenge: &[u8; 16],
    username: &[u8],
) -> String {
    const MAGIC1: &[u8] = b"Magic server to client signing constant";
    const MAGIC2: &[u8] = b"Pad to make it do more than one iteration";
    let hash_hash = Md4::digest(nt_password_hash(password));
    let digest = Sha1::new()
        .chain_update(hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC1)
        .finalize();
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, username);
    let digest = Sha1::new()
        .chain_update(digest)
        .chain_update(challenge)
        .chain_update(MAGIC2)
        .finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("S={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 2759 §9.2.
    const USERNAME: &[u8] = b"User";
    const PASSWORD: &str = "clientPass";
    const AUTHENTICATOR_CHALLENGE: [u8; 16] = [
        0x5B, 0x5D, 0x7C, 0x7D, 0x7B, 0x3F, 0x2F, 0x3E, 0x3C, 0x2C, 0x60, 0x21, 0x32, 0x26, 0x26,
        0x28,
    ];
    const PEER_CHALLENGE: [u8; 16] = [
        0x21, 0x40, 0x23, 0x24, 0x25, 0x5E, 0x26, 0x2A, 0x28, 0x29, 0x5F, 0x2B, 0x3A, 0x33, 0x7C,
        0x7E,
    ];

    #[test]
    fn rfc2759_vectors() {
        assert_eq!(
            challenge_hash(&PEER_CHALLENGE, &AUTHENTICATOR_CHALLENGE, USERNAME),
            [0xD0, 0x2E, 0x43, 0x86, 0xBC, 0xE9, 0x12, 0x26]
        );
        assert_eq!(
            nt_password_hash(PASSWORD),
            [
                0x44, 0xEB, 0xBA, 0x8D, 0x53, 0x12, 0xB8, 0xD6, 0x11, 0x47, 0x44, 0x11, 0xF5, 0x69,
                0x89, 0xAE
            ]
        );
        let response = nt_response(
            &AUTHENTICATOR_CHALLENGE,
            &PEER_CHALLENGE,
            USERNAME,
            PASSWORD,
        );
        assert_eq!(
            response,
            [
                0x82, 0x30, 0x9E, 0xCD, 0x8D, 0x70, 0x8B, 0x5E, 0xA0, 0x8F, 0xAA, 0x39, 0x81, 0xCD,
                0x83, 0x54, 0x42, 0x33, 0x11, 0x4A, 0x3D, 0x85, 0xD6, 0xDF
            ]
        );
        assert_eq!(
            authenticator_response(
                PASSWORD,
                &response,
                &PEER_CHALLENGE,
                &AUTHENTICATOR_CHALLENGE,
                USERNAME
            ),
            "S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
    }

    #[test]
    fn response_attribute_layout() {
        let value = ms_chap2_response(
            7,
            &AUTHENTICATOR_CHALLENGE,
            &PEER_CHALLENGE,
            USERNAME,
            PASSWORD,
        );
        assert_eq!(value[0], 7);
        assert_eq!(value[1], 0);
        assert_eq!(&value[2..18], &PEER_CHALLENGE);
        assert_eq!(&value[18..26], &[0; 8]);
        assert_eq!(value[26], 0x82);
    }
}
