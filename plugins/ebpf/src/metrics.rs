//! Pure construction of the metrics from what the BPF maps held (already summed
//! over CPUs by [`crate::collect`]): no I/O, so every rule here is unit-tested.
//!
//! Naming scheme (docs/integrations/ebpf.md): `ebpf.<subsystem>.<what>`, with
//! OpenTelemetry conventions for instruments and units: counts are monotonic
//! cumulative sums of integers with a `{annotation}` unit, latencies are
//! cumulative explicit-bucket histograms in seconds (`s`). "Cumulative" starts
//! when the probe's maps were created (the `start_time_unix_nano` of each point):
//! a reload of the plugin starts new series from zero, which consumers detect by
//! the new start time, exactly as after a process restart.

use tfo_plugin_api::{
    __private::abi_stable::std_types::ROption, DataPoint, HistogramValue, KeyValue, Metric,
    MetricKind, PointValue, Temporality,
};

use crate::syscalls;

/// Slots of a BPF log2 histogram (`HIST_SLOTS` in ebpf/tfo_common.h).
pub const HIST_SLOTS: usize = 64;

/// Smallest exported bucket bound: 2^10 ns = 1.024 µs. Everything at or below it
/// lands in the first bucket; finer detail is noise for both run-queue and disk
/// latency.
pub const MIN_BOUND_EXP: u32 = 10;

/// Largest exported bucket bound: 2^34 ns ≈ 17.2 s. Everything above lands in
/// the overflow bucket.
pub const MAX_BOUND_EXP: u32 = 34;

/// Flag the syscalls program sets on the number of a 32-bit (ia32) task's call
/// (`SYSCALL_COMPAT_FLAG` in ebpf/syscalls.bpf.c).
pub const SYSCALL_COMPAT_FLAG: u32 = 0x8000_0000;

/// The slot of a value in nanoseconds, exactly as `hist_slot()` in
/// ebpf/tfo_common.h computes it: slot `i` holds `2^(i-1) < ns <= 2^i`, slot 0
/// holds 0 and 1, the last slot everything larger.
pub fn hist_slot(ns: u64) -> usize {
    if ns <= 1 {
        return 0;
    }
    let slot = (64 - (ns - 1).leading_zeros()) as usize; // floor(log2(ns - 1)) + 1
    slot.min(HIST_SLOTS - 1)
}

/// A log2 latency histogram summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log2Histogram {
    /// Count per slot (see [`hist_slot`]).
    pub slots: [u64; HIST_SLOTS],
    /// Sum of the observations, in nanoseconds.
    pub sum_ns: u64,
}

impl Default for Log2Histogram {
    fn default() -> Self {
        Log2Histogram {
            slots: [0; HIST_SLOTS],
            sum_ns: 0,
        }
    }
}

impl Log2Histogram {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.slots.iter().fold(0u64, |a, &c| a.wrapping_add(c))
    }

    /// Converts to an OpenTelemetry explicit-bucket histogram in seconds.
    ///
    /// Bounds are `2^k` ns for `k` in [`MIN_BOUND_EXP`]..=[`MAX_BOUND_EXP`]; each
    /// is an inclusive upper bound, which is exactly what a log2 slot is, so the
    /// conversion only merges slots and never splits one: slots `0..=MIN` go to
    /// the first bucket, slot `MIN + j` to bucket `j`, slots above `MAX` to the
    /// overflow bucket.
    pub fn to_otel(&self) -> HistogramValue {
        let (min, max) = (MIN_BOUND_EXP as usize, MAX_BOUND_EXP as usize);
        let bounds: Vec<f64> = (min..=max).map(|k| (1u64 << k) as f64 / 1e9).collect();
        let mut counts = vec![0u64; bounds.len() + 1];
        for (slot, &c) in self.slots.iter().enumerate() {
            let bucket = slot.clamp(min, max + 1) - min;
            counts[bucket] = counts[bucket].wrapping_add(c);
        }
        HistogramValue {
            count: self.count(),
            sum: ROption::RSome(self.sum_ns as f64 / 1e9),
            bounds: bounds.into(),
            bucket_counts: counts.into(),
            min: ROption::RNone,
            max: ROption::RNone,
        }
    }
}

/// Process lifecycle counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessCounts {
    /// Successful execs.
    pub execs: u64,
    /// Exits of thread-group leaders.
    pub exits: u64,
}

