"""What the Bridgehead-vs-Postfix benchmarks share (bench/ingress_vs_postfix.py,
bench/relay_vs_postfix.py): the load (smtp-source), the Bridgehead daemon under test,
measurements of the machine and of a process, and the work directory checks.
Standard library only.
"""

import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import postfix  # noqa: E402,F401  (tests/support/postfix.py; re-exported for the scripts)
from bridgehead import free_port, free_ports  # noqa: E402,F401  (tests/support/bridgehead.py)

SENDER = "sender@exchange.example"
RECIPIENT = "rcpt@notes.example"


class BenchError(Exception):
    """A side could not run; the message says why."""


class Interrupted(Exception):
    pass


def raise_on_termination():
    """SIGTERM and SIGHUP raise Interrupted, so that `finally` blocks stop what was started."""
    def on_term(signum, frame):
        raise Interrupted(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


def find_program(name):
    return shutil.which(name, path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))


# ---- the machine and processes -------------------------------------------------------------

def fs_type(path):
    """Type of the file system holding path, as mounted (ext4, xfs, tmpfs, ...)."""
    r = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", path], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        r = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return r.stdout.strip().splitlines()[0] if r.stdout.strip() else "unknown"


def fdatasync_latency(directory, count=200, size=4096):
    """Median and mean latency (ms) of write(4 KiB) + fdatasync on a file in `directory`."""
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        block = b"x" * size
        samples = []
        for _ in range(count):
            t = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            samples.append((time.perf_counter() - t) * 1000.0)
    finally:
        os.close(fd)
        os.unlink(path)
    return {"count": count, "median_ms": round(statistics.median(samples), 3),
            "mean_ms": round(statistics.fmean(samples), 3),
            "p90_ms": round(sorted(samples)[int(0.9 * count) - 1], 3)}


def cpu_times():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_kib(pid, field="VmHWM"):
    """A memory figure of /proc/PID/status in KiB: VmHWM (peak RSS) or VmRSS (current)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def make_workdir(parent, prefix, who):
    """A fresh directory below `parent` for one benchmark run; raises BenchError (with the
    exit status 2 in mind) when it is in memory, where fsync costs nothing."""
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(work, 0o755)
    ftype = fs_type(work)
    if ftype in ("tmpfs", "ramfs"):
        shutil.rmtree(work, ignore_errors=True)
        raise BenchError(f"{who}: {work} is on {ftype}, where fsync costs nothing; the numbers "
                         f"would mean nothing. Use --workdir on a disk.")
    return work, ftype


def machine_info(work, ftype):
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "kernel": platform.release(),
        "nproc": os.cpu_count(),
        "workdir": work,
        "fs_type": ftype,
        "fdatasync": fdatasync_latency(work),
        "postfix_version": subprocess.run([postfix.POSTCONF, "-d", "-h", "mail_version"],
                                          capture_output=True, text=True).stdout.strip(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---- the load --------------------------------------------------------------------------------

def smtp_source_argv(args, port):
    """smtp-source with the benchmark's load: args.sessions, args.messages, args.size."""
    argv = [args.smtp_source, "-s", str(args.sessions), "-m", str(args.messages),
            "-l", str(args.size), "-f", SENDER, "-t", RECIPIENT]
    if args.reuse_connections:
        argv.append("-d")
    argv.append(f"127.0.0.1:{port}")
    return argv


def run_load(port, args):
    """Runs smtp-source against 127.0.0.1:port; returns its timing and what it said."""
    argv = smtp_source_argv(args, port)
    busy0, total0 = cpu_times()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=args.load_timeout)
        rc, out = r.returncode, (r.stdout + r.stderr).strip()
    except subprocess.TimeoutExpired as e:
        rc = "timeout"
        out = f"smtp-source did not finish in {args.load_timeout} s " + str(e.stderr or "")
    seconds = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = cpu_times()
    return {
        "command": " ".join(argv),
        "seconds": seconds,
        "smtp_source_exit": rc,
        "smtp_source_output": out[-2000:],
        "smtp_source_cpu_seconds": round((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime), 2),
        "machine_cpu_busy_percent": round(100.0 * (busy1 - busy0) / max(1, total1 - total0), 1),
        "loadavg_1min_before": round(load0, 2),
    }


# ---- Postfix ---------------------------------------------------------------------------------

def maillog_findings(log):
    """Warnings, errors and rejects in the text of a Postfix maillog, for the report."""
    lines = log.splitlines()
    warnings = [line for line in lines
                if ": warning:" in line or ": fatal:" in line or ": error:" in line or ": panic:" in line]
    return {"maillog_warnings": len(warnings), "maillog_warning_lines": warnings[:5],
            "maillog_reject_lines": sum(1 for line in lines if " reject: " in line)}


