"""Shared helpers of the side-by-side benchmarks (bench/scenarios.py, scripts/bench.sh).

Whole processes are measured from the outside, the same way for our agent and for the
peer: CPU = the nanosecond CPU time of a cgroup the process is started in (cgroup v1
`cpuacct.usage` or v2 `cpu.stat` `usage_usec`; all its threads, exited ones
included), or, where no cgroup can be made (not root), utime + stime from
/proc/<pid>/stat in clock ticks (10 ms: too coarse for windows of a few ticks);
memory = VmRSS from /proc/<pid>/status. Nothing here asserts a time: the scenarios record
figures and the report compares them with the targets of issue 9.
"""

import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
RELEASE = os.path.join(TARGET, "release")
AGENT = os.path.join(RELEASE, "tfo-agent")
RESULTS = os.path.join(TARGET, "bench", "results")
TICK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
# Agent / peer on core 0, load generators and pollers on the last core (when there
# are at least two), so a generator does not steal the measured process's core.
SERVER_CPU = "0"
CLIENT_CPU = str(NCPU - 1)


def cpu_seconds(pid):
    """utime + stime of a whole process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    """VmRSS of a process in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    """A free TCP port on loopback (also free for UDP in practice on this machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


LIVE = []  # every Proc not yet stopped, so that an interrupted scenario stops them


def stop_all():
    """Stop every child process still running (called on exit and on SIGTERM/SIGINT)."""
    for p in list(LIVE):
        p.stop(timeout=5)


class CpuGroup:
    """A cgroup of its own for one measured process: its CPU time in nanoseconds
    (all threads, exited ones included) instead of /proc's 10 ms ticks."""

    # (mount point, usage file, reader) in order of preference
    KINDS = (
        ("/sys/fs/cgroup/cpuacct", "cpuacct.usage", lambda t: int(t) / 1e9),
        ("/sys/fs/cgroup/unified", "cpu.stat", lambda t: _usage_usec(t) / 1e6),
        ("/sys/fs/cgroup", "cpu.stat", lambda t: _usage_usec(t) / 1e6),
    )
    _n = 0

    def __init__(self, path, usage, read):
        self.path, self.usage, self.read = path, usage, read

    @classmethod
    def make(cls, name):
        """A new group, or None where none can be made (not root, no cgroup fs)."""
        if os.environ.get("TFO_BENCH_CPU") == "ticks":
            return None
        for mount, usage, read in cls.KINDS:
            if not os.path.exists(os.path.join(mount, usage)) and not os.path.exists(os.path.join(mount, "cgroup.procs")):
                continue
            cls._n += 1
            path = os.path.join(mount, f"tfo-bench-{os.getpid()}-{cls._n}-{name}"[:200])
            try:
                os.mkdir(path)
            except OSError:
                continue
            if os.path.exists(os.path.join(path, usage)):
                return cls(path, usage, read)
            try:
                os.rmdir(path)
            except OSError:
                pass
        return None

    def join(self):
        """Moves the calling process in (run in the child before exec)."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def seconds(self):
        with open(os.path.join(self.path, self.usage)) as f:
            return self.read(f.read())

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def _usage_usec(text):
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == "usage_usec":
            return int(v)
    raise ValueError("no usage_usec in cpu.stat")


def cpu_clock():
    """How process CPU time is measured on this machine (recorded with the figures)."""
    g = CpuGroup.make("probe")
    if g is None:
        return f"/proc/<pid>/stat utime+stime ({TICK} ticks/s)"
    g.remove()
    return f"cgroup {g.path.rsplit('/', 1)[0]}/{g.usage} (ns)"


class Proc:
    """A measured child process, pinned to a core, in a cgroup of its own when one
    can be made (CPU time in ns), killed (its group) at the end."""

    def __init__(self, name, argv, cpu=SERVER_CPU, env=None, log_dir=None, cwd=None):
        self.name = name
        LIVE.append(self)
        if shutil.which("taskset") and cpu is not None:
            argv = ["taskset", "-c", cpu] + argv
        log_dir = log_dir or tempfile.gettempdir()
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.t0 = time.monotonic()
        self.group = CpuGroup.make(name)
        self.p = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=self.group.join if self.group else None,
        )
        self.pid = self.p.pid

    def cpu(self):
        if self.group:
            return self.group.seconds()
        return cpu_seconds(self.pid)

    def rss(self):
        return rss_kib(self.pid)

    def alive(self):
        return self.p.poll() is None

    def tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=10):
        if self in LIVE:
            LIVE.remove(self)
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.p.wait()
        if not self.log.closed:
            self.log.close()
        if self.group:
            self.group.remove()


def http_get(url, timeout=5):
    """GET url -> (status, body bytes); connection errors -> (0, b"")."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def wait_for(pred, timeout, what, step=0.05):
    """Poll pred() until it is truthy; raise with `what` after timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def prom_values(text, metric_name, **labels):
    """Sum of the samples of metric `metric_name` whose labels include `labels`."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(metric_name):
            continue
        head, _, val = line.rpartition(" ")
        metric = head.split("{", 1)[0]
        if metric != metric_name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):  # noqa: B023
            total += float(val)
            found = True
    return total if found else None


def series_count(text):
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def stage_plugins(dest, libs):
    """Install plugin files (lib names without lib/.so) into dest as an operator would:
    write <file>.tmp, then rename; 0644, directory 0755 (the agent refuses others)."""
    os.makedirs(dest, exist_ok=True)
    os.chmod(dest, 0o755)
    for lib in libs:
        src = os.path.join(RELEASE, f"lib{lib}.so")
        if not os.path.exists(src):
            raise FileNotFoundError(f"{src} is not built (scripts/bench.sh builds it)")
        install_plugin(src, os.path.join(dest, f"lib{lib}.so"))


def install_plugin(src, dst):
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o644)
    os.rename(tmp, dst)


def agent_config(workdir, plugin_dir, integrations, http_port, extra="", batch_max_items=1000,
                 queue_max_items=1000000):
    """Write an agent config (YAML) with the given `integrations:` block text."""
    path = os.path.join(workdir, "tfo-agent.yaml")
    with open(path, "w") as f:
        f.write(
            f"""plugins:
  dir: {plugin_dir}
  debounce: 50ms
  rescan_interval: 0
http:
  listen: 127.0.0.1:{http_port}
pipeline:
  batch_max_items: {batch_max_items}
  flush_interval: 1s
  queue_max_items: {queue_max_items}
  queue_max_bytes: 268435456
{extra}integrations:
{integrations}"""
        )
    return path


def machine():
    """The machine the figures were taken on."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rustc = "?"
    try:
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
    except OSError:
        load = "?"
    return {
        "nproc": NCPU,
        "cpu": model,
        "kernel": platform.release(),
        "rustc": rustc,
        "loadavg_at_start": load,
        "cpu_clock": cpu_clock(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def save(scenario, result):
    os.makedirs(RESULTS, exist_ok=True)
    result["scenario"] = scenario
    result["machine"] = machine()
    with open(os.path.join(RESULTS, f"{scenario}.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
