"""A small QMP client for qblock's iotests (Python standard library only).

    from qmp import QMP, Qblockd

    with Qblockd(['-drive', 'file=t.qcow2,if=none,id=drive0']) as d:
        d.qmp.cmd('query-block')                # the whole reply
        d.qmp.command('query-block')            # its "return", or QMPError
        d.qmp.command('blockdev-add', driver='null-co', node_name='n0')
        d.qmp.event_wait('JOB_STATUS_CHANGE', timeout=10)

Keyword arguments have '_' turned into '-' (node_name -> node-name); pass
arguments={...} to send names verbatim.  Every wait is bounded: reads
time out (QMPTimeout) instead of hanging a test.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import os
import socket
import subprocess
import time

DEFAULT_TIMEOUT = 30.0


class QMPError(Exception):
    """A command failed; .cls and .desc hold the error's class and text."""

    def __init__(self, reply):
        err = reply.get('error', {})
        self.reply = reply
        self.cls = err.get('class')
        self.desc = err.get('desc')
        super().__init__('%s: %s' % (self.cls, self.desc))


class QMPTimeout(Exception):
    pass


class QMPClosed(Exception):
    """The server closed the connection."""


_NO_ID = object()


def _dashes(kwargs):
    return {k.replace('_', '-'): v for k, v in kwargs.items()}


class QMP:
    """One QMP connection to a unix socket path or a (host, port) pair."""

    def __init__(self, address, timeout=DEFAULT_TIMEOUT):
        self.address = address
        self.timeout = timeout
        self.sock = None
        self.greeting = None
        self.events = []
        self._buf = b''
        self._decoder = json.JSONDecoder()
        self._next_id = 0

    # --- connection ---

    def connect(self, negotiate=True, retry_for=None):
        """Connects (retrying for up to retry_for seconds while the server
        is not listening yet), reads the greeting and, by default,
        negotiates capabilities.  Returns the greeting."""
        deadline = time.monotonic() + (retry_for or 0)
        while True:
            try:
                self.sock = self._open()
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
        self.greeting = self.read_message()
        if negotiate:
            self.command('qmp_capabilities')
        return self.greeting

    def _open(self):
        if isinstance(self.address, tuple):
            s = socket.create_connection(self.address, timeout=self.timeout)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.address)
            except OSError:
                s.close()
                raise
        return s

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- raw I/O ---

    def send_raw(self, data):
        """Sends bytes (or str) exactly as given."""
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send(self, msg):
        self.send_raw(json.dumps(msg))

    def _take_message(self):
        text = self._buf.decode('utf-8', errors='surrogateescape').lstrip()
        if not text:
            self._buf = b''
            return None
        try:
            msg, end = self._decoder.raw_decode(text)
        except json.JSONDecodeError:
            return None
        rest = text[end:]
        self._buf = rest.encode('utf-8', errors='surrogateescape')
        return msg

    def read_message(self, timeout=None):
        """The next message (reply or event), waiting at most timeout
        seconds (default: the connection's timeout)."""
        deadline = time.monotonic() + (self.timeout if timeout is None
                                       else timeout)
        while True:
            msg = self._take_message()
            if msg is not None:
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPTimeout('no complete QMP message within the timeout')
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise QMPTimeout('no complete QMP message within the timeout')
            finally:
                self.sock.settimeout(self.timeout)
            if not data:
                raise QMPClosed('connection closed by the server')
            self._buf += data

    def read_reply(self, timeout=None):
        """The next non-event message; events met on the way are kept."""
        while True:
            msg = self.read_message(timeout)
            if 'event' in msg:
                self.events.append(msg)
                continue
            return msg

    # --- commands ---

    def cmd(self, name, arguments=None, id=_NO_ID, timeout=None, **kwargs):
        """Runs a command; returns the whole reply (return or error)."""
        msg = {'execute': name}
        args = dict(arguments or {})
        args.update(_dashes(kwargs))
        if args:
            msg['arguments'] = args
        if id is not _NO_ID:
            msg['id'] = id
        self.send(msg)
        return self.read_reply(timeout)

    def command(self, name, arguments=None, **kwargs):
        """Runs a command; returns its "return" value or raises QMPError."""
        reply = self.cmd(name, arguments, **kwargs)
        if 'error' in reply:
            raise QMPError(reply)
        return reply['return']

    def hmp(self, command_line):
        """human-monitor-command; returns the text it printed."""
        return self.command('human-monitor-command',
                            arguments={'command-line': command_line})

    # --- events ---

    def get_events(self, wait=0.0):
        """Returns (and forgets) the events received so far, after reading
        whatever arrives within wait seconds."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0 and not self._buf:
                break
            try:
                msg = self.read_message(max(left, 0.001))
            except QMPTimeout:
                break
            if 'event' in msg:
                self.events.append(msg)
        events, self.events = self.events, []
        return events

    def event_wait(self, name, timeout=DEFAULT_TIMEOUT, match=None):
        """Waits for event name (whose data contains the items of match);
        earlier unmatched events stay queued."""
        for i, ev in enumerate(self.events):
            if ev['event'] == name and _matches(ev.get('data', {}), match):
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPTimeout('event %s did not arrive' % name)
            msg = self.read_message(left)
            if 'event' not in msg:
                raise RuntimeError('unexpected reply while waiting: %r' % msg)
            if msg['event'] == name and _matches(msg.get('data', {}), match):
                return msg
            self.events.append(msg)


def _matches(data, match):
    return all(data.get(k) == v for k, v in (match or {}).items())


def wait_for_path(path, timeout=DEFAULT_TIMEOUT, proc=None):
    """Waits until path exists (e.g. a unix socket), failing early if proc
    has exited."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError('process exited with status %d'
                               % proc.returncode)
        if time.monotonic() >= deadline:
            raise QMPTimeout('%s did not appear' % path)
        time.sleep(0.01)


