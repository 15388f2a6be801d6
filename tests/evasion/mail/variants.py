#!/usr/bin/env python3
"""Bent mail messages: the table of MIME/SMTP evasion variants and their oracles (stdlib only).

    variants.py list                       ids, one a line (sorted)
    variants.py write DIR                  DIR/<family>/<name>.eml: each message as sent
    variants.py send ADDR PORT ID          one SMTP session delivering variant ID, raw bytes
    variants.py manifest STORED OUT.json   parses what the sink stored (STORED/<family>/<name>.eml)
                                           with Python's email package and writes the manifest

Every variant is a message built from two deterministic payloads (a fake PE and a small PDF-like
text file), bent one way, with a stable id `<family>/<name>`, a one-line description and the
anomalies the sensor is expected to flag on the files it carves from it (`expect_anomalies`).

Expected parts come from Python's `email` package in its most lenient policy (`compat32`,
`message_from_bytes`): every leaf part that is an attachment (disposition `attachment` or a
filename), is not text, or lies inside an attached message (`message/rfc822`), with a non-empty
decoded payload (`get_payload(decode=True)`). `email.policy.default` is the second opinion: where
it disagrees the manifest says so. A few variants are expected otherwise, because a lenient mail
client shows more than Python does (the sensor logs what the most permissive reader sees); their
`oracle` is not `compat32` and their notes say why.
"""

import base64
import binascii
import email
import email.policy
import hashlib
import json
import os
import re
import socket
import sys

CRLF = b"\r\n"


# ---- deterministic payloads ----


def pseudo_random(seed, n):
    """xorshift64* bytes, as tests/support/content.rs makes them."""
    x = seed | 1
    out = bytearray()
    mask = (1 << 64) - 1
    while len(out) < n:
        x ^= x >> 12
        x ^= (x << 25) & mask
        x ^= x >> 27
        out += ((x * 0x2545F4914F6CDD1D) & mask).to_bytes(8, "little")
    return bytes(out[:n])


def pe_like(seed, n):
    v = bytearray(pseudo_random(seed, n))
    v[:64] = bytes(64)
    v[0:2] = b"MZ"
    v[0x3C] = 0x80
    stub = b"This program cannot be run in DOS mode.\r\r\n$"
    v[0x4E : 0x4E + len(stub)] = stub
    v[0x80:0x84] = b"PE\0\0"
    v[0x84:0x86] = (0x14C).to_bytes(2, "little")
    return bytes(v)


def pdf_text():
    """A small PDF-like file of CRLF text lines (fit for 7bit, 8bit and quoted-printable)."""
    lines = [b"%PDF-1.4", b"1 0 obj", b"<< /Type /Catalog /Pages 2 0 R >>", b"endobj"]
    lines += [b"3 0 obj", b"<< /Length 640 >>", b"stream"]
    noise = pseudo_random(7, 320).hex().encode()
    lines += [noise[i : i + 64] for i in range(0, len(noise), 64)]
    lines += [b"endstream", b"endobj", b"trailer", b"<< /Root 1 0 R >>", b"%%EOF"]
    return CRLF.join(lines) + CRLF


PE = pe_like(11, 4000)  # 4000 % 3 == 1: its base64 ends in "=="
PE2 = pe_like(12, 2999)  # 2999 % 3 == 2: ends in "="
PE3 = pe_like(13, 3000)  # no padding
PDF = pdf_text()


# ---- building blocks ----


def b64(data, width=76, nl=CRLF):
    enc = base64.b64encode(data)
    return b"".join(enc[i : i + width] + nl for i in range(0, len(enc), width))


def qp(data):
    return binascii.b2a_qp(data, istext=False)


def top(extra, nl=CRLF, vid="x"):
    """The top-level header block (without its blank line)."""
    lines = [
        b"From: Mallory <mallory@client.test>",
        b"To: victim@sink.test",
        b"Subject: evasion " + vid.encode(),
        b"Date: Mon, 01 Jan 2024 00:00:00 +0000",
        b"Message-ID: <" + vid.replace("/", ".").encode() + b"@client.test>",
        b"MIME-Version: 1.0",
    ] + extra
    return b"".join(l + nl for l in lines)


def mixed(vid, parts, boundary=b"BOUNDARY", nl=CRLF, close=True, preamble=b"This is a multi-part message in MIME format."):
    """A multipart/mixed message: each part is (header lines, body bytes)."""
    out = top([b'Content-Type: multipart/mixed; boundary="' + boundary + b'"'], nl, vid) + nl
    out += preamble + nl if preamble else b""
    out += multipart_body(parts, boundary, nl, close)
    return out


def multipart_body(parts, boundary, nl=CRLF, close=True):
    out = b""
    for hdrs, body in parts:
        out += b"--" + boundary + nl + b"".join(h + nl for h in hdrs) + nl + body
        if not body.endswith(b"\n"):
            out += nl
    if close:
        out += b"--" + boundary + b"--" + nl
    return out


TEXT = ([b"Content-Type: text/plain; charset=us-ascii"], b"Please see the attachments." + CRLF)


def pe_part(name=b"setup.exe", data=PE, extra=()):
    return (
        [
            b"Content-Type: application/octet-stream; name=\"" + name + b"\"",
            b"Content-Transfer-Encoding: base64",
            b"Content-Disposition: attachment; filename=\"" + name + b"\"",
        ]
        + list(extra),
        b64(data),
    )


