//! BER encoding of the SNMP messages the plugin sends: SNMPv1 / SNMPv2c community
//! messages (RFC 1157, RFC 3416), SNMPv3 messages with User-based Security Model
//! parameters (RFC 3412 §6, RFC 3414 §2.4) and the PDUs inside them (GetRequest,
//! GetNextRequest, GetBulkRequest, and Response / Report for test agents).
//!
//! Only the definite-length, minimal encodings (the DER subset of BER) are produced,
//! which every agent accepts and which the `snmp-parser` crate (used for everything
//! received) reads back: the tests parse each encoding with it.
//!
//! Why a small encoder of our own: `snmp-parser` only decodes, and the few encoding
//! rules SNMP needs (INTEGER, OCTET STRING, NULL, OBJECT IDENTIFIER, SEQUENCE and
//! the SMI application types) are less code than adapting a general ASN.1 library.

use std::{fmt, str::FromStr};

/// An object identifier, as the list of its arcs (`1.3.6.1.2.1.1.3.0`).
///
/// SNMP limits arcs to 32 bits (RFC 2578 §3.5) and an OID to 128 arcs; both limits
/// are enforced when parsing text and when converting received OIDs.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Oid(pub Vec<u32>);

/// Most arcs an SNMP OID may have (RFC 2578 §3.5).
pub const MAX_OID_ARCS: usize = 128;

impl Oid {
    /// Builds an OID from a slice of arcs.
    pub fn from_slice(arcs: &[u32]) -> Self {
        Oid(arcs.to_vec())
    }

    /// The arcs.
    pub fn arcs(&self) -> &[u32] {
        &self.0
    }

    /// True when `self` lies in the subtree rooted at `root` (or is `root`).
    pub fn starts_with(&self, root: &Oid) -> bool {
        self.0.starts_with(&root.0)
    }

    /// The arcs after `root` (the instance index of a table cell), when `self` is in
    /// its subtree.
    pub fn suffix(&self, root: &Oid) -> Option<&[u32]> {
        self.0.strip_prefix(root.0.as_slice())
    }

    /// This OID with more arcs appended.
    pub fn child(&self, arcs: &[u32]) -> Oid {
        let mut v = self.0.clone();
        v.extend_from_slice(arcs);
        Oid(v)
    }

