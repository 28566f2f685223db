"""Fixture for integration tests: starts the real `bridgehead run` daemon.

Each test gets a temporary directory, free loopback ports picked at run time, a config with
two systems (exchange and notes) and the daemon from $BRIDGEHEAD_BIN. Everything started is
stopped by cleanups; the daemon's log is printed when a test fails. Standard library only.

    class MyTest(bridgehead.TestCase):
        def test_x(self):
            d = self.start_daemon(smtp={"max_recipients": 2}, tls=True)
            c = d.raw("exchange"); c.ehlo(); c.cmd("MAIL FROM:<a@exchange.example>", 250, "2.1.0")

Delivery (issue 3): by default both systems deliver to a dead port, so mail stays queued.
`delivery` changes that per system, `queue` writes a [queue] section, `env` adds to the
daemon's environment:

            sink = bridgehead.SmtpSink(self, ["-8"]).start()       # /usr/sbin/smtp-sink, no 8BITMIME
            d = self.start_daemon(delivery={"notes": sink, "exchange": "maildir"},
                                  queue={"retry_delays": "1s"}, env={"BRIDGEHEAD_FAULT_POISON": "XYZ"})
            qid, message_id = d.send("ann@exchange.example", ["carol@notes.example"], "subject")
            d.wait_queue_empty()
            [m] = sink.messages()                                    # SinkMessage: envelope + content
            dsn = bridgehead.parse_dsn(d.maildir("exchange", "ann@exchange.example")[0][1])

MockMta (tests/support/mock_mta.py) is an SMTP/LMTP peer with a scripted reply per recipient
and attempt; parse_dsn() reads a DSN with the email package and returns its fields.
"""

import collections
import email
import email.policy
import email.utils
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest

# The ASan build is 2-3x slower: every wait is generous, and polling ends it early.
START_TIMEOUT = float(os.environ.get("BRIDGEHEAD_TEST_START_TIMEOUT", "60"))
IO_TIMEOUT = 30.0

EXCHANGE_RECIPIENTS = ["alice@exchange.example", "bob@exchange.example", "erin@exchange.example"]
NOTES_RECIPIENTS = ["carol@notes.example", "dave@notes.example", "frank@notes.example",
                    "gina@notes.example", "hugo@notes.example", "ivan@notes.example"]

EXIT_CODES_HEADER = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src",
                                                 "cli", "exit_codes.hpp"))


def read_exit_codes(path=EXIT_CODES_HEADER):
    """The CLI's exit codes under their C++ names (EXIT.kNotRunning), read from the header the
    CLI is built with, so that no test spells out a number the code might change."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise RuntimeError("cannot read the CLI's exit codes from %s: %s" % (path, e)) from e
    codes = dict(re.findall(r"^inline constexpr int (k\w+) = (\d+);", text, re.M))
    if not codes:
        raise RuntimeError("%s declares no exit code (lines like `inline constexpr int kOk = 0;`)" % path)
    return types.SimpleNamespace(**{name: int(value) for name, value in codes.items()})


EXIT = read_exit_codes()

# Debian packages of the peers: a missing peer is a failure naming its package.
PACKAGES = {
    "swaks": "swaks",
    "openssl": "openssl",
    "smtp-source": "postfix",
    "smtp-sink": "postfix",
}


def find_binary(name):
    """Path of a peer program; None when it is not installed."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin"
    return shutil.which(name, path=path)


# Started as root, the daemon refuses to run without [connector] user; scripts/install-deps
# creates this system user, and the tests (root in CI) run the daemon as it.
SERVICE_USER = "bridgehead"


def service_account():
    """(uid, gid) of SERVICE_USER when the tests run as root, else None (the daemon then runs
    as the test's user and drops nothing)."""
    if os.geteuid() != 0:
        return None
    import pwd
    try:
        pw = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise AssertionError("the system user %r does not exist: run scripts/install-deps (it creates it with "
                             "useradd --system)" % SERVICE_USER)
    return pw.pw_uid, pw.pw_gid


def traversable(path):
    """Lets the service user reach what lies below `path` (a test's temp dir, 0700 from
    mkdtemp) without being able to list or change it."""
    if os.geteuid() == 0:
        os.chmod(path, os.stat(path).st_mode | 0o711)
    return path


# Ports for the tests' listeners are picked outside the kernel's ephemeral range: a port
# taken from there (bind to port 0, then close) can be handed to any process's outgoing
# connection before our listener binds it, and with tests running in parallel that happens
# (Postfix failing with EADDRINUSE). Outside the range only an explicit bind takes a port,
# and a lock file per port, held until this process exits, keeps parallel tests apart.
PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "bridgehead-test-ports")
_held_ports = {}


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _candidate_ports():
    low, high = _ephemeral_range()
    ranges = [r for r in ((10000, low - 1), (high + 1, 65535)) if r[1] - r[0] >= 1000]
    ports = [p for a, b in ranges for p in range(a, b + 1)]
    random.SystemRandom().shuffle(ports)
    return ports


