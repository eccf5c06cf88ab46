//! Decoding of received SNMP messages with the `snmp-parser` crate
//! (<https://docs.rs/snmp-parser>), into owned values the rest of the plugin uses.
//!
//! Everything here treats the input as hostile: any malformed, truncated or
//! oversized message becomes a [`DecodeError`], never a panic. The parser itself is
//! panic-free by design; a `catch_unwind` around it is a second line of defence so
//! that a parser bug in a future version cannot take the agent down either.

use std::{
    fmt,
    ops::Range,
    panic::{catch_unwind, AssertUnwindSafe},
};

use snmp_parser::{
    asn1_rs::FromBer, NetworkAddress, ObjectSyntax, PduType as WirePduType, ScopedPduData,
    SecurityModel, SecurityParameters, SnmpMessage, SnmpPdu, SnmpV3Message, SnmpVariable,
    VarBindValue,
};

use crate::encode::{self, Oid, UsmParams, Value, MAX_OID_ARCS};

/// Why a received datagram was not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> DecodeError {
    DecodeError(msg.into())
}

/// The kind of a received PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Response-PDU.
    Response,
    /// Report-PDU (SNMPv3 error indications).
    Report,
    /// Anything else (a request or trap sent to our port): ignored by the client.
    Other,
}

/// A decoded Response or Report PDU.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponsePdu {
    /// Response or Report.
    pub kind: Kind,
    /// request-id.
    pub request_id: u32,
    /// error-status (RFC 3416 §3: 0 noError, 2 noSuchName, 5 genErr...).
    pub error_status: u32,
    /// error-index (1-based position of the failing variable, 0 if none).
    pub error_index: u32,
    /// The variable bindings.
    pub varbinds: Vec<(Oid, Value)>,
}

/// A decoded SNMPv1 / SNMPv2c message.
#[derive(Clone, Debug, PartialEq)]
pub struct CommunityMessage {
    /// 0 for SNMPv1, 1 for SNMPv2c.
    pub version: u32,
    /// The community string.
    pub community: Vec<u8>,
    /// The PDU.
    pub pdu: ResponsePdu,
}

/// A decoded SNMPv3 message with USM parameters, before authentication and
/// decryption.
#[derive(Clone, Debug, PartialEq)]
pub struct V3Message {
    /// msgID.
    pub msg_id: u32,
    /// msgFlags.
    pub flags: u8,
    /// The USM security parameters.
    pub usm: UsmParams,
    /// Where msgAuthenticationParameters' content sits in the datagram, to verify
    /// the MAC over the message with those octets zeroed (RFC 3414 §3.2 step 6).
    pub auth_range: Range<usize>,
    /// The scoped PDU, plain or encrypted.
    pub data: V3Data,
}

/// The data part of an SNMPv3 message.
#[derive(Clone, Debug, PartialEq)]
pub enum V3Data {
    /// A plaintext ScopedPDU.
    Plain(ScopedPdu),
    /// An encryptedPDU, to decrypt with [`crate::usm::aes_decrypt`] and decode with
    /// [`decode_decrypted_scoped_pdu`].
    Encrypted(Vec<u8>),
}

/// A decoded ScopedPDU.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopedPdu {
    /// contextEngineID.
    pub context_engine_id: Vec<u8>,
    /// contextName.
    pub context_name: Vec<u8>,
    /// The PDU.
    pub pdu: ResponsePdu,
}

/// The SNMP version field of a message, read without decoding the rest, so the
/// client knows which decoder to use.
pub fn peek_version(buf: &[u8]) -> Option<u32> {
    // SEQUENCE header, then INTEGER version.
    let (rest, _) = snmp_parser::asn1_rs::Header::from_ber(buf).ok()?;
    let (_, v) = u32::from_ber(rest).ok()?;
    Some(v)
}

fn guarded<T>(f: impl FnOnce() -> Result<T, DecodeError>) -> Result<T, DecodeError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(err("the SNMP decoder failed")))
}

