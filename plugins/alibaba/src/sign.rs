//! Alibaba Cloud request signatures.
//!
//! - **SLS** (<https://www.alibabacloud.com/help/en/sls/developer-reference/request-signatures>):
//!   `Authorization: LOG <AccessKeyId>:<Signature>`, Signature =
//!   base64(HMAC-SHA1(AccessKeySecret, StringToSign)) with StringToSign =
//!   `VERB\nContent-MD5\nContent-Type\nDate\nCanonicalizedLOGHeaders` +
//!   `CanonicalizedResource`. CanonicalizedLOGHeaders: every `x-log-*` and `x-acs-*`
//!   header, lower-case names sorted, each as `name:value\n`.
//!   CanonicalizedResource: the path, then `?` and the query parameters sorted by
//!   name as `name=value` joined by `&` (not escaped) when there are any.
//!   Content-MD5 is the upper-case hex MD5 of the body as sent; Date is RFC 1123
//!   in GMT.
//! - **RPC** (<https://www.alibabacloud.com/help/en/sdk/product-overview/rpc-mechanism>),
//!   used by CloudMonitor: every parameter (common and action parameters, without
//!   `Signature`) percent-encoded (RFC 3986: only `A-Z a-z 0-9 - _ . ~` literal,
//!   UTF-8, upper-case hex), sorted by encoded name, joined as `k=v&...`;
//!   StringToSign = `METHOD&%2F&` + percentEncode(that string); Signature =
//!   base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign)).
//!
//! Checked against Alibaba's published RPC examples (ECS `DescribeRegions`, SMS
//! `SendSms`) below, and against an independent Python implementation in the tests.

use std::{
    collections::BTreeMap,
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha1::Sha1;

/// RFC 3986 unreserved characters stay literal; everything else is `%XX`.
const RPC_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encoding of the RPC signature (and of the form body).
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, RPC_ESCAPE).to_string()
}

/// base64(HMAC-SHA1(key, data)).
pub fn hmac_sha1_base64(key: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Upper-case hex MD5, the `Content-MD5` SLS expects.
pub fn content_md5(body: &[u8]) -> String {
    Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The RPC canonicalized query string (sorted, percent-encoded `k=v&...`).
pub fn rpc_canonical_query(params: &BTreeMap<String, String>) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `METHOD&%2F&percentEncode(canonical query)`.
pub fn rpc_string_to_sign(method: &str, params: &BTreeMap<String, String>) -> String {
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&rpc_canonical_query(params))
    )
}

/// The RPC `Signature` parameter (before URL encoding).
pub fn rpc_signature(method: &str, params: &BTreeMap<String, String>, secret: &str) -> String {
    hmac_sha1_base64(
        format!("{secret}&").as_bytes(),
        rpc_string_to_sign(method, params).as_bytes(),
    )
}

/// The SLS StringToSign. `headers` are all request headers (any case); only
/// `x-log-*` and `x-acs-*` are used. `query` holds the URL parameters.
pub fn sls_string_to_sign(
    method: &str,
    content_md5: &str,
    content_type: &str,
    date: &str,
    headers: &[(String, String)],
    resource: &str,
    query: &BTreeMap<String, String>,
) -> String {
    let mut canon: Vec<(String, &str)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .filter(|(k, _)| k.starts_with("x-log-") || k.starts_with("x-acs-"))
        .collect();
    canon.sort();
    let mut s = format!("{method}\n{content_md5}\n{content_type}\n{date}\n");
    for (k, v) in canon {
        s.push_str(&k);
        s.push(':');
        s.push_str(v);
        s.push('\n');
    }
    s.push_str(resource);
    if !query.is_empty() {
        s.push('?');
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&q.join("&"));
    }
    s
}

/// The SLS `Authorization` header value: `LOG <id>:<signature>`.
pub fn sls_authorization(access_key_id: &str, secret: &str, string_to_sign: &str) -> String {
    format!(
        "LOG {access_key_id}:{}",
        hmac_sha1_base64(secret.as_bytes(), string_to_sign.as_bytes())
    )
}