    /// Checks the rules BER places on the first two arcs (X.690 §8.19.4): at least
    /// two arcs, the first 0, 1 or 2, the second below 40 unless the first is 2.
    pub fn check(&self) -> Result<(), String> {
        match self.0.as_slice() {
            [] | [_] => Err("an OID needs at least two arcs".into()),
            [a, ..] if *a > 2 => Err(format!("the first arc must be 0, 1 or 2, not {a}")),
            [a, b, ..] if *a < 2 && *b >= 40 => Err(format!(
                "the second arc must be below 40 when the first is {a}, not {b}"
            )),
            arcs if arcs.len() > MAX_OID_ARCS => {
                Err(format!("an OID has at most {MAX_OID_ARCS} arcs"))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

impl FromStr for Oid {
    type Err = String;

    /// Parses dotted numeric notation, with or without a leading dot
    /// (`1.3.6.1.2.1.1.5.0`, `.1.3.6.1.2.1.1.5.0`). MIB names are not resolved.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.trim().strip_prefix('.').unwrap_or(s.trim());
        if body.is_empty() {
            return Err("empty OID".into());
        }
        let arcs = body
            .split('.')
            .map(|a| {
                a.parse::<u32>().map_err(|_| {
                    format!("{s:?} is not a numeric OID (expected e.g. 1.3.6.1.2.1.1.3.0)")
                })
            })
            .collect::<Result<Vec<u32>, String>>()?;
        let oid = Oid(arcs);
        oid.check()?;
        Ok(oid)
    }
}

/// A variable's value as carried in a VarBind (RFC 3416 §3, SMIv2 types of RFC
/// 2578 §7.1).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `NULL`: the value of every variable in a request.
    Null,
    /// `INTEGER` (Integer32, enumerations, TruthValue...).
    Integer(i64),
    /// `OCTET STRING` (DisplayString, PhysAddress...).
    OctetString(Vec<u8>),
    /// `OBJECT IDENTIFIER`.
    ObjectId(Oid),
    /// `IpAddress` ([APPLICATION 0], four octets).
    IpAddress([u8; 4]),
    /// `Counter32` ([APPLICATION 1]).
    Counter32(u32),
    /// `Gauge32` / `Unsigned32` ([APPLICATION 2]).
    Gauge32(u32),
    /// `TimeTicks` ([APPLICATION 3]), hundredths of a second.
    TimeTicks(u32),
    /// `Opaque` ([APPLICATION 4]).
    Opaque(Vec<u8>),
    /// `Counter64` ([APPLICATION 6]), SNMPv2 only.
    Counter64(u64),
    /// `noSuchObject` exception ([0] IMPLICIT NULL).
    NoSuchObject,
    /// `noSuchInstance` exception ([1] IMPLICIT NULL).
    NoSuchInstance,
    /// `endOfMibView` exception ([2] IMPLICIT NULL).
    EndOfMibView,
}

impl Value {
    /// True for the three SNMPv2 exceptions (no value was returned).
    pub fn is_exception(&self) -> bool {
        matches!(
            self,
            Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView
        )
    }
}

/// PDU types (RFC 3416 §3), with their context-specific tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PduType {
    /// GetRequest-PDU, `[0]`.
    Get,
    /// GetNextRequest-PDU, `[1]`.
    GetNext,
    /// Response-PDU, `[2]`.
    Response,
    /// GetBulkRequest-PDU, `[5]`: `error_status` carries non-repeaters and
    /// `error_index` max-repetitions.
    GetBulk,
    /// Report-PDU, `[8]`.
    Report,
}

impl PduType {
    fn tag(self) -> u8 {
        0xA0 | match self {
            PduType::Get => 0,
            PduType::GetNext => 1,
            PduType::Response => 2,
            PduType::GetBulk => 5,
            PduType::Report => 8,
        }
    }
}

/// One PDU. For GetBulk, `error_status` is non-repeaters and `error_index`
/// max-repetitions (the same positions on the wire, RFC 3416 §3).
#[derive(Clone, Debug, PartialEq)]
pub struct Pdu {
    /// Which PDU.
    pub pdu_type: PduType,
    /// request-id; kept in 0..=i32::MAX so every decoder reads it as unsigned.
    pub request_id: i32,
    /// error-status (or non-repeaters).
    pub error_status: u32,
    /// error-index (or max-repetitions).
    pub error_index: u32,
    /// The variable bindings.
    pub varbinds: Vec<(Oid, Value)>,
}

impl Pdu {
    /// A GetRequest for `oids`.
    pub fn get(request_id: i32, oids: &[Oid]) -> Self {
        Self::request(PduType::Get, request_id, 0, 0, oids)
    }

    /// A GetNextRequest for `oids`.
    pub fn get_next(request_id: i32, oids: &[Oid]) -> Self {
        Self::request(PduType::GetNext, request_id, 0, 0, oids)
    }

    /// A GetBulkRequest (RFC 3416 §4.2.3).
    pub fn get_bulk(
        request_id: i32,
        non_repeaters: u32,
        max_repetitions: u32,
        oids: &[Oid],
    ) -> Self {
        Self::request(
            PduType::GetBulk,
            request_id,
            non_repeaters,
            max_repetitions,
            oids,
        )
    }

