#!/usr/bin/env python3
"""The HTTP evasion variant table: one raw, deliberately bent HTTP response per variant.

The ideas follow the publicly described "HTTP Evader" technique families (Steffen Ullrich); the
code here is written from those descriptions only. Every variant is a function of the payload
bytes returning the exact bytes the server puts on the wire (status line + headers + framed body).
What Chromium saves from such a response is the oracle the sensor is tested against, so a variant
only has to be *distinct* and *readable*: whether it is valid HTTP is the point of the exercise.

    python3 variants.py            # list ids, one line each, with the description
    python3 variants.py --count    # variants per family

Families: status (status line), header (header block), chunked (chunked framing), encoding
(Content-Encoding) and combo (combinations). Ids are `<family>/<name>`, name in [a-z0-9_].
"""

import gzip
import random
import re
import sys
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

FAMILIES = ("status", "header", "chunked", "encoding", "combo")

# ---------------------------------------------------------------------------------------------
# Payload: one deterministic file for every variant. It looks like a DOS/PE executable (what a
# sensor most wants to see) and mixes random, zero and low-entropy blocks so deflate produces
# real Huffman blocks (pure random data would only give stored blocks).

PAYLOAD_SEED = 0x5EC0DE
PAYLOAD_SIZE = 9000


def payload() -> bytes:
    rnd = random.Random(PAYLOAD_SEED)
    dos = bytearray(0x40)
    dos[0:2] = b"MZ"
    dos[2:14] = bytes([0x90, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0xFF, 0xFF])
    dos[0x18] = 0x40
    dos[0x3C:0x40] = (0x80).to_bytes(4, "little")  # e_lfanew
    stub = b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
    stub += b"This program cannot be run in DOS mode.\r\r\n$"
    out = bytes(dos) + stub.ljust(0x40, b"\0") + b"PE\0\0"
    alphabet = b"\x00\x01\x48\x89\x8b\xc3\xe8\xff"
    while len(out) < PAYLOAD_SIZE:
        kind = rnd.random()
        if kind < 0.6:
            block = rnd.randbytes(256)
        elif kind < 0.8:
            block = bytes(256)
        else:
            block = bytes(rnd.choice(alphabet) for _ in range(256))
        out += block
    return out[:PAYLOAD_SIZE]


# ---------------------------------------------------------------------------------------------
# The table.


@dataclass(frozen=True)
class Variant:
    id: str
    description: str
    # build(payload, download_headers) -> raw response bytes. download_headers are the
    # Content-Type/Content-Disposition lines for this id (see download_headers()).
    build: Callable[[bytes, list], bytes]
    # Optional: how the server splits the response into separate writes (each write becomes at
    # least one TCP segment), so framing elements cross segment boundaries. None: one write.
    writes: Optional[Callable[[bytes], list]] = None

    @property
    def family(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def filename(self) -> str:
        return self.id.replace("/", "-") + ".bin"

    def response(self, p: bytes) -> bytes:
        return self.build(p, download_headers(self.id))

    def pieces(self, p: bytes) -> list:
        raw = self.response(p)
        if self.writes is None:
            return [raw]
        pieces = self.writes(raw)
        assert b"".join(pieces) == raw, self.id
        return pieces


_TABLE: dict = {}


def add(vid: str, description: str, build, writes=None):
    assert re.fullmatch(r"(%s)/[a-z0-9_]+" % "|".join(FAMILIES), vid), vid
    assert vid not in _TABLE, "duplicate id " + vid
    assert "\n" not in description
    _TABLE[vid] = Variant(vid, description, build, writes)


def all_variants() -> list:
    return [_TABLE[k] for k in sorted(_TABLE)]


def by_id() -> dict:
    return dict(_TABLE)


# ---------------------------------------------------------------------------------------------
# Building blocks.

CRLF = b"\r\n"
OK = b"HTTP/1.1 200 OK"
OK10 = b"HTTP/1.0 200 OK"
CLOSE = b"Connection: close"
TE_CHUNKED = b"Transfer-Encoding: chunked"
# The chunk sizes of the standard chunked body; the rest of the payload is the last data chunk.
# 0xabc and 0x7ed have letters, so case variants of the size are visible.
CHUNKS = (0xABC, 0x7F, 0x1000)
# Appended after the payload where a variant is about Content-Length: a client that honours the
# length stops before it, one that reads to the close keeps it.
TAIL = b"\r\nJUNK-AFTER-CONTENT-LENGTH\r\n"


def show(b: bytes) -> str:
    """Bytes as a readable one-line literal for descriptions."""
    if len(b) > 48:
        return show(b[:20]) + "...(%d bytes)" % len(b)
    return repr(b)[2:-1]


def download_headers(vid: str) -> list:
    """Content-Type and Content-Disposition that make Chromium download rather than render."""
    name = vid.replace("/", "-") + ".bin"
    return [
        b"Content-Type: application/octet-stream",
        b'Content-Disposition: attachment; filename="%s"' % name.encode(),
    ]


def cl(body: bytes, n: Optional[int] = None) -> bytes:
    return b"Content-Length: %d" % (len(body) if n is None else n)


def msg(lines, body: bytes, eol: bytes = CRLF, end: Optional[bytes] = None) -> bytes:
    """Status line and header lines, each followed by `eol`, then `end` (one more `eol` by
    default: the blank line), then the body."""
    return b"".join(line + eol for line in lines) + (eol if end is None else end) + body


def plain(p, dl, status=OK, extra=(), framing="cl") -> bytes:
    """A regular download response; `extra` header lines go after the download headers."""
    lines = [status] + list(dl) + list(extra)
    if framing == "cl":
        lines.append(cl(p))
    lines.append(CLOSE)
    body = chunked(p) if framing == "chunked" else p
    if framing == "chunked":
        lines.insert(-1, TE_CHUNKED)
    return msg(lines, body)


def chunk_sizes(n: int, sizes=CHUNKS) -> list:
    out = []
    for s in sizes:
        if n <= 0:
            break
        out.append(min(s, n))
        n -= out[-1]
    if n > 0:
        out.append(n)
    return out


def default_size_line(i, n, count) -> bytes:
    return b"%x\r\n" % n


def chunked(p: bytes, sizes=CHUNKS, size_line=default_size_line, data_end=CRLF, last=b"0\r\n\r\n") -> bytes:
    """Chunked body. size_line(index, size, count) returns the whole size line with its line
    end; data_end follows each chunk's data; last is the terminating chunk (and trailers)."""
    out = []
    off = 0
    parts = chunk_sizes(len(p), sizes)
    for i, n in enumerate(parts):
        out.append(size_line(i, n, len(parts)))
        out.append(p[off : off + n])
        out.append(data_end(i, len(parts)) if callable(data_end) else data_end)
        off += n
    out.append(last)
    return b"".join(out)


def raw_deflate(data: bytes, level: int = 6, wbits: int = -15, flush_every: int = 0) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, wbits)
    if not flush_every:
        return c.compress(data) + c.flush()
    out = b""
    for i in range(0, len(data), flush_every):
        out += c.compress(data[i : i + flush_every]) + c.flush(zlib.Z_SYNC_FLUSH)
    return out + c.flush()


def zlib_stream(data: bytes, level: int = 6, wbits: int = 15) -> bytes:
    return zlib.compress(data, level) if wbits == 15 else raw_deflate(data, level, wbits)


FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT = 1, 2, 4, 8, 16


def gz(
    data: bytes,
    flags: int = 0,
    level: int = 6,
    mtime: int = 0,
    xfl: int = 0,
    os_byte: int = 255,
    magic: bytes = b"\x1f\x8b",
    method: int = 8,
    hcrc_ok: bool = True,
    crc: Optional[int] = None,
    isize: Optional[int] = None,
    trailer_len: int = 8,
    deflated: Optional[bytes] = None,
) -> bytes:
    """One gzip member (RFC 1952), with every header field and the trailer under control."""
    hdr = magic + bytes([method, flags]) + mtime.to_bytes(4, "little") + bytes([xfl, os_byte])
    if flags & FEXTRA:
        extra = b"XC" + (6).to_bytes(2, "little") + b"carver"
        hdr += len(extra).to_bytes(2, "little") + extra
    if flags & FNAME:
        hdr += b"payload.exe\0"
    if flags & FCOMMENT:
        hdr += b"a comment; not a filename\0"
    if flags & FHCRC:
        c16 = zlib.crc32(hdr) & 0xFFFF
        hdr += (c16 if hcrc_ok else c16 ^ 0x5A5A).to_bytes(2, "little")
    body = raw_deflate(data, level) if deflated is None else deflated
    trailer = (zlib.crc32(data) if crc is None else crc).to_bytes(4, "little")
    trailer += ((len(data) & 0xFFFFFFFF) if isize is None else isize).to_bytes(4, "little")
    return hdr + body + trailer[:trailer_len]


def gzip_std(data: bytes) -> bytes:
    # gzip.compress with mtime=0 is reproducible; a real server's output looks like this.
    return gzip.compress(data, 6, mtime=0)


def encoded(p, dl, ce_lines, body, status=OK, framing="cl", extra=()) -> bytes:
    """A download whose body is already encoded, with the given Content-Encoding line(s)."""
    lines = [status] + list(dl) + list(ce_lines) + list(extra)
    if framing == "cl":
        lines.append(cl(body))
    elif framing == "chunked":
        lines.append(TE_CHUNKED)
        body = chunked(body)
    lines.append(CLOSE)
    return msg(lines, body)


# ---------------------------------------------------------------------------------------------
# status: the status line.