def pdf_part(name=b"report.pdf", cte=b"8bit", body=None):
    return (
        [
            b"Content-Type: application/pdf; name=\"" + name + b"\"",
            b"Content-Transfer-Encoding: " + cte,
            b"Content-Disposition: attachment; filename=\"" + name + b"\"",
        ],
        PDF if body is None else body,
    )


def lf(b):
    return b.replace(CRLF, b"\n")


# ---- the table ----

VARIANTS = []


def variant(vid, description, message, expect=(), oracle="compat32", parts=None, notes="", eod=b".\r\n", text=False):
    """`oracle`: how the expected parts are obtained: "compat32" (Python's most lenient policy),
    or a name saying why not, with `parts` [(bytes, filename)] given here and `notes` explaining.
    `text`: also expect text leaves (for variants whose point is a text part)."""
    VARIANTS.append(
        {
            "id": vid,
            "family": vid.split("/")[0],
            "description": description,
            "message": message,
            "expect_anomalies": sorted(expect),
            "oracle": oracle,
            "parts": parts,
            "notes": notes,
            "eod": eod,
            "text": text,
        }
    )


def build():
    V = variant

    # -- structure --
    V("structure/baseline", "Well-formed multipart/mixed: text, base64 PE, 8bit PDF (the reference).",
      mixed("structure/baseline", [TEXT, pe_part(), pdf_part()]))
    V("structure/single_part_attachment", "The message itself is a base64 attachment (no multipart).",
      top([b"Content-Type: application/octet-stream; name=\"setup.exe\"", b"Content-Transfer-Encoding: base64",
           b"Content-Disposition: attachment; filename=\"setup.exe\""], vid="structure/single_part_attachment")
      + CRLF + b64(PE))
    alt = multipart_body([([b"Content-Type: text/plain"], b"plain" + CRLF),
                          ([b"Content-Type: text/html"], b"<p>html</p>" + CRLF)], b"ALT")
    V("structure/nested_alternative", "multipart/mixed holding multipart/alternative, then a base64 PE.",
      mixed("structure/nested_alternative", [([b"Content-Type: multipart/alternative; boundary=ALT"], alt), pe_part()]))
    inner = multipart_body([pe_part()], b"L7")
    for i in range(6, -1, -1):
        inner = multipart_body([([b"Content-Type: multipart/mixed; boundary=L%d" % (i + 1)], inner)], b"L%d" % i)
    V("structure/deep_nesting", "Eight levels of nested multipart/mixed with the PE at the bottom.",
      top([b"Content-Type: multipart/mixed; boundary=L0"], vid="structure/deep_nesting") + CRLF + inner)
    fwd = (b"From: a@b.test\r\nSubject: inner\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=IN\r\n\r\n"
           + multipart_body([TEXT, pe_part(b"inner.exe")], b"IN"))
    V("structure/rfc822_attached", "A forwarded message (message/rfc822) carrying a base64 PE.",
      mixed("structure/rfc822_attached", [TEXT, ([b"Content-Type: message/rfc822",
                                                  b"Content-Disposition: attachment; filename=\"fwd.eml\""], fwd)]))
    V("structure/rfc822_no_headers", "An attached message/rfc822 whose message has no header block: it starts with the PDF.",
      mixed("structure/rfc822_no_headers", [TEXT, ([b"Content-Type: message/rfc822"], PDF)]),
      expect=["part_without_headers"])
    V("structure/rfc822_empty_headers", "An attached message/rfc822 whose header block is empty (a blank line, then the PDF).",
      mixed("structure/rfc822_empty_headers", [TEXT, ([b"Content-Type: message/rfc822"], CRLF + PDF)]))
    fwd_open = (b"Subject: inner\r\nContent-Type: multipart/mixed; boundary=IN\r\n\r\n"
                + multipart_body([pe_part(b"inner.exe")], b"IN", close=False))
    V("structure/rfc822_inner_close_missing", "An attached message whose multipart never closes; the outer boundary follows.",
      mixed("structure/rfc822_inner_close_missing", [([b"Content-Type: message/rfc822"], fwd_open), pdf_part()]),
      expect=["boundary_close_missing"])
    V("structure/close_missing", "No close delimiter: the last part (base64 PE) runs to the end of the message.",
      mixed("structure/close_missing", [TEXT, pe_part()], close=False), expect=["boundary_close_missing"])
    V("structure/close_missing_8bit", "No close delimiter after an 8bit PDF: its last line break is the boundary's.",
      mixed("structure/close_missing_8bit", [TEXT, pdf_part()], close=False), expect=["boundary_close_missing"])
    nested_open = multipart_body([pe_part()], b"INNER", close=False)
    V("structure/close_missing_nested", "An inner multipart without its close delimiter, ended by the outer boundary.",
      mixed("structure/close_missing_nested", [([b"Content-Type: multipart/mixed; boundary=INNER"], nested_open), pdf_part()]),
      expect=["boundary_close_missing"])
    digest_msg = lambda n: (b"Subject: digest %d\r\nContent-Type: multipart/mixed; boundary=D%d\r\n\r\n" % (n, n)
                            + multipart_body([pe_part(b"d%d.exe" % n, pe_like(20 + n, 1500))], b"D%d" % n))
    V("structure/digest", "multipart/digest: parts without Content-Type are messages, each with a PE.",
      top([b"Content-Type: multipart/digest; boundary=DIG"], vid="structure/digest") + CRLF
      + multipart_body([([], digest_msg(1)), ([], digest_msg(2))], b"DIG"))
    V("structure/part_without_headers", "A part that starts with content (the PDF) instead of a header block.",
      mixed("structure/part_without_headers", [pe_part()]).replace(b"--BOUNDARY--", b"--BOUNDARY\r\n" + PDF + b"--BOUNDARY--"),
      expect=["part_without_headers"], text=True)
    V("structure/boundary_not_found", "The declared boundary never occurs (the parts use another one).",
      top([b"Content-Type: multipart/mixed; boundary=DECLARED"], vid="structure/boundary_not_found") + CRLF
      + multipart_body([TEXT, pe_part()], b"USED"), expect=["boundary_not_found"])
    V("structure/boundary_missing", "multipart/mixed without a boundary parameter.",
      top([b"Content-Type: multipart/mixed"], vid="structure/boundary_missing") + CRLF
      + multipart_body([TEXT, pe_part()], b"USED"), expect=["boundary_missing"])
    reused = multipart_body([pe_part(b"inner.exe")], b"BOUNDARY")
    V("structure/boundary_reused", "A nested multipart reuses the outer boundary; another part follows.",
      mixed("structure/boundary_reused", [([b"Content-Type: multipart/mixed; boundary=BOUNDARY"], reused), pdf_part()]),
      expect=["boundary_reused"],
      notes="Python gives the nested multipart no parts (the outer boundary claims every delimiter) and "
            "then reads the nested parts as the outer's, so it never reaches report.pdf (in its epilogue). "
            "The sensor takes delimiters as the innermost multipart's, and carves inner.exe and report.pdf: "
            "a superset of Python's parts.")
    V("structure/preamble_epilogue", "Preamble and epilogue with text, dashes and a fake part.",
      mixed("structure/preamble_epilogue", [pe_part()], preamble=b"-- preamble --\r\n--NOTBOUNDARY\r\nContent-Type: application/x\r\n")
      + b"epilogue\r\n--BOUNDARY-like line\r\n")
    V("structure/empty_parts", "Empty parts (no headers, no body) before the attachment.",
      mixed("structure/empty_parts", [([], b""), ([], b""), pe_part()]).replace(b"--BOUNDARY\r\n\r\n\r\n", b"--BOUNDARY\r\n\r\n"))

    # -- boundary --
    junk_pdf = PDF.replace(b"endstream\r\n", b"endstream\r\n--BOUNDARY this is not a delimiter\r\n")
    V("boundary/trailing_junk_8bit", "A line '--BOUNDARY junk' inside an 8bit attachment (Suricata/Wireshark end the part there).",
      mixed("boundary/trailing_junk_8bit", [TEXT, pdf_part(body=junk_pdf), pe_part()]), expect=["boundary_trailing_junk"])
    enc = b64(PE)
    junk_b64 = enc[: 78 * 10] + b"--BOUNDARYxyzw\r\n" + enc[78 * 10 :]
    V("boundary/trailing_junk_base64", "A line '--BOUNDARYxyzw' between base64 lines of the PE (its letters decode as data).",
      mixed("boundary/trailing_junk_base64", [TEXT, (pe_part()[0], junk_b64)]),
      expect=["boundary_trailing_junk", "base64_invalid_chars"])
    V("boundary/prefix_longer", "boundary=ab and a content line '--abc' (a longer token with the boundary as prefix).",
      mixed("boundary/prefix_longer", [pdf_part(body=PDF.replace(b"endobj\r\ntrailer", b"endobj\r\n--abc\r\ntrailer")), pe_part()], boundary=b"ab"),
      expect=["boundary_trailing_junk"])
    V("boundary/close_trailing_junk", "The close delimiter carries junk ('--BOUNDARY--junk'): not a close delimiter.",
      mixed("boundary/close_trailing_junk", [TEXT, pdf_part()], close=False) + b"--BOUNDARY--junk\r\nepilogue\r\n",
      expect=["boundary_trailing_junk", "boundary_close_missing"])
    V("boundary/transport_padding", "Delimiters followed by spaces and tabs (RFC 2046 transport padding).",
      mixed("boundary/transport_padding", [TEXT, pe_part(), pdf_part()]).replace(b"--BOUNDARY\r\n", b"--BOUNDARY \t \r\n"))
    V("boundary/case_mismatch", "A content line that is the boundary in another case ('--boundary').",
      mixed("boundary/case_mismatch", [pdf_part(body=PDF.replace(b"trailer\r\n", b"trailer\r\n--boundary\r\n")), pe_part()]))
    long_b = b"L" * 200
    V("boundary/long_boundary", "A 200-character boundary (RFC 2046 allows 70).",
      mixed("boundary/long_boundary", [TEXT, pe_part()], boundary=long_b))
    V("boundary/quoted_specials", "A quoted boundary with spaces, '=', ';' and '?'.",
      mixed("boundary/quoted_specials", [TEXT, pe_part()], boundary=b"a =b;c ?d"))
    V("boundary/unquoted_equals", "An unquoted boundary with '=' ('----=_Part_0_1').",
      mixed("boundary/unquoted_equals", [TEXT, pe_part()], boundary=b"----=_Part_0_1").replace(
          b'boundary="----=_Part_0_1"', b"boundary=----=_Part_0_1"))
    V("boundary/not_at_line_start", "The close delimiter glued to content ('...%%EOF--BOUNDARY--'): not a delimiter.",
      mixed("boundary/not_at_line_start", [pe_part(), pdf_part(body=PDF[:-2])], close=False).rstrip(CRLF) + b"--BOUNDARY--\r\n",
      expect=["boundary_close_missing"])
    V("boundary/leading_space", "A content line ' --BOUNDARY' (leading space): not a delimiter.",
      mixed("boundary/leading_space", [pdf_part(body=PDF.replace(b"trailer\r\n", b"trailer\r\n --BOUNDARY\r\n")), pe_part()]))

    # -- encoding --
    ws = b"".join(l[:30] + b" \t" + l[30:] + b" " + CRLF for l in b64(PE).split(CRLF) if l)
    V("encoding/base64_whitespace", "Spaces and tabs inside and after the base64 lines.",
      mixed("encoding/base64_whitespace", [TEXT, (pe_part()[0], ws)]), expect=["base64_invalid_chars"])
    junk = b"".join(l[:10] + b"!" + l[10:40] + b"*." + l[40:] + CRLF for l in b64(PE).split(CRLF) if l)
    V("encoding/base64_junk_chars", "Characters outside the base64 alphabet ('!', '*', '.') in every line.",
      mixed("encoding/base64_junk_chars", [TEXT, (pe_part()[0], junk)]), expect=["base64_invalid_chars"])
    V("encoding/base64_missing_padding", "base64 without its final '==' padding.",
      mixed("encoding/base64_missing_padding", [TEXT, (pe_part()[0], b64(PE).replace(b"=", b""))]),
      expect=["base64_padding_missing"])
    V("encoding/base64_one_line", "The whole base64 body on one line (no line breaks).",
      mixed("encoding/base64_one_line", [TEXT, (pe_part()[0], b64(PE, width=1 << 20))]))
    V("encoding/base64_short_lines", "base64 in 13-character lines (quanta split across lines).",
      mixed("encoding/base64_short_lines", [TEXT, (pe_part()[0], b64(PE, width=13))]))
    half = 1500
    V("encoding/base64_data_after_padding", "Two base64 encodings back to back: padding in the middle of the body.",
      mixed("encoding/base64_data_after_padding", [TEXT, (pe_part()[0], b64(PE[:half - 1]) + b64(PE[half - 1:]))]),
      expect=["base64_data_after_padding"], oracle="concatenated",
      parts=[(PE, "setup.exe")],
      notes="Python (both policies) stops decoding at the first complete padding once the text is not "
            "strictly valid, and yields only the first 1499 bytes. Decoders that go on (GNU base64 -di, and "
            "the sensor) yield both encodings concatenated, the whole PE: the more permissive reading.")
    V("encoding/base64_lone_sextet", "One base64 character too many at the end (length 1 more than a multiple of 4).",
      mixed("encoding/base64_lone_sextet", [TEXT, (pe_part(data=PE3)[0], b64(PE3).rstrip(CRLF) + b"Q\r\n")]),
      expect=["base64_padding_missing"], oracle="complete_quanta", parts=[(PE3, "setup.exe")],
      notes="Python cannot decode a length of 4n+1 and returns the base64 text itself "
            "(InvalidBase64LengthDefect). The sensor decodes every complete quantum and drops the lone "
            "character, which carries less than a byte: the PE, as a decoder that ignores the stray character sees it.")
    V("encoding/qp_invalid_escape", "Quoted-printable with malformed escapes ('=ZZ', '=4 ', '=\\x80').",
      mixed("encoding/qp_invalid_escape", [TEXT, pdf_part(cte=b"quoted-printable", body=qp(PDF).replace(b"endobj", b"end=ZZobj=4 x=\x80", 1))]),
      expect=["qp_invalid_escape"])
    V("encoding/qp_lowercase_hex", "Quoted-printable escapes in lowercase hex ('=3d', '=0d=0a').",
      mixed("encoding/qp_lowercase_hex", [TEXT, (pe_part()[0][:1] + [b"Content-Transfer-Encoding: quoted-printable",
                                                                         pe_part()[0][2]], re.sub(rb"=([0-9A-F]{2})", lambda m: b"=" + m.group(1).lower(), qp(PE[:1500])))]))
    qp_ws = b"".join(l + b"  \t" + CRLF if not l.endswith(b"=") else l + b" \t" + CRLF for l in qp(PDF).split(CRLF) if l)
    V("encoding/qp_transport_padding", "Quoted-printable lines with trailing spaces, and '= ' soft breaks (RFC 2045 padding).",
      mixed("encoding/qp_transport_padding", [TEXT, pdf_part(cte=b"quoted-printable", body=qp_ws)]),
      oracle="rfc2045_qp", parts=[(PDF, "report.pdf")],
      notes="RFC 2045 6.7 (rule 3) says trailing whitespace on a quoted-printable line was added in "
            "transport and must be deleted, and '=' followed by whitespace is a soft break. Python's "
            "binascii.a2b_qp keeps the spaces and the '= ' literally. The sensor follows the RFC; the "
            "expected part is the PDF as encoded.")
    V("encoding/qp_binary", "The PE as quoted-printable (escapes everywhere, encoded CR and LF).",
      mixed("encoding/qp_binary", [TEXT, (pe_part()[0][:1] + [b"Content-Transfer-Encoding: quoted-printable",
                                                                pe_part()[0][2]], qp(PE))]))
    p = pe_part()
    V("encoding/cte_duplicate_base64_first", "Content-Transfer-Encoding: base64, then again as 7bit: the first counts.",
      mixed("encoding/cte_duplicate_base64_first", [TEXT, (p[0] + [b"Content-Transfer-Encoding: 7bit"], p[1])]),
      expect=["cte_duplicate"])
    V("encoding/cte_duplicate_7bit_first", "Content-Transfer-Encoding: 7bit, then base64: the first counts (the text is the file).",
      mixed("encoding/cte_duplicate_7bit_first", [TEXT, ([p[0][0], b"Content-Transfer-Encoding: 7bit", p[0][1], p[0][2]], p[1])]),
      expect=["cte_duplicate"])
    V("encoding/cte_unknown", "An unknown Content-Transfer-Encoding (x-custom): the bytes are the file.",
      mixed("encoding/cte_unknown", [TEXT, ([p[0][0], b"Content-Transfer-Encoding: x-custom", p[0][2]], p[1])]),
      expect=["cte_unknown"])
    V("encoding/cte_uppercase", "Content-Transfer-Encoding: BASE64 (case does not matter).",
      mixed("encoding/cte_uppercase", [TEXT, ([p[0][0], b"Content-Transfer-Encoding:   BASE64", p[0][2]], p[1])]))
    V("encoding/cte_quoted", "Content-Transfer-Encoding: \"base64\" (quoted): not a known encoding.",
      mixed("encoding/cte_quoted", [TEXT, ([p[0][0], b"Content-Transfer-Encoding: \"base64\"", p[0][2]], p[1])]),
      expect=["cte_unknown"],
      notes="Python (both policies) does not decode a quoted encoding name; the sensor agrees and keeps the "
            "text, flagged cte_unknown.")
    V("encoding/cte_trailing_space", "Content-Transfer-Encoding: 'base64 ' (trailing whitespace).",
      mixed("encoding/cte_trailing_space", [TEXT, ([p[0][0], b"Content-Transfer-Encoding: base64 \t", p[0][2]], p[1])]),
      oracle="decoded", parts=[(PE, "setup.exe")],
      notes="Python compat32 compares the raw value and does not strip the trailing whitespace, so it keeps "
            "the base64 text. Trailing whitespace is not part of a structured field value (RFC 5322), and "
            "the sensor decodes: the PE.")
    uu = b"begin 644 setup.exe\r\n" + b"".join(binascii.b2a_uu(PE[i:i + 45]).replace(b"\n", CRLF) for i in range(0, len(PE), 45)) + b"`\r\nend\r\n"
    V("encoding/uuencode", "Content-Transfer-Encoding: x-uuencode (not MIME, but decoded by mail clients).",
      mixed("encoding/uuencode", [TEXT, ([p[0][0], b"Content-Transfer-Encoding: x-uuencode", p[0][2]], uu)]),
      expect=["cte_uuencode"])
    V("encoding/binary", "Content-Transfer-Encoding: binary with the raw PE bytes (NUL, bare CR and LF).",
      mixed("encoding/binary", [TEXT, ([p[0][0], b"Content-Transfer-Encoding: binary", p[0][2]], PE2)]))

    # -- headers --
    V("headers/no_colon_in_part", "A part header line without a colon between Content-Type and the encoding/disposition.",
      mixed("headers/no_colon_in_part", [TEXT, ([p[0][0], b"X-Junk this line has no colon", p[0][1], p[0][2]], p[1])]),
      expect=["header_without_colon"], oracle="mail_client", parts=[(PE, "setup.exe")],
      notes="Python ends a header block at the first line that is not a field, so the rest (the encoding, "
            "the disposition, the blank line and the base64) becomes the body of an application/octet-stream "
            "part. Mail clients (Thunderbird's libmime) read a part's headers up to the blank line and skip "
            "lines without a colon: they show setup.exe. The sensor logs that (the more permissive reading).")
    V("headers/no_colon_at_top", "A top-level header line without a colon before Content-Type.",
      top([b"X-Junk no colon here", b'Content-Type: multipart/mixed; boundary="BOUNDARY"'], vid="headers/no_colon_at_top")
      + CRLF + multipart_body([TEXT, pe_part()], b"BOUNDARY"),
      expect=["header_without_colon"], oracle="mail_client", parts=[(PE, "setup.exe")],
      notes="Python ends the message headers at the colon-less line: the message becomes text/plain and "
            "shows no attachment. Mail clients read the headers to the blank line and show setup.exe; the "
            "sensor logs it.")
    V("headers/space_before_colon_in_part", "'Content-Disposition : attachment' (space before the colon) in a part.",
      mixed("headers/space_before_colon_in_part", [TEXT, ([p[0][0], p[0][1], b"Content-Disposition : attachment; filename=\"setup.exe\""], p[1])]),
      expect=["space_before_colon"], oracle="mail_client", parts=[(PE, "setup.exe")],
      notes="Python's header pattern allows no space before the colon and ends the block there: the part "
            "keeps its encoding but its body starts with the disposition line, so the decoded bytes are junk. "
            "Thunderbird's libmime backs up over whitespace before the colon when it looks a field up: "
            "setup.exe. The sensor logs that.")
    V("headers/space_before_colon_at_top", "'Content-Type : multipart/mixed' (space before the colon) at the top.",
      top([b'Content-Type : multipart/mixed; boundary="BOUNDARY"'], vid="headers/space_before_colon_at_top")
      + CRLF + multipart_body([TEXT, pe_part()], b"BOUNDARY"),
      expect=["space_before_colon"], oracle="mail_client", parts=[(PE, "setup.exe")],
      notes="Python ends the message headers at that line (text/plain, no attachment); mail clients read it "
            "as Content-Type and show setup.exe. The sensor logs that.")
    V("headers/folded", "Content-Type, boundary and filename folded over several lines (legal RFC 5322 folding).",
      top([b"Content-Type: multipart/mixed;", b'\tboundary="BOUNDARY"'], vid="headers/folded") + CRLF
      + multipart_body([TEXT, ([b"Content-Type: application/octet-stream;", b' name="setup.exe"', b"Content-Transfer-Encoding:",
                                b"  base64", b"Content-Disposition: attachment;", b'\tfilename="setup.exe"'], b64(PE))], b"BOUNDARY"),
      oracle="mail_client", parts=[(PE, "setup.exe")],
      notes="Python (both policies) keeps the folded Content-Transfer-Encoding value with its line break "
            "and leading spaces, does not recognise 'base64', and keeps the base64 text. Unfolding (RFC 5322 "
            "2.2.3) gives 'base64'; mail clients and the sensor decode: the PE.")
    V("headers/content_type_duplicate", "Two Content-Type headers in a part (octet-stream, then text/plain): the first counts.",
      mixed("headers/content_type_duplicate", [TEXT, ([p[0][0], b"Content-Type: text/plain", p[0][1]], p[1])]),
      expect=["content_type_duplicate"])
    V("headers/disposition_duplicate", "Two Content-Disposition headers (attachment setup.exe, then inline notes.txt): the first counts.",
      mixed("headers/disposition_duplicate", [TEXT, (p[0] + [b"Content-Disposition: inline; filename=notes.txt"], p[1])]),
      expect=["disposition_duplicate"])
    V("headers/long_line", "An 8000-byte header line in the part.",
      mixed("headers/long_line", [TEXT, ([b"X-Pad: " + b"x" * 8000] + p[0], p[1])]))
    V("headers/continuation_first", "A part header block that starts with a continuation line.",
      mixed("headers/continuation_first", [TEXT, ([b"  stray continuation"] + p[0], p[1])]))
    V("headers/mbox_from_line", "An mbox 'From ' line before the headers.",
      b"From mallory@client.test Mon Jan  1 00:00:00 2024\r\n" + mixed("headers/mbox_from_line", [TEXT, pe_part()]))
    V("headers/param_spacing", "Odd spacing in Content-Type parameters ('multipart/mixed ;boundary = \"BOUNDARY\"').",
      top([b'Content-Type:multipart/mixed ;boundary = "BOUNDARY"'], vid="headers/param_spacing") + CRLF
      + multipart_body([TEXT, pe_part()], b"BOUNDARY"))
    V("headers/type_without_subtype", "A part with 'Content-Type: application' (no subtype) and an attachment disposition.",
      mixed("headers/type_without_subtype", [TEXT, ([b"Content-Type: application", p[0][1], p[0][2]], p[1])]))

    # -- line ends --
    V("lineend/bare_lf_everywhere", "The whole message with bare LF line ends (headers, delimiters, base64).",
      lf(mixed("lineend/bare_lf_everywhere", [TEXT, pe_part(), pdf_part()])), expect=["bare_lf"])
    msg = mixed("lineend/bare_lf_headers", [TEXT, pe_part()])
    head, _, body = msg.partition(b"\r\n\r\n")
    V("lineend/bare_lf_headers", "Bare LF in the top-level headers only.", lf(head) + b"\n\n" + body, expect=["bare_lf"])
    msg = mixed("lineend/bare_lf_delimiters", [TEXT, pe_part(), pdf_part()])
    V("lineend/bare_lf_delimiters", "Delimiter lines (and the line breaks before them) are bare LF; the rest is CRLF.",
      msg.replace(b"\r\n--BOUNDARY\r\n", b"\n--BOUNDARY\n").replace(b"\r\n--BOUNDARY--\r\n", b"\n--BOUNDARY--\n"),
      expect=["bare_lf"])
    V("lineend/bare_lf_base64", "base64 lines end in bare LF (structure is CRLF).",
      mixed("lineend/bare_lf_base64", [TEXT, (pe_part()[0], b64(PE, nl=b"\n") + CRLF)]))
    qpl = qp(PDF).replace(b"=\r\n", b"=\n")
    V("lineend/bare_lf_qp_soft_breaks", "Quoted-printable soft breaks as '=' + bare LF.",
      mixed("lineend/bare_lf_qp_soft_breaks", [TEXT, pdf_part(cte=b"quoted-printable", body=qp(PDF * 3).replace(b"=\r\n", b"=\n"))]))
    msg = mixed("lineend/bare_cr_delimiters", [TEXT, pe_part(), pdf_part()])
    V("lineend/bare_cr_delimiters", "Delimiter lines ended and preceded by a bare CR (Python and Thunderbird split lines at CR).",
      msg.replace(b"\r\n--BOUNDARY\r\n", b"\r--BOUNDARY\r").replace(b"\r\n--BOUNDARY--\r\n", b"\r--BOUNDARY--\r\n"),
      expect=["bare_cr"])
    V("lineend/bare_cr_headers", "A part's header lines separated by bare CR.",
      mixed("lineend/bare_cr_headers", [TEXT, (p[0], p[1])]).replace(
          b'setup.exe"\r\nContent-Transfer-Encoding: base64\r\n', b'setup.exe"\rContent-Transfer-Encoding: base64\r'),
      expect=["bare_cr"])
    V("lineend/cr_cr_lf", "A part header line ended by CR CR LF: the header block ends there (CR, then an empty CRLF line).",
      mixed("lineend/cr_cr_lf", [TEXT, ([p[0][0] + b"\r", p[0][1], p[0][2]], PDF)]),
      expect=["bare_cr"], text=True,
      notes="The part's Content-Type line ends in a bare CR and the CRLF after it is the blank line: its "
            "encoding and disposition lines are body text.")
    V("lineend/bare_lf_end_of_data", "A CRLF single-part attachment whose end-of-data line is '.' + bare LF (the SMTP smuggling shape).",
      top([b"Content-Type: application/octet-stream; name=\"setup.exe\"", b"Content-Transfer-Encoding: base64",
           b"Content-Disposition: attachment; filename=\"setup.exe\""], vid="lineend/bare_lf_end_of_data") + CRLF + b64(PE),
      eod=b".\n", expect=["bare_lf"],
      notes="The sink, like many servers, ends the message at '.' + LF. The sensor flags the file still open "
            "when it sees that line (here the body); in a multipart message closed before it, every file "
            "was already logged and the bend shows in no record.")
    V("lineend/mixed", "Line ends alternate between CRLF and bare LF, line by line.",
      b"".join(l + (b"\n" if i % 2 else b"\r\n") for i, l in
               enumerate(mixed("lineend/mixed", [TEXT, pe_part(), pdf_part(body=lf(PDF))]).split(b"\r\n")[:-1])),
      expect=["bare_lf"])

    # -- parameters --
    def cd_part(cd, data=PE, ct=b"Content-Type: application/octet-stream"):
        return ([ct, b"Content-Transfer-Encoding: base64", cd], b64(data))
    V("parameters/rfc2231_out_of_order", "RFC 2231 filename continuations given out of order (*2, *0, *1).",
      mixed("parameters/rfc2231_out_of_order", [TEXT, cd_part(b"Content-Disposition: attachment; filename*2=\".exe\"; filename*0=\"inv\"; filename*1=\"oice\"")]),
      expect=["rfc2231_out_of_order"])
    V("parameters/rfc2231_section_missing", "RFC 2231 continuations with section 1 missing (*0, *2).",
      mixed("parameters/rfc2231_section_missing", [TEXT, cd_part(b"Content-Disposition: attachment; filename*0=\"inv\"; filename*2=\"oice.exe\"")]),
      expect=["rfc2231_section_missing"],
      notes="Python compat32 joins the sections there ('inv' + 'oice.exe'); email.policy.default stops at "
            "the gap ('inv'). The sensor joins what is there, as compat32.")
    V("parameters/rfc2231_charset", "RFC 2231 filename with charset and percent-encoding, over two sections.",
      mixed("parameters/rfc2231_charset", [TEXT, cd_part(b"Content-Disposition: attachment;\r\n filename*0*=utf-8''%E2%82%AC%20rates;\r\n filename*1*=%2Eexe")]))
    V("parameters/rfc2231_and_plain", "Both filename=\"report.pdf\" and filename*=utf-8''report.exe.",
      mixed("parameters/rfc2231_and_plain", [TEXT, cd_part(b"Content-Disposition: attachment; filename=\"report.pdf\"; filename*=utf-8''report.exe")]),
      oracle="rfc2231_form", parts=[(PE, "report.exe")],
      notes="Python (both policies) returns the plain filename when it comes first; the sensor prefers the "
            "RFC 2231 form (the one that can carry any name, and the one RFC 6266 says wins in HTTP): report.exe.")
    V("parameters/filename_rfc2047", "filename=\"=?UTF-8?B?...?=\" (an RFC 2047 word inside a parameter).",
      mixed("parameters/filename_rfc2047", [TEXT, cd_part(b"Content-Disposition: attachment; filename=\"=?UTF-8?B?w7xiZXIuZXhl?=\"")]),
      oracle="default_policy", parts=[(PE, "über.exe")],
      notes="compat32 leaves the encoded-word as it is; email.policy.default and mail clients decode it to "
            "über.exe, as the sensor does.")
    V("parameters/filename_duplicate", "filename given twice (notes.txt, then setup.exe): the first counts.",
      mixed("parameters/filename_duplicate", [TEXT, cd_part(b"Content-Disposition: attachment; filename=notes.txt; filename=setup.exe")]),
      expect=["param_duplicate"])
    V("parameters/boundary_duplicate", "boundary given twice; the parts use the first.",
      top([b"Content-Type: multipart/mixed; boundary=FIRST; boundary=SECOND"], vid="parameters/boundary_duplicate") + CRLF
      + multipart_body([TEXT, pe_part()], b"FIRST"), expect=["param_duplicate"])
    V("parameters/name_only", "Only Content-Type name= (no Content-Disposition).",
      mixed("parameters/name_only", [TEXT, ([b"Content-Type: application/octet-stream; name=setup.exe", b"Content-Transfer-Encoding: base64"], b64(PE))]))
    V("parameters/filename_and_name_differ", "Content-Disposition filename and Content-Type name differ: filename wins.",
      mixed("parameters/filename_and_name_differ", [TEXT, cd_part(b"Content-Disposition: attachment; filename=setup.exe",
                                                                   ct=b"Content-Type: application/pdf; name=report.pdf")]))
    V("parameters/filename_unquoted_spaces", "An unquoted filename with spaces.",
      mixed("parameters/filename_unquoted_spaces", [TEXT, cd_part(b"Content-Disposition: attachment; filename=my setup file.exe")]))
    V("parameters/filename_path", "A quoted filename with a Windows path and escaped backslashes.",
      mixed("parameters/filename_path", [TEXT, cd_part(b'Content-Disposition: attachment; filename="C:\\\\Users\\\\x\\\\setup.exe"')]))
    V("parameters/rfc2231_mixed_sections", "RFC 2231 sections, the first percent-encoded, the second quoted.",
      mixed("parameters/rfc2231_mixed_sections", [TEXT, cd_part(b"Content-Disposition: attachment; filename*0*=utf-8''%C3%A9t%C3%A9; filename*1=\" 2024.exe\"")]))
    V("parameters/case", "Parameter and disposition names in upper case.",
      mixed("parameters/case", [TEXT, cd_part(b"Content-Disposition: ATTACHMENT; FILENAME=\"setup.exe\"")]))


