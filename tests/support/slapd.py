"""A private slapd for tests, with an AD-shaped or a Domino-shaped schema. Standard library only.

    with Slapd(tmpdir, profile="ad") as ds:             # ldap:// and ldaps:// on free ports
        ds.add(ad_user_ldif("cn=Ann,ou=People," + ds.base, "Ann", mail="ann@acme.example"))
        [(dn, attrs)] = ds.search(ds.base, "(cn=Ann)")

Everything lives in the temporary directory: slapd.conf, the mdb database (db/), the test
certificate authority and certificates (tls/), slapd's output (slapd.log). Profiles:

    ad      suffix dc=acme,dc=example; schemas core, cosine, inetorgperson, nis, msuser (Debian's
            partial AD schema, copied with the matching rules of MSUSER_MATCHING added) and
            tests/fixtures/ldap/ad-extra.schema
    domino  suffix o=Acme; schemas core, cosine, inetorgperson and tests/fixtures/ldap/domino.schema

Both have ou=Services under the suffix with the service account the client binds as
(cn=bridgehead,ou=Services,SUFFIX, password in `service_password`). The rootdn is exempt from
every limit, so tests that need AD's behaviour bind as the service account: `sizelimit 1000`
makes an unpaged search stop after 1000 entries with sizeLimitExceeded, as AD's MaxPageSize
does, while a paged search (RFC 2696) may return any number of entries, 1000 a page at most.
The syncprov overlay (RFC 4533) is on the database, for content synchronization; with
`sessionlog=N` (CLI --sessionlog N) it keeps a session log of N operations, so that a refresh
with a recent cookie reports deletions explicitly (refreshDeletes) instead of a present phase.

ad profile, `ad_dsa=True` (CLI --ad-dsa): what an AD change feed reads besides the entries. A
rootDSE file (slapd.conf `rootDSE`) gives highestCommittedUSN (`highest_usn`, CLI
--highest-usn N) and dsServiceName, which names an NTDS Settings entry
(`dsa_dn`, under cn=Configuration) holding an invocationId (`invocation_id`, 16 octets). slapd
maintains neither uSNChanged nor highestCommittedUSN: a test sets uSNChanged on each change
as AD would, and the rootDSE's value stays what it was at start (slapd reads the file once).
`show_deleted=True` (CLI --show-deleted) also lists AD's show-deleted control
(1.2.840.113556.1.4.417) in the rootDSE's supportedControl; slapd ignores the control itself
(non-critical), so a test marks "deleted" entries with isDeleted: TRUE itself.

TLS: a test CA signs the server's certificate (subjectAltName 127.0.0.1 and localhost), used
for StartTLS on the ldap:// listener and for the ldaps:// listener; `wrong_ca_file` is a
second CA that did not sign it. A client certificate (CN=bridgehead,O=Acme Test) signed by
the test CA, with its key, PEM files and a PKCS#12 file without a password, serves SASL
EXTERNAL: slapd asks for a client certificate (TLSVerifyClient try) and `authz-regexp` maps
its subject to the service account, so a SASL EXTERNAL bind over TLS with it is that entry.

CLI, so that C++ tests (tests/support/slapd_process.hpp) use the same fixture:

    python3 tests/support/slapd.py serve --profile ad --dir DIR [--dbnosync] [--ldif FILE]
            [--sessionlog N] [--ad-dsa [--highest-usn N] [--show-deleted]]

prints one JSON line (see Slapd.info()) once slapd answers, and runs until its stdin closes
(or SIGTERM); then slapd is stopped. --ldif FILE is added with slapadd before slapd starts
(fast: thousands of entries in a second). A failure prints {"error": "..."} and exits 1.

slapd runs in the foreground (-d 0) as a child of this process; stop() sends SIGTERM, waits,
then SIGKILLs it, an atexit hook stops instances never stopped, and slapd gets SIGKILL when
this process dies without either (PR_SET_PDEATHSIG): no slapd outlives a test.
"""

