#!/usr/bin/env python3
"""Side-by-side scenarios of issue 9: our agent and a peer fed the same input on
loopback in one run, alternating, several repetitions, medians.

    python3 bench/scenarios.py SCENARIO [--quick] [--duration S] [--reps N]

SCENARIO: idle | scrape | snmp | influx | mqtt | swap | startup. Each writes
target/bench/results/SCENARIO.json; bench/report.py turns those into the table of
docs/benchmarks.md. scripts/bench.sh builds and stages what they need first.
Figures are recorded, never asserted: a target that does not hold is reported as such.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (  # noqa: E402
    AGENT,
    CLIENT_CPU,
    RELEASE,
    ROOT,
    Proc,
    agent_config,
    free_port,
    http_get,
    install_plugin,
    median,
    percentile,
    prom_values,
    save,
    series_count,
    stage_plugins,
    stop_all,
    wait_for,
)

BENCH = os.path.dirname(os.path.abspath(__file__))


def pin_self():
    """The harness itself (HTTP clients, pollers, load generators) runs on the client core."""
    try:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    except (AttributeError, OSError):
        pass


def collectd_conf(workdir, body, interval=10):
    path = os.path.join(workdir, "collectd.conf")
    with open(path, "w") as f:
        f.write(
            f"""Interval {interval}
BaseDir "{workdir}"
PIDFile "{workdir}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
{body}
"""
        )
    return path


def start_agent(workdir, cfg, name="tfo-agent", cpu="0"):
    return Proc(name, [AGENT, "run", "--config", cfg], cpu=cpu, log_dir=workdir)


def agent_metrics(http_port):
    return http_get(f"http://127.0.0.1:{http_port}/metrics")[1].decode("utf-8", "replace")


# --------------------------------------------------------------------------- idle
def idle(args, work):
    """Default config (system + prometheus sink) vs node_exporter vs bare collectd
    (cpu, memory, df, interface, load), all three at once for `duration` seconds. A
    Prometheus-like scraper fetches ours and node_exporter's /metrics every 10 s (an
    exporter does its collection on scrape, so idle without scrapes would not compare
    the same work); collectd collects every 10 s. RSS sampled every second."""
    pdir = os.path.join(work, "plugins")
    stage_plugins(pdir, ["tfo_system", "tfo_prometheus"])
    prom_port, http_port, ne_port = free_port(), free_port(), free_port()
    cfg = agent_config(
        work,
        pdir,
        f"""  system:
    enabled: true
    interval: 10s
  prometheus:
    enabled: true
    listen: 127.0.0.1:{prom_port}
    path: /metrics
    expire_after: 300
