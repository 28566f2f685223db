#!/usr/bin/python3
"""A scripted SMTP/LMTP peer for the smtp client tests (aiosmtpd, python3-aiosmtpd).

Listens on 127.0.0.1 on a port of the kernel's choosing and writes that port to
--port-file once it accepts connections. Every message it takes is appended to --record as
one JSON line: envelope, parameters, whether TLS was on, and the content (base64, as
received after dot-unstuffing). Replies can be scripted per recipient: at RCPT
(--rcpt-reply) or, for LMTP, after the final "." (--data-reply).
"""

import argparse
import asyncio
import base64
import json
import os
import ssl

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP


def parse_replies(items):
    replies = {}
    for item in items or []:
        address, _, reply = item.partition("=")
        replies[address.lower()] = reply
    return replies


class Handler:
    def __init__(self, args):
        self.args = args
        self.rcpt_replies = parse_replies(args.rcpt_reply)
        self.data_replies = parse_replies(args.data_reply)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.args.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        record = {
            "helo": session.host_name,
            "tls": server._tls_protocol is not None,
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "content": base64.b64encode(envelope.original_content).decode("ascii"),
        }
        with open(self.args.record, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.args.lmtp:
            # RFC 2033 4.2: one reply per accepted recipient, in order (sent as one write).
            return "\r\n".join(
                self.data_replies.get(r.lower(), f"250 2.1.5 <{r}> delivered") for r in envelope.rcpt_tos
            )
        return "250 2.0.0 Ok: queued"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--lmtp", action="store_true")
    parser.add_argument("--pipelining", action="store_true")
    parser.add_argument("--smtputf8", action="store_true")
    parser.add_argument("--size", type=int, default=0, help="SIZE limit to announce; 0: none")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--rcpt-reply", action="append", help="address=reply for its RCPT")
    parser.add_argument("--data-reply", action="append", help="address=reply after DATA (LMTP)")
    args = parser.parse_args()

    tls_context = None
    if args.tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)

    handler = Handler(args)
    protocol = LMTP if args.lmtp else SMTP

    def factory():
        return protocol(
            handler,
            hostname="scripted.test",
            data_size_limit=args.size or None,
            enable_SMTPUTF8=args.smtputf8,
            tls_context=tls_context,
            require_starttls=False,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(str(port))
    os.rename(tmp, args.port_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