import argparse
import atexit
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
LDAPADD = "/usr/bin/ldapadd"
LDAPMODIFY = "/usr/bin/ldapmodify"
LDAPSEARCH = "/usr/bin/ldapsearch"
OPENSSL = "/usr/bin/openssl"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"
FIXTURES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "ldap"))

PACKAGES = {SLAPD: "slapd", SLAPADD: "slapd", LDAPADD: "ldap-utils", LDAPMODIFY: "ldap-utils",
            LDAPSEARCH: "ldap-utils", OPENSSL: "openssl"}

PROFILES = {
    "ad": {
        "suffix": "dc=acme,dc=example",
        # msuser.schema is loaded as a copy with matching rules added (MSUSER_MATCHING).
        "schemas": [os.path.join(SCHEMA_DIR, n + ".schema") for n in ("core", "cosine", "inetorgperson", "nis")]
                   + ["msuser.schema", os.path.join(FIXTURES, "ad-extra.schema")],
        "root": "dn: dc=acme,dc=example\nobjectClass: dcObject\nobjectClass: organization\ndc: acme\no: Acme\n",
    },
    "domino": {
        "suffix": "o=Acme",
        "schemas": [os.path.join(SCHEMA_DIR, n + ".schema") for n in ("core", "cosine", "inetorgperson")]
                   + [os.path.join(FIXTURES, "domino.schema")],
        "root": "dn: o=Acme\nobjectClass: organization\no: Acme\n",
    },
}

# Debian's msuser.schema gives most attributes no matching rule, so slapd can neither filter
# on them nor add a value to one that has values. AD matches these, and a connector filters
# and changes them, so the copy of msuser.schema in the instance's directory gets AD's rules.
MSUSER_MATCHING = {
    "proxyAddresses": "EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch",
    "legacyExchangeDN": "EQUALITY caseIgnoreMatch",
    "sAMAccountName": "EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch",
    "objectGUID": "EQUALITY octetStringMatch",
    "uSNChanged": "EQUALITY integerMatch ORDERING integerOrderingMatch",
    "uSNCreated": "EQUALITY integerMatch ORDERING integerOrderingMatch",
}

SIZE_LIMIT = 1000
# The AD profile's domain controller (ad_dsa): its NTDS Settings entry and database id.
DSA_RDNS = "cn=NTDS Settings,cn=DC1,cn=Servers,cn=Configuration"
INVOCATION_ID = bytes.fromhex("00112233445566778899aabbccddeeff")
SHOW_DELETED_OID = "1.2.840.113556.1.4.417"
ROOT_PASSWORD = "root-secret"
SERVICE_PASSWORD = "service-secret"
CLIENT_SUBJECT = "/O=Acme Test/CN=bridgehead"

_live = set()


class SlapdError(RuntimeError):
    """slapd could not be set up, started or used; the message says why."""


def _die_with_parent():
    """In the child before exec: SIGKILL when this process dies, however it dies (Linux
    PR_SET_PDEATHSIG), so a killed fixture leaves no slapd behind."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _require(path):
    if not os.access(path, os.X_OK):
        raise SlapdError(f"{path} not found: install the Debian package '{PACKAGES[path]}' "
                         "(scripts/install-deps does)")


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(argv, what, input_text=None, timeout=60):
    try:
        r = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise SlapdError(f"{what}: {argv[0]} did not finish within {timeout} s") from e
    if r.returncode != 0:
        raise SlapdError(f"{what}: {' '.join(argv[:1])} exited with {r.returncode}: "
                         f"{(r.stderr or r.stdout).strip()}")
    return r.stdout


def ldif_value(name, value):
    """One LDIF attribute line (RFC 2849): base64 when the value is not safe as it is."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    safe = (raw and raw[0] not in b" :<" and raw[-1:] != b" "
            and all(0x20 <= c < 0x7f for c in raw))
    if safe or not raw:
        return f"{name}: {raw.decode('ascii')}\n"
    return f"{name}:: {base64.b64encode(raw).decode('ascii')}\n"


