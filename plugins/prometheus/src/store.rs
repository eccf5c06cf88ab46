//! The sink's state: running totals of delta metrics, and the latest value of every
//! series the scrape endpoint serves.
//!
//! Prometheus only knows cumulative counters and histograms, so a monotonic delta
//! sum or a delta histogram is added to a running total per series
//! ([`Accumulator`]), as the compatibility spec says ("SHOULD be converted to a
//! cumulative temporality"). The new totals are *pending* until the batch was
//! delivered ([`Accumulator::commit`]): when remote write fails, the host retries
//! the same batch and its deltas must not be counted twice.
//!
//! The scrape endpoint shows the last value of each series ([`Store`]); a series
//! not updated for `expire_after` disappears, so a restarted or removed source does
//! not leave stale series behind forever. A family whose type changes while it
//! still has live series keeps its type and the conflicting metric is dropped
//! (two `# TYPE` lines for one name would make the whole scrape invalid).
//!
//! Time is passed in (`now: Instant`) so expiry is tested without sleeping.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use crate::encode::{
    text::{self, Format},
    Family, FamilyMeta, FamilyType, Histogram, Labels, Point, Value,
};

type SeriesKey = (String, Labels);

#[derive(Debug, Clone, PartialEq)]
struct Running {
    value: Value,
    start_unix_nano: u64,
    touched: Instant,
}

/// Running totals of delta series.
#[derive(Debug, Default)]
pub struct Accumulator {
    totals: HashMap<SeriesKey, Running>,
}

/// Totals computed for a batch, applied by [`Accumulator::commit`] once the batch
/// was delivered.
#[derive(Debug, Default)]
pub struct Pending {
    totals: HashMap<SeriesKey, Running>,
}

impl Accumulator {
    /// Turns the delta points of `families` into cumulative ones (in place) and
    /// returns the new totals, not yet committed. Points of one series are applied
    /// in time order.
    pub fn apply(&self, families: &mut [Family], now: Instant) -> Pending {
        let mut pending = Pending::default();
        for f in families.iter_mut().filter(|f| f.delta) {
            f.points.sort_by_key(|p| p.time_unix_nano);
            for p in f.points.iter_mut() {
                let key = (f.meta.name.clone(), p.labels.clone());
                let prev = pending.totals.get(&key).or_else(|| self.totals.get(&key));
                let running = match prev {
                    Some(prev) => match add(&prev.value, &p.value) {
                        Some(sum) => Running {
                            value: sum,
                            start_unix_nano: prev.start_unix_nano,
                            touched: now,
                        },
                        // Incompatible (histogram bounds changed): start over.
                        None => Running {
                            value: p.value.clone(),
                            start_unix_nano: p.start_unix_nano,
                            touched: now,
                        },
                    },
                    None => Running {
                        value: p.value.clone(),
                        start_unix_nano: p.start_unix_nano,
                        touched: now,
                    },
                };
                p.value = running.value.clone();
                p.start_unix_nano = running.start_unix_nano;
                pending.totals.insert(key, running);
            }
            f.delta = false;
        }
        pending
    }

    /// Makes pending totals the new running totals.
    pub fn commit(&mut self, pending: Pending) {
        self.totals.extend(pending.totals);
    }

    /// Forgets totals not updated for `ttl`.
    pub fn expire(&mut self, now: Instant, ttl: Duration) {
        self.totals
            .retain(|_, r| now.saturating_duration_since(r.touched) < ttl);
    }

    /// Number of series with a running total.
    pub fn len(&self) -> usize {
        self.totals.len()
    }

    /// True when no series has a running total.
    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }
}

/// `a + b` for two delta-compatible values; `None` when they cannot be added
/// (different kinds, histogram bounds changed).
fn add(a: &Value, b: &Value) -> Option<Value> {
    Some(match (a, b) {
        (Value::Int(x), Value::Int(y)) => match x.checked_add(*y) {
            Some(s) => Value::Int(s),
            None => Value::Double(*x as f64 + *y as f64),
        },
        (Value::Int(_) | Value::Double(_), Value::Int(_) | Value::Double(_)) => {
            Value::Double(a.as_f64() + b.as_f64())
        }
        (Value::Histogram(x), Value::Histogram(y)) => {
            if x.bounds != y.bounds || x.counts.len() != y.counts.len() {
                return None;
            }
            Value::Histogram(Histogram {
                bounds: x.bounds.clone(),
                counts: x
                    .counts
                    .iter()
                    .zip(&y.counts)
                    .map(|(a, b)| a.saturating_add(*b))
                    .collect(),
                count: x.count.saturating_add(y.count),
                sum: match (x.sum, y.sum) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                },
            })
        }
        _ => return None,
    })
}

