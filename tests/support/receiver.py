#!/usr/bin/env python3
"""A real webhook receiver for the egress tests (standard library only).

    receiver.py PORT LOGFILE [--fail-first N] [--status CODE]

Listens on 127.0.0.1:PORT (0 = any free port) and answers every POST. Each request is appended to
LOGFILE as one JSON line {"method", "path", "headers": {lower-case name: value}, "body": text} and
flushed before the answer is sent, so a test can read what arrived. Prints "READY <port>" once
listening.
  --fail-first N   answer the first N requests 503 with Retry-After: 0 (they are logged with
                   "answered": 503, the rest with 200)
  --status CODE    answer every request with CODE instead of 200
  --delay-ms N     wait N ms before taking (logging) and answering each request: a slow receiver
"""
import http.server
import json
import sys
import threading
import time


def main():
    args = sys.argv[1:]
    port, logfile = int(args[0]), args[1]
    fail_first, status, delay = 0, 200, 0.0
    i = 2
    while i < len(args):
        if args[i] == "--fail-first":
            fail_first = int(args[i + 1])
            i += 2
        elif args[i] == "--status":
            status = int(args[i + 1])
            i += 2
        elif args[i] == "--delay-ms":
            delay = int(args[i + 1]) / 1000.0
            i += 2
        else:
            sys.exit("unknown argument " + args[i])
    seen = [0]
    lock = threading.Lock()
    log = open(logfile, "a", encoding="utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            if delay:
                time.sleep(delay)
            with lock:
                seen[0] += 1
                answer = 503 if seen[0] <= fail_first else status
                log.write(json.dumps({
                    "method": "POST",
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                    "answered": answer,
                }) + "\n")
                log.flush()
            reply = b'{"ok":true}' if answer < 300 else b'{"error":"test"}'
            self.send_response(answer)
            if answer == 503:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a client that went away mid-request (the tests kill the sensor)

    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("READY %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