/// An RFC 1123 date in GMT (`Tue, 23 Aug 2022 12:12:03 GMT`), the SLS `Date`.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// `YYYY-MM-DDThh:mm:ssZ` (UTC), the RPC `Timestamp`.
pub fn iso8601(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A fresh `SignatureNonce`: 128 bits from the process's randomly keyed hasher
/// (std seeds it from the OS), a counter and the clock, as a UUID-shaped string.
pub fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let part = |salt: u64| {
        let mut h = keys.build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.write_u64(t);
        h.finish()
    };
    let (a, b) = (part(1), part(2));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rpc_published_example_describe_regions() {
        // Alibaba Cloud's RPC signature documentation: ECS DescribeRegions,
        // AccessKeySecret "testsecret".
        let p = params(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]);
        assert_eq!(
            rpc_string_to_sign("GET", &p),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z\
             %26Version%3D2014-05-26"
        );
        assert_eq!(
            rpc_signature("GET", &p, "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn rpc_published_example_send_sms_utf8() {
        // Alibaba Cloud SMS documentation's signature example (UTF-8 SignName,
        // JSON TemplateParam), AccessKeySecret "testSecret".
        let p = params(&[
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]);
        assert_eq!(
            rpc_signature("GET", &p, "testSecret"),
            "zJDF+Lrzhj/ThnlvIToysFRq6t4="
        );
    }

    #[test]
    fn percent_encoding_rules() {
        assert_eq!(
            percent_encode("a b*c~d/e+f=g&h"),
            "a%20b%2Ac~d%2Fe%2Bf%3Dg%26h"
        );
        assert_eq!(percent_encode("派"), "%E6%B4%BE");
        assert_eq!(percent_encode("-_.~AZaz09"), "-_.~AZaz09");
    }

    #[test]
    fn md5_and_hmac_known_values() {
        // RFC 1321 test suite.
        assert_eq!(content_md5(b""), "D41D8CD98F00B204E9800998ECF8427E");
        assert_eq!(content_md5(b"abc"), "900150983CD24FB0D6963F7D28E17F72");
        // RFC 2202 test case 2.
        assert_eq!(
            hmac_sha1_base64(b"Jefe", b"what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn sls_string_to_sign_layout() {
        let headers = vec![
            ("x-log-signaturemethod".to_string(), "hmac-sha1".to_string()),
            ("X-Log-ApiVersion".to_string(), "0.6.0".to_string()),
            ("x-acs-security-token".to_string(), "sts".to_string()),
            ("x-log-bodyrawsize".to_string(), "18".to_string()),
            (
                "Content-Type".to_string(),
                "application/x-protobuf".to_string(),
            ),
            (
                "Date".to_string(),
                "Tue, 23 Aug 2022 12:12:03 GMT".to_string(),
            ),
        ];
        let s = sls_string_to_sign(
            "POST",
            "49DFDD54B01CBCD2D2AB5E9E5EE6B9B9",
            "application/x-protobuf",
            "Tue, 23 Aug 2022 12:12:03 GMT",
            &headers,
            "/logstores/test-logstore/shards/0",
            &params(&[("action", "split"), ("a", "1")]),
        );
        assert_eq!(
            s,
            "POST\n49DFDD54B01CBCD2D2AB5E9E5EE6B9B9\napplication/x-protobuf\n\
             Tue, 23 Aug 2022 12:12:03 GMT\nx-acs-security-token:sts\nx-log-apiversion:0.6.0\n\
             x-log-bodyrawsize:18\nx-log-signaturemethod:hmac-sha1\n\
             /logstores/test-logstore/shards/0?a=1&action=split"
        );
    }

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_456_231_584);
        assert_eq!(iso8601(t), "2016-02-23T12:46:24Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_661_256_723);
        assert_eq!(http_date(t), "Tue, 23 Aug 2022 12:12:03 GMT");
    }

    #[test]
    fn nonces_are_unique() {
        let set: std::collections::HashSet<String> = (0..1000).map(|_| nonce()).collect();
        assert_eq!(set.len(), 1000);
        assert_eq!(nonce().len(), 36);
    }
}
