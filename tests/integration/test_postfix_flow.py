"""Real Postfix on both ends: a Postfix instance in front of each system relays the other
system's domain to that system's Bridgehead listener, and Bridgehead delivers to the other
instance, which keeps what it gets (its own domain goes to the deferred "relay" transport)."""

import smtplib
import subprocess
import unittest

import bridgehead
import postfix

POSTCAT = "/usr/sbin/postcat"


class PostfixFlowTest(bridgehead.TestCase):
    def start_postfix(self, name, port, own_domain, other_domain, bridgehead_port):
        return postfix.start_for_test(self, name, port, hostname="%s-mta.test" % name, relay_domains=(own_domain,),
                                      extra_main_cf={
                                          # Its own domain stays in its queue (a mailbox stand-in);
                                          # the other domain goes to Bridgehead at once.
                                          "defer_transports": "relay local virtual lmtp",
                                          "transport_maps": "inline:{%s=smtp:[127.0.0.1]:%d}" % (
                                              other_domain, bridgehead_port),
                                          "smtp_tls_security_level": "none",
                                      })

    def wait_postfix_message(self, d, pf, recipient):
        def held():
            for m in pf.queue():
                if any(r["address"] == recipient for r in m.get("recipients", [])):
                    return m
            return None
        return d.wait_for(held, "a message for %s in the Postfix queue in %s\n%s" % (
            recipient, pf.dir, pf.maillog_tail(40)), timeout=120, interval=0.3)

    def content(self, pf, queue_id):
        r = subprocess.run([POSTCAT, "-c", pf.config_dir, "-bh", "-q", queue_id], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_postfix_to_bridgehead_to_postfix_both_ways(self):
        pf_ex_port, pf_notes_port = bridgehead.free_ports(2)
        d = self.start_daemon(delivery={
            "exchange": {"method": "smtp", "address": "127.0.0.1:%d" % pf_ex_port, "tls": "none", "timeout": "30s"},
            "notes": {"method": "smtp", "address": "127.0.0.1:%d" % pf_notes_port, "tls": "none", "timeout": "30s"}})
        pf_ex = self.start_postfix("exchange", pf_ex_port, "exchange.example", "notes.example", d.port("exchange"))
        pf_notes = self.start_postfix("notes", pf_notes_port, "notes.example", "exchange.example", d.port("notes"))

        sent = {}
        for pf, sender, rcpt, subject in ((pf_ex, "ann@exchange.example", "carol@notes.example", "via postfix 1"),
                                          (pf_notes, "dave@notes.example", "alice@exchange.example", "via postfix 2")):
            msg = bridgehead.make_message(sender, [rcpt], subject, "Through two MTAs and the connector.\r\n")
            with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.test", timeout=60) as s:
                self.assertEqual(s.sendmail(sender, [rcpt], msg), {})
            sent[rcpt] = (sender, msg)

        for pf, rcpt in ((pf_notes, "carol@notes.example"), (pf_ex, "alice@exchange.example")):
            m = self.wait_postfix_message(d, pf, rcpt)
            sender, msg = sent[rcpt]
            self.assertEqual(m["sender"], sender)
            self.assertEqual([r["address"] for r in m["recipients"]], [rcpt])
            content = self.content(pf, m["queue_id"]).decode("utf-8", "replace")
            mid = [l for l in msg.split("\r\n") if l.startswith("Message-ID:")][0]
            self.assertIn(mid, content)
            self.assertIn("by bridgehead.test (Bridgehead)", content)
            self.assertIn("Through two MTAs and the connector.", content)

        d.wait_queue_empty(what="Bridgehead's queue to empty")
        self.assertEqual(d.counters("deliver:notes")["delivered"], 1)
        self.assertEqual(d.counters("deliver:exchange")["delivered"], 1)
        # Both Postfix instances handed their mail over: nothing for the other domain waits.
        for pf, other in ((pf_ex, "notes.example"), (pf_notes, "exchange.example")):
            left = [m for m in pf.queue() if any(r["address"].endswith("@" + other) for r in m["recipients"])]
            self.assertEqual(left, [], pf.maillog_tail(40))
        d.stop()


if __name__ == "__main__":
    unittest.main()