class Qblockd:
    """Runs qblockd with a QMP unix socket and connects to it.

    The binary comes from $QBLOCK_PROG; the socket lives in $SOCK_DIR.
    stderr is collected and available as .stderr after shutdown()."""

    _count = 0

    def __init__(self, args=(), sock=None, prog=None, negotiate=True,
                 timeout=DEFAULT_TIMEOUT):
        Qblockd._count += 1
        sock_dir = os.environ.get('SOCK_DIR', '/tmp')
        self.sock_path = sock or os.path.join(
            sock_dir, 'qmp-%d-%d.sock' % (os.getpid(), Qblockd._count))
        self.prog = prog or os.environ.get('QBLOCK_PROG', 'qblockd')
        self.args = [self.prog, '-qmp',
                     'unix:%s,server=on,wait=off' % self.sock_path] + list(args)
        self.negotiate = negotiate
        self.timeout = timeout
        self.proc = None
        self.qmp = None
        self.stderr = ''

    def start(self):
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        wait_for_path(self.sock_path, self.timeout, self.proc)
        self.qmp = self.connect(self.negotiate)
        return self

    def connect(self, negotiate=True):
        """A further connection to the same socket."""
        q = QMP(self.sock_path, self.timeout)
        q.connect(negotiate=negotiate, retry_for=self.timeout)
        return q

    def shutdown(self, how='quit'):
        """Stops the daemon ('quit' over QMP, 'term' for SIGTERM, 'kill');
        returns its exit status."""
        if self.proc is None:
            return None
        try:
            if how == 'quit' and self.qmp:
                try:
                    self.qmp.command('quit')
                except (QMPClosed, OSError):
                    pass
            elif how == 'term':
                self.proc.terminate()
            elif how == 'kill':
                self.proc.kill()
            _, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if self.qmp:
            self.qmp.close()
            self.qmp = None
        self.stderr = err.decode(errors='replace')
        status = self.proc.returncode
        self.proc = None
        return status

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.shutdown('quit' if exc[0] is None else 'kill')


# --- output helpers for golden files ---

def filter_qemu_io(text):
    """Drops the timing figures qemu-io prints after each request."""
    import re
    return re.sub(r'[0-9]+ ops; [0-9:.]+ sec \([0-9.a-z]+ [A-Za-z]+/sec '
                  r'and [0-9.a-z]+ ops/sec\)',
                  'X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)', text)


def filter_timestamp(msg):
    """An event with its timestamp replaced by placeholders (after checking
    its shape)."""
    ts = msg.get('timestamp')
    if ts is not None:
        assert set(ts) == {'seconds', 'microseconds'}, ts
        assert isinstance(ts['seconds'], int) and ts['seconds'] > 0, ts
        assert 0 <= ts['microseconds'] < 1000000, ts
        msg = dict(msg, timestamp={'seconds': 'SECS',
                                   'microseconds': 'USECS'})
    return msg


def log(obj):
    """Prints a QMP message (or any value) as sorted, stable JSON."""
    if isinstance(obj, (dict, list)):
        print(json.dumps(obj, sort_keys=True))
    else:
        print(obj)
