"""kill -9 while deliveries are in flight: after a restart every message is delivered at least
once and none is lost. Duplicates (content the next hop already had, but whose reply had not
arrived or whose outcome was not yet recorded when the process died) are allowed and printed."""

import re
import smtplib
import sys
import threading
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

    def run_with_restarts(self, sink_flags, label, kill=True):
        sink = bridgehead.SmtpSink(self, sink_flags).start()
        d = self.start_daemon(delivery={"notes": sink.delivery(concurrency=10)},
                              queue={"retry_delays": "1s"})
        self.submit_all(d)
        for kill_after in (30, 100):
            d.wait_for(lambda: len(self.subjects(sink)) >= kill_after,
                       "%d messages at the sink" % kill_after, timeout=180, interval=0.05)
            before = len(d.queue())
            activity = d.process("deliver:notes")["activity"]
            self.assertTrue(activity.startswith("delivering "), activity)
            d.restart(kill=kill)  # kill -9, or SIGTERM (a clean stop, asserted)
            self.assertGreater(before, 0)
        d.wait_queue_empty(timeout=300, what="every message delivered after the restarts")

        subjects = self.subjects(sink)
        unique = set(subjects)
        missing = sorted({"restart-%03d" % i for i in range(COUNT)} - unique)
        self.assertEqual(missing, [], "messages lost across kill -9")
        duplicates = len(subjects) - len(unique)
        sys.stderr.write("\n[restart test, %s] %d messages, %d deliveries, %d duplicate(s) after 2 %s\n" % (
            label, COUNT, len(subjects), duplicates, "kill -9" if kill else "SIGTERM"))
        if kill:
            # Only what was under way at a kill can repeat: per connection (10) one message
            # whose reply is awaited plus one whose outcome was still being recorded.
            self.assertLessEqual(duplicates, 2 * 2 * 10)
        else:
            # A clean stop lets the attempts under way finish and records them.
            self.assertEqual(duplicates, 0)
        d.stop()

    def test_kill_9_while_waiting_for_the_reply_to_data(self):
        # The sink waits a second before answering DATA: with 10 connections, ~10 messages a
        # second, so both kills hit deliveries under way, before any content was sent.
        self.run_with_restarts(["-w", "1"], "kill before the content")

    def test_kill_9_while_waiting_for_the_reply_to_the_final_dot(self):
        # The sink has the whole message but answers "." a second later: a kill then leaves a
        # copy at the sink that was never acknowledged, so it is sent again (RFC 1047): these
        # are the duplicates a crash may cause, at most one per delivery under way.
        self.run_with_restarts(["-W", ".:1"], "kill before the final reply")

    def test_sigterm_while_waiting_for_the_reply_to_the_final_dot(self):
        self.run_with_restarts(["-W", ".:1"], "stop before the final reply", kill=False)

if __name__ == "__main__":
    unittest.main()
