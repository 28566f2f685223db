#!/usr/bin/python3
"""Initial directory synchronization into an AD-shaped slapd: Bridgehead's writes vs `ldapadd`.

    dirsync_bench.py BUILD_DIR [--n 100000] [--workdir /var/tmp] [--in-flight 32,64,128,256]
                     [--transaction-sizes 100,1000] [--sync-in-flight 64] [--modes dbnosync,sync]
                     [--json-out FILE] [--keep]

1. Generates N Domino persons (dominoPerson under inetOrgPerson: cn, fullName, sn, givenName,
   uid, mail, mailDomain, dominoUNID; DNs cn=...,ou=Sales,o=Acme) as an LDIF file, the source,
   and the AD contacts Bridgehead's default rules make of them (src/directory/mapping/
   default_rules.cpp: targetAddress SMTP:<uid>@<routing domain>, proxyAddresses with the
   NOTES: abbreviated name and smtp: mail, mailNickname from the uid, displayName, givenName,
   sn, mail, importedFrom with the connector's identity), in ou=Notes Contacts of the
   AD-shaped directory, as a second LDIF file.
2. Two modes of the AD-shaped slapd (tests/support/slapd.py, profile ad): dbnosync, and syncing
   every write (mdb's default: a commit is on disk when it is acknowledged).
3. Sides, each against a fresh slapd of the mode (the same empty container and database size
   for every side; a slapd start is a second): the peer, `ldapadd` of the contacts file over
   one connection as the service account (output to /dev/null); then bridgehead_side(): for
   now directory/ldap's Writer through bench/ldap_write_bench with --in-flight requests in
   flight, and in RFC 5805 transactions of --transaction-sizes operations when slapd offers
   them. With syncing on, only --sync-in-flight is measured without transactions: each add is
   its own fsync'd commit however many are in flight.
4. Every side's entries are counted in the directory afterwards (a side that did not add all
   N is reported as incomplete). Rates are entries/s from the first request to the last answer
   (ldapadd: its whole run, which includes its bind and reading the file, a few ms).

Targets (issue 10): at least 1.5x ldapadd with dbnosync; with syncing on, at least 3x using
transactions. Exit status: 0 measured, every side complete; 1 could not run; 2 bad usage or a
work directory in memory; 3 measured, but a side did not add every entry; 130 interrupted.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import benchlib  # bench/benchlib.py: what the benchmarks share
from benchlib import BenchError, Interrupted

sys.path.insert(0, os.path.join(benchlib.REPO, "tests", "support"))
import slapd as slapd_fixture  # noqa: E402  (tests/support/slapd.py)

CONTAINER = "ou=Notes Contacts"
DOMINO_BASE = "ou=Sales,o=Acme"
NOTES_DOMAIN = "ACME"
ROUTING_DOMAIN = "notes.acme.example"
MAIL_DOMAIN = "acme.example"
CONNECTOR_ID = "CN=Bridgehead,O=Acme"  # the ownership stamp in importedFrom
TARGET_DNOSYNC = 1.5
TARGET_SYNC = 3.0

FIRST = ["Ann", "Bob", "Carla", "Dieter", "Emma", "Farid", "Grete", "Hugo", "Ines", "Jan"]
LAST = ["Meier", "Schmidt", "Okafor", "Lindqvist", "Rossi", "Novak", "Kowalski", "Dubois", "Sato", "Berg"]


def person(i):
    """The i-th generated Domino person: names, short name, mail, UNID."""
    given, family = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    cn = f"{given} {family} {i}"
    uid = f"{given[0]}{family}{i}".lower()
    return {"cn": cn, "given": given, "sn": f"{family} {i}", "uid": uid,
            "mail": f"{given.lower()}.{family.lower()}.{i}@{MAIL_DOMAIN}",
            "unid": f"{i:016X}{(i * 2654435761) & 0xFFFFFFFFFFFFFFFF:016X}"}


def domino_ldif(p):
    v = slapd_fixture.ldif_value
    return (f"dn: cn={p['cn']},{DOMINO_BASE}\nobjectClass: top\nobjectClass: person\n"
            "objectClass: organizationalPerson\nobjectClass: inetOrgPerson\nobjectClass: dominoPerson\n"
            + v("cn", p["cn"]) + v("fullName", f"{p['cn']}/Sales/Acme") + v("sn", p["sn"])
            + v("givenName", p["given"]) + v("uid", p["uid"]) + v("mail", p["mail"])
            + v("mailDomain", NOTES_DOMAIN) + v("dominoUNID", p["unid"]) + "\n")


def contact_ldif(p, base):
    """The AD contact the default rules make of person p (default_rules.cpp)."""
    dn = f"cn={p['cn']},{CONTAINER},{base}"
    return slapd_fixture.ad_contact_ldif(dn, p["cn"], f"SMTP:{p['uid']}@{ROUTING_DOMAIN}", extra={
        "proxyAddresses": [f"NOTES:{p['cn']}/Sales/Acme@{NOTES_DOMAIN}", f"smtp:{p['mail']}"],
        "mailNickname": p["uid"], "displayName": p["cn"], "givenName": p["given"], "mail": p["mail"],
        "importedFrom": CONNECTOR_ID,
    }).replace(f"sn: {p['cn']}\n", f"sn: {p['sn']}\n")


def write_inputs(work, n, base):
    """The source (Domino persons) and target (AD contacts) LDIF files of n persons."""
    source, target = os.path.join(work, "domino-persons.ldif"), os.path.join(work, "ad-contacts.ldif")
    with open(source, "w") as s, open(target, "w") as t:
        s.write(f"dn: o=Acme\nobjectClass: organization\no: Acme\n\n"
                f"dn: {DOMINO_BASE}\nobjectClass: organizationalUnit\nou: Sales\n\n")
        for i in range(n):
            p = person(i)
            s.write(domino_ldif(p))
            t.write(contact_ldif(p, base))
    return source, target


def container_ldif(base):
    return f"dn: {CONTAINER},{base}\nobjectClass: organizationalUnit\nou: {CONTAINER[3:]}\n\n"


def fresh_target(work, mode, label):
    """A started AD-shaped slapd with the empty contacts container, its directory under work."""
    d = os.path.join(work, f"slapd-{mode}-{label}")
    shutil.rmtree(d, ignore_errors=True)
    ds = slapd_fixture.Slapd(d, profile="ad", dbnosync=(mode == "dbnosync"),
                             initial_ldif=container_ldif(slapd_fixture.PROFILES["ad"]["suffix"]))
    return ds.start()


def count_contacts(ds):
    r = subprocess.run([slapd_fixture.LDAPSEARCH, "-LLL", "-x", "-H", ds.uri, "-D", ds.root_dn, "-w",
                        ds.root_password, "-b", f"{CONTAINER},{ds.base}", "-s", "one", "(objectClass=contact)",
                        "1.1"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise BenchError(f"counting the contacts in {ds.uri}: {r.stderr.strip()}")
    return sum(1 for line in r.stdout.splitlines() if line.startswith("dn:"))


def ldapadd_side(ds, contacts, n):
    argv = [slapd_fixture.LDAPADD, "-x", "-H", ds.uri, "-D", ds.service_dn, "-w", ds.service_password,
            "-f", contacts]
    t = time.perf_counter()
    with open(os.devnull, "w") as null:
        r = subprocess.run(argv, stdout=null, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t
    res = {"side": "ldapadd", "seconds": seconds, "entries": n}
    if r.returncode != 0:
        res["error"] = f"ldapadd exited with {r.returncode}: {r.stderr.strip()[-300:]}"
    return res


def writer_run(build, ds, contacts, in_flight, transaction_size):
    """One run of bench/ldap_write_bench: its JSON line."""
    argv = [os.path.join(build, "bench", "ldap_write_bench"), ds.uri, ds.service_dn, ds.service_password, contacts,
            str(in_flight), str(transaction_size)]
    r = subprocess.run(argv, capture_output=True, text=True)
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {"error": f"ldap_write_bench exited with {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}"}
    return out


def transactions_offered(ds):
    r = subprocess.run([slapd_fixture.LDAPSEARCH, "-LLL", "-x", "-H", ds.uri, "-s", "base", "-b", "",
                        "supportedExtension"], capture_output=True, text=True, timeout=30)
    return "1.3.6.1.1.21.1" in r.stdout and "1.3.6.1.1.21.3" in r.stdout


# ==== BRIDGEHEAD SIDE: `bridgehead dirsync run --full` =========================================
def bridgehead_config(work, label, ds, source_ldif, in_flight, transactions, batch_size):
    """A connector whose Notes directory is source_ldif (an LDIF source) and whose Exchange
    directory is `ds`, where the Notes persons become contacts in CONTAINER."""
    home = os.path.join(work, f"bridgehead-{label}")
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(os.path.join(home, "state"))
    os.chmod(home, 0o755)
    account = None
    password = os.path.join(home, "service.password")
    with open(password, "w") as f:
        f.write(ds.service_password + "\n")
    os.chmod(password, 0o600)
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam("bridgehead")
        os.chown(password, pw.pw_uid, pw.pw_gid)
        account = pw
    ports = [25251, 25252, 25253]  # never bound: `dirsync run` starts no listener
    q = json.dumps
    text = f"""[connector]
