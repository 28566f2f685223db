"""Directory synchronization (issue 10) against two real slapd instances started here, one
shaped like Domino (o=Acme) and one like Active Directory (dc=acme,dc=example): the initial
full sync both ways, adds, modifies (a case-only change included), renames and deletes, the
deletion threshold and `approve`, preview then apply, conflicts and adoption, a duplicate
proxy address, bad data, an LDIF source and target, the directory going away mid-run, and mail
routed by the address book the sync built. `bridgehead dirsync` runs without a daemon here
(the CLI opens the state itself) unless a test says otherwise."""

import json
import os
import sys
import time
import uuid

import bridgehead

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import slapd  # noqa: E402

NOTES_PEOPLE = "ou=Sales,o=Acme"
NOTES_CONTACTS = "ou=Exchange Contacts,o=Acme"
AD_PEOPLE = "ou=People,dc=acme,dc=example"
AD_CONTACTS = "ou=Notes Contacts,dc=acme,dc=example"
STAMP = "bridgehead:bridgehead:"


def ou_ldif(dn):
    name = dn.split(",")[0].split("=", 1)[1]
    return f"dn: {dn}\nobjectClass: organizationalUnit\nou: {name}\n\n"


def unid(n):
    return "%032X" % (0xA0000000 + n)


def person_ldif(cn, uid, n, mail=None, extra=None, container=NOTES_PEOPLE):
    given, _, sn = cn.partition(" ")
    text = (f"dn: cn={cn},{container}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n"
            f"objectClass: inetOrgPerson\nobjectClass: dominoPerson\n" + slapd.ldif_value("cn", cn)
            + slapd.ldif_value("sn", sn or cn) + slapd.ldif_value("givenName", given) + slapd.ldif_value("uid", uid)
            + slapd.ldif_value("mail", mail or f"{uid}@notes.example")
            + slapd.ldif_value("fullName", f"CN={cn}/OU=Sales/O=Acme") + slapd.ldif_value("dominoUNID", unid(n)))
    for name, values in (extra or {}).items():
        for v in values if isinstance(values, (list, tuple)) else [values]:
            text += slapd.ldif_value(name, v)
    return text + "\n"


def group_ldif(cn, n, mail=None, members=(), container=NOTES_PEOPLE):
    """A Domino group document as Domino's LDAP service shows it."""
    text = (f"dn: cn={cn},{container}\nobjectClass: top\nobjectClass: groupOfNames\nobjectClass: dominoGroup\n"
            + slapd.ldif_value("cn", cn) + slapd.ldif_value("dominoUNID", unid(n)))
    if mail:
        text += slapd.ldif_value("mail", mail)
    for m in members or [f"cn={cn},{container}"]:  # groupOfNames must have a member
        text += slapd.ldif_value("member", m)
    return text + "\n"


def guid(n):
    return uuid.UUID(int=0x5E0000000000400080000000000000 + n).bytes_le


def guid_text(n):
    return str(uuid.UUID(bytes_le=guid(n)))


def user_ldif(cn, alias, n, extra=None):
    attrs = {"mailNickname": alias, "displayName": cn,
             "legacyExchangeDN": f"/o=Acme/ou=Exchange/cn=Recipients/cn={alias}"}
    attrs.update(extra or {})
    return slapd.ad_user_ldif(f"cn={cn},{AD_PEOPLE}", cn, mail=f"{alias}@exchange.example",
                              proxy_addresses=[f"SMTP:{alias}@exchange.example"], object_guid=guid(n), extra=attrs)


