#!/usr/bin/python3
"""Ingress throughput of Bridgehead vs a stock Postfix: same load, same run, same disk.

    ingress_vs_postfix.py BUILD_DIR [-n MESSAGES] [--sessions 20] [--size 4096]
                          [--rounds 2] [--json-out FILE] [--workdir DIR] [--keep]

The load is `smtp-source -s SESSIONS -m MESSAGES -l SIZE -f sender@exchange.example
-t rcpt@notes.example 127.0.0.1:PORT`: SESSIONS concurrent sessions, one message per
connection, SIZE bytes of payload each. It is run against Bridgehead (`BUILD/src/cli/bridgehead
run`, ingress of the system "exchange", recipient on the system "notes") and against a stock
Postfix instance (tests/support/postfix.py: its own config and queue directories, deliveries
held with defer_transports), one after the other, each side started on an empty spool/queue
and stopped after its measurement so that nothing of one side runs during the other's.
Round 1 runs Bridgehead first, round 2 Postfix first, and so on alternately, so that neither
side always gets the warm (or cold) caches.

Both sides make every accepted message durable before the 250 reply: Postfix fsyncs each
queue file (its default), Bridgehead's spool fdatasyncs a group of messages (group commit).
The time is from starting smtp-source to its exit. Afterwards the script checks that each
side really queued MESSAGES messages (Bridgehead: the spool's "queued" and "commits" counters
from `bridgehead status --json`, and `bridgehead queue --json`; Postfix: files in its queue
directories); a side that did not is reported as INCOMPLETE, and the exit status is 3.

Exit status: 0 all measured and verified; 1 a side could not run (the reason is printed);
2 bad usage or unsuitable machine (e.g. the work directory is on tmpfs, where fsync is free);
3 measured, but a side did not queue every message; 130 interrupted.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import postfix  # noqa: E402  (tests/support/postfix.py)
from bridgehead import free_port, free_ports  # noqa: E402  (tests/support/bridgehead.py)

SENDER = "sender@exchange.example"
RECIPIENT = "rcpt@notes.example"


class BenchError(Exception):
    """A side could not run; the message says why."""


class Interrupted(Exception):
    pass


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


def run_load(port, args):
    """Runs smtp-source against 127.0.0.1:port; returns its timing and what it said."""
    argv = [args.smtp_source, "-s", str(args.sessions), "-m", str(args.messages),
            "-l", str(args.size), "-f", SENDER, "-t", RECIPIENT]
    if args.reuse_connections:
        argv.append("-d")
    argv.append(f"127.0.0.1:{port}")
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


# ---- Bridgehead -----------------------------------------------------------------------------

class Bridgehead:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.dir = workdir
        self.config = os.path.join(workdir, "bridgehead.toml")
        self.log_path = os.path.join(workdir, "bridgehead.log")
        self.proc = None
        self.log = None
        self.port = None

    def write_config(self):
        self.port, notes_listen, notes_delivery = free_ports(3)
        # Mail goes exchange -> notes. Nothing listens on the notes delivery address, so that
        # a delivery (once the daemon delivers) is deferred and the message stays queued:
        # accept and queue only, like Postfix with defer_transports.
        text = f"""# written by bench/ingress_vs_postfix.py
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
method = "smtp"
address = "127.0.0.1:{notes_delivery}"
"""
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


def measure_bridgehead(args, workdir):
    bh = Bridgehead(args.bridgehead, workdir)
    result = {"side": "bridgehead"}
    try:
        bh.start()
        before = bh.counters()
        rss_idle = vm_kib(bh.proc.pid, "VmRSS")
        cpu0 = proc_cpu_seconds(bh.proc.pid)
        result.update(run_load(bh.port, args))
        # Commits happen before the 250 reply, so the counters are final at once; give the
        # registry's once-a-second refresh a moment anyway.
        deadline = time.monotonic() + 10
        while True:
            after = bh.counters()
            done = after["spool"].get("commits", 0) - before["spool"].get("commits", 0)
            if done >= args.messages or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        cpu1 = proc_cpu_seconds(bh.proc.pid)
        # Peak RSS of the load itself, read before `bridgehead queue --json` makes the daemon
        # build a JSON list of every queued message (which needs memory of its own).
        peak_rss = vm_kib(bh.proc.pid, "VmHWM")
        rss_after = vm_kib(bh.proc.pid, "VmRSS")
        queue_listed = bh.queue_length()
        sp0, sp1 = before["spool"], after["spool"]
        commits = sp1.get("commits", 0) - sp0.get("commits", 0)
        syncs = sp1.get("fsync_batches", 0) - sp0.get("fsync_batches", 0)
        result.update({
            "queued": sp1.get("queued", 0) - sp0.get("queued", 0),
            "queue_listed": queue_listed,
            "spool_commits": commits,
            "spool_fsync_batches": syncs,
            "commits_per_fsync": round(commits / syncs, 2) if syncs else None,
            "spool_bytes_written": sp1.get("bytes_written", 0) - sp0.get("bytes_written", 0),
            "spool_write_errors": sp1.get("write_errors", 0) - sp0.get("write_errors", 0),
            "ingress_counters": {k: v - before["ingress"].get(k, 0) for k, v in after["ingress"].items()},
            "process_states": after["states"],
            "process_errors": after["errors"],
            "daemon_cpu_seconds": round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None,
            "peak_rss_kib": peak_rss,
            "rss_after_load_kib": rss_after,
            "peak_rss_after_queue_listing_kib": vm_kib(bh.proc.pid, "VmHWM"),
            "rss_idle_kib": rss_idle,
        })
    finally:
        rc = bh.stop()
        result["daemon_exit"] = rc
        result["daemon_log"] = bh.log_findings()
        result["log_path"] = bh.log_path
    return result


def measure_postfix(args, workdir):
    port = free_port()
    result = {"side": "postfix"}
    pf = postfix.PostfixInstance(workdir, port)
    try:
        try:
            pf.start()
        except postfix.PostfixError as e:
            raise BenchError(f"Postfix could not be started: {e}") from e
        result.update(run_load(port, args))
        result["queued"] = pf.queue_count(settle=2.0, timeout=120)
        log = pf.maillog_text()
        warnings = [line for line in log.splitlines()
                    if ": warning:" in line or ": fatal:" in line or ": error:" in line
                    or ": panic:" in line]
        result["maillog_warnings"] = len(warnings)
        result["maillog_warning_lines"] = warnings[:5]
        result["maillog_reject_lines"] = sum(1 for line in log.splitlines() if " reject: " in line)
    finally:
        pf.stop()
        result["log_path"] = pf.maillog
    return result


# ---- report ----------------------------------------------------------------------------------

def complete(r, n):
    ok = r.get("queued") == n
    if r["side"] == "bridgehead":
        ok = ok and r.get("spool_commits") == n and r.get("queue_listed") == n
    return ok and r.get("smtp_source_exit") == 0


def rate(r):
    return r["queued"] / r["seconds"] if r.get("seconds") else 0.0


def print_report(res, args):
    n = args.messages
    print()
    print(f"Ingress throughput: {args.sessions} concurrent smtp-source sessions, {n} messages of "
          f"{args.size} bytes, one recipient, one message per connection"
          f"{' (connections reused, -d)' if args.reuse_connections else ''}")
    print(f"work dir {res['machine']['workdir']} ({res['machine']['fs_type']}), "
          f"{res['machine']['nproc']} CPUs, fdatasync(4 KiB) median "
          f"{res['machine']['fdatasync']['median_ms']} ms")
    print()
    hdr = f"{'round':>5}  {'side':<10} {'messages':>8} {'queued':>8} {'seconds':>8} {'msg/s':>8}  " \
          f"{'cpu busy':>8} {'load':>5}  note"
    print(hdr)
    print("-" * len(hdr))
    for rnd in res["rounds"]:
        for r in rnd["runs"]:
            note = "ok" if r["complete"] else "INCOMPLETE: " + r["problem"]
            print(f"{rnd['round']:>5}  {r['side']:<10} {n:>8} {r['queued']:>8} {r['seconds']:>8.2f} "
                  f"{r['messages_per_second']:>8.0f}  {r['machine_cpu_busy_percent']:>7.0f}% "
                  f"{r['loadavg_1min_before']:>5.1f}  {note}")
    print("(cpu busy: share of both CPUs in use during the run, everything on the machine counted;"
          " load: 1-minute load average before it. The machine may be shared: a high load means"
          " other work competed for the CPUs.)")
    print()
    for rnd in res["rounds"]:
        bh = rnd["bridgehead"]
        print(f"round {rnd['round']} ({rnd['order']}): Bridgehead/Postfix = {rnd['ratio']:.2f}x; "
              f"Bridgehead commits per fsync {bh.get('commits_per_fsync')} "
              f"({bh.get('spool_commits')} commits / {bh.get('spool_fsync_batches')} fsync batches), "
              f"peak RSS {bh.get('peak_rss_kib')} KiB (idle {bh.get('rss_idle_kib')} KiB; "
              f"{bh.get('peak_rss_after_queue_listing_kib')} KiB after `bridgehead queue --json`), "
              f"daemon CPU {bh.get('daemon_cpu_seconds')} s")
    s = res["summary"]
    print()
    print(f"overall: Bridgehead {s['bridgehead_messages_per_second']:.0f} msg/s, Postfix "
          f"{s['postfix_messages_per_second']:.0f} msg/s, ratio {s['ratio']:.2f}x "
          f"(target >= {args.target:g}x: {'met' if s['target_met'] else 'NOT met'})")
    if not s["all_complete"]:
        print("WARNING: at least one side did not queue every message; see the notes above.")
    for rnd in res["rounds"]:
        bh = rnd["bridgehead"]
        if bh["daemon_log"]["lines"]:
            print(f"round {rnd['round']}: bridgehead logged {bh['daemon_log']['lines']} line(s) at warn "
                  f"or above, e.g.:")
            for line in bh["daemon_log"]["first"][:3]:
                print("    " + line[:300])
        if bh.get("process_errors"):
            print(f"round {rnd['round']}: bridgehead process errors: {bh['process_errors']}")
        if bh.get("daemon_exit") not in (0, None):
            print(f"round {rnd['round']}: bridgehead exited with {bh['daemon_exit']} on SIGTERM")
        pf = rnd["postfix"]
        if pf.get("maillog_warnings"):
            print(f"round {rnd['round']}: postfix logged {pf['maillog_warnings']} warning/error line(s), "
                  f"e.g.:")
            for line in pf.get("maillog_warning_lines", [])[:3]:
                print("    " + line[:300])


def annotate(r, n):
    r["messages"] = n
    r["messages_per_second"] = round(rate(r), 1)
    r["complete"] = complete(r, n)
    problems = []
    if r.get("smtp_source_exit") != 0:
        problems.append(f"smtp-source exit {r.get('smtp_source_exit')}: "
                        f"{r.get('smtp_source_output', '')[-300:]}")
    if r.get("queued") != n:
        problems.append(f"{r.get('queued')} of {n} queued")
    if r["side"] == "bridgehead":
        if r.get("spool_commits") != n:
            problems.append(f"{r.get('spool_commits')} spool commits")
        if r.get("queue_listed") != n:
            problems.append(f"`bridgehead queue` lists {r.get('queue_listed')}")
    r["problem"] = "; ".join(problems)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", help="build directory (e.g. build/release)")
    ap.add_argument("-n", "--messages", type=int, default=20000, help="messages per side and round")
    ap.add_argument("--sessions", type=int, default=20, help="concurrent smtp-source sessions")
    ap.add_argument("--size", type=int, default=4096, help="payload bytes per message")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; the order alternates")
    ap.add_argument("--reuse-connections", action="store_true",
                    help="smtp-source -d: several messages per connection (default: one per connection)")
    ap.add_argument("--target", type=float, default=3.0, help="ratio to report as met or not")
    ap.add_argument("--json-out", help="write the results as JSON to this file")
    ap.add_argument("--workdir", default="/var/tmp",
                    help="parent of the temporary spool and queue directories (must be on a real disk)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, spools)")
    ap.add_argument("--load-timeout", type=int, default=0, help="seconds before smtp-source is killed")
    args = ap.parse_args()

    args.bridgehead = os.path.join(os.path.abspath(args.build), "src", "cli", "bridgehead")
    args.smtp_source = shutil.which("smtp-source", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))
    if not args.load_timeout:
        args.load_timeout = max(300, args.messages // 20)
    if not os.access(args.bridgehead, os.X_OK):
        print(f"ingress benchmark: {args.bridgehead} not found; build the release preset first",
              file=sys.stderr)
        return 1
    if not args.smtp_source:
        print("ingress benchmark: smtp-source not found: install the Debian package 'postfix'",
              file=sys.stderr)
        return 1
    if args.messages < 1 or args.sessions < 1 or args.rounds < 1:
        print("ingress benchmark: --messages, --sessions and --rounds must be positive", file=sys.stderr)
        return 2

    def on_term(signum, frame):
        raise Interrupted(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    os.makedirs(args.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bridgehead-ingress-bench.", dir=args.workdir)
    os.chmod(work, 0o755)
    ftype = fs_type(work)
    try:
        if ftype in ("tmpfs", "ramfs"):
            print(f"ingress benchmark: {work} is on {ftype}, where fsync costs nothing; the numbers "
                  f"would mean nothing. Use --workdir on a disk.", file=sys.stderr)
            return 2
        machine = {
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
        print(f"ingress benchmark: {args.rounds} round(s) of {args.messages} messages per side, "
              f"work dir {work} ({ftype}), fdatasync(4 KiB) median {machine['fdatasync']['median_ms']} ms",
              flush=True)
        rounds = []
        for i in range(1, args.rounds + 1):
            order = ["bridgehead", "postfix"] if i % 2 == 1 else ["postfix", "bridgehead"]
            runs = {}
            for side in order:
                d = os.path.join(work, f"round{i}-{side}")
                os.makedirs(d)
                print(f"  round {i}: {side} ...", end="", flush=True)
                r = measure_bridgehead(args, d) if side == "bridgehead" else measure_postfix(args, d)
                annotate(r, args.messages)
                runs[side] = r
                print(f" {r['queued']} queued in {r['seconds']:.2f} s = {r['messages_per_second']:.0f} msg/s"
                      f"{'' if r['complete'] else '  INCOMPLETE: ' + r['problem']}", flush=True)
            pf_rate = runs["postfix"]["messages_per_second"]
            rounds.append({
                "round": i, "order": " then ".join(order),
                "runs": [runs[s] for s in order],
                "bridgehead": runs["bridgehead"], "postfix": runs["postfix"],
                "ratio": round(runs["bridgehead"]["messages_per_second"] / pf_rate, 3) if pf_rate else 0.0,
            })
        bh_msgs = sum(r["bridgehead"]["queued"] for r in rounds)
        bh_secs = sum(r["bridgehead"]["seconds"] for r in rounds)
        pf_msgs = sum(r["postfix"]["queued"] for r in rounds)
        pf_secs = sum(r["postfix"]["seconds"] for r in rounds)
        bh_rate, pf_rate = bh_msgs / bh_secs, pf_msgs / pf_secs
        summary = {
            "bridgehead_messages_per_second": round(bh_rate, 1),
            "postfix_messages_per_second": round(pf_rate, 1),
            "ratio": round(bh_rate / pf_rate, 3) if pf_rate else 0.0,
            "ratio_per_round": [r["ratio"] for r in rounds],
            "target": args.target,
            "target_met": pf_rate > 0 and bh_rate / pf_rate >= args.target,
            "all_complete": all(x["complete"] for r in rounds for x in r["runs"]),
        }
        res = {
            "benchmark": "ingress_vs_postfix",
            "load": {"sessions": args.sessions, "messages": args.messages, "size": args.size,
                     "sender": SENDER, "recipient": RECIPIENT,
                     "one_message_per_connection": not args.reuse_connections},
            "machine": machine, "rounds": rounds, "summary": summary,
        }
        print_report(res, args)
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump(res, f, indent=2)
                f.write("\n")
            print(f"results written to {args.json_out}")
        return 0 if summary["all_complete"] else 3
    except BenchError as e:
        print(f"\ningress benchmark could not run: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted) as e:
        print(f"\ningress benchmark interrupted ({str(e) or 'Ctrl-C'}); everything it started is stopped",
              file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
