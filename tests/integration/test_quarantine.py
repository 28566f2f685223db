"""Quarantine (issue 8, defect 4): a message the connector cannot process is set aside intact,
shown by `bridgehead quarantine list|show`, counted in `bridgehead status --json`, put back
in the queue by `release` (delivered once the cause is fixed) or removed by `delete`, which
sends the sender a failure notice unless NOTIFY=NEVER. Everything through the real CLI."""

import json
import os
import time
import unittest

import bridgehead
from bridgehead import EXIT

SENDER = "ann@exchange.example"
MARKER = "X-POISON-5d1e2b"


class QuarantineTest(bridgehead.TestCase):
    def start_poisoned(self):
        return self.start_daemon(delivery={"notes": "maildir", "exchange": "maildir"},
                                 queue={"retry_delays": "1s"}, env={"BRIDGEHEAD_FAULT_POISON": MARKER})

    def quarantine(self, d, *args, rc=EXIT.kOk):
        r = d.cli("quarantine", *args, check=False)
        self.assertEqual(r.returncode, rc, "bridgehead quarantine %s: %r %r\n%s" % (
            " ".join(args), r.stdout, r.stderr, d.log_tail()))
        return r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")

    def listed(self, d):
        out, _ = self.quarantine(d, "list", "--json")
        return {m["id"]: m for m in json.loads(out)["messages"]}

    def count(self, d):
        return d.gauges("quarantine")["messages"]

    def test_list_show_release_then_delivered(self):
        d = self.start_poisoned()
        bad, mid = d.send(SENDER, ["carol@notes.example", "dave@notes.example"], "poison",
                          body="before %s after\r\n" % MARKER)
        d.wait_queue_empty(what="the poison message quarantined")

        listed = self.listed(d)
        self.assertEqual(list(listed), [bad])
        m = listed[bad]
        self.assertIn("poison marker", m["reason"])
        self.assertEqual(m["from"], SENDER)
        self.assertEqual([(r["address"], r["status"]) for r in m["recipients"]],
                         [("carol@notes.example", "pending"), ("dave@notes.example", "pending")])
        self.assertEqual(self.count(d), 1)

        out, _ = self.quarantine(d, "list")
        self.assertIn(bad, out)
        self.assertIn("1 message in quarantine", out)
        out, _ = self.quarantine(d, "show", bad)
        self.assertIn("message %s" % bad, out)
        self.assertIn("poison marker", out)
        self.assertIn("Message-ID: %s" % mid, out)
        self.assertIn("carol@notes.example", out)

        # Every error names the id and what to do; exit codes as status/queue have them.
        missing = "00000000deadbeef"
        _, err = self.quarantine(d, "show", missing, rc=EXIT.kRequestFailed)
        self.assertIn(missing, err)
        self.assertIn("bridgehead quarantine list", err)
        _, err = self.quarantine(d, "release", "../../etc/passwd", rc=EXIT.kRequestFailed)
        self.assertIn("not a message id", err)

        # The cause is fixed (no more fault injection): released, it is delivered.
        d.env.pop("BRIDGEHEAD_FAULT_POISON")
        d.restart(kill=False)
        self.assertEqual(self.count(d), 1, "the count survives a restart")
        out, _ = self.quarantine(d, "release", bad)
        self.assertIn("message %s released: queued again as " % bad, out)
        d.wait_queue_empty(what="the released message delivered")
        for rcpt in ("carol@notes.example", "dave@notes.example"):
            [(_, data)] = d.maildir("notes", rcpt)
            msg = bridgehead.parse_message(data)
            self.assertEqual(msg["Message-ID"], mid)
            self.assertIn(MARKER, msg.get_content())
        self.assertEqual(self.listed(d), {})
        self.assertEqual(self.count(d), 0)
        qdir = os.path.join(d.state_dir, "quarantine")
        self.assertEqual([f for f in os.listdir(qdir) if not f.startswith(".")], [])
        _, err = self.quarantine(d, "release", bad, rc=EXIT.kRequestFailed)
        self.assertIn(bad, err)
        self.assertIn("is not in quarantine", err)
        d.stop()
        # Like status and queue: 3 when the daemon is not running.
        _, err = self.quarantine(d, "list", rc=EXIT.kNotRunning)
        self.assertIn("not running", err)

    def test_delete_sends_a_failure_notice_unless_notify_never(self):
        d = self.start_poisoned()
        # RET=HDRS: the returned headers do not carry the marker, so the notice is not poison.
        notified, mid = d.send(SENDER, ["carol@notes.example"], "poison one", body="x %s y\r\n" % MARKER,
                               mail_options=["RET=HDRS"])
        silent, _ = d.send(SENDER, ["dave@notes.example"], "poison two", body="x %s y\r\n" % MARKER,
                           rcpt_options=["NOTIFY=NEVER"])
        d.wait_queue_empty(what="both poison messages quarantined")
        self.assertEqual(sorted(self.listed(d)), sorted([notified, silent]))
        st = d.status()
        [q] = [p for p in st["processes"] if p["name"] == "quarantine"]
        self.assertEqual(q["gauges"]["messages"], 2)
        self.assertIn("2 messages set aside", q["activity"])

        out, _ = self.quarantine(d, "delete", notified)
        self.assertIn("message %s deleted; failure notice queued as " % notified, out)
        [(_, data)] = d.wait_maildir("exchange", SENDER)
        dsn = bridgehead.parse_dsn(data)
        self.assertEqual(dsn["defects"], [])
        self.assertEqual(dsn["to"], SENDER)
        [r] = dsn["recipients"]
        self.assertEqual((r["final_recipient"], r["action"], r["status"]), ("carol@notes.example", "failed", "5.3.0"))
        self.assertIn("poison marker", r["diagnostic_code"])
        self.assertIn("deleted", r["diagnostic_code"])
        self.assertEqual(dsn["returned"], "headers")
        self.assertIn(mid, dsn["returned_part"])

        out, _ = self.quarantine(d, "delete", silent)
        self.assertIn("message %s deleted; no failure notice" % silent, out)
        d.wait_queue_empty(what="nothing more to deliver")
        time.sleep(1.5)
        self.assertEqual(len(d.maildir("exchange", SENDER)), 1, "NOTIFY=NEVER: no notice")
        self.assertEqual(self.listed(d), {})
        self.assertEqual(self.count(d), 0)
        d.stop()


if __name__ == "__main__":
    unittest.main()
