//! InfluxDB line protocol **parser**, shared by the influxdb plugin's receiver
//! (`POST /write`, `/api/v2/write`) and the mqtt plugin's `format: influx`
//! subscriptions, so both accept exactly the same syntax. Pure, never panics,
//! fuzzed (`fuzz/fuzz_targets/influx_lines.rs`, `mqtt_payload.rs`).
//!
//! Syntax followed: the line protocol reference
//! (<https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/> and
//! <https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/>):
//!
//! ```text
//! measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
//! ```
//!
//! - escaping: in measurements `\,` and `\ `; in tag keys, tag values and field
//!   keys `\,`, `\=` and `\ `; in string field values `\"` and `\\`; `\\` is one
//!   backslash everywhere; a backslash before any other character is literal;
//! - field values: float (`1`, `-1.5`, `1e3`), integer (`1i`), unsigned integer
//!   (`1u`), string (`"..."`), boolean (`t`, `T`, `true`, `True`, `TRUE`, `f`, `F`,
//!   `false`, `False`, `FALSE`);
//! - timestamp: optional signed integer in the request's [`Precision`];
//! - empty lines and lines starting with `#` (comments) are skipped; `\r\n` line
//!   ends are accepted; a line must be UTF-8.
//!
//! What the points *mean* (metric names, kinds, attributes) is each caller's
//! mapping; this module only turns bytes into [`Line`]s.
//!
//! Speed: a line is parsed in place. Names, tags and string values borrow from the
//! input ([`Cow::Borrowed`]) unless they contain an escape; [`parse_line_into`]
//! reuses one [`Line`]'s vectors across lines, so a body of many lines allocates
//! nothing per line for the parse itself. UTF-8 is checked once per line (tokens
//! are then cut at ASCII delimiters), and the usual float shapes (`96`, `2.5`,
//! `-0.125`) are read without the general float parser (same results: see
//! [`parse_float`]).

use std::borrow::Cow;

/// Timestamp precision of a write request (`precision` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Nanoseconds (the default).
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Minutes (v1 API only).
    M,
    /// Hours (v1 API only).
    H,
}

impl Precision {
    /// The `precision` query value: v2 names (`ns`, `us`, `ms`, `s`) and the v1 ones
    /// (`n`, `u`, `µ`, `ms`, `s`, `m`, `h`); `None` when unknown.
    pub fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "" | "n" | "ns" => Precision::Ns,
            "u" | "us" | "µ" | "µs" => Precision::Us,
            "ms" => Precision::Ms,
            "s" => Precision::S,
            "m" => Precision::M,
            "h" => Precision::H,
            _ => return None,
        })
    }

    /// Nanoseconds per unit.
    pub fn nanos(self) -> u64 {
        match self {
            Precision::Ns => 1,
            Precision::Us => 1_000,
            Precision::Ms => 1_000_000,
            Precision::S => 1_000_000_000,
            Precision::M => 60_000_000_000,
            Precision::H => 3_600_000_000_000,
        }
    }

    /// A timestamp written in this precision as Unix nanoseconds; `None` before
    /// 1970 or past what a `u64` of nanoseconds holds (year 2554). Integer
    /// arithmetic only, so every nanosecond is exact.
    pub fn to_unix_nanos(self, timestamp: i64) -> Option<u64> {
        u64::try_from(timestamp).ok()?.checked_mul(self.nanos())
    }
}

/// A field value as written.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// `1.5`, `1`.
    Float(f64),
    /// `1i`.
    Int(i64),
    /// `1u`.
    UInt(u64),
    /// `"text"` (unescaped; borrowed from the input when it had no escape).
    Str(Cow<'a, str>),
    /// `t`, `false`...
    Bool(bool),
}

/// One parsed line; names borrow from the input unless they had an escape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Line<'a> {
    /// Measurement (unescaped).
    pub measurement: Cow<'a, str>,
    /// Tags in line order (unescaped).
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields in line order (keys unescaped).
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// Timestamp as written (in the request's precision), if any.
    pub timestamp: Option<i64>,
}

