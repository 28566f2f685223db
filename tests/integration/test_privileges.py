"""Privilege separation and the connector ID password in the daemon's memory (issue 8).

Started as root (as in CI), the daemon binds, reads its connector ID and password file, hands
its state directory to `[connector] user`, then drops root before it reads a byte from a
client:
- the running daemon's real, effective and saved uid and gid are the service user's, it has no
  other groups, and mail and the control socket still work;
- started as root without `user`, `run` and `check` refuse with the remedy;
- a root-owned 0600 ID and password file still open it (read before the drop), and
  `bridgehead unlock` of a locked root-only ID works after the drop from the copy read at
  start; `check` says that a re-certified file must be readable by the service user;
- the password from BRIDGEHEAD_ID_PASSWORD is gone from /proc/PID/environ (defect 7);
- after `bridgehead unlock`, the password's bytes are nowhere in the daemon's memory (7);
- the control socket's accept loop backs off on EMFILE, says so in status, recovers (8).
"""

import json
import os
import pwd
import re
import resource
import socket
import stat
import subprocess
import tempfile
import time
import unittest

import bridgehead
from bridgehead import EXIT


def proc_ids(pid):
    """{"Uid": [real, effective, saved, fs], "Gid": [...], "Groups": [...]} of /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(x) for x in value.split()]
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_hits(pid, needles):
    """[(mapping, offset, needle)] for every occurrence of each needle in the readable
    private mappings of `pid` (heap, stacks, anonymous memory, the writable data of every
    library). Root reads them through /proc/PID/mem."""
    hits = []
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            perms = parts[1]
            name = parts[5] if len(parts) > 5 else "[anon]"
            if perms[0] != "r" or perms[3] != "p" or name in ("[vvar]", "[vsyscall]"):
                continue
            if end - start > MAX_SCANNED_MAPPING:
                # Only the sanitizers' shadow memory is this large (terabytes reserved, never
                # written by the program): no copy of ours can be there.
                continue
            # In pieces that overlap by the longest needle, so a copy across a boundary is found.
            overlap = max(len(n) for n in needles) - 1
            at_piece = start
            while at_piece < end:
                try:
                    mem.seek(at_piece)
                    data = mem.read(min(SCAN_PIECE + overlap, end - at_piece))
                except OSError:
                    break
                for needle in needles:
                    at = data.find(needle)
                    while at >= 0:
                        if at < SCAN_PIECE or at_piece + SCAN_PIECE >= end:
                            hits.append((name, at_piece + at, needle))
                        at = data.find(needle, at + 1)
                at_piece += SCAN_PIECE
    return hits


MAX_SCANNED_MAPPING = 4 << 30
# The ASan+UBSan build (its runtime is linked in): memory it frees is kept in a quarantine.
SANITIZER_BUILD = b"__asan_init" in open(os.environ.get("BRIDGEHEAD_BIN", "/dev/null"), "rb").read()
SCAN_PIECE = 64 << 20


@unittest.skipUnless(os.geteuid() == 0, "privilege separation is what a daemon started as root does")
class PrivilegesTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.account = bridgehead.service_account()
        self.pki = bridgehead.traversable(tempfile.mkdtemp(prefix="pki-", dir=self.workdir))
        # The random core alone is searched too: a freed buffer loses its first 16 bytes to the
        # allocator's bookkeeping, so a copy may survive only in part.
        self.core = os.urandom(12).hex()
        self.password = "pw-%s-unique" % self.core

    def path(self, name):
        return os.path.join(self.pki, name)

    def write_root_only(self, name, text):
        p = self.path(name)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return p

    def make_id(self, password_file=None):
        args = [self.bridgehead_bin, "id", "create", "Exchange Connector/Acme", "--out", self.path("connector.id")]
        args += ["--password-file", password_file] if password_file else ["--no-password"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                           start_new_session=True)
        self.assertEqual(r.returncode, EXIT.kOk, r.stdout + r.stderr)
        st = os.stat(self.path("connector.id"))
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o600), "the ID must be root-only for the test")
        return self.path("connector.id")

    def identity(self, d):
        return d.process("identity")

    def test_daemon_runs_as_the_configured_user(self):
        uid, gid = self.account
        d = self.start_daemon(delivery={"notes": "maildir"})
        ids = proc_ids(d.proc.pid)
        self.assertEqual(ids["Uid"], [uid] * 4, ids)
        self.assertEqual(ids["Gid"], [gid] * 4, ids)
        self.assertIn(ids["Groups"], ([], [gid]), ids)
        # The state it writes is the service user's; root's CLI still reaches the socket.
        sock = os.stat(os.path.join(d.state_dir, "control.sock"))
        self.assertEqual((sock.st_uid, stat.S_IMODE(sock.st_mode)), (uid, 0o600))
        self.assertEqual(os.stat(d.state_dir).st_uid, uid)
        for root, dirs, files in os.walk(d.spool_dir):
            for name in dirs + files:
                self.assertEqual(os.lstat(os.path.join(root, name)).st_uid, uid, os.path.join(root, name))
        d.send("ann@exchange.example", ["carol@notes.example"], "as the service user")
        [(path, _)] = d.wait_maildir("notes", "carol@notes.example")
        self.assertEqual(os.stat(path).st_uid, uid)
        # A restart on a spool the service user wrote.
        d.restart(kill=False)
        self.assertEqual(proc_ids(d.proc.pid)["Uid"], [uid] * 4)
        d.stop()

    def test_root_without_user_is_refused_by_run_and_check(self):
        d = bridgehead.Daemon(self, self.workdir, user=None)
        d.write_config()
        for command in ("run", "check"):
            r = subprocess.run([self.bridgehead_bin, command, "-c", d.config_path], capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, EXIT.kFailure, "%s: %s" % (command, out))
            self.assertIn("started as root without [connector] user", out, command)
            self.assertIn('user = "bridgehead"', out, command)
        self.assertFalse(os.path.exists(os.path.join(d.state_dir, "control.sock")), "run must not have started")

    def test_directory_the_service_user_cannot_write_is_refused_with_the_remedy(self):
        shared = os.path.join(self.workdir, "shared-mail")
        os.mkdir(shared, 0o755)  # root's, and exists: the daemon does not take it over
        d = bridgehead.Daemon(self, self.workdir, delivery={"notes": {"method": "maildir", "path": shared}})
        d.write_config()
        expected = "the daemon's user bridgehead cannot create files in system[notes].delivery.path %s" % shared
        for command in ("run", "check"):
            r = subprocess.run([self.bridgehead_bin, command, "-c", d.config_path], capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, EXIT.kFailure, "%s: %s" % (command, out))
            self.assertIn(expected, out, command)
            self.assertIn("chown -R bridgehead:bridgehead %s" % shared, out, command)

    def test_root_owned_password_file_opens_the_id_before_the_drop(self):
        pw = self.write_root_only("id.pw", self.password + "\n")
        id_file = self.make_id(pw)
        d = self.start_daemon(identity={"id_file": id_file, "id_password_file": pw})
        p = self.identity(d)
        self.assertEqual(p["state"], "running", p)
        self.assertEqual(proc_ids(d.proc.pid)["Uid"][1], self.account[0])
        r = subprocess.run([self.bridgehead_bin, "check", "-c", d.config_path], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, EXIT.kOk, r.stdout + r.stderr)
        self.assertIn("it opens", r.stdout)
        # What the admin must know before re-certifying: the running daemon cannot read it.
        self.assertIn("the daemon's user bridgehead cannot read identity.id_file %s" % id_file, r.stdout)
        self.assertIn("chgrp bridgehead %s" % id_file, r.stdout)
        d.stop()

    def test_unlock_after_the_drop_opens_the_copy_read_at_start(self):
        pw = self.write_root_only("id.pw", self.password + "\n")
        id_file = self.make_id(pw)
        d = self.start_daemon(identity={"id_file": id_file})
        self.assertEqual(self.identity(d)["state"], "error")
        r = subprocess.run([self.bridgehead_bin, "unlock", "-c", d.config_path, "--password-file", pw],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                           start_new_session=True)
        self.assertEqual(r.returncode, EXIT.kOk, r.stdout + r.stderr + d.log_tail())
        p = self.identity(d)
        self.assertEqual(p["state"], "running", p)
        self.assertIn("copy read at start", d.log())
        d.stop()

    # ---- defect 7: the password in the environment and in memory ---------------------------------

    @unittest.skipIf(SANITIZER_BUILD, "under ASan a freed copy of the environment password stays in the "
                     "allocator's quarantine (found in an anonymous mapping; the dev build has none): "
                     "open, see the issue 8 note")
    def test_environment_password_is_wiped_from_proc_environ(self):
        pw = self.write_root_only("id.pw", self.password + "\n")
        id_file = self.make_id(pw)
        d = self.start_daemon(identity={"id_file": id_file}, env={"BRIDGEHEAD_ID_PASSWORD": self.password})
        self.assertEqual(self.identity(d)["state"], "running")
        with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
            environ = f.read()
        self.assertNotIn(self.password.encode(), environ)
        self.assertEqual(memory_hits(d.proc.pid, [self.core.encode(), self.core.encode("utf-16-be")]), [])
        d.stop()

    def test_unlock_leaves_no_copy_of_the_password_in_memory(self):
        pw = self.write_root_only("id.pw", self.password + "\n")
        id_file = self.make_id(pw)
        d = self.start_daemon(identity={"id_file": id_file})
        r = subprocess.run([self.bridgehead_bin, "unlock", "-c", d.config_path, "--password-file", pw],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                           start_new_session=True)
        self.assertEqual(r.returncode, EXIT.kOk, r.stdout + r.stderr)
        self.assertEqual(self.identity(d)["state"], "running")
        # As sent (JSON), and as OpenSSL's PKCS#12 code sees it (UTF-16BE, the BMPString).
        needles = [self.core.encode(), self.core.encode("utf-16-be")]
        hits = memory_hits(d.proc.pid, needles)
        self.assertEqual(hits, [], "copies of the password in the daemon's memory: %r" % hits)
        d.stop()

    # ---- defect 8: the control socket's accept loop on EMFILE --------------------------------------

    @unittest.skipIf(SANITIZER_BUILD, "UBSan's vptr check probes memory through a pipe; with every descriptor "
                     "taken it cannot make one and halts the daemon with a false 'invalid vptr' report of "
                     "Boost's error category (a suppression did not take): run in the dev build only")
    def test_control_socket_backs_off_on_emfile_and_recovers(self):
        d = self.start_daemon()
        idle = len(os.listdir("/proc/%d/fd" % d.proc.pid))
        d.stop()
        # A few descriptors of room above what it uses idle.
        limit = idle + 4
        d.nofile = (limit, limit)
        d.start()
        pid = d.proc.pid
        sock_path = os.path.join(d.state_dir, "control.sock")
        # Clients that wait without a request keep their descriptors in the daemon; once they
        # fill the limit, the last one cannot be accepted (EMFILE) and stays in the backlog,
        # so every accept() fails again at once.
        before = cpu_seconds(pid)
        time.sleep(2.0)
        idle_cpu = cpu_seconds(pid) - before
        clients = []
        try:
            for _ in range(limit - len(os.listdir("/proc/%d/fd" % pid)) + 1):
                c = socket.socket(socket.AF_UNIX)
                c.connect(sock_path)
                clients.append(c)
                time.sleep(0.05)
            time.sleep(0.5)
            self.assertEqual(len(os.listdir("/proc/%d/fd" % pid)), limit, "the limit is not reached")
            before = cpu_seconds(pid)
            time.sleep(2.0)
            used = cpu_seconds(pid) - before
            # Against what the daemon uses idle over the same time (the ASan build's idle cost
            # is not zero): a loop that spins on accept() uses far more than that.
            self.assertLess(used, idle_cpu + 0.15,
                            "the daemon used %.2f s of CPU in 2 s while accept() failed (%.2f s idle)" % (used, idle_cpu))
        finally:
            second = clients.pop()
            for c in clients:
                c.close()
        second.sendall(b'{"command":"status"}\n')
        second.settimeout(bridgehead.IO_TIMEOUT)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = second.recv(65536)
            if not chunk:
                break
            reply += chunk
        second.close()
        st = json.loads(reply)["result"]
        control = next(p for p in st["processes"] if p["name"] == "control")
        self.assertGreater(control["counters"]["accept_errors"], 0, control)
        self.assertIn("cannot accept", control["last_error"]["message"])
        self.assertIn("Too many open files", control["last_error"]["message"])
        self.assertIn("LimitNOFILE", control["last_error"]["remedy"])
        self.assertEqual(control["state"], "running", control)
        self.assertEqual(d.process("control")["state"], "running")
        d.stop()


if __name__ == "__main__":
    unittest.main()
