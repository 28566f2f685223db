"""STARTTLS: swaks --tls and Python ssl; plaintext pipelined after STARTTLS is discarded
(CVE-2011-0411); STARTTLS twice; STARTTLS refused without a certificate and inside a
transaction; a TLS message is queued with ESMTPS in its Received header."""

import ssl
import unittest

import bridgehead


class StartTlsTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.d = self.start_daemon(tls=True)

    def test_swaks_tls(self):
        rc, out = self.d.swaks("--tls", "--from", "ann@exchange.example", "--to", "carol@notes.example",
                               "--header", "Subject: over tls")
        self.assertIn("<-  220 2.0.0 Ready to start TLS", out)
        self.assertRegex(out, r"TLS started with cipher TLSv1\.[23]")
        qid = bridgehead.queue_id(out)
        self.assertQueued(self.d, qid, "ann@exchange.example", ["carol@notes.example"])
        content = bridgehead.read_spool_content(self.d.spool_dir)[qid]
        self.assertIn(b"with ESMTPS id " + qid.encode(), content)
        self.assertGreaterEqual(self.d.process("ingress:exchange")["counters"].get("tls_sessions", 0), 1)

    def test_python_ssl_with_certificate_check(self):
        import smtplib
        ctx = ssl.create_default_context(cafile=self.d.cert)
        s = self.d.smtplib("notes")
        s._host = "bridgehead.test"  # the certificate's name
        s.ehlo()
        code, _ = s.starttls(context=ctx)
        self.assertEqual(code, 220)
        self.assertEqual(s.sock.version()[:6], "TLSv1.")
        cert = s.sock.getpeercert()
        self.assertIn(("commonName", "bridgehead.test"), [x[0] for x in cert["subject"]])
        s.ehlo()
        self.assertFalse(s.has_extn("starttls"))
        refused = s.sendmail("carol@notes.example", ["alice@exchange.example"],
                             bridgehead.make_message("carol@notes.example", ["alice@exchange.example"]))
        self.assertEqual(refused, {})
        s.quit()
        self.assertEqual([m["from"] for m in self.d.queue()], ["carol@notes.example"])

    def test_plaintext_pipelined_after_starttls_is_discarded(self):
        c = self.d.raw()
        c.ehlo()
        c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@exchange.example>\r\n")
        lines = c.expect(220, "2.0.0")
        c.starttls()
        # Inside TLS: the first reply we get must answer our own command, not the RSET.
        c.cmd("NOOP", 250, "2.0.0")
        lines = c.cmd("EHLO client.exchange.example", 250)
        self.assertIn("PIPELINING", lines)
        # The injected MAIL was not executed: a MAIL now is not "nested".
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(b"Subject: t\r\n\r\nt\r\n.\r\n")
        c.expect(250, "2.0.0")
        c.cmd("QUIT", 221)
        self.assertEqual(self.senders(self.d), ["ann@exchange.example"])

    def test_tls_session_forgets_ehlo(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("STARTTLS", 220, "2.0.0")
        c.starttls()
        c.cmd("MAIL FROM:<ann@exchange.example>", 503, "5.5.1")  # RFC 3207 4.2: EHLO again first
        c.cmd("EHLO client.exchange.example", 250)
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")

    def test_starttls_twice(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("STARTTLS", 220, "2.0.0")
        c.starttls()
        c.cmd("STARTTLS", 503, "5.5.1")
        c.cmd("EHLO client.exchange.example", 250)
        c.cmd("STARTTLS", 503, "5.5.1")
        c.cmd("NOOP", 250, "2.0.0")

    def test_starttls_with_argument_or_inside_transaction(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("STARTTLS now", 501, "5.5.4")
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        c.cmd("STARTTLS", 503, "5.5.1")
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("STARTTLS", 220, "2.0.0")

    def test_failed_handshake_closes_and_is_counted(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("STARTTLS", 220, "2.0.0")
        c.send(b"this is not a TLS ClientHello\r\n\r\n")
        c.assert_closed()
        self.d.wait_for(lambda: self.d.process("ingress:exchange")["counters"].get("tls_handshake_failures", 0) >= 1,
                        "tls_handshake_failures counter")
        self.assertEqual(self.d.process("ingress:exchange")["state"], "running")

    def test_openssl_s_client_starttls(self):
        import subprocess
        openssl = self.require("openssl")
        r = subprocess.run([openssl, "s_client", "-connect", "127.0.0.1:%d" % self.d.port(), "-starttls", "smtp",
                            "-CAfile", self.d.cert, "-verify_return_error", "-servername", "bridgehead.test",
                            "-quiet"],
                           input=b"EHLO x.test\r\nQUIT\r\n", capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        self.assertIn("250-PIPELINING", out, r.stderr)
        self.assertNotIn("STARTTLS", out)
        self.assertIn("221 2.0.0", out)


class NoTlsTest(bridgehead.TestCase):
    def test_starttls_without_certificate(self):
        d = self.start_daemon()
        c = d.raw()
        c.ehlo()
        c.cmd("STARTTLS", 454, "4.7.0")
        c.cmd("NOOP", 250, "2.0.0")


if __name__ == "__main__":
    unittest.main()