/// Parses one line (without its `\n`); `Ok(None)` for an empty or comment line.
pub fn parse_line(line: &[u8]) -> Result<Option<Line<'_>>, String> {
    let mut out = Line::default();
    Ok(parse_line_into(line, &mut out)?.then_some(out))
}

/// Parses one line (without its `\n`) into `out`, reusing its vectors (what a
/// caller parsing many lines wants: no allocation per line). `Ok(false)` for an
/// empty or comment line; on `Err` the content of `out` is unspecified.
pub fn parse_line_into<'a>(line: &'a [u8], out: &mut Line<'a>) -> Result<bool, String> {
    out.tags.clear();
    out.fields.clear();
    out.timestamp = None;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let start = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(line.len());
    let line = &line[start..];
    if line.is_empty() || line[0] == b'#' {
        return Ok(false);
    }
    let s = std::str::from_utf8(line).map_err(|_| "not valid UTF-8".to_string())?;
    let mut p = Cursor { s, i: 0 };
    out.measurement = p.token(SPACE_COMMA, MEASUREMENT_ESCAPES);
    if out.measurement.is_empty() {
        return Err("missing measurement".into());
    }
    while p.peek() == Some(b',') {
        p.i += 1;
        let key = p.token(KEY_STOPS, KEY_ESCAPES);
        if key.is_empty() {
            return Err("empty tag key".into());
        }
        if p.peek() != Some(b'=') {
            return Err(format!("tag {key:?} has no value: it has no '='"));
        }
        p.i += 1;
        let value = p.token(SPACE_COMMA, KEY_ESCAPES);
        if value.is_empty() {
            return Err(format!("tag {key:?} has an empty value"));
        }
        out.tags.push((key, value));
    }
    if p.peek() != Some(b' ') {
        return Err("missing fields (expected a space after the measurement and tags)".into());
    }
    p.skip_spaces();
    loop {
        let key = p.token(KEY_STOPS, KEY_ESCAPES);
        if key.is_empty() {
            return Err(if p.peek() == Some(b'=') {
                "empty field key".into()
            } else {
                "missing field key".into()
            });
        }
        if p.peek() != Some(b'=') {
            return Err(format!("field {key:?} has no value: it has no '='"));
        }
        p.i += 1;
        let value = p.field_value().map_err(|e| format!("field {key:?}: {e}"))?;
        out.fields.push((key, value));
        if p.peek() == Some(b',') {
            p.i += 1;
            continue;
        }
        break;
    }
    out.timestamp = match p.peek() {
        None => None,
        Some(b' ') => {
            p.skip_spaces();
            let b = p.s.as_bytes();
            let start = p.i;
            let mut end = start;
            while end < b.len() && !matches!(b[end], b' ' | b'\t') {
                end += 1;
            }
            if b[end..].iter().any(|b| !matches!(b, b' ' | b'\t')) {
                return Err("unexpected text after the timestamp".into());
            }
            let ts = &p.s[start..end];
            if ts.is_empty() {
                None
            } else {
                Some(parse_timestamp(ts).ok_or_else(|| format!("invalid timestamp {ts:?}"))?)
            }
        }
        Some(c) => return Err(format!("unexpected {:?} after the fields", c as char)),
    };
    Ok(true)
}

/// `-?[0-9]+` as an `i64` (no `+`, no spaces), `None` out of range. Up to 19
/// digits (a nanosecond timestamp of today has 19) fit a `u64` and are read in one
/// loop; longer ones (leading zeros) go to `str::parse`.
fn parse_timestamp(ts: &str) -> Option<i64> {
    let digits = ts.strip_prefix('-').unwrap_or(ts);
    if digits.is_empty() {
        return None;
    }
    if digits.len() > 19 {
        return ts
            .parse()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()));
    }
    let mut v: u64 = 0;
    for b in digits.bytes() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    if digits.len() == ts.len() {
        i64::try_from(v).ok()
    } else if v <= 1 << 63 {
        Some((v as i64).wrapping_neg())
    } else {
        None
    }
}

