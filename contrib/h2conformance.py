#!/usr/bin/env python3
"""h2conformance.py - an HTTP/2 server conformance checker.

Sends the frame sequences RFC 9113 (HTTP/2) and RFC 7541 (HPACK) say a
server must handle in a given way, one case per fresh connection, and
checks the answer: a GOAWAY or RST_STREAM with the error code the RFC
names, the connection closing, a response, a PING or SETTINGS
acknowledgement. The cases are numbered by RFC section, as h2spec numbers
them ("generic/...", "http2/<section>/<n>", "hpack/<section>/<n>"), so the
two tools' reports read alike; the cases are written from the RFCs' text.

Needs Python 3 and, from Debian, python3-hyperframe (frame parsing) and
python3-hpack (response header decoding, Huffman coding).

  h2conformance.py [--host H] [--port N] [--tls] [--sni NAME] [--insecure]
                   [--cacert FILE] [--authority A] [--path P] [--timeout S]
                   [--case PREFIX]... [--lenient] [-j FILE] [-q]

A case passes when one of its acceptable outcomes is seen before the
timeout (default 2 s per wait). A connection error may also be seen as the
connection closing (the GOAWAY can be lost in a TCP reset), and a stream
error as a connection error with the same code. By default a GOAWAY or
RST_STREAM carrying an error code the RFC does not allow for the case fails
it at once; --lenient instead keeps waiting (and counts a close that
follows as a pass), as h2spec does. Exit status: 0 when no case failed, 1
when one did, 2 when the server cannot be reached at all.
"""
import argparse
import select
import socket
import ssl
import struct
import sys
import time
import xml.sax.saxutils

