"""SMTP smuggling (CVE-2023-51764 and variants): only CRLF.CRLF ends DATA. With
bare_linefeed=reject a bare LF/CR gives 550 5.6.0 and the smuggled transaction never runs;
with normalize the message is accepted and the smuggled part stays content."""

import unittest

import bridgehead

SMUGGLED = "smuggled@exchange.example"
VARIANTS = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
    "cr-cr-lf-dot-crlf": b"\r\r\n.\r\n",
}


def smuggle_payload(ending):
    return (b"Subject: smuggling\r\n\r\nfirst part" + ending +
            b"MAIL FROM:<" + SMUGGLED.encode() + b">\r\nRCPT TO:<dave@notes.example>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled body\r\n.\r\n")


class SmugglingTest(bridgehead.TestCase):
    def send(self, d, ending):
        """Sends one smuggling attempt, then a marker NOOP; returns the replies after DATA's 354."""
        c = d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.cmd("DATA", 354)
        # One write: the whole attempt, then the real end of data, then NOOP.
        c.send(smuggle_payload(ending) + b"NOOP\r\n")
        replies = []
        while True:
            code, lines = c.read_reply()
            replies.append((code, lines[-1]))
            if code == 250 and lines[-1].startswith("2.0.0 Ok") and "queued" not in lines[-1]:
                break  # the NOOP's reply
            if len(replies) > 6:
                break
        c.cmd("QUIT", 221)
        return replies

    def test_reject_policy(self):
        d = self.start_daemon(smtp={"bare_linefeed": "reject"})
        for name, ending in VARIANTS.items():
            with self.subTest(name):
                replies = self.send(d, ending)
                # Exactly one reply for the message, then the NOOP's: the smuggled MAIL,
                # RCPT and DATA were content and got no reply of their own.
                self.assertEqual(len(replies), 2, replies)
                self.assertEqual(replies[0][0], 550, replies)
                self.assertTrue(replies[0][1].startswith("5.6.0 "), replies)
        self.assertEqual(d.queue(), [])
        self.assertEqual(d.process("ingress:exchange")["state"], "running")

    def test_normalize_policy(self):
        d = self.start_daemon(smtp={"bare_linefeed": "normalize"})
        ids = {}
        for name, ending in VARIANTS.items():
            with self.subTest(name):
                replies = self.send(d, ending)
                self.assertEqual(len(replies), 2, replies)
                self.assertEqual(replies[0][0], 250, replies)
                ids[name] = bridgehead.queue_id(replies[0][1])
        q = d.queued_by_id()
        self.assertEqual(sorted(q), sorted(ids.values()), "one message per attempt, not two")
        self.assertNotIn(SMUGGLED, [m["from"] for m in q.values()])
        spooled = bridgehead.read_spool_content(d.spool_dir)
        for name, qid in ids.items():
            with self.subTest(name):
                content = spooled[qid]
                self.assertEqual(q[qid]["recipients"], ["carol@notes.example"])
                # The smuggled commands are content, with CRLF line ends, dot kept.
                self.assertIn(b"MAIL FROM:<smuggled@exchange.example>\r\n", content)
                self.assertIn(b"smuggled body\r\n", content)
                self.assertNotIn(b"\r\r", content)
                for i, ch in enumerate(content):
                    if ch == 0x0A:
                        self.assertEqual(content[i - 1], 0x0D, "bare LF kept at %d: %r" % (i, content))
                    if ch == 0x0D:
                        self.assertEqual(content[i + 1], 0x0A, "bare CR kept at %d: %r" % (i, content))

    def test_proper_end_then_pipelined_mail_is_a_second_message(self):
        # The control: with a real CRLF.CRLF the following MAIL is a command.
        d = self.start_daemon()
        replies = self.send(d, b"\r\n.\r\n")
        self.assertEqual([r[0] for r in replies[:4]], [250, 250, 250, 354], replies)
        self.assertEqual(sorted(self.senders(d)), ["ann@exchange.example", SMUGGLED])

    def test_bare_lf_inside_bdat_is_rejected_too(self):
        d = self.start_daemon(smtp={"bare_linefeed": "reject"})
        c = d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        chunk = b"Subject: x\r\n\r\nline\nMAIL FROM:<x@y>\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        c.expect(550, "5.6.0")
        c.cmd("NOOP", 250, "2.0.0")
        self.assertEqual(d.queue(), [])


if __name__ == "__main__":
    unittest.main()