/// Parses a whole payload, all or nothing (the mqtt plugin's rule: a message is
/// one unit): every non-empty, non-comment line, or the first error prefixed with
/// its line number (`line 2: ...`).
pub fn parse_lines(text: &str) -> Result<Vec<Line<'_>>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.as_bytes().split(|b| *b == b'\n').enumerate() {
        if let Some(line) = parse_line(raw).map_err(|e| format!("line {}: {e}", n + 1))? {
            out.push(line);
        }
    }
    Ok(out)
}

/// Byte classes: which bytes end a token (per token kind) and which may follow a
/// backslash as an escape. One table lookup per byte in the token scan.
const SPACE_COMMA: u8 = 1;
const KEY_STOPS: u8 = 2;
const BACKSLASH: u8 = 4;
const MEASUREMENT_ESCAPES: u8 = 8;
const KEY_ESCAPES: u8 = 16;

const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b',' as usize] = SPACE_COMMA | KEY_STOPS | MEASUREMENT_ESCAPES | KEY_ESCAPES;
    t[b' ' as usize] = SPACE_COMMA | KEY_STOPS | MEASUREMENT_ESCAPES | KEY_ESCAPES;
    t[b'=' as usize] = KEY_STOPS | KEY_ESCAPES;
    t[b'\\' as usize] = BACKSLASH | MEASUREMENT_ESCAPES | KEY_ESCAPES;
    t
};

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    /// Index of the first byte at or after `i` whose class has a bit of `mask`.
    #[inline(always)]
    fn scan(&self, mut i: usize, mask: u8) -> usize {
        let b = self.s.as_bytes();
        while i < b.len() && CLASSES[b[i] as usize] & mask == 0 {
            i += 1;
        }
        i
    }

    /// Reads up to an unescaped byte of class `stop`; `\` + a byte of class
    /// `escapes` is that byte, any other `\` is literal. Borrowed unless escaped.
    /// Every cut is next to an ASCII byte, so the slices stay on char boundaries.
    /// Inlined so each call site scans with constant masks; the escape path is
    /// out of line.
    #[inline(always)]
    fn token(&mut self, stop: u8, escapes: u8) -> Cow<'a, str> {
        let b = self.s.as_bytes();
        let start = self.i;
        let i = self.scan(start, stop | BACKSLASH);
        if i == b.len() || b[i] != b'\\' {
            self.i = i;
            return Cow::Borrowed(&self.s[start..i]);
        }
        self.unescape(start, i, stop, escapes)
    }

    /// The rest of [`Cursor::token`] once a backslash was found at `i`.
    #[inline(never)]
    fn unescape(&mut self, start: usize, mut i: usize, stop: u8, escapes: u8) -> Cow<'a, str> {
        let b = self.s.as_bytes();
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&self.s[start..i]);
        while i < b.len() {
            let c = b[i];
            if c == b'\\' {
                match b.get(i + 1) {
                    Some(&n) if CLASSES[n as usize] & escapes != 0 => {
                        out.push(n as char);
                        i += 2;
                    }
                    _ => {
                        out.push('\\');
                        i += 1;
                    }
                }
                continue;
            }
            if CLASSES[c as usize] & stop != 0 {
                break;
            }
            let run = self.scan(i, stop | BACKSLASH);
            out.push_str(&self.s[i..run]);
            i = run;
        }
        self.i = i;
        Cow::Owned(out)
    }

    fn field_value(&mut self) -> Result<FieldValue<'a>, String> {
        let b = self.s.as_bytes();
        if self.peek() == Some(b'"') {
            self.i += 1;
            let start = self.i;
            let mut i = start;
            while i < b.len() && !matches!(b[i], b'"' | b'\\') {
                i += 1;
            }
            if i < b.len() && b[i] == b'"' {
                self.i = i + 1;
                return Ok(FieldValue::Str(Cow::Borrowed(&self.s[start..i])));
            }
            let mut out = String::from(&self.s[start..i]);
            loop {
                match b.get(i) {
                    None => return Err("unterminated string".into()),
                    Some(b'"') => {
                        self.i = i + 1;
                        return Ok(FieldValue::Str(Cow::Owned(out)));
                    }
                    Some(b'\\') if matches!(b.get(i + 1), Some(b'"' | b'\\')) => {
                        out.push(b[i + 1] as char);
                        i += 2;
                    }
                    Some(b'\\') => {
                        out.push('\\');
                        i += 1;
                    }
                    Some(_) => {
                        let mut j = i + 1;
                        while j < b.len() && !matches!(b[j], b'"' | b'\\') {
                            j += 1;
                        }
                        out.push_str(&self.s[i..j]);
                        i = j;
                    }
                }
            }
        }
        let start = self.i;
        let mut end = start;
        while end < b.len() && !matches!(b[end], b',' | b' ') {
            end += 1;
        }
        self.i = end;
        let raw = &self.s[start..end];
        number_or_bool(raw).map_err(|why| match why {
            None => format!("invalid value {raw:?}"),
            Some(why) if raw.is_empty() => why.to_string(),
            Some(why) => format!("invalid value {raw:?}: {why}"),
        })
    }
}

