"""A transaction reset after part of a message arrived (BDAT chunks, then RSET, EHLO, HELO,
STARTTLS, a refused chunk, a refused end of data, a failed spool write, the client gone or
timed out): nothing of it reaches the next message, and the spool forgets it (no message
left half-received, pinning its segments). The delivered message is compared whole: the
only thing in front of what the client sent is the one Received header of its own
transaction, which names the client's address."""

import os
import re
import subprocess
import time
import unittest

import bridgehead

SENDER = "ann@exchange.example"
FIRST_RCPT = "carol@notes.example"   # the transaction that is reset
SECOND_RCPT = "dave@notes.example"   # the one that is delivered
HELO = "client.exchange.example"

# The reproduction: 25 bytes of headers in the first transaction.
SMALL_CHUNK = b"X-Injected: plaintext\r\n\r\n"
assert len(SMALL_CHUNK) == 25
# More than one spool piece (256 KiB): this part is written to the spool before the reset.
LARGE_CHUNK = (b"X-Aborted: " + b"a" * 67 + b"\r\n") * 4000

DAY = rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000"


def received_pattern(qid, rcpt, with_, helo=HELO, eol=b"\r\n"):
    """The exact Received header Bridgehead prepends for a one-recipient transaction."""
    return (b"Received: from " + re.escape(helo.encode()) + rb" \(\[127\.0\.0\.1\]\)" + re.escape(eol) +
            rb"\tby bridgehead\.test \(Bridgehead\) with " + with_.encode() + b" id " + qid.encode() +
            re.escape(eol) + rb"\tfor <" + re.escape(rcpt.encode()) + b">; " + DAY + re.escape(eol))


def to_lf(data):
    return data.replace(b"\r\n", b"\n")


class ResetCase(bridgehead.TestCase):
    def bdat(self, c, data, last=False):
        c.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)

    def begin(self, c, rcpt):
        c.cmd("MAIL FROM:<%s>" % SENDER, 250, "2.1.0")
        c.cmd("RCPT TO:<%s>" % rcpt, 250, "2.1.5")

    def partial_bdat(self, c, chunk):
        """A transaction to FIRST_RCPT left open after one non-LAST chunk."""
        self.begin(c, FIRST_RCPT)
        self.bdat(c, chunk)
        c.expect(250, "2.0.0", "%d octets" % len(chunk))

    def second_by_bdat(self, c, message):
        self.begin(c, SECOND_RCPT)
        self.bdat(c, message, last=True)
        return bridgehead.queue_id(c.expect(250, "2.0.0", "queued as")[-1])

    def second_by_data(self, c, message):
        self.begin(c, SECOND_RCPT)
        c.cmd("DATA", 354)
        c.send(bridgehead.dot_stuff(message) + b".\r\n")
        return bridgehead.queue_id(c.expect(250, "2.0.0", "queued as")[-1])

    def message(self, subject):
        return bridgehead.make_message(SENDER, [SECOND_RCPT], subject).encode()

    def assert_spool_forgot_everything(self, d):
        """No message is left half-received in the spool (its space would be pinned)."""
        def settled():
            gauges = d.gauges("spool")
            self.assertIn("receiving", gauges, "the spool's status has no 'receiving' gauge")
            return gauges["receiving"] == 0 or None
        try:
            d.wait_for(settled, "the spool to hold no half-received message", timeout=bridgehead.IO_TIMEOUT)
        except AssertionError:
            self.fail("the spool still holds %d half-received message(s) after the transaction was reset\n%s" % (
                d.gauges("spool")["receiving"], d.log_tail()))


