"""What the Bridgehead-vs-Postfix benchmarks share (bench/ingress_vs_postfix.py,
bench/relay_vs_postfix.py): the load (smtp-source), the Bridgehead daemon under test,
measurements of the machine and of a process, the work directory checks, and the run itself
(the checks before it, the rounds in alternating order, the summary, the common parts of the
report and the JSON). Each script keeps its sides (measure_bridgehead, measure_postfix), what
makes a side's run incomplete, and its own report lines. Standard library only.
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



# The system user a daemon started as root drops to (scripts/install-deps creates it).
SERVICE_USER = "bridgehead"

class BenchError(Exception):
    """A side could not run; the message says why."""


class Interrupted(Exception):
    pass


def raise_on_termination():
    """SIGTERM and SIGHUP raise Interrupted, so that `finally` blocks stop what was started."""
    def on_term(signum, frame):
        ignore_termination()  # once: a second signal must not cut short the stopping
        raise Interrupted(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


def ignore_termination():
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


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


# The one definition of "CPU per message" in every benchmark's report and JSON. The 4 KB relay
# figures of 1 December (0.13-0.15 ms) were this; the 0.31 ms (4 KB) and 1.7 ms
# (256 KiB) were taken from outside by other means on a busier machine (see docs/performance.md).
CPU_PER_MESSAGE = ("utime+stime of the daemon process (all its threads, from /proc/PID/stat "
                   "fields 14 and 15, clock ticks / SC_CLK_TCK) read just before smtp-source "
                   "starts and again when the sink has the last message (relay) or the spool "
                   "counts every commit (ingress, that is once smtp-source has exited), divided "
                   "by the messages of the run; start-up, "
                   "shutdown and the load tools' own CPU are not in it")


def ms_per_message(cpu_seconds, messages):
    """CPU milliseconds per message (see CPU_PER_MESSAGE), or None when not measured."""
    if cpu_seconds is None or not messages:
        return None
    return round(1000.0 * cpu_seconds / messages, 3)


def uptime():
    """What `uptime` says (the load averages of the shared machine), for the report."""
    r = subprocess.run(["uptime"], capture_output=True, text=True)
    return r.stdout.strip() or "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


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
        "uptime_at_start": uptime(),
        "shared_machine": "other engineers compile and test on this machine during the runs; "
                          "nothing was tuned to it, compare ratios measured in the same run",
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


class LoadMeter:
    """The CPU figures of one run of the load: of the whole machine (from /proc/stat) and of
    smtp-source (the children's rusage, so read once it has been waited for)."""

    def __init__(self):
        self.busy0, self.total0 = cpu_times()
        self.ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.load0 = os.getloadavg()[0]
        self.busy1 = self.total1 = None

    def machine_done(self):
        """Reads the machine's CPU at the end of the run, before a hung smtp-source is killed."""
        self.busy1, self.total1 = cpu_times()

    def result(self, rc, said):
        """The end of a run's result: smtp-source's exit status and output, and the CPU figures."""
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if self.busy1 is None:
            self.machine_done()
        return {
            "smtp_source_exit": rc,
            "smtp_source_output": said[-2000:],
            "smtp_source_cpu_seconds": round((ru1.ru_utime - self.ru0.ru_utime)
                                             + (ru1.ru_stime - self.ru0.ru_stime), 2),
            "machine_cpu_busy_percent": round(100.0 * (self.busy1 - self.busy0)
                                              / max(1, self.total1 - self.total0), 1),
            "loadavg_1min_before": round(self.load0, 2),
        }


def run_load(port, args):
    """Runs smtp-source against 127.0.0.1:port; returns its timing and what it said."""
    argv = smtp_source_argv(args, port)
    meter = LoadMeter()
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=args.load_timeout)
        rc, out = r.returncode, (r.stdout + r.stderr).strip()
    except subprocess.TimeoutExpired as e:
        rc = "timeout"
        out = f"smtp-source did not finish in {args.load_timeout} s " + str(e.stderr or "")
    seconds = time.monotonic() - t0
    return {"command": " ".join(argv), "seconds": seconds, **meter.result(rc, out)}


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
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def toml_table(header, values):
    """A table of the config: its header line ("[name]" or "[[name]]"), then a line per key."""
    return header + "\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())


def system_toml(name, kind, port, recipient, delivery):
    """A [[system]] of the benchmark config with its [system.delivery] (a dict): the domain
    NAME.example, a listener on 127.0.0.1:port, and `recipient` as its only recipient."""
    return (toml_table("[[system]]", {"name": name, "kind": kind, "domains": [f"{name}.example"],
                                      "listen": f"127.0.0.1:{port}", "recipients": [recipient]})
            + "\n" + toml_table("[system.delivery]", delivery))


