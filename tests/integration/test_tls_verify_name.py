"""Required TLS toward a next hop checks the name in its certificate (issue 8, defect 2), not
only the chain: the host of `address`, or `tls_verify_name` for a next hop named by IP, with
no partial wildcards. The peer is mock_mta.py with STARTTLS and certificates made here by
openssl, all signed by one test CA that the delivery trusts through tls_ca_file."""

import os
import subprocess
import unittest

import bridgehead
from bridgehead import EXIT

SENDER = "ann@exchange.example"
RCPT = "carol@notes.example"


class TlsVerifyNameTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.openssl = self.require("openssl")
        self.pki = os.path.join(self.workdir, "pki")
        os.makedirs(self.pki)
        self.ssl("req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Test Next-Hop CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def ssl(self, *args):
        r = subprocess.run([self.openssl, *args[:1], *(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                                        "-nodes"] if args[0] == "req" else []), *args[1:]],
                           cwd=self.pki, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "openssl %s: %s" % (" ".join(args), r.stderr))

    def server_cert(self, name, dns):
        """A certificate with subjectAltName DNS:`dns` (CN the same), signed by the test CA."""
        with open(os.path.join(self.pki, name + ".cnf"), "w") as f:
            f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" % dns)
        self.ssl("req", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=%s" % dns)
        self.ssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", name + ".pem", "-days", "2", "-extfile", name + ".cnf")
        return os.path.join(self.pki, name + ".pem"), os.path.join(self.pki, name + ".key")

    def deliver(self, dns, host="127.0.0.1", verify_name=None):
        """Starts a TLS peer with a certificate for `dns` and a daemon delivering to it over
        required TLS; sends one message. Returns (daemon, peer, queue id)."""
        cert, key = self.server_cert("server", dns)
        mta = bridgehead.MockMta(self, tls_cert=cert, tls_key=key)
        delivery = mta.delivery(tls="required", tls_ca_file=os.path.join(self.pki, "ca.pem"),
                                address="%s:%d" % (host, mta.port))
        if verify_name is not None:
            delivery["tls_verify_name"] = verify_name
        d = self.start_daemon(delivery={"notes": delivery, "exchange": "maildir"}, queue={"retry_delays": "1s"})
        qid, _ = d.send(SENDER, [RCPT], "tls name")
        return d, mta, qid

    def assert_delivered_over_tls(self, d, mta):
        d.wait_queue_empty(what="delivery over verified TLS")
        [t] = mta.transactions()
        self.assertTrue(t["tls"], t)
        self.assertEqual([r["address"] for r in t["rcpts"]], [RCPT])
        d.stop()

    def assert_deferred(self, d, mta, qid):
        """Two attempts deferred, nothing delivered; returns the reason `bridgehead queue` shows."""
        def two_attempts():
            states = d.recipient_states()
            if (qid, RCPT) not in states and mta.transactions():
                self.fail("delivered over TLS to a certificate that does not name the next hop: %s" %
                          mta.transactions())
            st = states.get((qid, RCPT))
            return st if st and st["attempts"] >= 2 else None
        st = d.wait_for(two_attempts, "two deferred attempts", timeout=60)
        self.assertEqual(st["status"], "deferred", st)
        self.assertEqual(mta.transactions(), [])
        d.stop()
        return st["reply"]

    def test_certificate_for_another_name_defers_and_names_both(self):
        # The address is a host name: that is the name the certificate must carry.
        d, mta, qid = self.deliver("mx.other.example", host="localhost")
        reply = self.assert_deferred(d, mta, qid)
        self.assertIn("localhost", reply)
        self.assertIn("mx.other.example", reply)
        self.assertIn("tls_verify_name", reply, "the reason tells the admin what to change")

    def test_certificate_for_the_host_of_the_address_is_delivered(self):
        d, mta, _ = self.deliver("localhost", host="localhost")
        self.assert_delivered_over_tls(d, mta)

    def test_tls_verify_name_for_a_next_hop_named_by_ip(self):
        d, mta, _ = self.deliver("mx.notes.example", verify_name="mx.notes.example")
        self.assert_delivered_over_tls(d, mta)

    def test_partial_wildcard_is_refused(self):
        d, mta, qid = self.deliver("m*.notes.example", verify_name="mx.notes.example")
        reply = self.assert_deferred(d, mta, qid)
        self.assertIn("m*.notes.example", reply)
        self.assertIn("mx.notes.example", reply)

    def test_full_wildcard_is_accepted(self):
        d, mta, _ = self.deliver("*.notes.example", verify_name="mx.notes.example")
        self.assert_delivered_over_tls(d, mta)

    def test_check_refuses_required_tls_to_an_ip_without_tls_verify_name(self):
        d = bridgehead.Daemon(self, self.workdir, delivery={
            "notes": {"method": "smtp", "address": "127.0.0.1:2526", "tls": "required"}, "exchange": "maildir"})
        d.write_config()
        r = subprocess.run([self.bridgehead_bin, "check", "-c", d.config_path], capture_output=True, text=True,
                           timeout=60)
        self.assertNotEqual(r.returncode, EXIT.kOk, r.stdout + r.stderr)
        self.assertIn("tls_verify_name", r.stdout + r.stderr)
        self.assertIn("127.0.0.1", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