try:
    from hyperframe.frame import (
        Frame, DataFrame, HeadersFrame, RstStreamFrame,
        SettingsFrame, PushPromiseFrame, PingFrame, GoAwayFrame,
        WindowUpdateFrame, ContinuationFrame)
    from hpack import Decoder
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
except ImportError as e:  # pragma: no cover
    sys.stderr.write("h2conformance: %s (Debian: apt-get install "
                     "python3-hyperframe python3-hpack)\n" % e)
    sys.exit(3)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types and flags (RFC 9113 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

# error codes (RFC 9113 7)
ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
          "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR",
          "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR",
          "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
E = {name: code for code, name in enumerate(ERRORS)}

# settings identifiers (RFC 9113 6.5.2)
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6


def err_name(code):
    return ERRORS[code] if 0 <= code < len(ERRORS) else "0x%x" % code


class Skip(Exception):
    """The case cannot be run against this server (a reason is given)."""


class Fail(Exception):
    """The case failed (the message says what was seen)."""


# ------------------------------------------------------------------ HPACK
# Header blocks are built by hand, and only with representations that leave
# the dynamic table alone (unless a case is about it), so a case's crafted
# fragment can never desynchronise the tables of later requests.

def hp_int(value, prefix_bits, first=0):
    """RFC 7541 5.1 integer with an N-bit prefix; FIRST holds the high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def hp_str(s, huffman=False):
    """RFC 7541 5.2 string literal."""
    if isinstance(s, str):
        s = s.encode()
    if huffman:
        s = _huffman.encode(s)
        return hp_int(len(s), 7, 0x80) + s
    return hp_int(len(s), 7) + s


def hp_raw_huffman(data):
    """A string literal whose Huffman-coded octets are given as is."""
    return hp_int(len(data), 7, 0x80) + data


STATIC_NAMES = {":authority": 1, ":method": 2, ":path": 4, ":scheme": 6,
                ":status": 8, "content-length": 28, "te": 0, "user-agent": 58}


def hp_literal(name, value, huffman=False):
    """Literal header field without indexing (RFC 7541 6.2.2): the name by
    its static index when it has one, else as a literal."""
    idx = STATIC_NAMES.get(name, 0)
    if idx:
        return hp_int(idx, 4, 0x00) + hp_str(value, huffman)
    return b"\x00" + hp_str(name, huffman) + hp_str(value, huffman)


def hp_block(headers):
    return b"".join(hp_literal(n, v) for n, v in headers)


def huffman_bits(text):
    """The Huffman code of TEXT as a string of '0'/'1' (no padding)."""
    return "".join(format(REQUEST_CODES[c], "0%db" % REQUEST_CODES_LENGTH[c])
                   for c in text.encode())


def bits_to_bytes(bits):
    assert len(bits) % 8 == 0
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


# ------------------------------------------------------------------ frames

def frame(ftype, flags, stream_id, payload=b""):
    """One raw frame: any length, type, flags and id, as a case needs."""
    n = len(payload)
    return struct.pack(">BHBBL", n >> 16, n & 0xffff, ftype, flags,
                       stream_id & 0xffffffff) + payload


def settings_frame(pairs=(), flags=0, stream_id=0):
    return frame(SETTINGS, flags, stream_id,
                 b"".join(struct.pack(">HL", k, v) for k, v in pairs))


def ping_frame(data=b"h2spec\0\0", flags=0, stream_id=0):
    return frame(PING, flags, stream_id, data)


def window_update(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">L", increment))


def rst_stream(stream_id, code):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">L", code))


def goaway(last, code, stream_id=0, debug=b""):
    return frame(GOAWAY, 0, stream_id, struct.pack(">LL", last, code) + debug)


def priority_payload(dep=0, weight=16, exclusive=False):
    """WEIGHT is the weight as RFC 9113 counts it (1..256)."""
    return struct.pack(">LB", dep | (0x80000000 if exclusive else 0), weight - 1)


def priority(stream_id, dep=0, weight=16, exclusive=False):
    return frame(PRIORITY, 0, stream_id, priority_payload(dep, weight, exclusive))


def data(stream_id, payload, end=True, pad=None):
    if pad is None:
        return frame(DATA, END_STREAM if end else 0, stream_id, payload)
    return frame(DATA, (END_STREAM if end else 0) | PADDED, stream_id,
                 bytes([pad]) + payload + b"\0" * pad)


# ------------------------------------------------------------------ connection

class Event:
    """What a wait saw: a frame, the connection closing, or the timeout."""

    def __init__(self, kind, fr=None, detail=""):
        self.kind, self.frame, self.detail = kind, fr, detail

    def __str__(self):
        if self.kind != "frame":
            return self.detail or self.kind
        f = self.frame
        name = type(f).__name__.replace("Frame", "").upper()
        if isinstance(f, GoAwayFrame):
            return "GOAWAY (%s, last stream %d)" % (err_name(f.error_code), f.last_stream_id)
        if isinstance(f, RstStreamFrame):
            return "RST_STREAM (stream %d, %s)" % (f.stream_id, err_name(f.error_code))
        if isinstance(f, HeadersFrame):
            return "HEADERS (stream %d%s)" % (f.stream_id, getattr(f, "status", ""))
        if isinstance(f, DataFrame):
            return "DATA (stream %d, %d octets)" % (f.stream_id, len(f.data))
        return "%s (stream %d, flags %s)" % (name, f.stream_id, ",".join(sorted(f.flags)) or "-")


class Conn:
    def __init__(self, opts):
        self.o = opts
        self.sock = None
        self.buf = b""
        self.closed = False
        self.decoder = Decoder()
        self.hblock = None          # (stream, bytes) of a header block in progress
        self.server_settings = {}
        self.next_id = 1
        # what flow control lets us send (RFC 9113 6.9): the connection's
        # window, and per stream the WINDOW_UPDATE increments received
        self.conn_window = 65535
        self.stream_credit = {}
        self.seen = []              # every event, for a failure's report

    # ---- transport
    def open(self):
        o = self.o
        raw = socket.create_connection((o.host, o.port), timeout=o.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if o.tls:
            ctx = ssl.create_default_context(cafile=o.cacert)
            if o.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif not o.sni:
                raise Fail("--tls to an address: give the certificate's name with --sni "
                           "(or --insecure)")
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(raw, server_hostname=o.sni)
            if s.selected_alpn_protocol() != "h2":
                s.close()
                raise Fail("ALPN did not select h2 (got %r)" % s.selected_alpn_protocol())
            self.sock = s
        else:
            self.sock = raw

    def send(self, *chunks):
        if self.closed:
            return
        try:
            self.sock.sendall(b"".join(chunks))
        except OSError:
            # the server closed first; the next wait reports the close
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        """Read more bytes; False on close or timeout (self.closed tells)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
            if not pending:
                r, _, _ = select.select([self.sock], [], [], left)
                if not r:
                    return False
            try:
                chunk = self.sock.recv(65536)
            except ssl.SSLWantReadError:
                continue
            except (OSError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self.closed = True
                return False
            self.buf += chunk
            return True

    def next_event(self, timeout=None):
        """The next frame from the server, or a close or timeout event."""
        deadline = time.monotonic() + (self.o.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    head, body = self.buf[:9], self.buf[9:9 + n]
                    self.buf = self.buf[9 + n:]
                    ev = Event("frame", self._parse(head, body))
                    self.seen.append(ev)
                    return ev
            if self.closed:
                ev = Event("closed", detail="connection closed")
                self.seen.append(ev)
                return ev
            if not self._fill(deadline) and not self.closed:
                ev = Event("timeout", detail="timeout (%gs)" % (self.o.timeout if timeout is None else timeout))
                self.seen.append(ev)
                return ev

    def _parse(self, head, body):
        f, _ = Frame.parse_frame_header(memoryview(head))
        try:
            f.parse_body(memoryview(body))
        except Exception as e:   # a frame the server should not have sent
            raise Fail("server sent a malformed frame: %s" % e)
        # header blocks are decoded in order so the decoder's table stays
        # in step; a response's :status is kept on its HEADERS frame
        if isinstance(f, (HeadersFrame, PushPromiseFrame)):
            self.hblock = (f.stream_id, bytes(f.data), f)
        elif isinstance(f, ContinuationFrame) and self.hblock:
            sid, blk, first = self.hblock
            self.hblock = (sid, blk + bytes(f.data), first)
        if self.hblock and "END_HEADERS" in f.flags:
            sid, blk, first = self.hblock
            self.hblock = None
            try:
                hdrs = self.decoder.decode(blk, raw=False)
                first.fields = hdrs
                status = dict(hdrs).get(":status")
                if status:
                    first.status = ", :status " + status
            except Exception as e:
                raise Fail("cannot decode the server's header block: %s" % e)
        if isinstance(f, WindowUpdateFrame):
            if f.stream_id == 0:
                self.conn_window += f.window_increment
            else:
                self.stream_credit[f.stream_id] = \
                    self.stream_credit.get(f.stream_id, 0) + f.window_increment
        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            self.server_settings.update(f.settings)
            self.send(settings_frame(flags=ACK))
        return f

    # ---- the connection preface (RFC 9113 3.4)
    def handshake(self, settings=None):
        """Preface and SETTINGS; waits for the server's SETTINGS and the ACK
        of ours."""
        self.open()
        self.send(PREFACE, settings_frame(settings or []))
        got_settings = got_ack = False
        while not (got_settings and got_ack):
            ev = self.next_event()
            if ev.kind != "frame":
                raise Fail("handshake: %s before the server's SETTINGS and ACK" % ev)
            if isinstance(ev.frame, SettingsFrame):
                if "ACK" in ev.frame.flags:
                    got_ack = True
                else:
                    got_settings = True
            elif isinstance(ev.frame, GoAwayFrame):
                raise Fail("handshake: %s" % ev)
        self.seen = []
        return self

    # ---- requests
    def stream(self):
        sid = self.next_id
        self.next_id += 2
        return sid

    def req_headers(self, method="GET", path=None, extra=()):
        o = self.o
        return [(":method", method), (":scheme", "https" if o.tls else "http"),
                (":path", path or o.path), (":authority", o.authority)] + list(extra)

    def headers(self, sid, block=None, end_stream=True, end_headers=True,
                pad=None, prio=None, method="GET", extra=()):
        if block is None:
            block = hp_block(self.req_headers(method, extra=extra))
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        payload = block
        if prio is not None:
            flags |= PRIORITY_FLAG
            payload = priority_payload(*prio) + payload
        if pad is not None:
            flags |= PADDED
            payload = bytes([pad]) + payload + b"\0" * pad
        return frame(HEADERS, flags, sid, payload)

    @property
    def max_frame_size(self):
        return self.server_settings.get(S_MAX_FRAME_SIZE, 16384)


# ------------------------------------------------------------------ verdicts

def _codes(codes):
    return "/".join(err_name(c) for c in codes)


def _seen(conn):
    return "; ".join(str(e) for e in conn.seen[-6:]) or "nothing"


def expect_connection_error(conn, *codes):
    """GOAWAY with one of CODES, or the connection closing."""
    want = "GOAWAY (%s) or connection closed" % _codes(codes)
    while True:
        ev = conn.next_event()
        if ev.kind == "closed":
            return
        if ev.kind == "timeout":
            raise Fail("expected %s; got %s" % (want, _seen(conn)))
        f = ev.frame
        if isinstance(f, GoAwayFrame):
            if f.error_code in codes:
                return
            if not conn.o.lenient:
                raise Fail("expected %s; got %s" % (want, _seen(conn)))


def expect_stream_error(conn, *codes):
    """RST_STREAM or GOAWAY with one of CODES, or the connection closing."""
    want = "RST_STREAM or GOAWAY (%s), or connection closed" % _codes(codes)
    while True:
        ev = conn.next_event()
        if ev.kind == "closed":
            return
        if ev.kind == "timeout":
            raise Fail("expected %s; got %s" % (want, _seen(conn)))
        f = ev.frame
        if isinstance(f, (GoAwayFrame, RstStreamFrame)):
            if f.error_code in codes:
                return
            if not conn.o.lenient:
                raise Fail("expected %s; got %s" % (want, _seen(conn)))


def expect_close(conn):
    """The connection closing (frames before it, a GOAWAY say, are fine)."""
    while True:
        ev = conn.next_event()
        if ev.kind == "closed":
            return
        if ev.kind == "timeout":
            raise Fail("expected the connection to close; got %s" % _seen(conn))


def expect_goaway(conn, *codes):
    want = "GOAWAY (%s)" % _codes(codes)
    while True:
        ev = conn.next_event()
        if ev.kind != "frame":
            raise Fail("expected %s; got %s" % (want, _seen(conn)))
        if isinstance(ev.frame, GoAwayFrame):
            if ev.frame.error_code in codes:
                return
            raise Fail("expected %s; got %s" % (want, _seen(conn)))


def _fatal(conn, ev, want, sid=None):
    f = ev.frame
    if ev.kind != "frame" or isinstance(f, GoAwayFrame) or (
            isinstance(f, RstStreamFrame) and (sid is None or f.stream_id == sid)):
        raise Fail("expected %s; got %s" % (want, _seen(conn)))


def expect_ping_ack(conn, payload=b"h2conf\x01\x02", send=True):
    """A PING sent now is acknowledged: the connection is still usable."""
    if send:
        conn.send(ping_frame(payload))
    want = "PING ACK"
    while True:
        ev = conn.next_event()
        f = ev.frame
        if isinstance(f, PingFrame) and "ACK" in f.flags:
            if bytes(f.opaque_data) == payload:
                return
            raise Fail("PING ACK with data %r, not %r" % (bytes(f.opaque_data), payload))
        _fatal(conn, ev, want)


def expect_settings_ack(conn):
    while True:
        ev = conn.next_event()
        f = ev.frame
        if isinstance(f, SettingsFrame) and "ACK" in f.flags:
            return
        _fatal(conn, ev, "SETTINGS ACK")


def expect_response(conn, sid):
    """HEADERS on stream SID (any status)."""
    want = "HEADERS on stream %d" % sid
    while True:
        ev = conn.next_event()
        f = ev.frame
        if isinstance(f, HeadersFrame) and f.stream_id == sid:
            return
        _fatal(conn, ev, want, sid)


def expect_data_length(conn, sid, length):
    """The next DATA on SID carries exactly LENGTH octets (flow control)."""
    want = "DATA on stream %d with %d octet(s)" % (sid, length)
    while True:
        ev = conn.next_event()
        f = ev.frame
        if isinstance(f, DataFrame) and f.stream_id == sid:
            if len(f.data) == length:
                return
            if not f.data and "END_STREAM" in f.flags:
                raise Skip("the response has no body to check flow control with (use --path)")
            raise Fail("expected %s; got %s" % (want, ev))
        if isinstance(f, HeadersFrame) and f.stream_id == sid and "END_STREAM" in f.flags:
            raise Skip("the response has no body to check flow control with (use --path)")
        _fatal(conn, ev, want, sid)


def read_until_stream_end(conn, sid):
    """Everything up to the END_STREAM of SID's response."""
    while True:
        ev = conn.next_event()
        f = ev.frame
        if isinstance(f, (HeadersFrame, DataFrame)) and f.stream_id == sid \
                and "END_STREAM" in f.flags:
            return
        _fatal(conn, ev, "a complete response on stream %d" % sid, sid)


# ------------------------------------------------------------------ cases

CASES = []   # (id, section title, description, function)
SECTIONS = {}


def section(prefix, title):
    SECTIONS[prefix] = title


def case(cid, desc):
    def reg(fn):
        CASES.append((cid, desc, fn))
        return fn
    return reg


def h(c):
    """A connection after the preface exchange."""
    return c.handshake()


# ---- generic: what every server must serve (RFC 9113 3 to 8, RFC 7541)
section("generic/1", "Starting HTTP/2")


@case("generic/1/1", "Sends a client connection preface")
def _(c):
    h(c)


section("generic/2", "Streams and Multiplexing")


@case("generic/2/1", "Sends a PRIORITY frame on idle stream")
def _(c):
    h(c).send(priority(c.stream()))
    expect_ping_ack(c)


@case("generic/2/2", "Sends a WINDOW_UPDATE frame on half-closed (remote) stream")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid), window_update(sid, 1))
    expect_response(c, sid)


@case("generic/2/3", "Sends a PRIORITY frame on half-closed (remote) stream")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid), priority(sid, 0, 32))
    expect_response(c, sid)