/// `*dst = src.clone()`, reusing the vectors of a histogram or summary `dst`
/// already has.
fn assign(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Histogram(d), Value::Histogram(s)) => {
            d.bounds.clone_from(&s.bounds);
            d.counts.clone_from(&s.counts);
            d.count = s.count;
            d.sum = s.sum;
        }
        (Value::Summary(d), Value::Summary(s)) => {
            d.quantiles.clone_from(&s.quantiles);
            d.count = s.count;
            d.sum = s.sum;
        }
        (d, s) => *d = s.clone(),
    }
}

#[derive(Debug, Clone)]
struct Stored {
    point: Point,
    updated: Instant,
}

#[derive(Debug, Clone)]
struct StoredFamily {
    meta: FamilyMeta,
    /// Series sorted by labels, unique (the order of the exposition). A vector
    /// rather than a map keyed by labels: the labels are stored once (in the
    /// point), and a series can be found by position (`hints`).
    series: Vec<Stored>,
    /// Where the k-th point of the family's previous update was found: sources
    /// send their series in the same order batch after batch, so a point is
    /// usually checked against one series (an equality test) instead of being
    /// searched for (a dozen label-by-label comparisons). Checked, never trusted:
    /// a wrong hint costs a search.
    hints: Vec<usize>,
}

impl StoredFamily {
    /// Records the points of one family (see [`Store::update`]).
    fn update(&mut self, points: &[Point], now: Instant) {
        // Points of series not stored yet, with their arrival order.
        let mut fresh: Vec<(usize, &Point)> = Vec::new();
        for (k, p) in points.iter().enumerate() {
            let at = match self.hints.get(k) {
                Some(&i)
                    if self
                        .series
                        .get(i)
                        .is_some_and(|s| s.point.labels == p.labels) =>
                {
                    Some(i)
                }
                _ => self
                    .series
                    .binary_search_by(|s| s.point.labels.cmp(&p.labels))
                    .ok(),
            };
            // This update's position of the k-th point, in place of the previous
            // one (read above).
            let found = at.unwrap_or(usize::MAX);
            match self.hints.get_mut(k) {
                Some(h) => *h = found,
                None => self.hints.push(found),
            }
            match at {
                Some(i) => {
                    let old = &mut self.series[i];
                    // An older point than the stored one is ignored.
                    if old.point.time_unix_nano <= p.time_unix_nano {
                        // In place: the labels (equal to the point's) are
                        // neither copied nor freed.
                        assign(&mut old.point.value, &p.value);
                        old.point.start_unix_nano = p.start_unix_nano;
                        old.point.time_unix_nano = p.time_unix_nano;
                        old.updated = now;
                    }
                }
                None => fresh.push((k, p)),
            }
        }
        self.hints.truncate(points.len());
        if fresh.is_empty() {
            return;
        }
        // New series: of several points of one, the last of the latest wins (as
        // when they are applied one after the other); then merged in order.
        // Positions move: the next update searches and records new hints.
        self.hints.clear();
        fresh.sort_by(|a, b| a.1.labels.cmp(&b.1.labels).then(a.0.cmp(&b.0)));
        let mut winners: Vec<&Point> = Vec::with_capacity(fresh.len());
        for (_, p) in fresh {
            match winners.last_mut() {
                Some(w) if w.labels == p.labels => {
                    if w.time_unix_nano <= p.time_unix_nano {
                        *w = p;
                    }
                }
                _ => winners.push(p),
            }
        }
        self.series.extend(winners.into_iter().map(|p| Stored {
            point: p.clone(),
            updated: now,
        }));
        self.series
            .sort_by(|a, b| a.point.labels.cmp(&b.point.labels));
    }
}

/// Latest value of every series, for the scrape endpoint.
#[derive(Debug)]
pub struct Store {
    ttl: Duration,
    families: BTreeMap<String, StoredFamily>,
}

impl Store {
    /// An empty store whose series expire `ttl` after their last update.
    pub fn new(ttl: Duration) -> Self {
        Store {
            ttl,
            families: BTreeMap::new(),
        }
    }

