"""The address book at RCPT (issue 10): a book saved in the state directory (written here
beforehand by `bridgehead addressbook import`) is loaded when the daemon starts, before any
directory answers. Its recipients of the other system are accepted at RCPT, unknown ones
refused as before; a recipient left out of a newer book is refused after the restart that
loads it; a damaged book is not fatal: the static lists carry on and the status says why."""

import json
import os

import bridgehead

# Not on the static lists of tests/support/bridgehead.py: only the book knows them.
BOOK = [
    {"id": "0f3c2a1e-0000-4000-8000-000000000001", "system": "notes", "kind": "person",
     "display_name": "Zoe Zeta", "forms": {"smtp": ["zoe@notes.example"],
                                           "notes-abbreviated": ["Zoe Zeta/Sales/Acme"]}},
    {"id": "OF1A2B3C4D", "system": "exchange", "display_name": "Yann Yu",
     "forms": {"smtp": ["yann@exchange.example"], "x500": ["/o=Acme/cn=Recipients/cn=yann"]}},
]


class AddressBookTest(bridgehead.TestCase):
    def prepared_daemon(self, recipients=None, book_bytes=None):
        """A daemon whose state_dir holds an address book before its first start."""
        d = bridgehead.Daemon(self, self.workdir)
        d.write_config()
        book = os.path.join(d.state_dir, "addressbook.bin")
        if recipients is not None:
            self.import_book(d, recipients)
        if book_bytes is not None:
            with open(book, "wb") as f:
                f.write(book_bytes)
        self.daemons.append(d)
        self.addCleanup(d.cleanup)
        return d, book

    def import_book(self, d, recipients):
        listing = os.path.join(self.workdir, "recipients.jsonl")
        with open(listing, "w") as f:
            f.write("# written by test_address_book.py\n")
            for r in recipients:
                f.write(json.dumps(r) + "\n")
        r = d.cli("addressbook", "import", listing)
        self.assertIn("%d recipients" % len(recipients), r.stdout.decode())

    def rcpt(self, d, system, sender, recipient, code, enhanced):
        c = d.raw(system)
        c.ehlo()
        c.cmd("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        lines = c.cmd("RCPT TO:<%s>" % recipient, code, enhanced)
        c.cmd("QUIT", 221)
        c.close()
        return lines

    def test_book_recipients_are_accepted_and_unknown_ones_refused(self):
        d, _ = self.prepared_daemon(BOOK)
        d.start()
        self.rcpt(d, "exchange", "ann@exchange.example", "zoe@notes.example", 250, "2.1.5")
        self.rcpt(d, "exchange", "ann@exchange.example", "ZOE@Notes.Example", 250, "2.1.5")
        self.rcpt(d, "notes", "carol@notes.example", "yann@exchange.example", 250, "2.1.5")
        self.rcpt(d, "exchange", "ann@exchange.example", "nobody@notes.example", 550, "5.1.1")
        # A book recipient of the ingress's own system is not relayed back to it.
        self.rcpt(d, "exchange", "ann@exchange.example", "yann@exchange.example", 554, "5.7.1")
        # The static list still counts.
        self.rcpt(d, "exchange", "ann@exchange.example", "carol@notes.example", 250, "2.1.5")
        qid, _ = d.send("ann@exchange.example", ["zoe@notes.example"], "to a book recipient")
        self.assertQueued(d, qid, "ann@exchange.example", ["zoe@notes.example"])

        p = d.process("addressbook")
        self.assertEqual(p["state"], "running", p)
        self.assertEqual(p["gauges"]["recipients"], 2, p)
        self.assertEqual(p["gauges"]["forms"], 4, p)
        self.assertGreater(p["gauges"]["built_at"], 1700000000, p)
        self.assertIn("2 recipients, built ", p["activity"])
        self.assertTrue(p["details"]["file"].endswith("addressbook.bin"), p)
        d.stop()

    def test_a_recipient_left_out_of_the_new_book_is_refused_after_the_restart(self):
        d, _ = self.prepared_daemon(BOOK)
        d.start()
        self.rcpt(d, "exchange", "ann@exchange.example", "zoe@notes.example", 250, "2.1.5")
        self.import_book(d, BOOK[1:])  # zoe was deleted from the directory
        d.restart(kill=False)
        self.rcpt(d, "exchange", "ann@exchange.example", "zoe@notes.example", 550, "5.1.1")
        self.rcpt(d, "notes", "carol@notes.example", "yann@exchange.example", 250, "2.1.5")
        self.assertEqual(d.gauges("addressbook")["recipients"], 1)
        d.stop()

    def test_a_damaged_book_leaves_the_static_lists_and_says_so(self):
        d, book = self.prepared_daemon(book_bytes=b"BHADBOOK\x01\x00\x00\x00" + b"\x00" * 40)
        d.start()
        p = d.process("addressbook")
        self.assertEqual(p["state"], "degraded", p)
        self.assertIn("address book %s is damaged" % book, p["last_error"]["message"])
        self.assertIn("static recipient lists", p["activity"])
        self.rcpt(d, "exchange", "ann@exchange.example", "carol@notes.example", 250, "2.1.5")
        self.rcpt(d, "exchange", "ann@exchange.example", "zoe@notes.example", 550, "5.1.1")
        self.assertIn("the daemon starts with the static recipient lists only", d.log())
        d.stop()

    def test_without_a_book_the_static_lists_decide(self):
        d, book = self.prepared_daemon()
        d.start()
        self.assertFalse(os.path.exists(book))
        p = d.process("addressbook")
        self.assertEqual(p["state"], "running", p)
        self.assertEqual(p["gauges"]["recipients"], 0, p)
        self.assertIn("no address book saved yet", p["activity"])
        self.rcpt(d, "exchange", "ann@exchange.example", "carol@notes.example", 250, "2.1.5")
        self.rcpt(d, "exchange", "ann@exchange.example", "zoe@notes.example", 550, "5.1.1")
        d.stop()

    def test_import_names_the_line_and_column_of_a_bad_line(self):
        d, book = self.prepared_daemon()
        listing = os.path.join(self.workdir, "bad.jsonl")
        with open(listing, "w") as f:
            f.write(json.dumps(BOOK[0]) + "\n" + '{"id": "u2", "system": "notes", "kind": "robot", "forms": {}}\n')
        r = d.cli("addressbook", "import", listing, check=False)
        self.assertEqual(r.returncode, bridgehead.EXIT.kFailure)
        self.assertIn("%s:2:33: kind \"robot\" is not person" % listing, r.stderr.decode())
        self.assertFalse(os.path.exists(book))


if __name__ == "__main__":
    import unittest
    unittest.main()
