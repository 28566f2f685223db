"""EHLO extensions, HELO, and the commands that do not move mail: VRFY, RSET, NOOP, QUIT,
HELP, EXPN, AUTH, unknown commands."""

import unittest

import bridgehead


class SmtpExtensionsTest(bridgehead.TestCase):
    def test_ehlo_advertises_every_extension_without_starttls(self):
        d = self.start_daemon(smtp={"max_message_size": "10MiB"})
        c = d.raw()
        greeting = c.greeting()
        self.assertIn("bridgehead.test", greeting[0])
        lines = c.cmd("EHLO client.exchange.example", 250)
        self.assertEqual(lines[0].split()[0], "bridgehead.test")
        keywords = [l.split()[0].upper() for l in lines[1:]]
        for kw in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN", "SMTPUTF8", "CHUNKING"):
            self.assertIn(kw, keywords, lines)
        self.assertNotIn("STARTTLS", keywords, "STARTTLS offered without a certificate: %r" % lines)
        self.assertIn("SIZE %d" % (10 << 20), lines)
        self.assertEqual(len(keywords), len(set(keywords)), lines)
        c.cmd("QUIT", 221, "2.0.0")
        c.assert_closed()

    def test_ehlo_offers_starttls_only_with_tls_configured_and_not_inside_tls(self):
        d = self.start_daemon(tls=True)
        for system in ("exchange", "notes"):
            c = d.raw(system)
            lines = c.ehlo()
            self.assertIn("STARTTLS", [l.upper() for l in lines[1:]], lines)
            c.cmd("STARTTLS", 220, "2.0.0")
            c.starttls()
            lines = c.cmd("EHLO client.exchange.example", 250)
            self.assertNotIn("STARTTLS", [l.upper() for l in lines[1:]], lines)
            self.assertIn("CHUNKING", lines)

    def test_helo_is_single_line_and_refuses_esmtp_parameters(self):
        d = self.start_daemon()
        c = d.raw()
        c.greeting()
        lines = c.cmd("HELO client.exchange.example", 250)
        self.assertEqual(lines, ["bridgehead.test"])
        c.cmd("MAIL FROM:<x@exchange.example> SIZE=100", 555, "5.5.4")
        c.cmd("MAIL FROM:<x@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example> NOTIFY=NEVER", 555, "5.5.4")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send("Subject: helo\r\n\r\nbody\r\n.\r\n")
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        c.cmd("QUIT", 221, "2.0.0")
        self.assertQueued(d, qid, "x@exchange.example", ["carol@notes.example"])

    def test_commands_before_helo_and_bad_helo(self):
        d = self.start_daemon()
        c = d.raw()
        c.greeting()
        c.cmd("MAIL FROM:<x@exchange.example>", 503, "5.5.1")
        c.cmd("EHLO", 501, "5.5.4")
        c.cmd("HELO not a domain", 501, "5.5.4")
        c.cmd("EHLO [127.0.0.1]", 250)

    def test_vrfy_rset_noop_help_expn_auth_unknown(self):
        d = self.start_daemon()
        c = d.raw()
        c.ehlo()
        c.cmd("VRFY carol@notes.example", 252, "2.5.0")
        c.cmd("VRFY nobody@notes.example", 252, "2.5.0")  # never tells users apart
        c.cmd("VRFY", 501, "5.5.4")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("HELP", 214, "2.0.0")
        c.cmd("EXPN staff", 502, "5.5.1")
        c.cmd("AUTH PLAIN AGVhbWU=", 502, "5.5.1")
        c.cmd("FROB something", 500, "5.5.1")
        c.cmd("", 500, "5.5.2")
        c.cmd("DATA now", 501, "5.5.4")
        # RSET drops the transaction: RCPT afterwards is out of sequence.
        c.cmd("MAIL FROM:<x@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("RCPT TO:<carol@notes.example>", 503, "5.5.1")
        c.cmd("DATA", 503, "5.5.1")
        c.cmd("MAIL FROM:<x@exchange.example>", 250, "2.1.0")
        c.cmd("MAIL FROM:<x@exchange.example>", 503, "5.5.1")  # nested MAIL
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("QUIT", 221, "2.0.0")
        c.assert_closed()
        self.assertEqual(d.queue(), [])

    def test_commands_are_case_insensitive(self):
        d = self.start_daemon()
        c = d.raw()
        c.greeting()
        c.cmd("ehlo client.exchange.example", 250)
        c.cmd("mail from:<x@exchange.example>", 250, "2.1.0")
        c.cmd("rcpt to:<CAROL@NOTES.EXAMPLE>", 250, "2.1.5")
        c.cmd("rset", 250, "2.0.0")
        c.cmd("quit", 221, "2.0.0")

    def test_swaks_session_sees_the_extensions(self):
        d = self.start_daemon()
        rc, out = d.swaks("--to", "carol@notes.example", "--from", "ann@exchange.example", "--quit-after", "EHLO")
        for kw in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN", "SMTPUTF8", "CHUNKING"):
            self.assertRegex(out, r"<-  250[- ]%s" % kw)


if __name__ == "__main__":
    unittest.main()