""",
        http_port,
    )
    cd = collectd_conf(work, "LoadPlugin cpu\nLoadPlugin memory\nLoadPlugin df\nLoadPlugin interface\nLoadPlugin load\n")
    procs = {
        "ours": start_agent(work, cfg),
        "node_exporter": Proc("node_exporter", ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ne_port}"], log_dir=work),
        "collectd": Proc("collectd", ["collectd", "-f", "-C", cd], log_dir=work),
    }
    try:
        urls = [f"http://127.0.0.1:{prom_port}/metrics", f"http://127.0.0.1:{ne_port}/metrics"]
        wait_for(lambda: all(http_get(u)[0] == 200 for u in urls), 30, "both /metrics endpoints")
        time.sleep(2)
        cpu0 = {k: p.cpu() for k, p in procs.items()}
        rss = {k: [] for k in procs}
        t0 = time.monotonic()
        next_scrape = t0
        while time.monotonic() - t0 < args.duration:
            now = time.monotonic()
            if now >= next_scrape:
                for u in urls:
                    http_get(u)
                next_scrape += 10
            for k, p in procs.items():
                if not p.alive():
                    raise RuntimeError(f"{k} exited:\n{p.tail()}")
                rss[k].append(p.rss())
            time.sleep(1)
        wall = time.monotonic() - t0
        cpu = {k: p.cpu() - cpu0[k] for k, p in procs.items()}
    finally:
        for p in procs.values():
            p.stop()
    res = {"duration_s": round(wall, 1), "scrape_every_s": 10, "procs": {}}
    for k in procs:
        res["procs"][k] = {
            "rss_median_kib": median(rss[k]),
            "rss_max_kib": max(rss[k]),
            "cpu_s": round(cpu[k], 3),
        }
    o = res["procs"]
    res["ratios"] = {
        "rss_vs_node_exporter": o["ours"]["rss_median_kib"] / o["node_exporter"]["rss_median_kib"],
        "rss_vs_collectd": o["ours"]["rss_median_kib"] / o["collectd"]["rss_median_kib"],
        "cpu_vs_node_exporter": o["ours"]["cpu_s"] / max(o["node_exporter"]["cpu_s"], 0.01),
        "cpu_vs_collectd": o["ours"]["cpu_s"] / max(o["collectd"]["cpu_s"], 0.01),
    }
    return res


# ------------------------------------------------------------------------- scrape
def scrape_loop(port, path, n):
    """n sequential GETs on one keep-alive connection -> (latencies s, last body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    lat = []
    body = b""
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        lat.append(time.perf_counter() - t)
        if r.status != 200:
            raise RuntimeError(f"GET :{port}{path} -> {r.status}")
    conn.close()
    return lat, body


def scrape(args, work):
    """1,000 scrapes of our prometheus sink's /metrics (system source) vs
    node_exporter's /metrics, alternating, `reps` times; server CPU per scrape."""
    pin_self()
    pdir = os.path.join(work, "plugins")
    stage_plugins(pdir, ["tfo_system", "tfo_prometheus"])
    prom_port, http_port, ne_port = free_port(), free_port(), free_port()
    cfg = agent_config(
        work,
        pdir,
        f"""  system:
    enabled: true
    interval: 10s
  prometheus:
    enabled: true
    listen: 127.0.0.1:{prom_port}
    path: /metrics
""",
        http_port,
    )
    procs = {
        "ours": (start_agent(work, cfg), prom_port),
        "node_exporter": (
            Proc("node_exporter", ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ne_port}"], log_dir=work),
            ne_port,
        ),
    }
    runs = {k: [] for k in procs}
    try:
        wait_for(lambda: series_count(http_get(f"http://127.0.0.1:{prom_port}/metrics")[1].decode()) > 50, 30, "system series on our /metrics")
        wait_for(lambda: http_get(f"http://127.0.0.1:{ne_port}/metrics")[0] == 200, 30, "node_exporter")
        for k, (p, port) in procs.items():  # warm-up
            scrape_loop(port, "/metrics", 20)
        for _ in range(args.reps):
            for k, (p, port) in procs.items():
                c0 = p.cpu()
                lat, body = scrape_loop(port, "/metrics", args.scrapes)
                c1 = p.cpu()
                series = series_count(body.decode("utf-8", "replace"))
                cpu_us = (c1 - c0) / args.scrapes * 1e6
                runs[k].append(
                    {
                        "cpu_us_per_scrape": cpu_us,
                        "series": series,
                        "bytes": len(body),
                        "cpu_ns_per_series": cpu_us * 1000 / max(series, 1),
                        "p50_ms": percentile(lat, 50) * 1e3,
                        "p99_ms": percentile(lat, 99) * 1e3,
                    }
                )
    finally:
        for p, _ in procs.values():
            p.stop()
    res = {"scrapes_per_rep": args.scrapes, "reps": args.reps, "runs": runs, "median": {}}
    for k, rs in runs.items():
        res["median"][k] = {f: median([r[f] for r in rs]) for f in rs[0]}
    m = res["median"]
    res["ratios"] = {
        "cpu_per_scrape": m["ours"]["cpu_us_per_scrape"] / m["node_exporter"]["cpu_us_per_scrape"],
        "cpu_per_series": m["ours"]["cpu_ns_per_series"] / m["node_exporter"]["cpu_ns_per_series"],
        "p99": m["ours"]["p99_ms"] / m["node_exporter"]["p99_ms"],
    }
    return res


# --------------------------------------------------------------------------- snmp
IF_COLUMNS = {  # IF-MIB ifTable 1.3.6.1.2.1.2.2.1.N / ifXTable 1.3.6.1.2.1.31.1.1.1.N
    "ifTable": ("1.3.6.1.2.1.2.2.1", {
        2: ("ifDescr", "DisplayString"), 3: ("ifType", "gauge"), 4: ("ifMtu", "gauge"),
        5: ("ifSpeed", "gauge"), 6: ("ifPhysAddress", "PhysAddress48"),
        7: ("ifAdminStatus", "gauge"), 8: ("ifOperStatus", "gauge"), 9: ("ifLastChange", "gauge"),
        10: ("ifInOctets", "counter"), 11: ("ifInUcastPkts", "counter"),
        12: ("ifInNUcastPkts", "counter"), 13: ("ifInDiscards", "counter"),
        14: ("ifInErrors", "counter"), 15: ("ifInUnknownProtos", "counter"),
        16: ("ifOutOctets", "counter"), 17: ("ifOutUcastPkts", "counter"),
        18: ("ifOutNUcastPkts", "counter"), 19: ("ifOutDiscards", "counter"),
        20: ("ifOutErrors", "counter"), 21: ("ifOutQLen", "gauge"),
    }),
    "ifXTable": ("1.3.6.1.2.1.31.1.1.1", {
        1: ("ifName", "DisplayString"), 2: ("ifInMulticastPkts", "counter"),
        3: ("ifInBroadcastPkts", "counter"), 4: ("ifOutMulticastPkts", "counter"),
        5: ("ifOutBroadcastPkts", "counter"), 6: ("ifHCInOctets", "counter"),
        7: ("ifHCInUcastPkts", "counter"), 8: ("ifHCInMulticastPkts", "counter"),
        9: ("ifHCInBroadcastPkts", "counter"), 10: ("ifHCOutOctets", "counter"),
        11: ("ifHCOutUcastPkts", "counter"), 12: ("ifHCOutMulticastPkts", "counter"),
        13: ("ifHCOutBroadcastPkts", "counter"), 14: ("ifLinkUpDownTrapEnable", "gauge"),
        15: ("ifHighSpeed", "gauge"), 16: ("ifPromiscuousMode", "gauge"),
        17: ("ifConnectorPresent", "gauge"), 18: ("ifAlias", "DisplayString"),
        19: ("ifCounterDiscontinuityTime", "gauge"),
    }),
}
SYSTEM_SCALARS = {1: ("sysDescr", "DisplayString"), 3: ("sysUpTime", "gauge"),
                  4: ("sysContact", "DisplayString"), 5: ("sysName", "DisplayString"),
                  6: ("sysLocation", "DisplayString"), 7: ("sysServices", "gauge")}


def snmp_exporter_yml(path):
    """snmp_exporter 0.21 module `if_mib` walking system + ifTable + ifXTable (what the
    generator would emit for those objects; Debian ships no ready snmp.yml)."""
    lines = ["if_mib:", "  walk:", "  - 1.3.6.1.2.1.1", "  - 1.3.6.1.2.1.2.2", "  - 1.3.6.1.2.1.31.1.1",
             "  version: 2", "  max_repetitions: 25", "  retries: 0", "  timeout: 5s",
             "  auth:", "    community: public", "  metrics:"]
    for n, (name, typ) in SYSTEM_SCALARS.items():
        lines += [f"  - name: {name}", f"    oid: 1.3.6.1.2.1.1.{n}", f"    type: {typ}", f"    help: SNMPv2-MIB {name}"]
    for base, cols in IF_COLUMNS.values():
        for n, (name, typ) in cols.items():
            lines += [f"  - name: {name}", f"    oid: {base}.{n}", f"    type: {typ}", f"    help: IF-MIB {name}",
                      "    indexes:", "    - labelname: ifIndex", "      type: gauge"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def start_snmpds(work, n):
    ports = []
    procs = []
    for i in range(n):
        port = free_port()
        d = os.path.join(work, f"snmpd{i}")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "snmpd.conf")
        with open(conf, "w") as f:
            f.write("rocommunity public 127.0.0.1\nsysLocation bench\nsysContact bench\n")
        env = dict(os.environ, SNMP_PERSISTENT_DIR=d, MIBS="")
        procs.append(Proc(f"snmpd{i}", ["snmpd", "-f", "-Lf", os.path.join(d, "log"), "-C", "-c", conf,
                                        "-p", os.path.join(d, "pid"), f"udp:127.0.0.1:{port}"],
                          cpu=CLIENT_CPU, env=env, log_dir=work))
        ports.append(port)
    time.sleep(1.0)
    for p in procs:
        if not p.alive():
            raise RuntimeError(f"snmpd exited:\n{p.tail()}")
    return procs, ports


# The agent pages out its start-up code 10 s after loading its plugins
# (host/src/agent.rs PAGE_OUT_AFTER); steady-state windows open after it.
PAGE_OUT_SETTLED_S = 11.5


def snmp(args, work):
    """IF-MIB + system of `targets` local snmpd: our snmp plugin (polling, interval
    1 s, prometheus sink) vs prometheus-snmp-exporter (module if_mib, scraped
    sequentially target after target for CPU). CPU per 1,000 values; wall per
    target with every target collected at once on both sides."""
    pin_self()
    snmpds, ports = start_snmpds(work, args.targets)
    pdir = os.path.join(work, "plugins")
    stage_plugins(pdir, ["tfo_snmp", "tfo_prometheus"])
    yml = os.path.join(work, "snmp.yml")
    snmp_exporter_yml(yml)
    tlist = "".join(f"      - {{ address: 127.0.0.1:{p}, version: v2c, community: public }}\n" for p in ports)
    runs = {"ours": [], "snmp_exporter": []}
    try:
        for rep in range(args.reps):
            # ours: a fresh agent per repetition (it polls on its own; stopped while the peer runs)
            prom_port, http_port = free_port(), free_port()
            cfg = agent_config(
                work,
                pdir,
                f"""  snmp:
    enabled: true
    interval: 1s
    max_repetitions: 25
    scalars: [system]
    tables: [ifTable, ifXTable]
    targets:
{tlist}  prometheus:
    enabled: true
    listen: 127.0.0.1:{prom_port}
    path: /metrics
""",
                http_port,
            )
            started = time.monotonic()
            a = start_agent(work, cfg, name=f"tfo-agent-snmp{rep}")
            try:
                def collected():
                    v = prom_values(agent_metrics(http_port), "tfo_agent_items_collected_total", instance="snmp")
                    return v if v else None

                first = wait_for(collected, 30, "a first SNMP collection")
                # Steady state: the window opens after the agent's one-time page-out
                # of its start-up code, 10 s after the plugins loaded (~7 ms of CPU,
                # 0.6 ms per 1,000 values of a 20-collection window), as the peer's
                # is measured after a warm-up scrape of every target.
                time.sleep(max(0.3, started + PAGE_OUT_SETTLED_S - time.monotonic()))
                i0, c0 = collected(), a.cpu()
                per = first
                want = i0 + per * args.collections
                # few polls of the agent's /metrics while measuring (each costs it CPU)
                time.sleep(max(0.0, args.collections - 0.5))
                wait_for(lambda: (collected() or 0) >= want, args.collections * 3 + 30, "collections", step=0.2)
                i1, c1 = collected(), a.cpu()
                # wall: the plugin's own per-target duration, read from several
                # collections after the CPU window (the scrape shows the last one)
                durs = []
                for k in range(args.wall_samples):
                    if k:
                        time.sleep(1.05)
                    body = http_get(f"http://127.0.0.1:{prom_port}/metrics")[1].decode()
                    durs += [float(l.rpartition(" ")[2]) for l in body.splitlines()
                             if l.startswith("snmp_collect_duration")]
                runs["ours"].append({
                    "values_per_collection": per,
                    "cpu_ms_per_1000_values": (c1 - c0) * 1e3 / (i1 - i0) * 1000,
                    "wall_ms_per_target": median(durs) * 1e3 if durs else None,
                })
            finally:
                a.stop()
            se_port = free_port()
            pe = Proc(f"snmp_exporter{rep}", ["prometheus-snmp-exporter", f"--config.file={yml}",
                                             f"--web.listen-address=127.0.0.1:{se_port}"], log_dir=work)
            try:
                wait_for(lambda: http_get(f"http://127.0.0.1:{se_port}/")[0] == 200, 30, "snmp_exporter")
                for p in ports:  # warm-up
                    http_get(f"http://127.0.0.1:{se_port}/snmp?module=if_mib&target=127.0.0.1:{p}")
                c0 = pe.cpu()
                vals = 0
                walls = []
                for _ in range(args.collections):
                    for p in ports:
                        t = time.perf_counter()
                        st, b = http_get(f"http://127.0.0.1:{se_port}/snmp?module=if_mib&target=127.0.0.1:{p}")
                        walls.append(time.perf_counter() - t)
                        if st != 200:
                            raise RuntimeError(f"snmp_exporter {st}: {b[:300]!r}")
                        vals += series_count(b.decode())
                c1 = pe.cpu()
                # wall as ours is measured: every target at once (ours polls its
                # targets concurrently), each scrape's own latency; after the CPU window
                start = threading.Barrier(len(ports))

                def scrape(p):
                    start.wait()
                    t = time.perf_counter()
                    st, b = http_get(f"http://127.0.0.1:{se_port}/snmp?module=if_mib&target=127.0.0.1:{p}")
                    if st != 200:
                        raise RuntimeError(f"snmp_exporter {st}: {b[:300]!r}")
                    return time.perf_counter() - t

                walls_concurrent = []
                with concurrent.futures.ThreadPoolExecutor(len(ports)) as pool:
                    for _ in range(args.wall_samples):
                        walls_concurrent += list(pool.map(scrape, ports))
                runs["snmp_exporter"].append({
                    "values_per_collection": vals / args.collections,
                    "cpu_ms_per_1000_values": (c1 - c0) * 1e3 / vals * 1000,
                    "wall_ms_per_target": median(walls_concurrent) * 1e3,
                    "wall_ms_per_target_sequential": median(walls) * 1e3,
                })
            finally:
                pe.stop()
    finally:
        for p in snmpds:
            p.stop()
    res = {"targets": args.targets, "collections_per_rep": args.collections, "reps": args.reps, "runs": runs, "median": {}}
    for k, rs in runs.items():
        res["median"][k] = {f: median([r[f] for r in rs if r[f] is not None]) for f in rs[0]}
    m = res["median"]
    res["ratios"] = {
        "cpu_per_1000_values": m["ours"]["cpu_ms_per_1000_values"] / m["snmp_exporter"]["cpu_ms_per_1000_values"],
        "wall_per_target": m["ours"]["wall_ms_per_target"] / m["snmp_exporter"]["wall_ms_per_target"],
    }
    return res


# --------------------------------------------------------------------------- mqtt
class Counter:
    """Counts (and timestamps) the lines a subscriber prints, in a thread."""

    def __init__(self, argv):
        self.p = subprocess.Popen(["stdbuf", "-oL"] + argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        self.n = 0
        self.times = []
        self.keep_times = False
        self.lines = []
        self.keep_lines = False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        for line in self.p.stdout:
            self.n += 1
            if self.keep_times:
                self.times.append(time.monotonic())
            if self.keep_lines:
                self.lines.append(line)

    def stop(self):
        try:
            os.killpg(self.p.pid, 15)
        except ProcessLookupError:
            pass
        self.p.wait()


def start_mosquitto(work):
    port = free_port()
    conf = os.path.join(work, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n")
    m = Proc("mosquitto", ["mosquitto", "-c", conf], cpu=CLIENT_CPU, log_dir=work)
    wait_for(lambda: _tcp_open(port), 10, "mosquitto")
    return m, port


def _tcp_open(port):
    import socket
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def mqtt(args, work):
    """100k values exported to mosquitto (QoS 0, one message per value; collectd 5.12's
    mqtt plugin stalls at QoS 1: it only drives libmosquitto's loop when it publishes,
    so messages beyond the 20 in flight stay queued): our mqtt sink
    fed by the ticker-source fixture (10,000 values/s) vs collectd's mqtt plugin fed
    through its unixsock plugin (PUTVAL). CPU of the exporting process per 10k
    values, counted between the 10,000th and the (10,000 + N)th message the
    subscriber received."""
    pin_self()
    pdir = os.path.join(work, "plugins")
    stage_plugins(pdir, ["tfo_ticker_source", "tfo_mqtt"])
    N = args.values
    runs = {"ours": [], "collectd": []}
    broker, port = start_mosquitto(work)
    try:
        for rep in range(args.reps):
            # ours
            sub = Counter(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "0", "-t", f"ours{rep}/#"])
            time.sleep(0.3)
            http_port = free_port()
            cfg = agent_config(
                work,
                pdir,
                f"""  ticker:
    enabled: true
    plugin: ticker-source
    interval: 1s
    per_collect: 10000
    routes: [mqtt]
  mqtt:
    enabled: true
    broker: tcp://127.0.0.1:{port}
    topic: "ours{rep}/{{name}}"
    format: json
    qos: 0
""",
                http_port,
            )
            a = start_agent(work, cfg, name=f"tfo-agent-mqtt{rep}")
            try:
                wait_for(lambda: sub.n >= 10000, 60, "the first 10k messages (ours)", step=0.01)
                c0, n0, t0 = a.cpu(), sub.n, time.monotonic()
                wait_for(lambda: sub.n >= n0 + N, N / 1000 + 60, f"{N} messages (ours)", step=0.01)
                c1, n1, t1 = a.cpu(), sub.n, time.monotonic()
                runs["ours"].append({"cpu_ms_per_10k": (c1 - c0) * 1e3 / (n1 - n0) * 10000, "msgs_per_s": (n1 - n0) / (t1 - t0)})
            finally:
                a.stop()
                sub.stop()
            # collectd
            sub = Counter(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "0", "-t", f"cd{rep}/#"])
            time.sleep(0.3)
            sock = os.path.join(work, f"collectd{rep}.sock")
            cd = collectd_conf(work, f"""LoadPlugin unixsock
LoadPlugin mqtt
<Plugin unixsock>
  SocketFile "{sock}"
</Plugin>
<Plugin mqtt>
  <Publish "bench">
    Host "127.0.0.1"
    Port {port}
    ClientId "collectd-bench-{rep}"
    QoS 0
    Prefix "cd{rep}"
  </Publish>
</Plugin>
""")
            c = Proc(f"collectd-mqtt{rep}", ["collectd", "-f", "-C", cd], log_dir=work)
            try:
                wait_for(lambda: os.path.exists(sock), 10, "collectd unixsock")
                feeder = threading.Thread(target=putval_feed, args=(sock, N + 40000), daemon=True)
                feeder.start()
                wait_for(lambda: sub.n >= 10000, 60, "the first 10k messages (collectd)", step=0.01)
                c0, n0, t0 = c.cpu(), sub.n, time.monotonic()
                wait_for(lambda: sub.n >= n0 + N, N / 1000 + 60, f"{N} messages (collectd)", step=0.01)
                c1, n1, t1 = c.cpu(), sub.n, time.monotonic()
                runs["collectd"].append({"cpu_ms_per_10k": (c1 - c0) * 1e3 / (n1 - n0) * 10000, "msgs_per_s": (n1 - n0) / (t1 - t0)})
                feeder.join(30)
            finally:
                c.stop()
                sub.stop()
    finally:
        broker.stop()
    res = {"values": N, "reps": args.reps, "runs": runs, "median": {}}
    for k, rs in runs.items():
        res["median"][k] = {f: median([r[f] for r in rs]) for f in rs[0]}
    res["ratios"] = {"cpu_per_10k": res["median"]["ours"]["cpu_ms_per_10k"] / res["median"]["collectd"]["cpu_ms_per_10k"]}
    return res


def putval_feed(sock_path, n):
    """Send n values to collectd's unixsock as PUTVAL (100 identifiers, increasing
    times), pipelined, reading the replies in a second thread."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    rf = s.makefile("rb")
    errors = []

    def reader():
        for i in range(n):
            line = rf.readline()
            if not line:
                break
            if not line.startswith(b"0 "):
                errors.append(line)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    t0_ms = int(time.time() * 1000)
    buf = []
    for i in range(n):
        ident = i % 100
        ts = t0_ms + i // 100  # strictly increasing per identifier (integer ms: no float rounding ties)
        buf.append(f'PUTVAL "bench/ticker-{ident}/gauge-seq" interval=1 {ts // 1000}.{ts % 1000:03d}:{i}\n')
        if len(buf) == 500:
            s.sendall("".join(buf).encode())
            buf = []
    if buf:
        s.sendall("".join(buf).encode())
    th.join(120)
    s.close()
    if errors:
        print(f"collectd refused {len(errors)} PUTVAL, first: {errors[0]!r}", file=sys.stderr)


# --------------------------------------------------------------------------- swap
def file_growth_monitor(path, stop, times):
    """Poll a file's size every ~1 ms; record the time of each growth."""
    last = -1
    while not stop.is_set():
        try:
            sz = os.stat(path).st_size
        except FileNotFoundError:
            sz = -1
        if sz > last:
            if last >= 0:
                times.append(time.monotonic())
            last = sz
        time.sleep(0.001)


def gaps_around(times, events, before=0.05, after=3.0):
    """Largest inter-arrival gap in [event - before, event + after] for each event."""
    out = []
    for e in events:
        ts = [t for t in times if e - before <= t <= e + after]
        g = max((b - a for a, b in zip(ts, ts[1:])), default=float("nan"))
        out.append(g)
    return out


def swap(args, work):
    """Plugin swap under 100k points/s: the ticker-source fixture emits 1,000 points
    every 10 ms to the counting-sink fixture (which writes one line per point); the
    sink's file is replaced (write tmp + rename) by the other build `swaps` times.
    Output gap = largest inter-arrival gap of the output around each swap (the file
    is polled every ~1 ms); lost = sequence numbers missing at the end (after a
    drained shutdown). Peer: collectd (cpu/memory/load every 10 ms to mosquitto via
    its mqtt plugin) restarted, gap seen by a subscriber."""
    pin_self()
    pdir = os.path.join(work, "plugins")
    stage_plugins(pdir, ["tfo_ticker_source", "tfo_counting_sink"])
    out = os.path.join(work, "received.txt")
    http_port = free_port()
    cfg = agent_config(
        work,
        pdir,
        f"""  ticker:
    enabled: true
    plugin: ticker-source
    interval: 10ms
    per_collect: 1000
    routes: [sink]
  sink:
    enabled: true
    plugin: counting_sink
    output: {out}
""",
        http_port,
    )
    builds = [os.path.join(RELEASE, "libtfo_counting_sink_b.so"), os.path.join(RELEASE, "libtfo_counting_sink.so")]
    a = start_agent(work, cfg, name="tfo-agent-swap")
    stop = threading.Event()
    times = []
    events = []
    try:
        wait_for(lambda: os.path.exists(out) and os.stat(out).st_size > 0, 30, "first output")
        mon = threading.Thread(target=file_growth_monitor, args=(out, stop, times), daemon=True)
        mon.start()
        time.sleep(2)
        base_from = time.monotonic()
        time.sleep(2)
        base_to = time.monotonic()
        for i in range(args.swaps):
            events.append(time.monotonic())
            install_plugin(builds[i % 2], os.path.join(pdir, "libtfo_counting_sink.so"))
            time.sleep(3)
        rate_c0 = a.cpu()
        stop.set()
        mon.join()
        gens = prom_values(agent_metrics(http_port), "tfo_agent_plugin_generation", instance="sink")
    finally:
        a.stop(timeout=30)
    values = set()
    lines = 0
    versions = set()
    with open(out) as f:
        for line in f:
            ver, _, v = line.strip().partition(" ")
            versions.add(ver)
            values.add(int(float(v)))
            lines += 1
    hi = max(values)
    lost = (hi + 1) - len(values)
    base_times = [t for t in times if base_from <= t <= base_to]
    base_gap = max((b - a_ for a_, b in zip(base_times, base_times[1:])), default=float("nan"))
    gaps = gaps_around(times, events)
    ours = {
        "swaps": len(events),
        "generation_at_end": gens,
        "versions_seen": sorted(versions),
        "gap_ms_each": [round(g * 1e3, 1) for g in gaps],
        "gap_p99_ms": percentile(gaps, 99) * 1e3,
        "baseline_max_gap_ms": base_gap * 1e3,
        "values_received": len(values),
        "duplicates": lines - len(values),
        "lost": lost,
        "rate_points_per_s": len(values) / max(times[-1] - times[0], 1e-9) if times else None,
    }
    del rate_c0
    # collectd restart
    broker, port = start_mosquitto(work)
    sub = Counter(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "0", "-t", "cdswap/#"])
    sub.keep_times = True
    cd = collectd_conf(work, f"""LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin mqtt
<Plugin mqtt>
  <Publish "bench">
    Host "127.0.0.1"
    Port {port}
    ClientId "collectd-swap"
    QoS 0
    Prefix "cdswap"
  </Publish>
</Plugin>
""", interval=0.01)
    events = []
    try:
        c = Proc("collectd-swap", ["collectd", "-f", "-C", cd], log_dir=work)
        wait_for(lambda: sub.n > 100, 30, "collectd messages")
        time.sleep(1)
        for i in range(args.swaps):
            events.append(time.monotonic())
            c.stop()
            c = Proc(f"collectd-swap{i}", ["collectd", "-f", "-C", cd], log_dir=work)
            time.sleep(3)
        c.stop()
    finally:
        sub.stop()
        broker.stop()
    gaps = gaps_around(sub.times, events)
    res = {
        "ours": ours,
        "collectd": {
            "restarts": len(events),
            "interval_ms": 10,
            "gap_ms_each": [round(g * 1e3, 1) for g in gaps],
            "gap_p99_ms": percentile(gaps, 99) * 1e3,
            "intervals_missed_p99": max(0, int(percentile(gaps, 99) / 0.01) - 1),
        },
    }
    res["ratios"] = {"gap_p99": ours["gap_p99_ms"] / res["collectd"]["gap_p99_ms"]}
    return res