build()
BY_ID = {v["id"]: v for v in VARIANTS}


# ---- the oracle ----


def leaves(msg, pol_name, include_text, in_message=False):
    """(payload, filename) of the leaf parts the files log must show, in order."""
    out = []
    ctype = msg.get_content_type()
    if msg.is_multipart():
        inside = in_message or ctype == "message/rfc822"
        for sub in msg.get_payload():
            out += leaves(sub, pol_name, include_text, inside)
        return out
    payload = msg.get_payload(decode=True) or b""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogateescape")
    disp = (msg.get_content_disposition() or "") if pol_name == "default" else (msg.get("content-disposition", "") or "")
    disp = str(disp).split(";")[0].strip().lower()
    filename = msg.get_filename()
    wanted = (
        disp == "attachment"
        or filename is not None
        or msg.get_content_maintype() != "text"
        or in_message
        or include_text
    )
    if wanted and payload:
        out.append((payload, None if filename is None else str(filename)))
    return out


def part_dict(payload, filename):
    return {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload), "filename": filename}


def oracle_parts(stored, include_text):
    got = {}
    for name, pol in (("compat32", email.policy.compat32), ("default", email.policy.default)):
        msg = email.message_from_bytes(stored, policy=pol)
        got[name] = [part_dict(p, f) for p, f in leaves(msg, name, include_text)]
    return got


