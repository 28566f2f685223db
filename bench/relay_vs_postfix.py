#!/usr/bin/python3
"""End-to-end relay throughput of Bridgehead vs a stock Postfix: same load, same sink, same run.

    relay_vs_postfix.py BUILD_DIR [-n MESSAGES] [--sessions 20] [--size 4096] [--rounds 2]
                        [--concurrency 20] [--postfix-concurrency 20] [--direct] [--cpu-target-ms MS]
                        [--json-out FILE] [--workdir DIR] [--keep]

    smtp-source -> Bridgehead -> smtp-sink      versus      smtp-source -> Postfix -> smtp-sink
                                    (--direct: and smtp-source -> smtp-sink, the tools' ceiling)

With --direct every round ends with the same load sent straight into a fresh sink: the rate the
load tools reach on their own on this machine at that moment, which both sides are divided by
(large messages run at that ceiling, so there the figure that says more is CPU per message).

CPU per message (Bridgehead): benchlib.CPU_PER_MESSAGE, that is utime+stime of the daemon (all
threads, /proc/PID/stat) from just before smtp-source starts to the moment the sink has the last
message, divided by the messages. Postfix's: the CPU of all its processes over the same window.

The load is the ingress benchmark's (bench/ingress_vs_postfix.py): `smtp-source -s SESSIONS
-m MESSAGES -l SIZE -f sender@exchange.example -t rcpt@notes.example`, one message per
connection. Each side relays every message to its own `smtp-sink -c` on a free loopback port,
which throws the messages away and keeps running counters; the run ends when the sink has
received all MESSAGES messages (the last delivery). The time is from starting smtp-source
(the first connect) to that moment.

- Bridgehead (`BUILD/src/cli/bridgehead run`): the load goes to the listener of the system
  "exchange"; the system "notes" delivers with method "smtp" to the sink, `concurrency`
  connections (--concurrency, default 20; the daemon's default is 10), tls "none". Each
  message is made durable (fdatasync, group commit) before the 250 to smtp-source, and its
  delivery is recorded in the spool journal (group commit) after the sink's 250.
- Postfix (tests/support/postfix.py: a private instance with its own config and queue
  directories): relay_domains notes.example, relayhost [127.0.0.1]:SINKPORT (no DNS),
  a sender_canonical_maps table that rewrites sender@exchange.example to
  sender@notes.example (envelope and From: header), destination concurrency limit 20
  (--postfix-concurrency), no TLS, every other setting Postfix's default (fsync of each
  queue file before the 250, connection caching toward the relayhost on demand).

Differences that are not the load's: Postfix rewrites the sender through its canonical map;
Bridgehead does no address rewriting yet (that comes with a later issue), so Postfix does a
table lookup and a header rewrite per message that Bridgehead does not. Postfix logs seven
lines per message (through postlogd); Bridgehead at log_level "warn" logs nothing per message.

Round 1 runs Bridgehead first, round 2 Postfix first, and so on alternately. Each side starts
on an empty spool/queue with a fresh sink and is stopped after its measurement. Afterwards the
script checks that the sink counted exactly MESSAGES messages, that smtp-source succeeded, and
that the side's queue is empty (Bridgehead: the "delivered" counter of deliver:notes, the
spool's counters and `bridgehead queue --json`; Postfix: "status=sent" lines in its maillog and
its queue directories); a side that did not is reported as INCOMPLETE and the exit status is 3.
Bridgehead's peak RSS (VmHWM) is read before `bridgehead queue --json`.

Exit status: 0 all measured and verified; 1 a side could not run (the reason is printed);
2 bad usage or unsuitable machine (e.g. the work directory is on tmpfs, where fsync is free);
3 measured, but a side did not deliver every message; 130 interrupted.
"""

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import benchlib  # bench/benchlib.py: what the benchmarks share
from benchlib import (CPU_PER_MESSAGE, SENDER, BenchError, Bridgehead, LoadMeter, finish, free_port, load_info,
                      load_problems, maillog_findings, ms_per_message, overall, postfix, print_findings,
                      print_heading, proc_cpu_seconds, run_note, run_rounds, smtp_source_argv, summarize,
                      vm_kib)