    fn request(t: PduType, request_id: i32, a: u32, b: u32, oids: &[Oid]) -> Self {
        Pdu {
            pdu_type: t,
            request_id,
            error_status: a,
            error_index: b,
            varbinds: oids.iter().map(|o| (o.clone(), Value::Null)).collect(),
        }
    }
}

/// Appends a BER definite length in its minimal form (X.690 §8.1.3).
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A complete TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// The length of the tag and length octets of a TLV with `len` content octets.
fn header_len(len: usize) -> usize {
    let mut v = Vec::with_capacity(6);
    push_len(&mut v, len);
    1 + v.len()
}

/// An INTEGER TLV (minimal two's complement, X.690 §8.3).
pub fn integer(v: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    put_integer(&mut out, v);
    out
}

/// An OCTET STRING TLV.
pub fn octet_string(v: &[u8]) -> Vec<u8> {
    tlv(0x04, v)
}

/// A SEQUENCE TLV around already encoded elements.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// Appends the content octets of an OBJECT IDENTIFIER (X.690 §8.19).
fn put_oid_content(out: &mut Vec<u8>, oid: &Oid) {
    fn push_base128(out: &mut Vec<u8>, mut v: u64) {
        let mut tmp = [0u8; 10];
        let mut n = 0;
        loop {
            tmp[n] = (v & 0x7F) as u8;
            n += 1;
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            out.push(tmp[i] | if i > 0 { 0x80 } else { 0 });
        }
    }
    match oid.arcs() {
        [] => {}
        [a] => push_base128(out, u64::from(*a) * 40),
        [a, b, rest @ ..] => {
            push_base128(out, u64::from(*a) * 40 + u64::from(*b));
            for r in rest {
                push_base128(out, u64::from(*r));
            }
        }
    }
}

/// Puts the tag and length of a TLV before its content, which was appended from
/// `start` on: the single-buffer way to nest TLVs (content lengths are only known
/// once written), with no intermediate vector per element.
fn wrap(out: &mut Vec<u8>, start: usize, tag: u8) {
    let len = out.len() - start;
    let mut header = [0u8; 1 + 1 + std::mem::size_of::<usize>()];
    header[0] = tag;
    let n = if len < 0x80 {
        header[1] = len as u8;
        2
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        header[1] = 0x80 | (bytes.len() - skip) as u8;
        header[2..2 + bytes.len() - skip].copy_from_slice(&bytes[skip..]);
        2 + bytes.len() - skip
    };
    out.extend_from_slice(&header[..n]);
    out[start..].rotate_right(n);
}

/// Appends a TLV with `content`.
fn put_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    push_len(out, content.len());
    out.extend_from_slice(content);
}

/// Appends an INTEGER TLV in minimal two's complement (X.690 §8.3).
fn put_integer(out: &mut Vec<u8>, v: i64) {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    put_tlv(out, 0x02, &bytes[start..]);
}

/// Appends an unsigned TLV of the SMI application types: minimal, with a leading
/// zero octet when the top bit is set (as Counter64 up to 2^64-1 needs).
fn put_uint(out: &mut Vec<u8>, tag: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    if bytes[skip] & 0x80 != 0 {
        let mut c = [0u8; 9];
        c[1..9 - skip].copy_from_slice(&bytes[skip..]);
        put_tlv(out, tag, &c[..9 - skip]);
    } else {
        put_tlv(out, tag, &bytes[skip..]);
    }
}

/// Appends an OBJECT IDENTIFIER TLV.
fn put_oid(out: &mut Vec<u8>, oid: &Oid) {
    let start = out.len();
    put_oid_content(out, oid);
    wrap(out, start, 0x06);
}

/// Appends the TLV of a VarBind value.
fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => put_tlv(out, 0x05, &[]),
        Value::Integer(i) => put_integer(out, *i),
        Value::OctetString(s) => put_tlv(out, 0x04, s),
        Value::ObjectId(o) => put_oid(out, o),
        Value::IpAddress(a) => put_tlv(out, 0x40, a),
        Value::Counter32(c) => put_uint(out, 0x41, u64::from(*c)),
        Value::Gauge32(g) => put_uint(out, 0x42, u64::from(*g)),
        Value::TimeTicks(t) => put_uint(out, 0x43, u64::from(*t)),
        Value::Opaque(o) => put_tlv(out, 0x44, o),
        Value::Counter64(c) => put_uint(out, 0x46, *c),
        Value::NoSuchObject => put_tlv(out, 0x80, &[]),
        Value::NoSuchInstance => put_tlv(out, 0x81, &[]),
        Value::EndOfMibView => put_tlv(out, 0x82, &[]),
    }
}

