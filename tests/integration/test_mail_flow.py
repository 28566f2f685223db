"""Mail flow (issue 3): mail accepted by one system's listener reaches the system that owns
the recipient's domain. Maildir both ways, SMTP to smtp-sink with a temporary failure first,
the 8BITMIME downgrade, LMTP with a different answer per recipient, and a poison message."""

import os
import time
import unittest

import bridgehead

SENDER = "ann@exchange.example"


class MailFlowTest(bridgehead.TestCase):
    def assert_maildir_copy(self, data, sender, rcpt, subject, message_id):
        """A Maildir file: LF line endings, Return-Path and Delivered-To first, the original after."""
        self.assertNotIn(b"\r", data, "Maildir files have LF line endings")
        lines = data.split(b"\n")
        self.assertEqual(lines[0].decode(), "Return-Path: <%s>" % sender)
        self.assertEqual(lines[1].decode(), "Delivered-To: %s" % rcpt)
        msg = bridgehead.parse_message(data)
        self.assertEqual(msg["Subject"], subject)
        self.assertEqual(msg["Message-ID"], message_id)
        self.assertIn("by bridgehead.test (Bridgehead)", " ".join(str(r) for r in msg.get_all("Received", [])))
        return msg

    def test_maildir_delivery_both_ways_and_queue_empties(self):
        d = self.start_daemon(delivery={"exchange": "maildir", "notes": "maildir"})
        _, mid1 = d.send(SENDER, ["carol@notes.example", "dave@notes.example"], "to notes",
                         body="Line one.\r\nLine two.\r\n")
        _, mid2 = d.send("carol@notes.example", ["alice@exchange.example"], "to exchange", system="notes")
        _, mid3 = d.send("dave@notes.example", ["Bob@Exchange.Example"], "mixed case", system="notes")
        d.wait_queue_empty(what="every message delivered to a Maildir")

        [(_, carol)] = d.maildir("notes", "carol@notes.example")
        msg = self.assert_maildir_copy(carol, SENDER, "carol@notes.example", "to notes", mid1)
        self.assertEqual(msg.get_content(), "Line one.\nLine two.\n")
        [(_, dave)] = d.maildir("notes", "dave@notes.example")
        self.assert_maildir_copy(dave, SENDER, "dave@notes.example", "to notes", mid1)
        [(_, alice)] = d.maildir("exchange", "alice@exchange.example")
        self.assert_maildir_copy(alice, "carol@notes.example", "alice@exchange.example", "to exchange", mid2)
        # Mailbox names are the lower-cased address (one Maildir per person, whatever the case).
        [(_, bob)] = d.maildir("exchange", "bob@exchange.example")
        self.assertEqual(bridgehead.parse_message(bob)["Message-ID"], mid3)

        notes, exchange = d.counters("deliver:notes"), d.counters("deliver:exchange")
        self.assertEqual((notes["delivered"], exchange["delivered"]), (2, 2))
        for c in (notes, exchange):
            self.assertEqual((c["failed"], c["deferred"], c["dsn_sent"]), (0, 0, 0), c)
        for name in ("deliver:notes", "deliver:exchange"):
            g = d.gauges(name)
            self.assertIn("queued_recipients", g, g)
            self.assertEqual(g["queued_recipients"], 0, g)
        for name in ("deliver:notes", "deliver:exchange"):
            self.assertEqual(d.process(name)["state"], "running")
        self.assertIn("Maildir", d.process("deliver:notes")["details"]["target"])
        d.stop()

    def test_temporary_failure_then_delivery_after_retry(self):
        sink = bridgehead.SmtpSink(self, ["-r", "RCPT"]).start()  # 450 to every RCPT
        d = self.start_daemon(delivery={"notes": sink, "exchange": "maildir"}, queue={"retry_delays": "1s"})
        qid, mid = d.send(SENDER, ["carol@notes.example"], "retry me")

        def deferred():
            st = d.recipient_states().get((qid, "carol@notes.example"))
            return st if st and st["status"] == "deferred" and st["attempts"] >= 2 else None
        st = d.wait_for(deferred, "two deferred attempts of carol")
        self.assertTrue(st["reply"].startswith("450 4.3.0"), st)
        self.assertIn("next_attempt", st)
        self.assertEqual(sink.messages(), [])
        self.assertGreaterEqual(d.counters("deliver:notes")["deferred"], 2)

        sink.restart([])  # the destination recovers
        d.wait_queue_empty(what="delivery after the destination recovered")
        [m] = sink.messages()
        self.assertEqual(m.recipients, ["carol@notes.example"])
        self.assertEqual(m.sender, SENDER)
        self.assertEqual(m.message()["Message-ID"], mid)
        c = d.counters("deliver:notes")
        self.assertEqual((c["delivered"], c["failed"], c["dsn_sent"]), (1, 0, 0))
        # A 4xx is an answer: the destination is reachable, so the process stays running.
        self.assertEqual(d.process("deliver:notes")["state"], "running")
        self.assertEqual(bridgehead.all_maildir_files(d.maildir_root("exchange")), [],
                         "no DSN for a recipient deferred for less than delay_notice_after")
        d.stop()

    def test_reply_timeout_defers_until_the_destination_answers_in_time(self):
        sink = bridgehead.SmtpSink(self, ["-w", "4"]).start()  # DATA answered after 4s
        d = self.start_daemon(delivery={"notes": sink.delivery(timeout="1s"), "exchange": "maildir"},
                              queue={"retry_delays": "1s"})
        qid, mid = d.send(SENDER, ["carol@notes.example"], "slow")
        st = d.wait_for(lambda: (lambda st: st if st and st["attempts"] >= 2 else None)(
            d.recipient_states().get((qid, "carol@notes.example"))), "two timed-out attempts", timeout=60)
        self.assertEqual(st["status"], "deferred")
        self.assertIn("timed out", st["reply"])
        p = d.process("deliver:notes")
        self.assertEqual(p["state"], "degraded")
        self.assertIn("timed out", p["last_error"]["message"])
        sink.restart([])
        d.wait_queue_empty()
        [m] = sink.messages()  # the timed-out attempts sent no content
        self.assertEqual(m.message()["Message-ID"], mid)
        d.wait_for(lambda: d.process("deliver:notes")["state"] == "running", "deliver:notes running again")
        d.stop()

    def test_required_tls_without_starttls_defers(self):
        sink = bridgehead.SmtpSink(self).start()  # no STARTTLS
        d = self.start_daemon(delivery={"notes": sink.delivery(tls="required", tls_verify_name="localhost"), "exchange": "maildir"},
                              queue={"retry_delays": "1s"})
        qid, _ = d.send(SENDER, ["carol@notes.example"], "tls please")
        st = d.wait_for(lambda: (lambda st: st if st and st["attempts"] >= 2 else None)(
            d.recipient_states().get((qid, "carol@notes.example"))), "two attempts", timeout=60)
        self.assertEqual(st["status"], "deferred")
        self.assertIn("STARTTLS", st["reply"])
        self.assertEqual(sink.messages(), [])
        self.assertIn("STARTTLS", d.process("deliver:notes")["last_error"]["message"])
        d.stop()

    # ------------------------------------------------------------ 8BITMIME

    TEXT = ("Grüße aus Köln — ein Brief mit Umlauten: ÄÖÜ äöü ß.\r\n"
            "Zweite Zeile mit € und » « und einem langen Wort " + "ü" * 60 + ".\r\n"
            ".Eine Zeile, die mit einem Punkt beginnt.\r\n"
            "Trailing space here \r\n")

    def eight_bit_message(self):
        attachment = "Anhang: Straße, Größe, naïve café.\r\n"
        msg = ("From: <%s>\r\nTo: <carol@notes.example>\r\nSubject: 8bit\r\nMessage-ID: <eightbit@test>\r\n"
               "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
               "--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
               "%s"
               "--b1\r\nContent-Type: text/plain; charset=utf-8; name=\"a.txt\"\r\n"
               "Content-Disposition: attachment; filename=\"a.txt\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
               "%s"
               "--b1--\r\n") % (SENDER, self.TEXT, attachment)
        return msg.encode("utf-8"), attachment

    def test_8bit_content_is_downgraded_for_a_server_without_8bitmime(self):
        sink = bridgehead.SmtpSink(self, ["-8"]).start()  # -8: no 8BITMIME in the EHLO reply
        d = self.start_daemon(delivery={"notes": sink})
        raw, attachment = self.eight_bit_message()
        d.send(SENDER, ["carol@notes.example"], message=raw, mail_options=["BODY=8BITMIME"])
        d.wait_queue_empty(what="delivery of the 8-bit message")
        [m] = sink.messages()
        self.assertNotIn("BODY=8BITMIME", m.mail_args.upper())
        eight = [b for b in m.content if b >= 0x80]
        self.assertEqual(eight, [], "8-bit octets sent to a server without 8BITMIME")
        msg = m.message()
        self.assertEqual(msg.get_content_type(), "multipart/mixed")
        text, att = list(msg.iter_parts())
        # What each part says, as the email package reads the original (the CRLF before a
        # boundary belongs to the boundary, RFC 2046 5.1.1).
        original = [p.get_content().replace("\r\n", "\n") for p in bridgehead.parse_message(raw).iter_parts()]
        self.assertTrue(original[0].startswith(self.TEXT.replace("\r\n", "\n").rstrip("\n")), original[0])
        self.assertTrue(original[1].startswith(attachment.rstrip("\r\n")), original[1])
        for part, want in zip((text, att), original):
            self.assertIn(part["Content-Transfer-Encoding"].lower(), ("quoted-printable", "base64"))
            self.assertEqual(part.get_content_charset(), "utf-8")
            self.assertEqual(part.get_content().replace("\r\n", "\n"), want)
        self.assertEqual(att.get_filename(), "a.txt")
        self.assertEqual(d.counters("deliver:notes")["delivered"], 1)
        d.stop()

    def test_8bit_headers_and_a_body_without_mime_headers_are_downgraded(self):
        sink = bridgehead.SmtpSink(self, ["-8"]).start()
        d = self.start_daemon(delivery={"notes": sink})
        no_mime = ("From: <%s>\r\nTo: <carol@notes.example>\r\nSubject: Grüße aus Köln\r\nMessage-ID: <nomime@test>\r\n"
                   "\r\nNo MIME headers at all: Grüße, Köln.\r\n" % SENDER).encode("utf-8")
        latin1 = ("From: Jörg Müller <%s>\r\nTo: <carol@notes.example>\r\nSubject: latin-1\r\n"
                  "Message-ID: <latin1@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
                  "Content-Transfer-Encoding: 8bit\r\n\r\n" % SENDER).encode("utf-8") + "Grüße\r\n".encode("latin-1")
        for raw in (no_mime, latin1):
            d.send(SENDER, ["carol@notes.example"], message=raw, mail_options=["BODY=8BITMIME"])
        d.wait_queue_empty()
        got = {m.message()["Message-ID"]: m for m in sink.messages()}
        self.assertEqual(sorted(got), ["<latin1@test>", "<nomime@test>"])
        for m in got.values():
            self.assertEqual([b for b in m.content if b >= 0x80], [], m.content)
        msg = got["<nomime@test>"].message()
        self.assertEqual(msg["Subject"], "Grüße aus Köln")
        self.assertEqual(msg.get_content_charset(), "utf-8")
        self.assertEqual(msg.get_content(), "No MIME headers at all: Grüße, Köln.\n")
        msg = got["<latin1@test>"].message()
        self.assertEqual(msg["From"].addresses[0].display_name, "Jörg Müller")
        self.assertEqual(msg.get_content_charset(), "iso-8859-1")
        self.assertEqual(msg.get_content(), "Grüße\n")
        d.stop()

    def test_8bit_content_is_kept_when_8bitmime_is_offered(self):
        sink = bridgehead.SmtpSink(self).start()
        d = self.start_daemon(delivery={"notes": sink})
        raw, _ = self.eight_bit_message()
        d.send(SENDER, ["carol@notes.example"], message=raw, mail_options=["BODY=8BITMIME"])
        d.wait_queue_empty()
        [m] = sink.messages()
        self.assertIn("BODY=8BITMIME", m.mail_args.upper())
        # The sink writes LF lines; the original body is there octet for octet.
        self.assertIn(self.TEXT.replace("\r\n", "\n").encode("utf-8"), m.content)
        d.stop()

    # ------------------------------------------------------------ LMTP

    def test_lmtp_with_a_different_answer_per_recipient(self):
        lmtp = bridgehead.MockMta(self, lmtp=True, rules={
            "dave@notes.example": ["452 4.2.2 <dave@notes.example>: mailbox full", "250"],
            "frank@notes.example": ["550 5.1.1 <frank@notes.example>: no such user"],
        })
        d = self.start_daemon(delivery={"notes": lmtp, "exchange": "maildir"}, queue={"retry_delays": "1s"})
        qid, mid = d.send(SENDER, ["carol@notes.example", "dave@notes.example", "frank@notes.example"], "lmtp mix")
        d.wait_queue_empty(what="carol and dave delivered, frank failed")

        txns = lmtp.transactions()
        self.assertEqual(len(txns), 2, txns)
        first, retry = txns
        self.assertEqual(first["proto"], "LMTP")
        self.assertEqual([r["address"] for r in first["rcpts"]],
                         ["carol@notes.example", "dave@notes.example", "frank@notes.example"])
        self.assertEqual([r["final_reply"][:3] for r in first["rcpts"]], ["250", "452", "550"])
        # The retry carries only the deferred recipient.
        self.assertEqual([r["address"] for r in retry["rcpts"]], ["dave@notes.example"])
        self.assertEqual(retry["rcpts"][0]["final_reply"][:3], "250")
        self.assertIn(("Message-ID: %s" % mid).encode(), retry["content"])
        self.assertEqual(len(lmtp.delivered_to("carol@notes.example")), 1)
        self.assertEqual(len(lmtp.delivered_to("dave@notes.example")), 1)
        self.assertEqual(lmtp.delivered_to("frank@notes.example"), [])

        [(_, data)] = d.maildir("exchange", SENDER)
        self.assertTrue(data.startswith(b"Return-Path: <>\n"), data[:100])
        dsn = bridgehead.parse_dsn(data)
        self.assertEqual(dsn["defects"], [])
        [r] = dsn["recipients"]
        self.assertEqual(r["final_recipient"], "frank@notes.example")
        self.assertEqual(r["action"], "failed")
        self.assertEqual(r["status"], "5.1.1")
        self.assertIn("550 5.1.1", r["diagnostic_code"])
        self.assertEqual(r["remote_mta"], "dns; 127.0.0.1")
        self.assertEqual(dsn["returned"], "message")
        self.assertEqual(dsn["returned_part"]["Message-ID"], mid)

        c = d.counters("deliver:notes")
        self.assertEqual((c["delivered"], c["failed"], c["deferred"], c["dsn_sent"]), (2, 1, 1, 1), c)
        self.assertEqual(d.counters("deliver:exchange")["delivered"], 1)  # the DSN
        d.stop()

    # ------------------------------------------------------------ poison

    def test_poison_message_is_quarantined_and_the_next_one_delivered(self):
        marker = "X-POISON-7f3a9c"
        d = self.start_daemon(delivery={"notes": "maildir", "exchange": "maildir"},
                              env={"BRIDGEHEAD_FAULT_POISON": marker})
        bad, bad_mid = d.send(SENDER, ["carol@notes.example"], "poison", body="before %s after\r\n" % marker)
        good, good_mid = d.send(SENDER, ["carol@notes.example"], "healthy")
        d.wait_queue_empty(what="the poison quarantined and the healthy message delivered")

        quarantine = os.path.join(d.state_dir, "quarantine")
        eml, txt = os.path.join(quarantine, bad + ".eml"), os.path.join(quarantine, bad + ".txt")
        self.assertTrue(os.path.isfile(eml), os.listdir(quarantine) if os.path.isdir(quarantine) else "no dir")
        self.assertTrue(os.path.isfile(txt))
        self.assertFalse(os.path.exists(os.path.join(quarantine, good + ".eml")))
        with open(eml, "rb") as f:
            kept = f.read()
        self.assertIn(marker.encode(), kept)
        self.assertEqual(bridgehead.parse_message(kept)["Message-ID"], bad_mid)
        with open(txt) as f:
            reason = f.read()
        self.assertIn(bad, reason)
        self.assertIn("poison marker", reason)
        self.assertIn(SENDER, reason)
        self.assertIn("carol@notes.example", reason)

        [(_, data)] = d.maildir("notes", "carol@notes.example")
        self.assertEqual(bridgehead.parse_message(data)["Message-ID"], good_mid)
        self.assertIsNone(d.proc.poll(), "the daemon must keep running")
        p = d.process("deliver:notes")
        self.assertEqual(p["state"], "degraded")
        self.assertIn(bad, p["last_error"]["message"])
        self.assertIn("quarantine", p["last_error"]["message"])
        self.assertIn(eml, p["last_error"]["remedy"])
        self.assertEqual((p["counters"].get("quarantined"), p["counters"].get("delivered")), (1, 1))
        self.assertIn("quarantined", d.log())

        # Quarantined means out of the queue: a restart does not bring it back.
        d.restart()
        time.sleep(1)
        self.assertEqual(d.queue(), [])
        self.assertEqual(len(d.maildir("notes", "carol@notes.example")), 1)
        d.stop()


if __name__ == "__main__":
    unittest.main()