REWRITTEN_SENDER = "sender@notes.example"  # what Postfix's canonical map makes of SENDER
POLL_SECONDS = 0.01  # how often the sink's counter is read during a run


# ---- the sink --------------------------------------------------------------------------------

class Sink:
    """`smtp-sink -c` on a free loopback port. -c makes it write its running counters
    ("\\rsess=N quit=N mesg=N", updated when a session ends, at QUIT and at each ".") to its
    stdout, here a file: count() reads the last one. It keeps nothing of the messages, so it
    does no disk I/O; it is one process that handles every connection (at most 256 at once)."""

    def __init__(self, program, workdir):
        self.program = program
        self.out_path = os.path.join(workdir, "smtp-sink.counters")
        self.err_path = os.path.join(workdir, "smtp-sink.stderr")
        self.proc = None
        self.port = None
        self.fd = None
        self.argv = None

    def start(self, timeout=10.0, port=None):
        """Starts the sink on `port`, or on a free port (tried up to five times) when None."""
        last = None
        fixed = port
        for _ in range(1 if fixed else 5):
            port = fixed or free_port()
            argv = [self.program, "-c"]
            if os.geteuid() == 0:
                argv += ["-u", "nobody"]  # required as root: it drops to this user after bind()
            argv += [f"127.0.0.1:{port}", "1000"]
            with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                             start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    # A probe connection counts as a session ("sess"), not as a message.
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                        s.settimeout(5)
                        if s.recv(512).startswith(b"220"):
                            s.sendall(b"QUIT\r\n")
                            s.recv(512)
                            self.port, self.argv = port, argv
                            self.fd = os.open(self.out_path, os.O_RDONLY)
                            return self
                except OSError as e:
                    last = e
                time.sleep(0.05)
            last = f"{last}; {self.stderr()}"
            self.stop()
        raise BenchError(f"smtp-sink did not start ({' '.join(argv)}): {last}")

    def stderr(self):
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read().strip()[-500:]
        except OSError:
            return ""

    def counters(self):
        """The sink's counters so far: sessions ("sess", the probe of start() included),
        QUIT commands ("quit") and messages ("mesg", the "." of each counted once)."""
        size = os.fstat(self.fd).st_size
        tail = os.pread(self.fd, 160, max(0, size - 160))
        # The last record may be half written; the one before it is complete.
        records = re.findall(rb"sess=(\d+) quit=(\d+) mesg=(\d+)", tail)[-2:]
        names = ("sess", "quit", "mesg")
        return {k: max((int(r[i]) for r in records), default=0) for i, k in enumerate(names)}

    def count(self):
        """Messages received so far."""
        return self.counters()["mesg"]

    def cpu_seconds(self):
        return proc_cpu_seconds(self.proc.pid) if self.proc is not None else None

    def pause(self):
        """SIGSTOP: the kernel still completes connections into the listen backlog, but nothing
        answers them (a destination that is down behind a live TCP stack)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.resume()  # a stopped process keeps a SIGTERM pending until it runs again
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ---- the load --------------------------------------------------------------------------------

def run_relay_load(port, args, sink):
    """Runs smtp-source against 127.0.0.1:port and waits until the sink has all the messages.

    Returns the time to the last delivery ("seconds"), the time smtp-source took, and what it
    said. Gives up when smtp-source has exited and the sink's count has not moved for
    --stall-timeout seconds, or after --load-timeout seconds in all."""
    argv = smtp_source_argv(args, port)
    meter = LoadMeter()
    out = tempfile.TemporaryFile()
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        return _follow_relay_load(args, sink, argv, meter, out, t0, proc)
    finally:
        if proc.poll() is None:  # interrupted (Ctrl-C, SIGTERM) or failed: stop the load too
            proc.kill()
            proc.wait()
        out.close()


def _follow_relay_load(args, sink, argv, meter, out, t0, proc):
    rc = source_seconds = first = last = None
    seen, seen_at = 0, t0
    gave_up = None
    while True:
        now = time.monotonic()
        if rc is None and proc.poll() is not None:
            rc, source_seconds = proc.returncode, now - t0
        n = sink.count()
        if n != seen:
            seen, seen_at = n, now
            if first is None:
                first = now - t0
            if last is None and n >= args.messages:
                last = now - t0
        if last is not None and rc is not None:
            break
        if now - t0 > args.load_timeout:
            gave_up = f"not done after {args.load_timeout} s"
            break
        if rc is not None and now - seen_at > args.stall_timeout:
            gave_up = (f"smtp-source done, but the sink got no message for {args.stall_timeout} s "
                       f"({n} of {args.messages} received)")
            break
        time.sleep(POLL_SECONDS)
    end = time.monotonic() - t0
    meter.machine_done()
    if rc is None:
        proc.kill()
        proc.wait()
        rc = "killed"
        source_seconds = end
    out.seek(0)
    said = out.read().decode(errors="replace").strip()
    return {
        "command": " ".join(argv),
        "seconds": last if last is not None else end,
        "smtp_source_seconds": round(source_seconds, 3),
        "first_delivery_seconds": round(first, 3) if first is not None else None,
        "gave_up": gave_up,
        **meter.result(rc, said),
    }


def thread_times(pid):
    """Per thread of a process, from /proc/PID/task/TID/schedstat: {"TID NAME": (seconds on a
    CPU, seconds runnable but waiting for a CPU)}. Bridgehead's main thread runs its event
    loop (every session, the queue manager); the spool has a writer thread."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                on_cpu, waiting = (int(x) / 1e9 for x in f.read().split()[:2])
        except (OSError, ValueError):
            continue
        out[f"{tid} {name}{' (main)' if tid == str(pid) else ''}"] = (on_cpu, waiting)
    return out


