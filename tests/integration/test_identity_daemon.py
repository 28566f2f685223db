"""The old connector's failure, end to end, and its cure: a password-protected connector ID.

The destination is a real Postfix instance that requires a TLS client certificate signed by
the test certifier (smtpd_tls_req_ccert). Bridgehead starts with a password-protected ID:
- with no password source, the delivery process is in `error` with cause and remedy, mail is
  accepted and queued (visible), nothing is sent and no DSN is made; `bridgehead unlock` with
  a wrong password is refused plainly; with the right one the message is delivered with the
  ID as client certificate and the process is `running`, without a restart;
- the same delivery with the password from id_password_file and from a systemd credential;
- a password file that others can read is refused with the chmod remedy;
- a listener that requires client certificates signed by the certifier (tls_client_ca_file)
  takes its server certificate from the ID.
"""

import os
import pty
import select
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import bridgehead
import postfix
from bridgehead import EXIT

PASSWORD = "correct horse battery staple"
POSTCAT = "/usr/sbin/postcat"


class IdentityDaemonTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.bin = self.bridgehead_bin
        self.openssl = self.require("openssl")
        # Below the system temp dir: Postfix's daemons (user postfix) read the PEM files.
        self.pki = tempfile.mkdtemp(prefix="bh-identity-")
        os.chmod(self.pki, 0o755)
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.pki]))
        self.pw_file = self.write_secret("id.pw", PASSWORD + "\n")
        self.wrong_pw_file = self.write_secret("wrong.pw", "not the password\n")
        self.id_cli("create", "/Acme", "--ca", "--out", self.path("certifier.id"), "--no-password")
        self.id_cli("create", "Exchange Connector/Acme", "--certifier", self.path("certifier.id"),
                    "--out", self.path("connector.id"), "--password-file", self.pw_file)
        self.id_cli("create", "Notes MTA/Acme", "--certifier", self.path("certifier.id"), "--dns", "localhost",
                    "--out", self.path("postfix.id"), "--no-password")
        self.id_cli("create", "Exchange Server/Acme", "--certifier", self.path("certifier.id"),
                    "--out", self.path("client.id"), "--no-password")
        self.id_cli("create", "/Other", "--ca", "--out", self.path("other.id"), "--no-password")
        self.id_cli("create", "Intruder/Other", "--certifier", self.path("other.id"),
                    "--out", self.path("intruder.id"), "--no-password")
        # What Bridgehead wrote, exported by the openssl tool (the interop path an admin takes).
        self.pkcs12_to_pem("certifier.id", "certifier.pem", keys=False)
        self.pkcs12_to_pem("postfix.id", "postfix.pem", keys=False)
        self.pkcs12_to_pem("postfix.id", "postfix-key.pem", keys=True, certs=False)
        self.pkcs12_to_pem("client.id", "client.pem", keys=True)
        self.pkcs12_to_pem("intruder.id", "intruder.pem", keys=True)
        for name in ("certifier.pem", "postfix.pem", "postfix-key.pem"):
            os.chmod(self.path(name), 0o644)

    # ---- helpers ----------------------------------------------------------------------------

    def path(self, name):
        return os.path.join(self.pki, name)

    def write_secret(self, name, text, mode=0o600):
        p = self.path(name)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def id_cli(self, *args):
        r = subprocess.run([self.bin, "id", *args], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, start_new_session=True)
        self.assertEqual(r.returncode, EXIT.kOk, "bridgehead id %s: %s %s" % (" ".join(args), r.stdout, r.stderr))

    def pkcs12_to_pem(self, src, dst, keys, certs=True):
        args = [self.openssl, "pkcs12", "-in", self.path(src), "-passin", "pass:", "-out", self.path(dst)]
        args += ["-nodes"] if keys else ["-nokeys"]
        if not certs:
            args += ["-nocerts"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "openssl pkcs12 %s: %s" % (src, r.stderr))

    def start_postfix(self, port):
        return postfix.start_for_test(self, "ccert", port, hostname="notes-mta.test", relay_domains=("notes.example",),
                                      extra_main_cf={
                                          # Keeps what it gets: the queue is the mailbox the test reads.
                                          "defer_transports": "smtp relay local virtual lmtp",
                                          "smtpd_tls_security_level": "encrypt",
                                          "smtpd_tls_cert_file": self.path("postfix.pem"),
                                          "smtpd_tls_key_file": self.path("postfix-key.pem"),
                                          "smtpd_tls_CAfile": self.path("certifier.pem"),
                                          "smtpd_tls_ask_ccert": "yes",
                                          "smtpd_tls_req_ccert": "yes",
                                          "smtpd_tls_received_header": "yes",
                                          "smtpd_tls_loglevel": "1",
                                      })

    def start(self, identity, env=None, port=None):
        port = port or bridgehead.free_port()
        d = self.start_daemon(identity=identity, env=env, queue={"retry_delays": "1s"},
                              delivery={"exchange": "maildir",
                                        "notes": {"method": "smtp", "address": "127.0.0.1:%d" % port,
                                                  "tls": "required", "tls_verify_name": "localhost",
                                                  "tls_ca_file": self.path("certifier.pem"),
                                                  "timeout": "30s"}})
        return d, port

    def unlock(self, d, password_file):
        return subprocess.run([self.bin, "unlock", "-c", d.config_path, "--password-file", password_file],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                              start_new_session=True)

    def headers_in_postfix(self, pf, subject):
        """The headers of the queued message with `subject`, or None."""
        for m in pf.queue():
            if not any(r["address"] == "carol@notes.example" for r in m.get("recipients", [])):
                continue
            r = subprocess.run([POSTCAT, "-c", pf.config_dir, "-h", "-q", m["queue_id"]], capture_output=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            headers = r.stdout.decode("utf-8", "replace")
            if "Subject: %s\n" % subject in headers:
                return headers.replace("\n\t", " ").replace("\n ", " ")
        return None

    def assert_delivered_with_client_certificate(self, d, pf, subject):
        headers = d.wait_for(lambda: self.headers_in_postfix(pf, subject),
                             "the message %r in the Postfix queue\n%s" % (subject, pf.maillog_tail(40)),
                             timeout=120, interval=0.3)
        # Postfix writes what it verified into its Received header.
        self.assertIn('Client CN "Exchange Connector"', headers)
        self.assertIn("(verified OK)", headers)
        d.wait_queue_empty(what="Bridgehead's queue to empty after delivery")

    def send(self, d, subject):
        msg = bridgehead.make_message("ann@exchange.example", ["carol@notes.example"], subject, "Through the ID.\r\n")
        with smtplib.SMTP("127.0.0.1", d.port("exchange"), local_hostname="client.test", timeout=60) as s:
            code, resp = s.ehlo()
            self.assertEqual(code, 250)
            advertised = s.has_extn("starttls")
            self.assertEqual(s.sendmail("ann@exchange.example", ["carol@notes.example"], msg), {})
        return advertised

    def assert_process(self, d, name, state, activity=None):
        p = d.process(name)
        self.assertEqual(p["state"], state, "%s: %r\n%s" % (name, p, d.log_tail()))
        if activity is not None:
            self.assertIn(activity, p["activity"], p)
        return p

    # ---- the old connector's scenario ---------------------------------------------------------

    def test_locked_id_holds_mail_visibly_until_unlock(self):
        port = bridgehead.free_port()
        pf = self.start_postfix(port)
        # The fixture's own probe of the port is the only connection so far (postlogd writes
        # the maillog a little later).
        deadline = time.monotonic() + 30
        while "]: disconnect from" not in pf.maillog_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        probes = pf.maillog_text().count("]: connect from")
        self.assertGreaterEqual(probes, 1, pf.maillog_tail(20))
        d, _ = self.start({"id_file": self.path("connector.id")}, port=port)

        p = self.assert_process(d, "deliver:notes", "error", "waiting for the connector ID password")
        self.assertIn("password-protected", p["last_error"]["message"])
        self.assertIn(self.path("connector.id"), p["last_error"]["message"])
        for way in ("bridgehead unlock", "id_password_file", "bridgehead-id-password", "BRIDGEHEAD_ID_PASSWORD"):
            self.assertIn(way, p["last_error"]["remedy"])
        self.assert_process(d, "identity", "error", "waiting for the connector ID password")
        ing = self.assert_process(d, "ingress:exchange", "error", "accepting mail without STARTTLS")
        self.assertIn("bridgehead unlock", ing["last_error"]["remedy"])
        # Maildir delivery needs no ID and is not held.
        self.assert_process(d, "deliver:exchange", "running")

        # Mail is still accepted (without STARTTLS, which needs the ID) and waits, visibly.
        self.assertFalse(self.send(d, "while locked"), "STARTTLS offered without a certificate")
        m = d.wait_for(lambda: next((m for m in d.queue() if m["state"][0]["attempts"] >= 2), None),
                       "two held attempts of the message")
        self.assertEqual(m["recipients"], ["carol@notes.example"])
        st = m["state"][0]
        self.assertEqual(st["status"], "deferred")
        self.assertIn("not attempted", st["reply"])
        self.assertIn("password-protected", st["reply"])
        # Nothing reached Postfix, and nobody got a DSN.
        self.assertEqual(pf.maillog_text().count("]: connect from"), probes, pf.maillog_tail(20))
        self.assertEqual(pf.queue(), [])
        self.assertEqual(d.counters("deliver:notes")["dsn_sent"], 0)
        self.assertEqual(d.counters("deliver:notes")["failed"], 0)
        self.assertEqual(len(d.queue()), 1, "a DSN would be a second message in the queue")
        self.assertEqual(d.maildir("exchange", "ann@exchange.example"), [])

        # A wrong password: refused plainly, nothing changes.
        r = self.unlock(d, self.wrong_pw_file)
        self.assertEqual(r.returncode, EXIT.kWrongPassword, r.stdout + r.stderr)
        self.assertIn("wrong password for the connector ID %s" % self.path("connector.id"), r.stderr)
        self.assert_process(d, "deliver:notes", "error", "the last one given was wrong")
        self.assertEqual(pf.queue(), [])

        # The right one: delivered with the ID as client certificate, no restart.
        starts = d.starts
        r = self.unlock(d, self.pw_file)
        self.assertEqual(r.returncode, EXIT.kOk, r.stdout + r.stderr)
        self.assertIn("Exchange Connector/Acme", r.stdout)
        self.assert_delivered_with_client_certificate(d, pf, "while locked")
        self.assertEqual(d.starts, starts)
        self.assertIsNone(d.proc.poll())
        self.assert_process(d, "deliver:notes", "running")
        self.assert_process(d, "identity", "running", "Exchange Connector/Acme open")
        self.assert_process(d, "ingress:exchange", "running")
        self.assertEqual(d.counters("deliver:notes")["dsn_sent"], 0)
        self.assertEqual(d.maildir("exchange", "ann@exchange.example"), [])
        # The listener now offers STARTTLS with the ID's certificate.
        self.assertTrue(self.send(d, "after unlock"))
        self.assert_delivered_with_client_certificate(d, pf, "after unlock")
        ctx = ssl.create_default_context(cafile=self.path("certifier.pem"))
        ctx.check_hostname = False
        with smtplib.SMTP("127.0.0.1", d.port("exchange"), timeout=60) as s:
            s.starttls(context=ctx)
            subject = dict(x[0] for x in s.sock.getpeercert()["subject"])
        self.assertEqual(subject["commonName"], "Exchange Connector")
        d.stop()

    def test_password_file_opens_the_id_at_start(self):
        port = bridgehead.free_port()
        pf = self.start_postfix(port)
        d, _ = self.start({"id_file": self.path("connector.id"), "id_password_file": self.pw_file}, port=port)
        p = self.assert_process(d, "identity", "running", "Exchange Connector/Acme open")
        self.assertIn("id_password_file", p["details"]["password_source"])
        self.assert_process(d, "deliver:notes", "running")
        self.assertTrue(self.send(d, "password file"))
        self.assert_delivered_with_client_certificate(d, pf, "password file")
        d.stop()
        r = subprocess.run([self.bin, "check", "-c", d.config_path], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, EXIT.kOk, r.stdout + r.stderr)
        self.assertIn("password source: id_password_file %s" % self.pw_file, r.stdout)
        self.assertIn("it opens", r.stdout)

    def test_systemd_credential_opens_the_id_at_start(self):
        port = bridgehead.free_port()
        pf = self.start_postfix(port)
        creds = tempfile.mkdtemp(dir=self.workdir)
        with open(os.path.join(creds, "bridgehead-id-password"), "w") as f:
            f.write(PASSWORD)
        os.chmod(os.path.join(creds, "bridgehead-id-password"), 0o400)
        d, _ = self.start({"id_file": self.path("connector.id")}, env={"CREDENTIALS_DIRECTORY": creds}, port=port)
        p = self.assert_process(d, "identity", "running")
        self.assertIn("systemd", p["details"]["password_source"])
        self.assert_process(d, "deliver:notes", "running")
        self.send(d, "credential")
        self.assert_delivered_with_client_certificate(d, pf, "credential")
        d.stop()

    def run_on_terminal(self, d, typed, while_prompting=None):
        """`bridgehead run` with a pseudo-terminal as its controlling terminal; types `typed`
        once the prompt shows (after calling `while_prompting()`, if given). Returns (pid, what
        the terminal showed up to the prompt)."""
        d.write_config()
        pid, fd = pty.fork()
        if pid == 0:  # the child: its controlling terminal is the pty
            try:
                os.execv(self.bin, [self.bin, "run", "-c", d.config_path])
            finally:
                os._exit(127)
        self.addCleanup(self.reap, pid, fd)
        shown = b""
        deadline = time.monotonic() + bridgehead.START_TIMEOUT
        while b"Password for the connector ID" not in shown:
            self.assertLess(time.monotonic(), deadline, "no password prompt; the terminal showed %r" % shown)
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    shown += os.read(fd, 4096)
                except OSError:
                    self.fail("the daemon left the terminal before prompting: %r" % shown)
        if while_prompting is not None:
            while_prompting()
        os.write(fd, typed)
        return pid, shown.decode("utf-8", "replace")

    def reap(self, pid, fd):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # Keep the pty drained, so the daemon's log writes never block.
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    os.read(fd, 65536)
                except OSError:
                    pass
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)

    def wait_identity(self, d, state):
        return d.wait_for(lambda: next((p for p in (d.status(check=False)[0].get("processes") or [])
                                        if p["name"] == "identity" and p["state"] == state), None),
                          "the identity process in state %s" % state)

    def test_terminal_prompt_in_the_foreground(self):
        d = bridgehead.Daemon(self, tempfile.mkdtemp(dir=self.workdir),
                              identity={"id_file": self.path("connector.id")})
        pid, shown = self.run_on_terminal(d, (PASSWORD + "\n").encode())
        self.assertIn("is password-protected", shown)
        self.assertIn("bridgehead unlock", shown)
        self.assertNotIn(PASSWORD, shown, "the password must not be echoed")
        p = self.wait_identity(d, "running")
        self.assertIn("Exchange Connector/Acme open", p["activity"])
        self.assertIn("terminal", p["details"]["password_source"])

        # Ctrl-D at the prompt: the daemon starts with the ID locked, and says so.
        d2 = bridgehead.Daemon(self, tempfile.mkdtemp(dir=self.workdir),
                               identity={"id_file": self.path("connector.id")})
        self.run_on_terminal(d2, b"\x04")
        p = self.wait_identity(d2, "error")
        self.assertIn("stays locked", p["last_error"]["message"])
        self.assertIn("bridgehead unlock", p["last_error"]["remedy"])

    def test_listeners_refuse_connections_while_the_prompt_waits(self):
        # While the operator types, the daemon is not ready: a client that connects is refused
        # at once (and tries later or elsewhere, as an MTA does), instead of being accepted by
        # the kernel and left without a greeting until the password is typed.
        d = bridgehead.Daemon(self, tempfile.mkdtemp(dir=self.workdir),
                              identity={"id_file": self.path("connector.id")})

        def connect_to_every_port():
            time.sleep(0.5)  # the prompt is up; give a listener time to start if it would
            for system in ("exchange", "notes"):
                with self.assertRaises(ConnectionRefusedError, msg="%s accepts during the prompt" % system):
                    with socket.create_connection(("127.0.0.1", d.port(system)), timeout=5) as c:
                        c.settimeout(2)
                        c.recv(100)
            self.assertFalse(os.path.exists(os.path.join(d.state_dir, "control.sock")),
                             "the control socket is up during the prompt")

        self.run_on_terminal(d, (PASSWORD + "\n").encode(), while_prompting=connect_to_every_port)
        self.wait_identity(d, "running")
        # Once the password is in, the greeting comes at once.
        with socket.create_connection(("127.0.0.1", d.port("exchange")), timeout=10) as c:
            c.settimeout(10)
            self.assertTrue(c.recv(100).startswith(b"220 "))

    def test_password_file_readable_by_others_is_refused_with_the_remedy(self):
        loose = self.write_secret("loose.pw", PASSWORD + "\n", mode=0o644)
        d, _ = self.start({"id_file": self.path("connector.id"), "id_password_file": loose})
        p = self.assert_process(d, "deliver:notes", "error")
        self.assertIn("mode 0644", p["last_error"]["message"])
        self.assertIn("chmod 600 %s" % loose, p["last_error"]["remedy"])
        qid, _ = d.send("ann@exchange.example", ["carol@notes.example"], "queued meanwhile")
        self.assertIn(qid, d.queued_by_id())
        r = subprocess.run([self.bin, "check", "-c", d.config_path], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, EXIT.kFailure, r.stdout + r.stderr)
        self.assertIn("chmod 600", r.stdout)
        d.stop()

    def test_listener_requires_client_certificates_from_the_certifier(self):
        extra_system = 'tls_client_ca_file = "%s"\n' % self.path("certifier.pem")
        d = self.start_daemon(identity={"id_file": self.path("connector.id"), "id_password_file": self.pw_file})
        # Rewrite the exchange system with the client requirement and restart on the same state.
        with open(d.config_path) as f:
            text = f.read()
        text = text.replace('name = "exchange"\n', 'name = "exchange"\n' + extra_system, 1)
        with open(d.config_path, "w") as f:
            f.write(text)
        d.stop()
        d._spawn()
        why = d._wait_running()
        self.assertIsNone(why, why)

        plain = bridgehead.RawClient("127.0.0.1", d.port("exchange"))
        plain.ehlo()
        plain.cmd("MAIL FROM:<ann@exchange.example>", 530, "5.7.0")
        plain.close()

        ctx = ssl.create_default_context(cafile=self.path("certifier.pem"))
        ctx.check_hostname = False
        # No client certificate, or one from another certifier: the handshake fails.
        for cert in (None, self.path("intruder.pem")):
            c = ssl.create_default_context(cafile=self.path("certifier.pem"))
            c.check_hostname = False
            if cert:
                c.load_cert_chain(cert)
            with self.assertRaises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError, OSError)):
                with smtplib.SMTP("127.0.0.1", d.port("exchange"), timeout=30) as s:
                    s.starttls(context=c)
                    s.ehlo()
                    s.mail("ann@exchange.example")
        # A client certificate from the certifier: accepted.
        ctx.load_cert_chain(self.path("client.pem"))
        msg = bridgehead.make_message("ann@exchange.example", ["carol@notes.example"], "with client cert")
        with smtplib.SMTP("127.0.0.1", d.port("exchange"), timeout=30) as s:
            s.starttls(context=ctx)
            self.assertEqual(s.sendmail("ann@exchange.example", ["carol@notes.example"], msg), {})
        self.assertGreaterEqual(d.counters("ingress:exchange")["tls_handshake_failures"], 2)
        d.stop()


if __name__ == "__main__":
    unittest.main()
