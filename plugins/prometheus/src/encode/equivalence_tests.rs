//! The fast paths against the straightforward code they replace: the
//! remote-write [`Encoder`] against [`remote_write::build`] + prost (the bytes
//! the spec-level golden tests pin), and [`point_labels`]' fast path against its
//! general path. Inputs are generated (a fixed pseudo-random sequence) to reach
//! the corners: labels sorting before `__name__`, point labels named `__name__`
//! or `le`, unsorted and repeated names, empty values, label sets that are
//! prefixes of others, long and NUL-containing values, several samples per
//! series.

use tfo_plugin_api::{AnyValue, Batch, KeyValue, Metric};

use super::{
    convert, convert_with, point_labels, point_labels_general,
    remote_write::{self, Encoder},
    Family, FamilyMeta, FamilyType, Histogram, Labels, Options, Point, Scratch, Summary, Value,
};

/// A small deterministic generator (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next(from.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &[
    "job", "instance", "cpu", "Zone", "_a", "__name__", "le", "quantile", "mode", "a", "ab", "b",
];

fn value(r: &mut Lcg, nul: bool) -> String {
    match r.next(8) {
        0 => String::new(),
        1 => "x".repeat(100 + r.next(80) as usize), // multi-byte varints
        2 if nul => "a\0b".to_string(),
        3 => "prod-eu-west-1".to_string(),
        // A prefix of the NUL value above: "a" < "a\0b" pair by pair, which a
        // NUL-separated key orders the other way (found by fuzzing).
        4 => "a".to_string(),
        _ => format!("v{}", r.next(4)),
    }
}

fn labels(r: &mut Lcg, nul: bool) -> Labels {
    (0..r.next(6))
        .map(|_| (r.pick(NAMES).to_string(), value(r, nul)))
        .collect()
}

fn families(seed: u64, nul: bool) -> Vec<Family> {
    let mut r = Lcg(seed);
    let mut out = Vec::new();
    for f in 0..1 + r.next(6) {
        let kind = [
            FamilyType::Gauge,
            FamilyType::Counter,
            FamilyType::Histogram,
            FamilyType::Summary,
            FamilyType::Info,
        ][r.next(5) as usize];
        let name = match r.next(6) {
            0 => String::new(),
            1 => "m".repeat(130),
            _ => format!("metric_{}", f % 3),
        };
        let mut points = Vec::new();
        for _ in 0..r.next(12) {
            let value = match kind {
                FamilyType::Histogram => Value::Histogram(Histogram {
                    bounds: vec![0.5, 1.0],
                    counts: vec![1, r.next(3), 2],
                    count: 9,
                    sum: if r.next(2) == 0 { Some(2.5) } else { None },
                }),
                FamilyType::Summary => Value::Summary(Summary {
                    quantiles: vec![(0.5, 1.0), (0.99, r.next(5) as f64)],
                    count: 4,
                    sum: Some(3.0),
                }),
                _ => Value::Double(r.next(3) as f64 - 1.0),
            };
            points.push(Point {
                labels: labels(&mut r, nul),
                value,
                start_unix_nano: 0,
                // Repeated and zero times: several samples per series.
                time_unix_nano: r.next(3) * 1_000_000,
            });
        }
        out.push(Family {
            meta: FamilyMeta {
                name,
                kind,
                help: String::new(),
                unit: String::new(),
            },
            delta: false,
            points,
        });
    }
    out
}

fn expected(families: &[Family], now: i64) -> Vec<u8> {
    prost::Message::encode_to_vec(&remote_write::build(families, now))
}

#[test]
fn encoder_writes_what_build_and_prost_write() {
    let mut reused = Encoder::default();
    for seed in 0..400 {
        for nul in [false, true] {
            let families = families(seed, nul);
            let want = expected(&families, 7);
            let mut out = Vec::new();
            let n = reused.encode(&families, 7, &mut out);
            assert_eq!(out, want, "seed {seed} nul {nul}: {families:?}");
            assert_eq!(n, remote_write::build(&families, 7).timeseries.len());
            let mut fresh = vec![1, 2];
            remote_write::encode_families(&families, 7, &mut fresh);
            assert_eq!(&fresh[2..], want.as_slice(), "seed {seed} nul {nul}");
        }
    }
}

#[test]
fn encoder_orders_many_series_with_long_common_prefixes() {
    // The bench shape in small: one name, label sets sharing long prefixes that
    // differ late, in shuffled order, some repeated (same series, later times).
    let mut r = Lcg(42);
    let mut points = Vec::new();
    for i in 0..600u64 {
        let k = r.next(150);
        points.push(Point {
            labels: vec![
                ("cluster".into(), "prod-eu-west-1".into()),
                ("cpu".into(), format!("{}", k % 8)),
                ("device".into(), "sda".into()),
                ("instance".into(), format!("10.0.0.{k}:9100")),
                ("series_id".into(), format!("{}", k % 3)),
            ],
            value: Value::Double(i as f64),
            start_unix_nano: 0,
            time_unix_nano: (i % 7) * 1_000_000,
        });
    }
    let families = vec![Family {
        meta: FamilyMeta {
            name: "node_benchmark_metric".into(),
            kind: FamilyType::Gauge,
            help: String::new(),
            unit: String::new(),
        },
        delta: false,
        points,
    }];
    let mut out = Vec::new();
    Encoder::default().encode(&families, 1, &mut out);
    assert_eq!(out, expected(&families, 1));
}

fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v,
    }
}

#[test]
fn point_labels_fast_path_matches_the_general_path() {
    let mut r = Lcg(7);
    // Valid label names only (the fast path's domain), some reserved.
    let keys = ["a", "b", "job", "instance", "le", "quantile", "Zone", "x_1"];
    for _ in 0..2000 {
        let attrs: Vec<KeyValue> = (0..r.next(7))
            .map(|_| {
                let k = r.pick(&keys);
                let v = match r.next(5) {
                    0 => AnyValue::Str("".into()),
                    1 => AnyValue::Int(r.next(100) as i64 - 50),
                    2 => AnyValue::Bool(true),
                    _ => AnyValue::Str(format!("v{}", r.next(3)).as_str().into()),
                };
                kv(k, v)
            })
            .collect();
        let reserved = [None, Some("le"), Some("quantile")][r.next(3) as usize];
        let resource: Labels = match r.next(3) {
            0 => vec![],
            1 => vec![("job".into(), "api".into())],
            _ => vec![("instance".into(), "i".into()), ("job".into(), "".into())],
        };
        assert_eq!(
            point_labels(&attrs, reserved, &resource),
            point_labels_general(&attrs, reserved, &resource),
            "{attrs:?} {reserved:?} {resource:?}"
        );
    }
}

#[test]
fn only_valid_names_take_the_fast_path() {
    for (key, valid) in [
        ("a", true),
        ("a_b", true),
        ("_a", true),
        ("Zone9", true),
        ("", false),
        ("_", false),
        ("__a", false),
        ("a__b", false),
        ("9a", false),
        ("a.b", false),
        ("a-b", false),
        ("é", false),
    ] {
        assert_eq!(super::is_label_name(key), valid, "{key:?}");
        // Exactly the keys `label_name` keeps as they are.
        assert_eq!(
            super::label_name(key).as_deref() == Some(key),
            valid,
            "{key:?}"
        );
    }
}

/// A generated batch for [`convert_with`]: valid and invalid keys, repeated keys,
/// empty values, numbers and booleans, values of very different lengths (so
/// recycled strings are reused at other sizes), resource attributes that become
/// `job`/`instance` (overriding attributes of those names) or `target_info`.
fn batch(r: &mut Lcg) -> Batch {
    let keys = [
        "a", "b", "job", "instance", "le", "cpu", "x.y", "x_y", "9z", "_", "Zone",
    ];
    let mut b = Batch::default();
    for (k, v) in [
        ("service.name", "api"),
        ("service.instance.id", "host:1"),
        ("host.name", "h"),
    ] {
        if r.next(2) == 0 {
            let v = if r.next(5) == 0 { "" } else { v };
            b.resource.attributes.push(KeyValue::new(k, v));
        }
    }
    for m in 0..r.next(40) {
        let attrs: Vec<KeyValue> = (0..r.next(8))
            .map(|_| {
                let k = r.pick(&keys);
                match r.next(6) {
                    0 => KeyValue::new(k, ""),
                    1 => KeyValue::new(k, r.next(1000) as i64 - 500),
                    2 => KeyValue::new(k, r.next(2) == 0),
                    3 => KeyValue::new(k, "y".repeat(r.next(90) as usize).as_str()),
                    4 => KeyValue::new(k, r.next(7) as f64 * 0.5),
                    _ => KeyValue::new(k, format!("v{}", r.next(4)).as_str()),
                }
            })
            .collect();
        let name = ["m", "m.a", "n", "9"][(m % 4) as usize];
        b.metrics.push(Metric::gauge(name, "", m, m as f64, attrs));
    }
    b
}

#[test]
fn convert_with_a_recycled_scratch_matches_convert() {
    let mut r = Lcg(11);
    let opts = Options::default();
    let mut scratch = Scratch::default();
    let mut reused = 0;
    for _ in 0..400 {
        let b = batch(&mut r);
        reused += scratch.pooled().min(1);
        let warm = convert_with(&b, &opts, &mut scratch);
        assert_eq!(warm, convert(&b, &opts), "{b:?}");
        scratch.recycle(warm.families);
    }
    // The strings were actually reused, batch after batch.
    assert!(reused > 300, "{reused}");
}

/// The class-table check against its definition on every string of up to three
/// characters from an alphabet with each class and its borders.
#[test]
fn is_label_name_matches_label_name_exhaustively() {
    let alphabet = [
        "a", "Z", "0", "9", "_", ".", "-", "/", ":", "@", "[", "`", "{", "é", " ",
    ];
    let mut keys = vec![String::new()];
    for _ in 0..3 {
        let longer: Vec<String> = keys
            .iter()
            .flat_map(|k| alphabet.iter().map(move |c| format!("{k}{c}")))
            .collect();
        keys.extend(longer);
    }
    keys.sort();
    keys.dedup();
    assert!(keys.len() > 3000);
    for key in &keys {
        assert_eq!(
            super::is_label_name(key),
            super::label_name(key).as_deref() == Some(key.as_str()),
            "{key:?}"
        );
    }
}