/// Appends a PDU TLV with `request_id` in place of the PDU's own.
fn put_pdu(out: &mut Vec<u8>, p: &Pdu, request_id: i32) {
    let start = out.len();
    put_integer(out, i64::from(request_id));
    put_integer(out, i64::from(p.error_status));
    put_integer(out, i64::from(p.error_index));
    let list = out.len();
    for (o, v) in &p.varbinds {
        let vb = out.len();
        put_oid(out, o);
        put_value(out, v);
        wrap(out, vb, 0x30);
    }
    wrap(out, list, 0x30);
    wrap(out, start, p.pdu_type.tag());
}

/// An OBJECT IDENTIFIER TLV.
pub fn object_id(oid: &Oid) -> Vec<u8> {
    let mut out = Vec::with_capacity(oid.arcs().len() + 6);
    put_oid(&mut out, oid);
    out
}

/// The TLV of a VarBind value.
pub fn value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    put_value(&mut out, v);
    out
}

/// A PDU TLV (RFC 3416 §3).
pub fn pdu(p: &Pdu) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_pdu(&mut out, p, p.request_id);
    out
}

/// Community-based message versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommunityVersion {
    /// SNMPv1, `version-1(0)`.
    V1,
    /// SNMPv2c, `version-2c(1)`.
    V2c,
}

/// A complete SNMPv1 or SNMPv2c message (RFC 1157 §4, RFC 1901 §3).
pub fn community_message(version: CommunityVersion, community: &[u8], p: &Pdu) -> Vec<u8> {
    community_message_with_id(version, community, p, p.request_id)
}

/// [`community_message`] with `request_id` in place of the PDU's own: what each
/// attempt of a request sends, written into one buffer without copying the PDU
/// (its OIDs) or building a vector per element.
pub fn community_message_with_id(
    version: CommunityVersion,
    community: &[u8],
    p: &Pdu,
    request_id: i32,
) -> Vec<u8> {
    let v = match version {
        CommunityVersion::V1 => 0,
        CommunityVersion::V2c => 1,
    };
    let mut out = Vec::with_capacity(
        32 + community.len()
            + p.varbinds
                .iter()
                .map(|(o, _)| o.arcs().len() + 8)
                .sum::<usize>(),
    );
    put_integer(&mut out, v);
    put_tlv(&mut out, 0x04, community);
    put_pdu(&mut out, p, request_id);
    wrap(&mut out, 0, 0x30);
    out
}

/// A ScopedPDU (RFC 3412 §6): context engine id, context name and the PDU.
pub fn scoped_pdu(context_engine_id: &[u8], context_name: &[u8], p: &Pdu) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + context_engine_id.len() + context_name.len());
    put_tlv(&mut out, 0x04, context_engine_id);
    put_tlv(&mut out, 0x04, context_name);
    put_pdu(&mut out, p, p.request_id);
    wrap(&mut out, 0, 0x30);
    out
}

/// msgFlags bit: the message is authenticated.
pub const FLAG_AUTH: u8 = 0x01;
/// msgFlags bit: the scoped PDU is encrypted.
pub const FLAG_PRIV: u8 = 0x02;
/// msgFlags bit: the receiver should answer errors with a Report.
pub const FLAG_REPORTABLE: u8 = 0x04;

/// Largest message this implementation accepts (msgMaxSize; the UDP payload limit).
pub const MSG_MAX_SIZE: i64 = 65507;

/// The USM security parameters of an SNMPv3 message (RFC 3414 §2.4).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UsmParams {
    /// msgAuthoritativeEngineID.
    pub engine_id: Vec<u8>,
    /// msgAuthoritativeEngineBoots.
    pub engine_boots: u32,
    /// msgAuthoritativeEngineTime.
    pub engine_time: u32,
    /// msgUserName.
    pub user_name: Vec<u8>,
    /// msgAuthenticationParameters (zeros of the MAC's length while signing).
    pub auth_params: Vec<u8>,
    /// msgPrivacyParameters (the salt).
    pub priv_params: Vec<u8>,
}