/// Decodes an SNMPv1 or SNMPv2c message.
pub fn decode_community(buf: &[u8]) -> Result<CommunityMessage, DecodeError> {
    guarded(|| {
        let (_, msg) = SnmpMessage::from_ber(buf)
            .map_err(|e| err(format!("malformed SNMPv1/v2c message: {e}")))?;
        Ok(CommunityMessage {
            version: msg.version,
            community: msg.community.as_bytes().to_vec(),
            pdu: convert_pdu(&msg.pdu)?,
        })
    })
}

/// Decodes an SNMPv3 message with the User-based Security Model.
pub fn decode_v3(buf: &[u8]) -> Result<V3Message, DecodeError> {
    guarded(|| {
        let (_, msg) = SnmpV3Message::from_ber(buf)
            .map_err(|e| err(format!("malformed SNMPv3 message: {e}")))?;
        if msg.version != 3 {
            return Err(err(format!("version {} where 3 was expected", msg.version)));
        }
        if msg.header_data.msg_security_model != SecurityModel::USM {
            return Err(err(format!(
                "security model {:?} where USM (3) was expected",
                msg.header_data.msg_security_model
            )));
        }
        let SecurityParameters::USM(p) = &msg.security_params else {
            return Err(err("missing USM security parameters"));
        };
        let auth = p.msg_authentication_parameters;
        let auth_range = slice_range(buf, auth)
            .ok_or_else(|| err("authentication parameters outside the message"))?;
        let usm = UsmParams {
            engine_id: p.msg_authoritative_engine_id.to_vec(),
            engine_boots: p.msg_authoritative_engine_boots,
            engine_time: p.msg_authoritative_engine_time,
            user_name: p.msg_user_name.as_bytes().to_vec(),
            auth_params: auth.to_vec(),
            priv_params: p.msg_privacy_parameters.to_vec(),
        };
        let data = match &msg.data {
            ScopedPduData::Plaintext(s) => V3Data::Plain(ScopedPdu {
                context_engine_id: s.ctx_engine_id.to_vec(),
                context_name: s.ctx_engine_name.to_vec(),
                pdu: convert_pdu(&s.data)?,
            }),
            ScopedPduData::Encrypted(e) => V3Data::Encrypted(e.to_vec()),
        };
        Ok(V3Message {
            msg_id: msg.header_data.msg_id,
            flags: msg.header_data.msg_flags,
            usm,
            auth_range,
            data,
        })
    })
}

/// Decodes a decrypted ScopedPDU. `snmp-parser` reads ScopedPDUs only inside a
/// whole message, so the plaintext is framed as one (the header of `outer` without
/// the privacy flag) and decoded as such.
pub fn decode_decrypted_scoped_pdu(
    outer: &V3Message,
    plaintext: &[u8],
) -> Result<ScopedPdu, DecodeError> {
    // The decrypted octets must hold exactly one ScopedPDU SEQUENCE (AES-CFB adds no
    // padding); reading its length first keeps trailing garbage out of the frame.
    let (_, header) = snmp_parser::asn1_rs::Header::from_ber(plaintext)
        .map_err(|_| err("decryption error: the decrypted data is not a ScopedPDU"))?;
    if header.tag() != snmp_parser::asn1_rs::Tag::Sequence {
        return Err(err(
            "decryption error: the decrypted data is not a ScopedPDU",
        ));
    }
    let framed = encode::v3_message(
        i32::try_from(outer.msg_id).map_err(|_| err("msgID out of range"))?,
        outer.flags & !encode::FLAG_PRIV,
        &outer.usm,
        encode::MsgData::Plaintext(plaintext),
    );
    match decode_v3(&framed.bytes) {
        Ok(V3Message {
            data: V3Data::Plain(s),
            ..
        }) => Ok(s),
        Ok(_) => Err(err(
            "decryption error: the decrypted data is not a ScopedPDU",
        )),
        Err(e) => Err(err(format!(
            "decryption error: the decrypted ScopedPDU does not decode ({e})"
        ))),
    }
}

