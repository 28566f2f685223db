"""`bridgehead id ...`: create (IDs and certifiers), show, passwd, certify, verify, driven as a
person would: passwords from files (mode 0600) or typed at a terminal (a pty here), never on
the command line. Checks the exit codes (EXIT.kOk, kFailure for bad arguments, kWrongPassword,
kCertificate, kIdUnreadable, kNoPassword when no password is to be had), the messages, the
0600 mode, and that `openssl pkcs12` opens what Bridgehead writes.

Every command runs in a new session (no controlling terminal) unless a test gives it a pty,
so a missing password option can never hang on a prompt."""

import json
import os
import pty
import re
import select
import stat
import subprocess
import time
import unittest

import bridgehead
from bridgehead import EXIT


class IdentityCliTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.openssl = self.require("openssl")

    def path(self, name):
        return os.path.join(self.workdir, name)

    def pw_file(self, name, password, mode=0o600):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(password + "\n")
        os.chmod(p, mode)
        return p

    def id(self, *args):
        """Runs `bridgehead id ARGS` without a terminal; returns (exit code, stdout, stderr)."""
        r = subprocess.run([self.bridgehead_bin, "id"] + list(args), capture_output=True, timeout=120,
                           cwd=self.workdir, start_new_session=True, stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def ok(self, *args):
        rc, out, err = self.id(*args)
        self.assertEqual(rc, EXIT.kOk, "bridgehead id %s: %s%s" % (" ".join(args), out, err))
        return out

    def show(self, f, *extra):
        return json.loads(self.ok("show", f, "--json", *extra))

    def certifier(self, name="/Acme"):
        cpw = self.pw_file("certifier.pw", "certifier secret")
        f = self.path("acme.id")
        self.ok("create", name, "--ca", "--out", f, "--password-file", cpw)
        return f, cpw

    def assert_owner_only(self, f):
        self.assertEqual(stat.S_IMODE(os.stat(f).st_mode), 0o600, f)

    def test_certified_name_must_be_under_the_certifier(self):
        acme, cpw = self.certifier()
        ipw = self.pw_file("id.pw", "id secret")
        f = self.path("connector.id")
        out = self.ok("create", "Exchange Connector/Acme", "--out", f, "--certifier", acme,
                      "--certifier-password-file", cpw, "--password-file", ipw)
        self.assertIn("Exchange Connector/Acme", out)
        self.assertEqual(self.show(f)["issuers"], ["/Acme"])
        # /Sales/Acme is not /Acme: that name needs a /Sales/Acme certifier.
        rc, out, err = self.id("create", "Exchange Connector/Sales/Acme", "--out", self.path("x.id"),
                               "--certifier", acme, "--certifier-password-file", cpw, "--password-file", ipw)
        self.assertEqual(rc, EXIT.kFailure, out + err)
        self.assertIn("not directly under the certifier '/Acme'", err)
        self.assertFalse(os.path.exists(self.path("x.id")))

    def test_id_under_a_unit_certifier(self):
        acme, cpw = self.certifier()
        sales = self.path("sales.id")
        self.ok("create", "/Sales/Acme", "--ca", "--out", sales, "--certifier", acme,
                "--certifier-password-file", cpw, "--password-file", cpw)
        ipw = self.pw_file("id.pw", "id secret")
        f = self.path("connector.id")
        self.ok("create", "Exchange Connector/Sales/Acme", "--out", f, "--certifier", sales,
                "--certifier-password-file", cpw, "--password-file", ipw)
        self.assert_owner_only(f)
        self.assert_owner_only(acme)
        # show tells name, chain, protection without the password.
        info = self.show(f)
        self.assertIs(info["password_protected"], True)
        self.assertEqual(info["name"], "Exchange Connector/Sales/Acme")
        self.assertEqual(info["subject"], "CN=Exchange Connector,OU=Sales,O=Acme")
        self.assertEqual(info["issuers"], ["/Sales/Acme", "/Acme"])
        self.assertEqual(info["key_type"], "ec-p256")
        self.assertIs(info["certifier"], False)
        self.assertIs(info["integrity_checked"], False)
        self.assertRegex(info["fingerprint_sha256"], r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")
        self.assertIs(self.show(f, "--password-file", ipw)["integrity_checked"], True)
        self.assertIs(self.show(sales)["certifier"], True)
        text = self.ok("show", f)
        self.assertRegex(text, r"password:\s+protected")
        self.assertIn("/Sales/Acme > /Acme", text)
        # verify: right, wrong, and no password.
        out = self.ok("verify", f, "--password-file", ipw)
        self.assertIn("OK", out)
        rc, out, err = self.id("verify", f, "--password-file", cpw)
        self.assertEqual(rc, EXIT.kWrongPassword, out + err)
        self.assertIn("wrong password", err)
        rc, out, err = self.id("verify", f)
        self.assertEqual(rc, EXIT.kNoPassword, out + err)
        self.assertIn("no terminal", err)
        self.assertIn("--password-file", err)
        # openssl reads it, and it is protected the modern way.
        r = subprocess.run([self.openssl, "pkcs12", "-info", "-in", f, "-passin", "file:" + ipw, "-noout"],
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        info_text = r.stdout.decode() + r.stderr.decode()
        self.assertIn("PBES2, PBKDF2, AES-256-CBC", info_text)
        self.assertIn("MAC: sha256", info_text)

    def test_no_password_option_without_terminal_fails_clearly(self):
        f = self.path("connector.id")
        rc, out, err = self.id("create", "Exchange Connector/Acme", "--out", f)
        self.assertEqual(rc, EXIT.kNoPassword, out + err)
        self.assertIn("no terminal", err)
        self.assertIn("--password-file", err)
        self.assertIn("--no-password", err)
        self.assertFalse(os.path.exists(f))
        # Both options at once are a usage error.
        pw = self.pw_file("id.pw", "x")
        rc, out, err = self.id("create", "Exchange Connector/Acme", "--out", f, "--password-file", pw,
                               "--no-password")
        self.assertGreaterEqual(rc, EXIT.kFirstUsageError, out + err)
        self.assertFalse(os.path.exists(f))

    def test_id_without_password(self):
        f = self.path("open.id")
        self.ok("create", "Exchange Connector/Acme", "--out", f, "--no-password")
        self.assert_owner_only(f)
        info = self.show(f)
        self.assertIs(info["password_protected"], False)
        self.assertIs(info["integrity_checked"], True)
        self.assertEqual(info["issuers"], [])
        self.assertRegex(self.ok("show", f), r"password:\s+none")
        self.ok("verify", f)
        r = subprocess.run([self.openssl, "pkcs12", "-info", "-in", f, "-nodes", "-passin", "pass:"],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"BEGIN PRIVATE KEY", r.stdout)

    def test_group_readable_password_file_is_refused(self):
        pw = self.pw_file("loose.pw", "secret", mode=0o644)
        f = self.path("connector.id")
        rc, out, err = self.id("create", "Exchange Connector/Acme", "--out", f, "--password-file", pw)
        self.assertEqual(rc, EXIT.kNoPassword, out + err)
        self.assertIn(pw, err)
        self.assertIn("mode 0644", err)
        self.assertIn("chmod 600 " + pw, err)
        self.assertFalse(os.path.exists(f))

    def test_passwd_sets_changes_and_removes(self):
        f = self.path("connector.id")
        self.ok("create", "Exchange Connector/Acme", "--out", f, "--no-password")
        fingerprint = self.show(f)["fingerprint_sha256"]
        first = self.pw_file("first.pw", "first secret")
        second = self.pw_file("second.pw", "second secret")
        self.assertIn("password set", self.ok("passwd", f, "--new-password-file", first))
        self.assertIs(self.show(f)["password_protected"], True)
        self.assertIn("password changed",
                      self.ok("passwd", f, "--password-file", first, "--new-password-file", second))
        rc, out, err = self.id("verify", f, "--password-file", first)
        self.assertEqual(rc, EXIT.kWrongPassword, out + err)
        self.ok("verify", f, "--password-file", second)
        rc, out, err = self.id("passwd", f, "--password-file", second)
        self.assertEqual(rc, EXIT.kNoPassword, out + err)  # no new password and no terminal
        self.assertIn("password removed", self.ok("passwd", f, "--password-file", second, "--no-password"))
        info = self.show(f)
        self.assertIs(info["password_protected"], False)
        self.assertEqual(info["fingerprint_sha256"], fingerprint)  # same key and certificate throughout
        self.assert_owner_only(f)
        self.assertEqual(sorted(os.listdir(self.workdir)), ["connector.id", "first.pw", "second.pw"])

    def test_certify_extends_validity_with_the_same_key_and_password(self):
        acme, cpw = self.certifier()
        ipw = self.pw_file("id.pw", "id secret")
        f = self.path("connector.id")
        self.ok("create", "Exchange Connector/Acme", "--out", f, "--certifier", acme,
                "--certifier-password-file", cpw, "--password-file", ipw, "--validity", "2")
        before = self.show(f)
        out = self.ok("certify", f, "--certifier", acme, "--certifier-password-file", cpw, "--password-file", ipw,
                      "--validity", "400")
        self.assertIn("re-certified", out)
        after = self.show(f)
        self.assertGreater(after["not_after"], before["not_after"])
        self.assertNotEqual(after["fingerprint_sha256"], before["fingerprint_sha256"])
        self.assertEqual(after["name"], before["name"])
        self.assertIs(after["password_protected"], True)
        self.ok("verify", f, "--password-file", ipw)  # same password as before
        # A certifier renews itself.
        self.ok("certify", acme, "--certifier", acme, "--password-file", cpw, "--validity", "5000")
        self.assertIs(self.show(acme)["certifier"], True)
        self.ok("verify", acme, "--password-file", cpw)
        # The certifier's password is wrong: exit 4, the ID is untouched.
        untouched = self.show(f)
        rc, out, err = self.id("certify", f, "--certifier", acme, "--certifier-password-file", ipw,
                               "--password-file", ipw)
        self.assertEqual(rc, EXIT.kWrongPassword, out + err)
        self.assertEqual(self.show(f), untouched)

    def test_unreadable_files_exit_with_kIdUnreadable(self):
        rc, out, err = self.id("show", self.path("missing.id"))
        self.assertEqual(rc, EXIT.kIdUnreadable, out + err)
        self.assertIn("does not exist", err)
        with open(self.path("text.id"), "w") as f:
            f.write("not an ID\n")
        rc, out, err = self.id("verify", self.path("text.id"))
        self.assertEqual(rc, EXIT.kIdUnreadable, out + err)
        self.assertIn("not a PKCS#12 file", err)
        good = self.path("good.id")
        self.ok("create", "Exchange Connector/Acme", "--out", good, "--no-password")
        with open(good, "rb") as f:
            data = f.read()
        with open(self.path("cut.id"), "wb") as f:
            f.write(data[: len(data) // 2])
        for cmd in ("show", "verify"):
            rc, out, err = self.id(cmd, self.path("cut.id"))
            self.assertEqual(rc, EXIT.kIdUnreadable, out + err)
            self.assertIn("truncated", err)

    def test_certificate_problems_exit_with_kCertificate(self):
        def openssl(*args):
            r = subprocess.run([self.openssl] + list(args), capture_output=True, timeout=60, cwd=self.workdir)
            self.assertEqual(r.returncode, 0, r.stderr)
        pw = self.pw_file("pw", "secret")
        # Expired: notAfter one day before notBefore.
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "old.key",
                "-out", "old.csr", "-subj", "/O=Acme/CN=Old")
        openssl("x509", "-req", "-in", "old.csr", "-signkey", "old.key", "-days", "-1", "-out", "old.pem")
        openssl("pkcs12", "-export", "-inkey", "old.key", "-in", "old.pem", "-out", "old.id", "-passout", "file:pw")
        rc, out, err = self.id("verify", self.path("old.id"), "--password-file", pw)
        self.assertEqual(rc, EXIT.kCertificate, out + err)
        self.assertRegex(err, r"expired on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
        # Chain broken: certified by a CA that is not in the file.
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/O=Acme",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "leaf.key",
                "-out", "leaf.csr", "-subj", "/O=Acme/CN=Exchange Connector")
        openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "leaf.pem", "-days", "20")
        openssl("pkcs12", "-export", "-inkey", "leaf.key", "-in", "leaf.pem", "-out", "lone.id", "-passout",
                "file:pw")
        rc, out, err = self.id("verify", self.path("lone.id"), "--password-file", pw)
        self.assertEqual(rc, EXIT.kCertificate, out + err)
        self.assertIn("broken", err)
        # With the CA in the file it verifies; `show` cannot read openssl's encrypted certificates
        # without the password and says so.
        openssl("pkcs12", "-export", "-inkey", "leaf.key", "-in", "leaf.pem", "-certfile", "ca.pem", "-out",
                "full.id", "-passout", "file:pw")
        self.assertIn("OK", self.ok("verify", self.path("full.id"), "--password-file", pw))
        rc, out, err = self.id("show", self.path("full.id"))
        self.assertEqual(rc, EXIT.kNoPassword, out + err)
        self.assertRegex(out, r"password:\s+protected")
        self.assertIn("encrypted", err)
        self.assertEqual(self.show(self.path("full.id"), "--password-file", pw)["issuers"], ["/Acme"])

    def test_bad_arguments_exit_with_kFailure(self):
        pw = self.pw_file("pw", "secret")
        rc, out, err = self.id("create", "Exchange Connector//Acme", "--out", self.path("a.id"), "--password-file", pw)
        self.assertEqual(rc, EXIT.kFailure, out + err)
        self.assertIn("part 2 is empty", err)
        rc, out, err = self.id("create", "/Acme", "--out", self.path("a.id"), "--password-file", pw)
        self.assertEqual(rc, EXIT.kFailure, out + err)
        self.assertIn("no common name", err)
        rc, out, err = self.id("create", "X/Acme", "--out", self.path("a.id"), "--password-file", pw, "--key", "dsa")
        self.assertEqual(rc, EXIT.kFailure, out + err)
        self.ok("create", "X/Acme", "--out", self.path("a.id"), "--password-file", pw)
        rc, out, err = self.id("create", "Y/Acme", "--out", self.path("a.id"), "--password-file", pw)
        self.assertEqual(rc, EXIT.kFailure, out + err)
        self.assertIn("already exists", err)
        self.assertEqual(self.show(self.path("a.id"))["name"], "X/Acme")
        rc, out, err = self.id("--help")
        self.assertEqual(rc, EXIT.kOk)
        self.assertIn("Exit codes", out)
        self.assertIn("%d wrong password" % EXIT.kWrongPassword, out)

    # ---- at a terminal ----

    def on_terminal(self, args, answers, timeout=120):
        """Runs `bridgehead id ARGS` on a pty, typing each answer after the next prompt ending in
        ': '. Returns (exit code, everything the terminal showed)."""
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.chdir(self.workdir)
                os.execv(self.bridgehead_bin, [self.bridgehead_bin, "id"] + list(args))
            finally:
                os._exit(127)
        shown = b""
        pending = list(answers)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                r, _, _ = select.select([fd], [], [], 0.5)
                if r:
                    try:
                        chunk = os.read(fd, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    shown += chunk
                    if pending and re.search(rb"(?i)password[^\n]*: $", shown):
                        os.write(fd, pending.pop(0).encode() + b"\n")
                        shown += b"<typed>"
                else:
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
            # The terminal closed (the command ended) or time ran out: reap it, or kill it.
            done, status = os.waitpid(pid, os.WNOHANG)
            while not done and time.time() < deadline:
                time.sleep(0.1)
                done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                os.kill(pid, 9)
                _, status = os.waitpid(pid, 0)
                self.fail("bridgehead id %s did not finish in %ss; the terminal showed: %r" % (
                    " ".join(args), timeout, shown))
            return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
        finally:
            os.close(fd)

    def test_terminal_prompts_twice_without_echo(self):
        f = self.path("connector.id")
        rc, shown = self.on_terminal(["create", "Exchange Connector/Acme", "--out", f],
                                     ["typed secret", "typed secret"])
        self.assertEqual(rc, EXIT.kOk, shown)
        self.assertIn("New password for", shown)
        self.assertIn("Repeat the new password", shown)
        self.assertNotIn("typed secret", shown)  # no echo
        self.assertIs(self.show(f)["password_protected"], True)
        rc, shown = self.on_terminal(["verify", f], ["typed secret"])
        self.assertEqual(rc, EXIT.kOk, shown)
        self.assertIn("OK", shown)
        rc, shown = self.on_terminal(["verify", f], ["not it"])
        self.assertEqual(rc, EXIT.kWrongPassword, shown)
        # Two different entries: nothing is written.
        g = self.path("other.id")
        rc, shown = self.on_terminal(["create", "Other/Acme", "--out", g], ["one", "two"])
        self.assertEqual(rc, EXIT.kNoPassword, shown)
        self.assertIn("differ", shown)
        self.assertFalse(os.path.exists(g))


if __name__ == "__main__":
    unittest.main()
