//! The cryptography of SNMPv3's User-based Security Model.
//!
//! - Password to key and key localisation: RFC 3414 §A.2 (1 MiB of the repeated
//!   password hashed into Ku, then `Kul = H(Ku || engineID || Ku)`), with the SHA-2
//!   hashes of RFC 7860 §9.3.
//! - Authentication: HMAC-SHA-96 (RFC 3414 §7: HMAC-SHA-1 truncated to 12 octets) and
//!   the RFC 7860 protocols usmHMAC128SHA224 (16 octets), usmHMAC192SHA256 (24),
//!   usmHMAC256SHA384 (32) and usmHMAC384SHA512 (48), each keyed with the whole
//!   localized key.
//! - Privacy: usmAesCfb128Protocol (RFC 3826): AES-128 in 128-bit CFB mode, key = the
//!   first 16 octets of the localized privacy key, IV = engineBoots (4 octets) ||
//!   engineTime (4 octets) || the 8-octet salt sent as msgPrivacyParameters.
//!
//! MD5 and DES are deliberately not offered: both are broken and RFC 7860 / current
//! net-snmp guidance recommend SHA-2 and AES.
//!
//! Test vectors: RFC 3414 §A.3.2 (SHA-1) and keys net-snmp 5.9's `snmpd` derived for
//! its `createUser` lines (SHA-224/256/384/512 and AES), copied from its persistent
//! `usmUser` entries.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// An authentication protocol (the `auth_protocol` config key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthProtocol {
    /// usmHMACSHAAuthProtocol (HMAC-SHA-96).
    Sha1,
    /// usmHMAC128SHA224AuthProtocol.
    Sha224,
    /// usmHMAC192SHA256AuthProtocol.
    Sha256,
    /// usmHMAC256SHA384AuthProtocol.
    Sha384,
    /// usmHMAC384SHA512AuthProtocol.
    Sha512,
}

impl AuthProtocol {
    /// Length of msgAuthenticationParameters (the truncated MAC).
    pub fn mac_len(self) -> usize {
        match self {
            AuthProtocol::Sha1 => 12,
            AuthProtocol::Sha224 => 16,
            AuthProtocol::Sha256 => 24,
            AuthProtocol::Sha384 => 32,
            AuthProtocol::Sha512 => 48,
        }
    }

    /// The name used in the config and in messages.
    pub fn name(self) -> &'static str {
        match self {
            AuthProtocol::Sha1 => "SHA",
            AuthProtocol::Sha224 => "SHA224",
            AuthProtocol::Sha256 => "SHA256",
            AuthProtocol::Sha384 => "SHA384",
            AuthProtocol::Sha512 => "SHA512",
        }
    }

    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn h<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            AuthProtocol::Sha1 => h::<Sha1>(parts),
            AuthProtocol::Sha224 => h::<Sha224>(parts),
            AuthProtocol::Sha256 => h::<Sha256>(parts),
            AuthProtocol::Sha384 => h::<Sha384>(parts),
            AuthProtocol::Sha512 => h::<Sha512>(parts),
        }
    }
}

/// A privacy protocol (the `priv_protocol` config key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrivProtocol {
    /// usmAesCfb128Protocol (RFC 3826).
    Aes128,
}

/// Shortest password RFC 3414 §11.2 and net-snmp accept.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Ku: the password repeated to 1,048,576 octets and hashed (RFC 3414 §A.2.1/A.2.2).
pub fn password_to_key(proto: AuthProtocol, password: &[u8]) -> Vec<u8> {
    const TOTAL: usize = 1 << 20;
    if password.is_empty() {
        return proto.hash(&[]);
    }
    fn digest_of<D: Digest>(password: &[u8]) -> Vec<u8> {
        let mut d = D::new();
        let mut buf = [0u8; 64];
        let mut pos = 0usize;
        let mut done = 0usize;
        while done < TOTAL {
            for b in buf.iter_mut() {
                *b = password[pos % password.len()];
                pos += 1;
            }
            d.update(buf);
            done += buf.len();
        }
        d.finalize().to_vec()
    }
    match proto {
        AuthProtocol::Sha1 => digest_of::<Sha1>(password),
        AuthProtocol::Sha224 => digest_of::<Sha224>(password),
        AuthProtocol::Sha256 => digest_of::<Sha256>(password),
        AuthProtocol::Sha384 => digest_of::<Sha384>(password),
        AuthProtocol::Sha512 => digest_of::<Sha512>(password),
    }
}

