"""BDAT / CHUNKING (RFC 3030): several chunks + LAST, BDAT 0 LAST, BDAT without MAIL or
without an accepted recipient (chunk consumed, error, session in sync), BDAT mixed with
DATA, content in the spool byte-exact, chunk data never parsed as commands."""

import unittest

import bridgehead


class ChunkingTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.d = self.start_daemon()

    def begin(self, c, sender="ann@exchange.example"):
        c.cmd("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")

    def bdat(self, c, data, last=False):
        c.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)

    def spooled(self, qid):
        return bridgehead.read_spool_content(self.d.spool_dir)[qid]

    def test_several_chunks_then_last(self):
        c = self.d.raw()
        c.ehlo()
        self.begin(c)
        # Chunks split anywhere: inside CRLF, inside a header, a line starting with ".".
        parts = [b"Subject: chunked\r", b"\n\r\n.not stuffed\r\n", b"QUIT\r\nRSET\r\n", b"\r\n.\r\n", b"end\r\n"]
        for p in parts[:-1]:
            self.bdat(c, p)
            c.expect(250, "2.0.0", "%d octets" % len(p))
        self.bdat(c, parts[-1], last=True)
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        c.cmd("NOOP", 250, "2.0.0")
        content = self.spooled(qid)
        body = b"".join(parts)
        self.assertTrue(content.startswith(b"Received: "), content[:80])
        self.assertTrue(content.endswith(body), content)
        received = content[:-len(body)]
        self.assertTrue(received.endswith(b"\r\n") and received.count(b"Received:") == 1, received)
        self.assertEqual(self.d.queued_by_id()[qid]["size"], len(content))

    def test_pipelined_chunks_in_one_write(self):
        c = self.d.raw()
        c.ehlo()
        chunk1 = b"Subject: one write\r\n\r\n" + (b"x" * 68 + b"\r\n") * 1000
        chunk2 = b"tail\r\n"
        c.send(b"MAIL FROM:<ann@exchange.example>\r\nRCPT TO:<carol@notes.example>\r\n" +
               b"BDAT %d\r\n" % len(chunk1) + chunk1 + b"BDAT %d LAST\r\n" % len(chunk2) + chunk2 + b"NOOP\r\n")
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(250, "2.0.0", "%d octets" % len(chunk1))
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        c.expect(250, "2.0.0")
        self.assertTrue(self.spooled(qid).endswith(chunk1 + chunk2))

    def test_bdat_0_last_and_data_sizes_agree(self):
        c = self.d.raw()
        c.ehlo()
        self.begin(c)
        qid_bdat = bridgehead.queue_id(c.cmd("BDAT 0 LAST", 250, "2.0.0")[-1])
        self.assertEqual([m["id"] for m in self.d.queue()], [qid_bdat])
        self.assertEqual(self.spooled(qid_bdat)[:9], b"Received:")
        # The same empty message by DATA, on the same connection: same size (only the
        # Received header, whose length does not depend on the transfer).
        self.begin(c)
        c.cmd("DATA", 354)
        c.send(b".\r\n")
        qid_data = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        q = self.d.queued_by_id()
        self.assertEqual(q[qid_bdat]["size"], q[qid_data]["size"])
        self.assertEqual(q[qid_bdat]["size"], len(self.spooled(qid_bdat)))
        # And a 1000-byte message is exactly 1000 bytes bigger.
        body = (b"a" * 98 + b"\r\n") * 10
        self.begin(c)
        self.bdat(c, body[:333])
        c.expect(250, "2.0.0")
        self.bdat(c, body[333:], last=True)
        qid_k = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        self.assertEqual(self.d.queued_by_id()[qid_k]["size"], q[qid_data]["size"] + 1000)

    def test_bdat_without_mail_consumes_the_chunk(self):
        c = self.d.raw()
        c.ehlo()
        evil = b"MAIL FROM:<evil@exchange.example>\r\nRCPT TO:<carol@notes.example>\r\nDATA\r\n"
        self.bdat(c, evil, last=True)
        c.expect(503, "5.5.1")
        # In sync: the chunk was not read as commands, the next reply answers NOOP.
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")  # not nested: no MAIL ran
        c.cmd("RSET", 250, "2.0.0")
        # Non-LAST chunk without MAIL, then LAST.
        self.bdat(c, evil)
        c.expect(503, "5.5.1")
        c.cmd("NOOP", 250, "2.0.0")
        self.assertEqual(self.d.queue(), [])

    def test_bdat_when_every_recipient_failed(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<nobody@notes.example>", 550, "5.1.1")
        self.bdat(c, b"Subject: x\r\n\r\nRSET\r\n", last=True)
        c.expect(554, "5.5.1")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")  # the transaction was reset
        self.assertEqual(self.d.queue(), [])

    def test_bdat_before_helo_and_after_helo(self):
        c = self.d.raw()
        c.greeting()
        c.send(b"BDAT 4 LAST\r\nNOOP")
        c.expect(503, "5.5.1")
        c.cmd("HELO client.test", 250)
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.send(b"BDAT 4 LAST\r\nRSET")  # CHUNKING is an ESMTP extension
        c.expect(503, "5.5.1")
        c.cmd("NOOP", 250, "2.0.0")
        self.assertEqual(self.d.queue(), [])

    def test_data_inside_bdat_transaction_and_bad_bdat_syntax(self):
        c = self.d.raw()
        c.ehlo()
        self.begin(c)
        self.bdat(c, b"Subject: x\r\n")
        c.expect(250, "2.0.0")
        c.cmd("DATA", 503, "5.5.1")
        c.cmd("RCPT TO:<dave@notes.example>", 503, "5.5.1")
        c.cmd("BDAT", 501, "5.5.4")
        c.cmd("BDAT x LAST", 501, "5.5.4")
        c.cmd("BDAT 5 FIRST", 501, "5.5.4")
        self.bdat(c, b"\r\nbody\r\n", last=True)
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        self.assertTrue(self.spooled(qid).endswith(b"Subject: x\r\n\r\nbody\r\n"))
        self.assertEqual(self.d.queued_by_id()[qid]["recipients"], ["carol@notes.example"])

    def test_rset_aborts_a_bdat_transaction(self):
        c = self.d.raw()
        c.ehlo()
        self.begin(c)
        self.bdat(c, b"Subject: aborted\r\n\r\n")
        c.expect(250, "2.0.0")
        c.cmd("RSET", 250, "2.0.0")
        self.bdat(c, b"x\r\n", last=True)
        c.expect(503, "5.5.1")
        self.begin(c, "second@exchange.example")
        self.bdat(c, b"Subject: kept\r\n\r\nok\r\n", last=True)
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        self.assertEqual(self.senders(self.d), ["second@exchange.example"])
        self.assertTrue(self.spooled(qid).endswith(b"Subject: kept\r\n\r\nok\r\n"))


if __name__ == "__main__":
    unittest.main()