/// TCP counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounts {
    /// Active opens (SYN about to be sent).
    pub connects: u64,
    /// Connections returned by accept.
    pub accepts: u64,
    /// Retransmitted segments.
    pub retransmits: u64,
}

/// One probe's reading with the time its maps started counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading<T> {
    /// When the probe's maps were created (Unix ns): the start of the cumulative
    /// series.
    pub start_unix_nano: u64,
    /// The values.
    pub value: T,
}

/// Everything read in one collection; `None` for a probe that is not attached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readings {
    /// Calls by syscall key (number, possibly with [`SYSCALL_COMPAT_FLAG`]).
    pub syscalls: Option<Reading<Vec<(u32, u64)>>>,
    /// Process counts.
    pub process: Option<Reading<ProcessCounts>>,
    /// TCP counts.
    pub tcp: Option<Reading<TcpCounts>>,
    /// Block I/O latency.
    pub block: Option<Reading<Log2Histogram>>,
    /// Run-queue latency.
    pub runqueue: Option<Reading<Log2Histogram>>,
}

/// The `syscall` label of a syscall key: the x86_64 name when `names` is on and
/// the table knows the number (x86_64 builds only), else the decimal number; a
/// 32-bit task's call is `ia32:<number>` (its numbers are a different table).
pub fn syscall_label(key: u32, names: bool) -> String {
    if key & SYSCALL_COMPAT_FLAG != 0 {
        return format!("ia32:{}", key & !SYSCALL_COMPAT_FLAG);
    }
    if names && cfg!(target_arch = "x86_64") {
        if let Some(name) = syscalls::x86_64_name(key) {
            return name.to_string();
        }
    }
    key.to_string()
}

fn metric(
    name: &str,
    description: &str,
    unit: &str,
    kind: MetricKind,
    points: Vec<DataPoint>,
) -> Metric {
    // Built from the SDK's constructor so this code does not depend on every field
    // of the ABI type (a test fixture feature adds one).
    let mut m = Metric::counter(name, unit, 0, 0, 0.0, Vec::new());
    m.description = description.into();
    m.kind = kind;
    m.temporality = Temporality::Cumulative;
    m.is_monotonic = kind == MetricKind::Sum;
    m.points = points.into();
    m
}

fn counter(name: &str, description: &str, unit: &str, start: u64, now: u64, value: u64) -> Metric {
    metric(
        name,
        description,
        unit,
        MetricKind::Sum,
        vec![point(
            Vec::new(),
            start,
            now,
            PointValue::Int(clamp_i64(value)),
        )],
    )
}

