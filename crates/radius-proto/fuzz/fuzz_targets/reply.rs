//! Arbitrary bytes as the reply to a Disconnect-Request, handled the way billing-daemon's
//! sender handles a datagram from a router: decode, check identifier and authenticators
//! against the request it sent, read Error-Cause and the vendor attributes. Nothing may
//! panic, and only a reply signed with the secret may verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radius_proto::{Packet, attr};

const SECRET: &[u8] = b"router-secret";

fuzz_target!(|data: &[u8]| {
    let request = Packet::disconnect_request(42)
        .with_string(attr::USER_NAME, "alice")
        .with_string(attr::ACCT_SESSION_ID, "81a00001")
        .with_message_authenticator();
    let wire = request.encode(SECRET).expect("the request encodes");
    let request_authenticator = Packet::authenticator_from_wire(&wire).expect("header");

    let Ok(reply) = Packet::decode(data) else {
        return;
    };
    let verified = reply.verify_response(&request_authenticator, SECRET).is_ok();
    let _ = reply.integer(attr::ERROR_CAUSE);
    let _ = reply.string(attr::REPLY_MESSAGE);
    let _ = reply.vendor_string(attr::mikrotik::VENDOR_ID, attr::mikrotik::RATE_LIMIT);
    for vs in reply.vendor_specifics() {
        for (_typ, _value) in vs.sub_attributes() {}
    }
    if verified {
        // A verified reply must still verify after a round trip through the encoder.
        let raw = reply.to_bytes_unsigned().expect("a decoded packet re-serialises");
        let again = Packet::decode(&raw).expect("re-decodes");
        assert!(again.verify_response(&request_authenticator, SECRET).is_ok());
    }
});