/// A number or boolean field value; `Err(Some(why))` adds a reason to "invalid value".
fn number_or_bool(raw: &str) -> Result<FieldValue<'static>, Option<&'static str>> {
    let Some(&last) = raw.as_bytes().last() else {
        return Err(Some("empty value"));
    };
    if last.is_ascii_digit() || last == b'.' {
        return parse_float(raw).map(FieldValue::Float).ok_or(None);
    }
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(FieldValue::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(FieldValue::Bool(false)),
        _ => {}
    }
    if let Some(i) = raw.strip_suffix('i') {
        let digits = i.strip_prefix('-').unwrap_or(i);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Some("invalid integer"));
        }
        return i
            .parse()
            .map(FieldValue::Int)
            .map_err(|_| Some("invalid integer (out of range)"));
    }
    if let Some(u) = raw.strip_suffix('u') {
        if u.is_empty() || !u.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Some("invalid unsigned integer"));
        }
        return u
            .parse()
            .map(FieldValue::UInt)
            .map_err(|_| Some("invalid unsigned integer (out of range)"));
    }
    parse_float(raw).map(FieldValue::Float).ok_or(None)
}

/// Exact powers of ten an `f64` holds (Clinger's fast path).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A line-protocol float: `[-]digits[.digits][e[+-]digits]`, finite. Rust's float
/// syntax also takes `inf`, `NaN` and `+1`, which line protocol does not.
///
/// `-?D*.D*` with at most 2^53 as the digits read as an integer and at most 22
/// fraction digits (the shapes agents write: `96`, `2.5`, `0.125`) is computed as
/// that integer divided by an exact power of ten: both operands are exact and IEEE
/// division rounds correctly, so the result is the one `str::parse` gives
/// (Clinger's fast path); everything else goes to `str::parse`.
pub fn parse_float(raw: &str) -> Option<f64> {
    let b = raw.as_bytes();
    let (neg, body) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut fraction = None::<u32>;
    let mut fast = true;
    for &c in body {
        match c {
            b'0'..=b'9' if digits < 19 => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                digits += 1;
                if let Some(f) = fraction.as_mut() {
                    *f += 1;
                }
            }
            b'.' if fraction.is_none() => fraction = Some(0),
            _ => {
                fast = false;
                break;
            }
        }
    }
    let fraction = fraction.unwrap_or(0);
    if fast && digits > 0 && mantissa <= 1 << 53 && fraction < POW10.len() as u32 {
        let v = mantissa as f64 / POW10[fraction as usize];
        return Some(if neg { -v } else { v });
    }
    if !body
        .first()
        .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return None;
    }
    raw.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests;
