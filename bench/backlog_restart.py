#!/usr/bin/python3
"""A large backlog for a destination that is down: memory, disk, restart and drain.

    backlog_restart.py BUILD_DIR [-n 200000] [--sessions 20] [--size 4096] [--down unresponsive]
                       [--stop kill9] [--direct-messages 20000] [--json-out FILE] [--workdir DIR] [--keep]

1. Peer, same run: the load tools' own ceiling, smtp-source straight into smtp-sink
   (--direct-messages messages of the same size), which the load and drain rates are divided by.
2. Load: `smtp-source -s SESSIONS -m N -l SIZE` into Bridgehead (the ingress benchmark's
   config), whose system "notes" delivers to 127.0.0.1:DEST where the destination is down.
   Reported: load rate, the daemon's peak RSS (VmHWM), its open descriptors, and the spool's
   disk use (allocated blocks of every file below the spool directory, `du`'s figure).
3. Stop with --stop: kill9 (default: SIGKILL, a crash; nothing of a clean shutdown helps the
   restart, which is the case the 3 s target is for, and the one where recovery reads every
   segment) or term (SIGTERM; the daemon waits up to 10 s for attempts under way, which here
   never answer).
4. Restart on the same config and spool; a client polls the listener (connect every 10 ms)
   and the time from exec to the first byte of a `220` greeting is the restart time. Also: the
   time until `bridgehead status` says the ingress is running, the daemon's CPU and peak RSS of
   the recovery, and that the spool still counts N queued messages (nothing lost).
5. The destination comes back (see --down); the drain time runs from that moment to the sink's
   N-th message, then until `bridgehead status` shows the spool's queued counter at 0 and
   `bridgehead queue --json` lists nothing. Drain rate = N / (time to the N-th message).

--down says what "down" is:
  unresponsive (default): an smtp-sink listens on DEST but is stopped (SIGSTOP): the kernel
    completes each connection and nothing answers, so the `concurrency` attempts wait for the
    greeting (the delivery `timeout` is set to 1 h) and every other message stays due, never
    attempted. SIGCONT brings it back: the drain then measures delivery, not the retry schedule.
  refused: nothing listens on DEST (connection refused): each message is attempted on arrival
    and deferred for the first retry delay (--retry-delays, default the daemon's 1m,5m,...), so
    when smtp-sink comes up on DEST the drain waits for each message's retry time: it measures
    the retry schedule more than delivery (Bridgehead has no command to retry now).

Targets (issue 8): peak RSS under 200 MiB, restart under 3 s. Exit status: 0 measured, every
message delivered exactly once; 1 could not run; 2 bad usage or unsuitable work directory;
3 measured, but a message was lost, duplicated or not delivered; 130 interrupted.
"""

import argparse
import os
import socket
import sys
import time

import benchlib  # bench/benchlib.py: what the benchmarks share
from benchlib import (CPU_PER_MESSAGE, BenchError, Bridgehead, free_ports, ms_per_message, proc_cpu_seconds,
                      run_load, vm_kib)
from relay_vs_postfix import Sink, run_relay_load

MIB = 1024 * 1024
RSS_TARGET_MIB = 200
RESTART_TARGET_S = 3.0


def disk_use(path):
    """Bytes allocated (st_blocks) and apparent bytes of every file below path, and the files."""
    allocated = apparent = files = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            allocated += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return {"allocated_bytes": allocated, "apparent_bytes": apparent, "files": files}


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def first_greeting(port, proc, timeout):
    """Polls 127.0.0.1:port (a connect every 10 ms) until a 220 greeting arrives; returns the
    monotonic time of its first byte and the greeting line. Gives up after timeout seconds, or
    when the daemon exits."""
    deadline = time.monotonic() + timeout
    last = "never connected"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"bridgehead exited with status {proc.returncode} during the restart")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                data = s.recv(512)
                at = time.monotonic()
                if data.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                        s.recv(512)
                    except OSError:
                        pass
                    return at, data.split(b"\r\n")[0].decode(errors="replace")
                last = f"greeting {data[:80]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.01)
    raise BenchError(f"no 220 greeting on 127.0.0.1:{port} within {timeout:.0f} s of the restart (last: {last})")


def spool_queued(bh):
    return bh.counters()["spool"].get("queued")


def wait_spool(bh, want, timeout):
    """Waits until the spool's "queued" counter is `want` (the registry refreshes once a second)."""
    deadline = time.monotonic() + timeout
    queued = None
    while time.monotonic() < deadline:
        queued = spool_queued(bh)
        if queued == want:
            return queued, True
        time.sleep(0.5)
    return queued, False


