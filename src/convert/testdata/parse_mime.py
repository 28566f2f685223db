#!/usr/bin/python3
"""Independent reading of a message before and after the 7-bit downgrade (Python's email package).

Usage: parse_mime.py FILE... Prints a JSON array with an entry per FILE: what the
message means (per leaf part: content type, charset, filename, decoded payload; per
message: decoded Subject and From/To/Cc display names and addresses) and the raw facts
the downgrade promises (8-bit octets, longest line, bare CR or LF).
"""
import base64
import email
import email.policy
import json
import sys
from email import _header_value_parser as hvp

TEXT_HEADERS = ("Subject", "Comments", "Content-Description")
ADDRESS_HEADERS = ("From", "To", "Cc", "Reply-To")


def readable(s):
    """Raw 8-bit octets come back from the email package as surrogates: read them as UTF-8
    when they are UTF-8 and as Latin-1 otherwise (the same for unknown-8bit words)."""
    b = s.encode("utf-8", "surrogateescape")
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def raw_value(msg, name):
    for k, v in msg.raw_items():
        if k.lower() == name.lower():
            return v
    return None


def headers(msg):
    out = {}
    for name in TEXT_HEADERS:
        v = raw_value(msg, name)
        if v is not None:
            # The unstructured-text parser itself: str(msg[name]) turns undecodable octets
            # (raw 8-bit, unknown-8bit words) into U+FFFD, which would hide a difference.
            unfolded = v.replace("\r\n", "").replace("\n", "")
            out[name] = readable(str(hvp.get_unstructured(unfolded))).strip()
    for name in ADDRESS_HEADERS:
        h = msg[name]
        if h is not None:
            out[name] = [[readable(a.display_name), a.addr_spec] for a in h.addresses]
    return out


def payload(part):
    data = part.get_payload(decode=True) or b""
    if part.get_content_maintype() == "text":
        data = data.replace(b"\r\n", b"\n")  # a text line break means the same either way
    return base64.b64encode(data).decode("ascii")


def visit(entity, is_message, out):
    if is_message:
        out["messages"].append(headers(entity))
    if entity.is_multipart():
        inner_is_message = entity.get_content_type() == "message/rfc822"
        for sub in entity.get_payload():
            visit(sub, inner_is_message, out)
    else:
        out["parts"].append({
            "content_type": entity.get_content_type(),
            "charset": entity.get_param("charset"),
            "filename": readable(entity.get_filename()) if entity.get_filename() else None,
            "description": headers(entity).get("Content-Description"),
            "payload": payload(entity),
        })


def describe(path):
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    lines = raw.split(b"\n")
    out = {
        "has_8bit": any(b >= 0x80 or b == 0 for b in raw),
        "max_line": max((len(l[:-1] if l.endswith(b"\r") else l) for l in lines), default=0),
        "bare_lf": b"\n" in raw.replace(b"\r\n", b""),
        "bare_cr": b"\r" in raw.replace(b"\r\n", b""),
        "messages": [],
        "parts": [],
        "defects": [],
    }
    for part in msg.walk():
        for d in part.defects:
            out["defects"].append(f"{part.get_content_type()}: {type(d).__name__}")
    visit(msg, True, out)
    return out


def main(paths):
    result = []
    for p in paths:
        try:
            result.append(describe(p))
        except Exception as e:  # reported in the JSON, so the test can say which message
            result.append({"error": f"{type(e).__name__}: {e}"})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
