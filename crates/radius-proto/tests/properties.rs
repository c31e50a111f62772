//! Property tests: decoding arbitrary bytes never panics, and encode/decode round-trips.

use proptest::prelude::*;
use radius_proto::{Attribute, Code, Packet, attr};

fn arb_attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        // Any type except Message-Authenticator (its value is recomputed on encode).
        (
            any::<u8>().prop_filter("not MA", |t| *t != attr::MESSAGE_AUTHENTICATOR),
            proptest::collection::vec(any::<u8>(), 0..=253)
        )
            .prop_map(|(t, v)| Attribute::new(t, v)),
        (
            any::<u32>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..=247)
        )
            .prop_map(|(vendor, t, v)| Attribute::vendor(vendor, t, &v).unwrap()),
    ]
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<[u8; 16]>(),
        proptest::collection::vec(arb_attribute(), 0..12),
        any::<bool>(),
    )
        .prop_map(|(code, id, auth, attrs, ma)| {
            let mut p = Packet::new(Code(code), id, auth);
            for a in attrs {
                p.push(a);
            }
            if ma {
                p.with_message_authenticator()
            } else {
                p
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(p) = Packet::decode(&bytes) {
            // Whatever decodes re-serialises to the bytes within its Length field.
            let raw = p.to_bytes_unsigned().unwrap();
            prop_assert_eq!(&raw[..], &bytes[..raw.len()]);
            let _ = p.verify_request(b"s");
            let _ = p.verify_response(&[0; 16], b"s");
            let _ = p.user_password(b"s");
            let _ = p.vendor_specifics().count();
            let _ = p.verify_chap_password(b"pw");
        }
    }

    #[test]
    fn decode_header_plus_arbitrary_attributes_never_panics(
        code in any::<u8>(), id in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        // A consistent Length field so attribute parsing is exercised, not just the header.
        let mut bytes = vec![code, id, 0, 0];
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&body);
        let len = bytes.len() as u16;
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
        if let Ok(p) = Packet::decode(&bytes) {
            prop_assert_eq!(p.to_bytes_unsigned().unwrap(), bytes);
            for a in &p.attributes {
                let _ = a.vendor_specific().map(|r| r.map(|vs| vs.sub_attributes().count()));
            }
        }
    }

    #[test]
    fn encode_decode_round_trip(p in arb_packet(), secret in proptest::collection::vec(any::<u8>(), 1..32)) {
        match p.encode(&secret) {
            Ok(bytes) => {
                let d = Packet::decode(&bytes).unwrap();
                prop_assert_eq!(d.code, p.code);
                prop_assert_eq!(d.id, p.id);
                prop_assert_eq!(d.attributes.len(), p.attributes.len());
                for (a, b) in d.attributes.iter().zip(&p.attributes) {
                    prop_assert_eq!(a.typ, b.typ);
                    if a.typ != attr::MESSAGE_AUTHENTICATOR {
                        prop_assert_eq!(&a.value, &b.value);
                    }
                }
                match p.code.authenticator_kind() {
                    radius_proto::AuthenticatorKind::Response => {
                        prop_assert!(d.verify_response(&p.authenticator, &secret).is_ok());
                    }
                    _ => prop_assert!(d.verify_request(&secret).is_ok()),
                }
                // Re-encoding a decoded packet reproduces it exactly (raw view).
                prop_assert_eq!(d.to_bytes_unsigned().unwrap(), bytes);
            }
            Err(radius_proto::Error::PacketTooLong { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected encode error {e}"),
        }
    }

    #[test]
    fn password_round_trip(pw in proptest::collection::vec(1u8..=255, 0..=128), auth in any::<[u8; 16]>(),
                           secret in proptest::collection::vec(any::<u8>(), 1..40)) {
        let p = Packet::access_request(1, auth).with_user_password(&pw, &secret).unwrap();
        let d = Packet::decode(&p.encode(&secret).unwrap()).unwrap();
        prop_assert_eq!(d.user_password(&secret).unwrap().unwrap(), pw);
    }
}

proptest! {
    /// A 64-bit counter split into Octets and Gigawords adds back up to itself.
    #[test]
    fn counter64_splits_into_octets_and_gigawords(value in any::<u64>()) {
        let p = Packet::accounting_request(1).with_counter64(
            attr::ACCT_INPUT_OCTETS,
            attr::ACCT_INPUT_GIGAWORDS,
            value,
        );
        let low = p.integer(attr::ACCT_INPUT_OCTETS).unwrap().unwrap();
        let high = p.integer(attr::ACCT_INPUT_GIGAWORDS).unwrap().unwrap();
        prop_assert_eq!(u64::from(high) << 32 | u64::from(low), value);
        prop_assert_eq!(p.attributes[0].typ, attr::ACCT_INPUT_OCTETS);
    }
}
