#!/usr/bin/env python3
"""Builds mails the way a mail client does, with Python's email package (stdlib):

    make_mail.py OUT.eml OUTER_ATTACHMENT OUTER_NAME INNER_ATTACHMENT INNER_NAME TEXT_ATTACHMENT
    make_mail.py --simple OUT.eml ATTACHMENT NAME

The first form writes:

multipart/mixed
  text/plain body
  application/pdf  OUTER_ATTACHMENT, filename OUTER_NAME (non-ASCII names come out RFC 2231-encoded)
  text/plain       TEXT_ATTACHMENT as a quoted-printable attachment "notes.txt"
  message/rfc822   a forwarded message, itself multipart/mixed with INNER_ATTACHMENT as INNER_NAME
"""
import sys
from email.message import EmailMessage
from email.policy import SMTP


def simple(out, path, name):
    """A text body and one base64 application/octet-stream attachment."""
    msg = EmailMessage()
    msg["From"] = "Alice <alice@client.test>"
    msg["To"] = "bob@sink.test"
    msg["Subject"] = "Backup"
    msg["Message-ID"] = "<backup-1@client.test>"
    msg.set_content("The backup is attached.\n")
    with open(path, "rb") as f:
        msg.add_attachment(f.read(), maintype="application", subtype="octet-stream", filename=name)
    with open(out, "wb") as f:
        f.write(msg.as_bytes(policy=SMTP))


def main():
    if sys.argv[1] == "--simple":
        return simple(*sys.argv[2:5])
    out, outer_path, outer_name, inner_path, inner_name, text_path = sys.argv[1:7]

    inner = EmailMessage()
    inner["From"] = "Supplier <billing@supplier.test>"
    inner["To"] = "alice@client.test"
    inner["Subject"] = "Invoice 4711"
    inner["Message-ID"] = "<inner-4711@supplier.test>"
    inner.set_content("Please find the invoice tool attached.\n")
    with open(inner_path, "rb") as f:
        inner.add_attachment(f.read(), maintype="application", subtype="octet-stream", filename=inner_name)

    outer = EmailMessage()
    outer["From"] = "Alice <alice@client.test>"
    outer["To"] = "bob@sink.test"
    outer["Subject"] = "Fwd: Invoice 4711"
    outer["Message-ID"] = "<fwd-4711@client.test>"
    outer.set_content("Forwarding the invoice below, and the report.\n")
    with open(outer_path, "rb") as f:
        outer.add_attachment(f.read(), maintype="application", subtype="pdf", filename=outer_name)
    with open(text_path, "r", encoding="utf-8", newline="") as f:  # keep CRLF: the wire form
        outer.add_attachment(f.read(), subtype="plain", filename="notes.txt", cte="quoted-printable")
    outer.add_attachment(inner)  # message/rfc822

    with open(out, "wb") as f:
        f.write(outer.as_bytes(policy=SMTP))


if __name__ == "__main__":
    main()
