"""Limits: line length (command and DATA line), SIZE at MAIL and actual size, recipients,
Received headers (mail loop), junk commands, errors, sessions per client and in total,
idle timeouts (command and data). Exact codes and enhanced codes; refused mail not queued."""

import socket
import threading
import time
import unittest

import bridgehead


def connect_from(port, source_ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(bridgehead.IO_TIMEOUT)
    s.bind((source_ip, 0))
    s.connect(("127.0.0.1", port))
    c = bridgehead.RawClient.__new__(bridgehead.RawClient)
    c.sock, c.buf, c.tls = s, b"", False
    return c


class ContentLimitsTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.d = self.start_daemon(smtp={"max_message_size": "64KiB", "max_recipients": 3,
                                         "max_received_headers": 10, "max_line_length": 1000})

    def data(self, c, content, sender="ann@exchange.example"):
        c.cmd("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(content + b".\r\n")
        return c.read_reply()

    def test_command_line_length(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("NOOP " + "x" * (1000 - 7), 250, "2.0.0")  # exactly 1000 octets with CRLF
        c.cmd("NOOP " + "x" * (1000 - 6), 500, "5.5.2")
        c.cmd("MAIL FROM:<ann@exchange.example> " + "ENVID=" + "a" * 5000, 500, "5.5.2")
        c.cmd("RCPT TO:<carol@notes.example>", 503, "5.5.1")  # the long MAIL was not executed
        # A very long line in several writes, no CRLF for a while: still one 500, in sync.
        c.send(b"NOOP " + b"y" * 100000)
        c.send(b"y" * 100000 + b"\r\nNOOP\r\n")
        c.expect(500, "5.5.2")
        c.expect(250, "2.0.0")

    def test_data_line_length(self):
        c = self.d.raw()
        c.ehlo()
        code, lines = self.data(c, b"Subject: ok\r\n\r\n" + b"a" * 998 + b"\r\n", "fits@exchange.example")
        self.assertEqual((code, lines[-1][:5]), (250, "2.0.0"), lines)
        code, lines = self.data(c, b"Subject: long\r\n\r\n" + b"a" * 999 + b"\r\nmore\r\n", "long@exchange.example")
        self.assertEqual((code, lines[-1][:5]), (500, "5.5.2"), lines)
        c.cmd("NOOP", 250, "2.0.0")
        self.assertEqual(self.senders(self.d), ["fits@exchange.example"])

    def test_size_declared_at_mail(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example> SIZE=65537", 552, "5.3.4")
        c.cmd("MAIL FROM:<ann@exchange.example> SIZE=99999999999999999999999999", 552, "5.3.4")
        c.cmd("MAIL FROM:<ann@exchange.example> SIZE=65536", 250, "2.1.0")
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("MAIL FROM:<ann@exchange.example> SIZE=-1", 555, "5.5.4")

    def test_actual_size_boundary(self):
        c = self.d.raw()
        c.ehlo()
        head = b"Subject: size\r\n\r\n"
        line = b"b" * 98 + b"\r\n"

        def content(total):
            body = line * ((total - len(head)) // len(line))
            rest = total - len(head) - len(body)
            return head + body + (b"c" * (rest - 2) + b"\r\n" if rest else b"")
        exact = content(65536)
        self.assertEqual(len(exact), 65536)
        code, lines = self.data(c, exact, "exact@exchange.example")
        self.assertEqual((code, lines[-1][:5]), (250, "2.0.0"), lines)
        qid = bridgehead.queue_id(lines[-1])
        code, lines = self.data(c, content(65537 + 1), "over@exchange.example")
        self.assertEqual((code, lines[-1][:5]), (552, "5.3.4"), lines)
        code, lines = self.data(c, content(3 << 20), "huge@exchange.example")
        self.assertEqual((code, lines[-1][:5]), (552, "5.3.4"), lines)
        c.cmd("NOOP", 250, "2.0.0")
        self.assertEqual(self.senders(self.d), ["exact@exchange.example"])
        spooled = bridgehead.read_spool_content(self.d.spool_dir)[qid]
        self.assertTrue(spooled.endswith(exact))
        # The same limit applies to BDAT.
        c.cmd("MAIL FROM:<bdat@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        big = content(40000)
        c.send(b"BDAT %d\r\n" % len(big) + big)
        c.expect(250, "2.0.0")
        c.send(b"BDAT %d LAST\r\n" % len(big) + big)
        c.expect(552, "5.3.4")
        c.cmd("NOOP", 250, "2.0.0")
        self.assertEqual(self.senders(self.d), ["exact@exchange.example"])

    def test_too_many_recipients(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        for r in ("carol", "dave", "frank"):
            c.cmd("RCPT TO:<%s@notes.example>" % r, 250, "2.1.5")
        c.cmd("RCPT TO:<gina@notes.example>", 452, "4.5.3")
        c.cmd("RCPT TO:<hugo@notes.example>", 452, "4.5.3")
        c.cmd("DATA", 354)
        c.send(b"Subject: three\r\n\r\n.\r\n")
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        self.assertQueued(self.d, qid, "ann@exchange.example",
                          ["carol@notes.example", "dave@notes.example", "frank@notes.example"])

    def test_too_many_received_headers(self):
        c = self.d.raw()
        c.ehlo()
        hop = b"Received: from a.example by b.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        code, lines = self.data(c, hop * 10 + b"Subject: ten\r\n\r\nbody\r\n", "ten@exchange.example")
        self.assertEqual((code, lines[-1][:5]), (250, "2.0.0"), lines)
        code, lines = self.data(c, hop * 11 + b"Subject: loop\r\n\r\nbody\r\n", "loop@exchange.example")
        self.assertEqual((code, lines[-1][:5]), (554, "5.4.6"), lines)
        code, lines = self.data(c, hop * 5 + b"received :x\r\nRECEIVED: y\r\n" + hop * 5 + b"\r\n",
                                "loop2@exchange.example")
        self.assertEqual((code, lines[-1][:5]), (554, "5.4.6"), lines)
        # Received: lines in the body are not headers.
        code, lines = self.data(c, b"Subject: body\r\n\r\n" + hop * 20, "body@exchange.example")
        self.assertEqual((code, lines[-1][:5]), (250, "2.0.0"), lines)
        self.assertEqual(sorted(self.senders(self.d)), ["body@exchange.example", "ten@exchange.example"])


class SessionLimitsTest(bridgehead.TestCase):
    def test_junk_commands_before_mail(self):
        d = self.start_daemon(smtp={"max_junk_commands": 5})
        c = d.raw()
        c.ehlo()
        for _ in range(5):
            c.cmd("NOOP", 250, "2.0.0")
        c.cmd("VRFY x@notes.example", 421, "4.7.0")
        c.assert_closed()
        # Junk counts only before the first MAIL.
        c = d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        for _ in range(8):
            c.cmd("NOOP", 250, "2.0.0")

    def test_too_many_errors(self):
        d = self.start_daemon(smtp={"max_errors": 3})
        c = d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<x@gmail.com>", 554, "5.7.1")
        c.cmd("RCPT TO:<y@gmail.com>", 554, "5.7.1")
        c.cmd("RCPT TO:<nobody@notes.example>", 550, "5.1.1")
        c.cmd("RCPT TO:<z@gmail.com>", 421, "4.7.0")
        c.assert_closed()

    def test_sessions_per_client_and_total(self):
        d = self.start_daemon(smtp={"max_sessions": 3, "max_sessions_per_client": 2})
        port = d.port()
        a1, a2 = connect_from(port, "127.0.0.1"), connect_from(port, "127.0.0.1")
        for c in (a1, a2):
            self.addCleanup(c.close)
            c.greeting()
        extra = connect_from(port, "127.0.0.1")
        self.addCleanup(extra.close)
        extra.expect(421, "4.7.0")
        extra.assert_closed()
        b1 = connect_from(port, "127.0.0.2")
        self.addCleanup(b1.close)
        b1.greeting()
        over = connect_from(port, "127.0.0.3")
        self.addCleanup(over.close)
        over.expect(421, "4.7.0")
        over.assert_closed()
        # A closed session frees its slot.
        a1.cmd("QUIT", 221)
        a1.assert_closed()

        def slot_free():
            c = connect_from(port, "127.0.0.1")
            try:
                code, _ = c.read_reply()
                return code == 220
            finally:
                c.close()
        d.wait_for(slot_free, "the session slot to be freed after QUIT")
        counters = d.process("ingress:exchange")["counters"]
        self.assertGreaterEqual(counters.get("connections_refused", 0), 2, counters)

    def test_max_sessions_counts_all_listeners(self):
        # docs/configuration.md: max_sessions is "the largest number of concurrent SMTP
        # sessions over all listeners".
        d = self.start_daemon(smtp={"max_sessions": 2, "max_sessions_per_client": 2})
        e = connect_from(d.port("exchange"), "127.0.0.1")
        n = connect_from(d.port("notes"), "127.0.0.2")
        for c in (e, n):
            self.addCleanup(c.close)
            c.greeting()
        third = connect_from(d.port("exchange"), "127.0.0.3")
        self.addCleanup(third.close)
        third.expect(421, "4.7.0")

    def test_idle_timeouts(self):
        d = self.start_daemon(smtp={"command_timeout_seconds": 10, "data_timeout_seconds": 10})
        idle = d.raw()
        idle.ehlo()
        in_data = d.raw()
        in_data.ehlo()
        in_data.cmd("MAIL FROM:<slow@exchange.example>", 250, "2.1.0")
        in_data.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        in_data.cmd("DATA", 354)
        in_data.send(b"Subject: slow\r\n\r\nhalf a message\r\n")
        start = time.monotonic()
        results = {}

        def wait(name, c):
            try:
                c.sock.settimeout(60)
                results[name] = c.expect(421, "4.4.2")
                c.assert_closed(60)
                results[name + "-closed"] = time.monotonic() - start
            except Exception as e:  # reported below
                results[name] = e
        ts = [threading.Thread(target=wait, args=a) for a in (("idle", idle), ("data", in_data))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(90)
        for name in ("idle", "data"):
            self.assertNotIsInstance(results.get(name), Exception, results)
            self.assertIn(name + "-closed", results, results)
            self.assertGreaterEqual(results[name + "-closed"], 9.0, results)
        self.assertEqual(d.queue(), [])


if __name__ == "__main__":
    unittest.main()