    /// Records the points of cumulative families (deltas already accumulated). A
    /// point older than the one stored for its series is ignored. Returns the
    /// families dropped for a type conflict, with a message for each.
    pub fn update(&mut self, families: &[Family], now: Instant) -> Vec<(String, String)> {
        self.expire(now);
        let mut conflicts = Vec::new();
        for f in families {
            debug_assert!(!f.delta, "deltas must be accumulated first");
            if f.points.is_empty() {
                continue;
            }
            // Looked up by `&str`: the name is copied only for a new family.
            if !self.families.contains_key(f.meta.name.as_str()) {
                self.families.insert(
                    f.meta.name.clone(),
                    StoredFamily {
                        meta: f.meta.clone(),
                        series: Vec::new(),
                        hints: Vec::new(),
                    },
                );
            }
            let entry = self
                .families
                .get_mut(f.meta.name.as_str())
                .expect("inserted above");
            if entry.meta.kind != f.meta.kind {
                conflicts.push((
                    f.meta.name.clone(),
                    format!(
                        "family {} is exposed as a {}; a {} of the same name was dropped",
                        f.meta.name,
                        entry.meta.kind.as_str(),
                        f.meta.kind.as_str()
                    ),
                ));
                continue;
            }
            if entry.meta.help.is_empty() {
                entry.meta.help = f.meta.help.clone();
            }
            if entry.meta.unit.is_empty() {
                entry.meta.unit = f.meta.unit.clone();
            }
            entry.update(&f.points, now);
        }
        conflicts
    }

