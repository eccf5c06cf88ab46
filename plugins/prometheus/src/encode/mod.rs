//! From the agent's OpenTelemetry-aligned data model to Prometheus metric families;
//! pure functions, pinned by golden tests.
//!
//! The mapping follows the OpenTelemetry specification's "Prometheus and
//! OpenMetrics Compatibility" document (section "OTLP Metric points to Prometheus",
//! <https://github.com/open-telemetry/opentelemetry-specification/blob/main/specification/compatibility/prometheus_and_openmetrics.md>):
//!
//! - **names**: invalid characters become `_`, runs of `_` collapse to one, a
//!   leading digit gets a `_` prefix; the optional namespace is prepended as
//!   `<namespace>_`; the unit is converted ([`prom_unit`]: `s` -> `seconds`, `By`
//!   -> `bytes`, `{packet}` dropped, `1` -> `ratio`, `By/s` -> `bytes_per_second`)
//!   and appended unless the name already ends with it; the unit comes before the
//!   type suffix (`_total`, `_bucket`...);
//! - **gauges** -> gauge; **monotonic cumulative sums** -> counter, exposed as
//!   `<name>_total` (the OpenMetrics family name is without `_total`);
//!   **non-monotonic cumulative sums** -> gauge; **monotonic delta sums** are
//!   accumulated into a cumulative counter by the store ([`Family::delta`]);
//!   non-monotonic delta sums are dropped, as the spec requires;
//! - **histograms** (explicit buckets) -> `_bucket{le=...}` (cumulative, ending with
//!   `+Inf`), `_sum` (only when no observation can be negative, so it is monotonic)
//!   and `_count`; delta histograms are accumulated like delta sums;
//! - **summaries** -> `{quantile=...}` series plus `_sum` and `_count`;
//! - **attributes** -> labels: names sanitised to `[a-zA-Z_][a-zA-Z0-9_]*` (a
//!   leading digit gets `key_`), values stringified (bytes as base64); keys that
//!   collide after sanitising have their values joined with `;` in the order of the
//!   original keys; an attribute named `le` (histograms) or `quantile` (summaries)
//!   becomes `exported_le` / `exported_quantile`; empty values are dropped (an empty
//!   label is an absent label in Prometheus);
//! - **resource**: `service.namespace` + `service.name` -> `job`
//!   (`<namespace>/<name>`), `service.instance.id` -> `instance`, on every series;
//!   the other resource attributes go to one `target_info` series per job/instance
//!   (an OpenMetrics `info` family named `target`).
//!
//! The wire formats are in [`text`] (scrape endpoint) and [`remote_write`].

pub mod remote_write;
pub mod text;

use std::collections::BTreeMap;

use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, HistogramValue, KeyValue, Metric, MetricKind, PointValue, Resource,
    SummaryValue, Temporality,
};

/// Label set of one series: sorted by name, names unique, values non-empty.
pub type Labels = Vec<(String, String)>;

/// Prometheus / OpenMetrics metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyType {
    /// Last value.
    Gauge,
    /// Monotonic cumulative total (`_total`).
    Counter,
    /// Cumulative explicit-bucket histogram.
    Histogram,
    /// Quantile summary.
    Summary,
    /// OpenMetrics info (`target_info`); a gauge of value 1 in text 0.0.4.
    Info,
}

impl FamilyType {
    /// The type word of a `# TYPE` line in OpenMetrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FamilyType::Gauge => "gauge",
            FamilyType::Counter => "counter",
            FamilyType::Histogram => "histogram",
            FamilyType::Summary => "summary",
            FamilyType::Info => "info",
        }
    }
}

/// Name and metadata of a metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyMeta {
    /// OpenMetrics family name: sanitised, namespaced, with the unit suffix, without
    /// the type suffix (`http_server_duration_seconds`, `requests` for
    /// `requests_total`).
    pub name: String,
    /// Family type.
    pub kind: FamilyType,
    /// Description (HELP).
    pub help: String,
    /// Prometheus unit (`seconds`, `bytes`, `ratio`...), empty when unitless.
    pub unit: String,
}

/// A histogram point in Prometheus terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds, finite and strictly increasing.
    pub bounds: Vec<f64>,
    /// Per-bucket counts (not cumulative): `bounds.len() + 1` entries, or empty when
    /// the point only carries a count.
    pub counts: Vec<u64>,
    /// Number of observations (equal to the sum of `counts` when they are present).
    pub count: u64,
    /// Sum of observations; `None` when unknown or not monotonic (negative
    /// observations possible), in which case `_sum` is not exposed.
    pub sum: Option<f64>,
}

/// A summary point in Prometheus terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// `(quantile, value)`, quantiles in [0, 1], increasing.
    pub quantiles: Vec<(f64, f64)>,
    /// Number of observations.
    pub count: u64,
    /// Sum of observations; `None` when negative (not monotonic).
    pub sum: Option<f64>,
}

/// The value of one point.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Integer gauge or counter value.
    Int(i64),
    /// Floating-point gauge or counter value.
    Double(f64),
    /// Histogram.
    Histogram(Histogram),
    /// Summary.
    Summary(Summary),
}

