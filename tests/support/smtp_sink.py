#!/usr/bin/env python3
"""A real SMTP server that accepts every message and stores it (standard library only).

    smtp_sink.py ADDR PORT OUTDIR

Speaks ESMTP as a mail server does (RFC 5321): greeting, EHLO/HELO, MAIL, RCPT, DATA (dot
unstuffing), BDAT (RFC 3030 CHUNKING, advertised), RSET, NOOP, QUIT, with pipelining-safe reply
order. Each accepted message is written to OUTDIR/PORT-N.eml. Prints READY on stdout once listening.
"""
import os
import socketserver
import sys

OUTDIR = None
PORT = 0
COUNTER = [0]


def store(data):
    COUNTER[0] += 1
    path = os.path.join(OUTDIR, "%d-%d.eml" % (PORT, COUNTER[0]))
    with open(path, "wb") as f:
        f.write(data)
    sys.stderr.write("smtp: stored %s (%d bytes)\n" % (path, len(data)))


class Session(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.reply("220 sink.test ESMTP xdpcarve-test-sink")
        mail_from, rcpts, bdat = None, [], []
        while True:
            line = self.rfile.readline(1 << 16)
            if not line:
                return
            cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
            verb = cmd.split(" ", 1)[0].upper()
            sys.stderr.write("smtp: < %s\n" % cmd[:80])
            if verb == "EHLO":
                self.wfile.write(
                    b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                    b"250-CHUNKING\r\n250-SIZE 104857600\r\n250 HELP\r\n"
                )
                self.wfile.flush()
            elif verb == "HELO":
                self.reply("250 sink.test")
            elif verb == "MAIL":
                mail_from, rcpts, bdat = cmd[5:], [], []
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                if mail_from is None:
                    self.reply("503 5.5.1 Error: need MAIL command")
                else:
                    rcpts.append(cmd[5:])
                    self.reply("250 2.1.5 Ok")
            elif verb == "DATA":
                if not rcpts:
                    self.reply("503 5.5.1 Error: need RCPT command")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                body = []
                while True:
                    l = self.rfile.readline(1 << 20)
                    if not l:
                        return
                    if l in (b".\r\n", b".\n"):
                        break
                    if l.startswith(b"."):
                        l = l[1:]
                    body.append(l)
                store(b"".join(body))
                mail_from, rcpts = None, []
                self.reply("250 2.0.0 Ok: queued")
            elif verb == "BDAT":
                args = cmd.split()
                try:
                    size = int(args[1])
                except (IndexError, ValueError):
                    self.reply("501 5.5.4 Syntax: BDAT size [LAST]")
                    continue
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    return
                bdat.append(chunk)
                if len(args) > 2 and args[2].upper() == "LAST":
                    store(b"".join(bdat))
                    mail_from, rcpts, bdat = None, [], []
                    self.reply("250 2.0.0 Ok: queued")
                else:
                    self.reply("250 2.0.0 Ok: %d octets received" % size)
            elif verb == "RSET":
                mail_from, rcpts, bdat = None, [], []
                self.reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Error: command not recognized")


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global OUTDIR, PORT
    addr, PORT, OUTDIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(OUTDIR, exist_ok=True)
    srv = Server((addr, PORT), Session)
    print("READY", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
