#!/usr/bin/env python3
"""Directory synchronization end to end (issue 10): N Domino persons in a Domino-shaped slapd
and N Exchange users in an AD-shaped one (both loaded with slapadd, both with syncprov and a
session log, dbnosync), then, with the real `bridgehead`:

  1. `bridgehead dirsync run --full`: the initial sync both ways (2N contacts written);
  2. `bridgehead dirsync run`: a no-change incremental run (RFC 4533 refresh from the cookie);
  3. `bridgehead dirsync run --full` again: a no-change full read of both directories;
  4. the daemon started on the same state: its peak RSS (VmHWM) once it has loaded the 2N
     recipients' address book and made its first (no-change) run.

    python3 bench/dirsync_run_bench.py build/release [--n 100000] [--json-out FILE]

Prints the times, the rates, and the peak RSS. Exit 1 when a run failed or wrote the wrong
number of contacts (the reason is printed)."""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))
import slapd  # noqa: E402

NOTES_PEOPLE = "ou=Sales,o=Acme"
NOTES_CONTACTS = "ou=Exchange Contacts,o=Acme"
AD_PEOPLE = "ou=People,dc=acme,dc=example"
AD_CONTACTS = "ou=Notes Contacts,dc=acme,dc=example"


def ou(dn):
    return f"dn: {dn}\nobjectClass: organizationalUnit\nou: {dn.split(',')[0].split('=', 1)[1]}\n\n"


def persons(n):
    out = [ou(NOTES_PEOPLE), ou(NOTES_CONTACTS)]
    for i in range(n):
        cn = f"Person{i:06d} Notes"
        out.append(f"dn: cn={cn},{NOTES_PEOPLE}\nobjectClass: top\nobjectClass: person\n"
                   f"objectClass: organizationalPerson\nobjectClass: inetOrgPerson\nobjectClass: dominoPerson\n"
                   f"cn: {cn}\nsn: Notes\ngivenName: Person{i:06d}\nuid: p{i:06d}\nmail: p{i:06d}@notes.example\n"
                   f"fullName: CN={cn}/OU=Sales/O=Acme\ndominoUNID: {0xB0000000 + i:032X}\n\n")
    return "".join(out)


def users(n):
    out = [ou(AD_PEOPLE), ou(AD_CONTACTS)]
    for i in range(n):
        cn = f"User{i:06d} Exchange"
        guid = uuid.UUID(int=0x7E0000000000400080000000000000 + i).bytes_le
        out.append(slapd.ad_user_ldif(f"cn={cn},{AD_PEOPLE}", cn, mail=f"u{i:06d}@exchange.example",
                                      proxy_addresses=[f"SMTP:u{i:06d}@exchange.example"], object_guid=guid,
                                      extra={"mailNickname": f"u{i:06d}", "displayName": cn,
                                             "legacyExchangeDN": f"/o=Acme/cn=Recipients/cn=u{i:06d}"}))
    return "".join(out)


def toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml(x) for x in v) + "]"
    return json.dumps(str(v))


def free_ports(n):
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def service_account():
    import pwd
    if os.geteuid() != 0:
        return None
    try:
        p = pwd.getpwnam("bridgehead")
        return p.pw_uid, p.pw_gid
    except KeyError:
        sys.exit("dirsync_run_bench: running as root needs the service user 'bridgehead' "
                 "(scripts/install-deps creates it)")


