//! Decodes arbitrary bytes as a RADIUS packet. Nothing may panic; whatever decodes must
//! re-encode to the same octets (within its Length field), decode again to the same
//! packet, and survive every verification and accessor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radius_proto::{Packet, attr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    let raw = packet
        .to_bytes_unsigned()
        .expect("a decoded packet re-serialises");
    assert_eq!(&raw[..], &data[..raw.len()]);
    assert_eq!(Packet::decode(&raw).as_ref(), Ok(&packet));

    let secret = b"fuzz-secret";
    let _ = packet.verify_request(secret);
    let _ = packet.verify_response(&[0; 16], secret);
    let _ = packet.require_message_authenticator();
    let _ = packet.user_password(secret);
    let _ = packet.verify_chap_password(b"password");
    let _ = packet.string(attr::USER_NAME);
    let _ = packet.integer(attr::SESSION_TIMEOUT);
    let _ = packet.ipv4(attr::FRAMED_IP_ADDRESS);
    let _ = packet.vendor_string(attr::mikrotik::VENDOR_ID, attr::mikrotik::RATE_LIMIT);
    for vs in packet.vendor_specifics() {
        for (_typ, _value) in vs.sub_attributes() {}
    }
    // Re-signing must not panic either (it may fail on limits that decode allows).
    let _ = packet.encode(secret);
});
