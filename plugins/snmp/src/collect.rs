//! One collection: every target polled concurrently on the instance runtime, the
//! answers turned into metrics.
//!
//! - [`Plan`]: what to ask every target, derived once from the settings;
//! - [`TargetPoller`]: one target's session plus the state its counters need
//!   (start times, last values);
//! - [`build_metrics`]: the pure mapping of one target's variables to metrics,
//!   unit-tested without a network;
//! - [`Collector`]: runs all pollers within `collect_timeout` and merges the
//!   results; a target that fails is reported by `snmp.up` = 0 and in health,
//!   the others are unaffected.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tfo_plugin_api::__private::abi_stable::std_types::RVec;
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, KeyValue, Metric, MetricKind, PointValue, Temporality,
};
use tfo_plugin_common::reuse::Spare;

use crate::{
    client::{Session, SnmpError},
    config::{CustomOid, OidType, Settings, Target},
    encode::{Oid, Value},
    mibs::{self, ObjKind, Object, Render, ScalarGroup, TableDef},
};

/// What every target is asked, computed once from the settings.
#[derive(Debug)]
pub struct Plan {
    /// Scalar groups.
    pub scalars: Vec<&'static ScalarGroup>,
    /// Tables.
    pub tables: Vec<&'static TableDef>,
    /// User-defined objects.
    pub oids: Vec<CustomOid>,
    /// Instance OIDs fetched with GET: the built-in scalars, and every
    /// user-defined OID (those that answer are scalars, the others are walked).
    pub get_oids: Vec<Oid>,
    /// Subtrees walked for the tables (entries, single columns and the columns
    /// giving foreign labels), without overlaps.
    pub walk_roots: Vec<Oid>,
    /// GETBULK max-repetitions.
    pub max_repetitions: u32,
}

impl Plan {
    /// The plan of a configuration.
    pub fn new(s: &Settings) -> Self {
        let mut get_oids: Vec<Oid> = s
            .scalars
            .iter()
            .flat_map(|g| {
                g.objects
                    .iter()
                    .map(|o| Oid::from_slice(g.base).child(&[o.sub, 0]))
            })
            .collect();
        get_oids.extend(s.oids.iter().map(|o| o.oid.clone()));
        let mut roots: Vec<Oid> = Vec::new();
        for t in &s.tables {
            let entry = Oid::from_slice(t.entry);
            if t.walk_entry {
                roots.push(entry);
            } else {
                roots.extend(t.columns.iter().map(|c| entry.child(&[c.sub])));
            }
        }
        for t in &s.tables {
            for f in t.foreign_labels {
                roots.push(Oid::from_slice(f.column));
            }
        }
        // Drop a root inside another one (ifName when ifXTable is walked anyway).
        let all = roots.clone();
        roots.retain(|r| !all.iter().any(|o| o != r && r.starts_with(o)));
        roots.dedup();
        get_oids.dedup();
        Plan {
            scalars: s.scalars.clone(),
            tables: s.tables.clone(),
            oids: s.oids.clone(),
            get_oids,
            walk_roots: roots,
            max_repetitions: s.max_repetitions,
        }
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The state of one counter series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Series {
    start_ns: u64,
    last: u64,
}

/// Counter bookkeeping of one target: start times, last values, and the agent's
/// sysUpTime to notice restarts.
///
/// Series are keyed by metric name, then instance index, so that looking a known
/// series up (every counter of every collection) borrows the name and index
/// instead of allocating a key.
#[derive(Debug, Default)]
pub struct CounterState {
    series: HashMap<String, HashMap<Vec<u32>, Series>>,
    last_poll_ns: Option<u64>,
    last_uptime_ticks: Option<u32>,
}

impl CounterState {
    /// The start time of a counter observed at `now_ns` with `value`: the first
    /// observation's time for a new series; the previous collection's time after a
    /// decrease (a Counter32 wrap or a reset: the new count began after it).
    fn start_for(&mut self, name: &str, index: &[u32], value: u64, now_ns: u64) -> u64 {
        let prev_poll = self.last_poll_ns;
        let update = |s: &mut Series| {
            if value < s.last {
                s.start_ns = prev_poll.unwrap_or(now_ns);
            }
            s.last = value;
            s.start_ns
        };
        // A known series (every collection after the first): two lookups, no key
        // allocated.
        if let Some(s) = self
            .series
            .get_mut(name)
            .and_then(|by_index| by_index.get_mut(index))
        {
            return update(s);
        }
        let s = self
            .series
            .entry(name.to_string())
            .or_default()
            .entry(index.to_vec())
            .or_insert(Series {
                start_ns: now_ns,
                last: value,
            });
        update(s)
    }

    /// Called with the agent's sysUpTime before the counters of a collection: a
    /// smaller value than last time means the agent restarted, and every counter
    /// restarted with it, even one that has already passed its old value.
    fn observe_uptime(&mut self, ticks: u32, now_ns: u64) {
        if let (Some(last), Some(prev)) = (self.last_uptime_ticks, self.last_poll_ns) {
            if ticks < last {
                let restart = now_ns
                    .saturating_sub(u64::from(ticks) * 10_000_000)
                    .max(prev);
                for s in self.series.values_mut().flat_map(|m| m.values_mut()) {
                    s.start_ns = restart;
                }
            }
        }
        self.last_uptime_ticks = Some(ticks);
    }

    fn finish(&mut self, now_ns: u64) {
        self.last_poll_ns = Some(now_ns);
    }
}

/// Text of a value for an attribute.
pub fn render(value: &Value, how: Render) -> Option<String> {
    fn hex(b: &[u8]) -> String {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
    Some(match value {
        Value::OctetString(b) => match (how, std::str::from_utf8(b)) {
            (Render::Text, Ok(s))
                if !s
                    .trim_end_matches('\0')
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) =>
            {
                s.trim_end_matches('\0').to_string()
            }
            _ => hex(b),
        },
        Value::ObjectId(o) => o.to_string(),
        Value::IpAddress(a) => format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]),
        Value::Integer(i) => i.to_string(),
        Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => v.to_string(),
        Value::Counter64(v) => v.to_string(),
        Value::Opaque(b) => hex(b),
        Value::Null | Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {
            return None
        }
    })
}

/// A non-negative integer value (for counters).
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Counter32(x) | Value::Gauge32(x) | Value::TimeTicks(x) => Some(u64::from(*x)),
        Value::Counter64(x) => Some(*x),
        Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// The point value of a number: integers as Int, Counter64 above i64::MAX as
/// Double.
fn number_point(v: &Value) -> Option<PointValue> {
    match v {
        Value::Integer(i) => Some(PointValue::Int(*i)),
        other => as_u64(other).map(|u| match i64::try_from(u) {
            Ok(i) => PointValue::Int(i),
            Err(_) => PointValue::Double(u as f64),
        }),
    }
}

/// Seconds of a TimeTicks (or any number taken as hundredths).
fn seconds_point(v: &Value) -> Option<PointValue> {
    match v {
        Value::Integer(i) => Some(PointValue::Double(*i as f64 / 100.0)),
        other => as_u64(other).map(|u| PointValue::Double(u as f64 / 100.0)),
    }
}

