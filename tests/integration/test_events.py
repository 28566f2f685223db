"""Message events (issue 9): each stage publishes typed events, and the message tracking log
(tracking.file, one JSON line per event) is a subscriber. A message through the real daemon
gives exactly the expected sequence, in order: delivered at once; deferred then delivered;
failed with a notice (and the notice's own way to the sender)."""

import json
import os
import unittest

import bridgehead

SENDER = "ann@exchange.example"


class EventsTest(bridgehead.TestCase):
    def tracking(self, d):
        path = os.path.join(d.state_dir, "tracking.jsonl")
        self.assertTrue(os.path.exists(path), "no tracking log at %s" % path)
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def sequence(self, events, *ids):
        """(event, queue id, recipient) of every event about the given messages, in order."""
        return [(e["event"], e["queue_id"], e.get("recipient", "")) for e in events if e["queue_id"] in ids]

    def wait_events(self, d, count, what):
        return d.wait_for(lambda: (lambda ev: ev if len(ev) >= count else None)(self.tracking(d)), what, timeout=30)

    def test_delivered_at_once(self):
        d = self.start_daemon(delivery={"notes": "maildir", "exchange": "maildir"})
        qid, _ = d.send(SENDER, ["carol@notes.example", "dave@notes.example"], "at once")
        d.wait_queue_empty(what="both delivered")
        events = self.wait_events(d, 4, "four events")
        self.assertEqual(self.sequence(events, qid), [
            ("received", qid, ""),
            ("queued", qid, ""),
            ("delivered", qid, "carol@notes.example"),
            ("delivered", qid, "dave@notes.example"),
        ])
        received, queued, delivered = events[0], events[1], events[2]
        self.assertEqual((received["system"], received["sender"]), ("exchange", SENDER))
        self.assertIn("127.0.0.1", received["client"])
        # The ingress counters read the same events.
        ingress = d.counters("ingress:exchange")
        self.assertGreater(received["size"], 0)
        self.assertEqual((ingress["messages_accepted"], ingress["bytes_accepted"]), (1, received["size"]), ingress)
        self.assertEqual(queued["sender"], SENDER)
        self.assertEqual(delivered["system"], "notes")
        self.assertIn("Maildir", delivered["next_hop"])
        self.assertTrue(delivered["reply"].startswith("250 2.0.0"), delivered)
        self.assertLessEqual(received["at_ms"], queued["at_ms"])
        self.assertLessEqual(queued["at_ms"], delivered["at_ms"])
        self.assertEqual(d.counters("tracking")["events"], 4)
        self.assertEqual(d.counters("tracking")["dropped"], 0)

    def test_deferred_then_delivered(self):
        mta = bridgehead.MockMta(self, rules={"carol@notes.example": ["451 4.3.0 try again later", "250"]})
        d = self.start_daemon(delivery={"notes": mta, "exchange": "maildir"}, queue={"retry_delays": "1s"})
        qid, _ = d.send(SENDER, ["carol@notes.example"], "later")
        d.wait_queue_empty(what="delivered on the second attempt")
        events = self.wait_events(d, 4, "four events")
        self.assertEqual(self.sequence(events, qid), [
            ("received", qid, ""),
            ("queued", qid, ""),
            ("deferred", qid, "carol@notes.example"),
            ("delivered", qid, "carol@notes.example"),
        ])
        deferred = events[2]
        self.assertEqual(deferred["reply"], "451 4.3.0 try again later")
        self.assertEqual(deferred["next_hop"], "127.0.0.1:%d" % mta.port)
        self.assertEqual(d.counters("deliver:notes")["deferred"], 1)

    def test_failed_with_a_notice(self):
        mta = bridgehead.MockMta(self, rules={"carol@notes.example": ["550 5.1.1 no such user"]})
        d = self.start_daemon(delivery={"notes": mta, "exchange": "maildir"})
        qid, _ = d.send(SENDER, ["carol@notes.example"], "nobody")
        d.wait_queue_empty(what="failed, and the notice delivered to the sender")
        events = self.wait_events(d, 6, "six events")
        [notice] = [e for e in events if e["event"] == "notice_sent"]
        nid = notice["detail"]
        self.assertNotEqual(nid, qid)
        self.assertEqual(self.sequence(events, qid, nid), [
            ("received", qid, ""),
            ("queued", qid, ""),
            ("failed", qid, "carol@notes.example"),
            ("queued", nid, ""),
            ("notice_sent", qid, ""),
            ("delivered", nid, SENDER),
        ])
        failed = [e for e in events if e["event"] == "failed"][0]
        self.assertEqual(failed["reply"], "550 5.1.1 no such user")
        self.assertNotIn("expired", failed)
        queued_notice = [e for e in events if e["event"] == "queued" and e["queue_id"] == nid][0]
        self.assertEqual(queued_notice["sender"], "", "a notice has the null sender")
        self.assertEqual(notice["system"], "notes")

    def test_a_refused_message_is_an_event_too(self):
        d = self.start_daemon(smtp={"max_message_size": "64KiB"},
                              delivery={"notes": "maildir", "exchange": "maildir"})
        c = d.raw("exchange")
        c.ehlo()
        c.cmd("MAIL FROM:<%s>" % SENDER, 250)
        c.cmd("RCPT TO:<carol@notes.example>", 250)
        c.cmd("DATA", 354)
        c.send("Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 1000 + ".\r\n")
        code, _ = c.read_reply()
        self.assertEqual(code, 552)
        [refused] = self.wait_events(d, 1, "the refusal")
        self.assertEqual(refused["event"], "refused")
        self.assertEqual(refused["sender"], SENDER)
        self.assertTrue(refused["reply"].startswith("552 5.3.4"), refused)
        self.assertNotIn("size", refused)
        self.assertEqual(d.counters("ingress:exchange").get("messages_refused"), 1)


if __name__ == "__main__":
    unittest.main()
