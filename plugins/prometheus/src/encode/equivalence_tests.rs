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

/// A reserved name (none, `le`, `quantile`) and resource labels (none, `job`, or
/// `instance` with an empty `job`) for a generated point.
fn reserved_and_resource(r: &mut Lcg) -> (Option<&'static str>, Labels) {
    let reserved = [None, Some("le"), Some("quantile")][r.next(3) as usize];
    let resource: Labels = match r.next(3) {
        0 => vec![],
        1 => vec![("job".into(), "api".into())],
        _ => vec![("instance".into(), "i".into()), ("job".into(), "".into())],
    };
    (reserved, resource)
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
        let (reserved, resource) = reserved_and_resource(&mut r);
        assert_eq!(
            point_labels(&attrs, reserved, &resource),
            point_labels_general(&attrs, reserved, &resource),
            "{attrs:?} {reserved:?} {resource:?}"
        );
    }
}

/// Keys that need sanitising, collide after it, repeat, sanitise to nothing,
/// start with a digit or are reserved once sanitised, written into recycled
/// label vectors of every size, with a plan made for the keys or reused from
/// the point before: the same labels as the reference, which works everything
/// out afresh.
#[test]
fn point_labels_general_path_in_recycled_memory_matches_the_reference() {
    let mut r = Lcg(17);
    let keys = [
        "snmp.target",
        "snmp_target",
        "a.b",
        "a-b",
        "a__b",
        "9x",
        "",
        "_",
        ".",
        "le",
        "l.e",
        "quantile",
        "job",
        "instance",
        "host.name",
        "x",
        "é",
    ];
    let mut scratch = Scratch::default();
    let mut recycled = 0;
    let mut previous: Vec<&str> = Vec::new();
    for _ in 0..3000 {
        // Half the points have the keys of the one before (new values): the
        // plan is reused; the others make a new one.
        let these: Vec<&str> = if r.next(2) == 0 {
            previous.clone()
        } else {
            (0..r.next(9)).map(|_| r.pick(&keys)).collect()
        };
        previous = these.clone();
        let attrs: Vec<KeyValue> = these
            .iter()
            .map(|&k| {
                let v = match r.next(5) {
                    0 => AnyValue::Str("".into()),
                    1 => AnyValue::Int(r.next(100) as i64 - 50),
                    2 => AnyValue::Double(0.5),
                    _ => AnyValue::Str("v".repeat(r.next(40) as usize).as_str().into()),
                };
                kv(k, v)
            })
            .collect();
        let (reserved, resource) = reserved_and_resource(&mut r);
        recycled += scratch.pooled().min(1);
        let labels = super::point_labels_with(&attrs, reserved, &resource, &mut scratch);
        assert_eq!(
            labels,
            point_labels_general(&attrs, reserved, &resource),
            "{attrs:?} {reserved:?} {resource:?}"
        );
        scratch.recycle(super::one_point_family(labels));
        // One point's labels in, one vector out: the pool does not grow.
        assert!(scratch.pooled() <= 64, "{}", scratch.pooled());
    }
    assert!(recycled > 2900, "{recycled}");
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

/// A batch with every kind of metric the conversion distinguishes, for
/// [`Encoder::encode_batch`] against the families path: gauges and sums (int,
/// double, NaN, infinities, -0), monotonic and non-monotonic, cumulative and
/// delta (accumulated across batches, or dropped), histograms (valid, count
/// only, invalid bounds, negative minimum, delta), summaries (quantiles out of
/// range), values of the wrong kind, names that sanitise to the same family or
/// to nothing, families that are type conflicts (`target` against
/// `target_info`), series of two families with one `__name__` (`x_total` of a
/// counter `x` and of a gauge `x_total`), attribute keys that need sanitising,
/// collide, repeat or are reserved (`le`, `quantile`, `__name__`, `job`),
/// values of every type, empty, long (multi-byte varints) or with a NUL byte
/// (the general path), repeated series with equal or zero times, and several
/// resources (none, `job` only, `job`/`instance` plus `target_info`).
fn rich_batch(r: &mut Lcg) -> Batch {
    use tfo_plugin_api::__private::abi_stable::std_types::{ROption, RVec};
    use tfo_plugin_api::{
        HistogramValue, MetricKind, PointValue, Quantile, SummaryValue, Temporality,
    };
    let mut b = Batch::default();
    let resource: &[(&str, &str)] = match r.next(4) {
        0 => &[],
        1 => &[("service.name", "api")],
        2 => &[
            ("service.name", "api"),
            ("service.namespace", "shop"),
            ("service.instance.id", "i-1"),
            ("host.name", "h1"),
        ],
        _ => &[("service.instance.id", "i-2"), ("cloud.region", "eu")],
    };
    for (k, v) in resource {
        b.resource.attributes.push(KeyValue::new(*k, *v));
    }
    let names = [
        "m",
        "m",
        "m.a",
        "m_a",
        "x",
        "x_total",
        "h",
        "h_bucket",
        "s",
        "target",
        "9",
        "",
        "..",
        "node.cpu-time",
    ];
    let keys = [
        "a",
        "b",
        "job",
        "instance",
        "le",
        "quantile",
        "cpu",
        "x.y",
        "x_y",
        "9z",
        "_",
        "Zone",
        "__name__",
        "a",
        "b",
        "instance_x",
        "instance_y",
        "a_long_key_of_twenty1",
        "a_long_key_of_twenty2",
    ];
    for _ in 0..r.next(30) {
        let name = r.pick(&names);
        let unit = ["", "", "", "s", "By", "{packet}", "1"][r.next(7) as usize];
        let mut m = Metric::gauge(name, unit, 0, 0.0, vec![]);
        m.points = RVec::new();
        let kind = r.next(9);
        (m.kind, m.is_monotonic, m.temporality) = match kind {
            0 | 1 => (MetricKind::Gauge, false, Temporality::Unspecified),
            2 => (MetricKind::Sum, true, Temporality::Cumulative),
            3 => (MetricKind::Sum, true, Temporality::Delta),
            4 => (MetricKind::Sum, false, Temporality::Cumulative),
            5 => (MetricKind::Sum, false, Temporality::Delta),
            6 => (MetricKind::Histogram, false, Temporality::Cumulative),
            7 => (MetricKind::Histogram, false, Temporality::Delta),
            _ => (MetricKind::Summary, false, Temporality::Unspecified),
        };
        // Points of a metric often have the keys of the previous point (in
        // the same order), with other values.
        let mut previous_keys: Vec<&str> = Vec::new();
        for _ in 0..r.next(5) {
            if r.next(2) == 0 {
                previous_keys = (0..r.next(6)).map(|_| r.pick(&keys)).collect();
            }
            let attributes: Vec<KeyValue> = previous_keys
                .iter()
                .map(|&k| match r.next(12) {
                    0 => KeyValue::new(k, ""),
                    1 => KeyValue::new(k, r.next(1000) as i64 - 500),
                    2 => KeyValue::new(k, r.next(2) == 0),
                    3 => KeyValue::new(k, "y".repeat(100 + r.next(90) as usize).as_str()),
                    4 => KeyValue::new(k, r.next(7) as f64 * 0.5),
                    5 => KeyValue::new(k, f64::NAN),
                    6 => KeyValue {
                        key: k.into(),
                        value: AnyValue::Bytes(RVec::from(vec![0u8, 1, 255])),
                    },
                    7 if r.next(40) == 0 => KeyValue::new(k, "a\0b"),
                    _ => KeyValue::new(k, format!("v{}", r.next(3)).as_str()),
                })
                .collect();
            let scalar = match r.next(8) {
                0 => PointValue::Int(r.next(5) as i64 - 2),
                1 => PointValue::Double(f64::NAN),
                2 => PointValue::Double(f64::INFINITY),
                3 => PointValue::Double(-0.0),
                4 => PointValue::Int(i64::MAX),
                _ => PointValue::Double(r.next(7) as f64 * 0.25),
            };
            let histogram = |r: &mut Lcg| {
                let (bounds, counts) = match r.next(5) {
                    0 => (vec![], vec![]),
                    1 => (vec![1.0, 0.5], vec![1, 2, 3]),
                    2 => (vec![0.5, 1.0], vec![1, 2]),
                    _ => (vec![0.5, 1.0], vec![1, r.next(3), 2]),
                };
                PointValue::Histogram(HistogramValue {
                    count: 6,
                    sum: if r.next(3) == 0 {
                        ROption::RNone
                    } else {
                        ROption::RSome(2.5)
                    },
                    bounds: bounds.into(),
                    bucket_counts: counts.into(),
                    min: if r.next(4) == 0 {
                        ROption::RSome(-1.0)
                    } else {
                        ROption::RNone
                    },
                    max: ROption::RNone,
                })
            };
            let summary = PointValue::Summary(SummaryValue {
                count: 4,
                sum: 3.0,
                quantiles: RVec::from(vec![
                    Quantile {
                        quantile: 0.99,
                        value: r.next(5) as f64,
                    },
                    Quantile {
                        quantile: if r.next(4) == 0 { 1.5 } else { 0.5 },
                        value: 1.0,
                    },
                ]),
            });
            // Mostly the value the kind expects, sometimes another one.
            let wrong = r.next(15) == 0;
            let value = match (m.kind, wrong) {
                (MetricKind::Histogram, false) | (MetricKind::Gauge | MetricKind::Sum, true) => {
                    histogram(r)
                }
                (MetricKind::Summary, false) => summary,
                (MetricKind::Summary, true) => scalar,
                _ => scalar,
            };
            m.points.push(tfo_plugin_api::DataPoint {
                attributes: attributes.into(),
                start_time_unix_nano: r.next(2),
                // Repeated and zero times: several samples per series.
                time_unix_nano: r.next(3) * 1_000_000,
                value,
            });
        }
        b.metrics.push(m);
    }
    b
}

/// What `export` does with a scrape endpoint (and did in all cases before
/// [`Encoder::encode_batch`]): families, accumulated, then encoded.
fn families_path(
    b: &Batch,
    opts: &Options,
    scratch: &mut Scratch,
    accumulator: &crate::store::Accumulator,
    encoder: &mut Encoder,
    out: &mut Vec<u8>,
) -> (usize, Vec<String>, crate::store::Pending) {
    let now = std::time::Instant::now();
    let converted = convert_with(b, opts, scratch);
    let mut families = converted.families;
    let pending = accumulator.apply(&mut families, now);
    let series = encoder.encode(&families, 7, out);
    scratch.recycle(families);
    (series, converted.dropped, pending)
}

/// A request with its series in label order (the order of the families path),
/// re-encoded: equal to the families path's bytes exactly when it has the same
/// series (none missing, none twice), labels and samples.
fn canonical(proto: &[u8]) -> Vec<u8> {
    let mut req = <remote_write::WriteRequest as prost::Message>::decode(proto).unwrap();
    req.timeseries.sort_by(|a, b| a.labels.cmp(&b.labels));
    prost::Message::encode_to_vec(&req)
}

/// The direct path against the families path, batch after batch (the delta
/// totals each one commits carry into the next batches): the same series with
/// the same labels and samples (in another order: of first appearance), series
/// count and drop reasons, on generated batches that reach every case (NUL
/// bytes in labels included, which the direct path groups correctly: it
/// compares encoded labels, not NUL-separated keys).
#[test]
fn encode_batch_writes_what_the_families_path_writes() {
    use crate::store::Accumulator;
    let mut r = Lcg(2026);
    let (mut old_acc, mut new_acc) = (Accumulator::default(), Accumulator::default());
    let (mut old_scratch, mut new_scratch) = (Scratch::default(), Scratch::default());
    let (mut old_enc, mut new_enc) = (Encoder::default(), Encoder::default());
    let (mut direct, mut declined, mut series, mut dropped, mut nuls) = (0, 0, 0, 0, 0);
    for i in 0..3000 {
        let b = rich_batch(&mut r);
        let opts = Options {
            namespace: (i % 5 == 0).then(|| "ns".to_string()),
        };
        let mut want = vec![9];
        let (want_series, want_dropped, want_pending) = families_path(
            &b,
            &opts,
            &mut old_scratch,
            &old_acc,
            &mut old_enc,
            &mut want,
        );
        // Empty (the request is handed over whole) or not (appended).
        let prefix = i % 2;
        let mut got = vec![9; prefix];
        let now = std::time::Instant::now();
        let (got_series, got_dropped, got_pending) = match new_enc.encode_batch(
            &b,
            &opts,
            &mut new_scratch,
            7,
            |f| new_acc.apply(f, now),
            &mut got,
        ) {
            Some(d) => {
                direct += 1;
                (d.series, d.dropped, d.pending)
            }
            None => {
                declined += 1;
                assert_eq!(got.len(), prefix, "declined after writing: batch {i}");
                families_path(
                    &b,
                    &opts,
                    &mut new_scratch,
                    &new_acc,
                    &mut new_enc,
                    &mut got,
                )
            }
        };
        assert_eq!(got[..prefix], want[..prefix]);
        assert_eq!(canonical(&got[prefix..]), want[1..], "batch {i}: {b:?}");
        nuls += usize::from(format!("{b:?}").contains("a\\0b"));
        assert_eq!(got_series, want_series, "batch {i}");
        assert_eq!(got_dropped, want_dropped, "batch {i}");
        series += got_series;
        dropped += got_dropped.len();
        old_acc.commit(want_pending);
        new_acc.commit(got_pending);
        assert_eq!(old_acc.len(), new_acc.len(), "batch {i}");
    }
    // Every case was reached: all batches direct (some with NUL bytes), many
    // series, drop reasons of each kind, running delta totals.
    assert!(direct == 3000 && declined == 0, "{direct} {declined}");
    assert!(nuls > 20, "{nuls}");
    assert!(series > 50_000 && dropped > 3000, "{series} {dropped}");
    assert!(old_acc.len() > 100, "{}", old_acc.len());
}

/// Two families whose samples share a series (`x_total`: counter `x` and gauge
/// `x_total`), in batch order gauge first: the families path orders rows by
/// family name, so of two samples with one timestamp the gauge's (family
/// `x_total`, after `x`) is kept, whatever the batch order. The direct path
/// must keep the same one.
#[test]
fn encode_batch_orders_tying_samples_by_family_name() {
    let mut b = Batch::default();
    b.metrics
        .push(Metric::gauge("x_total", "", 5_000_000, 2.0, vec![]));
    let mut counter = Metric::gauge("x", "", 5_000_000, 1.0, vec![]);
    counter.kind = tfo_plugin_api::MetricKind::Sum;
    counter.is_monotonic = true;
    counter.temporality = tfo_plugin_api::Temporality::Cumulative;
    b.metrics.push(counter);
    b.metrics
        .push(Metric::gauge("a", "", 5_000_000, 3.0, vec![]));
    let mut out = Vec::new();
    let d = Encoder::default()
        .encode_batch(
            &b,
            &Options::default(),
            &mut Scratch::default(),
            7,
            |_| (),
            &mut out,
        )
        .unwrap();
    assert_eq!(d.series, 2);
    let req = <remote_write::WriteRequest as prost::Message>::decode(out.as_slice()).unwrap();
    let x = req
        .timeseries
        .iter()
        .find(|s| s.labels[0].value == "x_total")
        .unwrap();
    assert_eq!(x.labels[0].value, "x_total");
    assert_eq!(x.samples.len(), 1);
    assert_eq!(
        x.samples[0].value, 2.0,
        "the gauge's sample, last by family"
    );
    let mut want = Vec::new();
    Encoder::default().encode(&convert(&b, &Options::default()).families, 7, &mut want);
    assert_eq!(canonical(&out), want);
}
