"""kill -9 while deliveries are in flight: after a restart every message is delivered at least
once and none is lost. Duplicates (delivered, but the outcome not yet recorded when the
process died) are allowed and reported."""

import re
import smtplib
import sys
import threading
import time
import unittest

import bridgehead

COUNT = 200
THREADS = 4


class DeliveryRestartTest(bridgehead.TestCase):
    def submit_all(self, d):
        errors = []

        def worker(k):
            try:
                s = smtplib.SMTP("127.0.0.1", d.port("exchange"), local_hostname="load.test", timeout=60)
                for i in range(k, COUNT, THREADS):
                    msg = bridgehead.make_message("ann@exchange.example", ["carol@notes.example"],
                                                  "restart-%03d" % i, "Message %d of the restart test.\r\n" % i)
                    refused = s.sendmail("ann@exchange.example", ["carol@notes.example"], msg)
                    if refused:
                        errors.append(refused)
                s.quit()
            except Exception as e:  # reported below, in the test's thread
                errors.append(repr(e))
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    def subjects(self, sink):
        """Subjects of the complete dumps (the last body line is there)."""
        out = []
        for m in sink.messages():
            mm = re.search(rb"(?m)^Subject: (restart-\d{3})\n", m.content)
            if mm and re.search(rb"Message \d+ of the restart test\.\n", m.content):
                out.append(mm.group(1).decode())
        return out

    def test_kill_9_during_deliveries_loses_nothing(self):
        # The sink waits a second before answering DATA: with 10 connections, ~10 messages a
        # second, so both kills hit deliveries under way.
        sink = bridgehead.SmtpSink(self, ["-w", "1"]).start()
        d = self.start_daemon(delivery={"notes": sink.delivery(concurrency=10)},
                              queue={"retry_delays": "1s"})
        self.submit_all(d)
        for kill_after in (30, 100):
            d.wait_for(lambda: len(self.subjects(sink)) >= kill_after,
                       "%d messages at the sink" % kill_after, timeout=180, interval=0.05)
            before = len(d.queue())
            activity = d.process("deliver:notes")["activity"]
            self.assertTrue(activity.startswith("delivering "), activity)
            d.restart(kill=True)
            self.assertGreater(before, 0)
        d.wait_queue_empty(timeout=300, what="every message delivered after the restarts")

        subjects = self.subjects(sink)
        unique = set(subjects)
        missing = sorted({"restart-%03d" % i for i in range(COUNT)} - unique)
        self.assertEqual(missing, [], "messages lost across kill -9")
        duplicates = len(subjects) - len(unique)
        sys.stderr.write("\n[restart test] %d messages, %d deliveries, %d duplicate(s) after 2 kill -9\n" % (
            COUNT, len(subjects), duplicates))
        # At most the deliveries under way at each kill (the concurrency) can repeat.
        self.assertLessEqual(duplicates, 2 * 10)
        d.stop()


if __name__ == "__main__":
    unittest.main()
