"""Decodes one OTLP export request with the official Python `opentelemetry-proto`
package (the protobuf classes the OpenTelemetry SDK itself uses) and prints it as
JSON, so the Rust exporter test checks its output with a decoder that shares no
code with it.

Usage: python3 otlp_decode.py {traces|metrics|logs} {protobuf|json} < body

- protobuf: `ParseFromString` of the binary body;
- json: OTLP/JSON, parsed strictly by protobuf's `json_format.ParseDict` (unknown or
  misspelt keys are errors) after the one OTLP deviation from proto3 JSON, hex
  trace/span ids, is turned into the base64 protobuf expects; a body with base64
  ids would fail here because they are not valid hex.

Output: `json_format.MessageToDict` (lowerCamelCase keys, 64-bit integers as
strings, enums as their names) with trace/span ids turned into lowercase hex.
"""

import base64
import binascii
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

MESSAGES = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}
ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def rewrite_ids(node, convert):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ID_KEYS and isinstance(value, str):
                node[key] = convert(value)
            else:
                rewrite_ids(value, convert)
    elif isinstance(node, list):
        for item in node:
            rewrite_ids(item, convert)


def main() -> int:
    signal, encoding = sys.argv[1], sys.argv[2]
    data = sys.stdin.buffer.read()
    msg = MESSAGES[signal]()
    if encoding == "protobuf":
        msg.ParseFromString(data)
    elif encoding == "json":
        obj = json.loads(data)
        rewrite_ids(obj, lambda h: base64.b64encode(binascii.unhexlify(h)).decode())
        json_format.ParseDict(obj, msg)
    else:
        raise SystemExit(f"unknown encoding {encoding}")
    out = json_format.MessageToDict(msg)
    rewrite_ids(out, lambda b: base64.b64decode(b).hex())
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
