"""A minimal NBD client for the demo's guest stand-in (standard library only).

Fixed newstyle handshake, NBD_OPT_GO for one export, then transmission with
simple replies (structured replies are never requested): NBD_CMD_WRITE,
NBD_CMD_FLUSH and NBD_CMD_DISC.  Requests may be pipelined: send_write()
returns a cookie, and read_reply() returns the cookie of whichever request
the server answered next, so the caller decides how many are in flight.
The protocol is the one in NetworkBlockDevice/nbd doc/proto.md.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import socket
import struct

NBDMAGIC = b'NBDMAGIC'
IHAVEOPT = b'IHAVEOPT'
OPT_REPLY_MAGIC = 0x3e889045565a9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1

OPT_GO = 7
REP_ACK = 1
REP_INFO = 3
REP_FLAG_ERROR = 1 << 31
INFO_EXPORT = 0

TFLAG_READ_ONLY = 1 << 1
TFLAG_SEND_FLUSH = 1 << 2

CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3


class NBDError(Exception):
    pass


class NBDClient:
    """One connection to one export over a unix socket."""

    def __init__(self, sock_path, export, timeout=60.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(sock_path)
        self._next_cookie = 1
        try:
            self.size, self.tflags = self._handshake(export)
        except BaseException:
            self.sock.close()
            raise

    # --- wire helpers ---

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise NBDError('server closed the connection')
            buf += chunk
        return bytes(buf)

    def _handshake(self, export):
        magic, opt_magic, hflags = struct.unpack('>8s8sH',
                                                 self._recv_exact(18))
        if magic != NBDMAGIC or opt_magic != IHAVEOPT:
            raise NBDError('not a newstyle NBD server')
        if not hflags & FLAG_FIXED_NEWSTYLE:
            raise NBDError('server lacks fixed newstyle negotiation')
        self.sock.sendall(struct.pack(
            '>I', FLAG_FIXED_NEWSTYLE | (hflags & FLAG_NO_ZEROES)))
        name = export.encode()
        # NBD_OPT_GO: name length, name, no extra information requests.
        data = struct.pack('>I', len(name)) + name + struct.pack('>H', 0)
        self.sock.sendall(IHAVEOPT + struct.pack('>II', OPT_GO, len(data))
                          + data)
        size = tflags = None
        while True:
            magic, opt, rtype, length = struct.unpack(
                '>QIII', self._recv_exact(20))
            payload = self._recv_exact(length)
            if magic != OPT_REPLY_MAGIC or opt != OPT_GO:
                raise NBDError('bad option reply')
            if rtype & REP_FLAG_ERROR:
                raise NBDError('export %r refused: %s' % (
                    export, payload.decode(errors='replace') or hex(rtype)))
            if rtype == REP_INFO and length >= 2:
                (info,) = struct.unpack('>H', payload[:2])
                if info == INFO_EXPORT:
                    size, tflags = struct.unpack('>QH', payload[2:12])
            elif rtype == REP_ACK:
                break
        if size is None:
            raise NBDError('server sent no export size')
        return size, tflags

    def _send_request(self, cmd, offset=0, length=0, data=b''):
        cookie = self._next_cookie
        self._next_cookie += 1
        self.sock.sendall(struct.pack('>IHHQQI', REQUEST_MAGIC, 0, cmd,
                                      cookie, offset, length) + data)
        return cookie

    # --- requests ---

    @property
    def read_only(self):
        return bool(self.tflags & TFLAG_READ_ONLY)

    def send_write(self, offset, data):
        """Sends a write; its reply comes later through read_reply()."""
        return self._send_request(CMD_WRITE, offset, len(data), data)

    def send_flush(self):
        return self._send_request(CMD_FLUSH)

    def read_reply(self):
        """Waits for the next simple reply; returns its cookie, or raises
        NBDError if the server reported an error for it."""
        magic, error, cookie = struct.unpack('>IIQ', self._recv_exact(16))
        if magic != SIMPLE_REPLY_MAGIC:
            raise NBDError('bad reply magic 0x%x' % magic)
        if error:
            raise NBDError('request %d failed with NBD error %d'
                           % (cookie, error))
        return cookie

    def flush(self):
        """A flush with nothing else in flight."""
        cookie = self.send_flush()
        if self.read_reply() != cookie:
            raise NBDError('unexpected reply to flush')

    def close(self):
        """NBD_CMD_DISC (no reply) and close; nothing may be in flight."""
        try:
            self._send_request(CMD_DISC)
        except OSError:
            pass
        self.sock.close()