# ------------------------------------------------------------------------ startup
DUMMY = {  # plugin -> extra keys making its config valid without a real backend
}


def startup_config(pdir, http_port, work, shadow_dir, cache, name):
    """Every integration block of configs/tfo-agent.yaml enabled, with dummy
    credentials and endpoints on an unused loopback port (sinks do not connect at
    start), plus the dummy overrides in bench/startup-overrides.yaml; shadow copies
    under `shadow_dir`, the shadow cache on or off."""
    import yaml

    with open(os.path.join(ROOT, "configs", "tfo-agent.yaml")) as f:
        text = f.read()
    # ${VAR:-default} -> default; ${VAR} -> "x"
    text = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)
    text = re.sub(r"\$\{[A-Z0-9_]+\}", "x", text)
    base = yaml.safe_load(text)
    with open(os.path.join(BENCH, "startup-overrides.yaml")) as f:
        ov = yaml.safe_load(f)
    present = {f[len("libtfo_"):-3] for f in os.listdir(pdir) if f.endswith(".so")}
    integ = {}
    for iname, block in base["integrations"].items():
        lib = iname.replace("-", "_")
        if lib not in present:
            continue
        if iname in ov.get("skip", []):
            continue
        block = dict(block or {})
        block.update(ov.get("integrations", {}).get(iname, {}))
        block["enabled"] = True
        integ[iname] = block
    cfg = {
        "plugins": {"dir": pdir, "debounce": "500ms", "rescan_interval": 0,
                    "shadow_dir": shadow_dir, "shadow_cache": cache},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "integrations": integ,
    }
    path = os.path.join(work, f"startup-{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path, sorted(integ)


def healthy_from_log(path, names, w0):
    """ms from w0 (epoch s) to the last of the first 'integration Healthy|Unhealthy ...
    instance=X' lines over all names (every integration started and settled: sinks
    and local sources Healthy, pollers of unreachable backends Unhealthy after their
    first collect), or None when one never logged a state."""
    import datetime
    seen = {}
    pat = re.compile(r"^(\S+Z)\s+(?:INFO|WARN) .*integration (?:Healthy|Unhealthy).* instance=(\S+)")
    with open(path, errors="replace") as f:
        for line in f:
            m = pat.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
            if m and m.group(2) not in seen:
                ts = datetime.datetime.strptime(m.group(1)[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
                seen[m.group(2)] = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
    if not all(n in seen for n in names):
        return None
    return (max(seen[n] for n in names) - w0) * 1e3


# How the start-up row runs the agent: without the shadow cache (every start reads,
# hashes and copies every plugin file), with an empty cache (the first start after
# installing: the same work, plus keeping the copies), and with the cache filled by
# an earlier start of the same files (a restart).
STARTUP_VARIANTS = ("no_cache", "first_start", "restart")


def startup_once(work, cfg, names, http_port, label):
    conn_url = f"http://127.0.0.1:{http_port}/health"
    t0 = time.monotonic()
    w0 = time.time()
    a = start_agent(work, cfg, name=f"tfo-agent-startup-{label}")
    first_answer = None
    healthy = None
    last = None
    try:
        end = t0 + 30
        while time.monotonic() < end:
            if first_answer and time.monotonic() - t0 > first_answer + 1.0:
                break  # states are settled once the API answers; some pollers stay Unhealthy
            st, body = http_get(conn_url, timeout=1)
            now = time.monotonic()
            if st:
                first_answer = first_answer or now - t0
                try:
                    last = json.loads(body)
                except ValueError:
                    last = None
                if st == 200 and last and len([i for i in last["integrations"] if i.get("state") != "Disabled"]) == len(names):
                    healthy = now - t0
                    break
            time.sleep(0.001)
    finally:
        a.stop()
    logged = healthy_from_log(a.log_path, names, w0)
    return {"api_answer_ms": first_answer and first_answer * 1e3, "all_healthy_ms": healthy and healthy * 1e3,
            "all_logged_healthy_ms": logged}, (last if healthy is None else None)


def startup(args, work):
    """Time from process start to every enabled integration started and settled, for
    each of STARTUP_VARIANTS in turn, `reps` times; medians per variant."""
    pin_self()
    pdir = os.path.join(work, "plugins")
    libs = sorted(f[3:-3] for f in os.listdir(RELEASE) if f.startswith("libtfo_") and f.endswith(".so")
                  and not any(x in f for x in ("counting", "ticker", "bench_sink", "panicking", "failing", "slow_", "abi", "incompatible")))
    stage_plugins(pdir, libs)
    http_port = free_port()
    warm_dir = os.path.join(work, "shadow-restart")
    cfgs = {}
    names = None
    for v in STARTUP_VARIANTS:
        shadow = warm_dir if v == "restart" else os.path.join(work, f"shadow-{v}")
        cfgs[v], names = startup_config(pdir, http_port, work, shadow, v != "no_cache", v)
    r = subprocess.run([AGENT, "validate", "--config", cfgs["restart"]], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tfo-agent validate refused the startup config:\n{r.stdout}{r.stderr}")
    # The cache records a file only when it last changed more than 2 s before it was
    # read (file timestamps move in clock ticks); the files were just staged.
    newest = max(os.stat(os.path.join(pdir, f)).st_ctime for f in os.listdir(pdir))
    time.sleep(max(0.0, newest + 2.2 - time.time()))
    startup_once(work, cfgs["restart"], names, http_port, "prime")  # fills the cache, not counted
    runs = {v: [] for v in STARTUP_VARIANTS}
    detail = None
    for rep in range(args.reps):
        for v in STARTUP_VARIANTS:
            if v == "first_start":
                shutil.rmtree(os.path.join(work, "shadow-first_start"), ignore_errors=True)
            run, last = startup_once(work, cfgs[v], names, http_port, f"{v}{rep}")
            runs[v].append(run)
            detail = detail or last
    res = {"integrations": names, "count": len(names), "reps": args.reps, "variants": {}}
    for v in STARTUP_VARIANTS:
        hs = [r["all_logged_healthy_ms"] for r in runs[v] if r["all_logged_healthy_ms"] is not None]
        ok = [r["all_healthy_ms"] for r in runs[v] if r["all_healthy_ms"]]
        res["variants"][v] = {
            "runs": runs[v],
            # each integration's first "integration Healthy|Unhealthy" log line, the last of
            # them, relative to the wall clock just before the process was started
            "median_all_healthy_ms": median(hs) if hs else None,
            "median_health_200_ms": median(ok) if ok else None,
            "median_api_answer_ms": median([r["api_answer_ms"] for r in runs[v] if r["api_answer_ms"]]),
            "never_healthy_runs": len(runs[v]) - len(hs),
        }
    # the figure the target is about: a restart (the cache in place)
    for k in ("median_all_healthy_ms", "median_api_answer_ms", "never_healthy_runs"):
        res[k] = res["variants"]["restart"][k]
    if detail:
        res["last_unhealthy_health"] = detail
    return res


# ------------------------------------------------------------------------- influx
def influx(args, work):
    """Influx line protocol in over HTTP /write -> Prometheus remote write to a local
    victoria-metrics, ours vs vmagent (HTTP /write, GOMAXPROCS=1), each pinned to one core,
    wrk posting 1,000-line bodies (3 fields a line = 3,000 samples) on the other.
    Samples accepted (2xx) per CPU-second of the agent (the window runs until the
    remote-write queue has drained), remote-write bytes per sample and the share of
    samples delivered, both counted at victoria-metrics."""
    pin_self()
    vm_port = free_port()
    vm = Proc("victoria-metrics", ["victoria-metrics", f"-httpListenAddr=127.0.0.1:{vm_port}",
                                   f"-storageDataPath={work}/vm", "-retentionPeriod=1d"], cpu=CLIENT_CPU, log_dir=work)
    body_path = os.path.join(work, "body.txt")
    now = int(time.time() * 1e9)
    with open(body_path, "w") as f:
        for i in range(1000):
            f.write(f"bench,host=h{i % 100},region=r{i % 7},series=s{i} usage_user={i % 97}.5,usage_system=2.5,usage_idle=96 TS\n")
    # 500 bodies, each with its own timestamp (1 ms apart), posted in turn: the same
    # series at the same timestamp is one sample (a remote-write sender keeps the last
    # of equal timestamps), so identical bodies would not measure delivery.
    lua = os.path.join(work, "post.lua")
    with open(lua, "w") as f:
        f.write(f'local f = io.open("{body_path}", "rb")\nlocal base = f:read("*all")\nf:close()\n'
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/plain"\n'
                'local ts = {' + ",".join(f'"{now + i * 1000000}"' for i in range(500)) + '}\n'
                'local bodies = {}\nfor i = 1, 500 do bodies[i] = base:gsub("TS", ts[i]) end\n'
                'local n = 0\nrequest = function()\n  n = n % 500 + 1\n  return wrk.format(nil, nil, nil, bodies[n])\nend\n')
    samples_per_req = 3000
    runs = {"vmagent": [], "ours": []}
    ours_pending = None
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{vm_port}/health")[0] == 200, 30, "victoria-metrics")
        rw = f"http://127.0.0.1:{vm_port}/api/v1/write"
        for rep in range(args.reps):
            # vmagent
            in_port, http_port = free_port(), free_port()
            env = dict(os.environ, GOMAXPROCS="1")
            # vmagent serves InfluxDB's HTTP /write on -httpListenAddr (-influxListenAddr is
            # the raw TCP/UDP line protocol listener)
            va = Proc(f"vmagent{rep}", ["vmagent", f"-httpListenAddr=127.0.0.1:{http_port}",
                                        f"-remoteWrite.url={rw}", f"-remoteWrite.tmpDataPath={work}/vmagent{rep}"], env=env, log_dir=work)
            try:
                wait_for(lambda: http_get(f"http://127.0.0.1:{http_port}/health")[0] == 200, 30, "vmagent")
                runs["vmagent"].append(_wrk_run(va, f"http://127.0.0.1:{http_port}/write", lua, samples_per_req, args.seconds,
                                                lambda: vm_received(vm_port)))
            finally:
                va.stop()
            if ours_pending:
                continue
            # ours: the influxdb plugin's line-protocol receiver (a `receiver` block
            # without `url`: receive only) routed to the prometheus sink's remote write
            in_port, http_port = free_port(), free_port()
            pdir = os.path.join(work, "plugins")
            stage_plugins(pdir, ["tfo_influxdb", "tfo_prometheus"])
            cfg = agent_config(work, pdir, f"""  influx-in:
    enabled: true
    plugin: influxdb
    receiver:
      listen: 127.0.0.1:{in_port}
    routes: [prometheus]
  prometheus:
    enabled: true
    listen: ""
    remote_write:
      url: {rw}
""", http_port, batch_max_items=10000, queue_max_items=100000)
            v = subprocess.run([AGENT, "validate", "--config", cfg], capture_output=True, text=True)
            if v.returncode != 0:
                ours_pending = (v.stdout + v.stderr).strip()[-500:]
                continue
            a = start_agent(work, cfg, name=f"tfo-agent-influx{rep}")
            try:
                wait_for(lambda: _tcp_open(in_port), 30, "our influx receiver")
                runs["ours"].append(_wrk_run(a, f"http://127.0.0.1:{in_port}/write", lua, samples_per_req, args.seconds,
                                             lambda: vm_received(vm_port)))
            finally:
                a.stop()
    finally:
        vm.stop()
    res = {"reps": args.reps, "seconds": args.seconds, "samples_per_request": samples_per_req, "runs": runs, "median": {}}
    for k, rs in runs.items():
        if rs:
            res["median"][k] = {f: median([r[f] for r in rs if r[f] is not None]) for f in rs[0]}
    if runs["ours"]:
        m = res["median"]
        res["ratios"] = {"samples_per_cpu_s": m["ours"]["samples_per_cpu_s"] / m["vmagent"]["samples_per_cpu_s"]}
    else:
        res["pending"] = "our side did not run: tfo-agent validate refused the receiver config: " + (ours_pending or "?")
    return res


def vm_received(vm_port):
    """(bytes read by victoria-metrics' HTTP listener, remote-write rows it parsed):
    the same receiver-side count for both agents."""
    text = http_get(f"http://127.0.0.1:{vm_port}/metrics")[1].decode()
    return (prom_values(text, "vm_tcplistener_read_bytes_total", name="http") or 0,
            prom_values(text, "vm_protoparser_rows_read_total", type="promremotewrite") or 0)


def _wrk_run(proc, url, lua, samples_per_req, seconds, recv_fn):
    b0, r0 = recv_fn()
    c0 = proc.cpu()
    r = subprocess.run(["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c4", f"-d{seconds}s", "-s", lua, url],
                       capture_output=True, text=True)
    # let the remote-write queues drain (rows stop growing at the receiver)
    last = -1
    for _ in range(30):
        time.sleep(1)
        b1, r1 = recv_fn()
        if r1 == last:
            break
        last = r1
    c1 = proc.cpu()
    m = re.search(r"(\d+) requests in", r.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    reqs = int(m.group(1)) if m else 0
    ok = reqs - (int(non2xx.group(1)) if non2xx else 0)
    samples = ok * samples_per_req
    return {
        "samples_per_s_wall": samples / seconds,
        "samples_per_cpu_s": samples / max(c1 - c0, 1e-9),
        "rw_bytes_per_sample": (b1 - b0) / (r1 - r0) if r1 > r0 else None,
        "samples_delivered_ratio": (r1 - r0) / samples if samples else None,
        "non_2xx": reqs - ok,
    }


SCENARIOS = {"idle": idle, "scrape": scrape, "snmp": snmp, "influx": influx, "mqtt": mqtt, "swap": swap, "startup": startup}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--quick", action="store_true", help="short durations and fewer repetitions")
    ap.add_argument("--duration", type=float, help="idle: seconds (default 600, --quick 60)")
    ap.add_argument("--reps", type=int, help="repetitions (alternating ours/peer)")
    a = ap.parse_args()
    q = a.quick
    a.duration = a.duration or (60 if q else 600)
    a.reps = a.reps or (3 if q else (11 if a.scenario == "startup" else 5))
    a.scrapes = 300 if q else 1000
    a.targets = 4
    a.collections = 10 if q else 20
    a.wall_samples = 3 if q else 5
    a.values = 50000 if q else 100000
    a.swaps = 4 if q else 10
    a.seconds = 5 if q else 15
    work = tempfile.mkdtemp(prefix=f"tfo-bench-{a.scenario}-")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        res = SCENARIOS[a.scenario](a, work)
        res["quick"] = q
        save(a.scenario, res)
    finally:
        stop_all()
        if os.environ.get("TFO_BENCH_KEEP"):
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