@case("generic/2/4", "Sends a RST_STREAM frame on half-closed (remote) stream")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid), rst_stream(sid, E["CANCEL"]))
    expect_ping_ack(c)


@case("generic/2/5", "Sends a PRIORITY frame on closed stream")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid))
    read_until_stream_end(c, sid)
    c.send(priority(sid, 0, 32))
    expect_ping_ack(c)


section("generic/3.1", "DATA")


@case("generic/3.1/1", "Sends a DATA frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), data(sid, b"test"))
    expect_response(c, sid)


@case("generic/3.1/2", "Sends multiple DATA frames")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), data(sid, b"test", end=False),
           data(sid, b"test"))
    expect_response(c, sid)


@case("generic/3.1/3", "Sends a DATA frame with padding")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), data(sid, b"test", pad=8))
    expect_response(c, sid)


section("generic/3.2", "HEADERS")


@case("generic/3.2/1", "Sends a HEADERS frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid))
    expect_response(c, sid)


@case("generic/3.2/2", "Sends a HEADERS frame with padding")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, pad=8))
    expect_response(c, sid)


@case("generic/3.2/3", "Sends a HEADERS frame with priority")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, prio=(0, 255)))
    expect_response(c, sid)


section("generic/3.3", "PRIORITY")


@case("generic/3.3/1", "Sends a PRIORITY frame with priority 1")
def _(c):
    sid = h(c).stream()
    c.send(priority(sid, 0, 1), c.headers(sid))
    expect_response(c, sid)


@case("generic/3.3/2", "Sends a PRIORITY frame with priority 256")
def _(c):
    sid = h(c).stream()
    c.send(priority(sid, 0, 256), c.headers(sid))
    expect_response(c, sid)


@case("generic/3.3/3", "Sends a PRIORITY frame with stream dependency")
def _(c):
    s1 = h(c).stream()
    s2 = c.stream()
    c.send(priority(s1, 0, 16), priority(s2, s1, 16), c.headers(s2))
    expect_response(c, s2)


@case("generic/3.3/4", "Sends a PRIORITY frame with exclusive")
def _(c):
    s1 = h(c).stream()
    s2 = c.stream()
    c.send(priority(s1, 0, 16), priority(s2, s1, 16, True), c.headers(s2))
    expect_response(c, s2)


@case("generic/3.3/5", "Sends a PRIORITY frame for an idle stream, then send a HEADER frame for a lower stream ID")
def _(c):
    # PRIORITY does not open a stream (RFC 9113 5.1): a lower id is still new
    h(c)
    c.send(priority(5, 0, 16), c.headers(3))
    expect_response(c, 3)


section("generic/3.4", "RST_STREAM")


@case("generic/3.4/1", "Sends a RST_STREAM frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), rst_stream(sid, E["CANCEL"]))
    expect_ping_ack(c)


section("generic/3.5", "SETTINGS")


@case("generic/3.5/1", "Sends a SETTINGS frame")
def _(c):
    h(c).send(settings_frame([(S_ENABLE_PUSH, 0), (S_MAX_CONCURRENT_STREAMS, 100)]))
    expect_settings_ack(c)


section("generic/3.7", "PING")


@case("generic/3.7/1", "Sends a PING frame")
def _(c):
    h(c)
    expect_ping_ack(c)


section("generic/3.8", "GOAWAY")


def _ping_or_orderly_close(c):
    """After the client's GOAWAY the server may still answer a PING or may
    close the connection (with GOAWAY NO_ERROR at most): either is fine, an
    error code is not."""
    c.send(ping_frame(b"h2conf\x03\x04"))
    while True:
        ev = c.next_event()
        f = ev.frame
        if ev.kind == "closed":
            return
        if isinstance(f, PingFrame) and "ACK" in f.flags:
            return
        if isinstance(f, GoAwayFrame) and f.error_code == E["NO_ERROR"]:
            continue
        _fatal(c, ev, "PING ACK or an orderly close")


@case("generic/3.8/1", "Sends a GOAWAY frame")
def _(c):
    h(c).send(goaway(0, E["NO_ERROR"]))
    _ping_or_orderly_close(c)


section("generic/3.9", "WINDOW_UPDATE")


@case("generic/3.9/1", "Sends a WINDOW_UPDATE frame with stream ID 0")
def _(c):
    h(c).send(window_update(0, 1))
    expect_ping_ack(c)


@case("generic/3.9/2", "Sends a WINDOW_UPDATE frame with arbitrary stream ID")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), window_update(sid, 1),
           data(sid, b"test"))
    expect_response(c, sid)


section("generic/3.10", "CONTINUATION")


def _split(block, parts):
    n = max(1, len(block) // parts)
    chunks = [block[i:i + n] for i in range(0, len(block), n)]
    return chunks[0], chunks[1:]


@case("generic/3.10/1", "Sends a CONTINUATION frame")
def _(c):
    sid = h(c).stream()
    first, rest = _split(hp_block(c.req_headers()), 2)
    c.send(c.headers(sid, first, end_headers=False),
           frame(CONTINUATION, END_HEADERS, sid, b"".join(rest)))
    expect_response(c, sid)


@case("generic/3.10/2", "Sends multiple CONTINUATION frames")
def _(c):
    sid = h(c).stream()
    first, rest = _split(hp_block(c.req_headers()), 4)
    frames = [c.headers(sid, first, end_headers=False)]
    for i, chunk in enumerate(rest):
        frames.append(frame(CONTINUATION, END_HEADERS if i == len(rest) - 1 else 0, sid, chunk))
    c.send(*frames)
    expect_response(c, sid)


section("generic/4", "HTTP Message Exchanges")


@case("generic/4/1", "Sends a GET request")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid))
    expect_response(c, sid)


@case("generic/4/2", "Sends a HEAD request")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="HEAD"))
    expect_response(c, sid)


@case("generic/4/3", "Sends a POST request")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False, extra=[("content-length", "4")]),
           data(sid, b"test"))
    expect_response(c, sid)


@case("generic/4/4", "Sends a POST request with trailers")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False, extra=[("te", "trailers")]),
           data(sid, b"test", end=False),
           c.headers(sid, hp_block([("x-trailer", "done")])))
    expect_response(c, sid)


section("generic/5", "HPACK")


def _hpack_case(rep, table_update=b""):
    """A GET whose block ends with the representation REP under test."""
    def run(c):
        sid = h(c).stream()
        c.send(c.headers(sid, table_update + hp_block(c.req_headers()) + rep))
        expect_response(c, sid)
    return run


