//! The telemetry data model that crosses the plugin boundary.
//!
//! It follows the OpenTelemetry data model (resource, metrics with gauge / sum /
//! histogram / summary points, spans with events, log records) so that OTLP in and out
//! is lossless and every other wire format is a mapping from it. Every type is
//! `#[repr(C)]` + [`StableAbi`], so the host and a plugin built separately agree on its
//! layout, and abi_stable checks that agreement when a plugin is loaded.
//!
//! Ownership rule: a [`Batch`] handed to a sink is owned by the host and only borrowed
//! for the call. A batch a plugin returns or emits was allocated by the plugin, so the
//! host clones it into its own memory at once ([`Clone`] runs in the caller's code) and
//! drops the plugin's copy while the plugin is still loaded.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

/// An attribute or log-body value (OpenTelemetry `AnyValue` without nesting, which
/// abi_stable cannot express as a recursive stable type).
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AnyValue {
    /// UTF-8 string.
    Str(RString),
    /// Boolean.
    Bool(bool),
    /// Signed 64-bit integer.
    Int(i64),
    /// IEEE-754 double.
    Double(f64),
    /// Raw bytes.
    Bytes(RVec<u8>),
}

impl From<&str> for AnyValue {
    fn from(s: &str) -> Self {
        AnyValue::Str(s.into())
    }
}
impl From<String> for AnyValue {
    fn from(s: String) -> Self {
        AnyValue::Str(s.into())
    }
}
impl From<i64> for AnyValue {
    fn from(v: i64) -> Self {
        AnyValue::Int(v)
    }
}
impl From<f64> for AnyValue {
    fn from(v: f64) -> Self {
        AnyValue::Double(v)
    }
}
impl From<bool> for AnyValue {
    fn from(v: bool) -> Self {
        AnyValue::Bool(v)
    }
}

/// One attribute: a key and its value.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KeyValue {
    /// Attribute name, e.g. `host.name`.
    pub key: RString,
    /// Attribute value.
    pub value: AnyValue,
}

impl KeyValue {
    /// Builds an attribute from anything convertible to a value.
    pub fn new(key: impl Into<RString>, value: impl Into<AnyValue>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The entity producing telemetry (host, service, agent), as OpenTelemetry's Resource.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Resource {
    /// Resource attributes such as `host.name`, `service.name`.
    pub attributes: RVec<KeyValue>,
}

/// Which OpenTelemetry metric data type the points carry.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MetricKind {
    /// Last-value measurement.
    Gauge,
    /// A sum (counter or up-down counter), see `is_monotonic` and `temporality`.
    Sum,
    /// Explicit-bucket histogram.
    Histogram,
    /// Quantile summary (legacy Prometheus / StatsD).
    Summary,
}

/// Aggregation temporality of sums and histograms.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Temporality {
    /// Not applicable (gauges, summaries).
    Unspecified,
    /// Each point covers the interval since the previous one.
    Delta,
    /// Each point covers the interval since a fixed start time.
    Cumulative,
}

/// Explicit-bucket histogram point: `bucket_counts.len() == bounds.len() + 1`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HistogramValue {
    /// Number of observations.
    pub count: u64,
    /// Sum of observations, when known.
    pub sum: ROption<f64>,
    /// Upper bounds of the buckets, increasing.
    pub bounds: RVec<f64>,
    /// Per-bucket counts (not cumulative), one more than `bounds`.
    pub bucket_counts: RVec<u64>,
    /// Smallest observation, when known.
    pub min: ROption<f64>,
    /// Largest observation, when known.
    pub max: ROption<f64>,
}

/// One quantile of a summary point.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Quantile {
    /// Quantile in [0, 1].
    pub quantile: f64,
    /// Value at that quantile.
    pub value: f64,
}

/// Summary point (count, sum, quantiles).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SummaryValue {
    /// Number of observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
    /// Quantile values.
    pub quantiles: RVec<Quantile>,
}