impl Value {
    /// The value as a float (0 for histograms and summaries).
    pub fn as_f64(&self) -> f64 {
        match self {
            Value::Int(i) => *i as f64,
            Value::Double(d) => *d,
            Value::Histogram(_) | Value::Summary(_) => 0.0,
        }
    }
}

/// One point of a family: its labels, value and times.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Series labels (without `__name__`, `le`, `quantile`).
    pub labels: Labels,
    /// The value.
    pub value: Value,
    /// Start of the cumulative interval (0 when unknown); exposed as `_created` in
    /// OpenMetrics.
    pub start_unix_nano: u64,
    /// Time of the measurement (0 when unknown).
    pub time_unix_nano: u64,
}

/// A family and its points, as converted from one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Name and metadata.
    pub meta: FamilyMeta,
    /// Points carry deltas that must be accumulated before they are exposed or
    /// written (monotonic delta sums, delta histograms).
    pub delta: bool,
    /// The points.
    pub points: Vec<Point>,
}

/// Conversion settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Prefix of every metric name (not of `target_info`).
    pub namespace: Option<String>,
}

/// The families of one batch, plus what had to be dropped and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Converted {
    /// Families by name.
    pub families: Vec<Family>,
    /// One line per dropped metric or point, for the log.
    pub dropped: Vec<String>,
}

/// Label strings, label vectors and point vectors of families already exported,
/// kept for the next [`convert_with`] so that a point's labels are written into
/// memory that is already allocated instead of costing a `malloc` and a `free`
/// per label name and value (the sink's steady state: the same series batch
/// after batch). The sink keeps one and gives its families back with
/// [`Scratch::recycle`].
#[derive(Debug, Default)]
pub struct Scratch {
    /// Empty strings with their capacity.
    strings: Vec<String>,
    /// Label vectors of earlier points, strings included: a new point's labels
    /// overwrite them in place (their content is stale).
    labels: Vec<Labels>,
    /// Empty point vectors with their capacity.
    points: Vec<Vec<Point>>,
    /// The label plan of the last point that took the general path.
    shape: KeyShape,
    /// What the current batch has taken from each pool so far.
    taken: PoolCounts,
    /// The most one batch has taken from each pool. A pool keeps no more than
    /// that: a batch can hand back more than it took (the `target_info` family
    /// is built afresh for each batch), and with only the fixed caps below the
    /// pools grew by that much per batch until they reached them (in the SNMP
    /// scenario, ~3 KiB a second of live memory).
    need: PoolCounts,
}

/// A count per pool of a [`Scratch`].
#[derive(Debug, Default, Clone, Copy)]
struct PoolCounts {
    strings: usize,
    labels: usize,
    points: usize,
}

/// At most this many spare strings, and an eighth as many label vectors (with
/// their strings), are kept, so a single huge batch does not pin its memory for
/// ever (below that, what one batch needs: [`Scratch::need`]).
const MAX_POOLED_STRINGS: usize = 1 << 17;

/// At most this many point vectors (one per family) are kept.
const MAX_POOLED_POINT_VECS: usize = 1 << 12;

/// How many items a pool may keep: what one batch needs (the most an earlier
/// batch took, or what this one has taken so far), never more than `max`.
#[inline]
fn pool_cap(need: usize, taken: usize, max: usize) -> usize {
    need.max(taken).min(max)
}

impl Scratch {
    /// Marks the start of a batch's conversion: what the previous batch took
    /// raises [`Scratch::need`].
    pub(crate) fn start_batch(&mut self) {
        let (n, t) = (&mut self.need, self.taken);
        n.strings = n.strings.max(t.strings);
        n.labels = n.labels.max(t.labels);
        n.points = n.points.max(t.points);
        self.taken = PoolCounts::default();
    }

    /// `s` in a recycled string (a new one when none is left).
    #[inline]
    fn string(&mut self, s: &str) -> String {
        self.taken.strings += 1;
        match self.strings.pop() {
            Some(mut o) => {
                o.push_str(s);
                o
            }
            None => s.to_string(),
        }
    }

    /// An empty recycled string.
    #[inline]
    fn empty_string(&mut self) -> String {
        self.taken.strings += 1;
        self.strings.pop().unwrap_or_default()
    }

    /// A recycled label vector, its stale labels still in it (to be overwritten
    /// or given back with [`Scratch::truncate`]).
    #[inline]
    fn stale_labels(&mut self) -> Labels {
        self.taken.labels += 1;
        self.labels.pop().unwrap_or_default()
    }

    /// `labels` cut to `n` labels, the strings of the others kept for reuse.
    #[inline]
    fn truncate(&mut self, labels: &mut Labels, n: usize) {
        if labels.len() > n {
            for (k, v) in labels.drain(n..) {
                self.give_string(k);
                self.give_string(v);
            }
        }
    }

    /// An empty recycled point vector.
    #[inline]
    fn point_vec(&mut self) -> Vec<Point> {
        self.taken.points += 1;
        self.points.pop().unwrap_or_default()
    }

    /// Keeps a string for reuse.
    #[inline]
    fn give_string(&mut self, mut s: String) {
        let cap = pool_cap(self.need.strings, self.taken.strings, MAX_POOLED_STRINGS);
        if s.capacity() > 0 && self.strings.len() < cap {
            s.clear();
            self.strings.push(s);
        }
    }