class TransactionResetTest(ResetCase):
    def setUp(self):
        super().setUp()
        self.d = self.start_daemon(tls=True, delivery={"notes": "maildir"})

    def assert_delivered_exactly(self, qid, message, with_="ESMTP", helo=HELO):
        """The whole delivered file: Maildir's two lines, our one Received, the message."""
        [(path, got)] = self.d.wait_maildir("notes", SECOND_RCPT)
        self.d.wait_queue_empty()
        self.assert_spool_forgot_everything(self.d)
        self.assertEqual(self.d.maildir("notes", FIRST_RCPT), [], "the reset transaction's recipient got mail")
        self.assertEqual(self.d.counters("ingress:exchange")["messages_accepted"], 1)
        self.assertEqual(self.d.counters("spool")["commits"], 1, "more than the one message was committed")
        expected = (re.escape(b"Return-Path: <%s>\nDelivered-To: %s\n" % (SENDER.encode(), SECOND_RCPT.encode())) +
                    received_pattern(qid, SECOND_RCPT, with_, helo, eol=b"\n") + re.escape(to_lf(message)))
        self.assertIsNotNone(re.fullmatch(expected, got, re.S),
                             "delivered message is not exactly our Received header + the message sent:\n%r" % got[:600])

    def test_rset_after_a_bdat_chunk(self):
        c = self.d.raw()
        c.ehlo()
        self.partial_bdat(c, SMALL_CHUNK)
        c.cmd("RSET", 250, "2.0.0")
        message = self.message("after RSET")
        qid = self.second_by_bdat(c, message)
        c.cmd("QUIT", 221)
        self.assert_delivered_exactly(qid, message)

    def test_rset_after_a_spooled_bdat_chunk(self):
        c = self.d.raw()
        c.ehlo()
        self.partial_bdat(c, LARGE_CHUNK)
        c.cmd("RSET", 250, "2.0.0")
        message = self.message("after RSET, large first chunk")
        qid = self.second_by_bdat(c, message)
        c.cmd("QUIT", 221)
        self.assert_delivered_exactly(qid, message)

    def test_ehlo_after_a_bdat_chunk(self):
        c = self.d.raw()
        c.ehlo()
        self.partial_bdat(c, LARGE_CHUNK + SMALL_CHUNK)
        c.cmd("EHLO other.exchange.example", 250)
        message = self.message("after EHLO")
        qid = self.second_by_bdat(c, message)
        c.cmd("QUIT", 221)
        self.assert_delivered_exactly(qid, message, helo="other.exchange.example")

    def test_helo_after_a_bdat_chunk(self):
        # After HELO there is no BDAT (it is an ESMTP extension): the next message is DATA.
        c = self.d.raw()
        c.ehlo()
        self.partial_bdat(c, LARGE_CHUNK)
        c.cmd("HELO other.exchange.example", 250)
        message = self.message("after HELO")
        qid = self.second_by_data(c, message)
        c.cmd("QUIT", 221)
        self.assert_delivered_exactly(qid, message, with_="SMTP", helo="other.exchange.example")

    def test_data_after_a_partly_spooled_bdat_transaction(self):
        c = self.d.raw()
        c.ehlo()
        self.partial_bdat(c, LARGE_CHUNK)
        # DATA inside the BDAT transaction is refused and changes nothing...
        c.cmd("DATA", 503, "5.5.1")
        c.cmd("RSET", 250, "2.0.0")
        # ...a DATA transaction after the reset starts from nothing.
        message = self.message("DATA after BDAT")
        qid = self.second_by_data(c, message)
        c.cmd("QUIT", 221)
        self.assert_delivered_exactly(qid, message)

    def starttls_after_plaintext_chunk(self, reset):
        # A man in the middle writes a transaction with a plaintext chunk and resets it
        # before the client's STARTTLS: nothing of it may reach the message sent inside TLS.
        c = self.d.raw()
        c.ehlo()
        self.partial_bdat(c, SMALL_CHUNK + LARGE_CHUNK)
        c.cmd("STARTTLS", 503, "5.5.1")  # not inside a transaction
        c.cmd(reset, 250)
        c.cmd("STARTTLS", 220, "2.0.0")
        c.starttls()
        c.cmd("EHLO " + HELO, 250)
        message = self.message("inside TLS after " + reset)
        qid = self.second_by_bdat(c, message)
        c.cmd("QUIT", 221)
        self.assert_delivered_exactly(qid, message, with_="ESMTPS")

    def test_starttls_after_a_plaintext_chunk_and_rset(self):
        self.starttls_after_plaintext_chunk("RSET")

    def test_starttls_after_a_plaintext_chunk_and_ehlo(self):
        self.starttls_after_plaintext_chunk("EHLO " + HELO)

    def test_refused_chunk_then_a_new_transaction(self):
        c = self.d.raw()
        c.ehlo()
        self.begin(c, FIRST_RCPT)
        self.bdat(c, LARGE_CHUNK)
        c.expect(250, "2.0.0")
        too_long = b"X-Long: " + b"l" * 1200 + b"\r\n"
        self.bdat(c, too_long)
        c.expect(500, "5.5.2")  # the transaction is over
        c.cmd("RCPT TO:<%s>" % SECOND_RCPT, 503, "5.5.1")
        message = self.message("after a refused chunk")
        qid = self.second_by_bdat(c, message)
        c.cmd("QUIT", 221)
        self.assert_delivered_exactly(qid, message)

    def test_refused_end_of_data_then_a_new_transaction(self):
        c = self.d.raw()
        c.ehlo()
        self.begin(c, FIRST_RCPT)
        c.cmd("DATA", 354)
        c.send(LARGE_CHUNK + b"X-Long: " + b"l" * 1200 + b"\r\n\r\nbody\r\n.\r\n")
        c.expect(500, "5.5.2")
        message = self.message("after a refused DATA")
        qid = self.second_by_bdat(c, message)
        c.cmd("QUIT", 221)
        self.assert_delivered_exactly(qid, message)

    def test_refused_last_chunk_then_a_new_transaction(self):
        c = self.d.raw()
        c.ehlo()
        self.partial_bdat(c, LARGE_CHUNK)
        self.bdat(c, b"X-Long: " + b"l" * 1200 + b"\r\n\r\nbody\r\n", last=True)
        c.expect(500, "5.5.2")
        message = self.message("after a refused LAST chunk")
        qid = self.second_by_bdat(c, message)
        c.cmd("QUIT", 221)
        self.assert_delivered_exactly(qid, message)

    def test_client_gone_in_the_middle_of_a_bdat_transaction(self):
        c = self.d.raw()
        c.ehlo()
        self.partial_bdat(c, LARGE_CHUNK)
        # And in the middle of a chunk.
        c2 = self.d.raw()
        c2.ehlo()
        self.begin(c2, FIRST_RCPT)
        c2.send(b"BDAT %d\r\n" % (2 * len(LARGE_CHUNK)) + LARGE_CHUNK)
        time.sleep(0.2)
        c.close()
        c2.close()
        self.d.wait_for(lambda: self.d.process("ingress:exchange")["activity"].endswith(" 0 sessions"),
                        "the sessions to end")
        self.assert_spool_forgot_everything(self.d)
        self.assertEqual(self.d.queue(), [])