def measure_direct(args, work):
    d = os.path.join(work, "direct")
    os.makedirs(d)
    load = argparse.Namespace(**{**vars(args), "messages": args.direct_messages})
    sink = Sink(args.smtp_sink, d)
    try:
        sink.start()
        r = run_relay_load(sink.port, load, sink)
        r["delivered"] = sink.count()
    finally:
        sink.stop()
    r["messages"] = args.direct_messages
    r["messages_per_second"] = round(r["delivered"] / r["seconds"], 1) if r["seconds"] else 0.0
    return r


def measure(args, work, machine):
    res = {"benchmark": "backlog_restart", "machine": machine,
           "load": {**benchlib.load_info(args), "down": args.down, "stop": args.stop,
                    "bridgehead_delivery_concurrency": args.concurrency,
                    "retry_delays": args.retry_delays}}
    n = args.messages
    print(f"  direct: smtp-source -> smtp-sink, {args.direct_messages} messages ...", end="", flush=True)
    direct = measure_direct(args, work)
    res["direct"] = direct
    print(f" {direct['messages_per_second']:.0f} msg/s")

    d = os.path.join(work, "bridgehead")
    os.makedirs(d)
    dest_port, = free_ports(1)
    dest = f"127.0.0.1:{dest_port}"
    sink = Sink(args.smtp_sink, d)
    bh = Bridgehead(args.bridgehead, d, written_by="bench/backlog_restart.py",
                    notes_delivery={"method": "smtp", "address": dest, "concurrency": args.concurrency,
                                    "tls": "none", "timeout": "1h"},
                    extra_toml=benchlib.toml_table("[queue]", {"retry_delays": args.retry_delays}))
    r = {}
    res["bridgehead"] = r
    spool_dir = os.path.join(d, "state", "spool")
    try:
        if args.down == "unresponsive":
            sink.start(port=dest_port)
            sink.pause()
        bh.start()
        cpu0 = proc_cpu_seconds(bh.proc.pid)
        print(f"  load: {n} messages into Bridgehead, destination {dest} down ({args.down}) ...", end="",
              flush=True)
        load = run_load(bh.port, args)
        queued, ok = wait_spool(bh, n, 60)
        cpu1 = proc_cpu_seconds(bh.proc.pid)
        r["load"] = {**load, "messages_per_second": round(n / load["seconds"], 1),
                     "to_direct": round(n / load["seconds"] / direct["messages_per_second"], 3)
                     if direct["messages_per_second"] else 0.0,
                     "spool_queued": queued, "daemon_cpu_seconds": round(cpu1 - cpu0, 2),
                     "daemon_cpu_ms_per_message": ms_per_message(cpu1 - cpu0, n),
                     "peak_rss_kib": vm_kib(bh.proc.pid, "VmHWM"), "rss_kib": vm_kib(bh.proc.pid, "VmRSS"),
                     "open_fds": open_fds(bh.proc.pid), "spool_disk": disk_use(spool_dir),
                     "spool_bytes_written": bh.counters()["spool"].get("bytes_written")}
        L = r["load"]
        print(f" {L['messages_per_second']:.0f} msg/s ({L['to_direct']:.2f}x direct); {queued} queued; peak RSS "
              f"{L['peak_rss_kib'] / 1024:.1f} MiB; spool {L['spool_disk']['allocated_bytes'] / MIB:.0f} MiB on "
              f"disk in {L['spool_disk']['files']} files; {L['open_fds']} open descriptors")
        if load["smtp_source_exit"] != 0 or not ok:
            raise BenchError(f"the load did not queue {n} messages (smtp-source exit {load['smtp_source_exit']}, "
                             f"spool queued {queued}): {load['smtp_source_output'][-300:]}")

        # Stop, then restart on the same config and spool.
        if args.stop == "kill9":
            bh.kill9()
            r["stop"] = "SIGKILL"
        else:
            t = time.monotonic()
            r["stop"] = f"SIGTERM, exit {bh.stop()} after {time.monotonic() - t:.1f} s"
        r["spool_disk_after_stop"] = disk_use(spool_dir)
        print(f"  stopped ({r['stop']}); restarting ...", end="", flush=True)
        t0 = time.monotonic()
        bh.launch()
        at, greeting = first_greeting(bh.port, bh.proc, args.restart_timeout)
        cpu_220 = proc_cpu_seconds(bh.proc.pid)
        bh.wait_running(args.restart_timeout)
        running = time.monotonic() - t0
        queued_after, ok_after = wait_spool(bh, n, 30)
        r["restart"] = {"seconds_to_220": round(at - t0, 3), "greeting": greeting,
                        "seconds_to_running": round(running, 3), "daemon_cpu_seconds_to_220": cpu_220,
                        "peak_rss_kib": vm_kib(bh.proc.pid, "VmHWM"), "rss_kib": vm_kib(bh.proc.pid, "VmRSS"),
                        "open_fds": open_fds(bh.proc.pid), "spool_queued": queued_after}
        R = r["restart"]
        print(f" first 220 after {R['seconds_to_220']:.3f} s (status running after {running:.2f} s); "
              f"{queued_after} queued; peak RSS {R['peak_rss_kib'] / 1024:.1f} MiB")
        if not ok_after:
            raise BenchError(f"after the restart the spool counts {queued_after} queued messages, not {n}")

        # The destination comes back.
        cpu_d0 = proc_cpu_seconds(bh.proc.pid)
        if args.down == "unresponsive":
            sink.resume()
        else:
            sink.start(port=dest_port)
        t_back = time.monotonic()
        print(f"  destination back on {dest}; draining ...", end="", flush=True)
        last = t_status = None
        seen, seen_at = 0, t_back
        empty_at = None
        while True:
            now = time.monotonic()
            c = sink.count()
            if c != seen:
                seen, seen_at = c, now
            if last is None and c >= n:
                last = now
            if now - (t_status or 0) >= 1.0:
                t_status = now
                if spool_queued(bh) == 0:
                    empty_at = time.monotonic()
                    break
            if now - seen_at > args.stall_timeout:
                break
            time.sleep(0.01)
        cpu_d1 = proc_cpu_seconds(bh.proc.pid)
        listed = len(bh._cli("queue", timeout=300).get("messages", [])) if empty_at else None
        time.sleep(0.3)
        delivered = sink.count()
        drain_s = (last or time.monotonic()) - t_back
        r["drain"] = {"seconds_to_last_delivery": round(drain_s, 3) if last else None,
                      "seconds_to_spool_empty": round(empty_at - t_back, 3) if empty_at else None,
                      "messages_per_second": round(delivered / drain_s, 1) if last else None,
                      "to_direct": round(delivered / drain_s / direct["messages_per_second"], 3)
                      if last and direct["messages_per_second"] else None,
                      "delivered_to_sink": delivered, "queue_listed_after": listed,
                      "daemon_cpu_seconds": round(cpu_d1 - cpu_d0, 2),
                      "daemon_cpu_ms_per_message": ms_per_message(cpu_d1 - cpu_d0, n),
                      "peak_rss_kib": vm_kib(bh.proc.pid, "VmHWM"), "open_fds": open_fds(bh.proc.pid),
                      "spool_disk": disk_use(spool_dir)}
        D = r["drain"]
        if last:
            print(f" {delivered} delivered in {drain_s:.2f} s = {D['messages_per_second']:.0f} msg/s "
                  f"({D['to_direct']:.2f}x direct); spool empty by status after {D['seconds_to_spool_empty']} s")
        else:
            print(f" gave up: {delivered} of {n} delivered, nothing new for {args.stall_timeout} s")
    finally:
        stop_rc = bh.stop()
        r["daemon_exit"] = stop_rc
        r["daemon_log"] = bh.log_findings()
        sink.stop()
    return finish(res, args)


