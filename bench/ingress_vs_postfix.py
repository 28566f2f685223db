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
import sys
import time

import benchlib  # bench/benchlib.py: what the benchmarks share
from benchlib import (BenchError, Bridgehead, finish, free_port, load_info, load_problems, maillog_findings,
                      ms_per_message, overall, postfix, print_findings, print_heading, proc_cpu_seconds, run_load,
                      run_note, run_rounds, summarize, vm_kib)


def measure_bridgehead(args, workdir):
    # notes delivers to a port where nothing listens: mail stays queued.
    bh = Bridgehead(args.bridgehead, workdir, written_by="bench/ingress_vs_postfix.py")
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
        memory, queue_listed = bh.memory_and_queue_length()
        sp0, sp1 = before["spool"], after["spool"]
        commits = sp1.get("commits", 0) - sp0.get("commits", 0)
        syncs = sp1.get("fsync_batches", 0) - sp0.get("fsync_batches", 0)
        result.update({
            "queued": sp1.get("queued", 0) - sp0.get("queued", 0),
            "queue_listed": queue_listed,
            "spool_commits": commits,
            "spool_fsync_batches": syncs,
            "commits_per_fsync": round(commits / syncs, 2) if syncs else None,
            **bh.load_figures(before, after, cpu0, cpu1),
            "daemon_cpu_ms_per_message": ms_per_message(cpu1 - cpu0 if cpu0 is not None and cpu1 is not None
                                                        else None, args.messages),
            **memory,
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
        result.update(maillog_findings(pf.maillog_text()))
    finally:
        pf.stop()
        result["log_path"] = pf.maillog
    return result


# ---- report ----------------------------------------------------------------------------------

def problems_of(r, n):
    """What a side's result shows it did not do (empty when it queued every message)."""
    problems = load_problems(r)
    if r.get("queued") != n:
        problems.append(f"{r.get('queued')} of {n} queued")
    if r["side"] == "bridgehead":
        if r.get("spool_commits") != n:
            problems.append(f"{r.get('spool_commits')} spool commits")
        if r.get("queue_listed") != n:
            problems.append(f"`bridgehead queue` lists {r.get('queue_listed')}")
    return problems


def print_report(res, args):
    n = args.messages
    print_heading(
        res,
        f"Ingress throughput: {args.sessions} concurrent smtp-source sessions, {n} messages of "
        f"{args.size} bytes, one recipient, one message per connection"
        f"{' (connections reused, -d)' if args.reuse_connections else ''}",
        f"{'round':>5}  {'side':<10} {'messages':>8} {'queued':>8} {'seconds':>8} {'msg/s':>8}  "
        f"{'cpu busy':>8} {'load':>5}  note")
    for rnd in res["rounds"]:
        for r in rnd["runs"]:
            print(f"{rnd['round']:>5}  {r['side']:<10} {n:>8} {r['queued']:>8} {r['seconds']:>8.2f} "
                  f"{r['messages_per_second']:>8.0f}  {r['machine_cpu_busy_percent']:>7.0f}% "
                  f"{r['loadavg_1min_before']:>5.1f}  {run_note(r)}")
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
              f"daemon CPU {bh.get('daemon_cpu_seconds')} s ({bh.get('daemon_cpu_ms_per_message')} ms per "
              f"message, until the counters showed every commit)")
    print()
    print(overall(res["summary"], args.target))
    print_findings(res, "queue")


def measure(args, work, machine):
    """The rounds, the report and the JSON; returns the exit status."""
    rounds = run_rounds(args, work, measure_bridgehead, measure_postfix, "queued", problems_of)
    res = {
        "benchmark": "ingress_vs_postfix",
        "load": load_info(args),
        "machine": machine, "rounds": rounds, "summary": summarize(rounds, "queued", args.target),
    }
    return finish(res, args, print_report)


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

    status = benchlib.check_setup(args, "ingress", ["smtp-source"], max(300, args.messages // 20),
                                  (args.messages, args.sessions, args.rounds),
                                  "--messages, --sessions and --rounds")
    if status is not None:
        return status
    return benchlib.run_benchmark(args, "ingress", lambda work, machine: measure(args, work, machine))

if __name__ == "__main__":
    sys.exit(main())