VERSIONS = [
    ("1_0", b"HTTP/1.0"),
    ("1_1", b"HTTP/1.1"),
    ("1_01", b"HTTP/1.01"),
    ("1_10", b"HTTP/1.10"),
    ("1_2", b"HTTP/1.2"),
    ("1_9", b"HTTP/1.9"),
    ("2_0", b"HTTP/2.0"),
    ("2", b"HTTP/2"),
    ("3", b"HTTP/3"),
    ("0_9", b"HTTP/0.9"),
    ("9_9", b"HTTP/9.9"),
    ("01_1", b"HTTP/01.1"),
    ("001_001", b"HTTP/001.001"),
    ("1", b"HTTP/1"),
    ("1_1_1", b"HTTP/1.1.1"),
    ("1_x", b"HTTP/1.x"),
    ("1_comma_1", b"HTTP/1,1"),
    ("neg", b"HTTP/-1.1"),
    ("empty", b"HTTP/"),
    ("bare_http", b"HTTP"),
    ("no_slash", b"HTTP1.1"),
    ("space_after_slash", b"HTTP/ 1.1"),
    ("space_before_slash", b"HTTP /1.1"),
    ("lower", b"http/1.1"),
    ("mixed_case", b"HtTp/1.1"),
    ("https", b"HTTPS/1.1"),
    ("icy", b"ICY"),
    ("xttp", b"XTTP/1.1"),
    ("hhttp", b"HHTTP/1.1"),
    ("nul_suffix", b"HTTP/1.1\x00"),
    ("fullwidth", "ＨＴＴＰ/1.1".encode()),
]

STATUS_LINES = [
    ("sep_two_spaces", b"HTTP/1.1  200 OK", "two spaces between version and code"),
    ("sep_tab", b"HTTP/1.1\t200 OK", "tab between version and code"),
    ("sep_tab_reason", b"HTTP/1.1 200\tOK", "tab between code and reason"),
    ("sep_two_spaces_reason", b"HTTP/1.1 200  OK", "two spaces between code and reason"),
    ("sep_mixed_ws", b"HTTP/1.1 \t 200 \t OK", "space/tab runs between all fields"),
    ("sep_vt", b"HTTP/1.1\x0b200 OK", "vertical tab between version and code"),
    ("leading_space", b" HTTP/1.1 200 OK", "status line starts with a space"),
    ("leading_tab", b"\tHTTP/1.1 200 OK", "status line starts with a tab"),
    ("missing_space", b"HTTP/1.1200 OK", "no space between version and code"),
    ("missing_space_reason", b"HTTP/1.1 200OK", "no space between code and reason"),
    ("no_reason", b"HTTP/1.1 200", "no reason phrase, no space after the code"),
    ("no_reason_space", b"HTTP/1.1 200 ", "no reason phrase, space after the code"),
    ("trailing_spaces", b"HTTP/1.1 200 OK   ", "trailing spaces after the reason"),
    ("trailing_tab", b"HTTP/1.1 200 OK\t", "trailing tab after the reason"),
    ("only_version", b"HTTP/1.1", "status line is only the version"),
    ("code_missing", b"HTTP/1.1 OK", "no status code"),
    ("code_leading_zero", b"HTTP/1.1 0200 OK", "status code 0200"),
    ("code_two_digits", b"HTTP/1.1 20 OK", "two-digit status code 20"),
    ("code_four_digits", b"HTTP/1.1 2000 OK", "four-digit status code 2000"),
    ("code_plus", b"HTTP/1.1 +200 OK", "status code with a plus sign"),
    ("code_negative", b"HTTP/1.1 -200 OK", "negative status code"),
    ("code_decimal", b"HTTP/1.1 200.0 OK", "status code 200.0"),
    ("code_letter_o", b"HTTP/1.1 2OO OK", "status code with letter O for zero"),
    ("code_hex", b"HTTP/1.1 0xc8 OK", "status code in hex"),
    ("code_junk_suffix", b"HTTP/1.1 200x OK", "status code followed by a letter"),
]

REASONS = [
    ("not_found", b"Not Found"),
    ("server_error", b"Internal Server Error"),
    ("lowercase", b"ok"),
    ("nul", b"O\x00K"),
    ("utf8", "Ωκ ✓".encode()),
    ("latin1", b"\xe9t\xe9"),
    ("ctl", b"OK\x0b\x0c\x7f"),
    ("long", b"x" * 4000),
    ("status_line", b"HTTP/1.1 404 Not Found"),
]

CODES = [
    (201, b"Created", ""),
    (202, b"Accepted", ""),
    (203, b"Non-Authoritative Information", ""),
    (204, b"No Content", " (body sent anyway)"),
    (205, b"Reset Content", " (body sent anyway)"),
    (206, b"Partial Content", " without Content-Range"),
    (207, b"Multi-Status", ""),
    (226, b"IM Used", ""),
    (250, b"Whatever", ""),
    (299, b"Whatever", ""),
    (300, b"Multiple Choices", ""),
    (301, b"Moved Permanently", " without Location"),
    (302, b"Found", " without Location"),
    (304, b"Not Modified", " (body sent anyway)"),
    (400, b"Bad Request", ""),
    (403, b"Forbidden", ""),
    (404, b"Not Found", ""),
    (500, b"Internal Server Error", ""),
    (503, b"Service Unavailable", ""),
    (600, b"Beyond", ""),
    (999, b"Whatever", ""),
    (99, b"Low", ""),
    (0, b"Zero", ""),
]

JUNK_BEFORE = [
    ("crlf", b"\r\n"),
    ("lf", b"\n"),
    ("cr", b"\r"),
    ("two_crlf", b"\r\n\r\n"),
    ("many_crlf", b"\r\n" * 16),
    ("space", b" "),
    ("nul", b"\x00"),
    ("bom", b"\xef\xbb\xbf"),
    ("x1", b"x"),
    ("x2", b"xx"),
    ("x3", b"xxx"),
    ("x4", b"xxxx"),
    ("x5", b"xxxxx"),
    ("x16", b"x" * 16),
    ("junk_line", b"junk\r\n"),
    ("junk_lines", b"foo\r\nbar\r\n"),
    ("html_line", b"<html>\r\n"),
    ("status_404", b"HTTP/1.1 404 Not Found\r\n"),
]


def _status():
    add(
        "status/http09",
        "HTTP/0.9-style response: the payload only, no status line and no headers",
        lambda p, dl: p,
    )
    add(
        "status/http09_html_prefix",
        "HTTP/0.9-style response starting with text before the binary payload",
        lambda p, dl: b"<html>payload follows</html>\n" + p,
    )
    for name, version in VERSIONS:
        for framing in ("cl", "eof"):
            how = "Content-Length" if framing == "cl" else "the connection close"
            add(
                f"status/version_{name}_{framing}",
                f"status line {show(version + b' 200 OK')}; body framed by {how}",
                lambda p, dl, v=version, f=framing: plain(p, dl, status=v + b" 200 OK", framing=f),
            )
    for name, line, what in STATUS_LINES:
        add(f"status/{name}", f"status line {show(line)}: {what}", lambda p, dl, s=line: plain(p, dl, status=s))
    for name, reason in REASONS:
        add(
            f"status/reason_{name}",
            f"200 with reason phrase {show(reason)}",
            lambda p, dl, r=reason: plain(p, dl, status=b"HTTP/1.1 200 " + r),
        )
    for code, reason, note in CODES:
        add(
            f"status/code_{code:03d}",
            f"status {code} {reason.decode()}{note} with the attachment body",
            lambda p, dl, c=code, r=reason: plain(p, dl, status=b"HTTP/1.1 %03d %s" % (c, r)),
        )
    add(
        "status/code_206_content_range",
        "206 Partial Content with a Content-Range covering the whole payload",
        lambda p, dl: plain(
            p,
            dl,
            status=b"HTTP/1.1 206 Partial Content",
            extra=[b"Content-Range: bytes 0-%d/%d" % (len(p) - 1, len(p))],
        ),
    )
    add(
        "status/code_206_eof",
        "206 Partial Content without Content-Range or Content-Length (close-delimited)",
        lambda p, dl: plain(p, dl, status=b"HTTP/1.1 206 Partial Content", framing="eof"),
    )
    for name, junk in JUNK_BEFORE:
        add(f"status/before_{name}", f"{show(junk)} before the status line", lambda p, dl, j=junk: j + plain(p, dl))
    add(
        "status/before_http09_cl",
        "junk before the status line, no Content-Length (close-delimited)",
        lambda p, dl: b"xxxx" + plain(p, dl, framing="eof"),
    )

    # Line ends. head(eol_status, eol_headers, blank) builds the same head with other line ends.
    def head_eols(p, dl, st, hd, blank):
        lines = [b"HTTP/1.1 200 OK" + st] + [h + hd for h in dl + [cl(p), CLOSE]]
        return b"".join(lines) + blank + p

    eols = [
        ("lf_all", b"\n", b"\n", b"\n", "bare LF for every line end"),
        ("lf_status", b"\n", CRLF, CRLF, "bare LF after the status line only"),
        ("lf_headers", CRLF, b"\n", CRLF, "bare LF after each header line"),
        ("lf_blank", CRLF, CRLF, b"\n", "blank line is a bare LF"),
        ("cr_all", b"\r", b"\r", b"\r", "bare CR for every line end"),
        ("cr_status", b"\r", CRLF, CRLF, "bare CR after the status line only"),
        ("cr_headers", CRLF, b"\r", CRLF, "bare CR after each header line"),
        ("cr_blank", CRLF, CRLF, b"\r", "blank line is a bare CR"),
        ("crcrlf_all", b"\r\r\n", b"\r\r\n", b"\r\r\n", "CR CR LF for every line end"),
        ("crcrlf_blank", CRLF, CRLF, b"\r\r\n", "blank line is CR CR LF"),
        ("lfcr_all", b"\n\r", b"\n\r", b"\n\r", "LF CR for every line end"),
        ("lfcr_blank", CRLF, CRLF, b"\n\r", "blank line is LF CR"),
        ("mixed", b"\n", CRLF, b"\n", "bare LF status line and blank line, CRLF headers"),
        ("blank_space", CRLF, CRLF, b" \r\n", "blank line holds a space"),
        ("blank_tab", CRLF, CRLF, b"\t\r\n", "blank line holds a tab"),
    ]
    for name, st, hd, blank, what in eols:
        add(f"status/eol_{name}", what, lambda p, dl, a=st, b=hd, c=blank: head_eols(p, dl, a, b, c))

    interims = [
        ("100", b"HTTP/1.1 100 Continue\r\n\r\n", "100 Continue"),
        ("102", b"HTTP/1.1 102 Processing\r\n\r\n", "102 Processing"),
        (
            "103",
            b"HTTP/1.1 103 Early Hints\r\nLink: </x.css>; rel=preload; as=style\r\n\r\n",
            "103 Early Hints with Link",
        ),
        ("100_x3", b"HTTP/1.1 100 Continue\r\n\r\n" * 3, "three 100 Continue"),
        ("100_x20", b"HTTP/1.1 100 Continue\r\n\r\n" * 20, "twenty 100 Continue"),
        (
            "100_102_103",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n",
            "100, 102 and 103",
        ),
        (
            "101",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n",
            "101 Switching Protocols",
        ),
        ("199", b"HTTP/1.1 199 Whatever\r\n\r\n", "199"),
        ("100_http10", b"HTTP/1.0 100 Continue\r\n\r\n", "HTTP/1.0 100 Continue"),
        ("100_lf", b"HTTP/1.1 100 Continue\n\n", "100 Continue with bare LF line ends"),
        ("100_no_reason", b"HTTP/1.1 100\r\n\r\n", "100 without reason"),
        ("100_with_cl", b"HTTP/1.1 100 Continue\r\nContent-Length: 20\r\n\r\n", "100 Continue carrying Content-Length"),
        (
            "100_with_te",
            b"HTTP/1.1 100 Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
            "100 Continue carrying Transfer-Encoding",
        ),
        ("100_with_body", b"HTTP/1.1 100 Continue\r\nContent-Length: 4\r\n\r\nJUNK", "100 Continue with a 4-byte body"),
    ]
    for name, interim, what in interims:
        add(f"status/interim_{name}", f"{what} before the 200", lambda p, dl, i=interim: i + plain(p, dl))
    add(
        "status/interim_100_then_http10",
        "HTTP/1.1 100 Continue, then an HTTP/1.0 200",
        lambda p, dl: b"HTTP/1.1 100 Continue\r\n\r\n" + plain(p, dl, status=OK10),
    )
    add(
        "status/interim_only",
        "100 Continue and then the payload without a final status line",
        lambda p, dl: b"HTTP/1.1 100 Continue\r\n\r\n" + p,
    )