def _ad_mandatory(object_category):
    # What AD sets on every object (mstop's MUST); a fixed security descriptor will do.
    return (ldif_value("instanceType", "4") + ldif_value("nTSecurityDescriptor", b"\x01\x00\x04\x80")
            + ldif_value("objectCategory", object_category))


def ad_user_ldif(dn, cn, mail=None, proxy_addresses=(), object_guid=None, extra=None):
    """LDIF of an AD user that the ad profile accepts."""
    text = (f"dn: {dn}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n"
            f"objectClass: user\nobjectClass: mailRecipient\n" + ldif_value("cn", cn) + ldif_value("sn", cn)
            + _ad_mandatory("CN=Person,CN=Schema,CN=Configuration,dc=acme,dc=example"))
    return text + _recipient_values(mail, proxy_addresses, object_guid, extra) + "\n"


def _recipient_values(mail, proxy_addresses, object_guid, extra, members=()):
    """The LDIF lines of an AD recipient's addresses, GUID, members and further attributes."""
    text = ldif_value("mail", mail) if mail else ""
    for a in proxy_addresses:
        text += ldif_value("proxyAddresses", a)
    if object_guid is not None:
        text += ldif_value("objectGUID", object_guid)
    for m in members:
        text += ldif_value("member", m)
    for name, values in (extra or {}).items():
        for v in values if isinstance(values, (list, tuple)) else [values]:
            text += ldif_value(name, v)
    return text


def ad_contact_ldif(dn, cn, target_address, extra=None):
    """LDIF of an AD contact that the ad profile accepts."""
    text = (f"dn: {dn}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n"
            f"objectClass: contact\nobjectClass: mailRecipient\n" + ldif_value("cn", cn) + ldif_value("sn", cn)
            + _ad_mandatory("CN=Person,CN=Schema,CN=Configuration,dc=acme,dc=example")
            + ldif_value("targetAddress", target_address))
    for name, values in (extra or {}).items():
        for v in values if isinstance(values, (list, tuple)) else [values]:
            text += ldif_value(name, v)
    return text + "\n"


def ad_group_ldif(dn, cn, mail=None, proxy_addresses=(), object_guid=None, members=(), extra=None):
    """LDIF of an AD group (a universal distribution group unless extra says groupType)."""
    text = (f"dn: {dn}\nobjectClass: top\nobjectClass: group\nobjectClass: mailRecipient\n" + ldif_value("cn", cn)
            + _ad_mandatory("CN=Group,CN=Schema,CN=Configuration,dc=acme,dc=example"))
    if "groupType" not in (extra or {}):
        text += ldif_value("groupType", "8")
    return text + _recipient_values(mail, proxy_addresses, object_guid, extra, members) + "\n"


def parse_ldif(text):
    """Entries of ldapsearch -LLL output: [(dn, {name: [values as str or bytes]})]. Folded lines
    are unfolded; base64 values are decoded (bytes when not UTF-8)."""
    entries = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = []
        for line in block.split("\n"):
            if line.startswith(" ") and lines:
                lines[-1] += line[1:]
            elif line and not line.startswith("#"):
                lines.append(line)
        if not lines:
            continue
        dn, attrs = None, {}
        for line in lines:
            name, _, rest = line.partition(":")
            if rest.startswith(":"):
                raw = base64.b64decode(rest[1:].strip())
                try:
                    value = raw.decode("utf-8")
                except UnicodeDecodeError:
                    value = raw
            else:
                value = rest[1:] if rest.startswith(" ") else rest
            if name == "dn":
                dn = value
            else:
                attrs.setdefault(name, []).append(value)
        entries.append((dn, attrs))
    return entries