def thread_deltas(before, after):
    """{"TID NAME": {"cpu_seconds", "runqueue_wait_seconds"}} for the threads that ran."""
    out = {}
    for k, (cpu, wait) in after.items():
        cpu0, wait0 = before.get(k, (0.0, 0.0))
        if cpu - cpu0 >= 0.01:
            out[k] = {"cpu_seconds": round(cpu - cpu0, 2), "runqueue_wait_seconds": round(wait - wait0, 2)}
    return out


@contextlib.contextmanager
def sink_for(args, workdir, result):
    """A started Sink for one side. Once the side is stopped (the sink counts a session when
    it ends), the connections the side made to it go into result["sink_sessions"]."""
    sink = Sink(args.smtp_sink, workdir)
    try:
        sink.start()
        yield sink
    finally:
        if sink.fd is not None:
            time.sleep(0.3)
            result["sink_sessions"] = sink.counters()["sess"] - 1  # less the probe of start()
        sink.stop()


# ---- the sides -------------------------------------------------------------------------------

def measure_bridgehead(args, workdir):
    result = {"side": "bridgehead"}
    with sink_for(args, workdir, result) as sink:
        bh = Bridgehead(args.bridgehead, workdir, written_by="bench/relay_vs_postfix.py", notes_delivery={
            "method": "smtp", "address": f"127.0.0.1:{sink.port}", "concurrency": args.concurrency,
            "tls": "none"})
        try:
            bh.start()
            before = bh.counters()
            rss_idle = vm_kib(bh.proc.pid, "VmRSS")
            cpu0 = proc_cpu_seconds(bh.proc.pid)
            threads0 = thread_times(bh.proc.pid)
            sink_cpu0 = sink.cpu_seconds()
            result.update(run_relay_load(bh.port, args, sink))
            cpu1 = proc_cpu_seconds(bh.proc.pid)
            threads1 = thread_times(bh.proc.pid)
            sink_cpu1 = sink.cpu_seconds()
            # The delivery is recorded (and the message finished) in the spool journal after the
            # sink's 250, and the registry refreshes its counters once a second: wait for both.
            deadline = time.monotonic() + 30
            while True:
                after = bh.counters()
                delivered = after["deliver"].get("delivered", 0) - before["deliver"].get("delivered", 0)
                if (delivered >= args.messages and after["spool"].get("queued", 0) == 0) \
                        or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            cpu_settled = proc_cpu_seconds(bh.proc.pid)
            memory, queue_listed = bh.memory_and_queue_length()
            sp0, sp1 = before["spool"], after["spool"]
            commits = sp1.get("commits", 0) - sp0.get("commits", 0)
            syncs = sp1.get("fsync_batches", 0) - sp0.get("fsync_batches", 0)
            seconds = result["seconds"]
            result.update({
                "delivered": sink.count(),
                "daemon_delivered": delivered,
                "deliver_counters": {k: v - before["deliver"].get(k, 0) for k, v in after["deliver"].items()},
                "queue_listed": queue_listed,
                "spool_queued_after": sp1.get("queued"),
                "spool_commits": commits,
                "spool_fsync_batches": syncs,
                "spool_commit_batches": sp1.get("commit_batches", 0) - sp0.get("commit_batches", 0),
                "fsync_batches_per_message": round(syncs / args.messages, 2),
                **bh.load_figures(before, after, cpu0, cpu1),
                "daemon_cpu_percent_of_wall": round(100 * (cpu1 - cpu0) / seconds, 1) if seconds else None,
                "daemon_cpu_ms_per_message": ms_per_message(cpu1 - cpu0, args.messages),
                # Until the counters showed every delivery recorded (the journal's FINISHED
                # records after the last 250 and up to 0.5 s of the daemon idling) and since start.
                "daemon_cpu_seconds_until_recorded": round(cpu_settled - cpu0, 2),
                "daemon_cpu_seconds_since_start": round(cpu_settled, 2),
                "daemon_threads": thread_deltas(threads0, threads1),
                "sink_cpu_seconds": round(sink_cpu1 - sink_cpu0, 2) if sink_cpu0 is not None else None,
                **memory,
                "peak_rss_after_queue_listing_kib": vm_kib(bh.proc.pid, "VmHWM"),
                "rss_idle_kib": rss_idle,
            })
        finally:
            result["daemon_exit"] = bh.stop()
            result["daemon_log"] = bh.log_findings()
            result["log_path"] = bh.log_path
    return result


