"""The cleanup stage between the last byte received and the 250: the header section is held
until it ends, cleanup runs once per message (loop check, our Received: on top) and what it
refuses is answered in SMTP. Content in the spool byte-exact whichever way the header
section arrived: in one write, octet by octet, longer than a spool piece, across BDAT chunks."""

import time
import unittest

import bridgehead

HOP = b"Received: from a.example by b.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"


class CleanupTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.d = self.start_daemon(smtp={"max_received_headers": 10})

    def begin(self, c, sender="ann@exchange.example"):
        c.cmd("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")

    def assert_spooled(self, qid, content):
        """The spool has exactly our one Received: header, then the content as sent."""
        spooled = bridgehead.read_spool_content(self.d.spool_dir)[qid]
        self.assertTrue(spooled.endswith(content), spooled[:300])
        trace = spooled[:-len(content)]
        self.assertTrue(trace.startswith(b"Received: from ") and trace.endswith(b"\r\n"), trace)
        self.assertEqual(trace.count(b"Received:"), 1, trace)
        self.assertIn(b"(Bridgehead) with ESMTP id " + qid.encode(), trace.replace(b"\r\n\t", b" "))

    def test_header_section_longer_than_a_spool_piece(self):
        # 300 KiB of header fields: the first 256 KiB piece goes through cleanup before the
        # section has ended, and the rest streams on.
        fields = b"".join(b"X-Long-%05d: %s\r\n" % (i, b"v" * 80) for i in range(3200))
        content = b"Subject: long header\r\n" + fields + b"\r\nbody\r\n"
        self.assertGreater(len(fields), 256 * 1024)
        c = self.d.raw()
        c.ehlo()
        self.begin(c)
        c.cmd("DATA", 354)
        c.send(content + b".\r\n")
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        self.assert_spooled(qid, content)

    def test_header_section_octet_by_octet(self):
        content = HOP * 3 + b"Subject: slow\r\n\r\nbody line\r\n"
        c = self.d.raw()
        c.ehlo()
        self.begin(c)
        c.cmd("DATA", 354)
        for i in range(len(content)):
            c.send(content[i:i + 1])
            if content[max(0, i - 3):i + 1] == b"\r\n\r\n":
                time.sleep(0.2)  # the section's end in a read of its own
        c.send(b".\r\n")
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        self.assert_spooled(qid, content)

    def test_header_section_across_bdat_chunks(self):
        parts = [HOP * 2 + b"Subject: chunks\r", b"\n", b"\r\nbody\r\n", b"more\r\n"]
        c = self.d.raw()
        c.ehlo()
        self.begin(c)
        for p in parts[:-1]:
            c.send(b"BDAT %d\r\n" % len(p) + p)
            c.expect(250, "2.0.0", "%d octets" % len(p))
        c.send(b"BDAT %d LAST\r\n" % len(parts[-1]) + parts[-1])
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        self.assert_spooled(qid, b"".join(parts))

    def test_a_loop_found_after_the_first_read_is_refused_and_the_session_goes_on(self):
        c = self.d.raw()
        c.ehlo()
        self.begin(c, "loop@exchange.example")
        c.cmd("DATA", 354)
        c.send(HOP * 6)
        time.sleep(0.2)
        c.send(HOP * 5 + b"Subject: loop\r\n\r\n" + b"x" * 100 + b"\r\n.\r\n")
        code, lines = c.read_reply()
        self.assertEqual((code, lines[-1][:5]), (554, "5.4.6"), lines)
        # A BDAT chunk that brings the loop is refused at once (RFC 3030 4.2).
        self.begin(c, "loop2@exchange.example")
        chunk = HOP * 11 + b"Subject: loop\r\n\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        code, lines = c.read_reply()
        self.assertEqual((code, lines[-1][:5]), (554, "5.4.6"), lines)
        self.begin(c, "fine@exchange.example")
        c.cmd("DATA", 354)
        content = HOP * 10 + b"Subject: ten hops\r\n\r\nbody\r\n"
        c.send(content + b".\r\n")
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        self.assertEqual([m["id"] for m in self.d.queue()], [qid])
        self.assert_spooled(qid, content)
        counters = self.d.counters("ingress:exchange")
        self.assertEqual(counters.get("messages_refused"), 2, counters)
        self.assertEqual(counters.get("messages_accepted"), 1, counters)
        self.assertEqual(counters.get("bytes_accepted"), len(content), counters)


if __name__ == "__main__":
    unittest.main()
