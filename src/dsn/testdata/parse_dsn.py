#!/usr/bin/python3
"""Independent check of a DSN written by bridgehead::dsn::compose (Python's email package).

Usage: parse_dsn.py FILE. Prints one JSON object; exits 1 (with {"error": ...}) when the
message is not a multipart/report of report-type delivery-status.
"""
import email
import email.policy
import json
import sys


def fields(msg):
    return {k: str(v) for k, v in msg.items()}


def main(path):
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    with open(path, "rb") as f:
        raw = f.read()
    out = {"headers": {}, "per_message": {}, "recipients": [], "third_type": None,
           "part_types": [], "defects": [], "human_text": None,
           "max_line": max((len(l) for l in raw.split(b"\r\n")), default=0),
           "bare_lf": b"\n" in raw.replace(b"\r\n", b""),
           "header_8bit": any(b >= 0x80 for b in raw.split(b"\r\n\r\n", 1)[0])}
    for name in ("From", "To", "Subject", "Auto-Submitted", "Content-Type", "MIME-Version",
                 "Date", "Message-ID"):
        if msg[name] is not None:
            out["headers"][name] = str(msg[name])
    out["content_type"] = msg.get_content_type()
    out["report_type"] = msg.get_param("report-type")
    if msg.get_content_type() != "multipart/report" or \
            msg.get_param("report-type") != "delivery-status":
        out["error"] = "not multipart/report; report-type=delivery-status"
        print(json.dumps(out))
        return 1
    for part in msg.walk():
        for d in part.defects:
            out["defects"].append(f"{part.get_content_type()}: {type(d).__name__}: {d}")
    parts = msg.get_payload()
    out["part_types"] = [p.get_content_type() for p in parts]
    if len(parts) >= 1 and parts[0].get_content_type() == "text/plain":
        out["human_text"] = parts[0].get_content()
    if len(parts) >= 2 and parts[1].get_content_type() == "message/delivery-status":
        groups = parts[1].get_payload()
        if groups:
            out["per_message"] = fields(groups[0])
            out["recipients"] = [fields(g) for g in groups[1:]]
    if len(parts) >= 3:
        third = parts[2]
        out["third_type"] = third.get_content_type()
        if out["third_type"] == "message/rfc822":
            inner = third.get_payload()[0]
            out["returned_subject"] = str(inner["Subject"]) if inner["Subject"] else None
            out["returned_body"] = inner.get_payload(decode=False) if not inner.is_multipart() else None
        else:
            out["returned_text"] = third.get_payload(decode=True).decode("utf-8", "replace")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