_NAME, _VAL = "x-h2conformance", "value"
for _n, (_d, _rep) in enumerate([
        ("Sends a indexed header field representation", b"\x90"),   # accept-encoding: gzip, deflate
        ("Sends a literal header field with indexing - indexed name",
         hp_int(58, 6, 0x40) + hp_str(_VAL)),
        ("Sends a literal header field with indexing - indexed name (with Huffman coding)",
         hp_int(58, 6, 0x40) + hp_str(_VAL, True)),
        ("Sends a literal header field with indexing - new name",
         b"\x40" + hp_str(_NAME) + hp_str(_VAL)),
        ("Sends a literal header field with indexing - new name (with Huffman coding)",
         b"\x40" + hp_str(_NAME, True) + hp_str(_VAL, True)),
        ("Sends a literal header field without indexing - indexed name",
         hp_int(58, 4, 0x00) + hp_str(_VAL)),
        ("Sends a literal header field without indexing - indexed name (with Huffman coding)",
         hp_int(58, 4, 0x00) + hp_str(_VAL, True)),
        ("Sends a literal header field without indexing - new name",
         b"\x00" + hp_str(_NAME) + hp_str(_VAL)),
        ("Sends a literal header field without indexing - new name (huffman encoded)",
         b"\x00" + hp_str(_NAME, True) + hp_str(_VAL, True)),
        ("Sends a literal header field never indexed - indexed name",
         hp_int(58, 4, 0x10) + hp_str(_VAL)),
        ("Sends a literal header field never indexed - indexed name (huffman encoded)",
         hp_int(58, 4, 0x10) + hp_str(_VAL, True)),
        ("Sends a literal header field never indexed - new name",
         b"\x10" + hp_str(_NAME) + hp_str(_VAL)),
        ("Sends a literal header field never indexed - new name (huffman encoded)",
         b"\x10" + hp_str(_NAME, True) + hp_str(_VAL, True)),
        ], 1):
    case("generic/5/%d" % _n, _d)(_hpack_case(_rep))

# a dynamic table size update must start the block (RFC 7541 4.2)
case("generic/5/14", "Sends a dynamic table size update")(
    _hpack_case(b"", hp_int(4096, 5, 0x20)))
case("generic/5/15", "Sends multiple dynamic table size update")(
    _hpack_case(b"", hp_int(0, 5, 0x20) + hp_int(4096, 5, 0x20)))


# ---- http2: RFC 9113
section("http2/3.5", "HTTP/2 Connection Preface")


@case("http2/3.5/1", "Sends client connection preface")
def _(c):
    h(c)


@case("http2/3.5/2", "Sends invalid connection preface")
def _(c):
    c.open()
    c.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    expect_connection_error(c, E["PROTOCOL_ERROR"])


section("http2/4.1", "Frame Format")


@case("http2/4.1/1", "Sends a frame with unknown type")
def _(c):
    h(c).send(frame(0x16, 0, 0, b"unknown"))
    expect_ping_ack(c)


@case("http2/4.1/2", "Sends a frame with undefined flag")
def _(c):
    h(c).send(ping_frame(b"h2conf\x05\x06", flags=0x16))
    expect_ping_ack(c, b"h2conf\x05\x06", send=False)


@case("http2/4.1/3", "Sends a frame with reserved field bit")
def _(c):
    # the R bit of the stream id must be ignored (RFC 9113 4.1)
    h(c).send(ping_frame(b"h2conf\x07\x08", stream_id=0x80000000))
    expect_ping_ack(c, b"h2conf\x07\x08", send=False)


section("http2/4.2", "Frame Size")


def too_big(c):
    """A frame one octet over the server's SETTINGS_MAX_FRAME_SIZE, which
    the 24-bit length field cannot carry when the server allows 2^24-1."""
    if c.max_frame_size >= (1 << 24) - 1:
        raise Skip("SETTINGS_MAX_FRAME_SIZE is %d: no frame can exceed it" % c.max_frame_size)


@case("http2/4.2/1", "Sends a DATA frame with 2^14 octets in length")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), data(sid, b"x" * 16384))
    expect_response(c, sid)


@case("http2/4.2/2", "Sends a large size DATA frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(c):
    sid = h(c).stream()
    too_big(c)
    c.send(c.headers(sid, method="POST", end_stream=False),
           data(sid, b"x" * (c.max_frame_size + 1)))
    expect_stream_error(c, E["FRAME_SIZE_ERROR"])


@case("http2/4.2/3", "Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(c):
    # a frame that alters the connection's state: a connection error (4.2)
    sid = h(c).stream()
    too_big(c)
    big = [("x-dummy%d" % i, "x" * 1000) for i in range(c.max_frame_size // 1000 + 1)]
    c.send(c.headers(sid, hp_block(c.req_headers() + big)))
    expect_connection_error(c, E["FRAME_SIZE_ERROR"])


section("http2/4.3", "Header Compression and Decompression")


@case("http2/4.3/1", "Sends invalid header block fragment")
def _(c):
    # a literal with a new name whose string runs past the block's end
    sid = h(c).stream()
    c.send(c.headers(sid, hp_block(c.req_headers()) + b"\x00\x85ab"))
    expect_connection_error(c, E["COMPRESSION_ERROR"])


@case("http2/4.3/2", "Sends a PRIORITY frame while sending the header blocks")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, end_headers=False), priority(sid))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/4.3/3", "Sends a HEADERS frame to another stream while sending the header blocks")
def _(c):
    s1 = h(c).stream()
    s2 = c.stream()
    c.send(c.headers(s1, end_headers=False), c.headers(s2))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


section("http2/5.1", "Stream States")


@case("http2/5.1/1", "idle: Sends a DATA frame")
def _(c):
    h(c).send(data(1, b"test"))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/5.1/2", "idle: Sends a RST_STREAM frame")
def _(c):
    h(c).send(rst_stream(1, E["CANCEL"]))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/5.1/3", "idle: Sends a WINDOW_UPDATE frame")
def _(c):
    h(c).send(window_update(1, 100))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/5.1/4", "idle: Sends a CONTINUATION frame")
def _(c):
    h(c).send(frame(CONTINUATION, END_HEADERS, 1, hp_block(c.req_headers())))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/5.1/5", "half closed (remote): Sends a DATA frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid), data(sid, b"test"))
    expect_stream_error(c, E["STREAM_CLOSED"])