    /// Keeps a label vector (and its strings) for reuse, as [`Scratch::recycle`]
    /// does for the points of a family.
    #[inline]
    fn give_labels(&mut self, labels: Labels) {
        let cap = pool_cap(self.need.labels, self.taken.labels, MAX_POOLED_STRINGS / 8);
        if labels.capacity() > 0 && self.labels.len() < cap {
            self.labels.push(labels);
        }
    }

    /// Takes back the label and point memory of exported families (the scrape
    /// store copies what it keeps, and only for new series), for the next
    /// [`convert_with`].
    pub fn recycle(&mut self, families: Vec<Family>) {
        for f in families {
            let mut points = f.points;
            for p in points.drain(..) {
                self.give_labels(p.labels);
            }
            let cap = pool_cap(self.need.points, self.taken.points, MAX_POOLED_POINT_VECS);
            if points.capacity() > 0 && self.points.len() < cap {
                self.points.push(points);
            }
        }
    }

    /// Number of label vectors, strings and point vectors kept for reuse.
    pub fn pooled(&self) -> usize {
        self.labels.len() + self.strings.len() + self.points.len()
    }
}

/// Converts the metrics of a batch (spans and logs are ignored). Metrics that map
/// to the same family are merged; one whose type conflicts with an earlier one is
/// dropped, as the spec requires.
pub fn convert(batch: &Batch, opts: &Options) -> Converted {
    convert_with(batch, opts, &mut Scratch::default())
}

/// [`convert`], taking the points' label strings and vectors from `scratch`
/// (filled by [`Scratch::recycle`] with an earlier batch's families): the same
/// result, without an allocation per label once the scratch is warm.
pub fn convert_with(batch: &Batch, opts: &Options, scratch: &mut Scratch) -> Converted {
    scratch.start_batch();
    let mut out = Converted::default();
    let (resource_labels, target) = resource_labels(&batch.resource);
    // Families in order of creation, found by name through `index`; the memo
    // below also remembers the slot of the previous metric's family, so a run of
    // metrics of one family looks it up once. Sorted by name at the end.
    let mut families: Vec<Family> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(t) = target {
        index.insert(t.meta.name.clone(), 0);
        families.push(t);
    }
    // Batches usually carry runs of metrics of one name (one metric per point, or
    // per attribute set): the family name and unit of the previous metric are
    // reused, so a metric that joins an existing family allocates nothing of its
    // own, only its points do.
    let mut memo: Option<NameMemo<'_>> = None;
    for metric in batch.metrics.iter() {
        let Some((kind, delta)) = family_kind(metric, &mut out.dropped) else {
            continue;
        };
        let name = metric.name.as_str();
        let names = NameMemo::for_metric(&mut memo, metric, kind, opts);
        let Some(family_name) = &names.family else {
            out.dropped
                .push(format!("metric {name:?}: no usable name; dropped"));
            continue;
        };
        let slot = match names.slot {
            Some(i) => Some(i),
            None => {
                let i = index.get(family_name.as_str()).copied();
                names.slot = i;
                i
            }
        };
        match slot.map(|i| &mut families[i]) {
            None => {
                let mut points = scratch.point_vec();
                convert_points(
                    metric,
                    kind,
                    &resource_labels,
                    &mut points,
                    &mut out.dropped,
                    scratch,
                );
                index.insert(family_name.clone(), families.len());
                names.slot = Some(families.len());
                families.push(Family {
                    meta: FamilyMeta {
                        name: family_name.clone(),
                        kind,
                        help: metric.description.as_str().to_string(),
                        unit: names.prom_unit.clone(),
                    },
                    delta,
                    points,
                });
            }
            Some(existing) if existing.meta.kind == kind && existing.delta == delta => {
                if existing.meta.help.is_empty() {
                    existing.meta.help = metric.description.as_str().to_string();
                }
                convert_points(
                    metric,
                    kind,
                    &resource_labels,
                    &mut existing.points,
                    &mut out.dropped,
                    scratch,
                );
            }
            Some(existing) => {
                // Converted for the reasons of dropped points only, as before.
                let mut points = Vec::new();
                convert_points(
                    metric,
                    kind,
                    &resource_labels,
                    &mut points,
                    &mut out.dropped,
                    scratch,
                );
                out.dropped.push(format!(
                    "metric {:?}: family {} is already a {}{}; dropped",
                    metric.name.as_str(),
                    existing.meta.name,
                    if existing.delta { "delta " } else { "" },
                    existing.meta.kind.as_str()
                ));
            }
        }
    }
    // Names are unique: the order the map by name had.
    if !families.windows(2).all(|w| w[0].meta.name < w[1].meta.name) {
        families.sort_unstable_by(|a, b| a.meta.name.cmp(&b.meta.name));
    }
    out.families = families;
    out
}

/// The names [`convert`] computed for the previous metric.
struct NameMemo<'a> {
    name: &'a str,
    unit: &'a str,
    kind: FamilyType,
    family: Option<String>,
    prom_unit: String,
    /// Where `family` is in [`convert_with`]'s vector, once looked up.
    slot: Option<usize>,
}