/// The byte range `part` occupies inside `whole`, when it is a sub-slice of it.
fn slice_range(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

fn convert_pdu(p: &SnmpPdu<'_>) -> Result<ResponsePdu, DecodeError> {
    match p {
        SnmpPdu::Generic(g) => Ok(ResponsePdu {
            kind: match g.pdu_type {
                WirePduType::Response => Kind::Response,
                WirePduType::Report => Kind::Report,
                _ => Kind::Other,
            },
            request_id: g.req_id,
            error_status: g.err.0,
            error_index: g.err_index,
            varbinds: {
                let mut v = Vec::with_capacity(g.var.len());
                for var in &g.var {
                    v.push(convert_var(var)?);
                }
                v
            },
        }),
        SnmpPdu::Bulk(b) => Ok(ResponsePdu {
            kind: Kind::Other,
            request_id: b.req_id,
            error_status: 0,
            error_index: 0,
            varbinds: Vec::new(),
        }),
        SnmpPdu::TrapV1(_) => Ok(ResponsePdu {
            kind: Kind::Other,
            request_id: 0,
            error_status: 0,
            error_index: 0,
            varbinds: Vec::new(),
        }),
    }
}

/// Converts a parsed OID, refusing arcs beyond 32 bits and over-long OIDs.
pub fn convert_oid(o: &snmp_parser::Oid<'_>) -> Result<Oid, DecodeError> {
    decode_oid(o.as_bytes())
}

/// Stores one decoded arc of an OID: in `buf` while it fits (the caller refuses
/// more than `MAX_OID_ARCS`), remembering the first arc beyond 32 bits in `wide`.
fn put_arc(buf: &mut [u32; MAX_OID_ARCS], n: &mut usize, wide: &mut Option<u64>, acc: u64) {
    match u32::try_from(acc) {
        Ok(a) if *n < MAX_OID_ARCS => buf[*n] = a,
        Ok(_) => {}
        Err(_) => {
            wide.get_or_insert(acc);
        }
    }
    *n += 1;
}

/// Decodes the content octets of an OBJECT IDENTIFIER in place, refusing arcs
/// beyond 32 bits and OIDs of more than [`MAX_OID_ARCS`] arcs.
///
/// Why not `snmp_parser::Oid::iter`: that iterator is generic over the arc type
/// and re-walks the octets for its 64-bit check, its length and every arc (about
/// 1,100 instructions per OID of a walk, callgrind, allocation included); this
/// reads them once into a stack buffer and allocates the vector once, at its
/// exact size. It yields exactly what the iterator did, quirks included, so the
/// values emitted do not change: the first octet is read alone as
/// `first / 40, first % 40` (a lone `0` octet is the single arc 0), an arc of ten
/// or more octets (leading 0x80 octets included) is "larger than 64 bits", an
/// unterminated last arc is taken as it stands, and of several problems the same
/// one is reported (64 bits, then the first arc beyond 32 bits, then the length).
/// `message::tests::in_place_oid_decoder_matches_snmp_parser` pins this.
pub fn decode_oid(content: &[u8]) -> Result<Oid, DecodeError> {
    let Some((&first, rest)) = content.split_first() else {
        return Ok(Oid(Vec::new()));
    };
    let mut buf = [0u32; MAX_OID_ARCS];
    buf[0] = u32::from(first / 40);
    let mut n = 1;
    if !(rest.is_empty() && first == 0) {
        buf[1] = u32::from(first % 40);
        n = 2;
    }
    // The first arc beyond 32 bits, and whether a complete arc spans > 64 bits.
    let mut wide: Option<u64> = None;
    let mut over_64 = false;
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in rest {
        // As the iterator: bits shifted out of 64 are lost (only an unterminated
        // last arc can get there without failing the 64-bit check).
        acc = (acc << 7) | u64::from(b & 0x7f);
        bits += 7;
        if b & 0x80 == 0 {
            over_64 |= bits > 64;
            put_arc(&mut buf, &mut n, &mut wide, acc);
            acc = 0;
            bits = 0;
        }
    }
    if bits > 0 {
        put_arc(&mut buf, &mut n, &mut wide, acc);
    }
    if over_64 {
        return Err(err("OID arc larger than 64 bits"));
    }
    if let Some(a) = wide {
        return Err(err(format!("OID arc {a} larger than 32 bits")));
    }
    if n > MAX_OID_ARCS {
        return Err(err(format!("OID of {n} arcs (at most 128)")));
    }
    Ok(Oid(buf[..n].to_vec()))
}

fn convert_var(v: &SnmpVariable<'_>) -> Result<(Oid, Value), DecodeError> {
    let oid = decode_oid(v.oid.as_bytes())?;
    let value = match &v.val {
        VarBindValue::Unspecified => Value::Null,
        VarBindValue::NoSuchObject => Value::NoSuchObject,
        VarBindValue::NoSuchInstance => Value::NoSuchInstance,
        VarBindValue::EndOfMibView => Value::EndOfMibView,
        VarBindValue::Value(s) => match s {
            ObjectSyntax::Number(n) => Value::Integer(i64::from(*n)),
            ObjectSyntax::String(b) => Value::OctetString(b.to_vec()),
            ObjectSyntax::Object(o) => Value::ObjectId(decode_oid(o.as_bytes())?),
            ObjectSyntax::BitString(b) => Value::OctetString(b.data.to_vec()),
            // snmp-parser reads any zero-length simple value (in practice an empty
            // OCTET STRING such as the loopback's ifPhysAddress) as Empty.
            ObjectSyntax::Empty => Value::OctetString(Vec::new()),
            ObjectSyntax::UnknownSimple(a) => Value::Opaque(a.data.to_vec()),
            ObjectSyntax::IpAddress(NetworkAddress::IPv4(a)) => Value::IpAddress(a.octets()),
            ObjectSyntax::Counter32(c) => Value::Counter32(*c),
            ObjectSyntax::Gauge32(g) => Value::Gauge32(*g),
            ObjectSyntax::TimeTicks(t) => Value::TimeTicks(*t),
            ObjectSyntax::Opaque(o) => Value::Opaque(o.to_vec()),
            ObjectSyntax::NsapAddress(o) => Value::OctetString(o.to_vec()),
            ObjectSyntax::Counter64(c) => Value::Counter64(*c),
            // UInteger32 ([APPLICATION 7], RFC 1442) is indistinguishable from Gauge32.
            ObjectSyntax::UInteger32(u) => Value::Gauge32(*u),
            ObjectSyntax::UnknownApplication(a) => Value::Opaque(a.data.to_vec()),
        },
    };
    Ok((oid, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{
        community_message, scoped_pdu, v3_message, CommunityVersion, MsgData, Pdu, PduType,
        FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE,
    };

    fn oid(s: &str) -> Oid {
        s.parse().unwrap()
    }

    fn every_value() -> Vec<(Oid, Value)> {
        vec![
            (
                oid("1.3.6.1.2.1.1.1.0"),
                Value::OctetString(b"Linux box".to_vec()),
            ),
            (
                oid("1.3.6.1.2.1.1.2.0"),
                Value::ObjectId(oid("1.3.6.1.4.1.8072.3.2.10")),
            ),
            (oid("1.3.6.1.2.1.1.3.0"), Value::TimeTicks(123_456)),
            (oid("1.3.6.1.2.1.1.7.0"), Value::Integer(72)),
            (oid("1.3.6.1.2.1.2.2.1.8.1"), Value::Integer(-5)),
            (oid("1.3.6.1.2.1.2.2.1.10.1"), Value::Counter32(u32::MAX)),
            (oid("1.3.6.1.2.1.2.2.1.5.1"), Value::Gauge32(10_000_000)),
            (oid("1.3.6.1.2.1.31.1.1.1.6.1"), Value::Counter64(u64::MAX)),
            (oid("1.3.6.1.2.1.31.1.1.1.10.1"), Value::Counter64(0)),
            (
                oid("1.3.6.1.2.1.4.20.1.1.127.0.0.1"),
                Value::IpAddress([127, 0, 0, 1]),
            ),
            (
                oid("1.3.6.1.4.1.2021.10.1.6.1"),
                Value::Opaque(vec![0x9f, 0x78, 4, 0x3e, 0x2e, 0x14, 0x7b]),
            ),
            (oid("1.3.6.1.2.1.2.2.1.6.1"), Value::OctetString(Vec::new())),
            (
                oid("1.3.6.1.2.1.2.2.1.6.2"),
                Value::OctetString(vec![0xa6, 0xc5, 0x16, 0x59, 0x9d, 0x67]),
            ),
            (oid("1.3.6.1.2.1.1.9.0"), Value::NoSuchObject),
            (oid("1.3.6.1.2.1.1.8.1"), Value::NoSuchInstance),
            (oid("1.3.6.1.2.1.99"), Value::EndOfMibView),
            (oid("1.3.6.1.2.1.1.5.0"), Value::Null),
        ]
    }

    /// Every value type the encoder writes reads back identically with snmp-parser.
    #[test]
    fn community_round_trip_of_every_value_type() {
        for version in [CommunityVersion::V1, CommunityVersion::V2c] {
            let pdu = Pdu {
                pdu_type: PduType::Response,
                request_id: i32::MAX,
                error_status: 0,
                error_index: 0,
                varbinds: every_value(),
            };
            let bytes = community_message(version, b"s3cret", &pdu);
            assert_eq!(peek_version(&bytes), Some(version as u32));
            let m = decode_community(&bytes).unwrap();
            assert_eq!(m.community, b"s3cret");
            assert_eq!(m.pdu.kind, Kind::Response);
            assert_eq!(m.pdu.request_id, i32::MAX as u32);
            assert_eq!(m.pdu.varbinds, every_value());
        }
    }

    #[test]
    fn requests_round_trip() {
        let oids = [oid("1.3.6.1.2.1.2.2.1"), oid("1.3.6.1.2.1.31.1.1.1.1")];
        for pdu in [
            Pdu::get(1, &oids),
            Pdu::get_next(2, &oids),
            Pdu::get_bulk(3, 0, 25, &oids),
        ] {
            let bytes = community_message(CommunityVersion::V2c, b"public", &pdu);
            let (_, m) = SnmpMessage::from_ber(&bytes).unwrap();
            match (&m.pdu, pdu.pdu_type) {
                (SnmpPdu::Bulk(b), PduType::GetBulk) => {
                    assert_eq!((b.req_id, b.non_repeaters, b.max_repetitions), (3, 0, 25));
                    assert_eq!(b.var.len(), 2);
                }
                (SnmpPdu::Generic(g), PduType::Get) => {
                    assert_eq!(g.pdu_type, WirePduType::GetRequest);
                    assert_eq!(g.var.len(), 2);
                }
                (SnmpPdu::Generic(g), PduType::GetNext) => {
                    assert_eq!(g.pdu_type, WirePduType::GetNextRequest);
                }
                other => panic!("unexpected {other:?}"),
            }
            for v in m.vars_iter() {
                assert_eq!(v.val, VarBindValue::Unspecified);
            }
        }
    }

    #[test]
    fn v3_round_trip_plain_and_encrypted() {
        let usm = UsmParams {
            engine_id: vec![0x80, 0x00, 0x1f, 0x88, 0x80, 1, 2, 3, 4],
            engine_boots: 7,
            engine_time: 123_456,
            user_name: b"privuser".to_vec(),
            auth_params: vec![0; 24],
            priv_params: vec![9; 8],
        };
        let pdu = Pdu {
            pdu_type: PduType::Report,
            request_id: 99,
            error_status: 0,
            error_index: 0,
            varbinds: vec![(oid("1.3.6.1.6.3.15.1.1.4.0"), Value::Counter32(3))],
        };
        let scoped = scoped_pdu(b"ctx-engine", b"ctx", &pdu);
        let m = v3_message(
            4242,
            FLAG_AUTH | FLAG_REPORTABLE,
            &usm,
            MsgData::Plaintext(&scoped),
        );
        assert_eq!(peek_version(&m.bytes), Some(3));
        let d = decode_v3(&m.bytes).unwrap();
        assert_eq!(d.msg_id, 4242);
        assert_eq!(d.flags, FLAG_AUTH | FLAG_REPORTABLE);
        assert_eq!(d.usm, usm);
        assert_eq!(d.auth_range, m.auth_range);
        let V3Data::Plain(s) = &d.data else { panic!() };
        assert_eq!(s.context_engine_id, b"ctx-engine");
        assert_eq!(s.context_name, b"ctx");
        assert_eq!(s.pdu.kind, Kind::Report);
        assert_eq!(s.pdu.varbinds, pdu.varbinds);

        let m = v3_message(5, FLAG_AUTH | FLAG_PRIV, &usm, MsgData::Encrypted(&scoped));
        let d = decode_v3(&m.bytes).unwrap();
        assert_eq!(d.auth_range, m.auth_range);
        let V3Data::Encrypted(e) = &d.data else {
            panic!()
        };
        assert_eq!(e, &scoped);
        // "Decrypting" to the plaintext decodes through the reframing path.
        let s2 = decode_decrypted_scoped_pdu(&d, &scoped).unwrap();
        assert_eq!(&s2, s);
        assert!(decode_decrypted_scoped_pdu(&d, b"\x01garbage").is_err());
        assert!(decode_decrypted_scoped_pdu(&d, &[]).is_err());
    }

    /// Thousands of random corruptions of valid v1, v2c and v3 messages, and
    /// random "decrypted" data (what a wrong privacy key yields): errors, never a
    /// panic. (tests/snmpd.rs does the same with real agent answers.)
    #[test]
    fn corrupted_messages_never_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pdu = Pdu {
            pdu_type: PduType::Response,
            request_id: 77,
            error_status: 0,
            error_index: 0,
            varbinds: every_value(),
        };
        let usm = UsmParams {
            engine_id: vec![0x80, 0, 0x1f, 0x88, 4, 1],
            engine_boots: 1,
            engine_time: 2,
            user_name: b"u".to_vec(),
            auth_params: vec![0; 12],
            priv_params: vec![1; 8],
        };
        let scoped = scoped_pdu(b"e", b"", &pdu);
        let samples = [
            community_message(CommunityVersion::V1, b"public", &pdu),
            community_message(CommunityVersion::V2c, b"public", &pdu),
            v3_message(5, FLAG_AUTH, &usm, MsgData::Plaintext(&scoped)).bytes,
            v3_message(6, FLAG_AUTH | FLAG_PRIV, &usm, MsgData::Encrypted(&scoped)).bytes,
        ];
        let outer = decode_v3(&samples[3]).unwrap();
        for sample in &samples {
            for _ in 0..5000 {
                let mut m = sample.clone();
                for _ in 0..1 + rnd() % 4 {
                    let i = (rnd() as usize) % m.len().max(1);
                    match rnd() % 5 {
                        0 if !m.is_empty() => m[i] ^= 1 << (rnd() % 8),
                        1 if !m.is_empty() => m[i] = rnd() as u8,
                        2 => m.truncate(i),
                        3 => m.insert(i.min(m.len()), rnd() as u8),
                        _ if !m.is_empty() => {
                            m[i] = [0x00, 0x7f, 0x80, 0x84, 0xff][(rnd() % 5) as usize]
                        }
                        _ => {}
                    }
                }
                let _ = decode_community(&m);
                let _ = decode_v3(&m);
                let _ = peek_version(&m);
                let _ = decode_decrypted_scoped_pdu(&outer, &m);
            }
        }
        for len in 0..300 {
            let junk: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            assert!(decode_decrypted_scoped_pdu(&outer, &junk).is_err(), "{len}");
        }
    }

    /// What `convert_oid` did before the in-place decoder: snmp-parser's
    /// iterator, kept as the reference.
    fn reference_oid(content: &[u8]) -> Result<Oid, DecodeError> {
        let o = snmp_parser::Oid::new(std::borrow::Cow::Borrowed(content));
        let mut arcs = Vec::new();
        for a in o.iter().ok_or_else(|| err("OID arc larger than 64 bits"))? {
            arcs.push(
                u32::try_from(a).map_err(|_| err(format!("OID arc {a} larger than 32 bits")))?,
            );
        }
        if arcs.len() > MAX_OID_ARCS {
            return Err(err(format!("OID of {} arcs (at most 128)", arcs.len())));
        }
        Ok(Oid(arcs))
    }

    /// The in-place decoder gives what snmp-parser's iterator gave (arcs or the
    /// same error) on edge cases and on random octets.
    #[test]
    fn in_place_oid_decoder_matches_snmp_parser() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![1],
            vec![0x2b],
            vec![0x2b, 6, 1, 2, 1, 2, 2, 1, 10, 1],
            // Multi-octet arcs: 8072, 2^32 - 1, 2^32, 2^35.
            vec![0x2b, 6, 1, 4, 1, 0xbf, 0x08, 3],
            vec![0x2b, 0x8f, 0xff, 0xff, 0xff, 0x7f],
            vec![0x2b, 0x90, 0x80, 0x80, 0x80, 0x00],
            vec![0x2b, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00],
            // Leading 0x80 continuation octets (non-minimal): value unchanged, up
            // to nine octets; ten octets or more are "larger than 64 bits".
            vec![0x2b, 0x80, 0x80, 0x01],
            vec![0x2b, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            vec![
                0x2b, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ],
            vec![0x2b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            // Unterminated last arc (short, and longer than 64 bits).
            vec![0x2b, 6, 0x81],
            vec![0x2b, 6, 0x80],
            vec![
                0x2b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            vec![0x2b, 0x81, 0x81, 0x81, 0x81, 0x81],
            // A first octet with the continuation bit (read alone, as before).
            vec![0x88, 0x37, 3],
            vec![0xff],
            // 128 and 129 arcs.
            std::iter::once(0x2b)
                .chain(std::iter::repeat_n(1, 126))
                .collect(),
            std::iter::once(0x2b)
                .chain(std::iter::repeat_n(1, 127))
                .collect(),
            std::iter::once(0x2b)
                .chain(std::iter::repeat_n(0x81, 200))
                .collect(),
        ];
        for c in &cases {
            assert_eq!(decode_oid(c), reference_oid(c), "{c:02x?}");
        }
        assert_eq!(
            decode_oid(&[0x2b, 6, 1, 4, 1, 0xbf, 0x08, 3]).unwrap(),
            oid("1.3.6.1.4.1.8072.3")
        );
        assert!(decode_oid(&[0x2b, 0x90, 0x80, 0x80, 0x80, 0x00]).is_err());
        assert!(decode_oid(
            &std::iter::once(0x2b)
                .chain(std::iter::repeat_n(1, 127))
                .collect::<Vec<_>>()
        )
        .is_err());
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (rnd() % 24) as usize;
            let c: Vec<u8> = (0..len)
                .map(|_| match rnd() % 4 {
                    0 => 0x80,
                    1 => 0xff,
                    _ => rnd() as u8,
                })
                .collect();
            assert_eq!(decode_oid(&c), reference_oid(&c), "{c:02x?}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x03\x02\x01",
            b"\x04\x00",
            &[0xff; 40],
        ] {
            assert!(decode_community(bad).is_err());
            assert!(decode_v3(bad).is_err());
        }
    }
}
