"""Spool compaction (issue 8, defect 3): the spool gives back the space of finished mail
even when a few long-lived messages are spread over many segments.

A stream of 20,000 messages, 1 in 100 to a destination that is down (exchange, a dead
port) and the rest delivered to smtp-sink, with `spool.segment_size` at its 1 MiB minimum.
Afterwards the spool's files take at most twice the live data plus one segment, and the
daemon holds a bounded number of descriptors (/proc/PID/fd) though about 160 segments were
written. Then the daemon is SIGKILLed inside a compaction (BRIDGEHEAD_FAULT_SPOOL_KILL:
after the copies are durable, before the old segments are removed, when both copies are
on disk) and restarted: every accepted message is queued exactly once, none is lost."""

import os
import signal
import threading
import time
import unittest

import bridgehead

SEGMENT = 1 << 20
MESSAGES = 20000
BODY = ("x" * 78 + "\r\n") * 100  # 8 KB


def spool_bytes(spool_dir):
    """Every file of the spool: segments, journal and state."""
    total = 0
    for name in os.listdir(spool_dir):
        path = os.path.join(spool_dir, name)
        if os.path.isfile(path):
            total += os.path.getsize(path)
    return total


def segments(spool_dir):
    return sorted(n for n in os.listdir(spool_dir) if n.startswith("seg-"))


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Sender:
    """Client threads, each sending on one connection at a time; records what was acked."""

    def __init__(self, daemon, tag, count, threads=16, notify_never=False):
        self.daemon = daemon
        self.tag = tag
        self.count = count
        self.threads = threads
        self.notify = " NOTIFY=NEVER" if notify_never else ""
        self.lock = threading.Lock()
        self.next = 0
        self.acked = {}  # sender address -> queue id
        self.doubt = set()  # the final "." was sent, no reply came (committed or not)
        self.errors = []

    def take(self):
        with self.lock:
            if self.next >= self.count:
                return None
            self.next += 1
            return self.next - 1

    def message_for(self, n):
        # 1 in 100 goes to exchange, which is down; the sender address is the tag.
        if n % 100 == 0:
            return "notes", "%s-%d@notes.example" % (self.tag, n), "alice@exchange.example"
        return "exchange", "%s-%d@exchange.example" % (self.tag, n), "carol@notes.example"

    def run_thread(self):
        clients = {}
        try:
            while True:
                n = self.take()
                if n is None:
                    return
                system, sender, rcpt = self.message_for(n)
                c = clients.get(system)
                if c is None:
                    c = bridgehead.RawClient("127.0.0.1", self.daemon.port(system), timeout=60)
                    c.ehlo()
                    clients[system] = c
                c.cmd("MAIL FROM:<%s>" % sender, 250, "2.1.0")
                c.cmd("RCPT TO:<%s>%s" % (rcpt, self.notify), 250, "2.1.5")
                c.cmd("DATA", 354)
                with self.lock:
                    self.doubt.add(sender)
                c.send(bridgehead.dot_stuff(("Subject: %s\r\n\r\n%s" % (sender, BODY)).encode()) + b".\r\n")
                qid = bridgehead.queue_id(c.expect(250, "2.0.0", "queued as")[-1])
                with self.lock:
                    self.acked[sender] = qid
                    self.doubt.discard(sender)
        except (OSError, bridgehead.SmtpError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            for c in clients.values():
                c.close()

    def run(self):
        ts = [threading.Thread(target=self.run_thread) for _ in range(self.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return self


class SpoolCompactionTest(bridgehead.TestCase):
    def start(self, **kw):
        d = bridgehead.Daemon(self, self.workdir, **kw)
        original = d.write_config

        def write_config(new_ports=False):
            original(new_ports)
            with open(d.config_path) as f:
                text = f.read()
            with open(d.config_path, "w") as f:
                f.write(text.replace("[spool]\n", '[spool]\nsegment_size = "1MiB"\n', 1))
        d.write_config = write_config
        self.daemons.append(d)
        self.addCleanup(d.cleanup)
        d.start()
        return d

    def settle(self, d, expect_senders, what, timeout=180):
        """Waits until exactly the mail for the dead destination is queued."""
        last = []

        def only_dead():
            last[:] = d.queue()
            return {m["from"] for m in last} <= expect_senders and all(
                m["recipients"] == ["alice@exchange.example"] for m in last)
        d.wait_for(only_dead, what, timeout=timeout, interval=0.5)
        return last

    def assert_disk_bound(self, d, queue, what):
        live = sum(m["size"] for m in queue)
        # Compaction runs in the writer's batches after the finishes: give it a moment.
        deadline = time.monotonic() + 30
        while spool_bytes(d.spool_dir) > 2 * live + SEGMENT and time.monotonic() < deadline:
            time.sleep(0.2)
        used = spool_bytes(d.spool_dir)
        print("%s: %d queued, live data %d bytes, spool files %d bytes (%.2fx live), %d segments" % (
            what, len(queue), live, used, used / max(live, 1), len(segments(d.spool_dir))))
        self.assertLessEqual(used, 2 * live + SEGMENT,
                             "%s: spool uses %d bytes for %d bytes of live data; segments %s" % (
                                 what, used, live, segments(d.spool_dir)))

    def test_space_is_reclaimed_descriptors_bounded_and_a_kill_inside_compaction_is_safe(self):
        sink = bridgehead.SmtpSink(self).start()
        d = self.start(delivery={"notes": sink})
        fds_at_start = open_fds(d.proc.pid)
        started = time.monotonic()
        sent = Sender(d, "a", MESSAGES).run()
        self.assertEqual(sent.errors, [])
        self.assertEqual(len(sent.acked), MESSAGES)
        print("sent %d messages in %.1fs" % (MESSAGES, time.monotonic() - started))
        dead = {s for s in sent.acked if s.endswith("@notes.example")}
        self.assertEqual(len(dead), MESSAGES // 100)
        queue = self.settle(d, dead, "the deliveries to smtp-sink")

        # Disk use: at most twice the live data plus one segment; about 160 segments were
        # written, and the 200 live messages were spread over all of them.
        self.assertEqual({m["from"] for m in queue}, dead)
        self.assert_disk_bound(d, queue, "after %d messages" % MESSAGES)
        fds = open_fds(d.proc.pid)
        print("descriptors: %d at start, %d now" % (fds_at_start, fds))
        self.assertLessEqual(fds, fds_at_start + 16, "open descriptors grow with the segments")
        delivered = {m.sender for m in sink.messages()}
        self.assertEqual(delivered, set(sent.acked) - dead)
        self.assertEqual(len(sink.messages()), MESSAGES - len(dead), "a message was delivered twice")
        spool = d.process("spool")
        self.assertGreater(spool["counters"].get("compacted", 0), 0, spool)
        sink.stop()

        # A kill inside a compaction. The notes side now refuses every recipient (5xx, and
        # NOTIFY=NEVER: no notice), so messages finish without being delivered anywhere and
        # "exactly once" is a property of the queue alone.
        refusing = bridgehead.SmtpSink(self, ["-f", "RCPT"]).start()
        d.stop()
        d.delivery["notes"] = refusing
        armed = os.path.join(self.workdir, "kill-armed")
        d.env["BRIDGEHEAD_FAULT_SPOOL_KILL"] = "compaction-synced@" + armed
        d.start()
        # Armed only now: a compaction right after the restart (of the last segment of the
        # first stream) is not the one this is about.
        with open(armed, "w"):
            pass
        second = Sender(d, "b", 4000, threads=4, notify_never=True).run()
        # The daemon killed itself at the step; the senders saw the connection go.
        try:
            d.proc.wait(60)
        except Exception:
            self.fail("the daemon was not killed inside a compaction\n" + d.log_tail())
        self.assertEqual(d.proc.returncode, -signal.SIGKILL, d.log_tail())
        self.assertIn("fault injection: killing the daemon at spool step compaction-synced", d.log())
        self.assertGreater(len(second.acked), 0)
        del d.env["BRIDGEHEAD_FAULT_SPOOL_KILL"]
        d.start()

        # Every accepted message for the dead destination is queued exactly once: those
        # of the first stream and those the second got a 250 for.
        dead2 = {s for s in second.acked if s.endswith("@notes.example")}
        doubt = {s for s in second.doubt if s.endswith("@notes.example")}
        print("second stream: %d acknowledged before the kill, %d in doubt" % (len(second.acked), len(second.doubt)))
        queue = self.settle(d, dead | dead2 | doubt, "the refused messages to finish")
        ids = [m["id"] for m in queue]
        self.assertEqual(len(ids), len(set(ids)), "a message id is queued twice")
        senders = [m["from"] for m in queue]
        self.assertEqual(len(senders), len(set(senders)), "a message is queued twice")
        self.assertLessEqual(dead | dead2, set(senders), "an accepted message was lost")
        for m in queue:
            expected_id = sent.acked.get(m["from"]) or second.acked.get(m["from"])
            if expected_id is not None:
                self.assertEqual(m["id"], expected_id, "ids change in compaction")
        self.assert_disk_bound(d, queue, "after the kill")
        d.stop()


if __name__ == "__main__":
    unittest.main()