/// Kul: `H(Ku || engineID || Ku)` (RFC 3414 §2.6).
pub fn localize_key(proto: AuthProtocol, ku: &[u8], engine_id: &[u8]) -> Vec<u8> {
    proto.hash(&[ku, engine_id, ku])
}

/// The truncated HMAC of `msg` (whose msgAuthenticationParameters are zeros).
pub fn sign(proto: AuthProtocol, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8], len: usize) -> Vec<u8> {
        // HMAC accepts keys of any length.
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("any key length");
        m.update(msg);
        m.finalize().into_bytes()[..len].to_vec()
    }
    let len = proto.mac_len();
    match proto {
        AuthProtocol::Sha1 => mac::<Hmac<Sha1>>(key, msg, len),
        AuthProtocol::Sha224 => mac::<Hmac<Sha224>>(key, msg, len),
        AuthProtocol::Sha256 => mac::<Hmac<Sha256>>(key, msg, len),
        AuthProtocol::Sha384 => mac::<Hmac<Sha384>>(key, msg, len),
        AuthProtocol::Sha512 => mac::<Hmac<Sha512>>(key, msg, len),
    }
}

/// Checks a received MAC in constant time. `msg_zeroed` is the message with its
/// msgAuthenticationParameters replaced by zeros.
pub fn verify(proto: AuthProtocol, key: &[u8], msg_zeroed: &[u8], mac: &[u8]) -> bool {
    if mac.len() != proto.mac_len() {
        return false;
    }
    let expected = sign(proto, key, msg_zeroed);
    // Constant-time comparison: no early exit on the first differing octet.
    expected
        .iter()
        .zip(mac)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

type AesCfbEnc = cfb_mode::Encryptor<aes::Aes128>;
type AesCfbDec = cfb_mode::Decryptor<aes::Aes128>;

fn aes_iv(boots: u32, time: u32, salt: &[u8; 8]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&boots.to_be_bytes());
    iv[4..8].copy_from_slice(&time.to_be_bytes());
    iv[8..].copy_from_slice(salt);
    iv
}

/// Encrypts a ScopedPDU with AES-128-CFB (RFC 3826 §3.1.3). `key` is the localized
/// privacy key (at least 16 octets; the first 16 are used).
pub fn aes_encrypt(key: &[u8], boots: u32, time: u32, salt: &[u8; 8], data: &[u8]) -> Vec<u8> {
    let mut buf = data.to_vec();
    AesCfbEnc::new(key[..16].into(), &aes_iv(boots, time, salt).into()).encrypt(&mut buf);
    buf
}

