"""PIPELINING (RFC 2920): a whole transaction in one write, replies in order, 554 5.5.1 for
DATA when every RCPT failed, no reply before the group is read; load from smtp-source."""

import re
import subprocess
import unittest

import bridgehead


class PipeliningTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.d = self.start_daemon()

    def test_transaction_in_one_write(self):
        c = self.d.raw()
        c.ehlo()
        c.send(b"MAIL FROM:<ann@exchange.example>\r\n"
               b"RCPT TO:<carol@notes.example>\r\n"
               b"RCPT TO:<nobody@notes.example>\r\n"
               b"RCPT TO:<victim@elsewhere.example>\r\n"
               b"RCPT TO:<dave@notes.example>\r\n"
               b"DATA\r\n")
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(550, "5.1.1")
        c.expect(554, "5.7.1")
        c.expect(250, "2.1.5")
        c.expect(354)
        c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<bob2@exchange.example>\r\n"
               b"RCPT TO:<carol@notes.example>\r\nDATA\r\n")
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(354)
        c.send(b"Subject: second\r\n\r\n.\r\nQUIT\r\n")
        qid2 = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        c.expect(221, "2.0.0")
        c.assert_closed()
        self.assertQueued(self.d, qid, "ann@exchange.example", ["carol@notes.example", "dave@notes.example"])
        self.assertQueued(self.d, qid2, "bob2@exchange.example", ["carol@notes.example"])

    def test_data_after_all_recipients_failed_is_554(self):
        c = self.d.raw()
        c.ehlo()
        c.send(b"MAIL FROM:<ann@exchange.example>\r\n"
               b"RCPT TO:<nobody@notes.example>\r\n"
               b"RCPT TO:<alice@exchange.example>\r\n"
               b"DATA\r\n"
               b"Subject: must not become a message\r\n"
               b"NOOP\r\n")
        c.expect(250, "2.1.0")
        c.expect(550, "5.1.1")
        c.expect(554, "5.7.1")
        c.expect(554, "5.5.1")
        # The "message" lines that followed are commands now (as RFC 2920 says): an unknown
        # command, then NOOP, and the session is in sync.
        c.expect(500, "5.5.1")
        c.expect(250, "2.0.0")
        c.cmd("RSET", 250, "2.0.0")
        self.assertEqual(self.d.queue(), [])

    def test_replies_are_not_sent_before_the_group_is_read(self):
        # All replies of a pipelined group arrive; in order; one per command, and the
        # server does not deadlock while the client has not read anything (RFC 2920 3.1).
        c = self.d.raw()
        c.ehlo()
        n = 900  # below max_recipients (1000)
        c.send(b"NOOP\r\n" * 50 + b"RSET\r\n" * 10 + b"MAIL FROM:<ann@exchange.example>\r\n" +
               b"RCPT TO:<carol@notes.example>\r\n" * n + b"RSET\r\n")
        for _ in range(60):
            c.expect(250, "2.0.0")
        c.expect(250, "2.1.0")
        for _ in range(n):
            c.expect(250, "2.1.5")
        c.expect(250, "2.0.0")

    def test_smtp_source_load(self):
        exe = self.require("smtp-source")
        r = subprocess.run([exe, "-s", "10", "-m", "300", "-l", "4096",
                            "-f", "load@notes.example", "-t", "alice@exchange.example",
                            "127.0.0.1:%d" % self.d.port("notes")], capture_output=True, timeout=180)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.strip(), b"", r.stderr)
        q = self.d.queue()
        self.assertEqual(len(q), 300)
        self.assertEqual({m["from"] for m in q}, {"load@notes.example"})
        self.assertTrue(all(m["system"] == "notes" for m in q))
        self.assertTrue(all(m["size"] > 4096 for m in q), [m["size"] for m in q][:5])
        counters = self.d.process("ingress:notes")["counters"]
        self.assertEqual(counters.get("messages_accepted"), 300, counters)
        # The spool's group commit: fewer fsync batches than messages under concurrency.
        spool = self.d.process("spool")["counters"]
        self.assertEqual(spool.get("commits"), 300, spool)

    def test_smtp_source_one_message_per_connection(self):
        exe = self.require("smtp-source")
        # -d: disconnect after each message (connection set-up and tear-down under load).
        r = subprocess.run([exe, "-s", "5", "-m", "50", "-l", "2000", "-d",
                            "-f", "load@exchange.example", "-t", "carol@notes.example",
                            "127.0.0.1:%d" % self.d.port()], capture_output=True, timeout=180)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.d.queue()), 50)


if __name__ == "__main__":
    unittest.main()