class Bridgehead:
    """`bridgehead run` with two systems: mail goes from "exchange" (the listener at
    127.0.0.1:self.port, which the load is sent to) to "notes" (recipient RECIPIENT).

    notes_delivery: the [system.delivery] of notes as a dict; by default an SMTP delivery to
    a loopback port where nothing listens, so that every delivery is deferred and the
    message stays queued (accept and queue only, like Postfix with defer_transports)."""

    def __init__(self, binary, workdir, notes_delivery=None, written_by="bench/benchlib.py", extra_toml=""):
        self.binary = binary
        self.extra_toml = extra_toml  # more tables of the config ([queue], ...)
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
        # The ingress checks recipients only (against the recipients of the destination
        # system), not the sender; a report (DSN) to the sender would go to a Maildir.
        connector = {"hostname": "bridgehead-bench.example", "state_dir": f"{self.dir}/state", "log_level": "warn"}
        if os.geteuid() == 0:
            # Started as root, the daemon runs only with a service user to drop to (as in
            # production); scripts/install-deps creates this one. It must reach the work dir.
            connector["user"] = SERVICE_USER
            path = os.path.abspath(self.dir)
            while path != "/":
                if os.stat(path).st_mode & 0o001 == 0:
                    os.chmod(path, os.stat(path).st_mode | 0o001)
                path = os.path.dirname(path)
        text = (f"# written by {self.written_by}\n"
                + toml_table("[connector]", connector)
                + "\n" + system_toml("exchange", "exchange", self.port, SENDER,
                                     {"method": "maildir", "path": f"{self.dir}/maildir/exchange"})
                + "\n" + system_toml("notes", "domino", notes_listen, RECIPIENT, delivery)
                + ("\n" + self.extra_toml if self.extra_toml else ""))
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
        self.launch()
        self.wait_running(timeout)

    def launch(self):
        """Starts `bridgehead run` on the config written before (a restart keeps its ports and
        spool); its output is appended to the log."""
        if self.log is not None:
            self.log.close()
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, "run", "-c", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill9(self):
        """SIGKILL, as a crash or the OOM killer would: nothing of a clean shutdown runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None

    def wait_running(self, timeout=30.0):
        """Waits until every ingress process says "running" in `bridgehead status`."""
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
        """Counters and gauges of the processes a benchmark reads, one dict per process."""
        st = self.status()

        def metrics(name):
            p = self.process(st, name)
            return {**p.get("counters", {}), **p.get("gauges", {})}

        return {"spool": metrics("spool"),
                "ingress": metrics("ingress:exchange"),
                "deliver": metrics("deliver:notes"),
                "states": {p["name"]: p["state"] for p in st.get("processes", [])},
                "errors": {p["name"]: p["last_error"] for p in st.get("processes", [])
                           if p.get("last_error")}}

    def queue_length(self):
        return len(self._cli("queue", timeout=120).get("messages", []))

    def memory_and_queue_length(self):
        """The daemon's memory after the load ({"peak_rss_kib", "rss_after_load_kib"}) and the
        length of its queue. The memory is that of the load itself: read before `bridgehead
        queue --json` makes the daemon build a JSON list of every queued message (which needs
        memory of its own)."""
        memory = {"peak_rss_kib": vm_kib(self.proc.pid, "VmHWM"),
                  "rss_after_load_kib": vm_kib(self.proc.pid, "VmRSS")}
        return memory, self.queue_length()

    @staticmethod
    def load_figures(before, after, cpu0, cpu1):
        """What the load changed in the daemon, from counters() before and after it and its CPU
        seconds (proc_cpu_seconds) before and after."""
        sp0, sp1 = before["spool"], after["spool"]
        return {
            "spool_bytes_written": sp1.get("bytes_written", 0) - sp0.get("bytes_written", 0),
            "spool_write_errors": sp1.get("write_errors", 0) - sp0.get("write_errors", 0),
            "ingress_counters": {k: v - before["ingress"].get(k, 0) for k, v in after["ingress"].items()},
            "process_states": after["states"],
            "process_errors": after["errors"],
            "daemon_cpu_seconds": round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None,
        }

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


# ---- the run: setup, rounds, summary, report --------------------------------------------------

def check_setup(args, kind, programs, load_timeout, counts, counts_named):
    """What main() checks before it starts anything. Sets args.bridgehead (BUILD/src/cli/
    bridgehead), an attribute per program of `programs` (args.smtp_source for "smtp-source")
    and, unless given, args.load_timeout. Returns the exit status to end with, or None:
    1 when a program is missing, 2 when one of `counts` (what `counts_named` says) is below 1."""
    who = f"{kind} benchmark"
    args.bridgehead = os.path.join(os.path.abspath(args.build), "src", "cli", "bridgehead")
    found = [find_program(name) for name in programs]
    for name, path in zip(programs, found):
        setattr(args, name.replace("-", "_"), path)
    if not args.load_timeout:
        args.load_timeout = load_timeout
    if not os.access(args.bridgehead, os.X_OK):
        print(f"{who}: {args.bridgehead} not found; build the release preset first", file=sys.stderr)
        return 1
    if not all(found):
        print(f"{who}: {' or '.join(programs)} not found: install the Debian package 'postfix'",
              file=sys.stderr)
        return 1
    if min(counts) < 1:
        print(f"{who}: {counts_named} must be positive", file=sys.stderr)
        return 2
    return None


def run_benchmark(args, kind, measure):
    """Runs measure(work, machine) in a fresh work directory below --workdir (removed afterwards
    unless --keep) and returns its exit status; 2 when the directory is unsuitable, 1 when a
    side could not run (BenchError), 130 when interrupted. SIGTERM and SIGHUP interrupt too,
    so that what a side started is stopped by its `finally`."""
    who = f"{kind} benchmark"
    raise_on_termination()
    try:
        work, ftype = make_workdir(args.workdir, f"bridgehead-{kind}-bench.", who)
    except BenchError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        machine = machine_info(work, ftype)
        print(f"{who}: {args.rounds} round(s) of {args.messages} messages per side, "
              f"work dir {work} ({ftype}), fdatasync(4 KiB) median {machine['fdatasync']['median_ms']} ms; "
              f"at the start: {machine['uptime_at_start']} (the machine is shared)", flush=True)
        return measure(work, machine)
    except BenchError as e:
        print(f"\n{who} could not run: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted) as e:
        print(f"\n{who} interrupted ({str(e) or 'Ctrl-C'}); everything it started is stopped",
              file=sys.stderr)
        return 130
    finally:
        ignore_termination()  # the measurement is over: let the clean-up finish
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def load_problems(r):
    """The start of a side's problems: what went wrong with the load (smtp-source failed, or
    the run was given up)."""
    problems = [r["gave_up"]] if r.get("gave_up") else []
    if r.get("smtp_source_exit") != 0:
        problems.append(f"smtp-source exit {r.get('smtp_source_exit')}: "
                        f"{r.get('smtp_source_output', '')[-300:]}")
    return problems


def annotate(r, n, count_key, problems_of):
    """Adds to a side's result what the report reads: the rate of the messages counted under
    count_key ("queued", "delivered"), and whether the side did all it should (problems_of(r,
    n): a list of what it did not, empty when complete)."""
    r["messages"] = n
    r["messages_per_second"] = round(r[count_key] / r["seconds"], 1) if r.get("seconds") else 0.0
    problems = problems_of(r, n)
    r["complete"] = not problems
    r["problem"] = "; ".join(problems)


def run_rounds(args, work, measure_bridgehead, measure_postfix, count_key, problems_of, note=None,
               measure_direct=None):
    """args.rounds rounds; in each, measure_SIDE(args, directory) runs one side after the other,
    each in its own directory below `work`. Round 1 runs Bridgehead first, round 2 Postfix first,
    and so on, so that neither side always gets the warm (or cold) caches. Each result is
    annotated (see annotate()) and printed as it comes, with note(result) after the rate.
    measure_direct, if given, is a third side run last in every round: the load tools alone
    (their ceiling), which Bridgehead's and Postfix's rates are also divided by.
    Returns the rounds, each with the results in the order run and Bridgehead's rate / Postfix's."""
    measure = {"bridgehead": measure_bridgehead, "postfix": measure_postfix, "direct": measure_direct}
    rounds = []
    for i in range(1, args.rounds + 1):
        order = ["bridgehead", "postfix"] if i % 2 == 1 else ["postfix", "bridgehead"]
        if measure_direct is not None:
            order.append("direct")
        runs = {}
        for side in order:
            d = os.path.join(work, f"round{i}-{side}")
            os.makedirs(d)
            print(f"  round {i}: {side} ...", end="", flush=True)
            r = measure[side](args, d)
            annotate(r, args.messages, count_key, problems_of)
            runs[side] = r
            print(f" {r[count_key]} {count_key} in {r['seconds']:.2f} s = "
                  f"{r['messages_per_second']:.0f} msg/s{note(r) if note else ''}"
                  f"{'' if r['complete'] else '  INCOMPLETE: ' + r['problem']}", flush=True)
        pf_rate = runs["postfix"]["messages_per_second"]
        rnd = {
            "round": i, "order": " then ".join(order),
            "runs": [runs[s] for s in order],
            "bridgehead": runs["bridgehead"], "postfix": runs["postfix"],
            "ratio": round(runs["bridgehead"]["messages_per_second"] / pf_rate, 3) if pf_rate else 0.0,
        }
        if "direct" in runs:
            direct_rate = runs["direct"]["messages_per_second"]
            rnd["direct"] = runs["direct"]
            for side in ("bridgehead", "postfix"):
                rnd[f"{side}_to_direct"] = (round(runs[side]["messages_per_second"] / direct_rate, 3)
                                            if direct_rate else 0.0)
        rounds.append(rnd)
    return rounds


def summarize(rounds, count_key, target, **extra):
    """Both sides' rates over all rounds (messages counted under count_key / seconds) and their
    ratio, then `extra` (the benchmark's own figures), then whether every run was complete."""
    bh_msgs = sum(r["bridgehead"][count_key] for r in rounds)
    bh_secs = sum(r["bridgehead"]["seconds"] for r in rounds)
    pf_msgs = sum(r["postfix"][count_key] for r in rounds)
    pf_secs = sum(r["postfix"]["seconds"] for r in rounds)
    bh_rate, pf_rate = bh_msgs / bh_secs, pf_msgs / pf_secs
    summary = {
        "bridgehead_messages_per_second": round(bh_rate, 1),
        "postfix_messages_per_second": round(pf_rate, 1),
        "ratio": round(bh_rate / pf_rate, 3) if pf_rate else 0.0,
        "ratio_per_round": [r["ratio"] for r in rounds],
        "target": target,
        "target_met": pf_rate > 0 and bh_rate / pf_rate >= target,
    }
    if all("direct" in r for r in rounds):
        d_rate = sum(r["direct"][count_key] for r in rounds) / sum(r["direct"]["seconds"] for r in rounds)
        summary["direct_messages_per_second"] = round(d_rate, 1)
        summary["bridgehead_to_direct"] = round(bh_rate / d_rate, 3) if d_rate else 0.0
        summary["postfix_to_direct"] = round(pf_rate / d_rate, 3) if d_rate else 0.0
    summary.update(extra)
    summary["all_complete"] = all(x["complete"] for r in rounds for x in r["runs"])
    return summary


def load_info(args, **extra):
    """The load of the results' JSON: smtp-source's options, then `extra`."""
    return {"sessions": args.sessions, "messages": args.messages, "size": args.size,
            "sender": SENDER, "recipient": RECIPIENT,
            "one_message_per_connection": not args.reuse_connections, **extra}


def print_heading(res, title, hdr):
    """The report's title, the machine, and the header of the table of runs."""
    print()
    print(title)
    print(f"work dir {res['machine']['workdir']} ({res['machine']['fs_type']}), "
          f"{res['machine']['nproc']} CPUs, fdatasync(4 KiB) median "
          f"{res['machine']['fdatasync']['median_ms']} ms")
    print()
    print(hdr)
    print("-" * len(hdr))


def run_note(r):
    """The note column of the table of runs."""
    return "ok" if r["complete"] else "INCOMPLETE: " + r["problem"]


def overall(s, target):
    """The start of the report's "overall:" line."""
    return (f"overall: Bridgehead {s['bridgehead_messages_per_second']:.0f} msg/s, Postfix "
            f"{s['postfix_messages_per_second']:.0f} msg/s, ratio {s['ratio']:.2f}x"
            + (f" (target >= {target:g}x: {'met' if s['target_met'] else 'NOT met'})" if target else ""))


def print_findings(res, verb):
    """The end of the report: a warning if a side did not `verb` every message, then per round
    what went wrong on a side without spoiling its count (log lines, process errors, exits)."""
    if not res["summary"]["all_complete"]:
        print(f"WARNING: at least one side did not {verb} every message; see the notes above.")
    for rnd in res["rounds"]:
        bh = rnd["bridgehead"]
        if bh.get("daemon_log", {}).get("lines"):
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


def finish(res, args, print_report):
    """Prints the report, writes the JSON (--json-out), and returns the exit status: 0, or 3
    when a side did not do every message."""
    print_report(res, args)
    write_json(res, args.json_out)
    return 0 if res["summary"]["all_complete"] else 3


def write_json(res, path):
    """Writes a benchmark's results as JSON to `path` (nothing when it is empty)."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    print(f"results written to {path}")