def _bindable(port):
    """True when nothing listens on or holds `port` on the loopback addresses."""
    families = [(socket.AF_INET, "127.0.0.1")]
    if socket.has_ipv6:
        families.append((socket.AF_INET6, "::1"))
    for family, host in families:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((host, port))
        except OSError as e:
            if family == socket.AF_INET6 and e.errno == 99:  # EADDRNOTAVAIL: no ::1 here
                continue
            return False
    return True


def _reserve(port):
    os.makedirs(PORT_LOCK_DIR, exist_ok=True)
    try:
        os.chmod(PORT_LOCK_DIR, 0o1777)
    except OSError:
        pass
    try:
        fd = os.open(os.path.join(PORT_LOCK_DIR, str(port)), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held_ports[port] = fd
    return True


def free_ports(n):
    """n distinct loopback ports that no other test holds and nothing listens on; see
    PORT_LOCK_DIR above for why they do not come from port 0."""
    picked = []
    for port in _candidate_ports():
        if len(picked) == n:
            break
        if port in _held_ports or not _reserve(port):
            continue
        if _bindable(port):
            picked.append(port)
    if len(picked) < n:
        raise AssertionError("only %d of %d free loopback ports outside the ephemeral range %d-%d"
                             % ((len(picked), n) + _ephemeral_range()))
    return picked


def free_port():
    return free_ports(1)[0]


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string is close enough to a JSON string


class SmtpError(AssertionError):
    pass


class RawClient:
    """A plain SMTP client on a socket, for byte-exact sessions (pipelining, smuggling)."""

    def __init__(self, host, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.tls = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server; unread: %r" % self.buf)
        self.buf += chunk

    def read_reply(self):
        """One (possibly multi-line) reply: (code, [texts]) where text excludes 'NNN-'."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            if not re.match(r"^\d{3}[ -]", text + " "):
                raise SmtpError("malformed reply line %r" % text)
            lines.append(text[4:])
            if len(text) == 3 or text[3] == " ":
                return int(text[:3]), lines

    def expect(self, code, enhanced=None, contains=None):
        got, lines = self.read_reply()
        full = "%d %s" % (got, "\n".join(lines))
        if got != code:
            raise SmtpError("expected %d %s, got %r" % (code, enhanced or "", full))
        if enhanced is not None and not lines[-1].startswith(enhanced + " ") and lines[-1] != enhanced:
            raise SmtpError("expected enhanced code %s, got %r" % (enhanced, full))
        if contains is not None and contains not in full:
            raise SmtpError("expected %r in reply, got %r" % (contains, full))
        return lines

    def cmd(self, line, code, enhanced=None, contains=None):
        self.send(line + "\r\n")
        return self.expect(code, enhanced, contains)

    def greeting(self):
        return self.expect(220)

    def ehlo(self, name="client.exchange.example"):
        self.greeting()
        return self.cmd("EHLO " + name, 250)

    def assert_closed(self, timeout=IO_TIMEOUT):
        """The server closes the connection (EOF or reset) without sending more replies."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return
        if data:
            raise SmtpError("expected the connection to be closed, got %r" % data)

    def starttls(self, context=None):
        ctx = context or ssl._create_unverified_context()
        self.sock = ctx.wrap_socket(self.sock, server_hostname="bridgehead.test")
        self.tls = True
        if self.buf:
            raise SmtpError("bytes after the 220 to STARTTLS in plaintext: %r" % self.buf)

    def send_message(self, sender, recipients, body, ehlo=False):
        """MAIL, RCPTs, DATA, dot-stuffed body; returns the queue id of the 250."""
        self.cmd("MAIL FROM:<%s>" % sender, 250, "2.1.0")
        for r in recipients:
            self.cmd("RCPT TO:<%s>" % r, 250, "2.1.5")
        self.cmd("DATA", 354)
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send(dot_stuff(body) + b".\r\n")
        return queue_id(self.expect(250, "2.0.0", "queued as")[-1])


def dot_stuff(body):
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return re.sub(rb"(^|\r\n)\.", rb"\1..", body)


def queue_id(reply_text):
    m = re.search(r"queued as ([0-9a-f]{16})\b", reply_text)
    if not m:
        raise SmtpError("no 16-hex queue id in %r" % reply_text)
    return m.group(1)


def make_message(sender, recipients, subject="test", body="Hello.\r\n", extra_headers=""):
    return ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n%s\r\n%s" % (
        sender, ", ".join("<%s>" % r for r in recipients), subject,
        "%x" % random.getrandbits(64), extra_headers, body))