def write_config(work, notes, ad, account):
    state = os.path.join(work, "state")
    os.makedirs(state, exist_ok=True)
    pw = {}
    for name, ds in (("notes", notes), ("exchange", ad)):
        pw[name] = os.path.join(work, name + ".password")
        with open(pw[name], "w") as f:
            f.write(ds.service_password + "\n")
        os.chmod(pw[name], 0o600)
        if account:
            os.chown(pw[name], *account)
    ex, no, dead = free_ports(3)
    lines = ["[connector]", 'hostname = "bench.test"', f"state_dir = {toml(state)}"]
    if account:
        lines.append('user = "bridgehead"')
    lines += ['log_level = "warn"', ""]
    for name, kind, domain, port, ds, people, contacts in (
            ("exchange", "exchange", "exchange.example", ex, ad, AD_PEOPLE, AD_CONTACTS),
            ("notes", "domino", "notes.example", no, notes, NOTES_PEOPLE, NOTES_CONTACTS)):
        lines += ["[[system]]", f'name = "{name}"', f'kind = "{kind}"', f"domains = [{toml(domain)}]",
                  f'listen = "127.0.0.1:{port}"', "", "[system.delivery]", 'method = "smtp"',
                  f'address = "127.0.0.1:{dead}"', "", "[system.directory]", f"uri = {toml(ds.uri)}",
                  'bind = "simple"', f"bind_dn = {toml(ds.service_dn)}", f"password_file = {toml(pw[name])}",
                  f"base = {toml(ds.base)}", f"include = {toml([people])}",
                  f"contacts_container = {toml(contacts)}", ""]
    lines += ["[dirsync]", 'notes_domain = "AcmeNotes"', 'interval = "1h"', "max_deletes = 1000000",
              "max_delete_percent = 100", ""]
    cfg = os.path.join(work, "bridgehead.toml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines))
    return cfg, state


def timed_run(bridgehead, cfg, *args):
    t0 = time.monotonic()
    r = subprocess.run([bridgehead, "dirsync", "run", *args, "--json", "-c", cfg], capture_output=True, text=True,
                       timeout=7200)
    elapsed = time.monotonic() - t0
    try:
        answer = json.loads(r.stdout)
    except ValueError:
        sys.exit(f"dirsync_run_bench: `dirsync run {' '.join(args)}` printed no JSON (exit {r.returncode}): "
                 f"{r.stdout[-2000:]} {r.stderr[-2000:]}")
    return elapsed, answer


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--n", type=int, default=100000, help="persons and users each (default 100000)")
    ap.add_argument("--workdir", default=os.environ.get("BENCH_WORKDIR", "/var/tmp"))
    ap.add_argument("--json-out")
    args = ap.parse_args(argv)
    bridgehead = os.path.join(os.path.abspath(args.build), "src", "cli", "bridgehead")
    if not os.access(bridgehead, os.X_OK):
        sys.exit(f"dirsync_run_bench: no {bridgehead}: build first")
    account = service_account()
    work = tempfile.mkdtemp(prefix="bh-dirsync-run-", dir=args.workdir)
    os.chmod(work, 0o755)
    started = []
    daemon = None

    def stop(*_):
        if daemon and daemon.poll() is None:
            daemon.terminate()
        for ds in started:
            ds.stop()
        shutil.rmtree(work, ignore_errors=True)
        sys.exit(130)

    signal.signal(signal.SIGTERM, stop)
    try:
        t0 = time.monotonic()
        notes = slapd.Slapd(os.path.join(work, "notes"), profile="domino", dbnosync=True, sessionlog=10000,
                            initial_ldif=persons(args.n), start_timeout=600)
        started.append(notes)
        notes.start()
        ad = slapd.Slapd(os.path.join(work, "ad"), profile="ad", dbnosync=True, sessionlog=10000,
                         initial_ldif=users(args.n), start_timeout=600)
        started.append(ad)
        ad.start()
        print(f"dirsync_run_bench: {args.n} Domino persons and {args.n} AD users loaded with slapadd in "
              f"{time.monotonic() - t0:.1f} s", flush=True)
        cfg, state = write_config(work, notes, ad, account)

        full_s, full = timed_run(bridgehead, cfg, "--full")
        written = full["counts"]["adds"]
        print(f"initial full sync: {written} contacts written both ways in {full_s:.1f} s "
              f"({written / full_s:,.0f} contacts/s); status {full['status']}", flush=True)
        noop_s, noop = timed_run(bridgehead, cfg)
        print(f"no-change incremental run (RFC 4533 from the cookie): {noop_s:.2f} s; "
              f"{noop['counts']['read']} entries read, status {noop['status']}", flush=True)
        noop_full_s, noop_full = timed_run(bridgehead, cfg, "--full")
        print(f"no-change full run (every entry read and compared): {noop_full_s:.2f} s; "
              f"{noop_full['counts']['read']} entries read, {noop_full['counts']['unchanged']} unchanged, "
              f"status {noop_full['status']}", flush=True)

        log = open(os.path.join(work, "daemon.log"), "wb")
        daemon = subprocess.Popen([bridgehead, "run", "-c", cfg], stdout=log, stderr=log)
        t_start = time.monotonic()
        sock = os.path.join(state, "control.sock")
        ready = None
        while time.monotonic() - t_start < 600 and daemon.poll() is None:
            r = subprocess.run([bridgehead, "status", "--json", "-c", cfg], capture_output=True, text=True)
            if r.returncode == 0 and os.path.exists(sock):
                procs = {p["name"]: p for p in json.loads(r.stdout).get("processes", [])}
                ds = procs.get("dirsync", {})
                if ds.get("gauges", {}).get("last_run", 0) >= 4:
                    ready = procs
                    break
            time.sleep(0.5)
        if ready is None:
            sys.exit(f"dirsync_run_bench: the daemon did not finish its first run: "
                     f"{open(os.path.join(work, 'daemon.log')).read()[-3000:]}")
        hwm, rss = peak_rss_kib(daemon.pid)
        recipients = ready["addressbook"]["gauges"]["recipients"]
        print(f"daemon with {recipients} recipients in its address book, after its first run: peak RSS "
              f"{hwm / 1024:.1f} MiB (now {rss / 1024:.1f} MiB)", flush=True)
        daemon.terminate()
        daemon.wait(timeout=60)

        ok = (full["status"] == "ok" and written == 2 * args.n and noop["status"] == "ok"
              and noop_full["counts"]["adds"] + noop_full["counts"]["updates"] == 0)
        result = {"n": args.n, "initial_full_s": full_s, "contacts_written": written,
                  "noop_incremental_s": noop_s, "noop_full_s": noop_full_s, "daemon_peak_rss_kib": hwm,
                  "daemon_rss_kib": rss, "recipients": recipients, "ok": ok}
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump(result, f, indent=2)
        if not ok:
            print(f"dirsync_run_bench: FAILED: {json.dumps(result)}", file=sys.stderr)
            return 1
        return 0
    finally:
        if daemon and daemon.poll() is None:
            daemon.kill()
        for ds in started:
            ds.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
