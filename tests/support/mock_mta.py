#!/usr/bin/env python3
"""A scripted SMTP or LMTP server for integration tests: answers each recipient as told and
records every transaction. Standard library only; run as a subprocess (see MockMta in
bridgehead.py), it prints "READY <port>" once it listens and stops on SIGTERM.

    python3 mock_mta.py --dir DIR [--lmtp] [--no-8bitmime] [--dsn] [--rules JSON]
                        [--tls-cert PEM --tls-key PEM]

With --tls-cert it offers STARTTLS (RFC 3207) with that certificate chain; a transaction
made inside TLS is recorded with "tls": true.

--rules maps a recipient address (compared in lower case) to a list of replies, one per
attempt: the n-th time the address is seen gets the n-th reply, and the last one repeats.
In SMTP mode the reply is the answer to RCPT TO; in LMTP mode RCPT is always accepted and the
reply is that recipient's answer after the end of DATA (RFC 2033 4.2). "250" alone stands for
a default positive reply. Unlisted addresses are accepted.

Each finished transaction (one that reached the end of DATA) becomes DIR/NNNNNN.json:
{"seq", "proto", "helo", "mail_from", "mail_params", "rcpts": [{"address", "params",
"rcpt_reply", "final_reply"}], "data_file"}; the content (dot-unstuffed, CRLF as received) is
DIR/NNNNNN.eml. Both are written before the final reply is sent, .json last (by rename).

Why not aiosmtpd: it answers RCPT with 503 after MAIL FROM:<> (the null sender of every
DSN) and refuses all RCPT parameters (NOTIFY, ORCPT); a test peer must take both.
"""

import argparse
import json
import os
import signal
import socketserver
import ssl
import threading


class State:
    def __init__(self, args):
        self.args = args
        self.rules = {k.lower(): list(v) for k, v in json.loads(args.rules or "{}").items()}
        self.seen = {}
        self.seq = 0
        self.lock = threading.Lock()
        self.tls = None
        if args.tls_cert:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(args.tls_cert, args.tls_key)

    def reply_for(self, address, default):
        """The reply for this address's next attempt."""
        with self.lock:
            key = address.lower()
            n = self.seen.get(key, 0)
            self.seen[key] = n + 1
            replies = self.rules.get(key)
        if not replies:
            return default
        r = replies[min(n, len(replies) - 1)]
        return default if r.strip() == "250" else r

    def record(self, txn, data):
        with self.lock:
            self.seq += 1
            seq = self.seq
        base = os.path.join(self.args.dir, "%06d" % seq)
        with open(base + ".eml", "wb") as f:
            f.write(data)
        txn = dict(txn, seq=seq, data_file=base + ".eml")
        with open(base + ".json.tmp", "w") as f:
            json.dump(txn, f, indent=1)
        os.rename(base + ".json.tmp", base + ".json")


def split_params(text):
    """'<a@b> NOTIFY=X' -> ('a@b', ['NOTIFY=X']); tolerant, it is a test peer."""
    text = text.strip()
    if text.startswith("<"):
        end = text.find(">")
        if end < 0:
            return None, []
        return text[1:end], text[end + 1:].split()
    parts = text.split()
    return (parts[0] if parts else ""), parts[1:]


class Handler(socketserver.StreamRequestHandler):
    timeout = 120

    def reply(self, line):
        self.wfile.write((line + "\r\n").encode("utf-8", "surrogateescape"))
        self.wfile.flush()

    def handle(self):
        st = self.server.state
        lmtp = st.args.lmtp
        proto = "LMTP" if lmtp else "SMTP"
        self.reply("220 mock.test %s mock_mta ready" % ("LMTP" if lmtp else "ESMTP"))
        helo = ""
        txn = None
        in_tls = False
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            verb = line[:4].upper()
            arg = line[5:] if len(line) > 5 else ""
            if verb in ("EHLO", "LHLO"):
                if (verb == "LHLO") != lmtp:
                    self.reply("500 5.5.1 say %s" % ("LHLO" if lmtp else "EHLO"))
                    continue
                helo = arg
                caps = ["mock.test", "PIPELINING", "ENHANCEDSTATUSCODES", "SIZE 104857600"]
                if not st.args.no_8bitmime:
                    caps.append("8BITMIME")
                if st.args.dsn:
                    caps.append("DSN")
                if st.tls is not None and not in_tls:
                    caps.append("STARTTLS")
                for c in caps[:-1]:
                    self.reply("250-" + c)
                self.reply("250 " + caps[-1])
            elif verb == "HELO" and not lmtp:
                helo = arg
                self.reply("250 mock.test")
            elif verb == "MAIL":
                if not line.upper().startswith("MAIL FROM:"):
                    self.reply("501 5.5.4 syntax")
                    continue
                addr, params = split_params(line[10:])
                if addr is None:
                    self.reply("501 5.1.7 bad sender")
                    continue
                txn = {"proto": proto, "tls": in_tls, "helo": helo, "mail_from": addr, "mail_params": params, "rcpts": []}
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                if txn is None:
                    self.reply("503 5.5.1 need MAIL")
                    continue
                addr, params = split_params(line[8:] if line.upper().startswith("RCPT TO:") else "")
                if not addr:
                    self.reply("501 5.1.3 bad recipient")
                    continue
                r = "250 2.1.5 Ok" if lmtp else st.reply_for(addr, "250 2.1.5 Ok")
                txn["rcpts"].append({"address": addr, "params": params, "rcpt_reply": r})
                self.reply(r)
            elif verb == "DATA":
                accepted = [r for r in (txn or {}).get("rcpts", []) if r["rcpt_reply"].startswith("2")]
                if txn is None or not accepted:
                    self.reply("554 5.5.1 no valid recipients")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = bytearray()
                while True:
                    l = self.rfile.readline(1 << 20)
                    if not l:
                        return
                    if l in (b".\r\n", b".\n"):
                        break
                    if l.startswith(b"."):
                        l = l[1:]
                    data += l
                if lmtp:
                    finals = [st.reply_for(r["address"], "250 2.0.0 Ok: delivered") for r in accepted]
                else:
                    finals = ["250 2.0.0 Ok: queued as mock%06d" % (st.seq + 1)] * len(accepted)
                for r, f in zip(accepted, finals):
                    r["final_reply"] = f
                st.record(txn, bytes(data))
                for f in finals:
                    self.reply(f)
                txn = None
            elif line.upper() == "STARTTLS" and st.tls is not None and not in_tls:
                self.reply("220 2.0.0 Ready to start TLS")
                try:
                    conn = st.tls.wrap_socket(self.connection, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client refused the certificate (what the TLS tests look for)
                self.connection = self.request = conn
                self.rfile = conn.makefile("rb")
                self.wfile = conn.makefile("wb")
                in_tls = True
                helo = ""
                txn = None
            elif verb == "RSET":
                txn = None
                self.reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 command not implemented")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--lmtp", action="store_true")
    p.add_argument("--no-8bitmime", action="store_true")
    p.add_argument("--dsn", action="store_true")
    p.add_argument("--rules", default="")
    p.add_argument("--tls-cert", default="")
    p.add_argument("--tls-key", default="")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = State(args)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("READY %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
