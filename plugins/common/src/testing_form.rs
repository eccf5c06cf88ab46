//! Test-side decoding of `application/x-www-form-urlencoded` bodies (OAuth token
//! requests, signed form posts), written here independently of any plugin's
//! encoder so a contract test checks the plugin's bytes against a second
//! implementation.
//!
//! Why it is shared: the token-request tests of several plugins (azure, azure-arc,
//! alibaba) each carried the same decoder; one copy is enough.

use std::collections::BTreeMap;

/// The fields of a form body, decoded (`+` is a space, `%XX` a byte). Panics on a
/// body that is not UTF-8 or a field without `=`: a test should fail on those.
pub fn form(body: &[u8]) -> BTreeMap<String, String> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(h, 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (dec(k), dec(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_plus_and_percent() {
        let f =
            super::form(b"grant_type=client_credentials&scope=https%3A%2F%2Fx%2F.default&a=b+c");
        assert_eq!(f["grant_type"], "client_credentials");
        assert_eq!(f["scope"], "https://x/.default");
        assert_eq!(f["a"], "b c");
    }
}
