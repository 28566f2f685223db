"""Disk full: the spool on a tiny tmpfs. The server answers 452 4.3.1 (never 250 for a
message it could not store), status shows the process degraded with the cause and a remedy,
every message that got 250 survives a restart, and mail flows again once space is freed."""

import os
import subprocess
import unittest

import bridgehead


class DiskFullTest(bridgehead.TestCase):
    def mount_tmpfs(self, size):
        mnt = os.path.join(self.workdir, "spool-tmpfs")
        os.makedirs(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", mnt],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, "cannot mount a tmpfs (the integration tests run as root): %r" % r.stderr)
        # Cleanups run last-in first-out: this one runs after the daemon's stop.
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], capture_output=True)
        return mnt

    def remount(self, mnt, size):
        r = subprocess.run(["mount", "-o", "remount,size=%s" % size, mnt], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def send(self, d, c, n, size=64 * 1024):
        """One message on an open session; returns (code, enhanced+text, queue id or None)."""
        tag = "full-%d@exchange.example" % n
        c.cmd("MAIL FROM:<%s>" % tag, 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.cmd("DATA", 354)
        line = (b"%06d " % n) + b"z" * 70 + b"\r\n"
        c.send(b"Subject: " + tag.encode() + b"\r\n\r\n" + line * (size // len(line)) + b".\r\n")
        code, lines = c.read_reply()
        return code, lines[-1], (bridgehead.queue_id(lines[-1]) if code == 250 else None), tag

    def test_disk_full_defers_and_recovers(self):
        mnt = self.mount_tmpfs("2m")
        d = self.start_daemon(spool_dir=mnt)
        c = d.raw()
        c.ehlo()
        acked = {}
        full_reply = None
        for n in range(200):
            code, text, qid, tag = self.send(d, c, n)
            if code == 250:
                acked[qid] = tag
                continue
            full_reply = (code, text)
            break
        self.assertIsNotNone(full_reply, "200 messages of 64 KiB fit into a 2 MiB tmpfs?")
        self.assertEqual(full_reply[0], 452, full_reply)
        self.assertTrue(full_reply[1].startswith("4.3.1 "), full_reply)
        self.assertGreater(len(acked), 5, "the spool refused mail long before the disk was full")
        # The session is still usable and answers in sync.
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("RSET", 250, "2.0.0")

        st = d.process("ingress:exchange")
        self.assertEqual(st["state"], "degraded", st)
        err = st.get("last_error") or {}
        self.assertRegex(err.get("message", ""), r"(?i)space|full", st)
        self.assertRegex(err.get("remedy", ""), r"(?i)free disk space|space|quota", st)
        self.assertGreaterEqual(st["counters"].get("messages_deferred_storage", 0), 1, st)
        # Every 250 is in the queue, nothing else.
        q = d.queued_by_id()
        self.assertEqual(sorted(q), sorted(acked))
        for qid, tag in acked.items():
            self.assertEqual(q[qid]["from"], tag)
        # Still full: the next message is deferred again, not accepted and lost.
        code, text, qid, _ = self.send(d, c, 1000)
        self.assertEqual((code, text[:5]), (452, "4.3.1"))

        # Free space: mail flows again and the process returns to running.
        self.remount(mnt, "64m")
        code, text, qid, tag = self.send(d, c, 2000)
        self.assertEqual(code, 250, text)
        acked[qid] = tag
        d.wait_for(lambda: d.process("ingress:exchange")["state"] == "running", "ingress:exchange running again")
        c.cmd("QUIT", 221)

        # Everything acknowledged survives a crash and a restart.
        d.restart(kill=True)
        q = d.queued_by_id()
        self.assertEqual(sorted(q), sorted(acked))
        for qid, tag in acked.items():
            self.assertEqual(q[qid]["from"], tag)
        spool = d.process("spool")
        self.assertRegex(spool["details"].get("recovery", ""), r"recovered %d messages?\b" % len(acked), spool)
        d.stop()

    def test_restart_on_a_full_disk_keeps_every_accepted_message(self):
        mnt = self.mount_tmpfs("1536k")
        d = self.start_daemon(spool_dir=mnt)
        c = d.raw()
        c.ehlo()
        acked = {}
        for n in range(200):
            code, text, qid, tag = self.send(d, c, n, size=32 * 1024)
            if code != 250:
                self.assertEqual((code, text[:5]), (452, "4.3.1"))
                break
            acked[qid] = tag
        c.close()
        # Restart while the disk is still full: every acknowledged message must still be
        # listed, and the daemon must come up (or say clearly why not).
        d.kill9()
        d.start()
        q = d.queued_by_id()
        self.assertEqual(sorted(q), sorted(acked))
        self.remount(mnt, "64m")
        c = d.raw()
        c.ehlo()
        code, text, qid, tag = self.send(d, c, 5000)
        self.assertEqual(code, 250, text)


if __name__ == "__main__":
    unittest.main()
