#!/usr/bin/env python3
"""Asks Chromium what it saves from every variant and captures that very fetch (standard library
only).

Run through regen.sh, which installs the tools, builds the two namespaces and starts server.py;
this script expects all of that. Two passes:

1. curl: every variant is fetched once with curl, as a second opinion. Nothing is captured.
2. browser: one headless Chromium in the client namespace, driven over its DevTools pipe
   (--remote-debugging-pipe: commands on fd 3, replies and events on fd 4, JSON messages each
   ended by a NUL byte), navigates a fresh tab to each variant. The file it saves as download,
   or the fact that it saved nothing, is the verdict written to manifest.json. Around each of
   these navigations tcpdump, in the client namespace, records captures/<family>/<name>.pcap:
   it is started before the tab opens and stopped only once the download ended or the page
   loaded (or the wait timed out), the tab is closed, and no TCP connection to port 80 is left
   in either namespace. So the pcap holds everything Chromium exchanged for that variant:
   download retries and a /favicon.ico request included, and nothing of any other variant.
   The pcap is checked: its first connection for the variant's URL must carry the variant's
   response (or a prefix of it, where Chromium closed early), every connection must start and
   end inside the capture, and none may ask for another variant.

    regen.py [--only REGEX] [--skip-captures] [--details FILE]

--only limits both passes to ids matching REGEX (search, not full match) and merges the result
into the existing manifest. --skip-captures keeps the pcaps and curl results already recorded:
curl is not run, and Chromium fetches without tcpdump.
"""

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import variants

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_NS = "xdpc-ev-srv"
CLIENT_NS = "xdpc-ev-cli"
CLIENT_IF = "xdpc-ev-c"
SERVER = "10.203.0.1"
MANIFEST = os.path.join(HERE, "manifest.json")

CURL_TIMEOUT = 5
# How long Chromium gets per variant. A navigation that became a download reports ERR_ABORTED
# first; the download events follow within milliseconds, so DOWNLOAD_START_WAIT is generous.
NAVIGATE_TIMEOUT = 15.0
DOWNLOAD_START_WAIT = 3.0
DOWNLOAD_FINISH_WAIT = 20.0
LOAD_WAIT = 5.0
GRACE = 0.3
# After the fetch (and the tab) is over, the capture goes on until no connection to port 80 is
# left in either namespace, and none has come up for QUIET_HOLD. The server gives a client that
# does not close 3 s (its DRAIN_TIMEOUT) before it closes; a connection Chromium still holds
# after QUIET_WAIT is reset (ss -K), inside the capture, and noted in the details.
QUIET_HOLD = 0.2
QUIET_WAIT = 5.0

