#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into OUT/<target>/ (fuzz/run.sh does, before
each run, so the captures are read from where they live and never copied into the tree):

- capture_file: the shipped sample and the shared corpus's captures, as they are;
- engine_frames: the same captures' packets in the target's frame format
  (`[link type index][u16 length][frame]`, Ethernet = index 0);
- decoders: base64, quoted-printable, gzip and deflate of a few texts;
- http_messages, smtp_session: a few kilobytes of fixed pseudo-random bytes each, which these
  structure-aware targets read as whole connections of several messages (libFuzzer alone starts
  from inputs of a few bytes: one short message).
"""
import base64
import gzip
import hashlib
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "corpus")


def captures():
    yield "sample", os.path.join(ROOT, "bench", "samples", "sample.pcap")
    if os.path.isdir(SHARED):
        for case in sorted(os.listdir(SHARED)):
            p = os.path.join(SHARED, case, "trace.pcap")
            if os.path.isfile(p):
                yield case, p


def pcap_frames(data):
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        return []
    link = struct.unpack(end + "I", data[20:24])[0]
    if link != 1:
        return []
    off, frames = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8 : off + 12])[0]
        frames.append(data[off + 16 : off + 16 + incl])
        off += 16 + incl
    return frames


OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "target", "seeds")


def write(target, name, blob):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def main():
    for name, path in captures():
        data = open(path, "rb").read()
        write("capture_file", name, data)
        frames = pcap_frames(data)
        if frames:
            blob = b"".join(b"\x00" + struct.pack("<H", min(len(f), 65535)) + f[:65535] for f in frames)
            write("engine_frames", name, blob)
    text = b"MZ\x90\x00" + bytes(range(256)) * 4 + b"the quick brown fox =\r\n jumps\r\n" * 20
    piece = 0x04  # selector: decoder in the low 2 bits, piece size in the rest
    write("decoders", "base64", bytes([piece | 0]) + base64.encodebytes(text))
    write("decoders", "qp", bytes([piece | 1]) + b"caf=C3=A9 =\r\nsoft break=3D\r\n" * 40)
    write("decoders", "gzip", bytes([piece | 2]) + gzip.compress(text))
    write("decoders", "deflate", bytes([piece | 3]) + zlib.compress(text))
    for target in ("http_messages", "smtp_session"):
        for size in (1024, 3072, 8192):
            blob = b"".join(hashlib.sha256(f"{target} {size} {i}".encode()).digest() for i in range(size // 32))
            write(target, f"random{size}", blob)
    print("seeds written under", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