impl<'a> NameMemo<'a> {
    /// The names of `metric`: the previous metric's (kept in `memo`) when it has
    /// the same name, unit and kind, else worked out and kept for the next one.
    fn for_metric<'m>(
        memo: &'m mut Option<NameMemo<'a>>,
        metric: &'a Metric,
        kind: FamilyType,
        opts: &Options,
    ) -> &'m mut NameMemo<'a> {
        let (name, unit) = (metric.name.as_str(), metric.unit.as_str());
        let names = match memo.take() {
            Some(m) if m.name == name && m.unit == unit && m.kind == kind => m,
            _ => {
                let prom = prom_unit(unit);
                NameMemo {
                    name,
                    unit,
                    kind,
                    family: family_name(name, &prom, kind, opts.namespace.as_deref()),
                    prom_unit: prom,
                    slot: None,
                }
            }
        };
        memo.insert(names)
    }
}

/// The family type of a metric and whether its points are deltas, or `None`
/// (with the reason in `dropped`).
fn family_kind(metric: &Metric, dropped: &mut Vec<String>) -> Option<(FamilyType, bool)> {
    Some(
        match (metric.kind, metric.is_monotonic, metric.temporality) {
            (MetricKind::Gauge, _, _) => (FamilyType::Gauge, false),
            (MetricKind::Sum, true, Temporality::Delta) => (FamilyType::Counter, true),
            (MetricKind::Sum, true, _) => (FamilyType::Counter, false),
            (MetricKind::Sum, false, Temporality::Delta) => {
                dropped.push(format!(
                    "metric {:?}: non-monotonic delta sums have no Prometheus equivalent; dropped",
                    metric.name.as_str()
                ));
                return None;
            }
            (MetricKind::Sum, false, _) => (FamilyType::Gauge, false),
            (MetricKind::Histogram, _, Temporality::Delta) => (FamilyType::Histogram, true),
            (MetricKind::Histogram, _, _) => (FamilyType::Histogram, false),
            (MetricKind::Summary, _, _) => (FamilyType::Summary, false),
        },
    )
}

/// The points of `metric` appended to `points` (the reason of each dropped one in
/// `dropped`).
fn convert_points(
    metric: &Metric,
    kind: FamilyType,
    resource_labels: &Labels,
    points: &mut Vec<Point>,
    dropped: &mut Vec<String>,
    scratch: &mut Scratch,
) {
    points.reserve(metric.points.len());
    for p in metric.points.iter() {
        match convert_point(p, kind, resource_labels, scratch) {
            Ok(point) => points.push(point),
            Err(why) => dropped.push(format!(
                "metric {:?}: point dropped: {why}",
                metric.name.as_str()
            )),
        }
    }
}

fn convert_point(
    p: &DataPoint,
    kind: FamilyType,
    resource_labels: &Labels,
    scratch: &mut Scratch,
) -> Result<Point, String> {
    let value = match (kind, &p.value) {
        (FamilyType::Gauge | FamilyType::Counter, PointValue::Int(i)) => Value::Int(*i),
        (FamilyType::Gauge | FamilyType::Counter, PointValue::Double(d)) => Value::Double(*d),
        (FamilyType::Histogram, PointValue::Histogram(h)) => Value::Histogram(histogram(h)?),
        (FamilyType::Summary, PointValue::Summary(s)) => Value::Summary(summary(s)),
        (_, v) => {
            return Err(format!(
                "a {} value in a {} metric",
                value_kind(v),
                kind.as_str()
            ))
        }
    };
    let reserved = match kind {
        FamilyType::Histogram => Some("le"),
        FamilyType::Summary => Some("quantile"),
        _ => None,
    };
    Ok(Point {
        labels: point_labels_with(&p.attributes, reserved, resource_labels, scratch),
        value,
        start_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
    })
}

fn value_kind(v: &PointValue) -> &'static str {
    match v {
        PointValue::Double(_) => "double",
        PointValue::Int(_) => "int",
        PointValue::Histogram(_) => "histogram",
        PointValue::Summary(_) => "summary",
    }
}

fn histogram(h: &HistogramValue) -> Result<Histogram, String> {
    let bounds: Vec<f64> = h.bounds.to_vec();
    if bounds.iter().any(|b| !b.is_finite()) {
        return Err("histogram bounds must be finite".into());
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err("histogram bounds must be strictly increasing".into());
    }
    let counts: Vec<u64> = h.bucket_counts.to_vec();
    let (bounds, counts, count) = if counts.is_empty() {
        // Only count (and sum) known: a single +Inf bucket.
        (Vec::new(), Vec::new(), h.count)
    } else if counts.len() != bounds.len() + 1 {
        return Err(format!(
            "{} bucket counts for {} bounds (expected {})",
            counts.len(),
            bounds.len(),
            bounds.len() + 1
        ));
    } else {
        // `_count` must equal the `+Inf` bucket; trust the buckets.
        let total = counts.iter().fold(0u64, |a, c| a.saturating_add(*c));
        (bounds, counts, total)
    };
    // `_sum` only when it is monotonic: no negative observation is possible.
    let negative_possible = match h.min.into_option() {
        Some(min) => min < 0.0,
        None => bounds
            .first()
            .is_some_and(|b| *b < 0.0 && counts.first().is_some_and(|c| *c > 0)),
    };
    let sum = h
        .sum
        .into_option()
        .filter(|s| s.is_finite() && *s >= 0.0 && !negative_possible);
    Ok(Histogram {
        bounds,
        counts,
        count,
        sum,
    })
}