def describe(parts):
    return ", ".join("%s (%d B, %s)" % (p["sha256"][:12], p["size"], p["filename"]) for p in parts) or "no parts"


def manifest(stored_dir, out_path):
    entries = []
    for v in sorted(VARIANTS, key=lambda v: v["id"]):
        path = os.path.join(stored_dir, v["id"] + ".eml")
        with open(path, "rb") as f:
            stored = f.read()
        if stored != v["message"] + (b"" if v["message"].endswith(b"\n") else CRLF):
            sys.exit("%s: the sink stored other bytes than were meant to be sent" % v["id"])
        got = oracle_parts(stored, v["text"])
        notes = [v["notes"]] if v["notes"] else []
        if v["oracle"] == "compat32":
            parts = got["compat32"]
        else:
            parts = [part_dict(p, f) for p, f in v["parts"]]
            notes.append("compat32 gives: " + describe(got["compat32"]) + ".")
        if got["default"] != got["compat32"]:
            notes.append("email.policy.default gives: " + describe(got["default"]) + ".")
        if not parts:
            sys.exit("%s: no expected parts" % v["id"])
        entries.append(
            {
                "id": v["id"],
                "family": v["family"],
                "description": v["description"],
                "capture": "captures/%s.pcap" % v["id"],
                "oracle": v["oracle"],
                "expected_parts": parts,
                "expect_anomalies": v["expect_anomalies"],
                "notes": " ".join(notes),
            }
        )
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"variants": entries}, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")