def postfix_settings(args, sink_port, canonical):
    return {
        "defer_transports": "",  # deliver (the instance's default holds every delivery)
        "relayhost": f"[127.0.0.1]:{sink_port}",  # brackets: no MX lookup
        "smtp_dns_support_level": "disabled",
        "smtp_tls_security_level": "none",
        "sender_canonical_maps": f"texthash:{canonical}",  # texthash: no postmap needed
        "default_destination_concurrency_limit": args.postfix_concurrency,
        "smtp_destination_concurrency_limit": args.postfix_concurrency,
        "relay_destination_concurrency_limit": args.postfix_concurrency,  # relay_domains use "relay"
    }


def measure_postfix(args, workdir):
    result = {"side": "postfix"}
    with sink_for(args, workdir, result) as sink:
        canonical = os.path.join(workdir, "sender_canonical")
        with open(canonical, "w") as f:
            f.write(f"{SENDER} {REWRITTEN_SENDER}\n")
        os.chmod(canonical, 0o644)
        port = free_port()
        settings = postfix_settings(args, sink.port, canonical)
        pf = postfix.PostfixInstance(workdir, port, extra_main_cf=settings)
        try:
            try:
                pf.start()
            except postfix.PostfixError as e:
                raise BenchError(f"Postfix could not be started: {e}") from e
            cpu0 = pf.cpu_seconds()
            sink_cpu0 = sink.cpu_seconds()
            result.update(run_relay_load(port, args, sink))
            cpu1 = pf.cpu_seconds()
            sink_cpu1 = sink.cpu_seconds()
            # The queue manager removes a queue file after the delivery; postlogd writes the log
            # a moment later. Wait for both.
            deadline = time.monotonic() + 60
            while True:
                queued = pf.queue_count(settle=0)
                log = pf.maillog_text()
                sent = log.count(" status=sent ")
                if (queued == 0 and sent >= args.messages) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            relay = f" relay=127.0.0.1[127.0.0.1]:{sink.port},"
            seconds = result["seconds"]
            result.update({
                "delivered": sink.count(),
                "maillog_sent": sent,
                "maillog_sent_to_sink": sum(1 for line in log.splitlines()
                                            if " status=sent " in line and relay in line),
                "maillog_deferred": log.count(" status=deferred "),
                "maillog_bounced": log.count(" status=bounced "),
                "maillog_sender_rewritten": log.count(f" from=<{REWRITTEN_SENDER}>"),
                "queue_left": queued,
                "postfix_cpu_seconds": round(cpu1 - cpu0, 2),
                "postfix_cpu_percent_of_wall": round(100 * (cpu1 - cpu0) / seconds, 1) if seconds else None,
                "postfix_cpu_ms_per_message": ms_per_message(cpu1 - cpu0, args.messages),
                "sink_cpu_seconds": round(sink_cpu1 - sink_cpu0, 2) if sink_cpu0 is not None else None,
                "main_cf": {k: str(v) for k, v in settings.items()},
            })
            result.update(maillog_findings(log))
        finally:
            pf.stop()
            result["log_path"] = pf.maillog
    return result