fn summary(s: &SummaryValue) -> Summary {
    let mut quantiles: Vec<(f64, f64)> = s
        .quantiles
        .iter()
        .filter(|q| (0.0..=1.0).contains(&q.quantile))
        .map(|q| (q.quantile, q.value))
        .collect();
    quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
    quantiles.dedup_by(|a, b| a.0 == b.0);
    Summary {
        quantiles,
        count: s.count,
        sum: Some(s.sum).filter(|s| s.is_finite() && *s >= 0.0),
    }
}

/// `job`/`instance` labels of a resource, and its `target_info` family when it has
/// other attributes.
pub fn resource_labels(resource: &Resource) -> (Labels, Option<Family>) {
    let get = |key: &str| {
        resource
            .attributes
            .iter()
            .rev()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| attribute_value(&kv.value))
            .filter(|v| !v.is_empty())
    };
    let mut labels = Vec::new();
    if let Some(instance) = get("service.instance.id") {
        labels.push(("instance".to_string(), instance));
    }
    if let Some(name) = get("service.name") {
        let job = match get("service.namespace") {
            Some(ns) => format!("{ns}/{name}"),
            None => name,
        };
        labels.push(("job".to_string(), job));
    }
    labels.sort();
    let others: Vec<KeyValue> = resource
        .attributes
        .iter()
        .filter(|kv| {
            !matches!(
                kv.key.as_str(),
                "service.name" | "service.namespace" | "service.instance.id"
            )
        })
        .cloned()
        .collect();
    let target = if others.is_empty() {
        None
    } else {
        Some(Family {
            meta: FamilyMeta {
                name: "target".to_string(),
                kind: FamilyType::Info,
                help: "Target metadata".to_string(),
                unit: String::new(),
            },
            delta: false,
            points: vec![Point {
                labels: point_labels(&others, None, &labels),
                value: Value::Int(1),
                start_unix_nano: 0,
                time_unix_nano: 0,
            }],
        })
    };
    (labels, target)
}

/// A point's labels: its attributes sanitised (colliding keys joined with `;` in
/// the order of the original keys), a `reserved` name (`le`, `quantile`) renamed to
/// `exported_<name>`, then the resource's `job`/`instance`, which win; empty values
/// dropped; sorted by name.
pub fn point_labels(attrs: &[KeyValue], reserved: Option<&str>, resource: &Labels) -> Labels {
    point_labels_with(attrs, reserved, resource, &mut Scratch::default())
}

/// [`point_labels`] with its strings and vector taken from `scratch`.
fn point_labels_with(
    attrs: &[KeyValue],
    reserved: Option<&str>,
    resource: &Labels,
    scratch: &mut Scratch,
) -> Labels {
    // The common case: every key already is a valid label name, none reserved.
    // Then no two different keys can collide, and each label is its key and
    // value copied once (no sanitising, no collision search).
    if attrs
        .iter()
        .all(|kv| is_label_name(kv.key.as_str()) && Some(kv.key.as_str()) != reserved)
    {
        // An earlier point's labels, overwritten in place (usually the same
        // number of labels: no string changes hands).
        let mut map: Labels = scratch.stale_labels();
        for (i, kv) in attrs.iter().enumerate() {
            match map.get_mut(i) {
                Some((key, value)) => {
                    key.clear();
                    key.push_str(kv.key.as_str());
                    value.clear();
                    push_attribute_value(value, &kv.value);
                }
                None => {
                    let key = scratch.string(kv.key.as_str());
                    let mut value = scratch.empty_string();
                    push_attribute_value(&mut value, &kv.value);
                    map.push((key, value));
                }
            }
        }
        scratch.truncate(&mut map, attrs.len());
        map.reserve(resource.len());
        // Stable: of a repeated key the last one stays (attributes are a map).
        if !map.windows(2).all(|w| name_cmp(&w[0].0, &w[1].0).is_lt()) {
            map.sort_by(|a, b| name_cmp(&a.0, &b.0));
            map.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    std::mem::swap(&mut later.1, &mut earlier.1);
                }
                same
            });
        }
        return finish_labels(map, resource, scratch);
    }
    let map = point_labels_general_map(attrs, reserved, scratch);
    finish_labels(map, resource, scratch)
}

/// A gauge family `f` of one point with `labels`, for tests that hand a point's
/// labels back to a [`Scratch`].
#[cfg(test)]
fn one_point_family(labels: Labels) -> Vec<Family> {
    vec![Family {
        meta: FamilyMeta {
            name: "f".into(),
            kind: FamilyType::Gauge,
            help: String::new(),
            unit: String::new(),
        },
        delta: false,
        points: vec![Point {
            labels,
            value: Value::Int(1),
            start_unix_nano: 0,
            time_unix_nano: 0,
        }],
    }]
}

#[cfg(test)]
mod scratch_tests {
    use super::*;