@case("http2/5.1/6", "half closed (remote): Sends a HEADERS frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid), c.headers(sid))
    expect_stream_error(c, E["STREAM_CLOSED"])


@case("http2/5.1/7", "half closed (remote): Sends a CONTINUATION frame")
def _(c):
    # also a CONTINUATION that follows no open header block (6.10)
    sid = h(c).stream()
    c.send(c.headers(sid), frame(CONTINUATION, END_HEADERS, sid, hp_block([("x-test", "ok")])))
    expect_stream_error(c, E["STREAM_CLOSED"], E["PROTOCOL_ERROR"])


@case("http2/5.1/8", "closed: Sends a DATA frame after sending RST_STREAM frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), rst_stream(sid, E["CANCEL"]),
           data(sid, b"test"))
    expect_stream_error(c, E["STREAM_CLOSED"])


@case("http2/5.1/9", "closed: Sends a HEADERS frame after sending RST_STREAM frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), rst_stream(sid, E["CANCEL"]),
           c.headers(sid))
    expect_stream_error(c, E["STREAM_CLOSED"])


@case("http2/5.1/10", "closed: Sends a CONTINUATION frame after sending RST_STREAM frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), rst_stream(sid, E["CANCEL"]),
           frame(CONTINUATION, END_HEADERS, sid, hp_block([("x-test", "ok")])))
    expect_stream_error(c, E["STREAM_CLOSED"], E["PROTOCOL_ERROR"])


@case("http2/5.1/11", "closed: Sends a DATA frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid))
    read_until_stream_end(c, sid)
    c.send(data(sid, b"test"))
    expect_stream_error(c, E["STREAM_CLOSED"])


@case("http2/5.1/12", "closed: Sends a HEADERS frame")
def _(c):
    # STREAM_CLOSED by 5.1 ("closed"); a reused id is also an "unexpected
    # stream identifier" (5.1.1: PROTOCOL_ERROR), so both are conformant
    sid = h(c).stream()
    c.send(c.headers(sid))
    read_until_stream_end(c, sid)
    c.send(c.headers(sid))
    expect_stream_error(c, E["STREAM_CLOSED"], E["PROTOCOL_ERROR"])


@case("http2/5.1/13", "closed: Sends a CONTINUATION frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid))
    read_until_stream_end(c, sid)
    c.send(frame(CONTINUATION, END_HEADERS, sid, hp_block([("x-test", "ok")])))
    expect_stream_error(c, E["STREAM_CLOSED"], E["PROTOCOL_ERROR"])


section("http2/5.1.1", "Stream Identifiers")


@case("http2/5.1.1/1", "Sends even-numbered stream identifier")
def _(c):
    h(c).send(c.headers(2))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/5.1.1/2", "Sends stream identifier that is numerically smaller than previous")
def _(c):
    h(c).send(c.headers(5))
    expect_response(c, 5)
    c.send(c.headers(3))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


section("http2/5.1.2", "Stream Concurrency")


@case("http2/5.1.2/1", "Sends HEADERS frames that causes their advertised concurrent stream limit to be exceeded")
def _(c):
    h(c)
    limit = c.server_settings.get(S_MAX_CONCURRENT_STREAMS)
    if limit is None or limit > 1000:
        raise Skip("SETTINGS_MAX_CONCURRENT_STREAMS is %s" % ("unset" if limit is None else limit))
    # open streams (no END_STREAM: they stay open) one past the limit
    c.send(*[c.headers(c.stream(), method="POST", end_stream=False) for _ in range(limit + 1)])
    expect_stream_error(c, E["PROTOCOL_ERROR"], E["REFUSED_STREAM"])


section("http2/5.3.1", "Stream Dependencies")


@case("http2/5.3.1/1", "Sends HEADERS frame that depends on itself")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, prio=(sid, 16)))
    expect_stream_error(c, E["PROTOCOL_ERROR"])


@case("http2/5.3.1/2", "Sends PRIORITY frame that depend on itself")
def _(c):
    sid = h(c).stream()
    c.send(priority(sid, sid, 16))
    expect_stream_error(c, E["PROTOCOL_ERROR"])


section("http2/5.4.1", "Connection Error Handling")


@case("http2/5.4.1/1", "Sends an invalid PING frame for connection close")
def _(c):
    h(c).send(frame(PING, 0, 0, b"h2conf"))
    expect_close(c)


@case("http2/5.4.1/2", "Sends an invalid PING frame to receive GOAWAY frame")
def _(c):
    # "SHOULD send a GOAWAY": a close without one fails this case
    h(c).send(frame(PING, 0, 0, b"h2conf"))
    expect_goaway(c, E["FRAME_SIZE_ERROR"])


section("http2/5.5", "Extending HTTP/2")


@case("http2/5.5/1", "Sends an unknown extension frame")
def _(c):
    h(c).send(frame(0x16, 0, 0, b"\0" * 8))
    expect_ping_ack(c)


@case("http2/5.5/2", "Sends an unknown extension frame in the middle of a header block")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, end_headers=False), frame(0x16, 0, sid, b"\0" * 8))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


section("http2/6.1", "DATA")


@case("http2/6.1/1", "Sends a DATA frame with 0x0 stream identifier")
def _(c):
    h(c).send(data(0, b"test"))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.1/2", "Sends a DATA frame on the stream that is not in \"open\" or \"half-closed (local)\" state")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid), data(sid, b"test"))
    expect_stream_error(c, E["STREAM_CLOSED"])


@case("http2/6.1/3", "Sends a DATA frame with invalid pad length")
def _(c):
    sid = h(c).stream()
    # pad length 6 in a 5-octet payload
    c.send(c.headers(sid, method="POST", end_stream=False),
           frame(DATA, PADDED | END_STREAM, sid, b"\x06test"))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


section("http2/6.2", "HEADERS")


@case("http2/6.2/1", "Sends a HEADERS frame without the END_HEADERS flag, and a PRIORITY frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, end_headers=False), priority(sid + 2))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.2/2", "Sends a HEADERS frame to another stream while sending a HEADERS frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, end_headers=False), c.headers(sid + 2))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.2/3", "Sends a HEADERS frame with 0x0 stream identifier")
def _(c):
    h(c).send(c.headers(0))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.2/4", "Sends a HEADERS frame with invalid pad length")
def _(c):
    sid = h(c).stream()
    blk = hp_block(c.req_headers())
    c.send(frame(HEADERS, END_STREAM | END_HEADERS | PADDED, sid,
                 bytes([len(blk) + 1]) + blk))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


section("http2/6.3", "PRIORITY")


@case("http2/6.3/1", "Sends a PRIORITY frame with 0x0 stream identifier")
def _(c):
    h(c).send(priority(0))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.3/2", "Sends a PRIORITY frame with a length other than 5 octets")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), frame(PRIORITY, 0, sid, b"\0\0\0\0"))
    expect_stream_error(c, E["FRAME_SIZE_ERROR"])


section("http2/6.4", "RST_STREAM")


@case("http2/6.4/1", "Sends a RST_STREAM frame with 0x0 stream identifier")
def _(c):
    h(c).send(rst_stream(0, E["CANCEL"]))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.4/2", "Sends a RST_STREAM frame on a idle stream")
def _(c):
    h(c).send(rst_stream(1, E["CANCEL"]))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.4/3", "Sends a RST_STREAM frame with a length other than 4 octets")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), frame(RST_STREAM, 0, sid, b"\0\0\0"))
    expect_connection_error(c, E["FRAME_SIZE_ERROR"])


section("http2/6.5", "SETTINGS")


@case("http2/6.5/1", "Sends a SETTINGS frame with ACK flag and payload")
def _(c):
    h(c).send(settings_frame([(S_ENABLE_PUSH, 0)], flags=ACK))
    expect_connection_error(c, E["FRAME_SIZE_ERROR"])


@case("http2/6.5/2", "Sends a SETTINGS frame with a stream identifier other than 0x0")
def _(c):
    h(c).send(settings_frame([(S_ENABLE_PUSH, 0)], stream_id=1))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.5/3", "Sends a SETTINGS frame with a length other than a multiple of 6 octets")
def _(c):
    h(c).send(frame(SETTINGS, 0, 0, b"\0\x02\0\0"))
    expect_connection_error(c, E["FRAME_SIZE_ERROR"])


section("http2/6.5.2", "Defined SETTINGS Parameters")


@case("http2/6.5.2/1", "SETTINGS_ENABLE_PUSH (0x2): Sends the value other than 0 or 1")
def _(c):
    h(c).send(settings_frame([(S_ENABLE_PUSH, 2)]))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.5.2/2", "SETTINGS_INITIAL_WINDOW_SIZE (0x4): Sends the value above the maximum flow control window size")
def _(c):
    h(c).send(settings_frame([(S_INITIAL_WINDOW_SIZE, 1 << 31)]))
    expect_connection_error(c, E["FLOW_CONTROL_ERROR"])


@case("http2/6.5.2/3", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value below the initial value")
def _(c):
    h(c).send(settings_frame([(S_MAX_FRAME_SIZE, 16383)]))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.5.2/4", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value above the maximum allowed frame size")
def _(c):
    h(c).send(settings_frame([(S_MAX_FRAME_SIZE, 1 << 24)]))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.5.2/5", "Sends a SETTINGS frame with unknown identifier")
def _(c):
    h(c).send(settings_frame([(0xff, 1)]))
    expect_settings_ack(c)


section("http2/6.5.3", "Settings Synchronization")


@case("http2/6.5.3/1", "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE")
def _(c):
    # processed in order: the last value (1) is the one in force
    sid = h(c).stream()
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 100), (S_INITIAL_WINDOW_SIZE, 1)]))
    expect_settings_ack(c)
    c.send(c.headers(sid))
    expect_data_length(c, sid, 1)


@case("http2/6.5.3/2", "Sends a SETTINGS frame without ACK flag")
def _(c):
    h(c).send(settings_frame([(S_ENABLE_PUSH, 0)]))
    expect_settings_ack(c)


section("http2/6.7", "PING")


@case("http2/6.7/1", "Sends a PING frame")
def _(c):
    h(c)
    expect_ping_ack(c)


@case("http2/6.7/2", "Sends a PING frame with ACK")
def _(c):
    # an ACK is not answered: the only ACK back is for the second PING
    h(c).send(ping_frame(b"unexpect", flags=ACK))
    expect_ping_ack(c, b"expected")