def measure_direct(args, workdir):
    """The load tools' own ceiling: the same smtp-source load straight into a sink, no relay."""
    result = {"side": "direct"}
    with sink_for(args, workdir, result) as sink:
        sink_cpu0 = sink.cpu_seconds()
        result.update(run_relay_load(sink.port, args, sink))
        sink_cpu1 = sink.cpu_seconds()
        result["delivered"] = sink.count()
        result["sink_cpu_seconds"] = round(sink_cpu1 - sink_cpu0, 2) if sink_cpu0 is not None else None
    return result


# ---- report ----------------------------------------------------------------------------------

DIFFERENCES = (
    "Postfix rewrites the sender (sender_canonical_maps: sender@exchange.example -> "
    "sender@notes.example, in the envelope and the From: header); Bridgehead does no address "
    "rewriting yet (a later issue), so Postfix does that extra work per message. Postfix also "
    "logs seven lines per message; Bridgehead at log_level \"warn\" logs none.")


def problems_of(r, n):
    """What a side's result shows it did not do (empty when it relayed every message)."""
    problems = load_problems(r)
    if r.get("delivered") != n:
        problems.append(f"the sink got {r.get('delivered')} of {n}")
    if r["side"] == "direct":
        return problems
    if r["side"] == "bridgehead":
        if r.get("spool_commits") != n:
            problems.append(f"{r.get('spool_commits')} spool commits")
        if r.get("daemon_delivered") != n:
            problems.append(f"deliver:notes counted {r.get('daemon_delivered')} delivered")
        if r.get("queue_listed") != 0:
            problems.append(f"`bridgehead queue` still lists {r.get('queue_listed')}")
    else:
        if r.get("maillog_sent_to_sink") != n:
            problems.append(f"{r.get('maillog_sent_to_sink')} status=sent to the sink in the maillog")
        if r.get("queue_left") != 0:
            problems.append(f"{r.get('queue_left')} left in the queue")
        if r.get("maillog_sender_rewritten") != n:
            problems.append(f"sender rewritten {r.get('maillog_sender_rewritten')} times")
    return problems