CHROMIUM_FLAGS = [
    "--headless=new",
    "--remote-debugging-pipe",
    "--no-sandbox",  # running as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]


def in_client(argv):
    return ["ip", "netns", "exec", CLIENT_NS] + argv


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def url_of(v):
    return f"http://{SERVER}/{v.id}"


# ---------------------------------------------------------------------------------------------
# Pass 1: curl, the second opinion.


def curl_fetch(v, scratch):
    """One curl fetch of `v`, not captured. Returns (sha256 of what it wrote or None, exit code)."""
    out = os.path.join(scratch, "curl.out")
    if os.path.exists(out):
        os.unlink(out)
    # --http0.9 and --compressed with the browser's Accept-Encoding: curl should be as lenient
    # as a browser.
    rc = subprocess.run(
        in_client(
            [
                "curl",
                "-s",
                "-o",
                out,
                "--max-time",
                str(CURL_TIMEOUT),
                "--http0.9",
                "--compressed",
                "-H",
                "Accept-Encoding: gzip, deflate",
                url_of(v),
            ]
        ),
        stdin=subprocess.DEVNULL,
    ).returncode
    got = None
    if rc == 0 and os.path.exists(out):
        with open(out, "rb") as f:
            got = sha256(f.read())
    return got, rc


# ---------------------------------------------------------------------------------------------
# Captures: tcpdump around each browser fetch, and when that fetch is over.


def wait_for_line(stream, needle, timeout):
    """Reads `stream` (a pipe) until a line contains `needle`; False on EOF or timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            return False
        buf += chunk
        if needle in buf:
            return True
    return False


class Tcpdump:
    """tcpdump on the client end of the veth, writing every `tcp port 80` packet to `pcap`."""

    def __init__(self, pcap, what):
        # -Z root: Debian's tcpdump otherwise drops to user tcpdump, which may not write here.
        # --immediate-mode -U: every packet reaches the file at once, none waits in a buffer.
        argv = ["tcpdump", "-i", CLIENT_IF, "-s", "0", "--immediate-mode", "-U", "-n", "-Z", "root"]
        self.proc = subprocess.Popen(
            in_client(argv + ["-w", pcap, "tcp port 80"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not wait_for_line(self.proc.stderr, b"listening on", 15):
            self.stop()
            raise RuntimeError(f"tcpdump did not start for {what}")

    def stop(self):
        # The last packets the kernel sent are microseconds behind the socket state that said
        # the connections are gone; give the packet socket that long to hand them over.
        time.sleep(0.02)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()


# /proc/net/tcp states that still belong to a live connection: all but TIME_WAIT (06), CLOSE (07)
# and LISTEN (0A). TIME_WAIT sends nothing more (short of a retransmitted FIN), so it does not
# count. The kernel lists SYN_RECV request sockets too.
LIVE_STATES = {"01", "02", "03", "04", "05", "08", "09", "0B"}


def port80_sockets(pid):
    """(local port, remote port, state) of every live TCP socket with port 80 at either end, in
    the network namespace of process `pid`."""
    out = []
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            lport = int(fields[1].split(":")[1], 16)
            rport = int(fields[2].split(":")[1], 16)
            if fields[3] in LIVE_STATES and 80 in (lport, rport):
                out.append((lport, rport, fields[3]))
    return out


def namespace_pid(ns):
    """Some process inside network namespace `ns` (regen.sh's server in the server namespace)."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    if not pids:
        raise RuntimeError(f"no process in namespace {ns}: is server.py running?")
    return int(pids[0])


def wait_quiet(pids, timeout, hold=QUIET_HOLD):
    """Waits until no live port-80 connection is left in the namespaces of `pids` and none came
    up for `hold` seconds. Returns (True, seconds waited) or (False, the sockets still live)."""
    started = time.monotonic()
    quiet_since = None
    while True:
        now = time.monotonic()
        live = [s for pid in pids for s in port80_sockets(pid)]
        if live:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= hold:
            return True, now - started
        if now - started > timeout:
            return False, live
        time.sleep(0.005)


def kill_client_sockets():
    """Aborts whatever Chromium still holds towards the server (ss -K: the kernel resets it)."""
    subprocess.run(
        in_client(["ss", "-K", "-t", "dst", SERVER, "dport", "=", "80"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# ---------------------------------------------------------------------------------------------
# Reading a capture back.


def read_pcap(pcap):
    """(timestamp, Ethernet frame) of every packet in a classic pcap file."""
    with open(pcap, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"{pcap}: link type {linktype}, expected Ethernet")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl = struct.unpack(endian + "III", data[off : off + 12])
        yield sec + frac / 1e6, data[off + 16 : off + 16 + incl]
        off += 16 + incl


class Connection:
    """One TCP connection between Chromium and the server, as far as the capture shows it."""

    def __init__(self, client_port):
        self.client_port = client_port
        self.client_isn = None  # from the SYN; None: the connection began before the capture
        self.server_isn = None  # from the SYN-ACK
        self.segments = {"client": {}, "server": {}}  # offset after the ISN -> payload
        self.fin = {"client": False, "server": False}
        self.rst = False

    @staticmethod
    def _stream(segments, isn):
        """The bytes of one direction, reassembled by sequence number. Returns (bytes, hole):
        hole is True when a later segment is missing its predecessor in the capture."""
        out = bytearray()
        if isn is None:
            return bytes(out), bool(segments)
        for pos in sorted(segments):
            seg = segments[pos]
            if pos > len(out):
                return bytes(out), True
            out[pos : pos + len(seg)] = seg
        return bytes(out), False

    def request(self):
        return self._stream(self.segments["client"], self.client_isn)[0]

    def response(self):
        return self._stream(self.segments["server"], self.server_isn)

    def path(self):
        """The path of the request line, or None when Chromium sent no request."""
        parts = self.request().split(b"\r\n", 1)[0].split(b" ")
        return parts[1].decode("latin-1").split("?", 1)[0] if len(parts) >= 2 else None

    def complete(self):
        """Both the start and the end of the connection are in the capture."""
        return self.client_isn is not None and (self.rst or all(self.fin.values()))


def connections(pcap):
    """Every TCP connection with port 80 in `pcap`, in the order of their first packet."""
    out = []
    current = {}  # client port -> its latest Connection
    for _ts, frame in read_pcap(pcap):
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 6:
            continue
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        if sport == 80:
            side, port = "server", dport
        elif dport == 80:
            side, port = "client", sport
        else:
            continue
        flags = tcp[13]
        conn = current.get(port)
        if side == "client" and flags & 0x12 == 0x02 and (conn is None or conn.client_isn != seq):
            conn = None  # a new SYN: a new connection, even if the port was used before
        if conn is None:
            conn = current[port] = Connection(port)
            out.append(conn)
        if flags & 0x02:
            if side == "client":
                conn.client_isn = seq
            else:
                conn.server_isn = seq
            continue
        isn = conn.client_isn if side == "client" else conn.server_isn
        body = tcp[(tcp[12] >> 4) * 4 :]
        if body:
            base = isn if isn is not None else seq - 1  # offsets only matter within the capture
            conn.segments[side][(seq - base - 1) % 2**32] = body
        if flags & 0x01:
            conn.fin[side] = True
        if flags & 0x04:
            conn.rst = True
    return out


def check_capture(v, pcap, sent):
    """Checks the capture of one variant. Returns (details, list of problems). The first
    connection that asked for the variant's URL must carry the variant's whole response, or a
    prefix of it where Chromium closed the connection early."""
    conns = connections(pcap)
    url_path = "/" + v.id
    mine = [c for c in conns if c.path() == url_path]
    d = {
        "connections": len(conns),
        "requests": sorted({c.path() for c in conns if c.path() is not None}),
    }
    problems = []
    if not mine:
        problems.append(f"no connection asks for {url_path}")
    else:
        seen, hole = mine[0].response()
        if hole:
            problems.append(f"the capture misses part of the response ({len(seen)} bytes before the hole)")
        if seen == sent:
            d["response"] = "whole"
        elif sent.startswith(seen) and not hole:
            d["response"] = f"prefix {len(seen)} of {len(sent)}"
            if not seen:
                problems.append("the server sent nothing on the first connection")
        else:
            problems.append(f"the first connection's {len(seen)} response bytes are not the variant's {len(sent)}")
    foreign = [p for p in d["requests"] if p not in (url_path, "/favicon.ico")]
    if foreign:
        problems.append(f"requests of something else: {', '.join(foreign)}")
    partial = [c.client_port for c in conns if not c.complete()]
    if partial:
        problems.append(f"connections not wholly in the capture (client ports {partial})")
    return d, problems


# ---------------------------------------------------------------------------------------------
# Pass 2: Chromium over the DevTools pipe.


class Chromium:
    def __init__(self, profile, log_path):
        # Both pipe ends are moved above fd 10 first so that dup2 onto 3 and 4 in the child can
        # never clobber one another.
        cmd_r, cmd_w = (self._high(fd) for fd in os.pipe())
        evt_r, evt_w = (self._high(fd) for fd in os.pipe())
        argv = in_client(["chromium"] + CHROMIUM_FLAGS + [f"--user-data-dir={profile}", "about:blank"])
        self.pid = os.posix_spawnp(
            argv[0],
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
                (os.POSIX_SPAWN_DUP2, cmd_r, 3),
                (os.POSIX_SPAWN_DUP2, evt_w, 4),
            ],
            setsid=True,  # its own process group, so every helper process can be ended with it
        )
        os.close(cmd_r)
        os.close(evt_w)
        self.wfd, self.rfd = cmd_w, evt_r
        self.buf = b""
        self.next_id = 0
        self.events = []

    @staticmethod
    def _high(fd):
        new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return new

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.rfd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method, params=None, session=None):
        self.next_id += 1
        m = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        data = json.dumps(m).encode() + b"\0"
        while data:
            data = data[os.write(self.wfd, data) :]
        return self.next_id

    def call(self, method, params=None, session=None, timeout=10.0):
        mid = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m is None:
                raise TimeoutError(f"{method}: no reply in {timeout} s")
            if m.get("id") == mid:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, match, timeout):
        """The first queued or arriving event for which match(event) is true, or None."""
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if match(e):
                    return self.events.pop(i)
            m = self._read_message(deadline)
            if m is None:
                return None
            if "method" in m:
                self.events.append(m)

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # helper processes left in its group, if any
        except ProcessLookupError:
            pass
        os.close(self.wfd)
        os.close(self.rfd)


def browser_fetch(chrome, v, download_dir):
    """Navigates a fresh tab to the variant. Returns (sha256 of the saved download or None,
    details for the log)."""
    url = url_of(v)
    detail = {}
    target = chrome.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = chrome.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        chrome.call("Page.enable", session=session)
        try:
            nav = chrome.call("Page.navigate", {"url": url}, session=session, timeout=NAVIGATE_TIMEOUT)
        except TimeoutError:
            nav = {"errorText": "(navigate timed out)"}
        error = nav.get("errorText")
        detail["navigate"] = error or "committed"

        def begins(e):
            return e["method"] == "Browser.downloadWillBegin" and e["params"].get("url") == url

        # ERR_ABORTED is what a navigation that turned into a download reports; anything else
        # failed outright or rendered, and a download is then only waited for briefly.
        if error == "net::ERR_ABORTED":
            begin = chrome.wait_event(begins, DOWNLOAD_START_WAIT)
        else:
            if not error:
                chrome.wait_event(
                    lambda e: e.get("sessionId") == session and e["method"] == "Page.loadEventFired", LOAD_WAIT
                )
            begin = chrome.wait_event(begins, GRACE)
        if begin is None:
            return None, detail
        guid = begin["params"]["guid"]
        detail["suggested"] = begin["params"].get("suggestedFilename")

        def finished(e):
            return (
                e["method"] == "Browser.downloadProgress"
                and e["params"]["guid"] == guid
                and e["params"]["state"] in ("completed", "canceled")
            )

        done = chrome.wait_event(finished, DOWNLOAD_FINISH_WAIT)
        # Later progress events of this download are of no use any more.
        chrome.events = [e for e in chrome.events if e["params"].get("guid") != guid]
        if done is None:
            detail["download"] = "timeout"
            try:
                chrome.call("Browser.cancelDownload", {"guid": guid})
            except RuntimeError:
                pass
            return None, detail
        detail["download"] = done["params"]["state"]
        path = os.path.join(download_dir, guid)
        if done["params"]["state"] != "completed":
            return None, detail
        with open(path, "rb") as f:
            saved = f.read()
        os.unlink(path)
        detail["saved_bytes"] = len(saved)
        return sha256(saved), detail
    finally:
        # about:blank first: it stops whatever the page still loads (a /favicon.ico, say)
        # before the tab goes.
        try:
            chrome.call("Page.navigate", {"url": "about:blank"}, session=session, timeout=NAVIGATE_TIMEOUT)
        except (RuntimeError, TimeoutError):
            pass
        chrome.call("Target.closeTarget", {"targetId": target})
        # Events of the closed tab would only pile up.
        chrome.events = [e for e in chrome.events if e.get("sessionId") != session]


# ---------------------------------------------------------------------------------------------


def tool_version(argv):
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="regenerate only ids matching this regular expression")
    ap.add_argument(
        "--skip-captures", action="store_true", help="keep the existing captures and curl results; Chromium only"
    )
    ap.add_argument("--details", default="/tmp/xdpc-ev-details.json", help="where to write per-variant details")
    args = ap.parse_args()

    p = variants.payload()
    selected = [v for v in variants.all_variants() if not args.only or re.search(args.only, v.id)]
    if not selected:
        sys.exit(f"regen.py: no variant matches {args.only!r}")
    old = {}
    if os.path.exists(MANIFEST):
        with open(MANIFEST) as f:
            old = {e["id"]: e for e in json.load(f)["variants"]}
    started = time.monotonic()
    details = {v.id: {} for v in selected}
    curl_result = {}

    def pcap_of(v):
        return os.path.join(HERE, "captures", v.family, v.name + ".pcap")

    # With --skip-captures, a variant keeps its pcap and curl result if it has both.
    keep = {v.id for v in selected if args.skip_captures and v.id in old and os.path.exists(pcap_of(v))}

    # Pass 1: curl. Not captured; the server answers it exactly as it answers Chromium.
    with tempfile.TemporaryDirectory(prefix="xdpc-ev-") as scratch:
        for i, v in enumerate(selected, 1):
            if v.id in keep:
                curl_result[v.id] = old[v.id].get("curl_sha256")
                continue
            curl_result[v.id], details[v.id]["curl_exit"] = curl_fetch(v, scratch)
            if i % 100 == 0:
                print(f"curl: {i}/{len(selected)}", flush=True)
    t_curl = time.monotonic() - started

    # Pass 2: Chromium, each fetch captured.
    browser_result = {}
    problems = {}
    profile = tempfile.mkdtemp(prefix="xdpc-ev-profile-")
    download_dir = tempfile.mkdtemp(prefix="xdpc-ev-downloads-")
    scratch = tempfile.mkdtemp(prefix="xdpc-ev-")
    chrome_log = os.path.join(tempfile.gettempdir(), "xdpc-ev-chromium.log")
    # Chromium's loading predictor preconnects spare sockets to the host it navigates to (two,
    # and more after a page rendered). They never carry a request, and the server holds each for
    # its 10 s request timeout: network prediction off ("Preload pages": never) keeps them away.
    os.makedirs(os.path.join(profile, "Default"))
    with open(os.path.join(profile, "Default", "Preferences"), "w") as f:
        json.dump({"net": {"network_prediction_options": 2}}, f)
    chrome = Chromium(profile, chrome_log)
    try:
        version = chrome.call("Browser.getVersion", timeout=60)
        details["_chromium"] = version
        chrome.call(
            "Browser.setDownloadBehavior",
            {"behavior": "allowAndName", "downloadPath": download_dir, "eventsEnabled": True},
        )
        # Both ends of every connection: Chromium's namespace and the server's.
        pids = (chrome.pid, namespace_pid(SERVER_NS))
        for i, v in enumerate(selected, 1):
            d = details[v.id]
            # Nothing of the previous variant (or of Chromium's start) may still be open.
            quiet, left = wait_quiet(pids, QUIET_WAIT, hold=0)
            if not quiet:
                d["reset_before"] = len(left)
                kill_client_sockets()
                if not wait_quiet(pids, QUIET_WAIT)[0]:
                    raise RuntimeError(f"connections before {v.id} do not end: {left}")
            if v.id in keep:
                browser_result[v.id], fetched = browser_fetch(chrome, v, download_dir)
                d.update(fetched)
                continue
            # Written aside and moved into place whole: an interrupted run leaves no torn pcap.
            partial = os.path.join(scratch, "capture.pcap")
            tcpdump = Tcpdump(partial, v.id)
            try:
                t0 = time.monotonic()
                browser_result[v.id], fetched = browser_fetch(chrome, v, download_dir)
                d["fetch_seconds"] = round(time.monotonic() - t0, 3)
                d.update(fetched)
                quiet, result = wait_quiet(pids, QUIET_WAIT)
                if quiet:
                    d["quiet_after"] = round(result, 3)
                else:
                    # Chromium holds a connection the server is long done with: reset it
                    # while the capture still runs, so that the pcap holds its end.
                    d["reset_after"] = len(result)
                    kill_client_sockets()
                    wait_quiet(pids, QUIET_WAIT)
            finally:
                tcpdump.stop()
            checked, found = check_capture(v, partial, b"".join(v.pieces(p)))
            d.update(checked)
            if found:
                d["capture_problems"] = found
                problems[v.id] = found
                for problem in found:
                    print(f"WARNING: {v.id}: {problem}", file=sys.stderr)
            os.makedirs(os.path.dirname(pcap_of(v)), exist_ok=True)
            shutil.move(partial, pcap_of(v))
            os.chmod(pcap_of(v), 0o644)
            if i % 50 == 0:
                print(f"browser: {i}/{len(selected)}", flush=True)
    finally:
        chrome.close()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(download_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    t_total = time.monotonic() - started

    # Manifest: entries of unselected variants are kept from the old manifest (when --only).
    table = variants.by_id()
    entries = {k: e for k, e in old.items() if k in table}
    for v in selected:
        entries[v.id] = {
            "id": v.id,
            "family": v.family,
            "description": v.description,
            "capture": f"captures/{v.family}/{v.name}.pcap",
            "browser_sha256": browser_result[v.id],
            "curl_sha256": curl_result[v.id],
        }
    manifest = {
        "generated": datetime.date.today().isoformat(),
        "browser": tool_version(["chromium", "--version"]),
        "curl": tool_version(["curl", "--version"]),
        "payload_sha256": sha256(p),
        "variants": [entries[k] for k in sorted(entries)],
    }
    with open(MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True, ensure_ascii=True)
        f.write("\n")
    if not args.only:
        # Captures of variants that no longer exist would be replayed against nothing.
        wanted = {os.path.join(HERE, e["capture"]) for e in entries.values()}
        for root, _dirs, files in os.walk(os.path.join(HERE, "captures")):
            for name in files:
                if os.path.join(root, name) not in wanted:
                    os.unlink(os.path.join(root, name))
    with open(args.details, "w") as f:
        json.dump(details, f, indent=1, sort_keys=True)

    summary(manifest, sha256(p), [v.id for v in selected])
    captured = [details[v.id] for v in selected if v.id not in keep]
    if captured:
        multi = sum(d.get("connections", 0) > 1 for d in captured)
        prefix = sum(d.get("response", "").startswith("prefix") for d in captured)
        reset = sum("reset_after" in d for d in captured)
        print(
            f"\ncaptures: {len(captured)}; {multi} with more than one connection, {prefix} with only a "
            f"prefix of the response, {reset} with a connection reset by regen, {len(problems)} with problems"
        )
    print(
        f"\n{len(selected)} variants; curl {t_curl:.0f} s, browser and captures {t_total - t_curl:.0f} s; "
        f"details in {args.details}, Chromium log in {chrome_log}"
    )
    if problems:
        sys.exit(f"regen.py: {len(problems)} captures have problems (see WARNING lines and {args.details})")


def summary(manifest, payload_sha, ids):
    ids = set(ids)
    rows = {}
    for e in manifest["variants"]:
        if e["id"] not in ids:
            continue
        r = rows.setdefault(e["family"], [0, 0, 0, 0, 0])
        b = e["browser_sha256"]
        r[0] += 1
        r[1 if b == payload_sha else 2 if b else 3] += 1
        r[4] += e["curl_sha256"] == b
    print(f"\n{manifest['browser']}; {manifest['curl']}")
    head = ("family", "variants", "exact payload", "other bytes", "nothing saved", "curl agrees")
    print("%-9s %9s %14s %12s %14s %12s" % head)
    total = [0, 0, 0, 0, 0]
    for fam in variants.FAMILIES:
        if fam in rows:
            print("%-9s %9d %14d %12d %14d %12d" % ((fam,) + tuple(rows[fam])))
            total = [a + b for a, b in zip(total, rows[fam])]
    print("%-9s %9d %14d %12d %14d %12d" % (("total",) + tuple(total)))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # regen.sh's trap removes the network; the manifest is only written at the very end.
        sys.exit(130)
