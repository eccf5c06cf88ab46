#!/usr/bin/env python3
"""Writes the side-by-side table of docs/benchmarks.md from target/bench/results/*.json
(between the `<!-- side-by-side:begin -->` and `<!-- side-by-side:end -->` markers),
so the page always shows the figures of the last run with the machine they were
taken on. A scenario that has no result file keeps a "not run" row.

    python3 bench/report.py [--print]
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import RESULTS, ROOT  # noqa: E402

DOC = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- side-by-side:begin -->", "<!-- side-by-side:end -->"


def load(name):
    try:
        with open(os.path.join(RESULTS, f"{name}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def f(x, nd=2):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{nd}f}"


def holds(ratio, op, target):
    if ratio is None:
        return "–"
    ok = ratio <= target if op == "<=" else (ratio >= target if op == ">=" else ratio < target)
    return "yes" if ok else "**no**"


def rows():
    out = []
    machines = []

    def row(n, scen, metric, ours, peer, ratio, target, ok, cmd):
        out.append(f"| {n} | {scen} | {metric} | {ours} | {peer} | {ratio} | {target} | {ok} | `{cmd}` |")

    r = load("idle")
    if r:
        machines.append(("idle", r))
        o = r["procs"]
        q = f" ({r['duration_s']:.0f} s)"
        rr = r["ratios"]
        row(1, "idle" + q, "RSS median, MiB", f(o["ours"]["rss_median_kib"] / 1024), f"node_exporter {f(o['node_exporter']['rss_median_kib'] / 1024)}",
            f(rr["rss_vs_node_exporter"]), "≤ 0.5×", holds(rr["rss_vs_node_exporter"], "<=", 0.5), "scripts/bench.sh idle")
        row(1, "idle" + q, "RSS median, MiB", f(o["ours"]["rss_median_kib"] / 1024), f"collectd {f(o['collectd']['rss_median_kib'] / 1024)}",
            f(rr["rss_vs_collectd"]), "≤ 2×", holds(rr["rss_vs_collectd"], "<=", 2), "scripts/bench.sh idle")
        row(1, "idle" + q, "CPU-seconds", f(o["ours"]["cpu_s"]), f"node_exporter {f(o['node_exporter']['cpu_s'])} / collectd {f(o['collectd']['cpu_s'])}",
            f"{f(rr['cpu_vs_node_exporter'])} / {f(rr['cpu_vs_collectd'])}", "–", "–", "scripts/bench.sh idle")
    else:
        row(1, "idle", "RSS, CPU-s", "not run", "", "", "≤ 0.5× node_exporter, ≤ 2× collectd", "–", "scripts/bench.sh idle")

    r = load("scrape")
    if r:
        machines.append(("scrape", r))
        m, rr = r["median"], r["ratios"]
        o, p = m["ours"], m["node_exporter"]
        row(2, f"scrape ×{r['scrapes_per_rep']}", "CPU-µs per scrape", f"{f(o['cpu_us_per_scrape'])} ({o['series']:.0f} series)",
            f"{f(p['cpu_us_per_scrape'])} ({p['series']:.0f} series)", f(rr["cpu_per_scrape"]), "≤ 0.5×", holds(rr["cpu_per_scrape"], "<=", 0.5), "scripts/bench.sh scrape")
        row(2, f"scrape ×{r['scrapes_per_rep']}", "CPU-ns per series", f(o["cpu_ns_per_series"]), f(p["cpu_ns_per_series"]), f(rr["cpu_per_series"]), "–", "–", "scripts/bench.sh scrape")
        row(2, f"scrape ×{r['scrapes_per_rep']}", "p99 latency, ms", f(o["p99_ms"]), f(p["p99_ms"]), f(rr["p99"]), "–", "–", "scripts/bench.sh scrape")
    else:
        row(2, "scrape", "CPU per scrape", "not run", "", "", "≤ 0.5×", "–", "scripts/bench.sh scrape")

    r = load("snmp")
    if r:
        machines.append(("snmp", r))
        m, rr = r["median"], r["ratios"]
        o, p = m["ours"], m["snmp_exporter"]
        s = f"SNMP {r['targets']} snmpd"
        row(3, s, "CPU-ms per 1,000 values", f"{f(o['cpu_ms_per_1000_values'])} ({o['values_per_collection']:.0f} values)",
            f"{f(p['cpu_ms_per_1000_values'])} ({p['values_per_collection']:.0f} values)", f(rr["cpu_per_1000_values"]), "≤ 0.5×",
            holds(rr["cpu_per_1000_values"], "<=", 0.5), "scripts/bench.sh snmp")
        seq = p.get("wall_ms_per_target_sequential")
        what = "wall per target, ms (every target at once)" if seq is not None else "wall per target, ms"
        peer = f(p["wall_ms_per_target"]) + (f" (one after the other: {f(seq)})" if seq is not None else "")
        row(3, s, what, f(o["wall_ms_per_target"]), peer, f(rr["wall_per_target"]), "≤ 1×",
            holds(rr["wall_per_target"], "<=", 1), "scripts/bench.sh snmp")
    else:
        row(3, "SNMP", "CPU per 1,000 values", "not run", "", "", "≤ 0.5×", "–", "scripts/bench.sh snmp")

    r = load("influx")
    if r and r.get("median", {}).get("vmagent"):
        machines.append(("influx", r))
        p = r["median"]["vmagent"]
        if "ours" in r["median"]:
            o, rr = r["median"]["ours"], r["ratios"]
            row(4, "Influx → remote write", "samples accepted (2xx) per CPU-second", f(o["samples_per_cpu_s"]), f(p["samples_per_cpu_s"]),
                f(rr["samples_per_cpu_s"]), "≥ 1×", holds(rr["samples_per_cpu_s"], ">=", 1), "scripts/bench.sh influx")
            if o.get("samples_delivered_ratio") is not None:
                od = o["samples_per_cpu_s"] * o["samples_delivered_ratio"]
                pd = p["samples_per_cpu_s"] * p["samples_delivered_ratio"]
                row(4, "Influx → remote write", "samples delivered to victoria-metrics per CPU-second (share of accepted)",
                    f"{f(od)} ({o['samples_delivered_ratio'] * 100:.0f} %)", f"{f(pd)} ({p['samples_delivered_ratio'] * 100:.0f} %)",
                    f(od / pd), "≥ 1×", holds(od / pd, ">=", 1), "scripts/bench.sh influx")
            row(4, "Influx → remote write", "remote-write bytes per sample received", f(o["rw_bytes_per_sample"]), f(p["rw_bytes_per_sample"]),
                f(o["rw_bytes_per_sample"] / p["rw_bytes_per_sample"]) if o["rw_bytes_per_sample"] and p["rw_bytes_per_sample"] else "–", "–", "–", "scripts/bench.sh influx")
        else:
            row(4, "Influx → remote write", "samples per CPU-second", "pending (no receiver yet)", f"vmagent {f(p['samples_per_cpu_s'])}",
                "–", "≥ 1×", "pending", "scripts/bench.sh influx")
            row(4, "Influx → remote write", "remote-write bytes per sample", "pending", f"vmagent {f(p['rw_bytes_per_sample'])}", "–", "–", "pending", "scripts/bench.sh influx")
    else:
        row(4, "Influx → remote write", "samples/s", "not run", "", "", "≥ 1×", "–", "scripts/bench.sh influx")

    r = load("mqtt")
    if r:
        machines.append(("mqtt", r))
        m, rr = r["median"], r["ratios"]
        row(5, f"MQTT {r['values'] // 1000}k values", "CPU-ms per 10k values", f"{f(m['ours']['cpu_ms_per_10k'])} ({f(m['ours']['msgs_per_s'])} msg/s)",
            f"{f(m['collectd']['cpu_ms_per_10k'])} ({f(m['collectd']['msgs_per_s'])} msg/s)", f(rr["cpu_per_10k"]), "≤ 1×",
            holds(rr["cpu_per_10k"], "<=", 1), "scripts/bench.sh mqtt")
    else:
        row(5, "MQTT", "CPU per 10k values", "not run", "", "", "≤ 1×", "–", "scripts/bench.sh mqtt")

    r = load("swap")
    if r:
        machines.append(("swap", r))
        o, p = r["ours"], r["collectd"]
        ok = "yes" if (o["gap_p99_ms"] < 100 and o["lost"] == 0) else "**no**"
        row(6, f"swap ×{o['swaps']} at 100k points/s", "output gap p99, ms / items lost",
            f"{f(o['gap_p99_ms'])} / {o['lost']} lost (baseline gap {f(o['baseline_max_gap_ms'])})",
            f"collectd restart {f(p['gap_p99_ms'])} / {p['intervals_missed_p99']} intervals missed", f(r["ratios"]["gap_p99"]),
            "< 100 ms, 0 lost", ok, "scripts/bench.sh swap")
    else:
        row(6, "swap", "gap p99, lost", "not run", "", "", "< 100 ms, 0 lost", "–", "scripts/bench.sh swap")

    r = load("startup")
    if r:
        machines.append(("startup", r))
        variants = r.get("variants") or {"restart": r}
        labels = {
            "restart": "restart (plugins unchanged, shadow cache in place)",
            "first_start": "first start (empty shadow cache)",
            "no_cache": "start without the shadow cache (`plugins.shadow_cache: false`)",
        }
        for key in ("restart", "first_start", "no_cache"):
            x = variants.get(key)
            if not x:
                continue
            v = x["median_all_healthy_ms"]
            target = key == "restart"
            row(7, f"start, {r['count']} plugins: {labels[key]}",
                "process start → every integration started and settled, ms (API answering: " + f(x.get("median_api_answer_ms")) + ")",
                f(v) if v is not None else f"never healthy in {x['never_healthy_runs']} runs",
                "–", "–", "< 200 ms" if target else "–",
                ("yes" if v is not None and v < 200 else "**no**") if target else "–", "scripts/bench.sh startup")
    else:
        row(7, "start, 25 plugins", "start → all Healthy", "not run", "", "", "< 200 ms", "–", "scripts/bench.sh startup")
    return out, machines


def section():
    out, machines = rows()
    lines = [
        BEGIN,
        "",
        "| # | scenario | measure | ours | peer | ratio (ours / peer) | target | holds | reproduce |",
        "|---|---|---|---|---|---|---|---|---|",
    ] + out + [""]
    if machines:
        m = machines[0][1]["machine"]
        lines.append(
            f"Machine: {m['nproc']} cores, {m['cpu']}, kernel {m['kernel']}, {m['rustc']}; a **shared 2-core VM** "
            f"on which other builds ran at the same time (load average at the start of a scenario: "
            + ", ".join(f"{n} {r['machine']['loadavg_at_start']}" for n, r in machines)
            + "). Taken: " + ", ".join(f"{n} {r['machine']['date']}{' (--quick)' if r.get('quick') else ''}" for n, r in machines) + ". "
            + "Process CPU from: " + ", ".join(f"{n} {r['machine'].get('cpu_clock', '/proc/<pid>/stat ticks')}" for n, r in machines) + "."
        )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main():
    s = section()
    if "--print" in sys.argv:
        print(s)
        return
    with open(DOC) as fh:
        doc = fh.read()
    if BEGIN in doc and END in doc:
        a = doc.index(BEGIN)
        b = doc.index(END) + len(END)
        doc = doc[:a] + s + doc[b:]
    else:
        doc += "\n" + s + "\n"
    with open(DOC, "w") as fh:
        fh.write(doc)
    print(s)


if __name__ == "__main__":
    main()
