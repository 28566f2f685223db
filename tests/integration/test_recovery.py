"""Restarts on the same spool: the recovery report in status (details.recovery of the spool
process), messages and ids kept across SIGTERM and SIGKILL, a message cut off mid-DATA is
not queued, ids never reused, a second daemon on the same spool is refused."""

import os
import re
import subprocess
import unittest

import bridgehead
from bridgehead import EXIT


class RecoveryTest(bridgehead.TestCase):
    def send_many(self, d, n, prefix):
        c = d.raw()
        c.ehlo()
        ids = {}
        for i in range(n):
            tag = "%s-%d@exchange.example" % (prefix, i)
            ids[c.send_message(tag, ["carol@notes.example"], "Subject: %s\r\n\r\n%s\r\n" % (tag, "x" * i))] = tag
        c.cmd("QUIT", 221)
        return ids

    def test_recovery_report_after_restarts(self):
        d = self.start_daemon()
        self.assertRegex(d.process("spool")["details"]["recovery"], r"recovered 0 messages\b")
        ids = self.send_many(d, 7, "first")
        before = d.queued_by_id()
        d.restart(kill=False)  # SIGTERM: must exit 0
        spool = d.process("spool")
        self.assertEqual(spool["state"], "running", spool)
        self.assertRegex(spool["details"]["recovery"], r"^recovered 7 messages from 1 segment\b")
        self.assertEqual(d.queued_by_id(), before)
        ids.update(self.send_many(d, 5, "second"))
        d.restart(kill=True)
        self.assertRegex(d.process("spool")["details"]["recovery"], r"recovered 12 messages\b")
        q = d.queued_by_id()
        self.assertEqual(sorted(q), sorted(ids))
        for qid, tag in ids.items():
            self.assertEqual(q[qid]["from"], tag)
            self.assertEqual(q[qid]["size"], before[qid]["size"] if qid in before else q[qid]["size"])
        # Ids are never reused after a restart.
        new = self.send_many(d, 3, "third")
        self.assertFalse(set(new) & set(ids))
        d.stop()

    def test_message_cut_off_in_data_is_not_queued(self):
        d = self.start_daemon()
        kept = self.send_many(d, 2, "kept")
        c = d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<cut@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(b"Subject: cut\r\n\r\n" + b"y" * 70 * 6000)  # more than one 256 KiB spool piece
        # Wait until the daemon has spooled pieces of it, then crash.
        d.wait_for(lambda: d.process("spool")["counters"].get("bytes_written", 0) > 100000, "content being spooled")
        d.kill9()
        c.close()
        d.start()
        self.assertEqual(sorted(d.queued_by_id()), sorted(kept))
        self.assertNotIn("cut@exchange.example", self.senders(d))
        # And a client that just goes away mid-DATA (no crash) leaves nothing either.
        c = d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<gone@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(b"Subject: gone\r\n\r\npartial")
        c.close()
        # (SIGTERM with sessions still open is ShutdownTest's business.)
        d.wait_for(lambda: d.process("ingress:exchange")["activity"].endswith(" 0 sessions"),
                   "the session to end after the client went away")
        d.restart(kill=False)
        self.assertEqual(sorted(d.queued_by_id()), sorted(kept))

    def test_second_daemon_on_the_same_spool_is_refused(self):
        d = self.start_daemon()
        ids = self.send_many(d, 1, "only")
        other = bridgehead.Daemon(self, os.path.join(self.workdir, "other"), spool_dir=d.spool_dir)
        other.write_config()
        other._spawn()
        self.addCleanup(other.cleanup)
        rc = other.proc.wait(60)
        self.assertNotEqual(rc, EXIT.kOk, other.log())
        self.assertRegex(other.log(), r"(?i)spool")
        # The first daemon is unharmed.
        self.assertEqual(sorted(d.queued_by_id()), sorted(ids))
        self.assertEqual(d.process("spool")["state"], "running")


class ShutdownTest(bridgehead.TestCase):
    def test_sigterm_says_421_to_open_sessions(self):
        # RFC 5321 3.8: a server that must shut down answers 421 and closes, rather than
        # dropping the connection; the client then retries instead of guessing.
        d = self.start_daemon()
        c = d.raw()
        c.ehlo()
        # A second session in the middle of DATA: its message must not be queued.
        m = d.raw()
        m.ehlo()
        m.cmd("MAIL FROM:<mid@exchange.example>", 250, "2.1.0")
        m.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        m.cmd("DATA", 354)
        m.send(b"Subject: mid\r\n\r\nhalf")
        d.stop()  # SIGTERM; asserts exit code 0 and no sanitizer report (LeakSanitizer in the ASan build)
        try:
            code, lines = c.read_reply()
        except (ConnectionError, OSError) as e:
            code, lines = None, ["connection closed without a reply: %s" % e]
        self.assertEqual(code, 421, "open session got %r at shutdown, not a 421" % lines)
        self.assertTrue(lines[-1].startswith("4."), lines)
        d.start()
        self.assertEqual(d.queue(), [])


if __name__ == "__main__":
    unittest.main()
