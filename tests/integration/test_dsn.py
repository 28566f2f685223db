"""Delivery status notifications (RFC 3461/3464) from the queue manager: failures, expiry,
delay notices, NOTIFY=NEVER/SUCCESS, DSN pass-through to a next hop that offers DSN, and no
bounce of a bounce. Every DSN is read from the sender's Maildir and parsed with Python's email
package; the daemon's wording is never compared."""

import re
import time
import unittest

import bridgehead

SENDER = "ann@exchange.example"


class DsnTest(bridgehead.TestCase):
    def only_dsn(self, d, address=SENDER, system="exchange"):
        """The one message in the sender's Maildir, parsed as a DSN."""
        msgs = d.maildir(system, address)
        self.assertEqual(len(msgs), 1, "expected exactly one DSN for %s, got %d" % (address, len(msgs)))
        path, data = msgs[0]
        self.assertTrue(data.startswith(b"Return-Path: <>\n"), "a DSN is sent from the null sender: %r" % data[:80])
        dsn = bridgehead.parse_dsn(data)
        self.assertEqual(dsn["defects"], [])
        self.assertEqual(dsn["reporting_mta"], "dns; bridgehead.test")
        self.assertIsNotNone(dsn["arrival_date"])
        self.assertEqual(dsn["auto_submitted"], "auto-replied")
        return dsn

    def arrival(self, d, qid):
        return d.queued_by_id()[qid]["received_at"]

    def test_permanent_failure_of_one_of_three_recipients(self):
        mta = bridgehead.MockMta(self, rules={
            "dave@notes.example": ["550 5.1.1 <dave@notes.example>: Recipient address rejected: user unknown"]})
        d = self.start_daemon(delivery={"notes": mta, "exchange": "maildir"})
        qid, mid = d.send(SENDER, ["carol@notes.example", "dave@notes.example", "frank@notes.example"], "three",
                          rcpt_options={"dave@notes.example": ["ORCPT=rfc822;Dave@Notes.Example"]})
        d.wait_queue_empty(what="two delivered, one failed and its DSN delivered")

        [txn] = mta.transactions()
        self.assertEqual(txn["mail_from"], SENDER)
        self.assertEqual(sorted(r["address"] for r in txn["rcpts"] if r["rcpt_reply"].startswith("2")),
                         ["carol@notes.example", "frank@notes.example"])
        # The mock does not offer DSN: no NOTIFY/ORCPT went to it.
        self.assertEqual([r["params"] for r in txn["rcpts"]], [[], [], []])

        dsn = self.only_dsn(d)
        [r] = dsn["recipients"]
        self.assertEqual(r["final_recipient"], "dave@notes.example")
        self.assertEqual(r["original_recipient"], "rfc822; Dave@Notes.Example")
        self.assertEqual(r["action"], "failed")
        self.assertEqual(r["status"], "5.1.1")
        self.assertTrue(r["diagnostic_code"].startswith("smtp;"), r)
        self.assertIn("550 5.1.1", r["diagnostic_code"])
        self.assertEqual(r["remote_mta"], "dns; 127.0.0.1")  # a host, not host:port (RFC 3464 2.3.5)
        self.assertEqual([a.addr_spec for a in dsn["message"]["To"].addresses], [SENDER])
        self.assertEqual(dsn["returned"], "message")
        self.assertEqual(dsn["returned_part"]["Message-ID"], mid)
        self.assertEqual(dsn["returned_part"]["Subject"], "three")

        c = d.counters("deliver:notes")
        self.assertEqual((c["delivered"], c["failed"], c["dsn_sent"]), (2, 1, 1), c)
        d.stop()

    def test_lifetime_expiry_fails_with_4_4_7(self):
        d = self.start_daemon(delivery={"exchange": "maildir"},  # notes: a dead port
                              queue={"retry_delays": "1s", "lifetime": "4s"})
        qid, mid = d.send(SENDER, ["carol@notes.example"], "expires")
        arrival = self.arrival(d, qid)

        # While it is retried, the status says why and when.
        p = d.wait_for(lambda: (lambda p: p if p["state"] == "degraded" and p.get("last_error") else None)(
            d.process("deliver:notes")), "deliver:notes degraded with a last error")
        self.assertIn("127.0.0.1:%d" % d.ports["dead"], p["last_error"]["message"])

        d.wait_maildir("exchange", SENDER, timeout=60)
        d.wait_queue_empty(what="the expired message leaving the queue")
        dsn = self.only_dsn(d)
        [r] = dsn["recipients"]
        self.assertEqual(r["final_recipient"], "carol@notes.example")
        self.assertEqual(r["action"], "failed")
        self.assertEqual(r["status"], "4.4.7")
        self.assertIsNone(r["will_retry_until"])
        self.assertEqual(dsn["returned"], "message")
        self.assertEqual(dsn["returned_part"]["Message-ID"], mid)
        self.assertGreaterEqual(bridgehead.rfc5322_time(r["last_attempt_date"]) - arrival, 4)

        c = d.counters("deliver:notes")
        self.assertEqual((c["expired"], c["failed"], c["dsn_sent"], c["delivered"]), (1, 0, 1, 0), c)
        self.assertGreaterEqual(c["deferred"], 2)  # ~4 at 1s intervals; fewer on a loaded machine
        time.sleep(1.5)
        self.assertEqual(len(d.maildir("exchange", SENDER)), 1, "one failure DSN, no delay notice before it")
        d.stop()

    def test_delay_notice_once_per_recipient_as_notify_asks(self):
        d = self.start_daemon(delivery={"exchange": "maildir"},  # notes: a dead port
                              queue={"retry_delays": "1s", "lifetime": "1h", "delay_notice_after": "2s"})
        plain, _ = d.send(SENDER, ["carol@notes.example"], "no notify")
        d.send("bob@exchange.example", ["dave@notes.example"], "failure only",
               rcpt_options=["NOTIFY=FAILURE"])
        d.send("erin@exchange.example", ["frank@notes.example"], "delay asked",
               rcpt_options=["NOTIFY=DELAY"])
        arrival = self.arrival(d, plain)

        d.wait_maildir("exchange", SENDER, timeout=60)
        d.wait_maildir("exchange", "erin@exchange.example", timeout=60)
        # Several more attempts after the notice: still one notice each, none for NOTIFY=FAILURE.
        d.wait_for(lambda: all(st["attempts"] >= 6 for st in d.recipient_states().values()),
                   "six attempts of every recipient", timeout=60)
        dsn = self.only_dsn(d)
        [r] = dsn["recipients"]
        self.assertEqual(r["final_recipient"], "carol@notes.example")
        self.assertEqual(r["action"], "delayed")
        self.assertTrue(r["status"].startswith("4."), r)
        self.assertIsNotNone(r["will_retry_until"])
        self.assertAlmostEqual(bridgehead.rfc5322_time(r["will_retry_until"]), arrival + 3600, delta=2)
        # Not a failure: the original's headers only (RFC 3461 4.3).
        self.assertEqual(dsn["returned"], "headers")
        self.assertIn("Subject: no notify", dsn["returned_part"])

        [r] = self.only_dsn(d, "erin@exchange.example")["recipients"]
        self.assertEqual((r["final_recipient"], r["action"]), ("frank@notes.example", "delayed"))
        self.assertEqual(d.maildir("exchange", "bob@exchange.example"), [])

        # Still queued and retried.
        states = d.recipient_states()
        self.assertEqual(len(states), 3)
        self.assertTrue(all(st["status"] == "deferred" for st in states.values()), states)
        self.assertEqual(d.counters("deliver:notes")["dsn_sent"], 2)
        # Between attempts (one may be under way at any moment, hence the polling):
        waiting = re.compile(r"^waiting: 3 deferred, next retry \d\d:\d\d:\d\d, last error: .*127\.0\.0\.1:%d"
                             % d.ports["dead"])
        p = d.wait_for(lambda: (lambda p: p if waiting.search(p["activity"]) else None)(d.process("deliver:notes")),
                       "the waiting activity of deliver:notes", timeout=30)
        self.assertEqual(p["state"], "degraded")
        self.assertEqual(p["gauges"]["queued_recipients"], 3)
        self.assertEqual(p["details"]["target"], "127.0.0.1:%d" % d.ports["dead"])
        self.assertRegex(p["details"]["oldest"], r"^\d+[smhd]$")
        self.assertNotEqual(p["details"]["oldest"], "0s")
        d.stop()

    def test_delay_notice_is_not_repeated_after_a_restart(self):
        d = self.start_daemon(delivery={"exchange": "maildir"},  # notes: a dead port
                              queue={"retry_delays": "1s", "lifetime": "1h", "delay_notice_after": "2s"})
        qid, _ = d.send(SENDER, ["carol@notes.example"], "restart me")
        d.wait_maildir("exchange", SENDER, timeout=60)
        attempts = d.recipient_states()[(qid, "carol@notes.example")]["attempts"]
        d.restart(kill=False)  # SIGTERM, clean stop
        d.wait_for(lambda: d.recipient_states()[(qid, "carol@notes.example")]["attempts"] >= attempts + 4,
                   "four more attempts after the restart", timeout=60)
        d.restart(kill=True)  # and once more after a crash
        d.wait_for(lambda: d.recipient_states()[(qid, "carol@notes.example")]["attempts"] >= attempts + 8,
                   "four more attempts after the kill -9", timeout=60)
        [r] = self.only_dsn(d)["recipients"]
        self.assertEqual(r["action"], "delayed")
        d.stop()

    def test_failed_report_to_a_refusing_sender_is_dropped_not_bounced(self):
        notes = bridgehead.MockMta(self, rules={"carol@notes.example": ["550 5.1.1 no such user"]})
        exchange = bridgehead.MockMta(self, rules={SENDER: ["550 5.2.1 mailbox disabled"]})
        d = self.start_daemon(delivery={"notes": notes, "exchange": exchange})
        d.send(SENDER, ["carol@notes.example"], "loop?")
        d.wait_queue_empty()
        # The DSN was offered to the sender's system once, from <>, and refused: the end.
        self.assertEqual(exchange.transactions(), [])  # refused at RCPT: no DATA
        self.assertEqual(d.counters("deliver:notes")["dsn_sent"], 1)
        ex = d.counters("deliver:exchange")
        self.assertEqual((ex["failed"], ex["dsn_sent"], ex["delivered"]), (1, 0, 0))
        self.assertIn("null sender", d.log())
        time.sleep(1)
        self.assertEqual(d.queue(), [])
        d.stop()

    def test_delay_notice_then_failure_at_expiry(self):
        d = self.start_daemon(delivery={"exchange": "maildir"},  # notes: a dead port
                              queue={"retry_delays": "1s", "lifetime": "6s", "delay_notice_after": "2s"})
        d.send(SENDER, ["carol@notes.example"], "first delayed, then failed")
        d.wait_maildir("exchange", SENDER, count=2, timeout=60)
        d.wait_queue_empty()
        reports = [bridgehead.parse_dsn(data) for _, data in d.maildir("exchange", SENDER)]
        self.assertEqual(len(reports), 2)
        actions = sorted((r["recipients"][0]["action"], r["recipients"][0]["status"][:2]) for r in reports)
        self.assertEqual(actions, [("delayed", "4."), ("failed", "4.")])
        failed = [r for r in reports if r["recipients"][0]["action"] == "failed"][0]
        self.assertEqual(failed["recipients"][0]["status"], "4.4.7")
        self.assertEqual(len({r["arrival_date"] for r in reports}), 1)
        d.stop()

    def test_failure_report_of_an_8bit_message_to_a_server_without_8bitmime(self):
        sink = bridgehead.SmtpSink(self, ["-8"]).start()
        notes = bridgehead.MockMta(self, rules={"carol@notes.example": ["550 5.1.1 no such user"]})
        d = self.start_daemon(delivery={"notes": notes, "exchange": sink})
        raw = ("From: <%s>\r\nTo: <carol@notes.example>\r\nSubject: 8bit\r\nMessage-ID: <eight@test>\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
               "\r\nGrüße aus Köln\r\n" % SENDER).encode("utf-8")
        d.send(SENDER, ["carol@notes.example"], message=raw, mail_options=["BODY=8BITMIME"])
        d.wait_queue_empty()
        [m] = sink.messages()
        self.assertEqual((m.sender, m.recipients), ("", [SENDER]))
        self.assertEqual([b for b in m.content if b >= 0x80], [], "8-bit octets to a server without 8BITMIME")
        dsn = bridgehead.parse_dsn(m.content)
        self.assertEqual(dsn["defects"], [])
        [r] = dsn["recipients"]
        self.assertEqual((r["final_recipient"], r["action"], r["status"]), ("carol@notes.example", "failed", "5.1.1"))
        self.assertEqual(dsn["returned"], "message")
        self.assertEqual(dsn["returned_part"]["Message-ID"], "<eight@test>")
        self.assertEqual(dsn["returned_part"].get_content(), "Grüße aus Köln\n")
        d.stop()

    def test_notify_never_gets_no_report(self):
        mta = bridgehead.MockMta(self, rules={"carol@notes.example": ["550 5.1.1 no such user"]})
        d = self.start_daemon(delivery={"notes": mta, "exchange": "maildir"})
        d.send(SENDER, ["carol@notes.example"], "never", rcpt_options=["NOTIFY=NEVER"])
        # A DSN is queued before the failure is recorded: an empty queue means none is coming.
        d.wait_queue_empty()
        self.assertEqual(d.counters("deliver:notes")["failed"], 1)
        self.assertEqual(bridgehead.all_maildir_files(d.maildir_root("exchange")), [])
        self.assertEqual(d.counters("deliver:notes")["dsn_sent"], 0)
        d.stop()

    def test_notify_success_into_a_maildir_is_delivered(self):
        d = self.start_daemon(delivery={"notes": "maildir", "exchange": "maildir"})
        d.send(SENDER, ["carol@notes.example", "dave@notes.example"], "success please",
               mail_options=["ENVID=env-4711", "RET=FULL"],
               rcpt_options={"carol@notes.example": ["NOTIFY=SUCCESS", "ORCPT=rfc822;Carol@Notes.Example"]})
        d.wait_queue_empty()
        self.assertEqual(len(d.maildir("notes", "carol@notes.example")), 1)
        self.assertEqual(len(d.maildir("notes", "dave@notes.example")), 1)
        dsn = self.only_dsn(d)
        [r] = dsn["recipients"]  # dave did not ask
        self.assertEqual(r["final_recipient"], "carol@notes.example")
        self.assertEqual(r["original_recipient"], "rfc822; Carol@Notes.Example")
        self.assertEqual(r["action"], "delivered")
        self.assertTrue(r["status"].startswith("2."), r)
        self.assertEqual(dsn["original_envelope_id"], "env-4711")
        self.assertEqual(dsn["returned"], "headers")  # RET applies to failures only
        d.stop()

    def test_notify_success_to_a_relay_without_dsn_is_relayed(self):
        sink = bridgehead.SmtpSink(self, ["-N"]).start()  # -N: no DSN in the EHLO reply
        d = self.start_daemon(delivery={"notes": sink, "exchange": "maildir"})
        d.send(SENDER, ["carol@notes.example"], "relayed", rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
        d.wait_queue_empty()
        [m] = sink.messages()
        self.assertEqual(m.rcpt_params("carol@notes.example"), [])
        dsn = self.only_dsn(d)
        [r] = dsn["recipients"]
        self.assertEqual((r["final_recipient"], r["action"]), ("carol@notes.example", "relayed"))
        self.assertTrue(r["status"].startswith("2."), r)
        self.assertEqual(r["remote_mta"], "dns; 127.0.0.1")
        d.stop()

    def test_dsn_request_is_passed_to_a_next_hop_that_offers_dsn(self):
        sink = bridgehead.SmtpSink(self).start()  # smtp-sink offers DSN by default
        d = self.start_daemon(delivery={"notes": sink, "exchange": "maildir"})
        d.send(SENDER, ["carol@notes.example", "dave@notes.example"], "pass it on",
               mail_options=["RET=HDRS", "ENVID=QQ+2B314"],
               rcpt_options={"carol@notes.example": ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;carol+2Bx@notes.example"],
                             "dave@notes.example": ["NOTIFY=NEVER"]})
        d.wait_queue_empty()
        [m] = sink.messages()
        mail = m.mail_args.split()
        self.assertIn("RET=HDRS", mail)
        self.assertIn("ENVID=QQ+2B314", mail)
        carol = m.rcpt_params("carol@notes.example")
        self.assertIn("NOTIFY=SUCCESS,FAILURE", carol)
        self.assertIn("ORCPT=rfc822;carol+2Bx@notes.example", carol)
        self.assertEqual(m.rcpt_params("dave@notes.example"), ["NOTIFY=NEVER"])
        # The next hop reports success itself: nothing from us.
        self.assertEqual(bridgehead.all_maildir_files(d.maildir_root("exchange")), [])
        self.assertEqual(d.counters("deliver:notes")["dsn_sent"], 0)
        d.stop()

    def test_no_report_for_a_bounce(self):
        mta = bridgehead.MockMta(self, rules={"carol@notes.example": ["550 5.7.1 not wanted"]})
        d = self.start_daemon(delivery={"notes": mta, "exchange": "maildir"})
        qid, _ = d.send("", ["carol@notes.example"], "a bounce",
                        message="From: MAILER-DAEMON@exchange.example\r\nSubject: bounce\r\n\r\nbounced\r\n")
        d.wait_queue_empty()
        self.assertEqual(mta.transactions(), [])
        self.assertEqual(bridgehead.all_maildir_files(d.maildir_root("exchange")), [])
        c = d.counters("deliver:notes")
        self.assertEqual((c["failed"], c["dsn_sent"]), (1, 0))
        self.assertRegex(d.log(), r"message %s: .*null sender" % qid)
        d.stop()

    def test_report_for_a_sender_of_no_connected_system_goes_back_where_the_mail_came_from(self):
        mta = bridgehead.MockMta(self, rules={"carol@notes.example": ["550 5.1.1 no such user"]})
        d = self.start_daemon(delivery={"notes": mta, "exchange": "maildir"})
        d.send("someone@elsewhere.example", ["carol@notes.example"], "foreign sender")
        d.wait_queue_empty()
        dsn = self.only_dsn(d, "someone@elsewhere.example")
        [r] = dsn["recipients"]
        self.assertEqual((r["final_recipient"], r["action"], r["status"]), ("carol@notes.example", "failed", "5.1.1"))
        d.stop()

    def test_report_from_exchange_to_a_notes_sender(self):
        mta = bridgehead.MockMta(self, rules={"alice@exchange.example": ["550 5.2.1 mailbox disabled"]})
        d = self.start_daemon(delivery={"exchange": mta, "notes": "maildir"})
        d.send("carol@notes.example", ["alice@exchange.example", "bob@exchange.example"], "the other way",
               system="notes")
        d.wait_queue_empty()
        self.assertEqual(len(mta.delivered_to("bob@exchange.example")), 1)
        dsn = self.only_dsn(d, "carol@notes.example", system="notes")
        [r] = dsn["recipients"]
        self.assertEqual((r["final_recipient"], r["action"], r["status"]), ("alice@exchange.example", "failed", "5.2.1"))
        self.assertEqual(d.counters("deliver:exchange")["dsn_sent"], 1)
        self.assertEqual(d.counters("deliver:notes")["delivered"], 1)  # the DSN
        d.stop()


if __name__ == "__main__":
    unittest.main()
