#!/usr/bin/env python3
"""Independent checks for the alibaba plugin's tests, written from Alibaba's
documentation with the Python standard library (hmac, hashlib, base64, zlib,
urllib) and, for LZ4 blocks, the `lz4` package (pip install lz4 /
apt install python3-lz4).

Reads one JSON object on stdin, prints one JSON object:
- {"cmd": "sls", "method", "path", "headers": {..}, "body_hex", "key_id", "secret"}
  -> {"md5", "authorization", "raw_hex" (decompressed body, null if lz4 is
  missing), "lz4_missing"}
  SLS "Request signatures": StringToSign = VERB\\nContent-MD5\\nContent-Type\\nDate\\n
  + x-log-*/x-acs-* headers (lower-case, sorted, "k:v\\n") + resource
  (+ "?" + sorted "k=v" joined by "&").
- {"cmd": "rpc", "method", "body", "secret"}
  -> {"signature" (as sent), "expected", "string_to_sign", "params"}
  RPC signature: percent-encode (RFC 3986 unreserved kept), sort, join,
  METHOD&%2F&encode(query), base64(HMAC-SHA1(secret + "&")).
"""
import base64
import hashlib
import hmac
import json
import sys
import urllib.parse
import zlib


def sls(req):
    h = {k.lower(): v for k, v in req["headers"].items()}
    body = bytes.fromhex(req["body_hex"])
    canon = "".join(
        "%s:%s\n" % (k, h[k])
        for k in sorted(h)
        if k.startswith("x-log-") or k.startswith("x-acs-")
    )
    path, _, query = req["path"].partition("?")
    resource = path
    if query:
        pairs = sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
        resource += "?" + "&".join("%s=%s" % kv for kv in pairs)
    sts = "%s\n%s\n%s\n%s\n%s%s" % (
        req["method"],
        h.get("content-md5", ""),
        h.get("content-type", ""),
        h["date"],
        canon,
        resource,
    )
    sig = base64.b64encode(
        hmac.new(req["secret"].encode(), sts.encode(), hashlib.sha1).digest()
    ).decode()
    raw, missing = None, False
    ct = h.get("x-log-compresstype")
    if ct == "lz4":
        try:
            import lz4.block
        except ImportError:
            missing = True
        else:
            raw = lz4.block.decompress(
                body, uncompressed_size=int(h["x-log-bodyrawsize"])
            )
    elif ct == "deflate":
        raw = zlib.decompress(body)
    else:
        raw = body
    return {
        "md5": hashlib.md5(body).hexdigest().upper(),
        "authorization": "LOG %s:%s" % (req["key_id"], sig),
        "raw_hex": raw.hex() if raw is not None else None,
        "lz4_missing": missing,
    }


def rpc(req):
    params = dict(urllib.parse.parse_qsl(req["body"], keep_blank_values=True))
    sent = params.pop("Signature")

    def pe(s):
        return urllib.parse.quote(s, safe="-_.~")

    canon = "&".join("%s=%s" % (pe(k), pe(v)) for k, v in sorted(params.items()))
    sts = req["method"] + "&%2F&" + pe(canon)
    expected = base64.b64encode(
        hmac.new((req["secret"] + "&").encode(), sts.encode(), hashlib.sha1).digest()
    ).decode()
    return {"signature": sent, "expected": expected, "string_to_sign": sts, "params": params}


def main():
    req = json.load(sys.stdin)
    out = {"sls": sls, "rpc": rpc}[req["cmd"]](req)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
