"""THE crash test (rule 2: accepted mail is never lost). Under load from smtp-source, four
client threads send uniquely tagged messages and record what each got; the daemon is
SIGKILLed at a random moment and restarted on the same spool, five times. Then:
  - every acknowledged (250) tag is in the queue exactly once;
  - no refused tag and no tag whose DATA was never finished is there;
  - a tag whose connection died between the final "." and the reply (in doubt) is there
    at most once."""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import bridgehead

ROUNDS = 5
THREADS = 4


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.state = {}  # tag -> "sent-partial" | "in-doubt" | "acked" | "refused"
        self.acked_ids = {}

    def set(self, tag, state, qid=None):
        with self.lock:
            self.state[tag] = state
            if qid:
                self.acked_ids[tag] = qid

    def tags(self, state):
        with self.lock:
            return {t for t, s in self.state.items() if s == state}


def client_thread(port, rnd, tid, rec, stop, rng):
    n = 0
    while not stop.is_set():
        try:
            c = bridgehead.RawClient("127.0.0.1", port, timeout=60)
        except OSError:
            time.sleep(0.02)
            continue
        try:
            c.ehlo("crash%d.test" % tid)
            for _ in range(rng.randint(1, 8)):
                if stop.is_set():
                    break
                n += 1
                tag = "crash-%d-%d-%d@exchange.example" % (rnd, tid, n)
                rec.set(tag, "sent-partial")
                c.cmd("MAIL FROM:<%s>" % tag, 250, "2.1.0")
                rcpts = ["carol@notes.example"] + (["dave@notes.example"] if n % 3 == 0 else [])
                if n % 7 == 0:
                    rcpts.append("nobody@notes.example")
                for r in rcpts:
                    c.send("RCPT TO:<%s>\r\n" % r)
                    c.read_reply()
                if n % 11 == 0:
                    # A message refused at end of data (bare LF): must never be queued.
                    c.cmd("DATA", 354)
                    c.send(b"Subject: refused\r\n\r\nbare\nlf\r\n.\r\n")
                    code, lines = c.read_reply()
                    rec.set(tag, "refused" if code != 250 else "acked",
                            bridgehead.queue_id(lines[-1]) if code == 250 else None)
                    continue
                c.cmd("DATA", 354)
                body = b"Subject: " + tag.encode() + b"\r\n\r\n" + (b"%s line\r\n" % tag.encode()) * rng.randint(1, 400)
                cut = rng.randint(0, len(body))
                c.send(body[:cut])
                c.send(body[cut:] + b".\r\n")
                rec.set(tag, "in-doubt")
                code, lines = c.read_reply()
                if code == 250:
                    rec.set(tag, "acked", bridgehead.queue_id(lines[-1]))
                else:
                    rec.set(tag, "refused")
            try:
                c.cmd("QUIT", 221)
            except (OSError, bridgehead.SmtpError, ConnectionError):
                pass
        except (OSError, bridgehead.SmtpError, ConnectionError):
            pass  # the daemon died; the tag keeps its last state
        finally:
            c.close()


class CrashRecoveryTest(bridgehead.TestCase):
    def test_sigkill_under_load_loses_no_acknowledged_message(self):
        smtp_source = self.require("smtp-source")
        d = self.start_daemon(smtp={"max_sessions": 200, "max_sessions_per_client": 100})
        rec = Recorder()
        seed = int(os.environ.get("BRIDGEHEAD_CRASH_SEED", str(random.randrange(1 << 30))))
        rng = random.Random(seed)
        sys.stderr.write("crash test seed %d (set BRIDGEHEAD_CRASH_SEED to replay the timing)\n" % seed)
        load_total = 0
        for rnd in range(ROUNDS):
            load = subprocess.Popen([smtp_source, "-s", "10", "-m", "100000", "-l", "4096",
                                     "-f", "load@exchange.example", "-t", "carol@notes.example",
                                     "127.0.0.1:%d" % d.port()],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self.addCleanup(lambda p=load: p.poll() is None and (p.kill(), p.wait()))
            stop = threading.Event()
            threads = [threading.Thread(target=client_thread,
                                        args=(d.port(), rnd, t, rec, stop, random.Random(rng.random())))
                       for t in range(THREADS)]
            for t in threads:
                t.start()
            # Let the load reach the server, then crash at a random moment.
            d.wait_for(lambda: len(rec.tags("acked")) > 0 or rnd > 0, "a first acknowledged message", timeout=60,
                       interval=0.01)
            time.sleep(rng.uniform(0.3, 1.5))
            d.kill9()
            stop.set()
            for t in threads:
                t.join(120)
                self.assertFalse(t.is_alive(), "a client thread hangs after the daemon was killed")
            load.kill()
            load.wait()
            d.start()
            q = d.queue()
            recovered = d.process("spool")["details"].get("recovery", "")
            self.assertRegex(recovered, r"recovered %d messages?\b" % len(q))
            senders = [m["from"] for m in q]
            missing = [t for t in rec.tags("acked") if t not in senders]
            self.assertEqual(missing, [], "round %d: acknowledged messages lost: %s" % (rnd, missing[:20]))
            load_total = sum(1 for s in senders if s == "load@exchange.example")

        q = d.queue()
        by_sender = {}
        for m in q:
            by_sender.setdefault(m["from"], []).append(m)
        acked = rec.tags("acked")
        in_doubt = rec.tags("in-doubt")
        refused = rec.tags("refused")
        partial = rec.tags("sent-partial")
        present_doubt = [t for t in in_doubt if t in by_sender]
        summary = ("crash test summary: seed=%d rounds=%d acked=%d (all present once) refused=%d "
                   "unfinished=%d in_doubt=%d (present %d) load_messages_queued=%d queue=%d" % (
                       seed, ROUNDS, len(acked), len(refused), len(partial), len(in_doubt), len(present_doubt),
                       load_total, len(q)))
        sys.stderr.write(summary + "\n")
        self.assertGreater(len(acked), 20, "too little mail was acknowledged to prove anything")
        for tag in acked:
            got = by_sender.get(tag, [])
            self.assertEqual(len(got), 1, "acknowledged %s is queued %d times" % (tag, len(got)))
            self.assertEqual(got[0]["id"], rec.acked_ids[tag], tag)
            self.assertEqual(got[0]["recipients"][0], "carol@notes.example")
            self.assertNotIn("nobody@notes.example", got[0]["recipients"])
        for tag in refused | partial:
            self.assertNotIn(tag, by_sender, "%s was never acknowledged but is queued" % tag)
        for tag in in_doubt:
            self.assertLessEqual(len(by_sender.get(tag, [])), 1, "in-doubt %s queued twice" % tag)
        unknown = [s for s in by_sender if s.startswith("crash-") and s not in rec.state]
        self.assertEqual(unknown, [])
        d.stop()


if __name__ == "__main__":
    unittest.main()