/// What follows the security parameters: a plaintext ScopedPDU or its encryption.
#[derive(Clone, Copy, Debug)]
pub enum MsgData<'a> {
    /// An encoded ScopedPDU (from [`scoped_pdu`]).
    Plaintext(&'a [u8]),
    /// The encrypted ScopedPDU, sent as an OCTET STRING.
    Encrypted(&'a [u8]),
}

/// An encoded SNMPv3 message and where its authentication parameters are, so the
/// caller can sign the whole message and write the MAC in place (RFC 3414 §3.1.1).
#[derive(Clone, Debug)]
pub struct V3Message {
    /// The message.
    pub bytes: Vec<u8>,
    /// Byte range of msgAuthenticationParameters' content inside `bytes`.
    pub auth_range: std::ops::Range<usize>,
}

/// A complete SNMPv3 message with the USM (RFC 3412 §6, security model 3).
pub fn v3_message(msg_id: i32, flags: u8, usm: &UsmParams, data: MsgData<'_>) -> V3Message {
    let version = integer(3);
    let header = header_data(msg_id, flags);
    let before_auth = [
        octet_string(&usm.engine_id),
        integer(i64::from(usm.engine_boots)),
        integer(i64::from(usm.engine_time)),
        octet_string(&usm.user_name),
    ]
    .concat();
    let auth = octet_string(&usm.auth_params);
    let privacy = octet_string(&usm.priv_params);
    let usm_content_len = before_auth.len() + auth.len() + privacy.len();
    let usm_seq = sequence(&[&before_auth, &auth, &privacy]);
    let sec_params = octet_string(&usm_seq);
    let data = match data {
        MsgData::Plaintext(scoped) => scoped.to_vec(),
        MsgData::Encrypted(enc) => octet_string(enc),
    };
    let body = [version, header, sec_params, data].concat();
    // Offsets: outer header, version, header data, the OCTET STRING header of the
    // security parameters, the USM SEQUENCE header, the fields before the MAC and
    // the MAC's own TLV header.
    let start = header_len(body.len())
        + 3 // version: 02 01 03
        + header_data_len(msg_id, flags)
        + header_len(usm_seq.len())
        + header_len(usm_content_len)
        + before_auth.len()
        + header_len(usm.auth_params.len());
    V3Message {
        bytes: tlv(0x30, &body),
        auth_range: start..start + usm.auth_params.len(),
    }
}

/// The encoded msgGlobalData (RFC 3412 §6).
fn header_data(msg_id: i32, flags: u8) -> Vec<u8> {
    sequence(&[
        &integer(i64::from(msg_id)),
        &integer(MSG_MAX_SIZE),
        &octet_string(&[flags]),
        &integer(3),
    ])
}

fn header_data_len(msg_id: i32, flags: u8) -> usize {
    header_data(msg_id, flags).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> Oid {
        s.parse().unwrap()
    }

    /// The encoder as it was before writing into one buffer (a vector per
    /// element, concatenated): the reference the single-buffer one must match
    /// byte for byte.
    mod reference {
        use super::super::{
            integer, octet_string, sequence, tlv, CommunityVersion, Oid, Pdu, Value,
        };

        fn uint_content(v: u64) -> Vec<u8> {
            let bytes = v.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
            let mut out = Vec::new();
            if bytes[skip] & 0x80 != 0 {
                out.push(0);
            }
            out.extend_from_slice(&bytes[skip..]);
            out
        }

        fn oid_content(oid: &Oid) -> Vec<u8> {
            fn push_base128(out: &mut Vec<u8>, mut v: u64) {
                let mut tmp = Vec::new();
                loop {
                    tmp.push((v & 0x7F) as u8);
                    v >>= 7;
                    if v == 0 {
                        break;
                    }
                }
                for i in (0..tmp.len()).rev() {
                    out.push(tmp[i] | if i > 0 { 0x80 } else { 0 });
                }
            }
            let mut out = Vec::new();
            match oid.arcs() {
                [] => {}
                [a] => push_base128(&mut out, u64::from(*a) * 40),
                [a, b, rest @ ..] => {
                    push_base128(&mut out, u64::from(*a) * 40 + u64::from(*b));
                    for r in rest {
                        push_base128(&mut out, u64::from(*r));
                    }
                }
            }
            out
        }

        fn value(v: &Value) -> Vec<u8> {
            match v {
                Value::Null => tlv(0x05, &[]),
                Value::Integer(i) => integer(*i),
                Value::OctetString(s) => octet_string(s),
                Value::ObjectId(o) => tlv(0x06, &oid_content(o)),
                Value::IpAddress(a) => tlv(0x40, a),
                Value::Counter32(c) => tlv(0x41, &uint_content(u64::from(*c))),
                Value::Gauge32(g) => tlv(0x42, &uint_content(u64::from(*g))),
                Value::TimeTicks(t) => tlv(0x43, &uint_content(u64::from(*t))),
                Value::Opaque(o) => tlv(0x44, o),
                Value::Counter64(c) => tlv(0x46, &uint_content(*c)),
                Value::NoSuchObject => tlv(0x80, &[]),
                Value::NoSuchInstance => tlv(0x81, &[]),
                Value::EndOfMibView => tlv(0x82, &[]),
            }
        }

        pub fn pdu(p: &Pdu) -> Vec<u8> {
            let varbinds: Vec<u8> = p
                .varbinds
                .iter()
                .flat_map(|(o, v)| sequence(&[&tlv(0x06, &oid_content(o)), &value(v)]))
                .collect();
            let content = [
                integer(i64::from(p.request_id)),
                integer(i64::from(p.error_status)),
                integer(i64::from(p.error_index)),
                tlv(0x30, &varbinds),
            ]
            .concat();
            tlv(p.pdu_type.tag(), &content)
        }

        pub fn community_message(version: CommunityVersion, community: &[u8], p: &Pdu) -> Vec<u8> {
            let v = match version {
                CommunityVersion::V1 => 0,
                CommunityVersion::V2c => 1,
            };
            sequence(&[&integer(v), &octet_string(community), &pdu(p)])
        }

        pub fn scoped_pdu(engine: &[u8], name: &[u8], p: &Pdu) -> Vec<u8> {
            sequence(&[&octet_string(engine), &octet_string(name), &pdu(p)])
        }
    }

    /// Requests and responses of every size (one-octet, two-octet and
    /// three-octet lengths, every value type, extreme ids) encode exactly as the
    /// previous encoder did.
    #[test]
    fn single_buffer_encoding_matches_the_reference() {
        let big = Value::OctetString(vec![0x5a; 70_000]);
        let every = vec![
            (
                oid("1.3.6.1.2.1.1.1.0"),
                Value::OctetString(b"Linux".to_vec()),
            ),
            (
                oid("1.3.6.1.2.1.1.2.0"),
                Value::ObjectId(oid("1.3.6.1.4.1.8072.3.2.10")),
            ),
            (oid("1.3.6.1.2.1.1.3.0"), Value::TimeTicks(u32::MAX)),
            (oid("1.3.6.1.2.1.2.2.1.8.1"), Value::Integer(-129)),
            (oid("1.3.6.1.2.1.2.2.1.10.1"), Value::Counter32(0x80)),
            (oid("1.3.6.1.2.1.2.2.1.5.1"), Value::Gauge32(0)),
            (oid("1.3.6.1.2.1.31.1.1.1.6.1"), Value::Counter64(u64::MAX)),
            (
                oid("1.3.6.1.2.1.4.20.1.1.127.0.0.1"),
                Value::IpAddress([127, 0, 0, 1]),
            ),
            (
                oid("1.3.6.1.4.1.2021.10.1.6.1"),
                Value::Opaque(vec![0x9f, 0x78]),
            ),
            (oid("2.999.4294967295.1"), Value::Null),
            (oid("1.3.6.1.2.1.1.9.0"), Value::NoSuchObject),
            (oid("1.3.6.1.2.1.1.8.1"), Value::NoSuchInstance),
            (oid("1.3.6.1.2.1.99"), Value::EndOfMibView),
        ];
        let oids: Vec<Oid> = every.iter().map(|(o, _)| o.clone()).collect();
        let pdus = [
            Pdu::get(0, &oids[..1]),
            Pdu::get(i32::MAX, &oids),
            Pdu::get_next(-1, &oids[2..5]),
            Pdu::get_bulk(1234, 0, 25, &oids[..1]),
            Pdu::get_bulk(99, 3, 0x7FFF_FFFF, &oids),
            Pdu {
                pdu_type: PduType::Response,
                request_id: 7,
                error_status: 2,
                error_index: 200,
                varbinds: every.clone(),
            },
            Pdu {
                pdu_type: PduType::Report,
                request_id: 8,
                error_status: 0,
                error_index: 0,
                varbinds: vec![
                    (oid("1.3.6.1.6.3.15.1.1.4.0"), Value::Counter32(3)),
                    (oid("1.3.6.1.2.1.1.1.0"), big),
                ],
            },
            Pdu {
                pdu_type: PduType::Response,
                request_id: 9,
                error_status: 0,
                error_index: 0,
                varbinds: (0..40)
                    .map(|i| {
                        (
                            oid(&format!("1.3.6.1.2.1.2.2.1.{i}.1")),
                            Value::Counter32(i),
                        )
                    })
                    .collect(),
            },
        ];
        for p in &pdus {
            assert_eq!(pdu(p), reference::pdu(p), "{p:?}");
            for v in [CommunityVersion::V1, CommunityVersion::V2c] {
                for c in [&b""[..], b"public", &[b'c'; 300]] {
                    let want = reference::community_message(v, c, p);
                    assert_eq!(community_message(v, c, p), want);
                    let other = Pdu {
                        request_id: 4321,
                        ..p.clone()
                    };
                    assert_eq!(
                        community_message_with_id(v, c, p, 4321),
                        reference::community_message(v, c, &other)
                    );
                }
            }
            assert_eq!(
                scoped_pdu(b"engine", b"ctx", p),
                reference::scoped_pdu(b"engine", b"ctx", p)
            );
        }
        for (_, v) in &every {
            let p = Pdu {
                pdu_type: PduType::Response,
                request_id: 1,
                error_status: 0,
                error_index: 0,
                varbinds: vec![(oid("1.3.6"), v.clone())],
            };
            assert_eq!(pdu(&p), reference::pdu(&p));
        }
    }

    #[test]
    fn lengths_are_minimal() {
        let mut v = Vec::new();
        push_len(&mut v, 0x7F);
        assert_eq!(v, [0x7F]);
        v.clear();
        push_len(&mut v, 0x80);
        assert_eq!(v, [0x81, 0x80]);
        v.clear();
        push_len(&mut v, 0x1234);
        assert_eq!(v, [0x82, 0x12, 0x34]);
        assert_eq!(header_len(5), 2);
        assert_eq!(header_len(300), 4);
    }

    #[test]
    fn integers_are_minimal_twos_complement() {
        assert_eq!(integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer(127), [0x02, 0x01, 0x7F]);
        assert_eq!(integer(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(256), [0x02, 0x02, 0x01, 0x00]);
        assert_eq!(integer(-1), [0x02, 0x01, 0xFF]);
        assert_eq!(integer(-128), [0x02, 0x01, 0x80]);
        assert_eq!(integer(-129), [0x02, 0x02, 0xFF, 0x7F]);
        assert_eq!(
            integer(i64::from(i32::MAX)),
            [0x02, 0x04, 0x7F, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            value(&Value::Counter32(u32::MAX)),
            [0x41, 0x05, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            value(&Value::Counter64(u64::MAX)),
            [0x46, 0x09, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(value(&Value::Gauge32(0)), [0x42, 0x01, 0x00]);
    }

    #[test]
    fn oids_parse_print_and_encode() {
        let o = oid(".1.3.6.1.2.1.1.3.0");
        assert_eq!(o.to_string(), "1.3.6.1.2.1.1.3.0");
        assert_eq!(
            object_id(&o),
            [0x06, 0x08, 0x2B, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00]
        );
        // Arcs of 128 and above take several base-128 digits (X.690 §8.19.2):
        // 8072 = 63 * 128 + 8.
        assert_eq!(
            object_id(&oid("1.3.6.1.4.1.8072.3.2.10")),
            [0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0xBF, 0x08, 0x03, 0x02, 0x0A]
        );
        assert_eq!(object_id(&oid("2.999.3")), [0x06, 0x03, 0x88, 0x37, 0x03]);
        assert!("".parse::<Oid>().is_err());
        assert!("1".parse::<Oid>().is_err());
        assert!("3.1".parse::<Oid>().is_err());
        assert!("1.40".parse::<Oid>().is_err());
        assert!("1.3.x".parse::<Oid>().is_err());
        assert!("1.3.4294967296".parse::<Oid>().is_err());
        assert!(oid("1.3.6.1.2").starts_with(&oid("1.3.6")));
        assert_eq!(oid("1.3.6.1.2").suffix(&oid("1.3.6")), Some(&[1u32, 2][..]));
        assert_eq!(oid("1.3.6.1.2").suffix(&oid("1.3.7")), None);
    }

    /// A v2c GetRequest for sysUpTime.0 with community `public`, byte for byte as
    /// RFC 3416 and RFC 1901 lay it out (the same bytes net-snmp's `snmpget -v2c`
    /// sends for request-id 0x1234).
    #[test]
    fn golden_v2c_get() {
        let msg = community_message(
            CommunityVersion::V2c,
            b"public",
            &Pdu::get(0x1234, &[oid("1.3.6.1.2.1.1.3.0")]),
        );
        let expected: &[u8] = &[
            0x30, 0x27, // Message SEQUENCE
            0x02, 0x01, 0x01, // version-2c
            0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', // community
            0xA0, 0x1A, // GetRequest-PDU
            0x02, 0x02, 0x12, 0x34, // request-id
            0x02, 0x01, 0x00, // error-status
            0x02, 0x01, 0x00, // error-index
            0x30, 0x0E, // VarBindList
            0x30, 0x0C, // VarBind
            0x06, 0x08, 0x2B, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00, // name
            0x05, 0x00, // unSpecified
        ];
        assert_eq!(msg, expected);
    }

    #[test]
    fn v3_auth_range_points_at_the_mac_placeholder() {
        let usm = UsmParams {
            engine_id: vec![0x80, 0, 0x1F, 0x88, 4],
            engine_boots: 3,
            engine_time: 1000,
            user_name: b"user".to_vec(),
            auth_params: vec![0xAB; 12],
            priv_params: vec![0xCD; 8],
        };
        let scoped = scoped_pdu(b"", b"", &Pdu::get(1, &[oid("1.3.6.1.2.1.1.5.0")]));
        let m = v3_message(
            7,
            FLAG_AUTH | FLAG_REPORTABLE,
            &usm,
            MsgData::Plaintext(&scoped),
        );
        assert_eq!(&m.bytes[m.auth_range.clone()], &[0xAB; 12]);
        // With a long payload the outer length takes more octets; the range follows.
        let many: Vec<Oid> = (0..40)
            .map(|i| oid(&format!("1.3.6.1.2.1.2.2.1.{i}")))
            .collect();
        let scoped = scoped_pdu(b"", b"", &Pdu::get(1, &many));
        let m = v3_message(7, FLAG_AUTH, &usm, MsgData::Encrypted(&scoped));
        assert!(m.bytes.len() > 300);
        assert_eq!(&m.bytes[m.auth_range.clone()], &[0xAB; 12]);
    }
}