/// Decrypts an encryptedPDU (RFC 3826 §3.1.4). `None` when the salt or key has the
/// wrong length (a malformed message); a wrong key yields garbage, which the caller
/// notices when the result does not decode.
pub fn aes_decrypt(key: &[u8], boots: u32, time: u32, salt: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let salt: &[u8; 8] = salt.try_into().ok()?;
    let key = key.get(..16)?;
    let mut buf = data.to_vec();
    AesCfbDec::new(key.into(), &aes_iv(boots, time, salt).into()).decrypt(&mut buf);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3414 §A.3.2: password "maplesyrup", engine ID 00..02.
    #[test]
    fn rfc3414_sha1_vectors() {
        let ku = password_to_key(AuthProtocol::Sha1, b"maplesyrup");
        assert_eq!(ku, hex("9fb5cc0381497b3793528939ff788d5d79145211"));
        let kul = localize_key(AuthProtocol::Sha1, &ku, &hex("000000000000000000000002"));
        assert_eq!(kul, hex("6695febc9288e36282235fc7151f128497b38f3f"));
    }

    /// Keys net-snmp 5.9.3's snmpd stored for `createUser uN SHA-xxx "maplesyrup" AES
    /// "maplesyrup"` with engine ID 80001f8880c71ae91778ee066b00000000.
    #[test]
    fn net_snmp_sha2_and_aes_vectors() {
        let engine = hex("80001f8880c71ae91778ee066b00000000");
        let cases = [
            (
                AuthProtocol::Sha1,
                "c4bcdbaa3ff1a173428a972f1236f167fc072f17",
            ),
            (
                AuthProtocol::Sha224,
                "bc0b9586f05a983d2a47b772872d485c7adbe88163dff0e4c21d4e5f",
            ),
            (
                AuthProtocol::Sha384,
                "ba2fdd9b6ae7f551e973374d9115f93f8714545c69a6bb9f166fa688cf1b5b419f6e626166599c3b05d68a416d4f9e83",
            ),
            (
                AuthProtocol::Sha512,
                "0dd6eb33ff4759b746cb77d598b5f526fb3556ad71e4b3e21e4a3f37b4952fe46e212a620c5bd3084a3d9c2f0ad2ab879cb333f23adbaab25df7bbba5a38182f",
            ),
        ];
        for (proto, want) in cases {
            let kul = localize_key(proto, &password_to_key(proto, b"maplesyrup"), &engine);
            assert_eq!(kul, hex(want), "{proto:?}");
        }
        // Another engine: SHA-256 "authpass456" and its AES key from "privpass789"
        // (the privacy key is localized with the auth hash, then cut to 16 octets).
        let engine = hex("80001f888061f3941c2dee066b00000000");
        let k = localize_key(
            AuthProtocol::Sha256,
            &password_to_key(AuthProtocol::Sha256, b"authpass456"),
            &engine,
        );
        assert_eq!(
            k,
            hex("4beecfbebd02be53d81c9cbc4dc0dcfa851a52f4ef2a05bfbc05a62f76a228b3")
        );
        let p = localize_key(
            AuthProtocol::Sha256,
            &password_to_key(AuthProtocol::Sha256, b"privpass789"),
            &engine,
        );
        assert_eq!(p[..16], hex("eb44e662dff0a044c545d2b23b1ce692"));
        let k = localize_key(
            AuthProtocol::Sha1,
            &password_to_key(AuthProtocol::Sha1, b"authpass123"),
            &engine,
        );
        assert_eq!(k, hex("d7f04b6b0ea6b2687b2b8d6121e0354ea6f515e8"));
    }

    /// RFC 2202 §3 test case 2 for HMAC-SHA-1, truncated to 96 bits; RFC 4231 test
    /// case 2 for the SHA-2 HMACs, truncated as RFC 7860 §4.2.
    #[test]
    fn hmac_vectors_truncated() {
        let (key, msg) = (b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sign(AuthProtocol::Sha1, key, msg),
            hex("effcdf6ae5eb2fa2d27416d5")
        );
        assert_eq!(
            sign(AuthProtocol::Sha224, key, msg),
            hex("a30e01098bc6dbbf45690f3a7e9e6d0f")
        );
        assert_eq!(
            sign(AuthProtocol::Sha256, key, msg),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d273983")
        );
        assert_eq!(
            sign(AuthProtocol::Sha384, key, msg),
            hex("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e")
        );
        assert_eq!(
            sign(AuthProtocol::Sha512, key, msg),
            hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fd")
        );
        let mac = sign(AuthProtocol::Sha256, key, msg);
        assert!(verify(AuthProtocol::Sha256, key, msg, &mac));
        let mut bad = mac.clone();
        bad[0] ^= 1;
        assert!(!verify(AuthProtocol::Sha256, key, msg, &bad));
        assert!(!verify(AuthProtocol::Sha256, key, msg, &mac[..12]));
    }

    /// NIST SP 800-38A F.3.13 (CFB128-AES128.Encrypt), first two blocks, plus a
    /// round trip of a length that is not a multiple of the block size.
    #[test]
    fn aes_cfb128_vectors_and_round_trip() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let boots = u32::from_be_bytes(iv[..4].try_into().unwrap());
        let time = u32::from_be_bytes(iv[4..8].try_into().unwrap());
        let salt: [u8; 8] = iv[8..].try_into().unwrap();
        let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let enc = aes_encrypt(&key, boots, time, &salt, &plain);
        assert_eq!(
            enc,
            hex("3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b")
        );
        assert_eq!(aes_decrypt(&key, boots, time, &salt, &enc).unwrap(), plain);
        let odd = b"a scoped PDU of 37 octets, not 32 ...";
        let enc = aes_encrypt(&key, 1, 2, &salt, odd);
        assert_eq!(enc.len(), odd.len());
        assert_eq!(aes_decrypt(&key, 1, 2, &salt, &enc).unwrap(), odd);
        assert!(aes_decrypt(&key, 1, 2, &salt[..7], &enc).is_none());
        assert!(aes_decrypt(&key[..15], 1, 2, &salt, &enc).is_none());
    }
}
