"""Recipient policy: no open relay, no mail to the sending system's own domain, unknown
users refused at RCPT; CR/LF/NUL inside commands, addresses and parameters refused."""

import unittest

import bridgehead


class RelayTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.d = self.start_daemon()

    def test_open_relay_attempt_is_refused_and_nothing_queued(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<spammer@exchange.example>", 250, "2.1.0")
        for rcpt in ("victim@gmail.com", "victim@notes.example.evil.com", "x@example.org", "carol@[127.0.0.1]",
                     "carol%notes.example@gmail.com", "@gmail.com:carol@evil.example"):
            c.cmd("RCPT TO:<%s>" % rcpt, 554, "5.7.1")
        c.cmd("DATA", 554, "5.5.1")
        c.cmd("QUIT", 221)
        rc, out = self.d.swaks("--from", "spammer@exchange.example", "--to", "victim@gmail.com", check=False)
        self.assertRegex(out, r"<\*\* 554 5\.7\.1 ")
        self.assertNotEqual(rc, 0)
        self.assertEqual(self.d.queue(), [])

    def test_recipient_in_the_sending_systems_own_domain_is_refused(self):
        for system, own in (("exchange", "alice@exchange.example"), ("notes", "carol@notes.example")):
            c = self.d.raw(system)
            c.ehlo()
            c.cmd("MAIL FROM:<x@%s.example>" % system, 250, "2.1.0")
            c.cmd("RCPT TO:<%s>" % own, 554, "5.7.1")
            c.cmd("RCPT TO:<%s>" % own.upper(), 554, "5.7.1")
            c.cmd("QUIT", 221)
        self.assertEqual(self.d.queue(), [])

    def test_unknown_user_of_the_other_system(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<nobody@notes.example>", 550, "5.1.1")
        c.cmd("RCPT TO:<Carol@Notes.Example>", 250, "2.1.5")  # case-insensitive
        c.cmd("RCPT TO:<postmaster>", 554, "5.7.1")
        c.cmd("DATA", 354)
        c.send("Subject: x\r\n\r\nx\r\n.\r\n")
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        self.assertQueued(self.d, qid, "ann@exchange.example", ["Carol@Notes.Example"])

    def test_cr_lf_nul_inside_commands_are_refused(self):
        c = self.d.raw()
        c.ehlo()
        # A bare CR would let a second command hide in the first (smuggling into the envelope).
        c.send(b"MAIL FROM:<a@exchange.example>\rRCPT TO:<carol@notes.example>\r\n")
        c.expect(500, "5.5.2")
        c.cmd("RCPT TO:<carol@notes.example>", 503, "5.5.1")  # the MAIL never happened
        c.send(b"MAIL FROM:<a\r@exchange.example>\r\n")
        c.expect(500, "5.5.2")
        c.send(b"MAIL FROM:<a@exchange.example>\x00 SIZE=10\r\n")
        c.expect(500, "5.5.2")
        c.cmd("MAIL FROM:<a@exchange.example>", 250, "2.1.0")
        c.send(b"RCPT TO:<carol@notes.example>\rDATA\r\n")
        c.expect(500, "5.5.2")
        c.send(b"RCPT TO:<carol@notes.example> NOTIFY=SUCCESS\r ORCPT=rfc822;x@y\r\n")
        c.expect(500, "5.5.2")
        c.cmd("RCPT TO:<carol@notes.example> ORCPT=rfc822;x+0Dy@notes.example", 555, "5.5.4")
        c.cmd("RCPT TO:<carol@notes.example> ORCPT=rfc822;x+0Ay@notes.example", 555, "5.5.4")
        # No RCPT was accepted (they failed as syntax): DATA is refused, either as out of
        # sequence (503) or as "no valid recipients" (554).
        c.send("DATA\r\n")
        code, lines = c.read_reply()
        self.assertIn(code, (503, 554), lines)
        self.assertTrue(lines[-1].startswith("5.5.1 "), lines)
        c.cmd("EHLO a\tb", 500, "5.5.2")
        # Bare LF ends a command line (as in Postfix) but the text before it is one command.
        c.send(b"NOOP\n")
        c.expect(250, "2.0.0")
        c.cmd("QUIT", 221)
        self.assertEqual(self.d.queue(), [])

    def test_address_syntax(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:ann@exchange.example", 501, "5.5.4")
        c.cmd("MAIL FROM:<ann@exchange.example", 501, "5.5.4")
        c.cmd("MAIL FROM:<ann@@exchange.example>", 553, "5.1.3")
        c.cmd("MAIL FROM:<%s@exchange.example>" % ("x" * 65), 553, "5.1.3")
        c.cmd("MAIL FROM:<ann@exchange.example> FOO=BAR", 555, "5.5.4")
        c.cmd("MAIL FROM: <ann@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<>", 553, "5.1.3")
        c.cmd("RCPT TO:<@relay.example:carol@notes.example>", 250, "2.1.5")  # source route ignored


if __name__ == "__main__":
    unittest.main()