@case("http2/6.7/3", "Sends a PING frame with a stream identifier field value other than 0x0")
def _(c):
    h(c).send(ping_frame(stream_id=1))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.7/4", "Sends a PING frame with a length field value other than 8")
def _(c):
    h(c).send(frame(PING, 0, 0, b"h2conf"))
    expect_connection_error(c, E["FRAME_SIZE_ERROR"])


section("http2/6.8", "GOAWAY")


@case("http2/6.8/1", "Sends a GOAWAY frame with a stream identifier other than 0x0")
def _(c):
    h(c).send(goaway(0, E["NO_ERROR"], stream_id=1))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


section("http2/6.9", "WINDOW_UPDATE")


@case("http2/6.9/1", "Sends a WINDOW_UPDATE frame with a flow control window increment of 0")
def _(c):
    h(c).send(window_update(0, 0))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.9/2", "Sends a WINDOW_UPDATE frame with a flow control window increment of 0 on a stream")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), window_update(sid, 0))
    expect_stream_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.9/3", "Sends a WINDOW_UPDATE frame with a length other than 4 octets")
def _(c):
    h(c).send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"))
    expect_connection_error(c, E["FRAME_SIZE_ERROR"])


section("http2/6.9.1", "The Flow-Control Window")


@case("http2/6.9.1/1", "Sends SETTINGS frame to set the initial window size to 1 and sends HEADERS frame")
def _(c):
    sid = h(c).stream()
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 1)]))
    expect_settings_ack(c)
    c.send(c.headers(sid))
    expect_data_length(c, sid, 1)


@case("http2/6.9.1/2", "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1")
def _(c):
    h(c).send(window_update(0, 0x7fffffff), window_update(0, 0x7fffffff))
    expect_connection_error(c, E["FLOW_CONTROL_ERROR"])


@case("http2/6.9.1/3", "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1 on a stream")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False),
           window_update(sid, 0x7fffffff), window_update(sid, 0x7fffffff))
    expect_stream_error(c, E["FLOW_CONTROL_ERROR"])


section("http2/6.9.2", "Initial Flow-Control Window Size")


@case("http2/6.9.2/1", "Changes SETTINGS_INITIAL_WINDOW_SIZE after sending HEADERS frame")
def _(c):
    c.handshake([(S_INITIAL_WINDOW_SIZE, 0)])
    sid = c.stream()
    c.send(c.headers(sid))
    # the response's HEADERS if the server sends them before it has window
    # for DATA (it need not): then the window is opened by one octet
    ev = c.next_event(min(c.o.timeout, 1.0))
    if ev.kind != "timeout" and not (isinstance(ev.frame, HeadersFrame) and ev.frame.stream_id == sid):
        _fatal(c, ev, "the response's HEADERS, or nothing yet", sid)
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 1)]))
    expect_data_length(c, sid, 1)


@case("http2/6.9.2/2", "Sends a SETTINGS frame for window size to be negative")
def _(c):
    # window 3, 3 octets sent, then 2: the stream's window is -1, and a
    # WINDOW_UPDATE of 2 lets exactly 1 more octet through
    c.handshake([(S_INITIAL_WINDOW_SIZE, 3)])
    sid = c.stream()
    c.send(c.headers(sid))
    got = 0
    while got < 3:
        ev = c.next_event()
        f = ev.frame
        if isinstance(f, DataFrame) and f.stream_id == sid:
            got += len(f.data)
            if "END_STREAM" in f.flags:
                raise Skip("the response is too short to check flow control with (use --path)")
        elif isinstance(f, HeadersFrame) and f.stream_id == sid and "END_STREAM" in f.flags:
            raise Skip("the response has no body to check flow control with (use --path)")
        else:
            _fatal(c, ev, "3 octets of DATA on stream %d" % sid, sid)
    if got != 3:
        raise Fail("%d octets of DATA sent in a window of 3" % got)
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 2)]))
    expect_settings_ack(c)
    c.send(window_update(sid, 2))
    expect_data_length(c, sid, 1)


@case("http2/6.9.2/3", "Sends a SETTINGS_INITIAL_WINDOW_SIZE settings with an exceeded maximum window size value")
def _(c):
    h(c).send(settings_frame([(S_INITIAL_WINDOW_SIZE, 1 << 31)]))
    expect_connection_error(c, E["FLOW_CONTROL_ERROR"])


section("http2/6.10", "CONTINUATION")


@case("http2/6.10/1", "Sends multiple CONTINUATION frames preceded by a HEADERS frame")
def _(c):
    sid = h(c).stream()
    first, rest = _split(hp_block(c.req_headers()), 3)
    frames = [c.headers(sid, first, end_headers=False)]
    for i, chunk in enumerate(rest):
        frames.append(frame(CONTINUATION, END_HEADERS if i == len(rest) - 1 else 0, sid, chunk))
    c.send(*frames)
    expect_response(c, sid)


@case("http2/6.10/2", "Sends a CONTINUATION frame followed by any frame other than CONTINUATION")
def _(c):
    sid = h(c).stream()
    first, rest = _split(hp_block(c.req_headers()), 2)
    c.send(c.headers(sid, first, end_headers=False),
           frame(CONTINUATION, 0, sid, b"".join(rest)), data(sid, b"test"))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.10/3", "Sends a CONTINUATION frame with 0x0 stream identifier")
def _(c):
    sid = h(c).stream()
    first, rest = _split(hp_block(c.req_headers()), 2)
    c.send(c.headers(sid, first, end_headers=False),
           frame(CONTINUATION, END_HEADERS, 0, b"".join(rest)))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.10/4", "Sends a CONTINUATION frame preceded by a HEADERS frame with END_HEADERS flag")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False),
           frame(CONTINUATION, END_HEADERS, sid, hp_block([("x-test", "ok")])))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.10/5", "Sends a CONTINUATION frame preceded by a CONTINUATION frame with END_HEADERS flag")
def _(c):
    sid = h(c).stream()
    first, rest = _split(hp_block(c.req_headers()), 2)
    c.send(c.headers(sid, first, end_stream=False, end_headers=False),
           frame(CONTINUATION, END_HEADERS, sid, b"".join(rest)),
           frame(CONTINUATION, END_HEADERS, sid, hp_block([("x-test", "ok")])))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


@case("http2/6.10/6", "Sends a CONTINUATION frame preceded by a DATA frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), data(sid, b"test", end=False),
           frame(CONTINUATION, END_HEADERS, sid, hp_block([("x-test", "ok")])))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


section("http2/7", "Error Codes")


@case("http2/7/1", "Sends a GOAWAY frame with unknown error code")
def _(c):
    h(c).send(goaway(0, 0xff))
    _ping_or_orderly_close(c)


@case("http2/7/2", "Sends a RST_STREAM frame with unknown error code")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), rst_stream(sid, 0xff))
    expect_ping_ack(c)


section("http2/8.1", "HTTP Request/Response Exchange")


@case("http2/8.1/1", "Sends a second HEADERS frame without the END_STREAM flag")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False), data(sid, b"test", end=False),
           c.headers(sid, hp_block([("x-trailer", "done")]), end_stream=False))
    expect_stream_error(c, E["PROTOCOL_ERROR"])


def _malformed(hdrs_fn, trailers=None):
    """A request whose header block (or trailers) is malformed (RFC 9113
    8.1.1): a stream error of type PROTOCOL_ERROR."""
    def run(c):
        sid = h(c).stream()
        if trailers is None:
            c.send(c.headers(sid, hp_block(hdrs_fn(c))))
        else:
            c.send(c.headers(sid, method="POST", end_stream=False), data(sid, b"test", end=False),
                   c.headers(sid, hp_block(trailers)))
        expect_stream_error(c, E["PROTOCOL_ERROR"])
    return run


def _without(name):
    return lambda c: [(n, v) for n, v in c.req_headers() if n != name]


def _twice(name):
    def f(c):
        hs = c.req_headers()
        return hs + [(n, v) for n, v in hs if n == name]
    return f


section("http2/8.1.2", "HTTP Header Fields")
case("http2/8.1.2/1", "Sends a HEADERS frame that contains the header field name in uppercase letters")(
    _malformed(lambda c: c.req_headers(extra=[("X-TEST", "ok")])))