/// One target's variables (what the GET and the walks returned), sorted by OID.
///
/// Why not a `BTreeMap`: the answers arrive almost in order, so one sort of a
/// vector (linear on sorted runs) and binary searches cost a fraction of a tree's
/// node allocations and OID comparisons per insert, and the mapping to metrics
/// only ever asks for one OID or for one subtree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vars(Vec<(Oid, Value)>);

impl Vars {
    /// From bindings in any order; of several bindings of one OID the last one
    /// wins, as inserting them in turn into a map would.
    pub fn from_unsorted(mut v: Vec<(Oid, Value)>) -> Self {
        // The usual case (a GET and walks of disjoint subtrees in plan order):
        // already strictly increasing, nothing to sort (no scratch buffer).
        if v.is_sorted_by(|a, b| a.0 < b.0) {
            return Vars(v);
        }
        // Stable: bindings of one OID keep their order, and `dedup_by` keeps the
        // first of a run, so each later one is swapped into its place first.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        Vars(v)
    }

    /// The value of one OID.
    pub fn get(&self, oid: &[u32]) -> Option<&Value> {
        self.0
            .binary_search_by(|(o, _)| o.arcs().cmp(oid))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// The bindings in the subtree under `root` (`root` itself included), in
    /// order: a contiguous run, since they are sorted.
    pub fn subtree(&self, root: &[u32]) -> &[(Oid, Value)] {
        let start = self.0.partition_point(|(o, _)| o.arcs() < root);
        let n = self.0[start..]
            .iter()
            .take_while(|(o, _)| o.arcs().starts_with(root))
            .count();
        &self.0[start..start + n]
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing was fetched.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<BTreeMap<Oid, Value>> for Vars {
    fn from(m: BTreeMap<Oid, Value>) -> Self {
        Vars(m.into_iter().collect())
    }
}

/// Metrics of one collection, merged by name.
#[derive(Default, Debug)]
pub struct MetricSet {
    metrics: Vec<Metric>,
    by_name: HashMap<String, usize>,
    /// Memory of an earlier collection's batch (handed back by the host) that
    /// new metrics and points are written into before anything is allocated.
    spare: Spare,
}

impl MetricSet {
    /// Adds a point to the metric `name`, creating it on first use. A point whose
    /// kind disagrees with the metric's (an agent answering one column with two
    /// types) is dropped.
    pub fn add(
        &mut self,
        name: &str,
        description: &str,
        unit: &str,
        counter: bool,
        point: DataPoint,
    ) {
        let i = self.slot(name, description, unit, counter);
        self.push(i, counter, point);
    }

    /// The position of the metric `name`, created (with no point yet) when it
    /// is new, with the kind a `counter` (or not) point gives it. Lets a caller
    /// adding many points to one metric (a table column) look its name up once.
    pub fn slot(&mut self, name: &str, description: &str, unit: &str, counter: bool) -> usize {
        if let Some(i) = self.by_name.get(name) {
            return *i;
        }
        let mut m = self.spare.metric(name, description, unit);
        if counter {
            m.kind = MetricKind::Sum;
            m.temporality = Temporality::Cumulative;
            m.is_monotonic = true;
        }
        self.metrics.push(m);
        self.by_name
            .insert(name.to_string(), self.metrics.len() - 1);
        self.metrics.len() - 1
    }

    /// Adds a point to the metric at `slot` (from [`MetricSet::slot`]); dropped,
    /// as in [`MetricSet::add`], when its kind differs from the metric's.
    pub fn push(&mut self, slot: usize, counter: bool, point: DataPoint) {
        let kind = if counter {
            MetricKind::Sum
        } else {
            MetricKind::Gauge
        };
        let m = &mut self.metrics[slot];
        if m.kind == kind {
            m.points.push(point);
        } else {
            tracing::debug!(
                metric = m.name.as_str(),
                "dropped a point whose type differs from the metric's"
            );
        }
    }

    /// Merges another set into this one: its metrics in their order, each one's
    /// points appended to the metric of the same name (dropped when the kinds
    /// differ), as adding them one by one would.
    pub fn extend(&mut self, other: MetricSet) {
        for m in other.metrics {
            match self.by_name.get(m.name.as_str()) {
                None => {
                    self.by_name
                        .insert(m.name.as_str().to_string(), self.metrics.len());
                    self.metrics.push(m);
                }
                Some(i) => {
                    let mine = &mut self.metrics[*i];
                    if mine.kind == m.kind {
                        mine.points.extend(m.points);
                    } else {
                        tracing::debug!(
                            metric = m.name.as_str(),
                            points = m.points.len(),
                            "dropped points whose type differs from the metric's"
                        );
                    }
                }
            }
        }
    }

    /// Records the set's extent (metrics, and points of each) in `points`, and
    /// returns the number of metrics, for [`MetricSet::roll_back`].
    pub fn mark(&self, points: &mut Vec<usize>) -> usize {
        points.clear();
        points.extend(self.metrics.iter().map(|m| m.points.len()));
        self.metrics.len()
    }

    /// Forgets everything added since [`MetricSet::mark`] returned `metrics` and
    /// filled `points`.
    pub fn roll_back(&mut self, metrics: usize, points: &[usize]) {
        for m in self.metrics.drain(metrics..) {
            self.by_name.remove(m.name.as_str());
        }
        for (m, n) in self.metrics.iter_mut().zip(points) {
            m.points.truncate(*n);
        }
    }

    /// A set that writes its metrics and points into `spare` first.
    pub fn reusing(spare: Spare) -> Self {
        MetricSet {
            spare,
            ..Default::default()
        }
    }

    /// A point's attribute vector: `head` then `tail`, in spare memory when
    /// there is some left (`tail` is moved in otherwise).
    pub fn attributes(&mut self, head: &[KeyValue], tail: Vec<KeyValue>) -> RVec<KeyValue> {
        if let Some(a) = self.spare.copy_of(head, &tail) {
            return a;
        }
        let mut v = Vec::with_capacity(head.len() + tail.len());
        v.extend_from_slice(head);
        v.extend(tail);
        v.into()
    }

    /// The metrics, in first-seen order.
    pub fn into_metrics(self) -> Vec<Metric> {
        self.metrics
    }

    /// The metrics, in first-seen order, and the spare memory not used.
    pub fn into_parts(self) -> (Vec<Metric>, Spare) {
        (self.metrics, self.spare)
    }

    /// Looks a metric up (tests).
    pub fn get(&self, name: &str) -> Option<&Metric> {
        self.by_name.get(name).map(|i| &self.metrics[*i])
    }
}

/// Attributes shared by every point of a target: `snmp.target` and its labels.
pub fn target_attributes(t: &Target) -> Vec<KeyValue> {
    let mut v = vec![KeyValue::new("snmp.target", t.name.as_str())];
    for (k, val) in &t.labels {
        match v.iter_mut().find(|kv| kv.key.as_str() == k) {
            Some(kv) => kv.value = AnyValue::from(val.as_str()),
            None => v.push(KeyValue::new(k.as_str(), val.as_str())),
        }
    }
    v
}

struct PointCtx<'a> {
    base: &'a [KeyValue],
    now: u64,
}

fn point(
    out: &mut MetricSet,
    ctx: &PointCtx<'_>,
    extra: Vec<KeyValue>,
    start: u64,
    value: PointValue,
) -> DataPoint {
    DataPoint {
        attributes: out.attributes(ctx.base, extra),
        start_time_unix_nano: start,
        time_unix_nano: ctx.now,
        value,
    }
}

/// Adds the point of one built-in object. `attrs` are all its attributes but the
/// text of an info object (target, index and row labels, built once per row):
/// borrowed, they are cloned into the point; owned (a row's last point), they
/// become the point's, saving a clone of every attribute; `slot` caches the
/// metric's position across the points of one column.
#[allow(clippy::too_many_arguments)]
fn add_object(
    out: &mut MetricSet,
    counters: &mut CounterState,
    now: u64,
    o: &Object,
    index: &[u32],
    attrs: Cow<'_, [KeyValue]>,
    value: &Value,
    slot: &mut Option<usize>,
) {
    let (start, pv, info) = match o.kind {
        ObjKind::Label => return,
        ObjKind::Counter => {
            let (Some(raw), Some(pv)) = (as_u64(value), number_point(value)) else {
                return;
            };
            (counters.start_for(o.name, index, raw, now), pv, None)
        }
        ObjKind::Gauge => {
            let Some(pv) = number_point(value) else {
                return;
            };
            (0, pv, None)
        }
        ObjKind::Seconds => {
            let Some(pv) = seconds_point(value) else {
                return;
            };
            (0, pv, None)
        }
        ObjKind::Info => {
            let Some(text) = render(value, o.render) else {
                return;
            };
            (0, PointValue::Int(1), Some(KeyValue::new(o.name, text)))
        }
    };
    let counter = o.kind == ObjKind::Counter;
    // Written into spare memory while there is some; otherwise a row's last
    // point takes the row's vector over, the others get a copy.
    let tail = info.as_slice();
    let attributes = match out.spare.copy_of(&attrs, tail) {
        Some(v) => v,
        None => match attrs {
            Cow::Owned(mut v) => {
                v.extend(info);
                v.into()
            }
            Cow::Borrowed(a) => {
                let mut v = Vec::with_capacity(a.len() + usize::from(info.is_some()));
                v.extend_from_slice(a);
                v.extend(info);
                v.into()
            }
        },
    };
    let i = *slot.get_or_insert_with(|| out.slot(o.name, o.description, o.unit, counter));
    out.push(
        i,
        counter,
        DataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: pv,
        },
    );
}

/// Attributes named `names` from an instance index: one arc each, the last name
/// taking every remaining arc (dotted); `index` when no name is given and the
/// index is not the scalar `.0`.
pub fn index_attributes(names: &[&str], index: &[u32]) -> Vec<KeyValue> {
    let dotted = |arcs: &[u32]| {
        let mut s = String::with_capacity(arcs.len() * 4);
        for (i, a) in arcs.iter().enumerate() {
            if i > 0 {
                s.push('.');
            }
            let _ = write!(s, "{a}");
        }
        s
    };
    if names.is_empty() {
        return if index.is_empty() || index == [0] {
            vec![]
        } else {
            vec![KeyValue::new("index", dotted(index))]
        };
    }
    let mut out = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let part = if i + 1 == names.len() {
            index.get(i..).unwrap_or(&[])
        } else {
            index.get(i..i + 1).unwrap_or(&[])
        };
        if !part.is_empty() {
            out.push(KeyValue::new(*n, dotted(part)));
        }
    }
    out
}