# ---- the client ----


def dot_stuff(data):
    """SMTP transparency (RFC 5321 4.5.2): a line starting with '.' gets another. Lines are what
    the sink (and every SMTP server) splits on: LF."""
    out = []
    for line in split_lf(data):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"".join(out)


def split_lf(data):
    lines, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        lines.append(data[start:end])
        start = end
    return lines


def send(addr, port, vid):
    v = BY_ID[vid]
    data = v["message"]
    if not data.endswith(b"\n"):
        data += CRLF
    s = socket.create_connection((addr, int(port)), timeout=20)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                sys.exit("%s: server closed" % vid)
            if line[3:4] != b"-":
                return line

    def cmd(c, want):
        s.sendall(c + CRLF)
        r = reply()
        if not r.startswith(want):
            sys.exit("%s: %r answered %r" % (vid, c, r))

    if not reply().startswith(b"220"):
        sys.exit("%s: no greeting" % vid)
    cmd(b"EHLO client.test", b"250")
    cmd(b"MAIL FROM:<mallory@client.test>", b"250")
    cmd(b"RCPT TO:<victim@sink.test>", b"250")
    cmd(b"DATA", b"354")
    # Raw bytes exactly as the variant has them: no line-end normalisation.
    s.sendall(dot_stuff(data) + v["eod"])
    if not reply().startswith(b"250"):
        sys.exit("%s: message refused" % vid)
    cmd(b"QUIT", b"221")
    s.close()


def main():
    if sys.argv[1] == "list":
        for vid in sorted(BY_ID):
            print(vid)
    elif sys.argv[1] == "write":
        for v in VARIANTS:
            path = os.path.join(sys.argv[2], v["id"] + ".eml")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(v["message"])
    elif sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "manifest":
        manifest(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
