//! The two shapes of ACK RouterOS is known to send to RFC 5176 requests
//! (../shared/fixtures/routeros/coa-ack-01.txt and disconnect-ack-01.txt): a CoA-ACK whose
//! only attribute is Message-Authenticator (38 octets), and a Disconnect-ACK whose only
//! attribute is NAS-Identifier = "MikroTik" (30 octets, no Message-Authenticator). A
//! Disconnect/CoA sender must accept both: verify the Response Authenticator always, the
//! Message-Authenticator when present, and not require one.

use std::net::Ipv4Addr;

use radius_proto::{Code, Error, Packet, attr};

/// The CoA-Request of coa-ack-01.txt (57 octets on the wire, Id 224) and the ACK shape
/// RouterOS answered it with.
#[test]
fn coa_ack_with_only_message_authenticator() {
    let secret = b"router-secret";
    let request = Packet::coa_request(224)
        .with_string(attr::USER_NAME, "D6:D8:C3:1E:BF:4F")
        .with_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(192, 168, 88, 253))
        .with_ipv4(attr::NAS_IP_ADDRESS, Ipv4Addr::new(192, 168, 200, 32))
        .with_integer(attr::SESSION_TIMEOUT, 3600);
    let request_bytes = request.encode(secret).unwrap();
    assert_eq!(request_bytes.len(), 57, "the length radclient reported");
    let request_auth = Packet::authenticator_from_wire(&request_bytes).unwrap();

    let received = Packet::decode(&request_bytes).unwrap();
    let ack = Packet::reply_to(&received, Code::COA_ACK)
        .with_message_authenticator()
        .encode(secret)
        .unwrap();
    assert_eq!(ack.len(), 38, "the length RouterOS sent");

    let reply = Packet::decode(&ack).unwrap();
    assert_eq!((reply.code, reply.id), (Code::COA_ACK, 224));
    reply.verify_response(&request_auth, secret).unwrap();
    reply.require_message_authenticator().unwrap();
    assert_eq!(reply.attributes.len(), 1);

    // A tampered Message-Authenticator is caught even when the Response Authenticator
    // is recomputed to match.
    let mut tampered = ack.clone();
    tampered[22] ^= 1;
    let resigned = resign_reply(&tampered, &request_auth, secret);
    assert_eq!(
        Packet::decode(&resigned)
            .unwrap()
            .verify_response(&request_auth, secret),
        Err(Error::BadMessageAuthenticator)
    );

    // The captured value itself decodes as a well-formed 38-octet ACK (its secret is not
    // known, so it cannot be verified).
    let mut captured = ack.clone();
    captured[22..38].copy_from_slice(&hex::decode("44697ff3ad17a89cb4ebe9df2684ee57").unwrap());
    let p = Packet::decode(&captured).unwrap();
    assert!(p.has_message_authenticator());
}

/// The Disconnect-Request of disconnect-ack-01.txt (User-Name only, 27 octets, Id 28,
/// secret "1234") and the ACK RouterOS sent: NAS-Identifier, no Message-Authenticator.
#[test]
fn disconnect_ack_with_only_nas_identifier() {
    let secret = b"1234";
    let request_bytes = Packet::disconnect_request(28)
        .with_string(attr::USER_NAME, "test1")
        .encode(secret)
        .unwrap();
    assert_eq!(request_bytes.len(), 27, "the length radclient reported");
    let request_auth = Packet::authenticator_from_wire(&request_bytes).unwrap();

    let received = Packet::decode(&request_bytes).unwrap();
    received.verify_request(secret).unwrap();
    let ack = Packet::reply_to(&received, Code::DISCONNECT_ACK)
        .with_string(attr::NAS_IDENTIFIER, "MikroTik")
        .encode(secret)
        .unwrap();
    assert_eq!(ack.len(), 30, "the length RouterOS sent");

    let reply = Packet::decode(&ack).unwrap();
    assert_eq!((reply.code, reply.id), (Code::DISCONNECT_ACK, 28));
    reply.verify_response(&request_auth, secret).unwrap();
    assert_eq!(
        reply.string(attr::NAS_IDENTIFIER).unwrap(),
        Some("MikroTik")
    );
    assert_eq!(
        reply.require_message_authenticator(),
        Err(Error::MissingMessageAuthenticator),
        "so a sender must not require it"
    );
    // Another secret does not verify.
    assert_eq!(
        reply.verify_response(&request_auth, b"4321"),
        Err(Error::BadResponseAuthenticator)
    );
}

/// Recomputes the Response Authenticator of reply bytes (leaving Message-Authenticator as
/// it is): MD5(code, id, length, request authenticator, attributes, secret).
fn resign_reply(wire: &[u8], request_auth: &[u8; 16], secret: &[u8]) -> Vec<u8> {
    let mut buf = wire.to_vec();
    let len = u16::try_from(buf.len()).unwrap().to_be_bytes();
    buf[2..4].copy_from_slice(&len);
    buf[4..20].copy_from_slice(request_auth);
    let digest = radius_proto::auth::packet_digest(&buf, secret);
    buf[4..20].copy_from_slice(&digest);
    buf
}