    /// Removes series not updated for the TTL, and families left empty.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        for f in self.families.values_mut() {
            f.series
                .retain(|s| now.saturating_duration_since(s.updated) < ttl);
        }
        self.families.retain(|_, f| !f.series.is_empty());
    }

    /// The exposition of every live series (expired ones are removed first).
    pub fn render(&mut self, format: Format, now: Instant) -> String {
        self.expire(now);
        let mut out = String::new();
        for f in self.families.values() {
            text::write_family(&mut out, &f.meta, f.series.iter().map(|s| &s.point), format);
        }
        text::finish(&mut out, format);
        out
    }

    /// Number of live series (as of the last update or render).
    pub fn series_count(&self) -> usize {
        self.families.values().map(|f| f.series.len()).sum()
    }

    /// The type a family is exposed with, if it is.
    pub fn family_type(&self, name: &str) -> Option<FamilyType> {
        self.families.get(name).map(|f| f.meta.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, kind: FamilyType) -> FamilyMeta {
        FamilyMeta {
            name: name.into(),
            kind,
            help: String::new(),
            unit: String::new(),
        }
    }

    fn point(labels: &[(&str, &str)], value: Value, start: u64, time: u64) -> Point {
        Point {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            start_unix_nano: start,
            time_unix_nano: time,
        }
    }

    fn fam(name: &str, kind: FamilyType, delta: bool, points: Vec<Point>) -> Family {
        Family {
            meta: meta(name, kind),
            delta,
            points,
        }
    }

    fn hist(bounds: &[f64], counts: &[u64], sum: Option<f64>) -> Value {
        Value::Histogram(Histogram {
            bounds: bounds.to_vec(),
            counts: counts.to_vec(),
            count: counts.iter().sum(),
            sum,
        })
    }

    #[test]
    fn delta_sums_accumulate_only_when_committed() {
        let t0 = Instant::now();
        let mut acc = Accumulator::default();
        let batch = || {
            vec![fam(
                "req",
                FamilyType::Counter,
                true,
                vec![point(&[("a", "1")], Value::Int(5), 100, 200)],
            )]
        };
        let mut f = batch();
        let pending = acc.apply(&mut f, t0);
        assert_eq!(f[0].points[0].value, Value::Int(5));
        assert!(!f[0].delta);
        // Not committed (delivery failed): the retry of the same batch gives 5 again.
        drop(pending);
        let mut f = batch();
        let pending = acc.apply(&mut f, t0);
        assert_eq!(f[0].points[0].value, Value::Int(5));
        acc.commit(pending);
        // Next batch: 5 + 5, start time kept from the first delta.
        let mut f = batch();
        acc.commit(acc.apply(&mut f, t0));
        assert_eq!(f[0].points[0].value, Value::Int(10));
        assert_eq!(f[0].points[0].start_unix_nano, 100);
        assert_eq!(acc.len(), 1);
    }

    #[test]
    fn several_deltas_of_one_series_in_a_batch_add_up_in_time_order() {
        let mut acc = Accumulator::default();
        let mut f = vec![fam(
            "x",
            FamilyType::Counter,
            true,
            vec![
                point(&[], Value::Double(2.5), 20, 30),
                point(&[], Value::Int(1), 10, 20),
            ],
        )];
        acc.commit(acc.apply(&mut f, Instant::now()));
        let values: Vec<_> = f[0].points.iter().map(|p| p.value.clone()).collect();
        assert_eq!(values, [Value::Int(1), Value::Double(3.5)]);
    }

    #[test]
    fn int_overflow_falls_back_to_double() {
        assert_eq!(
            add(&Value::Int(i64::MAX), &Value::Int(1)),
            Some(Value::Double(i64::MAX as f64 + 1.0))
        );
    }

    #[test]
    fn delta_histograms_accumulate_and_reset_when_bounds_change() {
        let t = Instant::now();
        let mut acc = Accumulator::default();
        let mk = |v| {
            vec![fam(
                "h",
                FamilyType::Histogram,
                true,
                vec![point(&[], v, 1, 2)],
            )]
        };
        let mut f = mk(hist(&[1.0], &[1, 2], Some(3.0)));
        acc.commit(acc.apply(&mut f, t));
        let mut f = mk(hist(&[1.0], &[4, 0], None));
        acc.commit(acc.apply(&mut f, t));
        assert_eq!(f[0].points[0].value, hist(&[1.0], &[5, 2], None));
        let mut f = mk(hist(&[2.0], &[1, 1], Some(1.0)));
        acc.commit(acc.apply(&mut f, t));
        assert_eq!(f[0].points[0].value, hist(&[2.0], &[1, 1], Some(1.0)));
    }

    #[test]
    fn totals_expire() {
        let t0 = Instant::now();
        let mut acc = Accumulator::default();
        let mut f = vec![fam(
            "x",
            FamilyType::Counter,
            true,
            vec![point(&[], Value::Int(1), 0, 1)],
        )];
        acc.commit(acc.apply(&mut f, t0));
        acc.expire(t0 + Duration::from_secs(9), Duration::from_secs(10));
        assert_eq!(acc.len(), 1);
        acc.expire(t0 + Duration::from_secs(10), Duration::from_secs(10));
        assert!(acc.is_empty());
    }

    #[test]
    fn store_keeps_the_latest_value_and_expires_series() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut s = Store::new(ttl);
        s.update(
            &[fam(
                "g",
                FamilyType::Gauge,
                false,
                vec![
                    point(&[("a", "1")], Value::Double(1.0), 0, 10),
                    point(&[("a", "2")], Value::Double(2.0), 0, 10),
                ],
            )],
            t0,
        );
        // Newer value for a=1; an older one for a=2 is ignored.
        let later = t0 + Duration::from_secs(30);
        s.update(
            &[fam(
                "g",
                FamilyType::Gauge,
                false,
                vec![
                    point(&[("a", "1")], Value::Double(3.0), 0, 20),
                    point(&[("a", "2")], Value::Double(9.0), 0, 5),
                ],
            )],
            later,
        );
        assert_eq!(
            s.render(Format::Text, later),
            "# TYPE g gauge\ng{a=\"1\"} 3\ng{a=\"2\"} 2\n"
        );
        // a=2 was last updated at t0: gone after the TTL; a=1 stays until later+ttl.
        let text = s.render(Format::Text, t0 + ttl);
        assert_eq!(text, "# TYPE g gauge\ng{a=\"1\"} 3\n");
        assert_eq!(s.series_count(), 1);
        assert_eq!(s.render(Format::OpenMetrics, later + ttl), "# EOF\n");
        assert_eq!(s.family_type("g"), None);
    }

    #[test]
    fn a_type_conflict_keeps_the_existing_family() {
        let t0 = Instant::now();
        let mut s = Store::new(Duration::from_secs(10));
        s.update(
            &[fam(
                "x",
                FamilyType::Gauge,
                false,
                vec![point(&[], Value::Int(1), 0, 1)],
            )],
            t0,
        );
        let conflicts = s.update(
            &[fam(
                "x",
                FamilyType::Counter,
                false,
                vec![point(&[], Value::Int(2), 0, 2)],
            )],
            t0,
        );
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(s.family_type("x"), Some(FamilyType::Gauge));
        // Once the gauge expired, the name is free again.
        let later = t0 + Duration::from_secs(10);
        let conflicts = s.update(
            &[fam(
                "x",
                FamilyType::Counter,
                false,
                vec![point(&[], Value::Int(2), 0, 2)],
            )],
            later,
        );
        assert!(conflicts.is_empty());
        assert_eq!(s.family_type("x"), Some(FamilyType::Counter));
        assert_eq!(
            s.render(Format::Text, later),
            "# TYPE x_total counter\nx_total 2\n"
        );
    }

    /// Updates that replace existing series in place give what a store built from
    /// scratch with the surviving points gives: the latest point of every series
    /// (ties: the later update), histograms and summaries of other sizes, values
    /// changing kind; series mostly in the same order batch after batch (position
    /// hints hit), sometimes skipped, repeated or reordered, and expiring (hints
    /// left pointing at other series).
    #[test]
    fn in_place_updates_match_a_fresh_store() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(7);
        let mut seed = 5u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let all_labels: Vec<Labels> = (0..12)
            .map(|i| match i {
                0 => vec![],
                1..=5 => vec![("a".into(), format!("{i}"))],
                _ => vec![("a".into(), "1".into()), ("b".into(), format!("x{i}"))],
            })
            .collect();
        let kind_of = |name: &str| match name {
            "h" => FamilyType::Histogram,
            "q" => FamilyType::Summary,
            _ => FamilyType::Gauge,
        };
        let mut s = Store::new(ttl);
        let mut latest: BTreeMap<(String, Labels), (Point, Instant)> = BTreeMap::new();
        let mut hits = 0;
        for round in 0..400u64 {
            let now = t0 + Duration::from_secs(round / 3);
            let mut fams = Vec::new();
            for name in ["g", "h", "q"] {
                let mut order: Vec<usize> =
                    (0..all_labels.len()).filter(|_| next(8) != 0).collect();
                match next(6) {
                    0 => order.reverse(),
                    1 => order.push(next(12) as usize),
                    2 => order.truncate(next(4) as usize),
                    _ => {}
                }
                let mut points = Vec::new();
                for i in order {
                    let value = match name {
                        "h" => {
                            let n = next(3) as usize;
                            hist(
                                &[0.5, 1.0, 2.0][..n],
                                &vec![next(5); n + 1],
                                Some(next(9) as f64),
                            )
                        }
                        "q" => Value::Summary(crate::encode::Summary {
                            quantiles: (0..next(3)).map(|i| (i as f64 / 2.0, 1.0)).collect(),
                            count: next(9),
                            sum: Some(2.0),
                        }),
                        _ if next(2) == 0 => Value::Int(next(100) as i64),
                        _ => Value::Double(next(100) as f64),
                    };
                    let mut p = point(&[], value, next(3), round * 10 + next(25));
                    p.labels = all_labels[i].clone();
                    points.push(p);
                }
                for p in &points {
                    let key = (name.to_string(), p.labels.clone());
                    let live = latest
                        .get(&key)
                        .filter(|(_, at)| now.saturating_duration_since(*at) < ttl);
                    match live {
                        Some((old, _)) if old.time_unix_nano > p.time_unix_nano => {}
                        _ => {
                            latest.insert(key, (p.clone(), now));
                        }
                    }
                }
                fams.push(fam(name, kind_of(name), false, points));
            }
            s.update(&fams, now);
            hits += s
                .families
                .values()
                .flat_map(|f| f.hints.iter())
                .filter(|h| **h != usize::MAX)
                .count();
            latest.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
            let mut fresh = Store::new(ttl);
            for ((name, _), (p, _)) in &latest {
                fresh.update(&[fam(name, kind_of(name), false, vec![p.clone()])], now);
            }
            assert_eq!(s.series_count(), latest.len(), "round {round}");
            for format in [Format::Text, Format::OpenMetrics] {
                assert_eq!(
                    s.render(format, now),
                    fresh.render(format, now),
                    "round {round}"
                );
            }
        }
        assert!(hits > 1000, "{hits}");
    }

    /// Several points of one new series in one batch: the last of the latest
    /// wins, as when they are applied one after the other.
    #[test]
    fn repeated_new_series_in_one_batch_keep_the_last_of_the_latest() {
        let t0 = Instant::now();
        let g = |points| fam("g", FamilyType::Gauge, false, points);
        for (times, want) in [
            ([5, 5, 3], "g 2\n"),
            ([5, 3, 5], "g 3\n"),
            ([3, 5, 4], "g 2\n"),
            ([1, 2, 3], "g 3\n"),
        ] {
            let mut s = Store::new(Duration::from_secs(10));
            let points = times
                .iter()
                .zip(1..)
                .map(|(t, v)| point(&[], Value::Int(v), 0, *t))
                .collect();
            s.update(&[g(points)], t0);
            assert_eq!(
                s.render(Format::Text, t0),
                format!("# TYPE g gauge\n{want}"),
                "{times:?}"
            );
        }
    }
}