def print_report(res, args):
    n = args.messages
    print_heading(
        res,
        f"Relay throughput: smtp-source -> side -> smtp-sink, {args.sessions} concurrent smtp-source "
        f"sessions, {n} messages of {args.size} bytes, one recipient, one message per connection"
        f"{' (connections reused, -d)' if args.reuse_connections else ''}; Bridgehead delivers over "
        f"{args.concurrency} connections, Postfix over up to {args.postfix_concurrency}",
        f"{'round':>5}  {'side':<10} {'messages':>8} {'received':>8} {'source s':>8} {'seconds':>8} "
        f"{'msg/s':>8}  {'side cpu':>8} {'ms/msg':>8} {'cpu busy':>8} {'load':>5}  note")
    for rnd in res["rounds"]:
        for r in rnd["runs"]:
            cpu = {"bridgehead": r.get("daemon_cpu_seconds"), "postfix": r.get("postfix_cpu_seconds")}.get(
                r["side"], r.get("sink_cpu_seconds"))
            per = {"bridgehead": r.get("daemon_cpu_ms_per_message"),
                   "postfix": r.get("postfix_cpu_ms_per_message")}.get(r["side"])
            print(f"{rnd['round']:>5}  {r['side']:<10} {n:>8} {r['delivered']:>8} "
                  f"{r['smtp_source_seconds']:>8.2f} {r['seconds']:>8.2f} {r['messages_per_second']:>8.0f}  "
                  f"{cpu if cpu is not None else '?':>7}s {per if per is not None else '-':>8} "
                  f"{r['machine_cpu_busy_percent']:>7.0f}% {r['loadavg_1min_before']:>5.1f}  {run_note(r)}")
    print("(received: messages the sink got; source s: until smtp-source exited; seconds: until the "
          "sink had the last message, the rate's time; side cpu: CPU seconds of the daemon, or of "
          "all Postfix processes (direct: of the sink); ms/msg: side cpu / messages, for Bridgehead "
          f"{CPU_PER_MESSAGE}; cpu busy: share of both CPUs in use, everything on the machine "
          "counted; load: 1-minute load average before the run. The machine is shared with other "
          "engineers' builds: compare figures of the same run.)")
    print()
    for rnd in res["rounds"]:
        bh, pf = rnd["bridgehead"], rnd["postfix"]
        threads = ", ".join(
            f"{'event loop' if k.endswith('(main)') else 'thread ' + k.split()[0]} {v['cpu_seconds']} s "
            f"on a CPU + {v['runqueue_wait_seconds']} s waiting for one"
            for k, v in sorted(bh.get("daemon_threads", {}).items(), key=lambda kv: -kv[1]["cpu_seconds"]))
        to_direct = (f"; Bridgehead/direct = {rnd['bridgehead_to_direct']:.2f}x, Postfix/direct = "
                     f"{rnd['postfix_to_direct']:.2f}x" if "direct" in rnd else "")
        print(f"round {rnd['round']} ({rnd['order']}): Bridgehead/Postfix = {rnd['ratio']:.2f}x{to_direct}")
        print(f"    Bridgehead: peak RSS {bh.get('peak_rss_kib')} KiB (idle {bh.get('rss_idle_kib')} KiB); "
              f"CPU {bh.get('daemon_cpu_seconds')} s = {bh.get('daemon_cpu_percent_of_wall')}% of the wall "
              f"time ({threads}); {bh.get('spool_fsync_batches')} fsync batches; "
              f"{bh.get('sink_sessions')} connections to the sink; sink CPU {bh.get('sink_cpu_seconds')} s")
        print(f"    Postfix: CPU {pf.get('postfix_cpu_seconds')} s = "
              f"{pf.get('postfix_cpu_percent_of_wall')}% of "
              f"the wall time (all its processes); {pf.get('sink_sessions')} connections to the sink; "
              f"sink CPU {pf.get('sink_cpu_seconds')} s")
    s = res["summary"]
    print()
    print(f"{overall(s, args.target)}; Bridgehead peak RSS (VmHWM) {s['bridgehead_peak_rss_kib']} KiB")
    if "direct_messages_per_second" in s:
        print(f"load tools' ceiling (smtp-source -> smtp-sink, same run): {s['direct_messages_per_second']:.0f} "
              f"msg/s; Bridgehead {s['bridgehead_to_direct']:.2f}x of it, Postfix {s['postfix_to_direct']:.2f}x")
    target = (f" (target < {args.cpu_target_ms:g} ms: {'met' if s['bridgehead_cpu_target_met'] else 'NOT met'})"
              if args.cpu_target_ms else "")
    print(f"CPU per message: Bridgehead {s['bridgehead_cpu_ms_per_message']} ms{target}, Postfix "
          f"{s['postfix_cpu_ms_per_message']} ms (all its processes); Bridgehead = {CPU_PER_MESSAGE}")
    print(f"differences between the sides: {DIFFERENCES}")
    print_findings(res, "deliver")