section("http2/8.1.2.1", "Pseudo-Header Fields")
case("http2/8.1.2.1/1", "Sends a HEADERS frame that contains a unknown pseudo-header field")(
    _malformed(lambda c: c.req_headers(extra=[(":test", "ok")])))
case("http2/8.1.2.1/2", "Sends a HEADERS frame that contains the pseudo-header field defined for response")(
    _malformed(lambda c: c.req_headers(extra=[(":status", "200")])))
case("http2/8.1.2.1/3", "Sends a HEADERS frame that contains a pseudo-header field as trailers")(
    _malformed(None, trailers=[(":method", "POST")]))
case("http2/8.1.2.1/4", "Sends a HEADERS frame that contains a pseudo-header field that appears in a header block after a regular header field")(
    _malformed(lambda c: [("x-test", "ok")] + c.req_headers()))

section("http2/8.1.2.2", "Connection-Specific Header Fields")
case("http2/8.1.2.2/1", "Sends a HEADERS frame that contains the connection-specific header field")(
    _malformed(lambda c: c.req_headers(extra=[("connection", "keep-alive")])))
case("http2/8.1.2.2/2", "Sends a HEADERS frame that contains the TE header field with any value other than \"trailers\"")(
    _malformed(lambda c: c.req_headers(extra=[("te", "trailers, deflate")])))

section("http2/8.1.2.3", "Request Pseudo-Header Fields")
case("http2/8.1.2.3/1", "Sends a HEADERS frame with empty \":path\" pseudo-header field")(
    _malformed(lambda c: [(n, "" if n == ":path" else v) for n, v in c.req_headers()]))
case("http2/8.1.2.3/2", "Sends a HEADERS frame that omits \":method\" pseudo-header field")(
    _malformed(_without(":method")))
case("http2/8.1.2.3/3", "Sends a HEADERS frame that omits \":scheme\" pseudo-header field")(
    _malformed(_without(":scheme")))
case("http2/8.1.2.3/4", "Sends a HEADERS frame that omits \":path\" pseudo-header field")(
    _malformed(_without(":path")))
case("http2/8.1.2.3/5", "Sends a HEADERS frame with duplicated \":method\" pseudo-header field")(
    _malformed(_twice(":method")))
case("http2/8.1.2.3/6", "Sends a HEADERS frame with duplicated \":scheme\" pseudo-header field")(
    _malformed(_twice(":scheme")))
case("http2/8.1.2.3/7", "Sends a HEADERS frame with duplicated \":path\" pseudo-header field")(
    _malformed(_twice(":path")))

section("http2/8.1.2.6", "Malformed Requests and Responses")


@case("http2/8.1.2.6/1", "Sends a HEADERS frame with the \"content-length\" header field which does not equal the DATA frame payload length")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False, extra=[("content-length", "1")]),
           data(sid, b"test"))
    expect_stream_error(c, E["PROTOCOL_ERROR"])


@case("http2/8.1.2.6/2", "Sends a HEADERS frame with the \"content-length\" header field which does not equal the sum of the multiple DATA frames payload length")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False, extra=[("content-length", "1")]),
           data(sid, b"test", end=False), data(sid, b"test"))
    expect_stream_error(c, E["PROTOCOL_ERROR"])


section("http2/8.2", "Server Push")


@case("http2/8.2/1", "Sends a PUSH_PROMISE frame")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", end_stream=False),
           frame(PUSH_PROMISE, END_HEADERS, sid, struct.pack(">L", 2) + hp_block(c.req_headers())))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


# ---- rfc9113: what RFC 9113 made explicit since RFC 7540 (not in h2spec)
section("rfc9113/8.1.1", "Malformed Messages")


@case("rfc9113/8.1.1/1", "Sends a HEADERS frame with END_STREAM and a non-zero \"content-length\"")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid, method="POST", extra=[("content-length", "4")]))
    expect_stream_error(c, E["PROTOCOL_ERROR"])


section("rfc9113/5.1.1", "Stream Identifiers")


@case("rfc9113/5.1.1/1", "Sends HEADERS on a stream id skipped after 16 other gaps in the ids")
def _(c):
    # every id a client skips is closed once a higher one is opened: a
    # server that remembers only the first few gaps misses the later ones
    h(c)
    ids = list(range(1, 4 * 17 + 2, 4))          # 1, 5, 9, ... 69: 17 gaps
    for sid in ids:
        c.send(c.headers(sid))
        read_until_stream_end(c, sid)
    c.send(c.headers(ids[-1] - 2))
    expect_connection_error(c, E["PROTOCOL_ERROR"])


section("rfc9113/6.9", "Flow Control")


@case("rfc9113/6.9/1", "Sends a request body of 4 times the stream's initial window, as WINDOW_UPDATE frames allow")
def _(c):
    # the server must give the window back as it takes the body (here no
    # more is ever sent than the windows it announced allow)
    sid = h(c).stream()
    iw = c.server_settings.get(S_INITIAL_WINDOW_SIZE, 65535)
    total = min(4 * max(iw, 65535), 4 << 20)
    c.send(c.headers(sid, method="POST", end_stream=False,
                     extra=[("content-length", str(total))]))
    sent = 0
    deadline = time.monotonic() + max(10 * c.o.timeout, 10)
    while sent < total:
        n = min(c.max_frame_size, total - sent, c.conn_window,
                iw + c.stream_credit.get(sid, 0) - sent)
        if n > 0:
            c.send(data(sid, b"x" * n, end=sent + n == total))
            sent += n
            c.conn_window -= n
            continue
        if time.monotonic() > deadline:
            raise Fail("%d of %d octets sent, then no WINDOW_UPDATE" % (sent, total))
        ev = c.next_event()
        f = ev.frame
        if isinstance(f, HeadersFrame) and f.stream_id == sid:
            return                      # an early answer ends the case too
        if ev.kind == "timeout":
            raise Fail("%d of %d octets sent, then no WINDOW_UPDATE within %gs"
                       % (sent, total, c.o.timeout))
        _fatal(c, ev, "WINDOW_UPDATE frames", sid)
    expect_response(c, sid)


def _response(c, sid):
    """The response on SID: (fields of its first HEADERS, DATA octets)."""
    fields, body = None, 0
    while True:
        ev = c.next_event()
        f = ev.frame
        if isinstance(f, (HeadersFrame, DataFrame)) and f.stream_id == sid:
            if isinstance(f, HeadersFrame) and fields is None:
                fields = dict(getattr(f, "fields", []))
            if isinstance(f, DataFrame):
                body += len(f.data)
            if "END_STREAM" in f.flags:
                return fields or {}, body
            continue
        _fatal(c, ev, "a complete response on stream %d" % sid, sid)


@case("rfc9113/8.1.1/2", "Sends a GET request: a \"content-length\" in the response equals its DATA payload")
def _(c):
    sid = h(c).stream()
    c.send(c.headers(sid))
    fields, body = _response(c, sid)
    cl = fields.get("content-length")
    if cl is None:
        raise Skip("the response has no content-length")
    if int(cl) != body:
        raise Fail("content-length %s, %d octets of DATA" % (cl, body))


@case("rfc9113/8.1.1/3", "Sends a HEAD request: the response carries no content")
def _(c):
    # RFC 9110 9.3.2; a content-length there describes the GET's content
    sid = h(c).stream()
    c.send(c.headers(sid, method="HEAD"))
    fields, body = _response(c, sid)
    if body:
        raise Fail("%d octets of DATA in a response to HEAD" % body)


section("rfc9113/8.2.1", "Field Validity")
case("rfc9113/8.2.1/1", "Sends a HEADERS frame with a field value that starts with a space")(
    _malformed(lambda c: c.req_headers(extra=[("x-test", " ok")])))
case("rfc9113/8.2.1/2", "Sends a HEADERS frame with a field value that ends with a tab")(
    _malformed(lambda c: c.req_headers(extra=[("x-test", "ok\t")])))
case("rfc9113/8.2.1/3", "Sends a HEADERS frame with a field value that contains CR LF")(
    _malformed(lambda c: c.req_headers(extra=[("x-test", "ok\r\nx-injected: 1")])))
case("rfc9113/8.2.1/4", "Sends a HEADERS frame with a field value that contains NUL")(
    _malformed(lambda c: c.req_headers(extra=[("x-test", "o\0k")])))