/// The value of one data point; which variant is valid follows the metric's kind.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PointValue {
    /// Floating-point gauge or sum value.
    Double(f64),
    /// Integer gauge or sum value.
    Int(i64),
    /// Histogram value.
    Histogram(HistogramValue),
    /// Summary value.
    Summary(SummaryValue),
}

/// One data point of a metric.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DataPoint {
    /// Point attributes (labels).
    pub attributes: RVec<KeyValue>,
    /// Start of the aggregation interval (0 when not applicable).
    pub start_time_unix_nano: u64,
    /// Time of the measurement.
    pub time_unix_nano: u64,
    /// The value.
    pub value: PointValue,
}

/// A metric: identity plus its data points.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Metric {
    /// Metric name, OpenTelemetry style (`system.cpu.time`).
    pub name: RString,
    /// Human-readable description.
    pub description: RString,
    /// UCUM unit, e.g. `s`, `By`, `1`.
    pub unit: RString,
    /// Data type of the points.
    pub kind: MetricKind,
    /// Temporality of sums and histograms.
    pub temporality: Temporality,
    /// Whether a sum only grows (a counter).
    pub is_monotonic: bool,
    /// The points.
    pub points: RVec<DataPoint>,
    /// Exists only in the ABI-break test fixture: changes this type's layout so that
    /// the host's load-time check must refuse the plugin.
    #[cfg(feature = "abi-break-fixture")]
    pub layout_probe: u64,
}

impl Metric {
    /// A gauge with one point, the most common thing a source produces.
    pub fn gauge(
        name: &str,
        unit: &str,
        time_unix_nano: u64,
        value: f64,
        attributes: Vec<KeyValue>,
    ) -> Self {
        Self::with_point(
            name,
            unit,
            MetricKind::Gauge,
            Temporality::Unspecified,
            false,
            DataPoint {
                attributes: attributes.into(),
                start_time_unix_nano: 0,
                time_unix_nano,
                value: PointValue::Double(value),
            },
        )
    }

    /// A monotonic cumulative sum (a counter) with one point.
    pub fn counter(
        name: &str,
        unit: &str,
        start_unix_nano: u64,
        time_unix_nano: u64,
        value: f64,
        attributes: Vec<KeyValue>,
    ) -> Self {
        Self::with_point(
            name,
            unit,
            MetricKind::Sum,
            Temporality::Cumulative,
            true,
            DataPoint {
                attributes: attributes.into(),
                start_time_unix_nano: start_unix_nano,
                time_unix_nano,
                value: PointValue::Double(value),
            },
        )
    }

    fn with_point(
        name: &str,
        unit: &str,
        kind: MetricKind,
        temporality: Temporality,
        is_monotonic: bool,
        point: DataPoint,
    ) -> Self {
        Metric {
            name: name.into(),
            description: RString::new(),
            unit: unit.into(),
            kind,
            temporality,
            is_monotonic,
            points: vec![point].into(),
            #[cfg(feature = "abi-break-fixture")]
            layout_probe: 0,
        }
    }
}

/// Span kind, as OpenTelemetry.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SpanKind {
    /// Not specified.
    Unspecified,
    /// Internal operation.
    Internal,
    /// Server side of a request.
    Server,
    /// Client side of a request.
    Client,
    /// Message producer.
    Producer,
    /// Message consumer.
    Consumer,
}

/// Span status code, as OpenTelemetry.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum StatusCode {
    /// Default.
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed.
    Error,
}

/// A timestamped event inside a span.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SpanEvent {
    /// Event name.
    pub name: RString,
    /// When it happened.
    pub time_unix_nano: u64,
    /// Event attributes.
    pub attributes: RVec<KeyValue>,
}