def measure(args, work, machine):
    """The rounds, the report and the JSON; returns the exit status."""
    rounds = run_rounds(args, work, measure_bridgehead, measure_postfix, "delivered", problems_of,
                        note=lambda r: f" (smtp-source done after {r['smtp_source_seconds']:.2f} s)",
                        measure_direct=measure_direct if args.direct else None)
    peaks = [r["bridgehead"].get("peak_rss_kib") for r in rounds if r["bridgehead"].get("peak_rss_kib")]
    n_all = args.messages * len(rounds)
    bh_cpu = [r["bridgehead"].get("daemon_cpu_seconds") for r in rounds]
    pf_cpu = [r["postfix"].get("postfix_cpu_seconds") for r in rounds]
    bh_ms = ms_per_message(sum(bh_cpu), n_all) if None not in bh_cpu else None
    summary = summarize(rounds, "delivered", args.target,
                        bridgehead_peak_rss_kib=max(peaks) if peaks else None,
                        bridgehead_cpu_ms_per_message=bh_ms,
                        bridgehead_cpu_ms_per_message_per_round=[r["bridgehead"].get("daemon_cpu_ms_per_message")
                                                                 for r in rounds],
                        postfix_cpu_ms_per_message=ms_per_message(sum(pf_cpu), n_all) if None not in pf_cpu else None,
                        cpu_per_message_definition=CPU_PER_MESSAGE,
                        bridgehead_cpu_target_ms=args.cpu_target_ms or None,
                        bridgehead_cpu_target_met=(bh_ms is not None and bh_ms < args.cpu_target_ms)
                        if args.cpu_target_ms else None)
    summary["differences"] = DIFFERENCES
    res = {
        "benchmark": "relay_vs_postfix",
        "load": load_info(args, bridgehead_delivery_concurrency=args.concurrency,
                          postfix_destination_concurrency_limit=args.postfix_concurrency),
        "machine": machine, "rounds": rounds, "summary": summary,
    }
    return finish(res, args, print_report)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", help="build directory (e.g. build/release)")
    ap.add_argument("-n", "--messages", type=int, default=int(os.environ.get("BENCH_MESSAGES", 20000)),
                    help="messages per side and round (default: $BENCH_MESSAGES or 20000)")
    ap.add_argument("--sessions", type=int, default=20, help="concurrent smtp-source sessions")
    ap.add_argument("--size", type=int, default=4096, help="payload bytes per message")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; the order alternates")
    ap.add_argument("--concurrency", type=int, default=20,
                    help="Bridgehead's delivery concurrency to the sink (the daemon's default is 10)")
    ap.add_argument("--postfix-concurrency", type=int, default=20,
                    help="Postfix's destination concurrency limit toward the sink")
    ap.add_argument("--reuse-connections", action="store_true",
                    help="smtp-source -d: several messages per connection (default: one per connection)")
    ap.add_argument("--target", type=float, default=4.0, help="ratio to report as met or not")
    ap.add_argument("--direct", action="store_true",
                    help="also run the load straight into a sink in every round: the load tools' ceiling")
    ap.add_argument("--cpu-target-ms", type=float, default=0.0,
                    help="Bridgehead's CPU per message to report as met or not (0: none)")
    ap.add_argument("--json-out", help="write the results as JSON to this file")
    ap.add_argument("--workdir", default="/var/tmp",
                    help="parent of the temporary spool and queue directories (must be on a real disk)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, spools)")
    ap.add_argument("--load-timeout", type=int, default=0, help="seconds before a run is given up")
    ap.add_argument("--stall-timeout", type=int, default=60,
                    help="seconds without a delivery, after smtp-source is done, before a run is given up")
    args = ap.parse_args()

    status = benchlib.check_setup(
        args, "relay", ["smtp-source", "smtp-sink"], max(600, args.messages // 10),
        (args.messages, args.sessions, args.rounds, args.concurrency, args.postfix_concurrency),
        "--messages, --sessions, --rounds and the concurrencies")
    if status is not None:
        return status
    return benchlib.run_benchmark(args, "relay", lambda work, machine: measure(args, work, machine))


if __name__ == "__main__":
    sys.exit(main())