case("rfc9113/8.2.1/5", "Sends a HEADERS frame with a field name that contains a space")(
    _malformed(lambda c: c.req_headers(extra=[("x test", "ok")])))
case("rfc9113/8.2.1/6", "Sends a HEADERS frame with a field name that contains a colon")(
    _malformed(lambda c: c.req_headers(extra=[("x:test", "ok")])))

section("rfc9113/8.2.2", "Connection-Specific Header Fields")
for _n, (_h, _v) in enumerate([("transfer-encoding", "chunked"), ("upgrade", "h2c"),
                                ("keep-alive", "timeout=5"), ("proxy-connection", "keep-alive")], 1):
    case("rfc9113/8.2.2/%d" % _n, "Sends a HEADERS frame that contains \"%s\"" % _h)(
        _malformed(lambda c, _h=_h, _v=_v: c.req_headers(extra=[(_h, _v)])))

section("rfc9113/8.3.1", "Request Pseudo-Header Fields")
case("rfc9113/8.3.1/1", "Sends a CONNECT request with \":scheme\" and \":path\" (no \":protocol\")")(
    _malformed(lambda c: c.req_headers("CONNECT")))
case("rfc9113/8.3.1/2", "Sends a CONNECT request without \":authority\"")(
    _malformed(lambda c: [(":method", "CONNECT")]))


# ---- hpack: RFC 7541 decoding errors, each a COMPRESSION_ERROR (RFC 9113 4.3)
def _hpack_error(rep, first=False):
    def run(c):
        sid = h(c).stream()
        blk = hp_block(c.req_headers())
        c.send(c.headers(sid, rep + blk if first else blk + rep))
        expect_connection_error(c, E["COMPRESSION_ERROR"])
    return run


_a = huffman_bits("a")            # 5 bits: a byte with 3 bits of padding
section("hpack/2.3.3", "Index Address Space")
case("hpack/2.3.3/1", "Sends a indexed header field representation with invalid index")(
    _hpack_error(hp_int(70, 7, 0x80)))
case("hpack/2.3.3/2", "Sends a literal header field representation with invalid index")(
    _hpack_error(hp_int(70, 6, 0x40) + hp_str("test")))

section("hpack/4.2", "Maximum Table Size")
case("hpack/4.2/1", "Sends a dynamic table size update at the end of header block")(
    _hpack_error(hp_int(4096, 5, 0x20)))

section("hpack/5.2", "String Literal Representation")
case("hpack/5.2/1", "Sends a Huffman-encoded string literal representation with padding longer than 7 bits")(
    _hpack_error(b"\x00" + hp_str("x-test") +
                 hp_raw_huffman(bits_to_bytes(_a + "111" + "11111111"))))
case("hpack/5.2/2", "Sends a Huffman-encoded string literal representation padded by zero")(
    _hpack_error(b"\x00" + hp_str("x-test") + hp_raw_huffman(bits_to_bytes(_a + "000"))))
case("hpack/5.2/3", "Sends a Huffman-encoded string literal representation containing the EOS symbol")(
    _hpack_error(b"\x00" + hp_str("x-test") +
                 hp_raw_huffman(bits_to_bytes(_a + "1" * 30 + _a))))

section("hpack/6.1", "Indexed Header Field Representation")
case("hpack/6.1/1", "Sends a indexed header field representation with index 0")(
    _hpack_error(b"\x80"))

section("hpack/6.3", "Dynamic Table Size Update")


@case("hpack/6.3/1", "Sends a dynamic table size update larger than the value of SETTINGS_HEADER_TABLE_SIZE")
def _(c):
    sid = h(c).stream()
    # the server's own decoder limit, 4096 unless its SETTINGS said otherwise
    limit = c.server_settings.get(S_HEADER_TABLE_SIZE, 4096)
    c.send(c.headers(sid, hp_int(limit + 1, 5, 0x20) + hp_block(c.req_headers())))
    expect_connection_error(c, E["COMPRESSION_ERROR"])


# ------------------------------------------------------------------ runner

def run(opts):
    selected = [x for x in CASES
                if not opts.case or any(x[0] == p or x[0].startswith(p.rstrip("/") + "/")
                                        for p in opts.case)]
    results = []
    start = time.monotonic()
    last_section = None
    for cid, desc, fn in selected:
        sec = cid.rsplit("/", 1)[0]
        if sec != last_section and not opts.quiet:
            print("%s %s" % (sec, SECTIONS.get(sec, "")))
            last_section = sec
        c = Conn(opts)
        t0 = time.monotonic()
        try:
            fn(c)
            status, msg = "pass", ""
            if opts.verbose:
                msg = "seen: %s" % _seen(c)
        except Skip as e:
            status, msg = "skip", str(e)
        except Fail as e:
            status, msg = "fail", str(e)
        except (OSError, ssl.SSLError) as e:
            status, msg = "fail", "connection: %s" % e
        except Exception as e:    # a bug here must not hide the other cases
            status, msg = "fail", "checker error: %r" % e
        finally:
            c.close()
        took = time.monotonic() - t0
        results.append((cid, desc, status, msg, took))
        mark = {"pass": "\u2714", "fail": "\u00d7", "skip": "-"}[status]
        if not opts.quiet or status != "pass":
            print("  %s %s: %s" % (mark, cid, desc))
            if msg:
                print("      -> %s" % msg)
        sys.stdout.flush()
    n = {s: sum(1 for r in results if r[2] == s) for s in ("pass", "fail", "skip")}
    print("%d cases, %d passed, %d failed, %d skipped (%.1fs)" % (
        len(results), n["pass"], n["fail"], n["skip"], time.monotonic() - start))
    if opts.junit:
        write_junit(opts.junit, results)
    return 1 if n["fail"] else 0


def write_junit(path, results):
    q = xml.sax.saxutils.quoteattr
    esc = xml.sax.saxutils.escape
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<testsuites name="h2conformance" tests="%d" failures="%d" skipped="%d">' % (
               len(results), sum(r[2] == "fail" for r in results), sum(r[2] == "skip" for r in results))]
    for cid, desc, status, msg, took in results:
        out.append('  <testcase classname=%s name=%s time="%.3f">' % (
            q(cid.rsplit("/", 1)[0]), q("%s: %s" % (cid, desc)), took))
        if status == "fail":
            out.append('    <failure message=%s>%s</failure>' % (q(msg), esc(msg)))
        elif status == "skip":
            out.append('    <skipped message=%s/>' % q(msg))
        out.append('  </testcase>')
    out.append('</testsuites>')
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description="HTTP/2 server conformance checks "
                                "(RFC 9113, RFC 7541), numbered as h2spec numbers them.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=443)
    p.add_argument("--tls", action="store_true", help="TLS with ALPN h2 (else h2c with prior knowledge: "
                   "no HTTP/1.1 Upgrade)")
    p.add_argument("--sni", help="TLS server name (default: --authority, else --host)")
    p.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    p.add_argument("--cacert", help="CA file to verify the server's certificate with")
    p.add_argument("--authority", help="the requests' :authority (default: --sni, else --host)")
    p.add_argument("--path", default="/", help="the requests' :path (a response with a body "
                   "of at least 5 octets: the flow-control cases read it)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per wait (default 2)")
    p.add_argument("--case", action="append", default=[],
                   help="run only this case or section (e.g. http2/5.1 or hpack); repeatable")
    p.add_argument("--lenient", action="store_true", help="a wrong error code does not fail a "
                   "case by itself; the connection closing after it passes (as h2spec)")
    p.add_argument("-j", "--junit", metavar="FILE", help="write a JUnit XML report")
    p.add_argument("-q", "--quiet", action="store_true", help="print failures, skips and the summary only")
    p.add_argument("-v", "--verbose", action="store_true", help="also say what each passing case saw")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    o = p.parse_args(argv)
    if o.list:
        for cid, desc, _ in CASES:
            print("%s: %s" % (cid, desc))
        return 0
    o.authority = o.authority or o.sni or o.host
    o.sni = o.sni or (o.authority if not o.authority.replace(".", "").isdigit() else None)
    probe = Conn(o)
    try:
        probe.open()
        probe.close()
    except (OSError, ssl.SSLError, Fail) as e:
        sys.stderr.write("h2conformance: %s:%d: %s\n" % (o.host, o.port, e))
        return 2
    return run(o)


if __name__ == "__main__":
    sys.exit(main())
