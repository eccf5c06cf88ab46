"""Sends spans, logs and metrics to an OTLP/HTTP receiver with the official
OpenTelemetry Python SDK and its OTLP/HTTP (protobuf) exporters.

Usage: python3 otlp_sdk_send.py BASE_URL   (e.g. http://127.0.0.1:4318)

The SDK produces the telemetry (tracer, logging handler, meter), in-memory
processors collect it, and the official OTLP/HTTP exporters serialize and send it,
so the script can check each export's result and exit non-zero on any failure.
Traces are sent gzip-compressed, logs and metrics uncompressed. Prints one JSON
line describing what was sent (trace/span ids in hex), which the Rust test
(tests/receiver.rs) compares with what reached the agent.
"""

import json
import logging
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


def main() -> int:
    base = sys.argv[1].rstrip("/")
    resource = Resource.create({"service.name": "py-sdk-test", "deployment.environment": "ci"})

    # Traces: a server span with a client child that fails, and an event.
    spans_mem = InMemorySpanExporter()
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(SimpleSpanProcessor(spans_mem))
    tracer = tp.get_tracer("tfo.test.tracer", "1.2.3")

    # Logs: through the standard logging module, inside the span so they carry
    # its trace and span ids.
    logs_mem = InMemoryLogRecordExporter()
    lp = LoggerProvider(resource=resource)
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs_mem))
    logger = logging.getLogger("tfo.test.logger")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=lp))

    with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER) as parent:
        parent.set_attribute("http.route", "/checkout")
        parent.set_attribute("retries", 2)
        parent.add_event("cache miss", {"key": "cart:42"})
        with tracer.start_as_current_span("db.query", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "connection reset"))
            logger.error("disk full", extra={"disk": "sda"})
        logger.warning("slow checkout")
        ids = {
            "trace_id": format(parent.get_span_context().trace_id, "032x"),
            "parent_span_id": format(parent.get_span_context().span_id, "016x"),
            "child_span_id": format(child.get_span_context().span_id, "016x"),
        }

    # Metrics: one instrument of each kind, cumulative (the SDK's default).
    reader = InMemoryMetricReader()
    mp = MeterProvider(resource=resource, metric_readers=[reader])
    meter = mp.get_meter("tfo.test.meter", "0.9")
    counter = meter.create_counter("requests", unit="1", description="handled requests")
    counter.add(3, {"route": "/a"})
    counter.add(4, {"route": "/a"})
    updown = meter.create_up_down_counter("queue.depth", unit="{item}")
    updown.add(5)
    updown.add(-2)
    hist = meter.create_histogram("latency", unit="ms")
    for v in (3.0, 30.0, 300.0):
        hist.record(v, {"route": "/a"})
    meter.create_observable_gauge(
        "temperature", callbacks=[lambda _opts: [Observation(21.5, {"room": "lab"})]], unit="Cel"
    )
    metrics_data = reader.get_metrics_data()

    failures = []
    r = OTLPSpanExporter(endpoint=f"{base}/v1/traces", compression=Compression.Gzip).export(
        spans_mem.get_finished_spans()
    )
    if r != SpanExportResult.SUCCESS:
        failures.append(f"traces: {r}")
    r = OTLPLogExporter(endpoint=f"{base}/v1/logs").export(logs_mem.get_finished_logs())
    if r != LogRecordExportResult.SUCCESS:
        failures.append(f"logs: {r}")
    r = OTLPMetricExporter(endpoint=f"{base}/v1/metrics").export(metrics_data)
    if r != MetricExportResult.SUCCESS:
        failures.append(f"metrics: {r}")

    print(json.dumps(ids))
    if failures:
        print("export failed: " + ", ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