fn point(attributes: Vec<KeyValue>, start: u64, now: u64, value: PointValue) -> DataPoint {
    DataPoint {
        attributes: attributes.into(),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value,
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Builds the batch's metrics, stamped `now_unix_nano`, in probe order.
pub fn build(readings: &Readings, syscall_names: bool, now_unix_nano: u64) -> Vec<Metric> {
    let now = now_unix_nano;
    let mut out = Vec::new();
    if let Some(r) = &readings.syscalls {
        // Labels can collide (two unknown numbers never do, but a name and a
        // number cannot either): still, merge by label so a series is unique.
        let mut by_label: std::collections::BTreeMap<String, u64> = Default::default();
        for &(key, calls) in &r.value {
            *by_label
                .entry(syscall_label(key, syscall_names))
                .or_default() += calls;
        }
        let points = by_label
            .into_iter()
            .map(|(label, calls)| {
                point(
                    vec![KeyValue::new("syscall", label)],
                    r.start_unix_nano,
                    now,
                    PointValue::Int(clamp_i64(calls)),
                )
            })
            .collect();
        out.push(metric(
            "ebpf.syscalls",
            "System calls entered, by syscall (raw_syscalls:sys_enter).",
            "{call}",
            MetricKind::Sum,
            points,
        ));
    }
    if let Some(r) = &readings.process {
        let s = r.start_unix_nano;
        out.push(counter(
            "ebpf.process.execs",
            "Successful execve/execveat calls (sched:sched_process_exec).",
            "{process}",
            s,
            now,
            r.value.execs,
        ));
        out.push(counter(
            "ebpf.process.exits",
            "Processes that exited: thread-group leaders reaching sched:sched_process_exit.",
            "{process}",
            s,
            now,
            r.value.exits,
        ));
    }
    if let Some(r) = &readings.tcp {
        let s = r.start_unix_nano;
        out.push(counter(
            "ebpf.tcp.connects",
            "TCP active opens: sockets moving from CLOSE to SYN_SENT (sock:inet_sock_set_state).",
            "{connection}",
            s,
            now,
            r.value.connects,
        ));
        out.push(counter(
            "ebpf.tcp.accepts",
            "TCP passive opens: connections completing the handshake on a listening socket, ready for accept (SYN_RECV to ESTABLISHED).",
            "{connection}",
            s,
            now,
            r.value.accepts,
        ));
        out.push(counter(
            "ebpf.tcp.retransmits",
            "TCP segments retransmitted, SYNs included (tcp:tcp_retransmit_skb).",
            "{segment}",
            s,
            now,
            r.value.retransmits,
        ));
    }
    for (reading, name, description) in [
        (
            &readings.block,
            "ebpf.block.io.latency",
            "Block I/O request latency from issue to the device until completion (block_rq_issue to block_rq_complete).",
        ),
        (
            &readings.runqueue,
            "ebpf.sched.runqueue.latency",
            "Time runnable tasks waited for a CPU, from wakeup or preemption until switched in (sched_wakeup / sched_switch).",
        ),
    ] {
        if let Some(r) = reading {
            out.push(metric(
                name,
                description,
                "s",
                MetricKind::Histogram,
                vec![point(
                    Vec::new(),
                    r.start_unix_nano,
                    now,
                    PointValue::Histogram(r.value.to_otel()),
                )],
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the smallest k with ns <= 2^k, by plain iteration.
    fn ceil_log2(ns: u64) -> usize {
        (0..64)
            .find(|&k| (ns as u128) <= (1u128 << k))
            .unwrap_or(64)
    }

    #[test]
    fn slots_follow_ceil_log2() {
        assert_eq!(hist_slot(0), 0);
        assert_eq!(hist_slot(1), 0);
        assert_eq!(hist_slot(2), 1);
        assert_eq!(hist_slot(3), 2);
        assert_eq!(hist_slot(4), 2);
        assert_eq!(hist_slot(5), 3);
        assert_eq!(hist_slot(1024), 10);
        assert_eq!(hist_slot(1025), 11);
        assert_eq!(hist_slot(1 << 62), 62);
        assert_eq!(hist_slot((1 << 62) + 1), 63);
        assert_eq!(hist_slot(u64::MAX), 63);
        for ns in (0..5000u64).chain((1..64).flat_map(|k| {
            let p = 1u64 << k;
            [p - 1, p, p + 1]
        })) {
            assert_eq!(hist_slot(ns), ceil_log2(ns).min(63), "ns={ns}");
        }
    }

    fn hist_of(values_ns: &[u64]) -> Log2Histogram {
        let mut h = Log2Histogram::default();
        for &v in values_ns {
            h.slots[hist_slot(v)] += 1;
            h.sum_ns += v;
        }
        h
    }

    #[test]
    fn bounds_are_powers_of_two_nanoseconds_in_seconds() {
        let o = Log2Histogram::default().to_otel();
        assert_eq!(o.bounds.len(), (MAX_BOUND_EXP - MIN_BOUND_EXP + 1) as usize);
        assert_eq!(o.bucket_counts.len(), o.bounds.len() + 1);
        assert_eq!(o.bounds[0], 1.024e-6);
        assert_eq!(o.bounds[1], 2.048e-6);
        assert_eq!(*o.bounds.last().unwrap(), 17.179869184);
        assert!(o.bounds.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(o.count, 0);
        assert!(o.bucket_counts.iter().all(|&c| c == 0));
    }

    /// Every value lands in the bucket whose bounds hold it, with OpenTelemetry's
    /// rule: bucket i counts bounds[i-1] < v <= bounds[i].
    #[test]
    fn every_value_lands_in_its_otel_bucket() {
        let mut values: Vec<u64> = vec![0, 1, 2, 999, 1000, 1023, 1024, 1025, 2048, 2049];
        for k in 0..63 {
            let p = 1u64 << k;
            values.extend([p - 1, p, p + 1, p + p / 2]);
        }
        values.push(u64::MAX / 2);
        for &v in &values {
            let o = hist_of(&[v]).to_otel();
            let secs = v as f64 / 1e9;
            let i = o.bucket_counts.iter().position(|&c| c == 1).unwrap();
            assert_eq!(o.bucket_counts.iter().sum::<u64>(), 1);
            if i < o.bounds.len() {
                assert!(secs <= o.bounds[i], "v={v} bucket {i}");
            }
            if i > 0 {
                assert!(secs > o.bounds[i - 1], "v={v} bucket {i}");
            }
        }
    }

    #[test]
    fn counts_and_sum_are_kept() {
        // 3 values in the first bucket, one in 2^10..2^11, two overflowing.
        let h = hist_of(&[0, 500, 1024, 1500, 1 << 35, u64::MAX >> 8]);
        let o = h.to_otel();
        assert_eq!(o.count, 6);
        assert_eq!(o.bucket_counts[0], 3);
        assert_eq!(o.bucket_counts[1], 1);
        assert_eq!(*o.bucket_counts.last().unwrap(), 2);
        assert_eq!(o.bucket_counts.iter().sum::<u64>(), 6);
        let sum = match o.sum {
            ROption::RSome(s) => s,
            _ => panic!("sum missing"),
        };
        assert_eq!(sum, h.sum_ns as f64 / 1e9);
    }

    #[test]
    fn syscall_labels() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(syscall_label(257, true), "openat");
        }
        assert_eq!(syscall_label(257, false), "257");
        assert_eq!(syscall_label(9999, true), "9999");
        assert_eq!(syscall_label(SYSCALL_COMPAT_FLAG | 5, true), "ia32:5");
    }

    #[test]
    fn builds_every_metric_in_probe_order() {
        let r = Readings {
            syscalls: Some(Reading {
                start_unix_nano: 5,
                value: vec![(257, 7), (0, 3)],
            }),
            process: Some(Reading {
                start_unix_nano: 6,
                value: ProcessCounts { execs: 2, exits: 1 },
            }),
            tcp: Some(Reading {
                start_unix_nano: 7,
                value: TcpCounts {
                    connects: 4,
                    accepts: 3,
                    retransmits: u64::MAX,
                },
            }),
            block: Some(Reading {
                start_unix_nano: 8,
                value: hist_of(&[2000]),
            }),
            runqueue: Some(Reading {
                start_unix_nano: 9,
                value: hist_of(&[10, 20]),
            }),
        };
        let m = build(&r, false, 100);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ebpf.syscalls",
                "ebpf.process.execs",
                "ebpf.process.exits",
                "ebpf.tcp.connects",
                "ebpf.tcp.accepts",
                "ebpf.tcp.retransmits",
                "ebpf.block.io.latency",
                "ebpf.sched.runqueue.latency",
            ]
        );
        for x in &m {
            assert_eq!(x.temporality, Temporality::Cumulative, "{}", x.name);
            assert!(!x.description.is_empty());
            for p in x.points.iter() {
                assert_eq!(p.time_unix_nano, 100);
            }
        }
        let sc = &m[0];
        assert_eq!(sc.kind, MetricKind::Sum);
        assert!(sc.is_monotonic);
        assert_eq!(sc.unit.as_str(), "{call}");
        // Sorted by label; labels are numbers with syscall_names off.
        let pts: Vec<(String, PointValue, u64)> = sc
            .points
            .iter()
            .map(|p| {
                let label = match &p.attributes[0].value {
                    tfo_plugin_api::AnyValue::Str(s) => s.to_string(),
                    v => panic!("{v:?}"),
                };
                (label, p.value.clone(), p.start_time_unix_nano)
            })
            .collect();
        assert_eq!(
            pts,
            [
                ("0".to_string(), PointValue::Int(3), 5),
                ("257".to_string(), PointValue::Int(7), 5)
            ]
        );
        assert_eq!(m[1].points[0].value, PointValue::Int(2));
        assert_eq!(m[2].points[0].value, PointValue::Int(1));
        assert_eq!(m[3].points[0].value, PointValue::Int(4));
        assert_eq!(m[5].points[0].value, PointValue::Int(i64::MAX));
        assert_eq!(m[5].points[0].start_time_unix_nano, 7);
        let hist = |i: usize| match &m[i].points[0].value {
            PointValue::Histogram(h) => h.clone(),
            v => panic!("{v:?}"),
        };
        assert_eq!(m[6].kind, MetricKind::Histogram);
        assert!(!m[6].is_monotonic);
        assert_eq!(m[6].unit.as_str(), "s");
        assert_eq!(hist(6).count, 1);
        assert_eq!(hist(6).bucket_counts[1], 1);
        assert_eq!(hist(7).count, 2);
        assert_eq!(m[7].points[0].start_time_unix_nano, 9);
    }

    #[test]
    fn absent_probes_give_no_metrics() {
        assert!(build(&Readings::default(), true, 1).is_empty());
    }
}