/// Turns one target's variables into metrics (pure, apart from the counter state).
pub fn build_metrics(
    plan: &Plan,
    target: &Target,
    vars: &Vars,
    counters: &mut CounterState,
    now: u64,
    out: &mut MetricSet,
) {
    let base = target_attributes(target);
    let ctx = PointCtx { base: &base, now };
    if let Some(Value::TimeTicks(t)) = vars.get(&[1, 3, 6, 1, 2, 1, 1, 3, 0]) {
        counters.observe_uptime(*t, now);
    }
    let mut oid: Vec<u32> = Vec::with_capacity(32);
    for g in &plan.scalars {
        for o in g.objects {
            oid.clear();
            oid.extend_from_slice(g.base);
            oid.extend_from_slice(&[o.sub, 0]);
            if let Some(v) = vars.get(&oid) {
                add_object(
                    out,
                    counters,
                    now,
                    o,
                    &[0],
                    Cow::Borrowed(&base),
                    v,
                    &mut None,
                );
            }
        }
    }
    for t in &plan.tables {
        // Row labels: the table's own label columns, then foreign ones.
        let mut row_labels: BTreeMap<&[u32], Vec<KeyValue>> = BTreeMap::new();
        for c in t.columns.iter().filter(|c| c.kind == ObjKind::Label) {
            oid.clear();
            oid.extend_from_slice(t.entry);
            oid.push(c.sub);
            for (o, v) in vars.subtree(&oid) {
                if let Some(text) = render(v, c.render) {
                    row_labels
                        .entry(&o.arcs()[oid.len()..])
                        .or_default()
                        .push(KeyValue::new(c.name, text));
                }
            }
        }
        for f in t.foreign_labels {
            for (o, v) in vars.subtree(f.column) {
                if let Some(text) = render(v, Render::Text) {
                    row_labels
                        .entry(&o.arcs()[f.column.len()..])
                        .or_default()
                        .push(KeyValue::new(f.name, text));
                }
            }
        }
        // Every attribute of a row's points (target, index, row labels), built on
        // the row's first point and cloned for the others; the table's last value
        // column takes them over instead of cloning them once more.
        let mut rows: BTreeMap<&[u32], Vec<KeyValue>> = BTreeMap::new();
        let mut row_attrs = |index: &[u32]| {
            let mut a = base.clone();
            a.extend(index_attributes(t.index_labels, index));
            if let Some(l) = row_labels.remove(index) {
                a.extend(l);
            }
            a
        };
        let last = t.columns.iter().rposition(|c| c.kind != ObjKind::Label);
        for (ci, c) in t.columns.iter().enumerate() {
            if c.kind == ObjKind::Label {
                continue;
            }
            oid.clear();
            oid.extend_from_slice(t.entry);
            oid.push(c.sub);
            let mut slot = None;
            for (o, v) in vars.subtree(&oid) {
                let index = &o.arcs()[oid.len()..];
                if index.is_empty() {
                    continue;
                }
                let attrs = if Some(ci) == last {
                    Cow::Owned(rows.remove(index).unwrap_or_else(|| row_attrs(index)))
                } else {
                    Cow::Borrowed(
                        rows.entry(index)
                            .or_insert_with(|| row_attrs(index))
                            .as_slice(),
                    )
                };
                add_object(out, counters, now, c, index, attrs, v, &mut slot);
            }
        }
    }
    for c in &plan.oids {
        let names: Vec<&str> = c.index_labels.iter().map(String::as_str).collect();
        let mut add = |index: &[u32], v: &Value| {
            let mut labels = index_attributes(&names, index);
            let auto_counter = matches!(v, Value::Counter32(_) | Value::Counter64(_));
            let counter = match c.kind {
                Some(OidType::Counter) => true,
                Some(OidType::Gauge) => false,
                None => auto_counter,
            };
            let is_text = matches!(
                v,
                Value::OctetString(_) | Value::ObjectId(_) | Value::IpAddress(_) | Value::Opaque(_)
            );
            if is_text {
                if counter {
                    return;
                }
                if let Some(text) = render(v, Render::Text) {
                    labels.push(KeyValue::new(c.name.as_str(), text));
                    let p = point(out, &ctx, labels, 0, PointValue::Int(1));
                    out.add(&c.name, &c.description, &c.unit, false, p);
                }
                return;
            }
            let pv = if matches!(v, Value::TimeTicks(_)) {
                seconds_point(v)
            } else {
                number_point(v)
            };
            let Some(pv) = pv else { return };
            let start = if counter {
                let Some(raw) = as_u64(v) else { return };
                counters.start_for(&c.name, index, raw, now)
            } else {
                0
            };
            let p = point(out, &ctx, labels, start, pv);
            out.add(&c.name, &c.description, &c.unit, counter, p);
        };
        if let Some(v) = vars.get(c.oid.arcs()) {
            // A scalar instance answered the GET.
            add(&[], v);
            continue;
        }
        for (oid, v) in vars.subtree(c.oid.arcs()) {
            let index = &oid.arcs()[c.oid.arcs().len()..];
            if !index.is_empty() {
                add(index, v);
            }
        }
    }
    counters.finish(now);
}

