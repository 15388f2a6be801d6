#!/usr/bin/env python3
"""A small real HTTP/1.1 server for the end-to-end tests (standard library only).

    http_server.py ADDR PORT DIR

Serves the files in DIR and accepts uploads, the ways real servers do:
  GET /files/NAME        200, Content-Length body
  GET /named/NAME        200, Content-Length body, Content-Disposition: attachment; filename="NAME"
  GET /chunked/NAME      200, Transfer-Encoding: chunked (chunks of varying size)
  GET /gzip/NAME         200, Content-Encoding: gzip when the client accepts it, Content-Length
  POST /upload           reads the (multipart) body, stores it as DIR/uploads/N.body, 200
  PUT /put/NAME          stores the body as DIR/uploads/NAME, 201
Connections are persistent (HTTP/1.1 keep-alive). Prints READY on stdout once listening.
"""
import gzip
import http.server
import os
import socketserver
import sys

ROOT = None
UPLOADS = None
COUNTER = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "xdpcarve-test-httpd/1.0"

    def log_message(self, fmt, *args):
        sys.stderr.write("httpd: " + (fmt % args) + "\n")

    def _file(self, name):
        path = os.path.join(ROOT, os.path.basename(name))
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = self.path.split("/", 2)
        if len(parts) != 3:
            return self._send(404, b"not found\n", [("Content-Type", "text/plain")])
        kind, name = parts[1], parts[2]
        data = self._file(name)
        if data is None:
            return self._send(404, b"not found\n", [("Content-Type", "text/plain")])
        ctype = "application/octet-stream"
        if name.endswith(".html"):
            ctype = "text/html; charset=utf-8"
        elif name.endswith(".pdf"):
            ctype = "application/pdf"
        elif name.endswith(".txt"):
            ctype = "text/plain; charset=utf-8"
        if kind == "files":
            return self._send(200, data, [("Content-Type", ctype)])
        if kind == "named":
            return self._send(
                200, data, [("Content-Type", ctype), ("Content-Disposition", 'attachment; filename="%s"' % name)]
            )
        if kind == "gzip":
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                return self._send(
                    200, gzip.compress(data, 6), [("Content-Type", ctype), ("Content-Encoding", "gzip")]
                )
            return self._send(200, data, [("Content-Type", ctype)])
        if kind == "chunked":
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sizes = [1, 17, 4096, 1000, 65536, 3]
            pos, i = 0, 0
            while pos < len(data):
                n = sizes[i % len(sizes)]
                chunk = data[pos : pos + n]
                # Chunk extensions are legal and real servers occasionally send them.
                ext = ";note=x" if i == 1 else ""
                self.wfile.write(b"%x%s\r\n" % (len(chunk), ext.encode()) + chunk + b"\r\n")
                pos += n
                i += 1
            self.wfile.write(b"0\r\n\r\n")
            return None
        return self._send(404, b"not found\n", [("Content-Type", "text/plain")])

    def _read_body(self):
        length = int(self.headers.get("Content-Length", "0"))
        remaining, chunks = length, []
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def do_POST(self):
        body = self._read_body()
        COUNTER[0] += 1
        with open(os.path.join(UPLOADS, "%d.body" % COUNTER[0]), "wb") as f:
            f.write(body)
        self._send(200, b"stored %d bytes\n" % len(body), [("Content-Type", "text/plain")])

    def do_PUT(self):
        body = self._read_body()
        name = os.path.basename(self.path)
        with open(os.path.join(UPLOADS, name), "wb") as f:
            f.write(body)
        self._send(201, b"created\n", [("Content-Type", "text/plain")])


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global ROOT, UPLOADS
    addr, port, ROOT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    UPLOADS = os.path.join(ROOT, "uploads")
    os.makedirs(UPLOADS, exist_ok=True)
    srv = Server((addr, port), Handler)
    print("READY", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
