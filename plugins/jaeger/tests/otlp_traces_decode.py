"""Decodes one OTLP ExportTraceServiceRequest (binary protobuf, on stdin) with the
official Python `opentelemetry-proto` package, the protobuf classes the
OpenTelemetry SDK itself uses, and prints it as JSON, so the Rust test checks the
Jaeger plugin's output with a decoder that shares no code with it.

Output: `json_format.MessageToDict` (lowerCamelCase keys, 64-bit integers as
strings, enums as their names) with trace/span ids turned into lowercase hex.
ParseFromString fails on malformed input, and the script then exits non-zero.
"""

import base64
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

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
    msg = ExportTraceServiceRequest()
    msg.ParseFromString(sys.stdin.buffer.read())
    out = json_format.MessageToDict(msg)
    ids_to_hex(out)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
