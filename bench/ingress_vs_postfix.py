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
import json
import os
import shutil
import sys
import time

import benchlib  # bench/benchlib.py: what the benchmarks share
from benchlib import (RECIPIENT, SENDER, BenchError, Bridgehead, Interrupted, free_port, machine_info,
                      maillog_findings, make_workdir, postfix, proc_cpu_seconds, run_load, vm_kib)


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
        result.update(maillog_findings(pf.maillog_text()))
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
    args.smtp_source = benchlib.find_program("smtp-source")
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

    benchlib.raise_on_termination()
    try:
        work, ftype = make_workdir(args.workdir, "bridgehead-ingress-bench.", "ingress benchmark")
    except BenchError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        machine = machine_info(work, ftype)
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
