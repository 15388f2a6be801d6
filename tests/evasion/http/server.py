#!/usr/bin/env python3
"""Raw-socket HTTP server for the evasion variants (standard library only).

    server.py ADDR PORT

Serves GET /<family>/<name> with the exact bytes of that variant (see variants.py) and 404s
everything else (Chromium also asks for /favicon.ico). http.server is not used on purpose: it
would normalise the very things the variants bend. After the response the server shuts down its
sending side and drains what the client still sends before closing, so the close is a FIN and
not a RST that could destroy data the client has not read yet.

Prints READY on stdout once listening; one log line per request on stderr.
"""

import socket
import sys
import threading
import time

import variants

# Pause between the writes of a variant that is sent in pieces: long enough that each write
# leaves as its own segment (TCP_NODELAY is set), short enough to keep the run fast.
PIECE_PAUSE = 0.005
REQUEST_TIMEOUT = 10.0
DRAIN_TIMEOUT = 3.0
MAX_REQUEST = 65536

NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
)


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def handle(conn, addr, responses):
    try:
        conn.settimeout(REQUEST_TIMEOUT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = read_request(conn)
        if not request:
            return  # a preconnect that never sent a request
        line = request.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
        pieces = responses.get(path.lstrip("/"))
        sys.stderr.write(f"{addr[0]}:{addr[1]} {line!r} -> {'variant' if pieces else '404'}\n")
        sys.stderr.flush()
        for i, piece in enumerate(pieces or [NOT_FOUND]):
            if i:
                time.sleep(PIECE_PAUSE)
            conn.sendall(piece)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(DRAIN_TIMEOUT)
        while conn.recv(65536):
            pass
    except OSError:
        pass  # the client gave up or reset: nothing to serve any more
    finally:
        conn.close()


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    p = variants.payload()
    # Built once up front: every request then costs only the send.
    responses = {v.id: v.pieces(p) for v in variants.all_variants()}
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(64)
    print("READY", flush=True)
    while True:
        conn, peer = srv.accept()
        threading.Thread(target=handle, args=(conn, peer, responses), daemon=True).start()


if __name__ == "__main__":
    main()