/// One target's last outcome, for `snmp.up` and health.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetStatus {
    /// The target's name (`snmp.target`).
    pub address: String,
    /// Whether the last collection succeeded.
    pub up: bool,
    /// Why not.
    pub reason: Option<String>,
}

/// One target: its session and counter state.
pub struct TargetPoller {
    session: Session,
    counters: CounterState,
    // Bindings fetched last time: the next collection's vector is reserved at
    // that size once, instead of doubling its way there (a copy and, for glibc,
    // a consolidation of its fast bins per step past 1 KiB).
    vars_hint: usize,
}

/// What polling one target produced.
pub struct PollResult {
    /// What the target answered (None when it failed).
    pub vars: Option<Vars>,
    /// Outcome.
    pub status: TargetStatus,
    /// Time taken.
    pub duration: Duration,
    /// When the answers were complete: the time of the target's points.
    pub now: u64,
}

impl TargetPoller {
    /// A poller; nothing is sent until the first collection.
    pub fn new(target: Target) -> Self {
        TargetPoller {
            session: Session::new(target),
            counters: CounterState::default(),
            vars_hint: 0,
        }
    }

    /// The session (tests read its request counters).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Fetches every variable of the plan. A fatal error (timeout, credentials,
    /// network) ends the poll; an agent error on one walk is logged and the other
    /// walks go on.
    pub async fn fetch(&mut self, plan: &Plan) -> Result<Vars, SnmpError> {
        let mut vars = Vec::new();
        if !plan.get_oids.is_empty() {
            vars = self.session.get(&plan.get_oids).await?;
        }
        vars.reserve(self.vars_hint.saturating_sub(vars.len()));
        let got = vars.len();
        let custom: Vec<&Oid> = plan
            .oids
            .iter()
            .filter(|c| !vars[..got].iter().any(|(o, _)| o == &c.oid))
            .map(|c| &c.oid)
            .collect();
        for root in plan.walk_roots.iter().chain(custom) {
            // A walk appends what it found, even when it ends with an error.
            match self
                .session
                .walk(root, plan.max_repetitions, &mut vars)
                .await
            {
                Ok(()) => {}
                Err(e) if !e.is_fatal() => {
                    tracing::warn!(target_address = %self.session.target().address, "{e}");
                }
                Err(e) => return Err(e),
            }
        }
        self.vars_hint = vars.len();
        Ok(Vars::from_unsorted(vars))
    }

    /// Polls the target: its variables, or why it failed. The metrics are built
    /// afterwards by [`TargetPoller::add_metrics`], into the collection's one set.
    pub async fn poll(&mut self, plan: &Plan) -> PollResult {
        let started = Instant::now();
        let fetched = self.fetch(plan).await;
        let now = now_ns();
        let duration = started.elapsed();
        let address = self.session.target().name.clone();
        match fetched {
            Ok(vars) => PollResult {
                vars: Some(vars),
                status: TargetStatus {
                    address,
                    up: true,
                    reason: None,
                },
                duration,
                now,
            },
            Err(e) => {
                if matches!(e, SnmpError::Network(_)) {
                    self.session.reset();
                }
                PollResult {
                    vars: None,
                    status: TargetStatus {
                        address,
                        up: false,
                        reason: Some(e.to_string()),
                    },
                    duration,
                    now,
                }
            }
        }
    }

    /// Adds what a poll of this target produced to `out`: its variables as
    /// metrics (updating the counter state), then `snmp.up` and
    /// `snmp.collect.duration`.
    pub fn add_metrics(&mut self, plan: &Plan, r: &PollResult, out: &mut MetricSet) {
        let target = self.session.target();
        if let Some(vars) = &r.vars {
            build_metrics(plan, target, vars, &mut self.counters, r.now, out);
        }
        add_status_metrics(out, target, r.status.up, Some(r.duration), r.now);
    }
}

/// `snmp.up` and `snmp.collect.duration` of one target.
pub fn add_status_metrics(
    out: &mut MetricSet,
    target: &Target,
    up: bool,
    duration: Option<Duration>,
    now: u64,
) {
    let base = target_attributes(target);
    let ctx = PointCtx { base: &base, now };
    let p = point(out, &ctx, vec![], 0, PointValue::Int(i64::from(up)));
    out.add(
        mibs::UP_METRIC,
        "1 when the target answered the last collection, 0 when it did not (see the plugin's health for why).",
        "1",
        false,
        p,
    );
    if let Some(d) = duration {
        let p = point(out, &ctx, vec![], 0, PointValue::Double(d.as_secs_f64()));
        out.add(
            mibs::DURATION_METRIC,
            "Time the last collection of the target took.",
            "s",
            false,
            p,
        );
    }
}

/// How many collections' worth of memory handed back is kept at most for the
/// next collections (as many as the host keeps batches for an instance).
const SPARE_COLLECTIONS: usize = 4;

/// All targets of an instance.
pub struct Collector {
    plan: Arc<Plan>,
    targets: Vec<Target>,
    pollers: Vec<Arc<tokio::sync::Mutex<TargetPoller>>>,
    statuses: Vec<Option<TargetStatus>>,
    collect_timeout: Duration,
    /// Memory of earlier collections' batches, handed back by the host after
    /// their export ([`Collector::refill`]), which the next collection is
    /// written into.
    spare: Spare,
    /// Points the last collection produced: how much spare memory the next
    /// one can use.
    last_points: usize,
}

impl Collector {
    /// A collector for validated settings; sends nothing yet.
    pub fn new(settings: &Settings) -> Self {
        Collector {
            plan: Arc::new(Plan::new(settings)),
            targets: settings.targets.clone(),
            pollers: settings
                .targets
                .iter()
                .map(|t| Arc::new(tokio::sync::Mutex::new(TargetPoller::new(t.clone()))))
                .collect(),
            statuses: vec![None; settings.targets.len()],
            collect_timeout: settings.collect_timeout,
            spare: Spare::default(),
            last_points: 0,
        }
    }