/// One span of a trace.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Span {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// 8-byte span id.
    pub span_id: [u8; 8],
    /// Parent span id; all zero for a root span.
    pub parent_span_id: [u8; 8],
    /// Operation name.
    pub name: RString,
    /// Span kind.
    pub kind: SpanKind,
    /// Start time.
    pub start_time_unix_nano: u64,
    /// End time.
    pub end_time_unix_nano: u64,
    /// Status code.
    pub status_code: StatusCode,
    /// Status message (for errors).
    pub status_message: RString,
    /// Span attributes.
    pub attributes: RVec<KeyValue>,
    /// Span events.
    pub events: RVec<SpanEvent>,
}

/// One log record, as OpenTelemetry's LogRecord.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LogRecord {
    /// Time of the event (0 if unknown).
    pub time_unix_nano: u64,
    /// Time the agent observed it.
    pub observed_time_unix_nano: u64,
    /// OpenTelemetry severity number (1-24, 0 = unspecified).
    pub severity_number: u8,
    /// Severity as text (`INFO`, `ERROR`...).
    pub severity_text: RString,
    /// Log body.
    pub body: AnyValue,
    /// Record attributes.
    pub attributes: RVec<KeyValue>,
    /// Trace id, all zero when not correlated.
    pub trace_id: [u8; 16],
    /// Span id, all zero when not correlated.
    pub span_id: [u8; 8],
}

/// The unit of work between host and plugins: one resource with any mix of metrics,
/// spans and logs.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Batch {
    /// Who produced the data.
    pub resource: Resource,
    /// Metrics.
    pub metrics: RVec<Metric>,
    /// Spans.
    pub spans: RVec<Span>,
    /// Log records.
    pub logs: RVec<LogRecord>,
}

impl Batch {
    /// Items in the batch, the unit the host counts in: metric data points, spans and
    /// log records.
    pub fn item_count(&self) -> u64 {
        let points: usize = self.metrics.iter().map(|m| m.points.len()).sum();
        (points + self.spans.len() + self.logs.len()) as u64
    }

    /// True when there is nothing to export.
    pub fn is_empty(&self) -> bool {
        self.item_count() == 0
    }

    /// Which data types the batch carries.
    pub fn data_types(&self) -> crate::DataTypes {
        let mut t = crate::DataTypes::NONE;
        if !self.metrics.is_empty() {
            t = t | crate::DataTypes::METRICS;
        }
        if !self.spans.is_empty() {
            t = t | crate::DataTypes::TRACES;
        }
        if !self.logs.is_empty() {
            t = t | crate::DataTypes::LOGS;
        }
        t
    }

    /// Rough size in bytes, used by the host for byte-bounded queues.
    pub fn approx_bytes(&self) -> u64 {
        fn attrs(a: &[KeyValue]) -> usize {
            a.iter()
                .map(|kv| {
                    kv.key.len()
                        + 16
                        + match &kv.value {
                            AnyValue::Str(s) => s.len(),
                            AnyValue::Bytes(b) => b.len(),
                            _ => 8,
                        }
                })
                .sum()
        }
        let mut n = attrs(&self.resource.attributes);
        for m in self.metrics.iter() {
            n += m.name.len() + m.description.len() + m.unit.len() + 32;
            for p in m.points.iter() {
                n += 32 + attrs(&p.attributes);
                if let PointValue::Histogram(h) = &p.value {
                    n += 8 * (h.bounds.len() + h.bucket_counts.len());
                }
            }
        }
        for s in self.spans.iter() {
            n += 96 + s.name.len() + s.status_message.len() + attrs(&s.attributes);
            n += s
                .events
                .iter()
                .map(|e| 16 + e.name.len() + attrs(&e.attributes))
                .sum::<usize>();
        }
        for l in self.logs.iter() {
            n += 64 + l.severity_text.len() + attrs(&l.attributes);
            n += match &l.body {
                AnyValue::Str(s) => s.len(),
                AnyValue::Bytes(b) => b.len(),
                _ => 8,
            };
        }
        n as u64
    }
}