class ReceivedHeaderTest(ResetCase):
    def test_received_names_the_client_address(self):
        d = self.start_daemon()
        c = d.raw()
        c.ehlo()
        message = self.message("trace")
        qid = self.second_by_data(c, message)
        c.cmd("QUIT", 221)
        content = bridgehead.read_spool_content(d.spool_dir)[qid]
        first_line = content.split(b"\r\n", 1)[0]
        self.assertEqual(first_line, b"Received: from client.exchange.example ([127.0.0.1])")
        self.assertIsNotNone(re.fullmatch(received_pattern(qid, SECOND_RCPT, "ESMTP") + re.escape(message), content),
                             content[:400])


class ResetByTimeoutTest(ResetCase):
    def test_timeout_in_the_middle_of_a_bdat_transaction(self):
        d = self.start_daemon(smtp={"command_timeout_seconds": 10})
        c = d.raw(timeout=30)
        c.ehlo()
        self.partial_bdat(c, LARGE_CHUNK)
        c.expect(421, "4.4.2")
        self.assert_spool_forgot_everything(d)
        self.assertEqual(d.queue(), [])


class ResetAfterFailedSpoolWriteTest(ResetCase):
    def test_a_failed_spool_write_ends_the_transaction_and_the_next_one_starts_clean(self):
        mnt = os.path.join(self.workdir, "spool-tmpfs")
        os.makedirs(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", mnt], capture_output=True)
        self.assertEqual(r.returncode, 0, "cannot mount a tmpfs (the integration tests run as root): %r" % r.stderr)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], capture_output=True)
        d = self.start_daemon(spool_dir=mnt, delivery={"notes": "maildir"})
        c = d.raw()
        c.ehlo()
        self.begin(c, FIRST_RCPT)
        # 2 MiB in chunks does not fit: the chunk whose piece cannot be written is refused
        # with 452 at once (not only at LAST), and that ends the transaction.
        refused = None
        for n in range(32):
            self.bdat(c, LARGE_CHUNK)
            code, lines = c.read_reply()
            if code != 250:
                refused = (code, lines[-1])
                break
        self.assertIsNotNone(refused, "2 MiB fitted into a 1 MiB spool?")
        self.assertEqual(refused[0], 452, refused)
        self.assertTrue(refused[1].startswith("4.3.1 "), refused)
        c.cmd("RCPT TO:<%s>" % SECOND_RCPT, 503, "5.5.1")  # no transaction any more
        self.assert_spool_forgot_everything(d)
        # Space again (what the aborted pieces used is not reclaimed while their segment
        # is the one being written): the next transaction must not inherit the failure.
        r = subprocess.run(["mount", "-o", "remount,size=16m", mnt], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        message = self.message("after a failed spool write")
        qid = self.second_by_bdat(c, message)
        c.cmd("QUIT", 221)
        [(path, got)] = d.wait_maildir("notes", SECOND_RCPT)
        expected = (re.escape(b"Return-Path: <%s>\nDelivered-To: %s\n" % (SENDER.encode(), SECOND_RCPT.encode())) +
                    received_pattern(qid, SECOND_RCPT, "ESMTP", eol=b"\n") + re.escape(to_lf(message)))
        self.assertIsNotNone(re.fullmatch(expected, got, re.S), got[:600])


if __name__ == "__main__":
    unittest.main()