def finish(res, args):
    n = args.messages
    r = res["bridgehead"]
    L, R, D = r["load"], r["restart"], r["drain"]
    peak = max(L["peak_rss_kib"] or 0, R["peak_rss_kib"] or 0, D["peak_rss_kib"] or 0)
    problems = []
    if D["delivered_to_sink"] != n:
        problems.append(f"the destination got {D['delivered_to_sink']} of {n} messages")
    if D["queue_listed_after"] != 0:
        problems.append(f"`bridgehead queue --json` lists {D['queue_listed_after']} afterwards")
    res["summary"] = {
        "messages": n,
        "peak_rss_mib": round(peak / 1024, 1),
        "peak_rss_target_mib": RSS_TARGET_MIB, "peak_rss_target_met": peak / 1024 < RSS_TARGET_MIB,
        "restart_seconds_to_220": R["seconds_to_220"],
        "restart_target_seconds": RESTART_TARGET_S, "restart_target_met": R["seconds_to_220"] < RESTART_TARGET_S,
        "spool_disk_mib": round(L["spool_disk"]["allocated_bytes"] / MIB, 1),
        "spool_disk_per_message_bytes": round(L["spool_disk"]["allocated_bytes"] / n),
        "load_messages_per_second": L["messages_per_second"],
        "drain_messages_per_second": D["messages_per_second"],
        "direct_messages_per_second": res["direct"]["messages_per_second"],
        "load_to_direct": L["to_direct"], "drain_to_direct": D["to_direct"],
        "drain_cpu_ms_per_message": D["daemon_cpu_ms_per_message"],
        "cpu_per_message_definition": CPU_PER_MESSAGE.replace("smtp-source starts", "the phase starts"),
        "complete": not problems, "problem": "; ".join(problems),
    }
    s = res["summary"]
    print()
    print(f"Backlog of {n} messages of {args.size} bytes for a destination that is down ({args.down}), "
          f"stopped with {r['stop']}; {res['machine']['nproc']} CPUs, {res['machine']['fs_type']}, "
          f"at the start: {res['machine']['uptime_at_start']} (a shared machine)")
    print(f"  peak RSS          {s['peak_rss_mib']:.1f} MiB (load {L['peak_rss_kib'] / 1024:.1f}, recovery "
          f"{R['peak_rss_kib'] / 1024:.1f}, drain {D['peak_rss_kib'] / 1024:.1f})   target < {RSS_TARGET_MIB} MiB: "
          f"{'met' if s['peak_rss_target_met'] else 'NOT met'}")
    print(f"  spool on disk     {s['spool_disk_mib']:.0f} MiB after the load ({s['spool_disk_per_message_bytes']} "
          f"bytes per message, {L['spool_disk']['files']} files), "
          f"{D['spool_disk']['allocated_bytes'] / MIB:.0f} MiB after the drain; open descriptors "
          f"{L['open_fds']} / {R['open_fds']} / {D['open_fds']} (load / restart / drain)")
    print(f"  restart           first 220 after {s['restart_seconds_to_220']:.3f} s   target < "
          f"{RESTART_TARGET_S:g} s: {'met' if s['restart_target_met'] else 'NOT met'}")
    print(f"  load              {s['load_messages_per_second']:.0f} msg/s = {s['load_to_direct']:.2f}x the load "
          f"tools' ceiling ({s['direct_messages_per_second']:.0f} msg/s, smtp-source -> smtp-sink, same run)")
    if s["drain_messages_per_second"]:
        print(f"  drain             {s['drain_messages_per_second']:.0f} msg/s = {s['drain_to_direct']:.2f}x the "
              f"ceiling; {s['drain_cpu_ms_per_message']} ms of daemon CPU per message")
    if not s["complete"]:
        print(f"INCOMPLETE: {s['problem']}")
    log = r.get("daemon_log", {})
    if log.get("lines"):
        print(f"bridgehead logged {log['lines']} line(s) at warn or above, e.g.:")
        for line in log["first"][:3]:
            print("    " + line[:300])
    benchlib.write_json(res, args.json_out)
    return 0 if s["complete"] else 3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", help="build directory (e.g. build/release)")
    ap.add_argument("-n", "--messages", type=int, default=200000, help="messages in the backlog")
    ap.add_argument("--sessions", type=int, default=20, help="concurrent smtp-source sessions")
    ap.add_argument("--size", type=int, default=4096, help="payload bytes per message")
    ap.add_argument("--concurrency", type=int, default=20, help="Bridgehead's delivery concurrency")
    ap.add_argument("--down", choices=["unresponsive", "refused"], default="unresponsive",
                    help="what the destination does while it is down (see the description)")
    ap.add_argument("--stop", choices=["kill9", "term"], default="kill9", help="how the daemon is stopped")
    ap.add_argument("--retry-delays", default="1m,5m,15m,30m,1h,2h,4h",
                    help="[queue] retry_delays of the daemon (matters with --down refused)")
    ap.add_argument("--direct-messages", type=int, default=20000,
                    help="messages of the load tools' ceiling (smtp-source straight into smtp-sink)")
    ap.add_argument("--json-out", help="write the results as JSON to this file")
    ap.add_argument("--workdir", default="/var/tmp", help="parent of the spool directory (must be on a disk)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, spool)")
    ap.add_argument("--load-timeout", type=int, default=0, help="seconds before smtp-source is killed")
    ap.add_argument("--restart-timeout", type=int, default=300, help="seconds to wait for the first 220")
    ap.add_argument("--stall-timeout", type=int, default=600,
                    help="seconds of the drain without a delivery before it is given up")
    args = ap.parse_args()
    args.rounds = 1
    args.reuse_connections = False

    status = benchlib.check_setup(args, "backlog", ["smtp-source", "smtp-sink"], max(600, args.messages // 50),
                                  (args.messages, args.sessions, args.concurrency, args.direct_messages),
                                  "--messages, --sessions, --concurrency and --direct-messages")
    if status is not None:
        return status
    return benchlib.run_benchmark(args, "backlog", lambda work, machine: measure(args, work, machine))


if __name__ == "__main__":
    sys.exit(main())