    /// A batch hands back more than it took (its `target_info` family is built
    /// afresh each time): the pools stay at what one batch needs instead of
    /// growing by that much per batch, and the conversion still reuses them.
    #[test]
    fn pools_do_not_grow_batch_after_batch() {
        let mut batch = tfo_plugin_api::testing::cpu_utilization_batch(50);
        batch
            .resource
            .attributes
            .push(KeyValue::new("host.name", "h1"));
        let opts = Options::default();
        let mut scratch = Scratch::default();
        let mut pooled = Vec::new();
        for _ in 0..200 {
            let converted = convert_with(&batch, &opts, &mut scratch);
            assert!(converted.families.iter().any(|f| f.meta.name == "target"));
            scratch.recycle(converted.families);
            pooled.push((scratch.pooled(), scratch.points.len()));
        }
        assert!(pooled[5].0 > 0);
        assert_eq!(pooled[5], pooled[199], "{:?}", &pooled[..8]);
    }

    /// Label vectors of other sizes are reused: longer ones cut (their strings
    /// kept), shorter ones extended; the labels are those of a fresh conversion.
    #[test]
    fn stale_label_vectors_of_any_size_are_overwritten() {
        let resource: Labels = vec![("job".into(), "j".into())];
        let mut scratch = Scratch::default();
        for n in [5usize, 2, 7, 0, 3, 3, 9, 1] {
            let attrs: Vec<KeyValue> = (0..n)
                .map(|i| KeyValue::new(format!("k{i}").as_str(), i as i64))
                .collect();
            let labels = point_labels_with(&attrs, None, &resource, &mut scratch);
            assert_eq!(labels, point_labels(&attrs, None, &resource), "{n}");
            scratch.recycle(one_point_family(labels));
            assert_eq!(scratch.labels.len(), 1);
        }
        // Strings of cut vectors were kept (9 labels, then 1).
        assert!(scratch.strings.len() >= 16, "{}", scratch.strings.len());
    }
}

/// [`point_labels`] for any keys: sanitised, colliding names joined, a reserved
/// name renamed. The reference [`point_labels_general_map`] is checked against:
/// fresh strings for every label, no scratch.
#[cfg(test)]
fn point_labels_general(attrs: &[KeyValue], reserved: Option<&str>, resource: &Labels) -> Labels {
    // Original key order decides the join order of colliding keys.
    let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let mut map: Vec<(String, String)> = Vec::new();
    let mut last_key: Option<&str> = None;
    for kv in sorted {
        // A repeated identical key: the last one wins (attributes are a map).
        let Some(mut name) = label_name(kv.key.as_str()) else {
            continue;
        };
        if Some(name.as_str()) == reserved {
            name = format!("exported_{name}");
        }
        let value = attribute_value(&kv.value);
        let same_key = last_key == Some(kv.key.as_str());
        last_key = Some(kv.key.as_str());
        match map.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) if same_key => *v = value,
            Some((_, v)) => {
                v.push(';');
                v.push_str(&value);
            }
            None => map.push((name, value)),
        }
    }
    finish_labels(map, resource, &mut Scratch::default())
}

/// [`point_labels_with`] for keys that are not all label names, before
/// [`finish_labels`]: sanitised names, colliding ones joined with `;` in key
/// order, a repeated key's last value kept, a `reserved` name renamed. Written
/// into an earlier point's label vector and strings, as the fast path is:
/// sources whose keys have dots (`snmp.target`, `host.name`) take this path for
/// every point, and with a fresh vector and two strings per label it was most
/// of the sink's time, and its pool of label vectors only ever grew. The names,
/// their order and collisions depend on the keys only, so they are worked out
/// once per run of points with the same keys ([`KeyShape`]).
fn point_labels_general_map(
    attrs: &[KeyValue],
    reserved: Option<&str>,
    scratch: &mut Scratch,
) -> Labels {
    let mut shape = std::mem::take(&mut scratch.shape);
    if !shape.fits(attrs, reserved) {
        shape.plan(attrs, reserved);
    }
    let mut map: Labels = scratch.stale_labels();
    for (j, name) in shape.names.iter().enumerate() {
        match map.get_mut(j) {
            Some((key, _)) => {
                key.clear();
                key.push_str(name);
            }
            None => {
                let (k, v) = (scratch.string(name), scratch.empty_string());
                map.push((k, v));
            }
        }
    }
    for step in &shape.steps {
        let value = &mut map[step.slot].1;
        match step.join {
            LabelJoin::First | LabelJoin::Replace => value.clear(),
            LabelJoin::Append => value.push(';'),
        }
        push_attribute_value(value, &attrs[step.attr].value);
    }
    scratch.truncate(&mut map, shape.names.len());
    scratch.shape = shape;
    map
}

/// What [`point_labels_general_map`] does with the attributes of one set of
/// keys: the label names, and which attribute's value goes to which label.
#[derive(Debug, Default)]
struct KeyShape {
    /// The keys the plan is for, in attribute order (none before the first
    /// plan: the empty plan, right for no keys).
    keys: Vec<String>,
    reserved: Option<String>,
    /// The label names, in the order labels are created.
    names: Vec<String>,
    /// Attributes in key order, each to its label; skipped keys are absent.
    steps: Vec<LabelStep>,
    /// Attribute positions in key order (kept for its memory).
    order: Vec<usize>,
}

