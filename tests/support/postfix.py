"""A private, stock Postfix instance for benchmarks and integration tests. Standard library only.

    with PostfixInstance(tmpdir, port) as pf:          # listens on 127.0.0.1:port
        ... send mail to 127.0.0.1:port ...
        pf.queue_count()                              # messages in its queue

The instance has its own config_directory (TMPDIR/etc with main.cf and master.cf), its own
queue_directory (TMPDIR/queue) and data_directory (TMPDIR/data), and logs to TMPDIR/maillog
through postlogd (no syslog needed). By default it relays mail for notes.example and holds
every delivery with `defer_transports`, so it only accepts and queues: a peer whose queue a
test can count. `extra_main_cf` overrides or adds main.cf parameters (e.g.
`{"defer_transports": ""}` to let it deliver); `master_cf_services` adds master.cf entries
or replaces the default entry with the same service name and type.

How the instance is started, and why this way
---------------------------------------------
`postfix -c DIR start`, run as root. The `postfix` command with `-c` sets MAIL_CONFIG for
postfix-script and the master(8) daemon, so every daemon of the instance reads DIR/main.cf.
The `alternate_config_directories` parameter of the *default* main.cf is only consulted by
the set-gid commands (postqueue, postdrop, sendmail) when they are run by an unprivileged
user, to stop a user from pointing them at a configuration of their choosing; as root,
`postfix -c`, `postqueue -c` and `postsuper -c` accept any directory. So nothing outside
TMPDIR is created or edited: Debian's "No configuration" install has no /etc/postfix/main.cf
and keeps having none, and no system-wide MTA is started. (Starting `master -c DIR` directly
would skip postfix-script's `check` step, which is what creates the queue directories with
the owners and modes Postfix expects, and its error reporting; `postfix start` does both.)
`postfix -c DIR check` runs first, so a configuration error is reported on its own.

The postfix command writes its messages to stderr only when stderr is a terminal, and
otherwise to syslog (absent here) or to maillog_file; so it is run on a pseudo-terminal and
what it says is put into the exception, together with the tail of the maillog.

The master runs as root, as usual, and its children drop to mail_owner (postfix). All parts
of TMPDIR must be searchable by that user: the ancestors of TMPDIR that are private temporary
directories of ours (e.g. pytest's /tmp/pytest-of-root) get o+x (search, not read).

stop() runs `postfix -c DIR stop`, waits for the master to exit and then kills, by process
id, every process left in the master's session (the master calls setsid(), so its children
share its session id): no Postfix process outlives the instance, even after a failed test.
An atexit hook stops instances that were never stopped.
"""

import atexit
import errno
import json
import os
import pty
import pwd
import grp
import select
import signal
import socket
import subprocess
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"
POSTSUPER = "/usr/sbin/postsuper"
POSTCONF = "/usr/sbin/postconf"

# The queues a message can be in between acceptance and delivery or removal.
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")

# The daemons of a working instance; chroot is "n" for all (upstream's default since Postfix
# 3.0; Debian's packaged master.cf turns it on, which would need a copy of /etc in the queue).
DEFAULT_SERVICES = [
    # service type  private unpriv chroot wakeup maxproc command
    "pickup    unix  n       -       n       60      1       pickup",
    "cleanup   unix  n       -       n       -       0       cleanup",
    "qmgr      unix  n       -       n       300     1       qmgr",
    "tlsmgr    unix  -       -       n       1000?   1       tlsmgr",
    "rewrite   unix  -       -       n       -       -       trivial-rewrite",
    "bounce    unix  -       -       n       -       0       bounce",
    "defer     unix  -       -       n       -       0       bounce",
    "trace     unix  -       -       n       -       0       bounce",
    "verify    unix  -       -       n       -       1       verify",
    "flush     unix  n       -       n       1000?   0       flush",
    "proxymap  unix  -       -       n       -       -       proxymap",
    "proxywrite unix -       -       n       -       1       proxymap",
    "smtp      unix  -       -       n       -       -       smtp",
    "relay     unix  -       -       n       -       -       smtp",
    "showq     unix  n       -       n       -       -       showq",
    "error     unix  -       -       n       -       -       error",
    "retry     unix  -       -       n       -       -       error",
    "discard   unix  -       -       n       -       -       discard",
    "local     unix  -       n       n       -       -       local",
    "virtual   unix  -       n       n       -       -       virtual",
    "lmtp      unix  -       -       n       -       -       lmtp",
    "anvil     unix  -       -       n       -       1       anvil",
    "scache    unix  -       -       n       -       1       scache",
    # Postfix 3.4+: logging to maillog_file without syslog.
    "postlog   unix-dgram n  -       n       -       1       postlogd",
]