# ---------------------------------------------------------------------------------------------
# header: the header block.


def _header():
    # The four headers whose folding/whitespace matters, each with the body that makes honouring
    # or ignoring the header visible in the saved bytes.
    def target(kind, p, dl):
        """(header name, value, other header lines, body)"""
        if kind == "te":
            return b"Transfer-Encoding", b"chunked", list(dl), [CLOSE], chunked(p)
        if kind == "cl":
            return b"Content-Length", b"%d" % len(p), list(dl), [CLOSE], p + TAIL
        if kind == "ce":
            body = gzip_std(p)
            return b"Content-Encoding", b"gzip", list(dl), [cl(body), CLOSE], body
        # cd: the disposition line itself is the target.
        value = dl[1].split(b": ", 1)[1]
        return b"Content-Disposition", value, [dl[0]], [cl(p), CLOSE], p

    def with_line(kind, make_line):
        def build(p, dl):
            name, value, before, after, body = target(kind, p, dl)
            return msg([OK] + before + [make_line(name, value)] + after, body)

        return build

    kinds = {
        "te": "Transfer-Encoding: chunked",
        "cl": "Content-Length (payload + junk tail)",
        "ce": "Content-Encoding: gzip",
        "cd": "Content-Disposition",
    }
    folds = [
        ("fold_space", lambda n, v: n + b":\r\n " + v, "value on a continuation line (space)"),
        ("fold_tab", lambda n, v: n + b":\r\n\t" + v, "value on a continuation line (tab)"),
        (
            "fold_split",
            lambda n, v: n + b": " + v[: len(v) // 2] + b"\r\n " + v[len(v) // 2 :],
            "value split over two lines",
        ),
        ("fold_multi", lambda n, v: n + b":\r\n \r\n\t" + v, "value after an empty continuation line"),
        ("fold_lf", lambda n, v: n + b":\n " + v, "continuation line after a bare LF"),
        ("fold_after", lambda n, v: n + b": " + v + b"\r\n x-folded", "continuation line appended to the value"),
        (
            "lead_space",
            lambda n, v: b" " + n + b": " + v,
            "header line starts with a space (continues the previous line)",
        ),
        ("lead_tab", lambda n, v: b"\t" + n + b": " + v, "header line starts with a tab (continues the previous line)"),
    ]
    for kind, what in kinds.items():
        for name, make, how in folds:
            add(f"header/{name}_{kind}", f"{what}: {how}", with_line(kind, make))
    colons = [
        ("space_before_colon", lambda n, v: n + b" : " + v, "space before the colon"),
        ("tab_before_colon", lambda n, v: n + b"\t: " + v, "tab before the colon"),
        ("cr_before_colon", lambda n, v: n + b"\r: " + v, "CR before the colon"),
        ("no_space_after", lambda n, v: n + b":" + v, "no space after the colon"),
        ("tab_after", lambda n, v: n + b":\t" + v, "tab after the colon"),
        ("many_spaces_after", lambda n, v: n + b":" + b" " * 16 + v, "16 spaces after the colon"),
        ("trailing_ws", lambda n, v: n + b": " + v + b" \t ", "trailing whitespace after the value"),
        ("double_colon", lambda n, v: n + b":: " + v, "two colons"),
        ("vt_after", lambda n, v: n + b":\x0b" + v, "vertical tab after the colon"),
        ("nul_after", lambda n, v: n + b":\x00" + v, "NUL after the colon"),
    ]
    for kind in ("te", "cl", "ce"):
        for name, make, how in colons:
            add(f"header/{name}_{kind}", f"{kinds[kind]}: {how}", with_line(kind, make))

    # Transfer-Encoding / Content-Length conflicts and odd Content-Length values.
    def te_cl(order, n_of):
        def build(p, dl):
            body = chunked(p)
            te, c = TE_CHUNKED, cl(body, n_of(p, body))
            return msg([OK] + dl + ([te, c] if order == "te_cl" else [c, te]) + [CLOSE], body)

        return build

    add(
        "header/te_cl",
        "TE chunked, then Content-Length of the payload (chunked body)",
        te_cl("te_cl", lambda p, b: len(p)),
    )
    add(
        "header/cl_te",
        "Content-Length of the payload, then TE chunked (chunked body)",
        te_cl("cl_te", lambda p, b: len(p)),
    )
    add("header/te_cl_small", "TE chunked and Content-Length 100 (chunked body)", te_cl("te_cl", lambda p, b: 100))
    add("header/cl_te_small", "Content-Length 100, then TE chunked (chunked body)", te_cl("cl_te", lambda p, b: 100))
    add("header/te_cl_exact", "TE chunked and Content-Length of the chunked body", te_cl("te_cl", lambda p, b: len(b)))
    add("header/te_cl_zero", "TE chunked and Content-Length 0 (chunked body)", te_cl("te_cl", lambda p, b: 0))

    def cl_values(values, body_tail=True, extra_first=()):
        def build(p, dl):
            lines = [OK] + dl + list(extra_first) + [b"Content-Length: " + v(p) for v in values] + [CLOSE]
            return msg(lines, p + (TAIL if body_tail else b""))

        return build

    n = lambda p: b"%d" % len(p)
    cls = [
        ("cl_dup_same", [n, n], "two Content-Length headers with the same value"),
        ("cl_dup_small_first", [lambda p: b"100", n], "two Content-Length headers, 100 first"),
        ("cl_dup_small_last", [n, lambda p: b"100"], "two Content-Length headers, 100 last"),
        ("cl_list_same", [lambda p: n(p) + b", " + n(p)], "Content-Length: N, N"),
        ("cl_list_diff", [lambda p: n(p) + b", 100"], "Content-Length: N, 100"),
        ("cl_leading_zeros", [lambda p: b"0000" + n(p)], "Content-Length with leading zeros"),
        ("cl_plus", [lambda p: b"+" + n(p)], "Content-Length with a plus sign"),
        ("cl_space_inside", [lambda p: n(p)[:2] + b" " + n(p)[2:]], "Content-Length with a space inside the number"),
        ("cl_spaces_around", [lambda p: b"   " + n(p) + b"   "], "Content-Length padded with spaces"),
        ("cl_hex", [lambda p: b"0x%x" % len(p)], "Content-Length in hex"),
        ("cl_negative", [lambda p: b"-1"], "Content-Length -1"),
        ("cl_junk_suffix", [lambda p: n(p) + b"abc"], "Content-Length followed by letters"),
        ("cl_decimal", [lambda p: n(p) + b".0"], "Content-Length with a decimal point"),
        ("cl_empty", [lambda p: b""], "empty Content-Length"),
        ("cl_huge", [lambda p: b"99999999999999999999999"], "Content-Length larger than 64 bits"),
        ("cl_overflow_wrap", [lambda p: b"%d" % (2**64 + len(p))], "Content-Length 2^64 + N (wraps to N)"),
        ("cl_zero", [lambda p: b"0"], "Content-Length 0 with the body sent anyway"),
        ("cl_smaller", [lambda p: b"%d" % (len(p) - 1000)], "Content-Length 1000 less than the payload"),
    ]
    for name, values, what in cls:
        add(f"header/{name}", what + " (payload + junk tail, then close)", cl_values(values))
    add(
        "header/cl_larger",
        "Content-Length 1000 more than the payload, then close",
        cl_values([lambda p: b"%d" % (len(p) + 1000)], body_tail=False),
    )
    add(
        "header/cl_larger_by_one",
        "Content-Length one more than the payload, then close",
        cl_values([lambda p: b"%d" % (len(p) + 1)], body_tail=False),
    )
    add(
        "header/cl_te_identity",
        "Content-Length and Transfer-Encoding: identity (payload + junk tail)",
        cl_values([n], extra_first=[b"Transfer-Encoding: identity"]),
    )

    def te_lines(lines, what, name, body=chunked):
        add(f"header/{name}", what + " (chunked body)", lambda p, dl: msg([OK] + dl + list(lines) + [CLOSE], body(p)))

    te_lines([TE_CHUNKED, TE_CHUNKED], "two Transfer-Encoding: chunked headers", "te_dup")
    te_lines([TE_CHUNKED, b"Transfer-Encoding: identity"], "TE chunked then TE identity", "te_chunked_then_identity")
    te_lines([b"Transfer-Encoding: identity", TE_CHUNKED], "TE identity then TE chunked", "te_identity_then_chunked")
    te_lines([b"Transfer-Encoding:", TE_CHUNKED], "empty TE header then TE chunked", "te_empty_then_chunked")
    te_lines([TE_CHUNKED, b"Transfer-Encoding:"], "TE chunked then an empty TE header", "te_chunked_then_empty")

    # Case.
    cases = [
        ("case_te_name_mixed", b"tRaNsFeR-eNcOdInG: chunked", "te", "Transfer-Encoding name in mixed case"),
        ("case_te_upper", b"TRANSFER-ENCODING: CHUNKED", "te", "Transfer-Encoding name and value upper case"),
        ("case_te_lower", b"transfer-encoding: chunked", "te", "Transfer-Encoding name lower case"),
        ("case_te_value_upper", b"Transfer-Encoding: CHUNKED", "te", "value CHUNKED"),
        ("case_te_value_title", b"Transfer-Encoding: Chunked", "te", "value Chunked"),
        ("case_cl_upper", None, "cl", "CONTENT-LENGTH upper case (payload + junk tail)"),
        ("case_cl_mixed", None, "cl", "cOnTeNt-LeNgTh mixed case (payload + junk tail)"),
        ("case_ce_name_upper", b"CONTENT-ENCODING: gzip", "ce", "CONTENT-ENCODING name upper case"),
        ("case_ce_name_lower", b"content-encoding: gzip", "ce", "content-encoding name lower case"),
    ]
    for name, line, kind, what in cases:
        if kind == "te":
            build = lambda p, dl, l=line: msg([OK] + dl + [l, CLOSE], chunked(p))
        elif kind == "cl":
            hname = b"CONTENT-LENGTH" if name == "case_cl_upper" else b"cOnTeNt-LeNgTh"
            build = lambda p, dl, h=hname: msg([OK] + dl + [h + b": %d" % len(p), CLOSE], p + TAIL)
        else:
            build = lambda p, dl, l=line: encoded(p, dl, [l], gzip_std(p))
        add(f"header/{name}", what, build)
    add(
        "header/case_cd_upper",
        "CONTENT-DISPOSITION: ATTACHMENT in upper case",
        lambda p, dl: msg(
            [OK, dl[0], b'CONTENT-DISPOSITION: ATTACHMENT; FILENAME="header-case_cd_upper.bin"', cl(p), CLOSE], p
        ),
    )
    add(
        "header/case_ct_upper",
        "Content-Type value APPLICATION/OCTET-STREAM",
        lambda p, dl: msg([OK, b"Content-Type: APPLICATION/OCTET-STREAM", dl[1], cl(p), CLOSE], p),
    )

    # Bytes outside visible ASCII in names and values.
    odd_te = [
        ("te_name_nul", b"Transfer-Encoding\x00: chunked", "NUL at the end of the TE name"),
        ("te_name_nul_inside", b"Transfer\x00Encoding: chunked", "NUL inside the TE name"),
        ("te_name_latin1", b"Transfer-Encoding\xe9: chunked", "non-ASCII byte at the end of the TE name"),
        ("te_name_utf8_dash", "Transfer‐Encoding: chunked".encode(), "TE name with a Unicode hyphen"),
        ("te_value_nul_after", b"Transfer-Encoding: chunked\x00", "NUL after the TE value"),
        ("te_value_nul_before", b"Transfer-Encoding: \x00chunked", "NUL before the TE value"),
        ("te_value_high_byte", b"Transfer-Encoding: chunked\xff", "0xff after the TE value"),
        ("te_value_ff", b"Transfer-Encoding: chunked\x0c", "form feed after the TE value"),
    ]
    for name, line, what in odd_te:
        add(f"header/{name}", what + " (chunked body)", lambda p, dl, l=line: msg([OK] + dl + [l, CLOSE], chunked(p)))
    add(
        "header/cl_value_nul",
        "NUL after the Content-Length value (payload + junk tail)",
        lambda p, dl: msg([OK] + dl + [cl(p) + b"\x00", CLOSE], p + TAIL),
    )
    add(
        "header/cl_value_latin1",
        "non-ASCII byte after the Content-Length value (payload + junk tail)",
        lambda p, dl: msg([OK] + dl + [cl(p) + b"\xb2", CLOSE], p + TAIL),
    )
    for name, line, what in [
        ("other_value_nul", b"X-Note: a\x00b", "NUL in an unrelated header value"),
        ("other_value_high", b"X-Note: \xff\xfe\x80", "high bytes in an unrelated header value"),
        ("other_name_utf8", "X-Ünïcödé: 1".encode(), "UTF-8 in an unrelated header name"),
        ("other_name_nul", b"X-N\x00te: 1", "NUL in an unrelated header name"),
        ("other_name_space", b"X Note: 1", "space in an unrelated header name"),
        ("other_ctl", b"X-Note: \x01\x02\x1b[31m", "control bytes in an unrelated header value"),
    ]:
        add(f"header/{name}", what, lambda p, dl, l=line: plain(p, dl, extra=[l]))
    add(
        "header/cd_filename_utf8",
        "Content-Disposition filename with raw UTF-8",
        lambda p, dl: msg(
            [OK, dl[0], 'Content-Disposition: attachment; filename="dätéi-ünï.bin"'.encode(), cl(p), CLOSE], p
        ),
    )

    # Lines that are not headers.
    for name, line, what in [
        ("no_colon_junk_line", b"this is not a header", "a line without a colon among the headers"),
        ("no_colon_te", b"Transfer-Encoding chunked", "TE header without a colon (chunked body)"),
        ("empty_name", b": chunked", "a header line with an empty name (chunked body)"),
        ("only_colon", b":", "a header line that is a lone colon"),
        ("only_spaces", b"   ", "a header line of spaces"),
        ("equals_sign", b"Transfer-Encoding=chunked", "TE with = instead of a colon (chunked body)"),
    ]:
        if b"chunked" in line:
            build = lambda p, dl, l=line: msg([OK] + dl + [l, CLOSE], chunked(p))
        else:
            build = lambda p, dl, l=line: msg([OK] + dl + [l, cl(p), CLOSE], p)
        add(f"header/{name}", what, build)
    add(
        "header/no_colon_before_te",
        "a line without a colon right before TE chunked (chunked body)",
        lambda p, dl: msg([OK] + dl + [b"not-a-header", TE_CHUNKED, CLOSE], chunked(p)),
    )
    add(
        "header/no_colon_cl",
        "Content-Length without a colon (payload + junk tail)",
        lambda p, dl: msg([OK] + dl + [b"Content-Length %d" % len(p), CLOSE], p + TAIL),
    )

    # Size and count.
    for size in (1000, 8000, 16000, 24000):
        add(
            f"header/long_value_{size}",
            f"an unrelated header with a {size}-byte value",
            lambda p, dl, s=size: plain(p, dl, extra=[b"X-Padding: " + b"a" * s]),
        )
    add(
        "header/long_te_padding",
        "TE value preceded by 8000 spaces (chunked body)",
        lambda p, dl: msg([OK] + dl + [b"Transfer-Encoding: " + b" " * 8000 + b"chunked", CLOSE], chunked(p)),
    )
    add(
        "header/long_cd_filename",
        "Content-Disposition with a 3000-byte filename",
        lambda p, dl: msg(
            [OK, dl[0], b'Content-Disposition: attachment; filename="%s.bin"' % (b"f" * 3000), cl(p), CLOSE], p
        ),
    )
    for count in (100, 500, 1000):
        add(
            f"header/many_{count}",
            f"{count} unrelated headers before the framing headers",
            lambda p, dl, c=count: msg([OK] + dl + [b"X-H%d: %d" % (i, i) for i in range(c)] + [cl(p), CLOSE], p),
        )
    add(
        "header/many_te",
        "TE chunked repeated 50 times (chunked body)",
        lambda p, dl: msg([OK] + dl + [TE_CHUNKED] * 50 + [CLOSE], chunked(p)),
    )
    add(
        "header/many_cl",
        "the same Content-Length repeated 50 times (payload + junk tail)",
        lambda p, dl: msg([OK] + dl + [cl(p)] * 50 + [CLOSE], p + TAIL),
    )

    # Connection handling, crossed with framing.
    conns = [
        ("close", [CLOSE]),
        ("keepalive", [b"Connection: keep-alive", b"Keep-Alive: timeout=5, max=100"]),
        ("none", []),
        ("close_keepalive", [b"Connection: close, keep-alive"]),
        ("upgrade", [b"Connection: Upgrade", b"Upgrade: h2c"]),
        ("proxy_close", [b"Proxy-Connection: close"]),
    ]
    for cname, clines in conns:
        for framing in ("cl", "chunked", "eof"):

            def build(p, dl, c=clines, f=framing):
                lines = [OK] + dl
                body = p
                if f == "cl":
                    lines.append(cl(p))
                elif f == "chunked":
                    lines.append(TE_CHUNKED)
                    body = chunked(p)
                return msg(lines + c, body)

            add(
                f"header/conn_{cname}_{framing}",
                f"{show(b', '.join(clines)) or 'no Connection header'}; {framing} framing; server closes",
                build,
            )

    # HTTP/1.0 with chunked: RFC 7230 says a 1.0 message cannot be chunked.
    h10 = [
        ("http10_te", [TE_CHUNKED, CLOSE], chunked, "HTTP/1.0 with TE chunked (chunked body)"),
        (
            "http10_te_keepalive",
            [TE_CHUNKED, b"Connection: keep-alive"],
            chunked,
            "HTTP/1.0 with TE chunked and keep-alive (chunked body)",
        ),
        ("http10_te_no_conn", [TE_CHUNKED], chunked, "HTTP/1.0 with TE chunked, no Connection header (chunked body)"),
        (
            "http10_te_cl",
            [TE_CHUNKED, None, CLOSE],
            chunked,
            "HTTP/1.0 with TE chunked and Content-Length of the chunked body",
        ),
        ("http10_cl", [None, CLOSE], None, "HTTP/1.0 with Content-Length (payload + junk tail)"),
        (
            "http10_cl_keepalive",
            [None, b"Connection: keep-alive"],
            None,
            "HTTP/1.0 keep-alive with Content-Length (payload + junk tail)",
        ),
        ("http10_eof", [], None, "HTTP/1.0 close-delimited"),
        (
            "http10_te_identity",
            [b"Transfer-Encoding: identity"],
            None,
            "HTTP/1.0 with TE identity (payload + junk tail)",
        ),
    ]
    for name, lines, body_fn, what in h10:

        def build(p, dl, ls=lines, bf=body_fn, nm=name):
            body = bf(p) if bf else (p if nm == "http10_eof" else p + TAIL)
            hl = [cl(body if bf else p) if x is None else x for x in ls]
            return msg([OK10] + dl + hl, body)

        add(f"header/{name}", what, build)

    # The download headers themselves.
    ct = lambda dl: dl[0]
    cd = lambda dl: dl[1]
    for name, lines, what in [
        ("no_content_type", lambda dl: [cd(dl)], "no Content-Type, attachment disposition"),
        ("no_disposition", lambda dl: [ct(dl)], "octet-stream without Content-Disposition"),
        ("no_download_headers", lambda dl: [], "neither Content-Type nor Content-Disposition"),
        (
            "ct_html_attachment",
            lambda dl: [b"Content-Type: text/html", cd(dl)],
            "text/html with attachment disposition",
        ),
        (
            "ct_text_attachment",
            lambda dl: [b"Content-Type: text/plain", cd(dl)],
            "text/plain with attachment disposition",
        ),
        ("ct_html_only", lambda dl: [b"Content-Type: text/html"], "text/html, no disposition"),
        ("ct_dup", lambda dl: [b"Content-Type: text/html", ct(dl), cd(dl)], "text/html and octet-stream Content-Types"),
        ("cd_inline", lambda dl: [ct(dl), b"Content-Disposition: inline"], "octet-stream with inline disposition"),
        ("cd_bare", lambda dl: [ct(dl), b"Content-Disposition: attachment"], "attachment without filename"),
        (
            "cd_filename_star",
            lambda dl: [ct(dl), b"Content-Disposition: attachment; filename*=UTF-8''header-cd_filename_star.bin"],
            "attachment with filename* only",
        ),
        (
            "cd_dup",
            lambda dl: [ct(dl), cd(dl), b'Content-Disposition: attachment; filename="other.bin"'],
            "two Content-Disposition headers",
        ),
    ]:
        add(f"header/{name}", what, lambda p, dl, ls=lines: msg([OK] + ls(dl) + [cl(p), CLOSE], p))


# ---------------------------------------------------------------------------------------------
# chunked: the chunked framing.


def _chunked():
    te = lambda p, dl, body, te_line=TE_CHUNKED, status=OK: msg([status] + dl + [te_line, CLOSE], body)

    # Chunk size line mutations: h is the size in lower-case hex.
    size_mutations = [
        ("zero_pad1", lambda h: b"0" + h + CRLF, "one leading zero"),
        ("zero_pad8", lambda h: h.rjust(8, b"0") + CRLF, "zero-padded to 8 digits"),
        ("zero_pad32", lambda h: h.rjust(32, b"0") + CRLF, "zero-padded to 32 digits"),
        ("upper", lambda h: h.upper() + CRLF, "upper-case hex"),
        (
            "mixed_case",
            lambda h: bytes(c if i % 2 else c ^ 0x20 * (97 <= c <= 122) for i, c in enumerate(h)) + CRLF,
            "mixed-case hex",
        ),
        ("ext", lambda h: h + b";foo=bar" + CRLF, "extension ;foo=bar"),
        ("ext_empty", lambda h: h + b";" + CRLF, "empty extension ;"),
        ("ext_no_value", lambda h: h + b";foo" + CRLF, "extension without value"),
        ("ext_quoted", lambda h: h + b';foo="b;a r"' + CRLF, "quoted extension value with ; and space"),
        ("ext_space", lambda h: h + b" ; foo = bar" + CRLF, "extension with spaces around ; and ="),
        ("ext_long", lambda h: h + b";x=" + b"a" * 1000 + CRLF, "1000-byte extension"),
        ("junk_after", lambda h: h + b"zz" + CRLF, "letters after the size"),
        ("junk_space_after", lambda h: h + b" zz" + CRLF, "space and letters after the size"),
        ("space_before", lambda h: b" " + h + CRLF, "space before the size"),
        ("space_after", lambda h: h + b" " + CRLF, "space after the size"),
        ("tab_before", lambda h: b"\t" + h + CRLF, "tab before the size"),
        ("tab_after", lambda h: h + b"\t" + CRLF, "tab after the size"),
        ("vt_before", lambda h: b"\x0b" + h + CRLF, "vertical tab before the size"),
        ("ff_before", lambda h: b"\x0c" + h + CRLF, "form feed before the size"),
        ("hex_prefix", lambda h: b"0x" + h + CRLF, "0x prefix"),
        ("plus", lambda h: b"+" + h + CRLF, "plus sign"),
        ("nul_after", lambda h: h + b"\x00" + CRLF, "NUL after the size"),
        ("bare_lf", lambda h: h + b"\n", "bare LF after the size"),
        ("bare_cr", lambda h: h + b"\r", "bare CR after the size"),
        ("cr_cr_lf", lambda h: h + b"\r\r\n", "CR CR LF after the size"),
        ("cr_before", lambda h: b"\r" + h + CRLF, "bare CR before the size"),
        ("lf_before", lambda h: b"\n" + h + CRLF, "bare LF before the size"),
        ("crlf_before", lambda h: CRLF + h + CRLF, "empty line before the size"),
        ("lf_cr", lambda h: h + b"\n\r", "LF CR after the size"),
    ]
    for name, mutate, what in size_mutations:
        for where in ("first", "all"):

            def size_line(i, n, count, m=mutate, w=where):
                return m(b"%x" % n) if (w == "all" or i == 0) else b"%x\r\n" % n

            add(
                f"chunked/size_{name}_{where}",
                f"chunk size line: {what} ({where} chunk{'s' if where == 'all' else ''})",
                lambda p, dl, s=size_line: te(p, dl, chunked(p, size_line=s)),
            )

    last_chunks = [
        ("zeros", b"000\r\n\r\n", "last chunk size 000"),
        ("zero_pad32", b"0" * 32 + b"\r\n\r\n", "last chunk size of 32 zeros"),
        ("ext", b"0;foo=bar\r\n\r\n", "last chunk with an extension"),
        ("space_after", b"0 \r\n\r\n", "last chunk size followed by a space"),
        ("space_before", b" 0\r\n\r\n", "last chunk size preceded by a space"),
        ("tab_after", b"0\t\r\n\r\n", "last chunk size followed by a tab"),
        ("bare_lf", b"0\n\n", "last chunk and end with bare LF"),
        ("bare_lf_end", b"0\r\n\n", "end of chunked body is a bare LF"),
        ("hex_prefix", b"0x0\r\n\r\n", "last chunk size 0x0"),
        ("plus", b"+0\r\n\r\n", "last chunk size +0"),
        ("no_crlf", b"0\r\n", "last chunk without the final CRLF, then close"),
        ("missing", b"", "no last chunk: connection closes after the data"),
        ("only_zero", b"0", "last chunk is a bare 0 without any line end, then close"),
        ("bare_cr_end", b"0\r\n\r", "end of chunked body is a bare CR"),
        ("trailer", b"0\r\nX-Trailer: yes\r\n\r\n", "trailer after the last chunk"),
        ("trailer_cl", b"0\r\nContent-Length: 5\r\n\r\n", "Content-Length as a trailer"),
        ("trailer_te", b"0\r\nTransfer-Encoding: identity\r\n\r\n", "Transfer-Encoding as a trailer"),
        ("trailer_many", b"0\r\n" + b"".join(b"X-T%d: %d\r\n" % (i, i) for i in range(50)) + b"\r\n", "50 trailers"),
        ("trailer_unterminated", b"0\r\nX-Trailer: yes\r\n", "trailer but no final blank line, then close"),
        ("trailer_no_colon", b"0\r\nnot a trailer\r\n\r\n", "trailer line without a colon"),
        ("junk_after", b"0\r\n\r\nJUNK AFTER THE LAST CHUNK", "junk after the end of the chunked body"),
        (
            "second_response",
            b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nJUNK",
            "a second response after the chunked body",
        ),
    ]
    for name, last, what in last_chunks:
        add(f"chunked/last_{name}", what, lambda p, dl, l=last: te(p, dl, chunked(p, last=l)))

    data_ends = [
        ("lf", b"\n", "bare LF"),
        ("cr", b"\r", "bare CR"),
        ("none", b"", "nothing"),
        ("crlf_crlf", b"\r\n\r\n", "two CRLFs"),
        ("junk", b"xx\r\n", "junk and CRLF"),
        ("space", b" \r\n", "space and CRLF"),
    ]
    for name, end, what in data_ends:
        for where in ("first", "all"):
            de = (lambda i, c, e=end: e if i == 0 else CRLF) if where == "first" else end
            add(
                f"chunked/data_end_{name}_{where}",
                f"chunk data followed by {what} instead of CRLF ({where})",
                lambda p, dl, d=de: te(p, dl, chunked(p, data_end=d)),
            )

    te_values = [
        ("chunked_semicolon", b"chunked;"),
        ("xchunked", b"xchunked"),
        ("chunked_x", b"chunked-x"),
        ("chunked_identity", b"chunked, identity"),
        ("identity_chunked", b"identity, chunked"),
        ("identity_chunked_nospace", b"identity,chunked"),
        ("gzip_chunked", b"gzip, chunked"),
        ("deflate_chunked", b"deflate, chunked"),
        ("compress_chunked", b"compress, chunked"),
        ("chunked_gzip", b"chunked, gzip"),
        ("chunked_comma", b"chunked,"),
        ("comma_chunked", b",chunked"),
        ("chunked_chunked", b"chunked, chunked"),
        ("chunked_param", b"chunked;q=1"),
        ("quoted", b'"chunked"'),
        ("chunk", b"chunk"),
        ("chunked_space_chunked", b"chunked chunked"),
        ("identity", b"identity"),
        ("foo", b"foo"),
        ("empty", b""),
        ("chunked_vt", b"chunked\x0b"),
    ]
    for name, value in te_values:
        add(
            f"chunked/te_{name}",
            f"Transfer-Encoding: {show(value)} with a chunked body",
            lambda p, dl, v=value: te(p, dl, chunked(p), te_line=b"Transfer-Encoding: " + v),
        )
    add(
        "chunked/te_gzip_chunked_gzip_body",
        "Transfer-Encoding: gzip, chunked with a gzip body, chunked",
        lambda p, dl: te(p, dl, chunked(gzip_std(p)), te_line=b"Transfer-Encoding: gzip, chunked"),
    )

    def sized(sizes):
        return lambda p, dl: te(p, dl, chunked(p, sizes=sizes))

    add("chunked/many_tiny_7", "7-byte chunks (1286 chunks, the last one 5 bytes)", sized([7] * 2000))
    add("chunked/tiny_1_then_rest", "the first 600 bytes in 1-byte chunks, then the rest", sized([1] * 600))
    add("chunked/one_huge", "the whole payload in one chunk", sized([]))
    add("chunked/powers_of_two", "chunk sizes 1, 2, 4, ... 4096", sized([2**i for i in range(13)]))

    def last_claims_more(extra, final):
        def build(p, dl):
            return te(
                p,
                dl,
                chunked(
                    p,
                    size_line=lambda i, n, c: b"%x\r\n" % (n + extra if i == c - 1 else n),
                    data_end=lambda i, c: b"" if i == c - 1 else CRLF,
                    last=final,
                ),
            )

        return build

    add(
        "chunked/size_larger_than_rest",
        "last data chunk claims 0x100 more bytes than remain, then close",
        last_claims_more(0x100, b""),
    )
    add(
        "chunked/size_larger_than_rest_by_one",
        "last data chunk claims one more byte than remains, then close",
        last_claims_more(1, b""),
    )
    add(
        "chunked/size_larger_with_last",
        "last data chunk claims 5 bytes more than sent, swallowing the last chunk",
        last_claims_more(5, b"\r\n0\r\n\r\n"),
    )
    add(
        "chunked/size_smaller",
        "first chunk size 0x10 less than its data",
        lambda p, dl: te(p, dl, chunked(p, size_line=lambda i, n, c: b"%x\r\n" % (n - 0x10 if i == 0 else n))),
    )
    add(
        "chunked/zero_chunk_mid",
        "a 0-size chunk after the first chunk, more chunks after it",
        lambda p, dl: te(
            p, dl, chunked(p, size_line=lambda i, n, c: b"0\r\n\r\n%x\r\n" % n if i == 1 else b"%x\r\n" % n)
        ),
    )
    add(
        "chunked/overflow_64",
        "chunk size 2^64 + n: a parser that wraps sees n",
        lambda p, dl: te(p, dl, chunked(p, size_line=lambda i, n, c: b"1" + (b"%x" % n).rjust(16, b"0") + CRLF)),
    )
    add(
        "chunked/overflow_32",
        "chunk size 2^32 + n: a 32-bit parser sees n",
        lambda p, dl: te(p, dl, chunked(p, size_line=lambda i, n, c: b"1" + (b"%x" % n).rjust(8, b"0") + CRLF)),
    )
    add(
        "chunked/size_max",
        "first chunk size ffffffffffffffff, then close",
        lambda p, dl: te(p, dl, b"ffffffffffffffff\r\n" + p),
    )
    add(
        "chunked/size_empty",
        "an empty chunk size line before the first chunk",
        lambda p, dl: te(p, dl, CRLF + chunked(p)),
    )
    add(
        "chunked/size_decimal",
        "chunk sizes written in decimal digits (read as hex)",
        lambda p, dl: te(p, dl, chunked(p, sizes=[1000, 2000, 3000], size_line=lambda i, n, c: b"%d\r\n" % n)),
    )
    add("chunked/not_chunked_body", "TE chunked but the body is the raw payload", lambda p, dl: te(p, dl, p))
    add("chunked/empty_body", "TE chunked and only the last chunk", lambda p, dl: te(p, dl, b"0\r\n\r\n"))
    add("chunked/http10", "HTTP/1.0 status, TE chunked, chunked body", lambda p, dl: te(p, dl, chunked(p), status=OK10))


# ---------------------------------------------------------------------------------------------
# encoding: Content-Encoding.


def _encoding():
    ce = lambda v: b"Content-Encoding: " + v

    gzip_labels = [
        ("gzip", b"gzip"),
        ("x_gzip", b"x-gzip"),
        ("upper_gzip", b"GZIP"),
        ("title_gzip", b"Gzip"),
        ("upper_x_gzip", b"X-GZIP"),
        ("spaces_gzip", b"   gzip"),
        ("gzip_trailing_space", b"gzip   "),
        ("tabs_gzip", b"\tgzip\t"),
        ("gzip_q", b"gzip;q=1"),
        ("gzip_semicolon", b"gzip;"),
        ("gzip_comma", b"gzip,"),
        ("comma_gzip", b",gzip"),
        ("gzip_identity", b"gzip, identity"),
        ("identity_gzip", b"identity, gzip"),
        ("gzip_foo", b"gzip, foo"),
        ("foo_gzip", b"foo, gzip"),
        ("identity", b"identity"),
        ("foo", b"foo"),
        ("compress", b"compress"),
        ("x_compress", b"x-compress"),
        ("br", b"br"),
        ("zstd", b"zstd"),
        ("deflate", b"deflate"),
        ("star", b"*"),
        ("empty", b""),
        ("chunked", b"chunked"),
        ("quoted", b'"gzip"'),
        ("gzip_nul", b"gzip\x00"),
        ("gzip_gzip", b"gzip, gzip"),
        ("none", b"none"),
    ]
    for name, label in gzip_labels:
        add(
            f"encoding/label_{name}_gz",
            f"Content-Encoding: {show(label)} on a gzip body",
            lambda p, dl, l=label: encoded(p, dl, [ce(l)], gzip_std(p)),
        )
    for name, label in [
        ("deflate", b"deflate"),
        ("x_deflate", b"x-deflate"),
        ("upper_deflate", b"DEFLATE"),
        ("gzip", b"gzip"),
        ("identity", b"identity"),
    ]:
        add(
            f"encoding/label_{name}_zlib",
            f"Content-Encoding: {show(label)} on a zlib (RFC 1950) body",
            lambda p, dl, l=label: encoded(p, dl, [ce(l)], zlib_stream(p)),
        )
    for name, label in [("deflate", b"deflate"), ("x_deflate", b"x-deflate"), ("gzip", b"gzip")]:
        add(
            f"encoding/label_{name}_raw",
            f"Content-Encoding: {show(label)} on a raw deflate (RFC 1951) body",
            lambda p, dl, l=label: encoded(p, dl, [ce(l)], raw_deflate(p)),
        )
    add(
        "encoding/label_gzip_plain",
        "Content-Encoding: gzip on the uncompressed payload",
        lambda p, dl: encoded(p, dl, [ce(b"gzip")], p),
    )
    add(
        "encoding/label_deflate_plain",
        "Content-Encoding: deflate on the uncompressed payload",
        lambda p, dl: encoded(p, dl, [ce(b"deflate")], p),
    )

    # gzip member variants (label gzip).
    crc = lambda p: zlib.crc32(p)
    gz_variants = [
        ("bad_crc", lambda p: gz(p, crc=crc(p) ^ 0xFFFFFFFF), "wrong CRC32 in the trailer"),
        ("bad_isize", lambda p: gz(p, isize=len(p) + 1), "wrong ISIZE in the trailer"),
        ("bad_crc_isize", lambda p: gz(p, crc=0, isize=0), "zero CRC32 and ISIZE"),
        ("no_trailer", lambda p: gz(p, trailer_len=0), "no trailer"),
        ("trailer_crc_only", lambda p: gz(p, trailer_len=4), "trailer truncated to the CRC32"),
        ("trailer_7", lambda p: gz(p, trailer_len=7), "trailer truncated to 7 bytes"),
        ("trailer_1", lambda p: gz(p, trailer_len=1), "trailer truncated to 1 byte"),
        ("junk_after", lambda p: gz(p) + b"JUNK AFTER THE GZIP MEMBER", "junk after the member"),
        ("zeros_after", lambda p: gz(p) + bytes(64), "64 zero bytes after the member"),
        ("two_members", lambda p: gz(p[:4000]) + gz(p[4000:]), "payload split over two concatenated members"),
        ("three_members", lambda p: gz(p[:100]) + gz(p[100:5000]) + gz(p[5000:]), "payload split over three members"),
        ("empty_member_after", lambda p: gz(p) + gz(b""), "an empty member after the payload member"),
        ("empty_member_before", lambda p: gz(b"") + gz(p), "an empty member before the payload member"),
        ("fextra", lambda p: gz(p, flags=FEXTRA), "FEXTRA field"),
        ("fname", lambda p: gz(p, flags=FNAME), "FNAME field"),
        ("fcomment", lambda p: gz(p, flags=FCOMMENT), "FCOMMENT field"),
        ("fhcrc", lambda p: gz(p, flags=FHCRC), "FHCRC with a correct header CRC"),
        ("fhcrc_bad", lambda p: gz(p, flags=FHCRC, hcrc_ok=False), "FHCRC with a wrong header CRC"),
        ("all_flags", lambda p: gz(p, flags=FTEXT | FHCRC | FEXTRA | FNAME | FCOMMENT), "all header flags"),
        ("ftext", lambda p: gz(p, flags=FTEXT), "FTEXT flag"),
        ("reserved_flag", lambda p: gz(p, flags=0x20), "reserved flag bit 5 set"),
        ("reserved_flags_all", lambda p: gz(p, flags=0xE0), "reserved flag bits 5-7 set"),
        ("bad_magic", lambda p: gz(p, magic=b"\x1f\x8c"), "wrong magic byte"),
        ("bad_method", lambda p: gz(p, method=7), "compression method 7"),
        ("os_unix", lambda p: gz(p, os_byte=3), "OS byte 3 (Unix)"),
        ("mtime_xfl", lambda p: gz(p, mtime=0x5F5E1000, xfl=2), "modification time and XFL set"),
        ("level0", lambda p: gz(p, level=0), "stored (level 0) deflate blocks"),
        ("level1", lambda p: gz(p, level=1), "deflate level 1"),
        ("level9", lambda p: gz(p, level=9), "deflate level 9"),
        (
            "sync_flushes",
            lambda p: gz(p, deflated=raw_deflate(p, flush_every=500)),
            "sync flush (empty stored block) every 500 bytes",
        ),
        (
            "no_final_block",
            lambda p: gz(p, deflated=_no_final(p)),
            "deflate stream without a final block, then the trailer",
        ),
        ("truncated_deflate", lambda p: gz(p)[: len(gz(p)) // 2], "member cut in the middle of the deflate data"),
        ("truncated_header", lambda p: gz(p)[:6], "only the first 6 header bytes"),
        ("gzip_in_gzip", lambda p: gz(gz(p)), "gzip of a gzip member under a single gzip label"),
    ]
    for name, make, what in gz_variants:
        add(
            f"encoding/gzip_{name}",
            f"Content-Encoding: gzip; {what}",
            lambda p, dl, m=make: encoded(p, dl, [ce(b"gzip")], m(p)),
        )

    zl = [
        ("bad_adler", lambda p: zlib_stream(p)[:-4] + (zlib.adler32(p) ^ 1).to_bytes(4, "big"), "wrong Adler-32"),
        ("no_adler", lambda p: zlib_stream(p)[:-4], "no Adler-32"),
        ("adler_2", lambda p: zlib_stream(p)[:-2], "Adler-32 truncated to 2 bytes"),
        (
            "fdict",
            lambda p: _zlib_header(0x78, 0x20) + b"\0\0\0\1" + raw_deflate(p) + zlib.adler32(p).to_bytes(4, "big"),
            "FDICT flag with a dictionary id",
        ),
        ("bad_fcheck", lambda p: b"\x78\x9d" + zlib_stream(p)[2:], "header check bits wrong"),
        ("window_512", lambda p: zlib_stream(p, wbits=9), "512-byte window (CINFO 1)"),
        ("cinfo_8", lambda p: _zlib_header(0x88, 0) + zlib_stream(p)[2:], "CINFO 8 (window larger than allowed)"),
        ("level0", lambda p: zlib_stream(p, level=0), "stored blocks"),
        ("truncated", lambda p: zlib_stream(p)[: len(zlib_stream(p)) // 2], "cut in the middle"),
        ("junk_after", lambda p: zlib_stream(p) + b"JUNK", "junk after the stream"),
        ("raw_sync_flushes", lambda p: raw_deflate(p, flush_every=500), "raw deflate with sync flushes"),
        ("raw_no_final", lambda p: _no_final(p), "raw deflate without a final block"),
        ("gzip_body", lambda p: gzip_std(p), "a gzip member (not zlib)"),
    ]
    for name, make, what in zl:
        add(
            f"encoding/deflate_{name}",
            f"Content-Encoding: deflate; {what}",
            lambda p, dl, m=make: encoded(p, dl, [ce(b"deflate")], m(p)),
        )

    # Stacked encodings. Content-Encoding lists codings in the order they were applied.
    stacks = [
        ("gzip_gzip", [b"gzip, gzip"], lambda p: gzip_std(gzip_std(p)), "gzip, gzip on a twice-gzipped body"),
        ("gzip_gzip_gzip", [b"gzip, gzip, gzip"], lambda p: gzip_std(gzip_std(gzip_std(p))), "gzip three times"),
        (
            "two_headers_gzip",
            [b"gzip", b"gzip"],
            lambda p: gzip_std(gzip_std(p)),
            "two Content-Encoding: gzip headers, twice-gzipped body",
        ),
        ("two_headers_gzip_single", [b"gzip", b"gzip"], gzip_std, "two Content-Encoding: gzip headers, gzipped once"),
        ("deflate_gzip", [b"deflate, gzip"], lambda p: gzip_std(zlib_stream(p)), "deflate, gzip (zlib inside gzip)"),
        ("gzip_deflate", [b"gzip, deflate"], lambda p: zlib_stream(gzip_std(p)), "gzip, deflate (gzip inside zlib)"),
        (
            "two_headers_deflate_gzip",
            [b"deflate", b"gzip"],
            lambda p: gzip_std(zlib_stream(p)),
            "two headers deflate then gzip",
        ),
        ("x_gzip_gzip", [b"x-gzip, gzip"], lambda p: gzip_std(gzip_std(p)), "x-gzip, gzip"),
        ("gzip_then_identity_header", [b"gzip", b"identity"], gzip_std, "Content-Encoding gzip then identity headers"),
        ("identity_then_gzip_header", [b"identity", b"gzip"], gzip_std, "Content-Encoding identity then gzip headers"),
        ("gzip_then_foo_header", [b"gzip", b"foo"], gzip_std, "Content-Encoding gzip then foo headers"),
        (
            "gzip_gzip_reversed_body",
            [b"deflate, gzip"],
            lambda p: zlib_stream(gzip_std(p)),
            "deflate, gzip label but the layers in the other order",
        ),
    ]
    for name, labels, make, what in stacks:
        add(f"encoding/stack_{name}", what, lambda p, dl, ls=labels, m=make: encoded(p, dl, [ce(x) for x in ls], m(p)))

    # Encodings crossed with transport framing and version.
    bodies = {"gzip": (b"gzip", gzip_std), "zlib": (b"deflate", zlib_stream), "raw": (b"deflate", raw_deflate)}
    for bname, (label, make) in bodies.items():
        for fname, status, framing in [
            ("chunked", OK, "chunked"),
            ("eof", OK, "eof"),
            ("http10_cl", OK10, "cl"),
            ("http10_eof", OK10, "eof"),
            ("http10_chunked", OK10, "chunked"),
        ]:
            add(
                f"encoding/frame_{bname}_{fname}",
                f"{bname} body ({label.decode()}) framed {framing}, {status.split()[0].decode()}",
                lambda p, dl, l=label, m=make, s=status, f=framing: encoded(p, dl, [ce(l)], m(p), status=s, framing=f),
            )
    add(
        "encoding/cl_uncompressed_len",
        "gzip body with Content-Length of the uncompressed payload",
        lambda p, dl: msg([OK] + dl + [ce(b"gzip"), cl(p), CLOSE], gzip_std(p)),
    )
    add(
        "encoding/cl_short",
        "gzip body with Content-Length 8 short of it (trailer cut), then close",
        lambda p, dl: msg([OK] + dl + [ce(b"gzip"), cl(gzip_std(p), len(gzip_std(p)) - 8), CLOSE], gzip_std(p)),
    )

    # Where the download's own type says "gzip", browsers may keep the bytes compressed.
    for name, lines, what in [
        (
            "ct_application_gzip",
            [
                b"Content-Type: application/gzip",
                b'Content-Disposition: attachment; filename="encoding-ct_application_gzip.bin"',
            ],
            "Content-Type application/gzip",
        ),
        (
            "ct_x_gzip",
            [
                b"Content-Type: application/x-gzip",
                b'Content-Disposition: attachment; filename="encoding-ct_x_gzip.bin"',
            ],
            "Content-Type application/x-gzip",
        ),
        (
            "filename_gz",
            [
                b"Content-Type: application/octet-stream",
                b'Content-Disposition: attachment; filename="encoding-filename_gz.bin.gz"',
            ],
            "filename ending .gz",
        ),
        (
            "filename_tgz",
            [
                b"Content-Type: application/octet-stream",
                b'Content-Disposition: attachment; filename="encoding-filename_tgz.tgz"',
            ],
            "filename ending .tgz",
        ),
        (
            "filename_svgz",
            [
                b"Content-Type: application/octet-stream",
                b'Content-Disposition: attachment; filename="encoding-filename_svgz.svgz"',
            ],
            "filename ending .svgz",
        ),
        (
            "no_content_type",
            [b'Content-Disposition: attachment; filename="encoding-no_content_type.bin"'],
            "no Content-Type",
        ),
        (
            "ct_text_plain",
            [b"Content-Type: text/plain", b'Content-Disposition: attachment; filename="encoding-ct_text_plain.bin"'],
            "Content-Type text/plain",
        ),
    ]:
        add(
            f"encoding/{name}",
            f"Content-Encoding: gzip with {what}",
            lambda p, dl, ls=lines: encoded(p, ls, [ce(b"gzip")], gzip_std(p)),
        )


def _zlib_header(cmf: int, flg_bits: int) -> bytes:
    """Two zlib header bytes with a valid FCHECK for the given CMF and FLG bits."""
    flg = flg_bits & 0xE0
    flg |= (31 - ((cmf << 8) | flg) % 31) % 31
    return bytes([cmf, flg])


def _no_final(p: bytes) -> bytes:
    # A sync flush ends with an empty stored block that is not BFINAL: the stream never ends.
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(p) + c.flush(zlib.Z_SYNC_FLUSH)


# ---------------------------------------------------------------------------------------------
# combo: combinations, and responses split at awkward places.


def _combo():
    def gz_chunked(p, size_line=default_size_line, last=b"0\r\n\r\n"):
        return chunked(gzip_std(p), sizes=(0x3F1, 0x800), size_line=size_line, last=last)

    # Head tricks (each returns the head lines for a chunked + gzip body) crossed with body tricks.
    heads = [
        ("plain", lambda dl: [OK] + dl + [TE_CHUNKED, b"Content-Encoding: gzip", CLOSE], "regular head"),
        (
            "interim",
            lambda dl: [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"]
            + dl
            + [TE_CHUNKED, b"Content-Encoding: gzip", CLOSE],
            "100 Continue first",
        ),
        (
            "fold_te",
            lambda dl: [OK] + dl + [b"Transfer-Encoding:\r\n chunked", b"Content-Encoding: gzip", CLOSE],
            "folded TE",
        ),
        (
            "fold_both",
            lambda dl: [OK] + dl + [b"Transfer-Encoding:\r\n chunked", b"Content-Encoding:\r\n\tgzip", CLOSE],
            "folded TE and CE",
        ),
        (
            "te_cl",
            lambda dl: [OK] + dl + [TE_CHUNKED, b"Content-Length: 100", b"Content-Encoding: gzip", CLOSE],
            "TE chunked + Content-Length 100",
        ),
        ("http10", lambda dl: [OK10] + dl + [TE_CHUNKED, b"Content-Encoding: gzip", CLOSE], "HTTP/1.0 status"),
        (
            "lower_version",
            lambda dl: [b"http/1.1 200 OK"] + dl + [TE_CHUNKED, b"Content-Encoding: gzip", CLOSE],
            "lower-case version",
        ),
        (
            "space_colon",
            lambda dl: [OK] + dl + [b"Transfer-Encoding : chunked", b"Content-Encoding : gzip", CLOSE],
            "space before the colons",
        ),
        (
            "upper_values",
            lambda dl: [OK] + dl + [b"Transfer-Encoding: CHUNKED", b"Content-Encoding: GZIP", CLOSE],
            "upper-case values",
        ),
        (
            "te_gzip_chunked",
            lambda dl: [OK] + dl + [b"Transfer-Encoding: gzip, chunked", CLOSE],
            "gzip as a transfer coding instead of CE",
        ),
    ]
    bodies = [
        ("chunked_gzip", lambda p: gz_chunked(p), "chunked gzip body"),
        (
            "bare_lf_sizes",
            lambda p: gz_chunked(p, size_line=lambda i, n, c: b"%x\n" % n),
            "chunked gzip, bare LF after sizes",
        ),
        (
            "ext_sizes",
            lambda p: gz_chunked(p, size_line=lambda i, n, c: b"%x;a=b\r\n" % n),
            "chunked gzip, size extensions",
        ),
        ("missing_last", lambda p: gz_chunked(p, last=b""), "chunked gzip, no last chunk"),
        (
            "padded_sizes",
            lambda p: gz_chunked(p, size_line=lambda i, n, c: b"%08X\r\n" % n),
            "chunked gzip, zero-padded upper-case sizes",
        ),
    ]
    for hname, head, hwhat in heads:
        for bname, body, bwhat in bodies:
            add(f"combo/{hname}_{bname}", f"{hwhat}; {bwhat}", lambda p, dl, h=head, b=body: msg(h(dl), b(p)))

    add(
        "combo/lf_everywhere_chunked_gzip",
        "bare LF for every line end, head and chunk lines; chunked gzip",
        lambda p, dl: msg(
            [OK] + dl + [TE_CHUNKED, b"Content-Encoding: gzip", CLOSE],
            chunked(gzip_std(p), size_line=lambda i, n, c: b"%x\n" % n, data_end=b"\n", last=b"0\n\n"),
            eol=b"\n",
        ),
    )
    add(
        "combo/junk_before_chunked_gzip",
        "blank line before the status line; chunked gzip",
        lambda p, dl: CRLF + msg([OK] + dl + [TE_CHUNKED, b"Content-Encoding: gzip", CLOSE], gz_chunked(p)),
    )
    add("combo/http09_gzip", "HTTP/0.9-style: a bare gzip member, no headers", lambda p, dl: gzip_std(p))
    add("combo/http09_chunked", "HTTP/0.9-style: a bare chunked body, no headers", lambda p, dl: chunked(p))
    add(
        "combo/double_gzip_chunked_fold",
        "folded TE, CE gzip, gzip on a twice-gzipped chunked body",
        lambda p, dl: msg(
            [OK] + dl + [b"Transfer-Encoding:\r\n chunked", b"Content-Encoding: gzip, gzip", CLOSE],
            chunked(gzip_std(gzip_std(p))),
        ),
    )
    add(
        "combo/te_cl_gzip_cl_framed",
        "CL before TE chunked; gzip body sent with CL framing, not chunked",
        lambda p, dl: msg([OK] + dl + [cl(gzip_std(p)), TE_CHUNKED, b"Content-Encoding: gzip", CLOSE], gzip_std(p)),
    )
    add(
        "combo/trailer_ce",
        "chunked gzip with Content-Encoding only as a trailer",
        lambda p, dl: msg([OK] + dl + [TE_CHUNKED, CLOSE], gz_chunked(p, last=b"0\r\nContent-Encoding: gzip\r\n\r\n")),
    )

    # The same responses split into several writes at the awkward points.
    def split_at(*finders):
        def writes(raw):
            cuts = sorted({f(raw) for f in finders if 0 < f(raw) < len(raw)})
            return [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])]

        return writes

    head_end = lambda raw: raw.index(b"\r\n\r\n") + 4
    splits = [
        ("status_mid", "plain", lambda raw: 3, "after 'HTT'"),
        ("status_cr_lf", "plain", lambda raw: raw.index(b"\r\n") + 1, "between CR and LF of the status line"),
        ("header_name", "plain", lambda raw: raw.index(b"Content-Length") + 8, "inside the Content-Length name"),
        ("cl_value", "plain", lambda raw: raw.index(b"Content-Length: ") + 17, "inside the Content-Length value"),
        ("blank_cr_lf", "plain", lambda raw: head_end(raw) - 1, "between CR and LF of the blank line"),
        ("blank_mid", "plain", lambda raw: head_end(raw) - 2, "between the two CRLFs ending the head"),
        ("te_name", "chunked", lambda raw: raw.index(b"Transfer-Encoding") + 9, "inside the Transfer-Encoding name"),
        ("chunk_size", "chunked", lambda raw: head_end(raw) + 1, "inside the first chunk size"),
        ("chunk_size_cr_lf", "chunked", lambda raw: head_end(raw) + 4, "between CR and LF after the first chunk size"),
        (
            "chunk_data_crlf",
            "chunked",
            lambda raw: head_end(raw) + 5 + 0xABC + 1,
            "between CR and LF after the first chunk's data",
        ),
        ("last_chunk", "chunked", lambda raw: len(raw) - 3, "inside the last chunk"),
        ("gzip_magic", "gzip", lambda raw: head_end(raw) + 1, "between the two gzip magic bytes"),
        ("gzip_trailer", "gzip", lambda raw: len(raw) - 4, "inside the gzip trailer"),
    ]
    builders = {
        "plain": lambda p, dl: plain(p, dl),
        "chunked": lambda p, dl: plain(p, dl, framing="chunked"),
        "gzip": lambda p, dl: encoded(p, dl, [b"Content-Encoding: gzip"], gzip_std(p)),
    }
    for name, kind, where, what in splits:
        add(
            f"combo/split_{name}",
            f"{kind} response written in two parts, split {what}",
            builders[kind],
            writes=split_at(where),
        )
    add(
        "combo/split_head_bytewise",
        "chunked response whose head is written one byte per segment",
        builders["chunked"],
        writes=lambda raw: [raw[i : i + 1] for i in range(head_end(raw))] + [raw[head_end(raw) :]],
    )
    add(
        "combo/split_interim",
        "100 Continue and the 200 in separate segments",
        lambda p, dl: b"HTTP/1.1 100 Continue\r\n\r\n" + plain(p, dl),
        writes=split_at(lambda raw: 25),
    )
    add(
        "combo/split_lf_head_chunked",
        "bare-LF head and bare-LF chunk sizes, split inside the blank line",
        lambda p, dl: msg(
            [OK] + dl + [TE_CHUNKED, CLOSE], chunked(p, size_line=lambda i, n, c: b"%x\n" % n), eol=b"\n"
        ),
        writes=split_at(lambda raw: raw.index(b"\n\n") + 1),
    )


def _check_unique_names():
    # Dashes in filenames come from the id; two ids must not map to the same download name.
    names = [v.filename for v in _TABLE.values()]
    assert len(names) == len(set(names))


_status()
_header()
_chunked()
_encoding()
_combo()
_check_unique_names()


if __name__ == "__main__":
    variants = all_variants()
    if "--count" in sys.argv[1:]:
        for fam in FAMILIES:
            print(f"{fam:9} {sum(v.family == fam for v in variants)}")
        print(f"{'total':9} {len(variants)}")
    else:
        p = payload()
        for v in variants:
            print(f"{v.id:45} {len(v.response(p)):6}  {v.description}")