class Daemon:
    """One bridgehead daemon on a temp dir; created by TestCase.start_daemon()."""

    def __init__(self, test, workdir, smtp=None, tls=False, spool_dir=None, extra="", delivery=None, queue=None,
                 env=None, identity=None, user=SERVICE_USER, directories=None):
        self.test = test
        # {system: dict of [system.directory] keys; a "rules" dict becomes [system.directory.rules]}
        self.directories = dict(directories or {})
        os.makedirs(workdir, exist_ok=True)
        self.workdir = traversable(workdir)
        self.bin = test.bridgehead_bin
        self.state_dir = os.path.join(workdir, "state")
        os.makedirs(self.state_dir, exist_ok=True)
        self.spool_dir = spool_dir or os.path.join(self.state_dir, "spool")
        # None: no [connector] user, to see a daemon started as root refuse to run.
        self.user = user if service_account() is not None else None
        if spool_dir and self.user and not spool_dir.startswith(self.state_dir + os.sep):
            # A spool of its own outside state_dir must belong to the daemon's user, as an
            # admin would set it up (the daemon refuses a root-owned one).
            uid, gid = service_account()
            os.chown(spool_dir, uid, gid)
        self.config_path = os.path.join(workdir, "bridgehead.toml")
        self.log_path = os.path.join(workdir, "daemon.log")
        self.smtp = dict(smtp or {})
        self.tls = tls
        self.extra = extra
        # {system: dict of [system.delivery] keys | "maildir" | an object with .delivery()}
        self.delivery = dict(delivery or {})
        self.queue_settings = dict(queue or {})
        self.identity = dict(identity or {})
        self.env = dict(env or {})
        self.proc = None
        # (soft, hard) RLIMIT_NOFILE for the daemon, set in the child before exec: a process
        # of another user cannot have its limits changed without CAP_SYS_RESOURCE.
        self.nofile = None
        self.starts = 0
        self.ports = {}
        self.cert = self.key = None
        if tls:
            self.cert, self.key = test.make_cert(workdir)

    # ------------------------------------------------------------ config and process

    def write_config(self, new_ports=False):
        # A restart keeps the ports (clients reconnect to the same place) unless they
        # turned out to be taken.
        if new_ports or not self.ports:
            exchange, notes, dead = free_ports(3)
            self.ports = {"exchange": exchange, "notes": notes, "dead": dead}
        # Delivery to a port nothing listens on: mail stays queued whatever the delivery
        # code does, so the queue listing is what the ingress accepted.
        dead = self.ports["dead"]
        lines = [
            "[connector]",
            'hostname = "bridgehead.test"',
            "state_dir = %s" % toml_value(self.state_dir),
        ] + (["user = %s" % toml_value(self.user)] if self.user else []) + [
            'log_level = "info"',
            "",
            "[spool]",
            "dir = %s" % toml_value(self.spool_dir),
            "",
            "[smtp]",
        ]
        smtp = {"command_timeout_seconds": 120, "data_timeout_seconds": 120}
        smtp.update(self.smtp)
        for k, v in smtp.items():
            lines.append("%s = %s" % (k, toml_value(v)))
        if self.identity:
            lines += ["", "[identity]"]
            for k, v in self.identity.items():
                lines.append("%s = %s" % (k, toml_value(v)))
        if self.queue_settings:
            lines += ["", "[queue]"]
            for k, v in self.queue_settings.items():
                lines.append("%s = %s" % (k, toml_value(v)))
        for name, kind, domain, rcpts in (("exchange", "exchange", "exchange.example", EXCHANGE_RECIPIENTS),
                                          ("notes", "domino", "notes.example", NOTES_RECIPIENTS)):
            lines += ["", "[[system]]",
                      'name = "%s"' % name,
                      'kind = "%s"' % kind,
                      "domains = [%s]" % toml_value(domain),
                      'listen = "127.0.0.1:%d"' % self.ports[name],
                      "recipients = %s" % toml_value(rcpts)]
            if self.tls:
                lines += ["tls_cert_file = %s" % toml_value(self.cert),
                          "tls_key_file = %s" % toml_value(self.key)]
            lines += ["", "[system.delivery]"]
            for k, v in self.delivery_settings(name).items():
                lines.append("%s = %s" % (k, toml_value(v)))
            if name in self.directories:
                settings = dict(self.directories[name])
                rules = settings.pop("rules", None)
                lines += ["", "[system.directory]"]
                for k, v in settings.items():
                    lines.append("%s = %s" % (k, toml_value(v)))
                if rules:
                    lines += ["", "[system.directory.rules]"]
                    for k, v in rules.items():
                        lines.append("%s = %s" % (k, toml_value(v)))
        lines.append(self.extra)
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def maildir_root(self, system):
        """Where a system with `delivery={system: "maildir"}` gets its Maildirs."""
        return os.path.join(self.workdir, "maildir", system)

    def delivery_settings(self, system):
        """The [system.delivery] keys of `system`: the dead-port SMTP target unless the test
        gave others. A dict given for smtp/lmtp without an address gets the dead port."""
        d = self.delivery.get(system)
        if d is None:
            return {"method": "smtp", "address": "127.0.0.1:%d" % self.ports["dead"]}
        if isinstance(d, str):
            if d != "maildir":
                raise ValueError("delivery shorthand %r: only \"maildir\" exists" % d)
            d = {"method": "maildir"}
        elif hasattr(d, "delivery"):
            d = d.delivery()
        d = dict(d)
        method = d.setdefault("method", "smtp")
        if method == "maildir":
            d.setdefault("path", self.maildir_root(system))
        else:
            d.setdefault("address", "127.0.0.1:%d" % self.ports["dead"])
        return d

    def start(self):
        """Starts the daemon and waits until both ingress processes are running."""
        for attempt in range(3):
            self.write_config(new_ports=attempt > 0)
            self._spawn()
            why = self._wait_running()
            if why is None:
                return self
            # A port picked free may have been taken by a parallel test meanwhile: retry.
            self._reap(signal.SIGKILL)
            if "cannot listen" not in why and "in use" not in why:
                break
        self.test.fail("bridgehead did not start within %.0fs: %s\n%s" % (START_TIMEOUT, why, self.log_tail()))

    def _spawn(self):
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(("\n===== start #%d =====\n" % self.starts).encode())
        log.flush()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env.update(self.env)
        limit = None
        if self.nofile is not None:
            import resource
            nofile = self.nofile
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)  # noqa: E731
        self.proc = subprocess.Popen([self.bin, "run", "-c", self.config_path], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                     preexec_fn=limit)
        log.close()

    def _wait_running(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = "no status yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "the daemon exited with code %d" % self.proc.returncode
            st, rc = self.status(check=False)
            if rc == EXIT.kOk and st.get("running"):
                procs = {p["name"]: p for p in st.get("processes", [])}
                ing = [procs.get("ingress:exchange"), procs.get("ingress:notes")]
                if all(p and p["state"] == "running" for p in ing):
                    return None
                # A locked connector ID puts the listeners that take STARTTLS from it in
                # "error" while they accept mail without STARTTLS: started all the same.
                if "identity" in procs and all(p and p["activity"].startswith("accepting mail") for p in ing):
                    return None
                last = "ingress states: %s" % json.dumps([p for p in ing if p], indent=1)
                if any(p and p["state"] == "error" for p in ing):
                    return last
            time.sleep(0.05)
        return "timeout; last seen: " + last

    def _reap(self, sig, timeout=IO_TIMEOUT):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.test.fail("bridgehead did not exit within %.0fs of signal %d\n%s" % (timeout, sig, self.log_tail()))

    def kill9(self):
        """SIGKILL, as a crash or power loss would stop it."""
        self._reap(signal.SIGKILL)

    def stop(self):
        """SIGTERM; asserts a clean exit (EXIT.kOk) and no sanitizer report in the log."""
        rc = self._reap(signal.SIGTERM)
        if rc is None:
            return
        self.test.assertEqual(rc, EXIT.kOk, "bridgehead exited with %s on SIGTERM\n%s" % (rc, self.log_tail()))
        self.assert_log_clean()

    def restart(self, kill=True):
        """kill -9 (or SIGTERM) and start again on the same state_dir and spool."""
        if kill:
            self.kill9()
        else:
            self.stop()
        return self.start()

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self._reap(signal.SIGTERM)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=80):
        lines = self.log().splitlines()
        return "----- daemon log (%s, last %d lines) -----\n%s\n-----" % (self.log_path, n, "\n".join(lines[-n:]))

    def assert_log_clean(self):
        text = self.log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "ended by exception"):
            self.test.assertNotIn(marker, text, "sanitizer/exception report in the daemon log\n" + self.log_tail(200))

    # ------------------------------------------------------------ CLI

    def cli(self, *args, check=True, timeout=IO_TIMEOUT):
        r = subprocess.run([self.bin] + list(args) + ["-c", self.config_path], capture_output=True,
                           timeout=timeout)
        if check and r.returncode != EXIT.kOk:
            self.test.fail("bridgehead %s exited %d: %s %s\n%s" % (
                " ".join(args), r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace"), self.log_tail()))
        return r

    def status(self, check=True):
        r = self.cli("status", "--json", check=False)
        try:
            st = json.loads(r.stdout.decode("utf-8"))
        except ValueError:
            st = {}
        if check:
            self.test.assertEqual(r.returncode, EXIT.kOk, "status failed: %r %r\n%s" % (r.stdout, r.stderr, self.log_tail()))
            return st
        return st, r.returncode

    def process(self, name):
        for p in self.status().get("processes", []):
            if p["name"] == name:
                return p
        self.test.fail("no process %r in status" % name)

    def queue(self):
        r = self.cli("queue", "--json")
        return json.loads(r.stdout.decode("utf-8"))["messages"]

    def queued_by_id(self):
        return {m["id"]: m for m in self.queue()}

    # ------------------------------------------------------------ delivery

    def wait_queue_empty(self, timeout=START_TIMEOUT, what="the queue to empty"):
        """Waits until `bridgehead queue` lists nothing (every recipient final)."""
        last = []

        def empty():
            last[:] = self.queue()
            return not last
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if empty():
                return
            time.sleep(0.1)
        self.test.fail("timed out after %.0fs waiting for %s; queue: %s\n%s" % (
            timeout, what, json.dumps(last, indent=1)[:4000], self.log_tail()))

    def recipient_states(self):
        """{(queue id, address): state dict} of everything queued."""
        out = {}
        for m in self.queue():
            for st in m.get("state", []):
                out[(m["id"], st["address"])] = st
        return out

    def counters(self, process):
        """The counters of a process in `bridgehead status --json` (what only grows: events
        since start), missing ones as 0."""
        p = self.process(process)
        return collections.defaultdict(int, p.get("counters", {}))

    def gauges(self, process):
        """The gauges of a process (levels that go up and down: messages queued), missing
        ones as 0."""
        p = self.process(process)
        return collections.defaultdict(int, p.get("gauges", {}))

    def maildir(self, system, address):
        """Messages delivered into `address`'s Maildir of a maildir-delivered system."""
        return read_maildir(self.maildir_root(system), address)

    def wait_maildir(self, system, address, count=1, timeout=START_TIMEOUT):
        """Waits for at least `count` messages in the Maildir; returns them all."""
        return self.wait_for(lambda: (lambda m: m if len(m) >= count else None)(self.maildir(system, address)),
                             "%d message(s) in the Maildir of %s (%s)" % (count, address, system), timeout,
                             interval=0.1)

    def wait_for(self, predicate, what, timeout=START_TIMEOUT, interval=0.05):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        self.test.fail("timed out after %.0fs waiting for %s\n%s" % (timeout, what, self.log_tail()))

    # ------------------------------------------------------------ clients

    def port(self, system="exchange"):
        return self.ports[system]

    def raw(self, system="exchange", timeout=IO_TIMEOUT):
        c = RawClient("127.0.0.1", self.port(system), timeout)
        self.test.addCleanup(c.close)
        return c

    def smtplib(self, system="exchange"):
        import smtplib
        s = smtplib.SMTP("127.0.0.1", self.port(system), local_hostname="client.test", timeout=IO_TIMEOUT)

        def close():
            try:
                s.close()
            except Exception:
                pass
        self.test.addCleanup(close)
        return s

    def send(self, sender, recipients, subject="test", body="Hello.\r\n", system="exchange", mail_options=(),
             rcpt_options=None, extra_headers="", message=None):
        """One message over smtplib to `system`'s listener; every recipient must be accepted.
        rcpt_options: a list for every recipient or {address: [options]}. `message` (bytes or
        str) replaces the generated one. Returns (queue id, Message-ID or None)."""
        if message is None:
            message = make_message(sender, recipients, subject, body, extra_headers)
        if isinstance(message, str):
            message = message.encode("utf-8")
        m = re.search(rb"(?im)^Message-ID:\s*(<[^>]*>)", message.split(b"\r\n\r\n", 1)[0])
        s = self.smtplib(system)
        s.ehlo()
        code, text = s.mail(sender, list(mail_options))
        self.test.assertEqual(code, 250, "MAIL FROM:<%s> %s: %r" % (sender, mail_options, text))
        for r in recipients:
            opts = rcpt_options.get(r, []) if isinstance(rcpt_options, dict) else list(rcpt_options or [])
            code, text = s.rcpt(r, opts)
            self.test.assertEqual(code, 250, "RCPT TO:<%s> %s: %r" % (r, opts, text))
        code, text = s.data(message)
        self.test.assertEqual(code, 250, "end of DATA: %r" % text)
        s.quit()
        return queue_id(text.decode()), (m.group(1).decode() if m else None)

    def swaks(self, *args, system="exchange", check=True):
        exe = self.test.require("swaks")
        cmd = [exe, "--server", "127.0.0.1", "--port", str(self.port(system)), "--helo", "swaks.test",
               "--timeout", "60"] + list(args)
        r = subprocess.run(cmd, capture_output=True, timeout=120)
        out = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
        if "requires Net::SSLeay" in out or "requires IO::Socket::SSL" in out:
            self.test.fail("swaks cannot do TLS: install the Debian packages 'libnet-ssleay-perl' and "
                           "'libio-socket-ssl-perl' (recommended by swaks)\n" + out)
        if check and r.returncode != 0:
            self.test.fail("swaks exited %d:\n%s\n%s" % (r.returncode, out, self.log_tail()))
        return r.returncode, out


def read_spool_content(spool_dir):
    """An independent reader of the spool's segment files (docs/spool.md): returns
    {queue id: content bytes} of every message with a COMMIT record. Stops at a torn tail."""
    import struct
    chunks, committed = {}, {}
    for name in sorted(os.listdir(spool_dir)):
        if not (name.startswith("seg-") and name.endswith(".bhs")):
            continue
        with open(os.path.join(spool_dir, name), "rb") as f:
            data = f.read()
        off = 32
        while off + 16 <= len(data):
            magic, rtype, _flags, _res, length, _crc = struct.unpack_from("<4sBBHII", data, off)
            if magic != b"BHrc" or off + 16 + length > len(data):
                break
            payload = data[off + 16: off + 16 + length]
            if rtype == 1:
                mid, idx = struct.unpack_from("<QI", payload, 0)
                chunks.setdefault(mid, {})[idx] = payload[12:]
            elif rtype == 2:
                mid, size, nchunks = struct.unpack_from("<QQI", payload, 0)
                committed[mid] = (size, nchunks)
            off += 16 + length
    out = {}
    for mid, (size, nchunks) in committed.items():
        parts = chunks.get(mid, {})
        content = b"".join(parts[i] for i in range(nchunks) if i in parts)
        out["%016x" % mid] = content
    return out


# ---------------------------------------------------------------- delivery peers and readers

def _wait_banner(port, proc, what, timeout=START_TIMEOUT):
    """Waits until 127.0.0.1:port greets with 220; fails early if `proc` exited."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "%s exited with code %d" % (what, proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                banner = s.recv(512)
                if banner.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                    except OSError:
                        pass
                    return None
                last = banner
        except OSError as e:
            last = e
        time.sleep(0.05)
    return "%s: no 220 greeting on port %d within %.0fs (last: %r)" % (what, port, timeout, last)


class SinkMessage:
    """One transaction as smtp-sink dumped it (LF line endings)."""

    def __init__(self, path, data):
        self.path = path
        self.raw = data
        lines = data.split(b"\n")
        self.client_proto = self.helo = self.mail_args = None
        self.rcpt_args = []
        self.has_data = False  # smtp-sink's Received header: the transaction reached DATA
        i = 0
        while i < len(lines):
            line = lines[i].decode("utf-8", "replace")
            if line.startswith("X-Client-Proto: "):
                self.client_proto = line[16:]
            elif line.startswith("X-Helo-Args: "):
                self.helo = line[13:]
            elif line.startswith("X-Mail-Args: "):
                self.mail_args = line[13:]
            elif line.startswith("X-Rcpt-Args: "):
                self.rcpt_args.append(line[13:])
            elif line.startswith("Received: "):
                self.has_data = True
                i += 1
                while i < len(lines) and lines[i][:1] in (b"\t", b" "):
                    i += 1
                break
            i += 1
        body = b"\n".join(lines[i:])
        # smtp-sink appends one empty line after the message.
        if body.endswith(b"\n\n"):
            body = body[:-1]
        self.content = body

    @property
    def sender(self):
        return re.match(r"<([^>]*)>", self.mail_args or "<>").group(1)

    @property
    def recipients(self):
        return [re.match(r"<([^>]*)>", a).group(1) for a in self.rcpt_args]

    def rcpt_params(self, address):
        for a in self.rcpt_args:
            if a.lower().startswith("<%s>" % address.lower()):
                return a.split()[1:]
        return None

    def message(self):
        return email.message_from_bytes(self.content, policy=email.policy.default)


class SmtpSink:
    """/usr/sbin/smtp-sink on a free loopback port, dumping each transaction into its own file
    (-d); `flags` are smtp-sink options such as ["-8"] (no 8BITMIME), ["-N"] (no DSN),
    ["-f", "RCPT"] (5xx to every RCPT), ["-w", "1"] (slow DATA). Stopped by a cleanup."""

    def __init__(self, test, flags=(), port=None):
        self.test = test
        self.flags = list(flags)
        self.port = port
        self.proc = None
        self.dump_dir = tempfile.mkdtemp(prefix="bh-sink-")
        # smtp-sink drops to an unprivileged user (-u) when started as root: the user must be
        # able to create files there, and the directory is outside the private workdir.
        os.chmod(self.dump_dir, 0o777)
        test.addCleanup(shutil.rmtree, self.dump_dir, True)
        test.addCleanup(self.stop)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def delivery(self, **extra):
        d = {"method": "smtp", "address": self.address, "tls": "none", "timeout": "30s"}
        d.update(extra)
        return d

    def start(self):
        exe = self.test.require("smtp-sink")
        for attempt in range(5):
            port = self.port or free_port()
            argv = [exe] + self.flags
            if os.geteuid() == 0:
                argv += ["-u", "nobody"]
            argv += ["-d", os.path.join(self.dump_dir, "%Y%m%d%H%M%S."), "127.0.0.1:%d" % port, "256"]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True)
            why = _wait_banner(port, self.proc, "smtp-sink")
            if why is None:
                self.port = port
                return self
            err = self._reap()
            if self.port is None and ("in use" in err or "bind" in err):
                continue
            if self.port is not None and attempt < 4 and ("in use" in err or "bind" in err):
                time.sleep(0.5)  # restarting on the same port: the old socket may linger
                continue
            self.test.fail("smtp-sink %s did not start: %s %s" % (" ".join(argv), why, err))
        self.test.fail("smtp-sink found no free port")

    def _reap(self):
        err = b""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            try:
                err = self.proc.stderr.read() or b""
            except (OSError, ValueError):
                pass
            self.proc.stderr.close()
        self.proc = None
        return err.decode("utf-8", "replace")

    def stop(self):
        self._reap()

    def restart(self, flags=None):
        """Stops and starts again on the same port with the same dump directory."""
        self.stop()
        if flags is not None:
            self.flags = list(flags)
        return self.start()

    def messages(self):
        """Every dumped transaction that reached DATA, oldest first. A transaction still in
        progress may be there in part: wait for the sender's side (e.g. an empty queue) first.
        (smtp-sink removes the file of a transaction the client aborts, but one cut off by
        stopping smtp-sink stays, empty or without content: those are left out.)"""
        out = []
        for name in os.listdir(self.dump_dir):
            path = os.path.join(self.dump_dir, name)
            try:
                with open(path, "rb") as f:
                    out.append((os.stat(path).st_mtime_ns, name, SinkMessage(path, f.read())))
            except OSError:
                pass  # removed: an aborted transaction
        return [m for _, _, m in sorted(out, key=lambda t: (t[0], t[1])) if m.has_data]

    def wait_messages(self, count, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        msgs = []
        while time.monotonic() < deadline:
            msgs = self.messages()
            if len(msgs) >= count:
                return msgs
            time.sleep(0.1)
        self.test.fail("smtp-sink got %d of %d message(s) within %.0fs" % (len(msgs), count, timeout))


class MockMta:
    """tests/support/mock_mta.py as a subprocess: an SMTP or LMTP peer that answers each
    recipient as `rules` say ({address: [reply per attempt]}) and records what it got."""

    SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mock_mta.py")

    def __init__(self, test, lmtp=False, rules=None, eightbitmime=True, dsn=False, tls_cert=None, tls_key=None):
        self.test = test
        self.lmtp = lmtp
        self.dir = tempfile.mkdtemp(prefix="mock-mta-", dir=test.workdir)
        argv = [sys.executable, self.SCRIPT, "--dir", self.dir, "--rules", json.dumps(rules or {})]
        if lmtp:
            argv.append("--lmtp")
        if not eightbitmime:
            argv.append("--no-8bitmime")
        if dsn:
            argv.append("--dsn")
        if tls_cert:
            argv += ["--tls-cert", tls_cert, "--tls-key", tls_key]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        test.addCleanup(self.stop)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            self.stop()
            test.fail("mock_mta.py did not start: %r %s" % (line, self.proc.stderr.read().decode(errors="replace")))
        self.port = int(line.split()[1])

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def delivery(self, **extra):
        d = {"method": "lmtp" if self.lmtp else "smtp", "address": self.address, "tls": "none", "timeout": "30s"}
        d.update(extra)
        return d

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc.stdout.close()
            self.proc.stderr.close()
            self.proc = None

    def transactions(self):
        """Finished transactions, in order: dicts (see mock_mta.py) with "content" bytes."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".json"):
                with open(os.path.join(self.dir, name)) as f:
                    t = json.load(f)
                with open(t["data_file"], "rb") as f:
                    t["content"] = f.read()
                out.append(t)
        return out

    def delivered_to(self, address):
        """Transactions in which `address` got a positive final reply."""
        return [t for t in self.transactions()
                if any(r["address"].lower() == address.lower() and r.get("final_reply", "").startswith("2")
                       for r in t["rcpts"])]


def read_maildir(root, address):
    """[(path, bytes)] of the messages in <root>/<address lower-cased>/new, oldest first."""
    new = os.path.join(root, address.lower(), "new")
    try:
        names = os.listdir(new)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        path = os.path.join(new, name)
        with open(path, "rb") as f:
            out.append((os.stat(path).st_mtime_ns, path, f.read()))
    return [(p, d) for _, p, d in sorted(out)]


def all_maildir_files(root):
    """Every file below root's */new and */tmp directories (to assert that nothing came)."""
    found = []
    for dirpath, _, files in os.walk(root):
        found += [os.path.join(dirpath, f) for f in files]
    return found


def parse_message(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def _field(block, name):
    v = block.get(name)
    return None if v is None else " ".join(str(v).split())


def _typed_address(value):
    """'rfc822; a@b' -> 'a@b'."""
    if value is None:
        return None
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def parse_dsn(data):
    """Parses an RFC 3464 delivery status notification with Python's email package and
    checks its structure. Returns a dict:
      message: the parsed email.message.EmailMessage
      sender_header/to/subject/auto_submitted: top-level header values
      reporting_mta, arrival_date, original_envelope_id: per-message fields
      recipients: [{final_recipient (address only), final_recipient_raw, original_recipient,
                    action (lower case), status, remote_mta, diagnostic_code,
                    will_retry_until, last_attempt_date}]
      returned: "message" (message/rfc822), "headers" (text/rfc822-headers) or None
      returned_part: the returned original's part (EmailMessage or text) or None
      text: the human-readable first part, decoded
      defects: what the email package found wrong, as "content/type: DefectName"
    Raises AssertionError when the message is not a DSN."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    msg = parse_message(data)
    if msg.get_content_type() != "multipart/report":
        raise AssertionError("not a multipart/report but %s:\n%s" % (msg.get_content_type(), data[:2000]))
    if (msg.get_param("report-type") or "").lower() != "delivery-status":
        raise AssertionError("report-type is %r, not delivery-status" % msg.get_param("report-type"))
    parts = list(msg.iter_parts())
    if len(parts) < 2:
        raise AssertionError("a DSN has at least two parts, got %d" % len(parts))
    if parts[1].get_content_type() != "message/delivery-status":
        raise AssertionError("second part is %s, not message/delivery-status" % parts[1].get_content_type())
    blocks = parts[1].get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise AssertionError("message/delivery-status needs a per-message block and at least one per-recipient "
                             "block, got %r" % (blocks,))
    per_msg = blocks[0]
    recipients = []
    for b in blocks[1:]:
        final = _field(b, "Final-Recipient")
        if final is None:
            raise AssertionError("per-recipient block without Final-Recipient: %r" % b.items())
        recipients.append({
            "final_recipient": _typed_address(final),
            "final_recipient_raw": final,
            "original_recipient": _field(b, "Original-Recipient"),
            "action": (_field(b, "Action") or "").lower(),
            "status": _field(b, "Status"),
            "remote_mta": _field(b, "Remote-MTA"),
            "diagnostic_code": _field(b, "Diagnostic-Code"),
            "will_retry_until": _field(b, "Will-Retry-Until"),
            "last_attempt_date": _field(b, "Last-Attempt-Date"),
        })
    returned, returned_part = None, None
    if len(parts) >= 3:
        ct = parts[2].get_content_type()
        if ct == "message/rfc822":
            returned, returned_part = "message", parts[2].get_payload()[0]
        elif ct == "text/rfc822-headers":
            returned, returned_part = "headers", parts[2].get_content()
    try:
        text = parts[0].get_content()
    except (KeyError, LookupError):
        text = ""
    defects = ["%s: %s" % (part.get_content_type(), type(d).__name__) for part in msg.walk() for d in part.defects]
    return {
        "message": msg,
        "defects": defects,
        "sender_header": msg.get("From"),
        "to": msg.get("To"),
        "subject": msg.get("Subject"),
        "auto_submitted": msg.get("Auto-Submitted"),
        "reporting_mta": _field(per_msg, "Reporting-MTA"),
        "arrival_date": _field(per_msg, "Arrival-Date"),
        "original_envelope_id": _field(per_msg, "Original-Envelope-Id"),
        "recipients": recipients,
        "returned": returned,
        "returned_part": returned_part,
        "text": text,
    }


def rfc5322_time(value):
    """A date field's value as unix seconds."""
    return email.utils.parsedate_to_datetime(value).timestamp()


class TestCase(unittest.TestCase):
    """Base class: a temp dir per test, daemons stopped by cleanups, logs printed on failure."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.bridgehead_bin = os.environ.get("BRIDGEHEAD_BIN", "")

    def setUp(self):
        if not self.bridgehead_bin or not os.access(self.bridgehead_bin, os.X_OK):
            self.fail("BRIDGEHEAD_BIN is not set to an executable (got %r); run the tests through ctest, "
                      "which sets it to the built bridgehead" % self.bridgehead_bin)
        self.workdir = traversable(tempfile.mkdtemp(prefix="bh-it-"))
        self.daemons = []

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            daemons = getattr(self, "daemons", [])
            if len(result.failures) + len(result.errors) > before:
                for d in daemons:
                    sys.stderr.write("\n%s: %s\n" % (self.id(), d.log_tail(200)))
            workdir = getattr(self, "workdir", None)
            if workdir and os.path.isdir(workdir):
                shutil.rmtree(workdir, ignore_errors=True)

    def require(self, program):
        exe = find_binary(program)
        if exe is None:
            self.fail("%s is not installed: install the Debian package %r (scripts/install-deps does)" % (
                program, PACKAGES.get(program, program)))
        return exe

    def make_cert(self, directory):
        openssl = self.require("openssl")
        cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        r = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=bridgehead.test",
                            "-addext", "subjectAltName=DNS:bridgehead.test"], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, "openssl req failed: %r" % r.stderr)
        return cert, key

    def start_daemon(self, smtp=None, tls=False, spool_dir=None, extra="", delivery=None, queue=None, env=None,
                     identity=None):
        """delivery: {system: dict of [system.delivery] keys, or "maildir" (below
        Daemon.maildir_root(system)), or an SmtpSink/MockMta}; systems not named keep the
        dead-port SMTP target. queue, identity: keys of a [queue] or [identity] section.
        env: extra environment."""
        d = Daemon(self, self.workdir if not self.daemons else tempfile.mkdtemp(dir=self.workdir),
                   smtp=smtp, tls=tls, spool_dir=spool_dir, extra=extra, delivery=delivery, queue=queue, env=env,
                   identity=identity)
        self.daemons.append(d)
        self.addCleanup(d.cleanup)
        d.start()
        return d

    def assertQueued(self, d, qid, sender, recipients, system="exchange"):
        q = d.queued_by_id()
        self.assertIn(qid, q, "queue id %s from the 250 is not in the queue: %s" % (qid, json.dumps(q, indent=1)))
        m = q[qid]
        self.assertEqual(m["from"], sender)
        self.assertEqual(sorted(m["recipients"]), sorted(recipients))
        self.assertEqual(m["system"], system)
        return m

    def senders(self, d):
        return [m["from"] for m in d.queue()]