class DirsyncTest(bridgehead.TestCase):
    def setUp(self):
        super().setUp()
        self.notes = self.start_slapd("domino", ou_ldif(NOTES_PEOPLE) + ou_ldif(NOTES_CONTACTS))
        self.ad = self.start_slapd("ad", ou_ldif(AD_PEOPLE) + ou_ldif(AD_CONTACTS))

    def start_slapd(self, profile, initial, **more):
        ds = slapd.Slapd(os.path.join(self.workdir, "slapd-" + profile + ("-dsa" if more else "")), profile=profile,
                         dbnosync=True, initial_ldif=initial, **more)
        ds.start()
        self.addCleanup(ds.stop)
        return ds

    def password_file(self, ds):
        path = os.path.join(self.workdir, f"{ds.profile}.password")
        with open(path, "w") as f:
            f.write(ds.service_password + "\n")
        os.chmod(path, 0o600)
        account = bridgehead.service_account()
        if account is not None:
            os.chown(path, *account)
        return path

    def directory(self, ds, people, contacts, **more):
        if "ldif_file" in more:  # an LDIF source: nothing to bind to, nothing written into it
            d = {"include": [people]}
        else:
            d = {"uri": ds.uri, "bind": "simple", "bind_dn": ds.service_dn,
                 "password_file": self.password_file(ds), "base": ds.base, "include": [people],
                 "contacts_container": contacts}
        d.update(more)
        return {k: v for k, v in d.items() if v is not None}

    def locked_id(self):
        """The fixture's client certificate (which slapd maps to the service account) as a
        password-protected PKCS#12 connector ID, and a password file that opens it."""
        path = os.path.join(self.workdir, "connector.id")
        bridgehead.subprocess.run(["openssl", "pkcs12", "-export", "-in", self.ad.client_cert, "-inkey",
                                   self.ad.client_key, "-certfile", self.ad.ca_file, "-passout", "pass:id-secret",
                                   "-out", path], check=True,
                                  capture_output=True)
        pw = os.path.join(self.workdir, "id.password")
        with open(pw, "w") as f:
            f.write("id-secret\n")
        os.chmod(pw, 0o600)
        return path, pw

    def daemon(self, notes=None, exchange=None, dirsync=None, identity=None):
        directories = {"notes": self.directory(self.notes, NOTES_PEOPLE, NOTES_CONTACTS, **(notes or {})),
                       "exchange": self.directory(self.ad, AD_PEOPLE, AD_CONTACTS, **(exchange or {}))}
        settings = {"notes_domain": "AcmeNotes", "interval": "1h"}
        settings.update(dirsync or {})
        extra = "\n[dirsync]\n" + "".join(f"{k} = {bridgehead.toml_value(v)}\n" for k, v in settings.items())
        d = bridgehead.Daemon(self, self.workdir, extra=extra, directories=directories, identity=identity)
        d.write_config()
        self.daemons.append(d)
        self.addCleanup(d.cleanup)
        return d

    def sync(self, d, *args, code=0):
        r = d.cli("dirsync", *args, "--json", check=False, timeout=300)
        self.assertEqual(r.returncode, code, "bridgehead dirsync %s: %s %s" % (
            " ".join(args), r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")))
        return json.loads(r.stdout.decode())

    def contacts(self, ds, container, attrs=()):
        return {dn: a for dn, a in ds.search(container, "(objectClass=*)", attrs=attrs, scope="one")}

    def one(self, attrs, name):
        values = attrs.get(name, [])
        self.assertEqual(len(values), 1, f"{name}: {values}")
        return values[0]

    # ------------------------------------------------------------------------------------------

    def test_initial_full_sync_both_ways(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1) + person_ldif("Carl Cole", "ccole", 2))
        self.ad.add(user_ldif("Bob Baker", "bbaker", 1))
        d = self.daemon()
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["status"], "ok", run)
        self.assertEqual(run["counts"]["adds"], 3, run)

        contacts = self.contacts(self.ad, AD_CONTACTS)
        self.assertEqual(sorted(contacts), [f"cn=Alice Able,{AD_CONTACTS}", f"cn=Carl Cole,{AD_CONTACTS}"])
        alice = contacts[f"cn=Alice Able,{AD_CONTACTS}"]
        self.assertEqual(self.one(alice, "targetAddress"), "SMTP:aable@notes.example")
        self.assertIn("NOTES:Alice Able/Sales/Acme@AcmeNotes", alice["proxyAddresses"])
        self.assertIn("smtp:aable@notes.example", alice["proxyAddresses"])
        self.assertEqual(self.one(alice, "mailNickname"), "aable")
        self.assertEqual(self.one(alice, "importedFrom"), STAMP + unid(1))
        self.assertIn("contact", alice["objectClass"])

        persons = self.contacts(self.notes, NOTES_CONTACTS)
        self.assertEqual(sorted(persons), [f"cn=Bob Baker,{NOTES_CONTACTS}"])
        bob = persons[f"cn=Bob Baker,{NOTES_CONTACTS}"]
        self.assertEqual(self.one(bob, "mailAddress"), "bbaker@exchange.example")
        self.assertIn("dominoPerson", bob["objectClass"])

        # A second run finds nothing to do.
        again = self.sync(d, "run", "--full")
        self.assertEqual(again["counts"]["adds"] + again["counts"]["updates"] + again["counts"]["deletes"], 0, again)
        self.assertEqual(again["counts"]["unchanged"], 3, again)

    def test_add_modify_case_only_rename_and_delete(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1) + person_ldif("Dora Dunn", "ddunn", 4))
        d = self.daemon()
        self.sync(d, "run", "--full")
        self.notes.add(person_ldif("Eve Ennis", "eennis", 5))
        self.notes.modify(f"dn: cn=Alice Able,{NOTES_PEOPLE}\nchangetype: modify\nreplace: mail\n"
                          "mail: Alice.Able@notes.example\n-\n")
        self.notes.modify(f"dn: cn=Dora Dunn,{NOTES_PEOPLE}\nchangetype: modrdn\nnewrdn: cn=Dora Dunn-Smith\n"
                          "deleteoldrdn: 1\n")
        run = self.sync(d, "run", "--full")
        self.assertEqual((run["counts"]["adds"], run["counts"]["renames"]), (1, 1), run)
        contacts = self.contacts(self.ad, AD_CONTACTS)
        self.assertIn(f"cn=Eve Ennis,{AD_CONTACTS}", contacts)
        self.assertIn(f"cn=Dora Dunn-Smith,{AD_CONTACTS}", contacts)
        self.assertNotIn(f"cn=Dora Dunn,{AD_CONTACTS}", contacts)
        self.assertEqual(self.one(contacts[f"cn=Dora Dunn-Smith,{AD_CONTACTS}"], "importedFrom"), STAMP + unid(4))
        # The case-only change was written, value by value.
        alice = contacts[f"cn=Alice Able,{AD_CONTACTS}"]
        self.assertEqual(self.one(alice, "mail"), "Alice.Able@notes.example")
        self.assertIn("smtp:Alice.Able@notes.example", alice["proxyAddresses"])

        self.notes.modify(f"dn: cn=Eve Ennis,{NOTES_PEOPLE}\nchangetype: delete\n")
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["counts"]["deletes"], 1, run)
        self.assertNotIn(f"cn=Eve Ennis,{AD_CONTACTS}", self.contacts(self.ad, AD_CONTACTS))

    def assert_quiet(self, run):
        """A run that found nothing to do: status ok, no problem listed, nothing written."""
        self.assertEqual(run["status"], "ok", run)
        self.assertEqual(run["problems"], [], run)
        self.assertEqual(run["counts"]["adds"] + run["counts"]["updates"] + run["counts"]["deletes"]
                         + run["counts"]["renames"], 0, run)

    def incremental_runs_change_only_what_changed(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1) + person_ldif("Carl Cole", "ccole", 2)
                       + person_ldif("Dora Dunn", "ddunn", 4) + person_ldif("Eve Ennis", "eennis", 5))
        self.ad.add(user_ldif("Bob Baker", "bbaker", 1))
        d = self.daemon()
        first = self.sync(d, "run")  # no cookie yet: a full read
        self.assertEqual((first["status"], first["counts"]["adds"]), ("ok", 5), first)
        self.assert_quiet(self.sync(d, "run"))
        self.notes.modify(f"dn: cn=Alice Able,{NOTES_PEOPLE}\nchangetype: modify\nreplace: mail\n"
                          "mail: alice@notes.example\n-\n")
        self.notes.modify(f"dn: cn=Eve Ennis,{NOTES_PEOPLE}\nchangetype: delete\n")
        self.notes.add(person_ldif("Fay Fox", "ffox", 6))
        run = self.sync(d, "run")
        self.assertEqual(run["status"], "ok", run)
        self.assertEqual(run["problems"], [], run)
        self.assertEqual((run["counts"]["adds"], run["counts"]["updates"], run["counts"]["deletes"]), (1, 1, 1), run)
        self.assertEqual(sorted(self.contacts(self.ad, AD_CONTACTS)),
                         [f"cn={cn},{AD_CONTACTS}" for cn in ("Alice Able", "Carl Cole", "Dora Dunn", "Fay Fox")])
        self.assertEqual(sorted(self.contacts(self.notes, NOTES_CONTACTS)), [f"cn=Bob Baker,{NOTES_CONTACTS}"])
        self.assert_quiet(self.sync(d, "run"))

    def test_incremental_runs_from_a_present_phase_delete_only_what_is_gone(self):
        # No session log: slapd answers a refresh from a cookie with a present phase, the
        # unchanged entries as bare UUIDs. They are still there, not deletions to confirm.
        self.incremental_runs_change_only_what_changed()

    def test_incremental_runs_from_a_session_log_change_only_what_changed(self):
        # A session log that covers the cookie: deletions named explicitly.
        for name in ("notes", "ad"):
            getattr(self, name).stop()
        self.notes = self.start_slapd("domino", ou_ldif(NOTES_PEOPLE) + ou_ldif(NOTES_CONTACTS), sessionlog=100)
        self.ad = self.start_slapd("ad", ou_ldif(AD_PEOPLE) + ou_ldif(AD_CONTACTS), sessionlog=100)
        self.incremental_runs_change_only_what_changed()

    def test_groups_go_across_as_contacts_with_their_name_and_address(self):
        # By default a group keeps its members in its home system, which expands it: the other
        # side gets a contact that routes mail for the group there.
        self.notes.add(person_ldif("Alice Able", "aable", 1)
                       + group_ldif("Sales Team", 30, mail="sales@notes.example",
                                    members=[f"cn=Alice Able,{NOTES_PEOPLE}"])
                       + group_ldif("No Address", 31))
        self.ad.add(user_ldif("Bob Baker", "bbaker", 1)
                    + slapd.ad_group_ldif(f"cn=All Staff,{AD_PEOPLE}", "All Staff", mail="allstaff@exchange.example",
                                          proxy_addresses=["SMTP:allstaff@exchange.example"], object_guid=guid(40),
                                          members=[f"cn=Bob Baker,{AD_PEOPLE}"],
                                          extra={"mailNickname": "allstaff", "displayName": "All Staff"}))
        d = self.daemon()
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["status"], "ok", run)
        self.assertEqual(run["problems"], [], run)
        contacts = self.contacts(self.ad, AD_CONTACTS)
        self.assertEqual(sorted(contacts), [f"cn=Alice Able,{AD_CONTACTS}", f"cn=Sales Team,{AD_CONTACTS}"])
        sales = contacts[f"cn=Sales Team,{AD_CONTACTS}"]
        self.assertEqual(self.one(sales, "targetAddress"), "SMTP:sales@notes.example")
        self.assertIn("NOTES:Sales Team@AcmeNotes", sales["proxyAddresses"])
        self.assertEqual(self.one(sales, "displayName"), "Sales Team")
        self.assertNotIn("member", sales)
        persons = self.contacts(self.notes, NOTES_CONTACTS)
        self.assertEqual(sorted(persons), [f"cn=All Staff,{NOTES_CONTACTS}", f"cn=Bob Baker,{NOTES_CONTACTS}"])
        staff = persons[f"cn=All Staff,{NOTES_CONTACTS}"]
        self.assertEqual(self.one(staff, "mailAddress"), "allstaff@exchange.example")
        self.assertEqual(self.one(staff, "fullName"), "All Staff")
        # "No Address" has no Internet address, so nothing in Exchange could reach it: left out.
        self.assert_quiet(self.sync(d, "run", "--full"))

    def lower(self, values):
        return sorted(v.lower() for v in values)

    def test_with_group_members_a_group_goes_across_as_a_group_of_the_synchronized_objects(self):
        # group_members = true: the other side gets a distribution group whose members are the
        # contacts the sync made for the source's members, or the native objects those stand for.
        self.ad.add(user_ldif("Bob Baker", "bbaker", 1))
        self.notes.add(person_ldif("Alice Able", "aable", 1))
        d = self.daemon(dirsync={"group_members": True})
        # The contacts first, as in a directory that has been synchronized for a while: a group
        # in either system can then name the other system's people by their contacts.
        self.sync(d, "run", "--full")
        self.notes.add(person_ldif("Carl Cole", "ccole", 2)
                       + group_ldif("Sales Team", 30, mail="sales@notes.example",
                                    members=[f"cn=Alice Able,{NOTES_PEOPLE}", f"CN=Carl Cole,{NOTES_PEOPLE}",
                                             f"cn=Bob Baker,{NOTES_CONTACTS}", f"cn=Sales Leads,{NOTES_PEOPLE}",
                                             f"cn=Not Synchronized,{NOTES_PEOPLE}"])
                       + group_ldif("Sales Leads", 31, mail="leads@notes.example",
                                    members=[f"cn=Alice Able,{NOTES_PEOPLE}"]))
        self.ad.add(slapd.ad_group_ldif(f"cn=All Staff,{AD_PEOPLE}", "All Staff", mail="allstaff@exchange.example",
                                        proxy_addresses=["SMTP:allstaff@exchange.example"], object_guid=guid(40),
                                        members=[f"cn=Bob Baker,{AD_PEOPLE}", f"cn=Alice Able,{AD_CONTACTS}"],
                                        extra={"mailNickname": "allstaff", "displayName": "All Staff"}))
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["status"], "ok", run)
        self.assertEqual(run["problems"], [], run)
        ad = self.contacts(self.ad, AD_CONTACTS, attrs=["*"])
        sales = ad[f"cn=Sales Team,{AD_CONTACTS}"]
        self.assertIn("group", sales["objectClass"])
        self.assertNotIn("contact", sales["objectClass"])
        self.assertEqual(self.one(sales, "groupType"), "8", "a universal distribution group")
        self.assertIn("NOTES:Sales Team@AcmeNotes", sales["proxyAddresses"])
        self.assertEqual(self.one(sales, "mail"), "sales@notes.example")
        # The contacts for Alice and Carl, Bob's own user (his Notes contact stands for him), the
        # nested group; the member that is not synchronized is left out.
        self.assertEqual(self.lower(sales["member"]), self.lower([
            f"cn=Alice Able,{AD_CONTACTS}", f"cn=Carl Cole,{AD_CONTACTS}", f"cn=Bob Baker,{AD_PEOPLE}",
            f"cn=Sales Leads,{AD_CONTACTS}"]))
        self.assertEqual(self.lower(ad[f"cn=Sales Leads,{AD_CONTACTS}"]["member"]),
                         self.lower([f"cn=Alice Able,{AD_CONTACTS}"]))
        notes = self.contacts(self.notes, NOTES_CONTACTS, attrs=["*"])
        staff = notes[f"cn=All Staff,{NOTES_CONTACTS}"]
        self.assertIn("dominoGroup", staff["objectClass"])
        self.assertEqual(self.one(staff, "mail"), "allstaff@exchange.example")
        self.assertEqual(self.one(staff, "listName"), "All Staff")
        self.assertEqual(self.lower(staff["member"]),
                         self.lower([f"cn=Bob Baker,{NOTES_CONTACTS}", f"cn=Alice Able,{NOTES_PEOPLE}"]))
        self.assert_quiet(self.sync(d, "run", "--full"))
        self.assert_quiet(self.sync(d, "run"))

        # A member taken out of the group in Notes: taken out of the AD group.
        self.notes.modify(f"dn: cn=Sales Team,{NOTES_PEOPLE}\nchangetype: modify\ndelete: member\n"
                          f"member: cn=Carl Cole,{NOTES_PEOPLE}\n-\n")
        run = self.sync(d, "run")
        self.assertEqual((run["status"], run["counts"]["updates"]), ("ok", 1), run)
        sales = self.contacts(self.ad, AD_CONTACTS, attrs=["member"])[f"cn=Sales Team,{AD_CONTACTS}"]
        self.assertNotIn(f"cn=carl cole,{AD_CONTACTS}".lower(), self.lower(sales["member"]))
        self.assertEqual(len(sales["member"]), 3, sales)
        # A member deleted from Notes: its contact goes, and the full run takes it out of the groups.
        self.notes.modify(f"dn: cn=Alice Able,{NOTES_PEOPLE}\nchangetype: delete\n")
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["status"], "ok", run)
        self.assertEqual(run["counts"]["deletes"], 1, run)
        ad = self.contacts(self.ad, AD_CONTACTS, attrs=["member"])
        self.assertNotIn(f"cn=Alice Able,{AD_CONTACTS}", ad)
        self.assertEqual(self.lower(ad[f"cn=Sales Team,{AD_CONTACTS}"]["member"]),
                         self.lower([f"cn=Bob Baker,{AD_PEOPLE}", f"cn=Sales Leads,{AD_CONTACTS}"]))
        self.assertNotIn("member", ad[f"cn=Sales Leads,{AD_CONTACTS}"], "an AD group may be empty")
        self.assert_quiet(self.sync(d, "run", "--full"))

    def test_a_group_of_no_synchronized_member_is_refused_where_a_group_needs_one(self):
        # A Domino group must have a member (groupOfNames); an AD group of unsynchronized
        # objects has none to give it: a bad-data problem naming the remedy, the rest syncs.
        self.ad.add(user_ldif("Bob Baker", "bbaker", 1)
                    + slapd.ad_group_ldif(f"cn=Empty List,{AD_PEOPLE}", "Empty List", mail="empty@exchange.example",
                                          proxy_addresses=["SMTP:empty@exchange.example"], object_guid=guid(41),
                                          members=[f"cn=Nobody Here,{AD_PEOPLE}"]))
        d = self.daemon(dirsync={"group_members": True})
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["counts"]["adds"], 1, run)
        self.assertEqual([p["kind"] for p in run["problems"]], ["bad-data"], run)
        self.assertIn("group_members = false", run["problems"][0]["message"])
        self.assertEqual(sorted(self.contacts(self.notes, NOTES_CONTACTS)), [f"cn=Bob Baker,{NOTES_CONTACTS}"])

    def test_a_group_larger_than_member_chunk_is_written_whole(self):
        # AD refuses a modify of too many values (MaxValRange); the members go in pieces.
        people = [(f"Member{i:02d} Test", f"member{i:02d}", 200 + i) for i in range(23)]
        self.notes.add("".join(person_ldif(cn, uid, n) for cn, uid, n in people)
                       + group_ldif("Big List", 50, mail="big@notes.example",
                                    members=[f"cn={cn},{NOTES_PEOPLE}" for cn, _, _ in people]))
        d = self.daemon(dirsync={"group_members": True, "member_chunk": 5})
        run = self.sync(d, "run", "--full")
        self.assertEqual((run["status"], run["problems"], run["counts"]["adds"]), ("ok", [], 24), run)
        big = self.contacts(self.ad, AD_CONTACTS, attrs=["member"])[f"cn=Big List,{AD_CONTACTS}"]
        self.assertEqual(self.lower(big["member"]), self.lower([f"cn={cn},{AD_CONTACTS}" for cn, _, _ in people]))
        self.assert_quiet(self.sync(d, "run", "--full"))
        # Half the members out in one change: removed in pieces too.
        self.notes.modify(f"dn: cn=Big List,{NOTES_PEOPLE}\nchangetype: modify\ndelete: member\n"
                          + "".join(f"member: cn={cn},{NOTES_PEOPLE}\n" for cn, _, _ in people[:12]) + "-\n")
        run = self.sync(d, "run")
        self.assertEqual((run["status"], run["counts"]["updates"]), ("ok", 1), run)
        big = self.contacts(self.ad, AD_CONTACTS, attrs=["member"])[f"cn=Big List,{AD_CONTACTS}"]
        self.assertEqual(self.lower(big["member"]), self.lower([f"cn={cn},{AD_CONTACTS}" for cn, _, _ in people[12:]]))
        self.assert_quiet(self.sync(d, "run"))

    def test_the_threshold_holds_a_mass_delete_until_approved(self):
        self.notes.add("".join(person_ldif(f"User{i:02d} Test", f"user{i:02d}", 100 + i) for i in range(20)))
        d = self.daemon(dirsync={"max_deletes": 5})
        self.sync(d, "run", "--full")
        for i in range(12):
            self.notes.modify(f"dn: cn=User{i:02d} Test,{NOTES_PEOPLE}\nchangetype: delete\n")
        held = self.sync(d, "run", "--full", code=2)
        self.assertEqual(held["status"], "held", held)
        self.assertEqual(held["counts"]["held"], 12, held)
        self.assertIn("approve", held["error"] + json.dumps(held))
        self.assertEqual(len(self.contacts(self.ad, AD_CONTACTS)), 20, "nothing deleted while held")
        status = self.sync(d, "status")
        self.assertEqual(status["runs"][0]["status"], "held", status)
        approved = self.sync(d, "approve", str(held["id"]))
        self.assertEqual(approved["counts"]["deletes"], 12, approved)
        self.assertEqual(len(self.contacts(self.ad, AD_CONTACTS)), 8)
        # Approving again: nothing held any more.
        r = d.cli("dirsync", "approve", str(held["id"]), check=False)
        self.assertEqual(r.returncode, 2, r.stdout)

    def test_preview_then_apply_writes_exactly_the_previewed_operations(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1))
        d = self.daemon()
        preview = self.sync(d, "preview", "--full")
        self.assertEqual(preview["kind"], "preview", preview)
        self.assertEqual(self.contacts(self.ad, AD_CONTACTS), {}, "a preview writes nothing")
        ops = preview["operations"]
        self.assertEqual(ops, [f"add cn=Alice Able,{AD_CONTACTS}"])  # nothing from an empty AD
        # A change after the preview is not in it: apply writes what was previewed, no more.
        self.notes.add(person_ldif("Fred Ford", "fford", 6))
        applied = self.sync(d, "apply", str(preview["preview"]))
        self.assertEqual(applied["counts"]["adds"], 1, applied)
        self.assertEqual(sorted(self.contacts(self.ad, AD_CONTACTS)), [f"cn=Alice Able,{AD_CONTACTS}"])
        again = d.cli("dirsync", "apply", str(preview["preview"]), check=False)
        self.assertEqual(again.returncode, 2, again.stdout)
        self.assertIn(b"applied already", again.stderr)

    def test_a_conflict_is_left_alone_and_adoption_takes_it_over(self):
        # A contact someone made by hand for Alice, before Bridgehead.
        self.ad.add(slapd.ad_contact_ldif(f"cn=Alice (manual),{AD_CONTACTS}", "Alice (manual)",
                                          "SMTP:aable@notes.example"))
        self.notes.add(person_ldif("Alice Able", "aable", 1))
        d = self.daemon()
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["counts"]["conflicts"], 1, run)
        self.assertEqual(run["counts"]["adds"], 0, run)
        self.assertTrue(any(p["kind"] == "conflict" for p in run["problems"]), run)
        self.assertEqual(sorted(self.contacts(self.ad, AD_CONTACTS)), [f"cn=Alice (manual),{AD_CONTACTS}"])

        d2 = self.daemon(dirsync={"adopt": True})
        run = self.sync(d2, "run", "--full")
        self.assertEqual(run["counts"]["adoptions"], 1, run)
        manual = self.contacts(self.ad, AD_CONTACTS)[f"cn=Alice (manual),{AD_CONTACTS}"]
        self.assertEqual(self.one(manual, "importedFrom"), STAMP + unid(1))

    def test_a_duplicate_proxy_address_is_withheld_and_the_object_still_created(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1, mail="shared@notes.example")
                       + person_ldif("Alice Abel", "aabel", 2, mail="shared@notes.example"))
        d = self.daemon()
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["counts"]["adds"], 2, run)
        withheld = [p for p in run["problems"] if p["kind"] == "withheld"]
        self.assertTrue(withheld and "shared@notes.example" in withheld[0]["message"], run)
        holders = [dn for dn, a in self.contacts(self.ad, AD_CONTACTS).items()
                   if "smtp:shared@notes.example" in [v.lower() for v in a.get("proxyAddresses", [])]]
        self.assertEqual(len(holders), 1, holders)

    def test_bad_data_is_reported_and_the_rest_syncs(self):
        long_name = "L" * 70 + " Long"
        self.notes.add(person_ldif("Alice Able", "aable", 1) + person_ldif(long_name, "llong", 7))
        d = self.daemon()
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["status"], "partial", run)
        self.assertEqual(run["counts"]["adds"], 1, run)
        bad = [p for p in run["problems"] if p["kind"] == "bad-data"]
        self.assertTrue(bad and "cn" in bad[0]["message"], run)
        self.assertEqual(sorted(self.contacts(self.ad, AD_CONTACTS)), [f"cn=Alice Able,{AD_CONTACTS}"])

    def test_the_directory_going_away_fails_the_run_cleanly_and_the_next_one_recovers(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1))
        d = self.daemon()
        self.sync(d, "run", "--full")
        book = os.path.join(d.state_dir, "addressbook.bin")
        before = open(book, "rb").read()
        self.ad.stop()
        failed = self.sync(d, "run", "--full", code=2)
        self.assertEqual(failed["status"], "failed", failed)
        self.assertIn("exchange", failed["error"])
        self.assertEqual(open(book, "rb").read(), before, "the address book stays as it was")
        self.notes.add(person_ldif("Gail Gray", "ggray", 8))
        self.ad.restart()
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["status"], "ok", run)
        self.assertIn(f"cn=Gail Gray,{AD_CONTACTS}", self.contacts(self.ad, AD_CONTACTS))

    def test_a_read_that_is_incomplete_deletes_nothing(self):
        good = os.path.join(self.workdir, "notes.ldif")
        with open(good, "w") as f:
            f.write(person_ldif("Alice Able", "aable", 1) + person_ldif("Hugo Hart", "hhart", 9))
        d = self.daemon(notes={"ldif_file": good})
        self.assertEqual(self.sync(d, "run", "--full")["counts"]["adds"], 2)
        # Hugo's record is broken: the read is incomplete, so Hugo is not deleted for it.
        with open(good, "w") as f:
            f.write(person_ldif("Alice Able", "aable", 1) + "dn: cn=Hugo Hart,ou=Sales,o=Acme\nthis is not ldif\n\n")
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["counts"]["deletes"], 0, run)
        self.assertTrue(any(p["kind"] == "incomplete-read" for p in run["problems"]), run)
        self.assertIn(f"cn=Hugo Hart,{AD_CONTACTS}", self.contacts(self.ad, AD_CONTACTS))

    def test_an_ldif_target_gets_a_change_file(self):
        # Where the administrator picks it up: a directory the service user may write.
        outdir = os.path.join(self.workdir, "exports")
        os.makedirs(outdir)
        account = bridgehead.service_account()
        if account is not None:
            os.chown(outdir, *account)
        out = os.path.join(outdir, "to-notes.ldif")
        self.ad.add(user_ldif("Bob Baker", "bbaker", 1))
        d = self.daemon(notes={"ldif_output": out})
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["status"], "ok", run)
        text = open(out).read()
        self.assertIn(f"dn: cn=Bob Baker,{NOTES_CONTACTS}\nchangetype: add\n", text)
        self.assertIn("mailAddress: bbaker@exchange.example\n", text)
        self.assertEqual(self.contacts(self.notes, NOTES_CONTACTS), {}, "an LDIF target is not written over LDAP")
        # The administrator imports it; it then reads back as the same objects.
        self.notes.modify(text)
        self.assertIn(f"cn=Bob Baker,{NOTES_CONTACTS}", self.contacts(self.notes, NOTES_CONTACTS))

    def test_mail_after_a_sync_new_user_accepted_deleted_user_refused(self):
        self.notes.add(person_ldif("Ivan Iles", "iiles", 10))
        d = self.daemon()
        self.sync(d, "run", "--full")
        d.start()
        c = d.raw("exchange")
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example>", 250)
        c.cmd("RCPT TO:<iiles@notes.example>", 250, "2.1.5")
        c.cmd("RCPT TO:<nobody@notes.example>", 550, "5.1.1")
        c.cmd("QUIT", 221)
        c.close()
        # Through the running daemon: it owns the state now.
        self.notes.modify(f"dn: cn=Ivan Iles,{NOTES_PEOPLE}\nchangetype: delete\n")
        self.notes.add(person_ldif("Jane Jones", "jjones", 11))
        # The daemon's persisting search may have run it already; either way the run leaves
        # the directory and the book with Jane and without Ivan.
        self.sync(d, "run", "--full")
        contacts = self.contacts(self.ad, AD_CONTACTS)
        self.assertIn(f"cn=Jane Jones,{AD_CONTACTS}", contacts)
        self.assertNotIn(f"cn=Ivan Iles,{AD_CONTACTS}", contacts)
        c = d.raw("exchange")
        c.ehlo()
        c.cmd("MAIL FROM:<ann@exchange.example>", 250)
        c.cmd("RCPT TO:<jjones@notes.example>", 250, "2.1.5")
        c.cmd("RCPT TO:<iiles@notes.example>", 550, "5.1.1")
        c.cmd("QUIT", 221)
        c.close()
        p = d.process("dirsync")
        self.assertIn(p["state"], ("running", "starting"), p)
        self.assertIn("run", p["details"].get("last_run", ""), p)
        d.stop()

    def test_a_kill_mid_run_neither_skips_nor_repeats_a_change(self):
        n = 4000
        self.notes.add("".join(person_ldif(f"Bulk{i:05d} Person", f"bulk{i:05d}", 1000 + i) for i in range(n)))
        d = self.daemon()
        proc = bridgehead.subprocess.Popen([d.bin, "dirsync", "run", "--full", "-c", d.config_path],
                                           stdout=bridgehead.subprocess.DEVNULL, stderr=bridgehead.subprocess.DEVNULL)
        try:
            d.wait_for(lambda: len(self.ad.search(AD_CONTACTS, "(objectClass=contact)", attrs=["1.1"],
                                                  scope="one")) >= 600, "the first contacts", timeout=120,
                       interval=0.05)
        finally:
            proc.kill()
            proc.wait()
        written = len(self.contacts(self.ad, AD_CONTACTS, attrs=["1.1"]))
        self.assertLess(written, n, "the run had finished before the kill: make it bigger")
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["status"], "ok", run)
        contacts = self.contacts(self.ad, AD_CONTACTS, attrs=["importedFrom"])
        self.assertEqual(len(contacts), n)
        stamps = sorted(self.one(a, "importedFrom") for a in contacts.values())
        self.assertEqual(stamps, sorted(STAMP + unid(1000 + i) for i in range(n)), "one contact per person")
        self.assertFalse([dn for dn in contacts if "(2)" in dn], "no contact made twice")
        # The interrupted run is recorded as such; a further run has nothing to do.
        runs = self.sync(d, "status")["runs"]
        self.assertEqual(runs[1]["status"], "failed", runs[1])
        self.assertIn("interrupted", runs[1]["error"])
        again = self.sync(d, "run", "--full")
        self.assertEqual(again["counts"]["adds"] + again["counts"]["updates"], 0, again)

    def test_refresh_and_persist_makes_a_new_user_routable_within_seconds(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1))
        d = self.daemon()
        d.start()
        d.wait_for(lambda: d.process("dirsync").get("gauges", {}).get("last_run", 0) >= 1, "the first run")
        time.sleep(1.5)  # the watcher opens its persisting search from the first run's cookie
        self.notes.add(person_ldif("Kurt Klein", "kklein", 12))
        added = time.monotonic()

        def accepted():
            c = d.raw("exchange")
            c.ehlo()
            c.cmd("MAIL FROM:<ann@exchange.example>", 250)
            c.send("RCPT TO:<kklein@notes.example>\r\n")
            code = c.read_reply()[0]
            c.close()
            return code == 250

        d.wait_for(accepted, "kklein@notes.example accepted at RCPT", timeout=15, interval=0.2)
        elapsed = time.monotonic() - added
        self.assertLess(elapsed, 5.0, "routable %.1f s after the add" % elapsed)
        self.assertIn(f"cn=Kurt Klein,{AD_CONTACTS}", self.contacts(self.ad, AD_CONTACTS))
        d.stop()

    def test_bridgeheads_own_contacts_do_not_wake_the_persisting_search(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1))
        self.ad.add(user_ldif("Bob Baker", "bbaker", 1))
        d = self.daemon()
        d.start()

        def last_run():
            return d.process("dirsync").get("gauges", {}).get("last_run", 0)

        d.wait_for(lambda: last_run() >= 1, "the first run")
        first = last_run()
        # The watchers search from the first run's cookie, taken before it wrote the contacts:
        # those are in the refresh, and must not start a run of their own.
        time.sleep(4)
        self.assertEqual(last_run(), first, "a run started by Bridgehead's own writes")
        self.notes.modify(f"dn: cn=Alice Able,{NOTES_PEOPLE}\nchangetype: modify\nreplace: mail\n"
                          "mail: alice@notes.example\n-\n")
        d.wait_for(lambda: last_run() > first, "a run for the change in scope", timeout=15)
        d.stop()

    def test_soft_delete_hides_first_and_a_return_unhides(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1) + person_ldif("Lena Lund", "llund", 13))
        d = self.daemon(dirsync={"soft_delete_days": 30})
        self.sync(d, "run", "--full")
        self.notes.modify(f"dn: cn=Lena Lund,{NOTES_PEOPLE}\nchangetype: delete\n")
        run = self.sync(d, "run", "--full")
        self.assertEqual((run["counts"]["hides"], run["counts"]["deletes"]), (1, 0), run)
        lena = self.contacts(self.ad, AD_CONTACTS)[f"cn=Lena Lund,{AD_CONTACTS}"]
        self.assertEqual(self.one(lena, "msExchHideFromAddressLists"), "TRUE", "hidden, not deleted")
        # Back in the directory (restored from a backup, same UNID): visible again.
        self.notes.add(person_ldif("Lena Lund", "llund", 13))
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["counts"]["updates"], 1, run)
        lena = self.contacts(self.ad, AD_CONTACTS)[f"cn=Lena Lund,{AD_CONTACTS}"]
        self.assertNotIn("msExchHideFromAddressLists", lena)

    def test_switches_turn_off_deletes_and_creates(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1) + person_ldif("Mia Moor", "mmoor", 14))
        d = self.daemon(dirsync={"delete": False})
        self.sync(d, "run", "--full")
        self.notes.modify(f"dn: cn=Mia Moor,{NOTES_PEOPLE}\nchangetype: delete\n")
        run = self.sync(d, "run", "--full")
        self.assertEqual((run["counts"]["deletes"], run["counts"]["switched_off"]), (0, 1), run)
        self.assertIn(f"cn=Mia Moor,{AD_CONTACTS}", self.contacts(self.ad, AD_CONTACTS))
        d2 = self.daemon(dirsync={"create": False})
        self.notes.add(person_ldif("Nils Noor", "nnoor", 15))
        run = self.sync(d2, "run", "--full")
        # Nils is not created; Mia's delete, switched on again, goes through.
        self.assertEqual((run["counts"]["adds"], run["counts"]["switched_off"], run["counts"]["deletes"]), (0, 1, 1),
                         run)
        self.assertNotIn(f"cn=Nils Noor,{AD_CONTACTS}", self.contacts(self.ad, AD_CONTACTS))

    def test_the_usn_feed_reads_only_changes_and_finds_deletions_by_their_keys(self):
        # An AD-shaped directory with a domain controller's root DSE (invocationID,
        # highestCommittedUSN 1000); slapd keeps no uSNChanged, so the test sets it as AD would.
        self.ad.stop()
        self.ad = self.start_slapd("ad", ou_ldif(AD_PEOPLE) + ou_ldif(AD_CONTACTS), ad_dsa=True)
        self.ad.add(user_ldif("Bob Baker", "bbaker", 1, extra={"uSNChanged": "1001"})
                    + user_ldif("Olga Orr", "oorr", 2, extra={"uSNChanged": "1002"}))
        d = self.daemon(exchange={"feed": "usn"})
        self.assertEqual(self.sync(d, "run")["counts"]["adds"], 2)
        self.ad.modify(f"dn: cn=Bob Baker,{AD_PEOPLE}\nchangetype: modify\nreplace: displayName\n"
                       "displayName: Bob Baker (Sales)\n-\nreplace: uSNChanged\nuSNChanged: 1010\n-\n")
        self.ad.modify(f"dn: cn=Olga Orr,{AD_PEOPLE}\nchangetype: delete\n")
        run = self.sync(d, "run")
        # Only Bob was read in full; Olga's absence shows in the key enumeration.
        self.assertEqual((run["counts"]["updates"], run["counts"]["deletes"]), (1, 1), run)
        # Its Notes full name comes from the display name here (no givenName): renamed with it.
        self.assertEqual(sorted(self.contacts(self.notes, NOTES_CONTACTS)), [f"cn=Bob Baker (Sales),{NOTES_CONTACTS}"])
        self.assert_quiet(self.sync(d, "run"))

    def test_the_modify_timestamp_feed_reads_changes_with_an_overlap(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1) + person_ldif("Pia Park", "ppark", 16))
        d = self.daemon(notes={"feed": "timestamp"})
        self.assertEqual(self.sync(d, "run")["counts"]["adds"], 2)
        self.notes.modify(f"dn: cn=Alice Able,{NOTES_PEOPLE}\nchangetype: modify\nreplace: mail\n"
                          "mail: alice@notes.example\n-\n")
        self.notes.modify(f"dn: cn=Pia Park,{NOTES_PEOPLE}\nchangetype: delete\n")
        run = self.sync(d, "run")
        self.assertEqual((run["counts"]["updates"], run["counts"]["deletes"]), (1, 1), run)
        alice = self.contacts(self.ad, AD_CONTACTS)[f"cn=Alice Able,{AD_CONTACTS}"]
        self.assertEqual(self.one(alice, "mail"), "alice@notes.example")
        self.assertNotIn(f"cn=Pia Park,{AD_CONTACTS}", self.contacts(self.ad, AD_CONTACTS))
        self.assert_quiet(self.sync(d, "run"))

    def test_a_locked_id_fails_sasl_external_visibly_and_unlock_lets_the_next_run_through(self):
        self.notes.add(person_ldif("Alice Able", "aable", 1))
        id_file, pw = self.locked_id()
        d = self.daemon(exchange={"uri": self.ad.ldaps_uri, "bind": "sasl-external", "ca_file": self.ad.ca_file,
                                  "bind_dn": None, "password_file": None},
                        identity={"id_file": id_file})
        d.start()
        failed = self.sync(d, "run", "--full", code=2)
        self.assertEqual(failed["status"], "failed", failed)
        self.assertIn("locked", failed["error"])
        self.assertIn("bridgehead unlock", failed["error"])
        p = d.process("dirsync")
        self.assertEqual(p["state"], "error", p)
        self.assertIn("unlock", json.dumps(p["last_error"]))
        self.assertEqual(self.contacts(self.ad, AD_CONTACTS), {})
        r = bridgehead.subprocess.run([d.bin, "unlock", "-c", d.config_path, "--password-file", pw],
                                      capture_output=True, text=True, timeout=120, stdin=bridgehead.subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        run = self.sync(d, "run", "--full")
        self.assertEqual(run["status"], "ok", run)
        self.assertIn(f"cn=Alice Able,{AD_CONTACTS}", self.contacts(self.ad, AD_CONTACTS))
        self.assertEqual(d.process("dirsync")["state"], "running")
        d.stop()


if __name__ == "__main__":
    import unittest
    unittest.main()