_live_instances = set()


class PostfixError(RuntimeError):
    """Postfix could not be set up, started or queried; the message says why."""


def _postfix_installed():
    return os.access(POSTFIX, os.X_OK)


def _session_of(pid):
    """Session id of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # pid (comm) state ppid pgrp session ...; comm may contain spaces and parentheses.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None  # a zombie holds no resources; its parent (or init) reaps it
    return int(fields[3])


def _alive(pid):
    return pid is not None and _session_of(pid) is not None


def _environ_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


class PostfixInstance:
    def __init__(self, tmpdir, port, extra_main_cf=None, master_cf_services=None,
                 hostname="postfix.test", relay_domains=("notes.example",),
                 start_timeout=30.0):
        self.dir = os.path.abspath(str(tmpdir))
        self.port = int(port)
        self.config_dir = os.path.join(self.dir, "etc")
        self.queue_dir = os.path.join(self.dir, "queue")
        self.data_dir = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        self.hostname = hostname
        self.start_timeout = start_timeout
        self.main_cf = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": hostname,
            "myorigin": "$myhostname",
            "mydestination": "",
            "relay_domains": " ".join(relay_domains),
            "mynetworks": "127.0.0.0/8",
            # Accept and queue only: every delivery is deferred ("deferred transport").
            "defer_transports": "smtp relay local virtual lmtp",
            # No aliases, no NIS: nothing is delivered locally.
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            # 20+ concurrent sessions from one IP: no anvil limits (0 = no limit).
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            "default_process_limit": "100",
            # Log to a file of our own via postlogd (Postfix 3.4+), no syslog needed.
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
        }
        if extra_main_cf:
            self.main_cf.update({k: str(v) for k, v in extra_main_cf.items()})
        if isinstance(master_cf_services, str):
            master_cf_services = [master_cf_services]
        self.master_cf_services = list(master_cf_services or [])
        self.master_pid = None
        self._started = False

    # ---- configuration -------------------------------------------------------------------

    def master_cf_text(self):
        lines = [f"127.0.0.1:{self.port} inet n - n - - smtpd"]
        extra_keys = set()
        for entry in self.master_cf_services:
            first = entry.splitlines()[0].split()
            if len(first) >= 2:
                extra_keys.add((first[0], first[1]))
        for entry in DEFAULT_SERVICES:
            f = entry.split()
            if (f[0], f[1]) not in extra_keys:
                lines.append(entry)
        lines.extend(self.master_cf_services)
        return "\n".join(lines) + "\n"

    def main_cf_text(self):
        return "".join(f"{k} = {v}\n" for k, v in self.main_cf.items())

    def _ensure_searchable(self):
        """Lets mail_owner reach self.dir: o+x on our own private temporary ancestors."""
        tmp = os.path.realpath(tempfile.gettempdir())
        path = os.path.realpath(self.dir)
        probe = path
        while True:
            st = os.stat(probe)
            if not st.st_mode & 0o001:
                inside_tmp = probe == tmp or probe.startswith(tmp + os.sep)
                if st.st_uid == os.geteuid() and (inside_tmp or probe == path):
                    os.chmod(probe, (st.st_mode & 0o7777) | 0o001)
                else:
                    raise PostfixError(
                        f"{probe} is not searchable by the postfix user (mode "
                        f"{oct(st.st_mode & 0o777)}); put the instance below a directory that is, "
                        f"e.g. {tmp}")
            if probe == os.sep:
                break
            probe = os.path.dirname(probe)

    def _write_config(self):
        if os.geteuid() != 0:
            raise PostfixError("a Postfix instance must be started as root (its master runs as "
                               "root and its daemons drop to the postfix user)")
        if not _postfix_installed():
            raise PostfixError(f"{POSTFIX} not found: install the Debian package 'postfix' "
                               "(scripts/install-deps does, with 'No configuration')")
        try:
            owner = pwd.getpwnam(self.main_cf["mail_owner"])
            grp.getgrnam(self.main_cf["setgid_group"])
        except KeyError as e:
            raise PostfixError(f"user or group missing: {e}; reinstall the postfix package") from e
        os.makedirs(self.config_dir, exist_ok=True)
        os.makedirs(self.queue_dir, exist_ok=True)
        os.makedirs(self.data_dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chmod(self.queue_dir, 0o755)  # owned by root, as postfix-script checks
        os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)  # data_directory: mail_owner's
        os.chmod(self.data_dir, 0o700)
        self._ensure_searchable()
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write(self.main_cf_text())
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(self.master_cf_text())

    # ---- running postfix commands ---------------------------------------------------------

    def _env(self):
        env = dict(os.environ)
        env.pop("MAIL_CONFIG", None)
        env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        return env

    def _run_on_pty(self, argv, timeout=60.0):
        """Runs argv with stdout and stderr on a pseudo-terminal; returns (rc, output)."""
        master_fd, slave_fd = pty.openpty()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave_fd,
                                    stderr=slave_fd, env=self._env(), close_fds=True)
        finally:
            os.close(slave_fd)
        chunks = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    proc.kill()
                    proc.wait()
                    raise PostfixError(f"{' '.join(argv)} did not finish in {timeout:.0f} s; "
                                       f"output: {b''.join(chunks).decode(errors='replace')}")
                r, _, _ = select.select([master_fd], [], [], min(left, 0.2))
                if r:
                    try:
                        data = os.read(master_fd, 65536)
                    except OSError as e:
                        if e.errno != errno.EIO:  # EIO: every writer has closed the terminal
                            raise
                        data = b""
                    if not data:
                        break
                    chunks.append(data)
                elif proc.poll() is not None:
                    # The daemonized master may keep no copy of the pty; nothing more comes.
                    break
            rc = proc.wait()
        finally:
            os.close(master_fd)
        return rc, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n").strip()

    def postfix(self, *args, timeout=60.0):
        return self._run_on_pty([POSTFIX, "-c", self.config_dir, *args], timeout=timeout)

    def maillog_tail(self, lines=20):
        try:
            with open(self.maillog, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no maillog)"

    def maillog_text(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _fail(self, what, output=""):
        msg = f"Postfix instance in {self.dir} (port {self.port}): {what}"
        if output:
            msg += f"\n--- postfix said:\n{output}"
        msg += f"\n--- last lines of {self.maillog}:\n{self.maillog_tail()}"
        raise PostfixError(msg)

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self):
        if self._started:
            return self
        self._write_config()
        _live_instances.add(self)
        self._started = True
        try:
            # Creates the missing queue directories with Postfix's owners and modes, and
            # reports configuration errors before anything runs.
            rc, out = self.postfix("check")
            if rc != 0:
                self._fail(f"`postfix -c {self.config_dir} check` failed (exit {rc})", out)
            rc, out = self.postfix("start")
            if rc != 0:
                self._fail(f"`postfix -c {self.config_dir} start` failed (exit {rc})", out)
            self.master_pid = self._read_master_pid()
            if self.master_pid is None:
                self._fail("the master daemon did not write its pid file", out)
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_master_pid(self):
        path = os.path.join(self.queue_dir, "pid", "master.pid")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    pid = int(f.read().strip())
                # Only ever signal our own master: it carries our MAIL_CONFIG.
                if _environ_of(pid).get("MAIL_CONFIG") == self.config_dir:
                    return pid
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        return None

    def _wait_listening(self):
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if not _alive(self.master_pid):
                self._fail("the master daemon exited after starting")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5)
                    banner = s.recv(512)
                    if banner.startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
                    last = banner
            except OSError as e:
                last = e
            time.sleep(0.1)
        self._fail(f"no SMTP greeting on 127.0.0.1:{self.port} within {self.start_timeout:.0f} s "
                   f"(last: {last!r})")

    def _session_members(self):
        if self.master_pid is None:
            return []
        members = []
        for name in os.listdir("/proc"):
            if name.isdigit() and _session_of(int(name)) == self.master_pid:
                members.append(int(name))
        return members

    def stop(self, timeout=20.0):
        """Stops the instance; afterwards no process of it is left. Safe to call twice."""
        if not self._started:
            return
        try:
            if self.master_pid is None:
                self.master_pid = self._read_master_pid_quick()
            if _alive(self.master_pid):
                try:
                    self.postfix("stop", timeout=timeout)
                except PostfixError:
                    pass
                deadline = time.monotonic() + timeout
                while _alive(self.master_pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
            # Whatever is left of the master's session (the master itself if `stop` did not
            # work, daemons still finishing a request): killed by pid.
            for _ in range(50):
                left = self._session_members()
                if not left:
                    break
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
        finally:
            self._started = False
            _live_instances.discard(self)

    def _read_master_pid_quick(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if _environ_of(pid).get("MAIL_CONFIG") == self.config_dir else None

    def running(self):
        return self._started and _alive(self.master_pid)

    def cpu_seconds(self):
        """CPU time (user + system, seconds) the instance has used so far: its live processes
        (the master's session) plus the children the master has already reaped (cutime and
        cstime of the master). The difference of two readings is what it used in between."""
        total = 0
        for pid in self._session_members():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if pid == self.master_pid:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime
        return total / os.sysconf("SC_CLK_TCK")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---- the queue ----------------------------------------------------------------------

    def _count_files(self):
        n = 0
        for q in QUEUES:
            for _, _, files in os.walk(os.path.join(self.queue_dir, q)):
                n += len(files)
        return n

    def queue_count(self, settle=2.0, timeout=60.0):
        """Number of messages in the queue (maildrop, incoming, active, deferred, hold).

        A message moves between queue directories (incoming -> active -> deferred), so a
        single directory walk can count it twice or not at all. With settle > 0, counts are
        taken until the count has not changed for `settle` seconds and the active queue is
        empty (or `timeout` passes); settle=0 returns one walk's count at once.
        """
        n = self._count_files()
        if settle <= 0:
            return n
        deadline = time.monotonic() + timeout
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            m = self._count_files()
            if m != n:
                n, stable_since = m, time.monotonic()
                continue
            active = sum(len(f) for _, _, f in os.walk(os.path.join(self.queue_dir, "active")))
            incoming = sum(len(f) for _, _, f in os.walk(os.path.join(self.queue_dir, "incoming")))
            if active == 0 and incoming == 0 and time.monotonic() - stable_since >= settle:
                break
        return n

    def queue(self):
        """The queue as `postqueue -j` lists it: one dict per message."""
        r = subprocess.run([POSTQUEUE, "-c", self.config_dir, "-j"], capture_output=True,
                           text=True, env=self._env(), timeout=120)
        if r.returncode != 0:
            raise PostfixError(f"postqueue -j failed (exit {r.returncode}): {r.stderr.strip()}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def flush(self):
        """Asks for delivery of the deferred mail now (`postqueue -f`)."""
        subprocess.run([POSTQUEUE, "-c", self.config_dir, "-f"], check=True, env=self._env(),
                       capture_output=True, timeout=60)

    def delete_all(self):
        """Empties the queue (`postsuper -d ALL`)."""
        subprocess.run([POSTSUPER, "-c", self.config_dir, "-d", "ALL"], check=True,
                       env=self._env(), capture_output=True, timeout=120)


def start_for_test(test, name, port, **kwargs):
    """Starts a PostfixInstance for a unittest.TestCase below a fresh directory of the system
    temp dir (Postfix's daemons run as the postfix user and must reach it); the test's
    cleanups stop it and remove the directory, and a failure to start fails the test.
    kwargs go to PostfixInstance."""
    pf_dir = tempfile.mkdtemp(prefix="bh-postfix-%s-" % name)
    test.addCleanup(lambda: subprocess.run(["rm", "-rf", pf_dir]))
    pf = PostfixInstance(pf_dir, port, **kwargs)
    test.addCleanup(pf.stop)
    try:
        pf.start()
    except PostfixError as e:
        test.fail(str(e))
    return pf


@atexit.register
def _stop_leftovers():
    for inst in list(_live_instances):
        try:
            inst.stop()
        except Exception:
            pass


if __name__ == "__main__":
    # Self-check: python3 tests/support/postfix.py -> starts, sends one message, counts, stops.
    import smtplib
    import shutil

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    d = tempfile.mkdtemp(prefix="postfix-selfcheck.")
    try:
        with PostfixInstance(d, free) as pf:
            with smtplib.SMTP("127.0.0.1", free, timeout=30) as c:
                c.sendmail("a@exchange.example", ["b@notes.example"], b"Subject: t\r\n\r\nhi\r\n")
            print(f"postfix on port {free}: {pf.queue_count()} message(s) queued, master pid "
                  f"{pf.master_pid}")
            master = pf.master_pid
        print("left after stop:", [p for p in os.listdir("/proc")
                                   if p.isdigit() and _session_of(int(p)) == master])
    finally:
        shutil.rmtree(d, ignore_errors=True)
