"""Decodes one OTLP export request (binary protobuf, read from a file) with the
official Python `opentelemetry-proto` package, the protobuf classes the
OpenTelemetry SDK itself uses, and prints it as JSON, so the Rust sink test checks
the published payloads with a decoder that shares no code with the agent.

Usage: python3 otlp_decode.py {traces|metrics|logs} FILE

Output: `json_format.MessageToDict` (lowerCamelCase keys, 64-bit integers as
strings, enums as their names) with trace/span ids turned into lowercase hex.
"""

import base64
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


def ids_to_hex(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            ids_to_hex(item)


def main() -> int:
    signal, path = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        data = f.read()
    msg = MESSAGES[signal]()
    msg.ParseFromString(data)
    out = json_format.MessageToDict(msg)
    ids_to_hex(out)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