hostname = "bench.test"
state_dir = {q(os.path.join(home, "state"))}
{'user = "bridgehead"' if account else ''}
log_level = "warn"

[[system]]
name = "notes"
kind = "domino"
domains = [{q(ROUTING_DOMAIN)}]
listen = "127.0.0.1:{ports[0]}"

[system.delivery]
method = "smtp"
address = "127.0.0.1:{ports[2]}"

[system.directory]
ldif_file = {q(source_ldif)}

[[system]]
name = "exchange"
kind = "exchange"
domains = [{q(MAIL_DOMAIN)}]
listen = "127.0.0.1:{ports[1]}"

[system.delivery]
method = "smtp"
address = "127.0.0.1:{ports[2]}"

[system.directory]
uri = {q(ds.uri)}
bind = "simple"
bind_dn = {q(ds.service_dn)}
password_file = {q(password)}
base = {q(ds.base)}
contacts_container = {q(CONTAINER + "," + ds.base)}

[dirsync]
notes_domain = {q(NOTES_DOMAIN)}
interval = "1h"
in_flight = {in_flight}
transactions = {'true' if transactions else 'false'}
batch_size = {batch_size}
"""
    cfg = os.path.join(home, "bridgehead.toml")
    with open(cfg, "w") as f:
        f.write(text)
    return cfg


def bridgehead_side(build, work, mode, source_ldif, contacts_ldif, n, args):
    """Bridgehead's initial sync of the n persons of source_ldif (an LDIF source: what ldapadd
    reads too) into a fresh AD-shaped slapd of `mode`: `bridgehead dirsync run --full`, timed
    whole (reading and mapping the persons, planning, writing, the state commits and the
    address book included); one result per configuration."""
    del contacts_ldif  # Bridgehead makes its own contacts from the persons
    bridgehead = os.path.join(build, "src", "cli", "bridgehead")
    os.chmod(source_ldif, 0o644)
    configs = []
    if mode == "dbnosync":
        configs += [(k, False, 500) for k in args.in_flight]
    elif args.sync_in_flight:
        configs.append((args.sync_in_flight, False, 500))
    probe = fresh_target(work, mode, "probe")
    try:
        offered = transactions_offered(probe)
    finally:
        probe.stop()
    if offered:
        configs += [(args.transaction_in_flight, True, size) for size in args.transaction_sizes]
    results = []
    for in_flight, transactions, batch in configs:
        label = f"bridgehead-{in_flight}" + (f"-txn{batch}" if transactions else "")
        crashes = 0
        while True:
            ds = fresh_target(work, mode, label)
            try:
                cfg = bridgehead_config(work, label, ds, source_ldif, in_flight, transactions, batch)
                t = time.perf_counter()
                r = subprocess.run([bridgehead, "dirsync", "run", "--full", "--json", "-c", cfg],
                                   capture_output=True, text=True)
                seconds = time.perf_counter() - t
                res = {"side": label, "in_flight": in_flight, "transaction_size": batch if transactions else 0,
                       "entries": n, "seconds": seconds}
                try:
                    answer = json.loads(r.stdout)
                    res["status"] = answer.get("status")
                    res["adds"] = answer.get("counts", {}).get("adds")
                    if answer.get("status") not in ("ok",):
                        res["error"] = f"run {answer.get('status')}: {answer.get('error', '')[:300]}"
                except ValueError:
                    res["error"] = f"bridgehead exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}"
                died = not ds.running()
                res["count"] = None if died else count_contacts(ds)
            finally:
                ds.stop()
            if died and crashes < 2:
                crashes += 1
                print(f"   ({label}: slapd died during the run; measuring again on a fresh slapd)", flush=True)
                continue
            if died:
                res["error"] = (res.get("error", "") + "; slapd died during the run").lstrip("; ")
            break
        res["slapd_crashes"] = crashes
        results.append(res)
    if not offered:
        results.append({"side": "bridgehead-transactions", "error": "slapd offers no transactions (RFC 5805)"})
    return results
# ==== end of the Bridgehead side ============================================================


def measure(args, build, work, source, contacts):
    out = {}
    for mode in args.modes:
        ds = fresh_target(work, mode, "ldapadd")
        try:
            peer = ldapadd_side(ds, contacts, args.n)
            peer["count"] = count_contacts(ds)
        finally:
            ds.stop()
        sides = [peer] + bridgehead_side(build, work, mode, source, contacts, args.n, args)
        for s in sides:
            if s.get("seconds") and s.get("count") is not None:
                s["rate"] = s["count"] / s["seconds"]
        base_rate = peer.get("rate")
        for s in sides:
            if base_rate and s.get("rate"):
                s["ratio"] = s["rate"] / base_rate
        out[mode] = sides
        report_mode(mode, sides, args.n)
    return out


def report_mode(mode, sides, n):
    print(f"-- slapd {mode}: {n} contacts into {CONTAINER}, one connection each")
    print(f"{'side':<20} {'entries':>8} {'seconds':>9} {'entries/s':>10} {'x ldapadd':>10}  notes")
    for s in sides:
        rate = f"{s['rate']:>10.0f}" if s.get("rate") else f"{'-':>10}"
        ratio = f"{s['ratio']:>9.2f}x" if s.get("ratio") else f"{'-':>10}"
        secs = f"{s['seconds']:>9.2f}" if s.get("seconds") else f"{'-':>9}"
        notes = []
        if s.get("count") is not None and s["count"] != n:
            notes.append(f"INCOMPLETE: {s['count']} in the directory")
        d = s.get("detail", {})
        if d.get("transactions_committed") or d.get("transactions_rejected"):
            notes.append(f"{d.get('transactions_committed', 0)} transactions committed, "
                         f"{d.get('transactions_rejected', 0)} rejected")
        if s.get("slapd_crashes"):
            notes.append(f"slapd crashed {s['slapd_crashes']}x before this run (a slapd bug), measured again")
        if s.get("error"):
            notes.append("error: " + s["error"][:200])
        print(f"{s['side']:<20} {s.get('count') if s.get('count') is not None else '-':>8} {secs} {rate} {ratio}  "
              + "; ".join(notes))
    print()


def best(sides, pick):
    rates = [s["ratio"] for s in sides if s.get("ratio") and pick(s) and s.get("count") == s.get("entries")]
    return max(rates) if rates else None


def summary(res):
    lines = []
    if "dbnosync" not in res or "sync" not in res:
        return [f"{mode}: measured above (the other mode was not asked for)" for mode in res]
    plain = best(res["dbnosync"][1:], lambda s: not s.get("transaction_size"))
    lines.append(f"dbnosync: best Bridgehead writer / ldapadd = {plain:.2f}x (target {TARGET_DNOSYNC}x: "
                 f"{'met' if plain >= TARGET_DNOSYNC else 'NOT met'})" if plain else
                 "dbnosync: no complete writer run")
    txn = best(res["sync"][1:], lambda s: s.get("transaction_size"))
    lines.append(f"sync: best Bridgehead writer in transactions / ldapadd = {txn:.2f}x (target {TARGET_SYNC}x: "
                 f"{'met' if txn >= TARGET_SYNC else 'NOT met'})" if txn else
                 "sync: no complete writer run in transactions")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", help="build directory with bench/ldap_write_bench (the release preset)")
    ap.add_argument("--n", type=int, default=100000, help="Domino persons (contacts) to generate")
    ap.add_argument("--workdir", default=os.environ.get("BENCH_WORKDIR", "/var/tmp"),
                    help="parent of the slapd databases; must be on a disk, not tmpfs")
    ap.add_argument("--in-flight", type=lambda t: [int(x) for x in t.split(",")], default=[64, 256])
    ap.add_argument("--sync-in-flight", type=int, default=64, help="in flight without transactions, syncing on (0: not measured)")
    # Transactions of 100 crashed Debian 12's slapd in every 100k run (src/directory/ldap/writer.hpp).
    ap.add_argument("--transaction-sizes", type=lambda t: [int(x) for x in t.split(",")], default=[1000])
    ap.add_argument("--transaction-in-flight", type=int, default=128, help="in flight inside transactions")
    ap.add_argument("--modes", type=lambda t: t.split(","), default=["dbnosync", "sync"],
                    help="slapd modes to measure: dbnosync, sync or both (the default)")
    ap.add_argument("--json-out", help="write the results here as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    build = os.path.abspath(args.build)
    if not os.access(os.path.join(build, "bench", "ldap_write_bench"), os.X_OK):
        print(f"dirsync_bench: {build}/bench/ldap_write_bench not found (build the release preset first)",
              file=sys.stderr)
        return 1
    benchlib.raise_on_termination()
    try:
        work, ftype = benchlib.make_workdir(args.workdir, "dirsync_bench.", "dirsync_bench")
    except BenchError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        fsync = benchlib.fdatasync_latency(work)
        print(f"work directory {work} ({ftype}); write+fdatasync of 4 KiB: median {fsync['median_ms']} ms")
        t = time.perf_counter()
        source, contacts = write_inputs(work, args.n, slapd_fixture.PROFILES["ad"]["suffix"])
        print(f"generated {args.n} Domino persons ({source}) and their AD contacts ({contacts}) "
              f"in {time.perf_counter() - t:.1f} s\n")
        res = measure(args, build, work, source, contacts)
        for line in summary(res):
            print(line)
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump({"n": args.n, "fdatasync": fsync, "modes": res}, f, indent=2)
        complete = all(s.get("count") == args.n for sides in res.values() for s in sides if "count" in s)
        return 0 if complete else 3
    except (BenchError, slapd_fixture.SlapdError) as e:
        print(f"dirsync_bench: {e}", file=sys.stderr)
        return 1
    except (Interrupted, KeyboardInterrupt):
        print("dirsync_bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
