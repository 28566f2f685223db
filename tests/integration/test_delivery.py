"""Delivery into the queue: swaks and smtplib sessions, DSN parameters, SMTPUTF8, 8BITMIME,
null sender, several messages per session; content checked in the spool files."""

import smtplib
import unittest

import bridgehead


class DeliveryTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.d = self.start_daemon()

    def content(self, qid):
        spooled = bridgehead.read_spool_content(self.d.spool_dir)
        self.assertIn(qid, spooled, "message %s not found in the spool segment files" % qid)
        return spooled[qid]

    def test_swaks_message_is_queued_with_sender_and_recipients(self):
        rc, out = self.d.swaks("--from", "ann@exchange.example", "--to", "carol@notes.example,dave@notes.example",
                               "--header", "Subject: swaks test", "--body", "Hello from swaks")
        self.assertRegex(out, r"<-  250 2\.0\.0 Ok: queued as [0-9a-f]{16}")
        qid = bridgehead.queue_id(out)
        m = self.assertQueued(self.d, qid, "ann@exchange.example", ["carol@notes.example", "dave@notes.example"])
        content = self.content(qid)
        self.assertEqual(m["size"], len(content))
        self.assertTrue(content.startswith(b"Received: from swaks.test ("), content[:200])
        self.assertIn(b"by bridgehead.test (Bridgehead) with ESMTP id " + qid.encode(), content)
        self.assertIn(b"Subject: swaks test\r\n", content)
        self.assertIn(b"Hello from swaks", content)

    def test_swaks_from_notes_to_exchange(self):
        rc, out = self.d.swaks("--from", "carol@notes.example", "--to", "alice@exchange.example", system="notes")
        qid = bridgehead.queue_id(out)
        self.assertQueued(self.d, qid, "carol@notes.example", ["alice@exchange.example"], system="notes")

    def test_smtplib_with_dsn_parameters(self):
        s = self.d.smtplib()
        s.ehlo()
        self.assertTrue(s.has_extn("dsn"))
        msg = bridgehead.make_message("ann@exchange.example", ["carol@notes.example"], "dsn")
        s.mail("ann@exchange.example", ["RET=HDRS", "ENVID=QQ+2B123"])
        code, text = s.rcpt("carol@notes.example", ["NOTIFY=SUCCESS,FAILURE,DELAY",
                                                     "ORCPT=rfc822;carol+2Bx@notes.example"])
        self.assertEqual((code, text[:5]), (250, b"2.1.5"))
        code, text = s.rcpt("dave@notes.example", ["NOTIFY=NEVER"])
        self.assertEqual(code, 250)
        code, text = s.data(msg)
        self.assertEqual(code, 250, text)
        qid = bridgehead.queue_id(text.decode())
        # malformed DSN parameters: 555 5.5.4
        s.mail("ann@exchange.example", ["RET=SOMETIMES"])  # refused, no transaction
        self.assertEqual(s.rcpt("carol@notes.example")[0], 503)
        s.rset()
        for bad in (["NOTIFY=NEVER,SUCCESS"], ["NOTIFY=ALWAYS"], ["ORCPT=carol@notes.example"]):
            self.assertEqual(s.mail("ann@exchange.example")[0], 250)
            code, text = s.rcpt("carol@notes.example", bad)
            self.assertEqual((code, text[:5]), (555, b"5.5.4"), bad)
            s.rset()
        code, text = s.mail("ann@exchange.example", ["ENVID=a+0D+0AMAIL"])  # CR LF hidden in xtext
        self.assertEqual((code, text[:5]), (555, b"5.5.4"))
        s.quit()
        self.assertQueued(self.d, qid, "ann@exchange.example", ["carol@notes.example", "dave@notes.example"])
        self.assertEqual(len(self.d.queue()), 1)

    def test_smtplib_sendmail_several_messages_in_one_session(self):
        s = self.d.smtplib("notes")
        ids = []
        for i in range(5):
            msg = bridgehead.make_message("dave@notes.example", ["alice@exchange.example"], "n%d" % i)
            refused = s.sendmail("dave@notes.example", ["alice@exchange.example", "bob@exchange.example"], msg)
            self.assertEqual(refused, {})
        s.quit()
        q = self.d.queue()
        self.assertEqual(len(q), 5)
        self.assertEqual(len({m["id"] for m in q}), 5)
        for m in q:
            self.assertEqual(m["system"], "notes")
            self.assertEqual(sorted(m["recipients"]), ["alice@exchange.example", "bob@exchange.example"])

    def test_partial_recipient_refusal(self):
        s = self.d.smtplib()
        msg = bridgehead.make_message("ann@exchange.example", ["carol@notes.example"])
        refused = s.sendmail("ann@exchange.example", ["carol@notes.example", "nobody@notes.example"], msg)
        self.assertEqual(list(refused), ["nobody@notes.example"])
        self.assertEqual(refused["nobody@notes.example"][0], 550)
        self.assertTrue(refused["nobody@notes.example"][1].startswith(b"5.1.1"))
        s.quit()
        [m] = self.d.queue()
        self.assertEqual(m["recipients"], ["carol@notes.example"])

    def test_null_sender_is_accepted(self):
        c = self.d.raw()
        c.ehlo()
        qid = c.send_message("", ["carol@notes.example"], "Subject: bounce\r\n\r\nA DSN.\r\n")
        self.assertQueued(self.d, qid, "", ["carol@notes.example"])

    def test_smtputf8_address(self):
        s = self.d.smtplib()
        s.ehlo()
        self.assertTrue(s.has_extn("smtputf8"))
        sender = "jörg.müller@exchange.example"
        msg = ("From: <%s>\r\nTo: <carol@notes.example>\r\nSubject: Grüße\r\n\r\nÄÖÜ\r\n" % sender).encode()
        refused = s.sendmail(sender, ["carol@notes.example"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        self.assertEqual(refused, {})
        s.quit()
        [m] = self.d.queue()
        self.assertEqual(m["from"], sender)
        content = self.content(m["id"])
        self.assertIn("Subject: Grüße\r\n\r\nÄÖÜ\r\n".encode(), content)
        self.assertIn(b"with UTF8SMTP id", content)

    def test_non_ascii_without_smtputf8_is_refused(self):
        c = self.d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<jörg@exchange.example>", 553, "5.6.7")
        c.cmd("MAIL FROM:<ann@exchange.example>", 250, "2.1.0")
        c.cmd("RCPT TO:<zoë@notes.example>", 553, "5.6.7")
        c.cmd("RSET", 250, "2.0.0")
        c.cmd("MAIL FROM:<j\xc3\xb6rg@exchange.example> SMTPUTF8".encode("latin-1").decode("utf-8"), 250, "2.1.0")
        c.cmd("RSET", 250, "2.0.0")
        c.send(b"MAIL FROM:<j\xf6rg@exchange.example> SMTPUTF8\r\n")  # Latin-1, not UTF-8
        c.expect(553, "5.1.3")

    def test_8bitmime_body_is_kept_byte_exact(self):
        body = "Grüße aus Köln — 8bit\r\n".encode("utf-8") + bytes(range(0x80, 0x100)) + b"\r\n.dot line\r\n"
        header = b"Subject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" \
                 b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        c = self.d.raw()
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example> BODY=8BITMIME SIZE=%d" % (len(header) + len(body)), 250, "2.1.0")
        c.cmd("RCPT TO:<carol@notes.example>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(bridgehead.dot_stuff(header + body) + b".\r\n")
        qid = bridgehead.queue_id(c.expect(250, "2.0.0")[-1])
        content = self.content(qid)
        self.assertTrue(content.endswith(header + body), content[-300:])
        self.assertEqual(self.d.queued_by_id()[qid]["size"], len(content))
        c.cmd("MAIL FROM:<ann@exchange.example> BODY=9BIT", 555, "5.5.4")


if __name__ == "__main__":
    unittest.main()