/// One attribute's value into one label.
#[derive(Debug, Clone, Copy)]
struct LabelStep {
    attr: usize,
    slot: usize,
    join: LabelJoin,
}

/// How a value joins its label.
#[derive(Debug, Clone, Copy)]
enum LabelJoin {
    /// The label's first value.
    First,
    /// A repeated identical key: the last value wins (attributes are a map).
    Replace,
    /// Another key with the same sanitised name: joined with `;`.
    Append,
}

impl KeyShape {
    /// Whether the plan was made for exactly these keys and reserved name.
    fn fits(&self, attrs: &[KeyValue], reserved: Option<&str>) -> bool {
        self.reserved.as_deref() == reserved
            && self.keys.len() == attrs.len()
            && self
                .keys
                .iter()
                .zip(attrs)
                .all(|(k, kv)| k.as_str() == kv.key.as_str())
    }

    /// Works out names and steps for `attrs`' keys, as the rules say: keys in
    /// order (stable, so colliding keys join in the original order), each
    /// sanitised; one that sanitises to nothing is skipped.
    fn plan(&mut self, attrs: &[KeyValue], reserved: Option<&str>) {
        self.keys.truncate(attrs.len());
        for (i, kv) in attrs.iter().enumerate() {
            match self.keys.get_mut(i) {
                Some(k) => {
                    k.clear();
                    k.push_str(kv.key.as_str());
                }
                None => self.keys.push(kv.key.as_str().to_string()),
            }
        }
        self.reserved = reserved.map(str::to_string);
        self.order.clear();
        self.order.extend(0..attrs.len());
        self.order
            .sort_by(|&a, &b| attrs[a].key.as_str().cmp(attrs[b].key.as_str()));
        self.names.clear();
        self.steps.clear();
        let mut name = String::new();
        let mut last_key: Option<&str> = None;
        for &i in &self.order {
            let key = attrs[i].key.as_str();
            if !label_name_into(key, &mut name) {
                continue;
            }
            if Some(name.as_str()) == reserved {
                name.insert_str(0, "exported_");
            }
            let same_key = last_key == Some(key);
            last_key = Some(key);
            let (slot, join) = match self.names.iter().position(|n| *n == name) {
                Some(j) if same_key => (j, LabelJoin::Replace),
                Some(j) => (j, LabelJoin::Append),
                None => {
                    self.names.push(name.clone());
                    (self.names.len() - 1, LabelJoin::First)
                }
            };
            self.steps.push(LabelStep {
                attr: i,
                slot,
                join,
            });
        }
    }
}

/// [`point_labels`]' last step: the resource's labels win, empty values go, sorted
/// by name.
fn finish_labels(mut map: Labels, resource: &Labels, scratch: &mut Scratch) -> Labels {
    for (k, v) in resource {
        match map.iter_mut().find(|(name, _)| name == k) {
            Some((_, old)) => old.clone_from(v),
            None => {
                let (k, v) = (scratch.string(k), scratch.string(v));
                map.push((k, v))
            }
        }
    }
    // Empty values go (rare: their strings back to the scratch, order kept).
    let mut i = 0;
    while i < map.len() {
        if map[i].1.is_empty() {
            let (k, v) = map.remove(i);
            scratch.give_string(k);
            scratch.give_string(v);
        } else {
            i += 1;
        }
    }
    if !map.windows(2).all(|w| name_cmp(&w[0].0, &w[1].0).is_lt()) {
        map.sort_unstable_by(|a, b| name_cmp(&a.0, &b.0));
    }
    map
}

/// Byte order of two label names (`String`'s order); most differ in their first
/// byte, decided here without a `memcmp` call.
#[inline]
fn name_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Whether `key` is its own label name ([`label_name`] returns it unchanged):
/// `[a-zA-Z_][a-zA-Z0-9_]*`, no leading digit, no run of `_`, not `_` alone.
fn is_label_name(key: &str) -> bool {
    let b = key.as_bytes();
    match b {
        [] | [b'_'] => return false,
        [first, ..] if first.is_ascii_digit() => return false,
        _ => {}
    }
    // One pass through a class table: valid characters, and no `_` right after
    // another (two `_` in a row sum to 4).
    let mut prev = 0u8;
    for &c in b {
        let class = LABEL_CHAR[c as usize];
        if class == 0 || class + prev == 4 {
            return false;
        }
        prev = class;
    }
    true
}

/// Byte classes of label-name characters: 0 not allowed, 1 `[a-zA-Z0-9]`, 2 `_`.
static LABEL_CHAR: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b == b'_' {
            2
        } else if b.is_ascii_alphanumeric() {
            1
        } else {
            0
        };
        c += 1;
    }
    t
};

/// An attribute value as a label value: strings as they are, booleans and numbers
/// in their usual text form, bytes as base64.
pub fn attribute_value(v: &AnyValue) -> String {
    let mut s = String::new();
    push_attribute_value(&mut s, v);
    s
}