    /// Takes batches from `earlier` (the host's `Context::reclaimed_batch`:
    /// this instance's exported batches) until the spare memory holds as many
    /// points as the last collection produced, or `earlier` has none. The next
    /// [`Collector::collect`] then writes its strings and vectors into them
    /// instead of allocating (and the host freeing) a few strings per value.
    pub fn refill(&mut self, mut earlier: impl FnMut() -> Option<Batch>) {
        // A few at most: the host keeps no more for an instance.
        for _ in 0..SPARE_COLLECTIONS {
            if self.spare.attribute_vectors() >= self.last_points.max(1) {
                break;
            }
            match earlier() {
                Some(b) => self.spare.take_apart(b),
                None => break,
            }
        }
    }

    /// The plan (tests).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Each target's last outcome (None before its first collection).
    pub fn statuses(&self) -> &[Option<TargetStatus>] {
        &self.statuses
    }

    /// Polls every target concurrently (call on the instance runtime) and returns
    /// the merged metrics. Targets not done within `collect_timeout` are reported
    /// down; a poller whose task failed is replaced by a fresh one.
    pub async fn collect(&mut self) -> Vec<Metric> {
        let mut set = tokio::task::JoinSet::new();
        let mut index_of = HashMap::new();
        for (i, p) in self.pollers.iter().enumerate() {
            let (p, plan) = (p.clone(), self.plan.clone());
            let h = set.spawn(async move { p.lock().await.poll(&plan).await });
            index_of.insert(h.id(), i);
        }
        let mut results: Vec<Option<PollResult>> = (0..self.pollers.len()).map(|_| None).collect();
        let mut failed: Vec<(usize, String)> = Vec::new();
        let deadline = tokio::time::sleep(self.collect_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = set.join_next_with_id() => match next {
                    None => break,
                    Some(Ok((id, r))) => {
                        if let Some(i) = index_of.get(&id) {
                            results[*i] = Some(r);
                        }
                    }
                    Some(Err(e)) => {
                        if let Some(i) = index_of.get(&e.id()) {
                            failed.push((*i, format!("internal error while polling: {e}")));
                        }
                    }
                },
                _ = &mut deadline => {
                    set.abort_all();
                    while set.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let failed_idx: Vec<usize> = failed.iter().map(|(i, _)| *i).collect();
        for (i, why) in failed {
            // A panicked task: start over with a fresh session and counters.
            self.pollers[i] = Arc::new(tokio::sync::Mutex::new(TargetPoller::new(
                self.targets[i].clone(),
            )));
            self.set_status(i, false, Some(why));
        }
        let now = now_ns();
        // Every target's metrics go into one set, in target order: one metric
        // (name, description, unit, points vector) per name and collection
        // instead of one per target merged afterwards.
        let mut all = MetricSet::reusing(std::mem::take(&mut self.spare));
        let mut mark = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Some(r) => {
                    let poller = self.pollers[i].clone();
                    let Ok(mut p) = poller.try_lock() else {
                        // Not possible: its task has finished. Report it as such.
                        self.set_status(
                            i,
                            false,
                            Some("internal error while polling: the target is still locked".into()),
                        );
                        add_status_metrics(&mut all, &self.targets[i], false, None, now);
                        continue;
                    };
                    let metrics = all.mark(&mut mark);
                    let plan = &self.plan;
                    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        p.add_metrics(plan, &r, &mut all)
                    }));
                    drop(p);
                    match built {
                        Ok(()) => self.set_status(i, r.status.up, r.status.reason.clone()),
                        Err(panic) => {
                            // As for a poll that panicked: none of the target's
                            // points, a fresh session and counters next time.
                            all.roll_back(metrics, &mark);
                            let msg = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            self.pollers[i] = Arc::new(tokio::sync::Mutex::new(TargetPoller::new(
                                self.targets[i].clone(),
                            )));
                            self.set_status(
                                i,
                                false,
                                Some(format!("internal error while polling: panicked: {msg}")),
                            );
                            add_status_metrics(&mut all, &self.targets[i], false, None, now);
                        }
                    }
                }
                None => {
                    if !failed_idx.contains(&i) {
                        self.set_status(
                            i,
                            false,
                            Some(format!(
                                "the collection did not finish within collect_timeout ({:?})",
                                self.collect_timeout
                            )),
                        );
                    }
                    add_status_metrics(&mut all, &self.targets[i], false, None, now);
                }
            }
        }
        let (metrics, mut spare) = all.into_parts();
        let points = metrics.iter().map(|m| m.points.len()).sum();
        self.last_points = points;
        // What this collection did not use is kept for the next ones: the
        // pipeline merges collections that wait for the same flush, so a batch
        // handed back often holds two or more. Bounded (a larger, earlier
        // shape is not kept whole for ever).
        drop(spare.split_excess(
            points * SPARE_COLLECTIONS,
            metrics.len() * SPARE_COLLECTIONS,
        ));
        self.spare = spare;
        metrics
    }

    fn set_status(&mut self, i: usize, up: bool, reason: Option<String>) {
        let address = self.targets[i].name.clone();
        let new = TargetStatus {
            address: address.clone(),
            up,
            reason,
        };
        let old = self.statuses[i].replace(new.clone());
        if old.as_ref() != Some(&new) {
            match (&new.reason, old.map(|o| o.up)) {
                (Some(r), _) => tracing::warn!(target_address = %address, "SNMP target down: {r}"),
                (None, Some(false)) => {
                    tracing::info!(target_address = %address, "SNMP target up again")
                }
                (None, _) => {}
            }
        }
    }

    /// The batch of one collection.
    pub fn batch(metrics: Vec<Metric>) -> Batch {
        Batch {
            metrics: metrics.into(),
            ..Batch::default()
        }
    }

    /// Drops every session (and socket); called from `shutdown` while the
    /// runtime still runs.
    pub fn close(&mut self) {
        self.pollers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn settings(json: &str) -> Settings {
        serde_json::from_str::<Config>(json)
            .unwrap()
            .resolve()
            .unwrap()
    }

    fn oid(s: &str) -> Oid {
        s.parse().unwrap()
    }

    fn attr<'a>(p: &'a DataPoint, k: &str) -> Option<&'a AnyValue> {
        p.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| &kv.value)
    }

    fn s(v: &str) -> AnyValue {
        AnyValue::Str(v.into())
    }

    #[test]
    fn plan_avoids_overlapping_walks() {
        let st = settings(r#"{"targets": [{"address": "h"}]}"#);
        let p = Plan::new(&st);
        let roots: Vec<String> = p.walk_roots.iter().map(|o| o.to_string()).collect();
        // ifName and ifDescr are inside the walked entries.
        assert_eq!(roots, ["1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"]);
        assert_eq!(p.get_oids.len(), 7);
        let st = settings(
            r#"{"targets": [{"address": "h"}], "scalars": [], "tables": ["ifTable", "hrProcessorTable"],
                "oids": [{"oid": "1.3.6.1.4.1.2021.10.1.5", "name": "laLoadInt"}]}"#,
        );
        let p = Plan::new(&st);
        let roots: Vec<String> = p.walk_roots.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            roots,
            [
                "1.3.6.1.2.1.2.2.1",
                "1.3.6.1.2.1.25.3.3.1.2",
                "1.3.6.1.2.1.31.1.1.1.1"
            ]
        );
        assert_eq!(p.get_oids, [oid("1.3.6.1.4.1.2021.10.1.5")]);
    }

    fn sample_vars(in_octets: u32, hc_in: u64, uptime: u32) -> BTreeMap<Oid, Value> {
        let mut v = BTreeMap::new();
        let mut put = |o: &str, val: Value| {
            v.insert(oid(o), val);
        };
        put(
            "1.3.6.1.2.1.1.1.0",
            Value::OctetString(b"Linux test".to_vec()),
        );
        put(
            "1.3.6.1.2.1.1.2.0",
            Value::ObjectId(oid("1.3.6.1.4.1.8072.3.2.10")),
        );
        put("1.3.6.1.2.1.1.3.0", Value::TimeTicks(uptime));
        put("1.3.6.1.2.1.1.5.0", Value::OctetString(b"agent".to_vec()));
        put("1.3.6.1.2.1.2.2.1.1.1", Value::Integer(1));
        put("1.3.6.1.2.1.2.2.1.2.1", Value::OctetString(b"lo".to_vec()));
        put("1.3.6.1.2.1.2.2.1.3.1", Value::Integer(24));
        put("1.3.6.1.2.1.2.2.1.5.1", Value::Gauge32(10_000_000));
        put("1.3.6.1.2.1.2.2.1.6.1", Value::OctetString(vec![]));
        put(
            "1.3.6.1.2.1.2.2.1.6.2",
            Value::OctetString(vec![0xa6, 0xc5, 0x16, 0x59, 0x9d, 0x67]),
        );
        put("1.3.6.1.2.1.2.2.1.9.1", Value::TimeTicks(250));
        put("1.3.6.1.2.1.2.2.1.10.1", Value::Counter32(in_octets));
        put("1.3.6.1.2.1.2.2.1.22.1", Value::ObjectId(oid("0.0")));
        put(
            "1.3.6.1.2.1.31.1.1.1.1.1",
            Value::OctetString(b"lo".to_vec()),
        );
        put("1.3.6.1.2.1.31.1.1.1.6.1", Value::Counter64(hc_in));
        put(
            "1.3.6.1.2.1.31.1.1.1.18.1",
            Value::OctetString(b"loop back".to_vec()),
        );
        v
    }

    #[test]
    fn builds_typed_metrics_with_row_labels() {
        let st =
            settings(r#"{"targets": [{"address": "10.1.1.1:161", "labels": {"site": "lab"}}]}"#);
        let plan = Plan::new(&st);
        let mut counters = CounterState::default();
        let mut out = MetricSet::default();
        build_metrics(
            &plan,
            &st.targets[0],
            &sample_vars(1000, u64::MAX, 500).into(),
            &mut counters,
            7_000,
            &mut out,
        );

        let up = out.get("sysUpTime").unwrap();
        assert_eq!(up.kind, MetricKind::Gauge);
        assert_eq!(up.unit.as_str(), "s");
        assert_eq!(up.points[0].value, PointValue::Double(5.0));
        assert_eq!(attr(&up.points[0], "snmp.target"), Some(&s("10.1.1.1:161")));
        assert_eq!(attr(&up.points[0], "site"), Some(&s("lab")));

        let descr = out.get("sysDescr").unwrap();
        assert_eq!(descr.points[0].value, PointValue::Int(1));
        assert_eq!(attr(&descr.points[0], "sysDescr"), Some(&s("Linux test")));
        let oid_info = out.get("sysObjectID").unwrap();
        assert_eq!(
            attr(&oid_info.points[0], "sysObjectID"),
            Some(&s("1.3.6.1.4.1.8072.3.2.10"))
        );
        assert!(out.get("sysContact").is_none());

        let inoct = out.get("ifInOctets").unwrap();
        assert_eq!(inoct.kind, MetricKind::Sum);
        assert!(inoct.is_monotonic);
        assert_eq!(inoct.temporality, Temporality::Cumulative);
        let p = &inoct.points[0];
        assert_eq!(p.value, PointValue::Int(1000));
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (7_000, 7_000));
        assert_eq!(attr(p, "ifIndex"), Some(&s("1")));
        assert_eq!(attr(p, "ifDescr"), Some(&s("lo")));
        assert_eq!(attr(p, "ifName"), Some(&s("lo")));

        let hc = out.get("ifHCInOctets").unwrap();
        assert_eq!(hc.points[0].value, PointValue::Double(u64::MAX as f64));
        assert_eq!(attr(&hc.points[0], "ifDescr"), Some(&s("lo")));
        assert_eq!(
            out.get("ifSpeed").unwrap().points[0].value,
            PointValue::Int(10_000_000)
        );
        assert_eq!(
            out.get("ifLastChange").unwrap().points[0].value,
            PointValue::Double(2.5)
        );
        let phys = out.get("ifPhysAddress").unwrap();
        assert_eq!(attr(&phys.points[0], "ifPhysAddress"), Some(&s("")));
        assert_eq!(
            attr(&phys.points[1], "ifPhysAddress"),
            Some(&s("a6:c5:16:59:9d:67"))
        );
        assert_eq!(
            attr(&out.get("ifAlias").unwrap().points[0], "ifAlias"),
            Some(&s("loop back"))
        );
        // Label columns and ifIndex / ifSpecific are no metrics.
        for n in ["ifDescr", "ifName", "ifIndex", "ifSpecific"] {
            assert!(out.get(n).is_none(), "{n}");
        }
    }

    /// Every point of a table row carries the same attributes (target, index, row
    /// labels, in that order), whether they were cloned from the row's first
    /// point or, on the table's last value column, taken over; a row that only
    /// the last column has gets its own.
    #[test]
    fn every_point_of_a_row_has_the_row_attributes() {
        let st =
            settings(r#"{"targets": [{"address": "10.1.1.1:161", "labels": {"site": "lab"}}]}"#);
        let plan = Plan::new(&st);
        let mut vars = sample_vars(1000, 5, 500);
        // ifOutQLen (ifTable's last value column) for rows 1 and 3 (3 has no
        // other column), ifCounterDiscontinuityTime (ifXTable's) for rows 1 and 2.
        vars.insert(oid("1.3.6.1.2.1.2.2.1.21.1"), Value::Gauge32(4));
        vars.insert(oid("1.3.6.1.2.1.2.2.1.21.3"), Value::Gauge32(5));
        vars.insert(oid("1.3.6.1.2.1.31.1.1.1.19.1"), Value::TimeTicks(100));
        vars.insert(oid("1.3.6.1.2.1.31.1.1.1.19.2"), Value::TimeTicks(200));
        vars.insert(oid("1.3.6.1.2.1.2.2.1.20.2"), Value::Counter32(9));
        let mut out = MetricSet::default();
        build_metrics(
            &plan,
            &st.targets[0],
            &vars.into(),
            &mut CounterState::default(),
            7_000,
            &mut out,
        );
        let expected = |index: &str, labels: &[(&str, &str)]| {
            let mut v = vec![
                KeyValue::new("snmp.target", "10.1.1.1:161"),
                KeyValue::new("site", "lab"),
                KeyValue::new("ifIndex", index),
            ];
            v.extend(labels.iter().map(|(k, val)| KeyValue::new(*k, *val)));
            v
        };
        let mut checked = 0;
        for t in &plan.tables {
            for c in t.columns.iter().filter(|c| c.kind != ObjKind::Label) {
                let Some(m) = out.get(c.name) else { continue };
                for p in m.points.iter() {
                    let mut a: Vec<KeyValue> = p.attributes.iter().cloned().collect();
                    if c.kind == ObjKind::Info {
                        assert_eq!(a.pop().map(|kv| kv.key.to_string()), Some(c.name.into()));
                    }
                    let index = match attr(p, "ifIndex") {
                        Some(AnyValue::Str(i)) => i.to_string(),
                        other => panic!("{}: ifIndex {other:?}", c.name),
                    };
                    let want = match (t.name, index.as_str()) {
                        ("ifTable", "1") => expected("1", &[("ifDescr", "lo"), ("ifName", "lo")]),
                        ("ifXTable", "1") => expected("1", &[("ifName", "lo"), ("ifDescr", "lo")]),
                        (_, i) => expected(i, &[]),
                    };
                    assert_eq!(a, want, "{} {index}", c.name);
                    checked += 1;
                }
            }
        }
        let q = out.get("ifOutQLen").unwrap();
        assert_eq!(q.points.len(), 2);
        assert_eq!(attr(&q.points[1], "ifIndex"), Some(&s("3")));
        assert_eq!(
            out.get("ifCounterDiscontinuityTime").unwrap().points.len(),
            2
        );
        assert!(checked >= 12, "{checked}");
    }

    #[test]
    fn counter_start_times_follow_wraps_and_restarts() {
        let st = settings(r#"{"targets": [{"address": "h"}]}"#);
        let plan = Plan::new(&st);
        let mut c = CounterState::default();
        let start = |vars: &BTreeMap<Oid, Value>, c: &mut CounterState, now: u64, name: &str| {
            let mut out = MetricSet::default();
            build_metrics(
                &plan,
                &st.targets[0],
                &vars.clone().into(),
                c,
                now,
                &mut out,
            );
            let p = &out.get(name).unwrap().points[0];
            (p.start_time_unix_nano, p.value.clone())
        };
        let sec = 1_000_000_000u64;
        assert_eq!(
            start(&sample_vars(100, 5, 1000), &mut c, 10 * sec, "ifInOctets").0,
            10 * sec
        );
        assert_eq!(
            start(&sample_vars(200, 6, 2000), &mut c, 20 * sec, "ifInOctets").0,
            10 * sec
        );
        // Counter32 wrapped between 20 s and 30 s: the new count starts after 20 s.
        assert_eq!(
            start(&sample_vars(50, 7, 3000), &mut c, 30 * sec, "ifInOctets"),
            (20 * sec, PointValue::Int(50))
        );
        assert_eq!(
            start(&sample_vars(60, 8, 4000), &mut c, 40 * sec, "ifHCInOctets").0,
            10 * sec
        );
        // The agent restarted 5 s before the 50 s collection (sysUpTime 500 ticks):
        // every counter restarts then, even ifHCInOctets which went up.
        let (s50, _) = start(&sample_vars(70, 9, 500), &mut c, 50 * sec, "ifHCInOctets");
        assert_eq!(s50, 45 * sec);
    }

    #[test]
    fn custom_oids_scalars_tables_and_forced_types() {
        let st = settings(
            r#"{"targets": [{"address": "h"}], "scalars": [], "tables": [],
                "oids": [
                  {"oid": "1.3.6.1.2.1.1.3.0", "name": "uptime"},
                  {"oid": "1.3.6.1.4.1.2021.10.1.5", "name": "load", "index_labels": ["la"]},
                  {"oid": "1.3.6.1.4.1.9.9.1", "name": "pkts", "type": "counter", "index_labels": ["a", "rest"]},
                  {"oid": "1.3.6.1.4.1.9.9.2", "name": "errs"},
                  {"oid": "1.3.6.1.4.1.9.9.3", "name": "label"}
                ]}"#,
        );
        let plan = Plan::new(&st);
        let mut vars = BTreeMap::new();
        vars.insert(oid("1.3.6.1.2.1.1.3.0"), Value::TimeTicks(1234));
        vars.insert(oid("1.3.6.1.4.1.2021.10.1.5.1"), Value::Integer(12));
        vars.insert(oid("1.3.6.1.4.1.2021.10.1.5.2"), Value::Integer(7));
        vars.insert(oid("1.3.6.1.4.1.9.9.1.4.10.20"), Value::Gauge32(99));
        vars.insert(oid("1.3.6.1.4.1.9.9.2.3"), Value::Counter64(5));
        vars.insert(
            oid("1.3.6.1.4.1.9.9.3.0"),
            Value::OctetString(b"hello".to_vec()),
        );
        let mut out = MetricSet::default();
        build_metrics(
            &plan,
            &st.targets[0],
            &vars.into(),
            &mut CounterState::default(),
            1,
            &mut out,
        );
        let up = out.get("uptime").unwrap();
        assert_eq!(up.points[0].value, PointValue::Double(12.34));
        assert_eq!(up.points[0].attributes.len(), 1); // snmp.target only
        let load = out.get("load").unwrap();
        assert_eq!(load.kind, MetricKind::Gauge);
        assert_eq!(load.points.len(), 2);
        assert_eq!(attr(&load.points[1], "la"), Some(&s("2")));
        let pk = out.get("pkts").unwrap();
        assert_eq!(pk.kind, MetricKind::Sum);
        assert_eq!(attr(&pk.points[0], "a"), Some(&s("4")));
        assert_eq!(attr(&pk.points[0], "rest"), Some(&s("10.20")));
        let errs = out.get("errs").unwrap();
        assert_eq!(errs.kind, MetricKind::Sum);
        assert_eq!(attr(&errs.points[0], "index"), Some(&s("3")));
        let l = out.get("label").unwrap();
        assert_eq!(attr(&l.points[0], "label"), Some(&s("hello")));
        assert!(attr(&l.points[0], "index").is_none());
    }

    #[test]
    fn vars_are_sorted_with_the_last_binding_of_an_oid_winning() {
        let v = Vars::from_unsorted(vec![
            (oid("1.3.6.1.2.1.2.2.1.2.1"), Value::Integer(1)),
            (oid("1.3.6.1.2.1.1.5.0"), Value::Integer(2)),
            (oid("1.3.6.1.2.1.2.2.1.2.1"), Value::Integer(3)),
            (oid("1.3.6.1.2.1.2.2.1.10.1"), Value::Integer(4)),
            (oid("1.3.6.1.2.1.2.2.1.2.1"), Value::Integer(5)),
            (oid("1.3.6.1.2.1.2.2.1.2"), Value::Integer(6)),
            (oid("1.3.6.1.2.1.2.2.1.20.1"), Value::Integer(7)),
        ]);
        // The same as inserting each binding in turn into a map.
        let mut m = BTreeMap::new();
        for (o, val) in [
            ("1.3.6.1.2.1.2.2.1.2.1", 1),
            ("1.3.6.1.2.1.1.5.0", 2),
            ("1.3.6.1.2.1.2.2.1.2.1", 3),
            ("1.3.6.1.2.1.2.2.1.10.1", 4),
            ("1.3.6.1.2.1.2.2.1.2.1", 5),
            ("1.3.6.1.2.1.2.2.1.2", 6),
            ("1.3.6.1.2.1.2.2.1.20.1", 7),
        ] {
            m.insert(oid(o), Value::Integer(val));
        }
        assert_eq!(v, Vars::from(m));
        assert_eq!(v.len(), 5);
        assert_eq!(
            v.get(oid("1.3.6.1.2.1.2.2.1.2.1").arcs()),
            Some(&Value::Integer(5))
        );
        assert_eq!(v.get(oid("1.3.6.1.2.1.2.2.1.3.1").arcs()), None);
        let col2: Vec<&Value> = v
            .subtree(oid("1.3.6.1.2.1.2.2.1.2").arcs())
            .iter()
            .map(|(_, v)| v)
            .collect();
        // The column itself and its instance, not column 20 (a prefix of the text
        // "...2.2.1.20" but not of the arcs).
        assert_eq!(col2, [&Value::Integer(6), &Value::Integer(5)]);
        assert_eq!(v.subtree(oid("1.3.6.1.2.1.2.2.1").arcs()).len(), 4);
        assert!(v.subtree(oid("1.3.6.1.4").arcs()).is_empty());
        assert!(Vars::from_unsorted(vec![]).is_empty());
    }

    /// A collection written into the previous collection's batch (handed back
    /// by the host) is the same as one built afresh, and takes its memory:
    /// every point's attribute vector and every metric's points vector is one
    /// of the old batch's.
    #[test]
    fn a_collection_written_into_an_earlier_batch_is_the_same_and_reuses_it() {
        let st = settings(
            r#"{"targets": [{"address": "10.1.1.1:161", "labels": {"site": "lab"}}],
                "oids": [{"oid": "1.3.6.1.4.1.2021.10.1.5", "name": "laLoadInt", "index_labels": ["n"]}]}"#,
        );
        let plan = Plan::new(&st);
        let mut vars = sample_vars(1000, 5, 500);
        vars.insert(oid("1.3.6.1.2.1.2.2.1.21.3"), Value::Gauge32(5));
        vars.insert(oid("1.3.6.1.4.1.2021.10.1.5.1"), Value::Integer(7));
        vars.insert(
            oid("1.3.6.1.4.1.2021.10.1.5.2"),
            Value::OctetString(b"x".to_vec()),
        );
        let vars: Vars = vars.into();
        let build = |out: &mut MetricSet| {
            build_metrics(
                &plan,
                &st.targets[0],
                &vars,
                &mut CounterState::default(),
                7_000,
                out,
            );
            add_status_metrics(
                out,
                &st.targets[0],
                true,
                Some(Duration::from_millis(3)),
                7_000,
            );
        };
        let mut fresh = MetricSet::default();
        build(&mut fresh);
        let fresh = fresh.into_metrics();
        let mut first = MetricSet::default();
        build(&mut first);
        let first = Collector::batch(first.into_metrics());
        let mut old_vectors: Vec<*const KeyValue> = Vec::new();
        let mut old_points: Vec<*const DataPoint> = Vec::new();
        for m in first.metrics.iter() {
            old_points.push(m.points.as_ptr());
            old_vectors.extend(m.points.iter().map(|p| p.attributes.as_ptr()));
        }
        let mut spare = Spare::default();
        spare.take_apart(first);
        let mut again = MetricSet::reusing(spare);
        build(&mut again);
        let (again, left) = again.into_parts();
        assert_eq!(again, fresh);
        assert_eq!(left.attribute_vectors(), 0, "the same shape uses all of it");
        for m in &again {
            assert!(
                old_points.contains(&m.points.as_ptr()),
                "{}: new points vector",
                m.name
            );
            for p in m.points.iter() {
                assert!(
                    old_vectors.contains(&p.attributes.as_ptr()),
                    "{}: new attribute vector",
                    m.name
                );
            }
        }
    }

    #[test]
    fn metric_set_slots_merging_and_roll_back() {
        let pt = |v: i64| DataPoint {
            attributes: vec![KeyValue::new("k", "v")].into(),
            start_time_unix_nano: 0,
            time_unix_nano: 1,
            value: PointValue::Int(v),
        };
        let mut a = MetricSet::default();
        a.add("g", "a gauge", "1", false, pt(1));
        let c = a.slot("c", "a counter", "By", true);
        assert_eq!(a.slot("c", "ignored", "ignored", true), c);
        a.push(c, true, pt(2));
        // A point of the other kind is dropped.
        a.push(c, false, pt(3));
        a.add("g", "", "", true, pt(4));
        let mut mark = Vec::new();
        let n = a.mark(&mut mark);
        a.add("g", "", "", false, pt(5));
        a.add("new", "", "", false, pt(6));
        a.roll_back(n, &mark);
        assert!(a.get("new").is_none());
        let mut b = MetricSet::default();
        b.add("c", "", "", true, pt(7));
        b.add("other", "", "", false, pt(8));
        b.add("g", "", "", true, pt(9)); // wrong kind for a's gauge
        a.extend(b);
        let ms = a.into_metrics();
        let names: Vec<&str> = ms.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["g", "c", "other"]);
        let vals =
            |m: &Metric| -> Vec<PointValue> { m.points.iter().map(|p| p.value.clone()).collect() };
        assert_eq!(vals(&ms[0]), [PointValue::Int(1)]);
        assert_eq!(ms[0].description.as_str(), "a gauge");
        assert_eq!(vals(&ms[1]), [PointValue::Int(2), PointValue::Int(7)]);
        assert_eq!((ms[1].kind, ms[1].is_monotonic), (MetricKind::Sum, true));
        assert_eq!(ms[1].unit.as_str(), "By");
        assert_eq!(ms[2].kind, MetricKind::Gauge);
    }

    #[test]
    fn rendering() {
        assert_eq!(
            render(&Value::OctetString(b"eth0\0".to_vec()), Render::Text).unwrap(),
            "eth0"
        );
        assert_eq!(
            render(&Value::OctetString(vec![0, 1, 0xff]), Render::Text).unwrap(),
            "00:01:ff"
        );
        assert_eq!(
            render(&Value::OctetString(b"ab".to_vec()), Render::Hex).unwrap(),
            "61:62"
        );
        assert_eq!(
            render(&Value::IpAddress([10, 0, 0, 1]), Render::Text).unwrap(),
            "10.0.0.1"
        );
        assert_eq!(render(&Value::NoSuchObject, Render::Text), None);
        assert_eq!(index_attributes(&[], &[0]), vec![]);
        assert_eq!(
            index_attributes(&[], &[1, 2]),
            vec![KeyValue::new("index", "1.2")]
        );
        assert_eq!(
            index_attributes(&["a", "b"], &[1]),
            vec![KeyValue::new("a", "1")]
        );
    }
}