class Slapd:
    def __init__(self, tmpdir=None, profile="ad", dbnosync=False, initial_ldif="", start_timeout=30.0,
                 sessionlog=0, ad_dsa=False, highest_usn=1000, show_deleted=False):
        if profile not in PROFILES:
            raise SlapdError(f"unknown profile {profile!r}: use one of {', '.join(sorted(PROFILES))}")
        self._own_tmp = tmpdir is None
        self.dir = os.path.abspath(str(tmpdir) if tmpdir else tempfile.mkdtemp(prefix="slapd-"))
        self.profile = profile
        self.dbnosync = dbnosync
        self.initial_ldif = initial_ldif
        self.start_timeout = start_timeout
        if (ad_dsa or show_deleted) and profile != "ad":
            raise SlapdError("ad_dsa and show_deleted are for the ad profile only")
        self.sessionlog = int(sessionlog)
        self.ad_dsa = bool(ad_dsa or show_deleted)
        self.highest_usn = int(highest_usn)
        self.show_deleted = bool(show_deleted)
        p = PROFILES[profile]
        self.base = p["suffix"]
        self.root_dn = f"cn=admin,{self.base}"
        self.root_password = ROOT_PASSWORD
        self.service_dn = f"cn=bridgehead,ou=Services,{self.base}"
        self.service_password = SERVICE_PASSWORD
        self.tls_dir = os.path.join(self.dir, "tls")
        self.db_dir = os.path.join(self.dir, "db")
        self.conf = os.path.join(self.dir, "slapd.conf")
        self.log = os.path.join(self.dir, "slapd.log")
        self.ca_file = os.path.join(self.tls_dir, "ca.pem")
        self.wrong_ca_file = os.path.join(self.tls_dir, "wrong-ca.pem")
        self.client_cert = os.path.join(self.tls_dir, "client.pem")
        self.client_key = os.path.join(self.tls_dir, "client.key")
        self.client_p12 = os.path.join(self.tls_dir, "client.p12")
        self.rootdse_file = os.path.join(self.dir, "rootdse.ldif")
        self.dsa_dn = f"{DSA_RDNS},{self.base}" if self.ad_dsa else None
        self.port = self.ldaps_port = None
        self.proc = None

    @property
    def uri(self):
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_uri(self):
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def info(self):
        """What a client needs, as the CLI prints it."""
        return {"uri": self.uri, "ldaps_uri": self.ldaps_uri, "base": self.base, "profile": self.profile,
                "root_dn": self.root_dn, "root_password": self.root_password,
                "service_dn": self.service_dn, "service_password": self.service_password,
                "ca_file": self.ca_file, "wrong_ca_file": self.wrong_ca_file,
                "client_cert": self.client_cert, "client_key": self.client_key, "client_p12": self.client_p12,
                "client_maps_to": self.service_dn, "size_limit": SIZE_LIMIT, "dir": self.dir,
                "sessionlog": self.sessionlog, "dsa_dn": self.dsa_dn or "",
                "invocation_id": INVOCATION_ID.hex() if self.ad_dsa else "",
                "highest_usn": self.highest_usn if self.ad_dsa else 0,
                "pid": self.proc.pid if self.proc else None}

    # ---- set-up ------------------------------------------------------------------------------

    def _openssl(self, *args):
        _run([OPENSSL, *args], "making the test certificates")

    def _make_ca(self, name, subject):
        key, cert = os.path.join(self.tls_dir, name + ".key"), os.path.join(self.tls_dir, name + ".pem")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", cert, "-days", "2", "-subj", subject,
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return key, cert

    def _make_leaf(self, name, subject, extensions, ca_key):
        key, cert = os.path.join(self.tls_dir, name + ".key"), os.path.join(self.tls_dir, name + ".pem")
        csr, ext = os.path.join(self.tls_dir, name + ".csr"), os.path.join(self.tls_dir, name + ".ext")
        with open(ext, "w") as f:
            f.write(extensions)
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                      "-out", csr, "-subj", subject)
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", ca_key, "-set_serial",
                      str(int(time.time() * 1000)), "-days", "2", "-out", cert, "-extfile", ext)
        return key, cert

    def _make_tls(self):
        _require(OPENSSL)
        os.makedirs(self.tls_dir, exist_ok=True)
        ca_key, _ = self._make_ca("ca", "/O=Bridgehead Test/CN=Bridgehead Test CA")
        self._make_ca("wrong-ca", "/O=Bridgehead Test/CN=Some Other CA")
        self._make_leaf("server", "/O=Bridgehead Test/CN=localhost",
                        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n", ca_key)
        self._make_leaf("client", CLIENT_SUBJECT,
                        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=clientAuth\n", ca_key)
        # No password, bags not encrypted: the form Bridgehead's own ID files take without one.
        self._openssl("pkcs12", "-export", "-inkey", self.client_key, "-in", self.client_cert, "-certfile",
                      self.ca_file, "-keypbe", "NONE", "-certpbe", "NONE", "-passout", "pass:",
                      "-out", self.client_p12)
        # slapd reads the server key; the client key is the test's. Both stay in the temp dir.
        for name in ("server.key", "client.key", "ca.key", "wrong-ca.key"):
            os.chmod(os.path.join(self.tls_dir, name), 0o600)

    def _schema_paths(self):
        return [s if os.path.isabs(s) else os.path.join(self.dir, s) for s in PROFILES[self.profile]["schemas"]]

    def _write_msuser_copy(self):
        """msuser.schema with MSUSER_MATCHING's rules, in the instance's directory."""
        source = os.path.join(SCHEMA_DIR, "msuser.schema")
        with open(source) as f:
            text = f.read()
        for name, rules in MSUSER_MATCHING.items():
            needle = f"NAME '{name}'"
            if text.count(needle) != 1:
                raise SlapdError(f"{source}: expected one definition of {name}, found {text.count(needle)}")
            text = text.replace(needle, f"{needle} {rules}")
        # AD itself sets instanceType, nTSecurityDescriptor and objectCategory on every object a
        # client creates (instanceType is the system's only); a client such as Bridgehead never
        # writes them. slapd has no such DSA logic, so in the copy they are optional.
        must = "MUST (objectClass $ instanceType\n $ nTSecurityDescriptor $ objectCategory ) MAY (cn"
        if text.count(must) != 1:
            raise SlapdError(f"{source}: expected mstop's MUST list once, found {text.count(must)}")
        text = text.replace(must, "MUST objectClass MAY (instanceType $ nTSecurityDescriptor $ objectCategory $ cn")
        with open(os.path.join(self.dir, "msuser.schema"), "w") as f:
            f.write(text)

    def config_text(self):
        lines = [f"include {s}" for s in self._schema_paths()]
        # The subject of the client certificate, as slapd normalizes it for SASL EXTERNAL.
        client = ",".join(reversed([part.lower() for part in CLIENT_SUBJECT.strip("/").split("/")]))
        lines += [
            f"pidfile {self.dir}/slapd.pid",
            f"argsfile {self.dir}/slapd.args",
            f"modulepath {MODULE_DIR}",
            "moduleload back_mdb",
            "moduleload syncprov",
            # AD's MaxPageSize: unpaged searches stop at 1000 entries; paged ones have no total.
            f"sizelimit size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.prtotal=unlimited",
            f"TLSCACertificateFile {self.ca_file}",
            f"TLSCertificateFile {self.tls_dir}/server.pem",
            f"TLSCertificateKeyFile {self.tls_dir}/server.key",
            "TLSVerifyClient try",
            f'authz-regexp "^{client}$" "{self.service_dn}"',
            *([f"rootDSE {self.rootdse_file}"] if self.ad_dsa else []),
            "",
            "database mdb",
            f"suffix {self.base}",
            f"rootdn {self.root_dn}",
            f"rootpw {self.root_password}",
            f"directory {self.db_dir}",
            "maxsize 1073741824",
            "index objectClass eq",
            "index cn eq,sub",
            "index entryCSN,entryUUID eq",
        ]
        if self.dbnosync:
            lines.append("dbnosync")
        lines += [
            "access to attrs=userPassword by self write by anonymous auth by * none",
            "access to * by users write by * none",
            "overlay syncprov",
            "syncprov-checkpoint 100 10",
        ]
        if self.sessionlog > 0:
            lines.append(f"syncprov-sessionlog {self.sessionlog}")
        return "\n".join(lines) + "\n"

    def base_ldif(self):
        p = PROFILES[self.profile]
        return (p["root"] + "\n"
                f"dn: ou=Services,{self.base}\nobjectClass: organizationalUnit\nou: Services\n\n"
                f"dn: {self.service_dn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
                f"cn: bridgehead\nuserPassword: {self.service_password}\n\n" + self._dsa_ldif())

    def _dsa_ldif(self):
        """The NTDS Settings entry and the containers above it (ad_dsa only)."""
        if not self.ad_dsa:
            return ""
        rdns = DSA_RDNS.split(",")
        text = ""
        for i in range(len(rdns) - 1, 0, -1):
            text += (f"dn: {','.join(rdns[i:])},{self.base}\nobjectClass: organizationalRole\n"
                     + ldif_value("cn", rdns[i].partition("=")[2]) + "\n")
        return (text + f"dn: {self.dsa_dn}\nobjectClass: nTDSDSA\ncn: NTDS Settings\n"
                + ldif_value("invocationId", INVOCATION_ID) + "\n")

    def _rootdse_ldif(self):
        text = ("dn:\n" + ldif_value("highestCommittedUSN", str(self.highest_usn))
                + ldif_value("dsServiceName", self.dsa_dn))
        if self.show_deleted:
            text += ldif_value("supportedControl", SHOW_DELETED_OID)
        return text + "\n"

    def _write(self):
        for path in (SLAPD, SLAPADD, LDAPSEARCH):
            _require(path)
        for s in PROFILES[self.profile]["schemas"]:
            if os.path.isabs(s) and not os.path.exists(s):
                raise SlapdError(f"schema {s} not found (the Debian package 'slapd' installs "
                                 f"{SCHEMA_DIR}; the fixtures are in {FIXTURES})")
        if self.profile == "ad" and not os.path.exists(os.path.join(SCHEMA_DIR, "msuser.schema")):
            raise SlapdError(f"{SCHEMA_DIR}/msuser.schema not found: install the Debian package 'slapd'")
        os.makedirs(self.db_dir, exist_ok=True)
        if self.profile == "ad":
            self._write_msuser_copy()
        self._make_tls()
        if self.ad_dsa:
            with open(self.rootdse_file, "w") as f:
                f.write(self._rootdse_ldif())
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        # slaptest reports a bad configuration or schema on its own, naming the line (-u: without
        # opening the database, which slapadd creates next).
        _run([SLAPD, "-Tt", "-u", "-f", self.conf], f"checking {self.conf}")
        ldif = os.path.join(self.dir, "base.ldif")
        with open(ldif, "w") as f:
            f.write(self.base_ldif() + self.initial_ldif)
        _run([SLAPADD, "-q", "-f", self.conf, "-l", ldif], f"loading {ldif} with slapadd", timeout=300)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self):
        if self.proc is not None:
            return self
        _live.add(self)
        try:
            self._write()
            last = None
            for _ in range(3):  # a port picked free can be taken before slapd binds it
                self.port, self.ldaps_port = free_port(), free_port()
                with open(self.log, "ab") as log:
                    self.proc = subprocess.Popen(
                        [SLAPD, "-d", "0", "-f", self.conf, "-h", f"{self.uri}/ {self.ldaps_uri}/"],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                        preexec_fn=_die_with_parent)
                last = self._wait_ready()
                if last is None:
                    return self
                self._kill()
            raise SlapdError(f"slapd did not answer on {self.uri} within {self.start_timeout:.0f} s: {last}\n"
                             f"--- {self.log}:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def restart(self):
        """slapd again on the same ports and database (after stop() or a kill): a directory
        that went away and came back."""
        if self.proc is not None:
            return self
        _live.add(self)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SLAPD, "-d", "0", "-f", self.conf, "-h", f"{self.uri}/ {self.ldaps_uri}/"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=_die_with_parent)
        last = self._wait_ready()
        if last is not None:
            self._kill()
            raise SlapdError(f"slapd did not come back on {self.uri}: {last}\n--- {self.log}:\n{self.log_tail()}")
        return self

    def _wait_ready(self):
        """None once slapd answers a root DSE search; otherwise why not."""
        deadline = time.monotonic() + self.start_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"slapd exited with {self.proc.returncode}"
            r = subprocess.run([LDAPSEARCH, "-x", "-H", self.uri, "-o", "nettimeout=2", "-s", "base", "-b", "",
                                "namingContexts"], capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                return None
            last = r.stderr.strip()
            time.sleep(0.05)
        return last

    def log_tail(self, lines=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        """Stops slapd; afterwards no process of it is left. Safe to call twice."""
        try:
            self._kill()
        finally:
            _live.discard(self)
            if self._own_tmp:
                subprocess.run(["rm", "-rf", self.dir], check=False)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---- entries -------------------------------------------------------------------------------

    def _bind_args(self, as_root):
        if as_root:
            return ["-x", "-D", self.root_dn, "-w", self.root_password]
        return ["-x", "-D", self.service_dn, "-w", self.service_password]

    def add(self, ldif_text, as_root=True):
        """Adds the entries of `ldif_text` with ldapadd; SlapdError with its message otherwise."""
        _run([LDAPADD, "-H", self.uri, *self._bind_args(as_root)], "ldapadd", input_text=ldif_text, timeout=300)

    def modify(self, ldif_text, as_root=True):
        """Applies the LDIF change records of `ldif_text` with ldapmodify."""
        _run([LDAPMODIFY, "-H", self.uri, *self._bind_args(as_root)], "ldapmodify", input_text=ldif_text,
             timeout=300)

    def search(self, base=None, filter="(objectClass=*)", attrs=(), scope="sub", as_root=True):
        """Entries as parse_ldif() returns them; as the rootdn by default, so no limit applies."""
        out = _run([LDAPSEARCH, "-LLL", "-o", "ldif-wrap=no", "-H", self.uri, *self._bind_args(as_root),
                    "-b", base or self.base, "-s", scope, filter, *attrs], "ldapsearch")
        return parse_ldif(out)


@atexit.register
def _stop_all():
    for ds in list(_live):
        ds.stop()


def _serve(args):
    initial = ""
    if args.ldif:
        with open(args.ldif) as f:
            initial = f.read()
    ds = Slapd(args.dir, profile=args.profile, dbnosync=args.dbnosync, initial_ldif=initial,
               sessionlog=args.sessionlog, ad_dsa=args.ad_dsa, highest_usn=args.highest_usn,
               show_deleted=args.show_deleted)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        ds.start()
    except (SlapdError, OSError) as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    try:
        print(json.dumps(ds.info()), flush=True)

        def wait_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                done.set()

        threading.Thread(target=wait_stdin, daemon=True).start()
        while not done.wait(0.5):
            if not ds.running():
                return 1
        return 0
    finally:
        ds.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description="A private slapd for tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start slapd, print one JSON line, run until stdin closes")
    serve.add_argument("--profile", choices=sorted(PROFILES), default="ad")
    serve.add_argument("--dir", required=True, help="a directory for the instance (created if missing)")
    serve.add_argument("--dbnosync", action="store_true", help="no fsync in the database (faster, for tests)")
    serve.add_argument("--ldif", help="entries to load with slapadd before slapd starts")
    serve.add_argument("--sessionlog", type=int, default=0, help="syncprov session log size (0: none)")
    serve.add_argument("--ad-dsa", action="store_true",
                       help="ad profile: rootDSE highestCommittedUSN and dsServiceName, an NTDS Settings entry")
    serve.add_argument("--highest-usn", type=int, default=1000, help="the rootDSE's highestCommittedUSN")
    serve.add_argument("--show-deleted", action="store_true",
                       help="ad profile: list the show-deleted control in supportedControl (implies --ad-dsa)")
    args = parser.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