/// [`attribute_value`] appended to `out` (a recycled string in [`convert_with`]).
fn push_attribute_value(out: &mut String, v: &AnyValue) {
    match v {
        AnyValue::Str(s) => out.push_str(s.as_str()),
        AnyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AnyValue::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        AnyValue::Double(d) => out.push_str(&format_double(*d)),
        AnyValue::Bytes(b) => out.push_str(&tfo_plugin_common::auth::base64(b)),
    }
}

/// A Prometheus label name for an attribute key (`[a-zA-Z_][a-zA-Z0-9_]*`):
/// invalid characters become `_`, runs of `_` collapse, a leading digit gets
/// `key_`. `None` when nothing usable is left.
pub fn label_name(key: &str) -> Option<String> {
    let mut s = String::with_capacity(key.len());
    label_name_into(key, &mut s).then_some(s)
}

/// [`label_name`] written into `out` (cleared first, reused by
/// [`point_labels_general_map`]); `false` when nothing usable is left.
fn label_name_into(key: &str, out: &mut String) -> bool {
    out.clear();
    sanitize_into(key, false, out);
    if out.is_empty() || out == "_" {
        return false;
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    true
}

/// Replaces characters outside `[a-zA-Z0-9_]` (plus `:` for metric names) with `_`
/// and collapses runs of `_`.
fn sanitize(s: &str, allow_colon: bool) -> String {
    let mut out = String::with_capacity(s.len());
    sanitize_into(s, allow_colon, &mut out);
    out
}

/// [`sanitize`] appended to `out` (a `_` at its end joins the run).
fn sanitize_into(s: &str, allow_colon: bool, out: &mut String) {
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':') {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
}

/// The family name of a metric: namespace, sanitised name, unit suffix (unless the
/// name already ends with it); for counters any trailing `_total` is removed first
/// (the `_total` sample suffix is added when rendering). `None` for a name with no
/// usable character.
pub fn family_name(
    name: &str,
    unit: &str,
    kind: FamilyType,
    namespace: Option<&str>,
) -> Option<String> {
    if sanitize(name, true).trim_matches('_').is_empty() {
        return None;
    }
    let full = match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}_{name}"),
        _ => name.to_string(),
    };
    let mut n = sanitize(&full, true);
    if kind == FamilyType::Counter {
        if let Some(stripped) = n.strip_suffix("_total") {
            if !stripped.is_empty() {
                n = stripped.to_string();
            }
        }
    }
    if !unit.is_empty() && n != unit && !n.ends_with(&format!("_{unit}")) {
        n = sanitize(&format!("{n}_{unit}"), true);
    }
    if n.starts_with(|c: char| c.is_ascii_digit()) {
        n.insert(0, '_');
    }
    Some(n)
}

/// The Prometheus unit word of a UCUM unit, per the compatibility spec: common
/// abbreviations spelled out (`ms` -> `milliseconds`, `By` -> `bytes`), annotations
/// in braces dropped (`{packet}` -> ``), `1` -> `ratio`, `a/b` -> `a_per_b` (`By/s`
/// -> `bytes_per_second`); anything else sanitised.
pub fn prom_unit(unit: &str) -> String {
    let unit = unit.trim();
    if unit == "1" {
        return "ratio".to_string();
    }
    // Drop `{...}` annotations.
    let mut stripped = String::with_capacity(unit.len());
    let mut depth = 0u32;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => stripped.push(c),
            _ => {}
        }
    }
    let (main, per) = match stripped.split_once('/') {
        Some((m, p)) => (m.trim(), Some(p.trim())),
        None => (stripped.trim(), None),
    };
    let main = match main {
        "1" => String::new(),
        m => unit_word(m).map_or_else(|| unit_token(m), str::to_string),
    };
    let per = per
        .map(|p| per_unit_word(p).map_or_else(|| unit_token(p), str::to_string))
        .unwrap_or_default();
    match (main.is_empty(), per.is_empty()) {
        (_, true) => main,
        (true, false) => format!("per_{per}"),
        (false, false) => format!("{main}_per_{per}"),
    }
}

/// A unit the tables do not know: alphanumerics kept, the rest as single `_`.
fn unit_token(s: &str) -> String {
    sanitize(s, false).trim_matches('_').to_string()
}

fn unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        // Time
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        // Bytes
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        // SI
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        // Misc
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit_word(u: &str) -> Option<&'static str> {
    Some(match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// A float the way Go's `strconv.FormatFloat(f, 'g', -1, 64)` prints it, which is
/// what Prometheus' own client libraries write: the shortest digits that round-trip,
/// in exponent form when the decimal exponent is below -4 or at least 6 (`1e-05`,
/// `0.0001`, `100000`, `1e+06`, `1.234567e+06`); `NaN`, `+Inf` and `-Inf` as the
/// exposition formats spell them.
pub fn format_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `-1.2345e6`, `5e-7`.
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// The canonical text of an `le` or `quantile` label value (OpenMetrics
/// "Canonical Numbers"): Go's `%g` with `.0` appended when there is neither a
/// decimal point nor an exponent, `+Inf` for infinity: `0.5`, `1.0`, `10.0`,
/// `100000.0`, `1e+06`.
pub fn canonical_float(f: f64) -> String {
    let s = format_double(f);
    if s.contains(['.', 'e', 'I', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod equivalence_tests;
#[cfg(test)]
mod tests;