# ---- Bridgehead ------------------------------------------------------------------------------

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))


class Bridgehead:
    """`bridgehead run` with two systems: mail goes from "exchange" (the listener at
    127.0.0.1:self.port, which the load is sent to) to "notes" (recipient RECIPIENT).

    notes_delivery: the [system.delivery] of notes as a dict; by default an SMTP delivery to
    a loopback port where nothing listens, so that every delivery is deferred and the
    message stays queued (accept and queue only, like Postfix with defer_transports)."""

    def __init__(self, binary, workdir, notes_delivery=None, written_by="bench/benchlib.py"):
        self.binary = binary
        self.dir = workdir
        self.config = os.path.join(workdir, "bridgehead.toml")
        self.log_path = os.path.join(workdir, "bridgehead.log")
        self.notes_delivery = notes_delivery
        self.written_by = written_by
        self.proc = None
        self.log = None
        self.port = None

    def write_config(self):
        self.port, notes_listen, dead_port = free_ports(3)
        delivery = self.notes_delivery or {"method": "smtp", "address": f"127.0.0.1:{dead_port}"}
        delivery_text = "".join(f"{k} = {toml_value(v)}\n" for k, v in delivery.items())
        # The ingress checks recipients only (against the recipients of the destination
        # system), not the sender; a report (DSN) to the sender would go to a Maildir.
        text = f"""# written by {self.written_by}
[connector]
hostname = "bridgehead-bench.example"
state_dir = "{self.dir}/state"
log_level = "warn"

[[system]]
name = "exchange"
kind = "exchange"
domains = ["exchange.example"]
listen = "127.0.0.1:{self.port}"
recipients = ["{SENDER}"]

[system.delivery]
method = "maildir"
path = "{self.dir}/maildir/exchange"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example"]
listen = "127.0.0.1:{notes_listen}"
recipients = ["{RECIPIENT}"]

[system.delivery]
{delivery_text}"""
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        with open(self.config, "w") as f:
            f.write(text)
        r = subprocess.run([self.binary, "check", "-c", self.config], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"bridgehead check rejected the benchmark config {self.config}:\n"
                             f"{(r.stdout + r.stderr).strip()}")

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self, timeout=30.0):
        self.write_config()
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([self.binary, "run", "-c", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"bridgehead exited with status {self.proc.returncode} while "
                                 f"starting; its log ({self.log_path}):\n{self.log_tail()}")
            try:
                st = self.status()
                ingress = [p for p in st.get("processes", []) if p["name"].startswith("ingress:")]
                last = [(p["name"], p["state"], p.get("last_error")) for p in ingress]
                if ingress and all(p["state"] == "running" for p in ingress):
                    return
            except BenchError as e:
                last = str(e)
            time.sleep(0.2)
        raise BenchError(f"bridgehead's ingress processes were not running after {timeout:.0f} s "
                         f"(last status: {last}); its log:\n{self.log_tail()}")

    def _cli(self, command, timeout=60):
        r = subprocess.run([self.binary, command, "-c", self.config, "--json"], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise BenchError(f"bridgehead {command} failed (exit {r.returncode}): "
                             f"{(r.stderr or r.stdout).strip()}")
        return json.loads(r.stdout)

    def status(self):
        return self._cli("status", timeout=30)

    def process(self, status, name):
        for p in status.get("processes", []):
            if p["name"] == name:
                return p
        return {}

    def counters(self):
        st = self.status()
        return {"spool": self.process(st, "spool").get("counters", {}),
                "ingress": self.process(st, "ingress:exchange").get("counters", {}),
                "deliver": self.process(st, "deliver:notes").get("counters", {}),
                "states": {p["name"]: p["state"] for p in st.get("processes", [])},
                "errors": {p["name"]: p["last_error"] for p in st.get("processes", [])
                           if p.get("last_error")}}

    def queue_length(self):
        return len(self._cli("queue", timeout=120).get("messages", []))

    def stop(self):
        """Stops the daemon (SIGTERM, then SIGKILL); returns its exit status."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    rc = self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    rc = "killed after 20 s without exiting on SIGTERM"
            else:
                rc = self.proc.returncode
        if self.log is not None:
            self.log.close()
            self.log = None
        return rc

    def log_findings(self, limit=10):
        """Lines of the daemon's log (level warn and up), for the report."""
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [line.rstrip() for line in f if line.strip()]
        except OSError:
            return {"lines": 0, "first": []}
        return {"lines": len(lines), "first": lines[:limit]}
