"""The demo's guest stand-in: recognisable disk content and a writer that
keeps changing the disk through a writable NBD export.

Every 64 KiB block of the disk holds a 64-byte text header
("qblock-demo block N gen G") followed by a byte ramp whose phase depends
on N and G, so block_data(n, gen) is the exact content of block n after
its gen-th rewrite.  The writer keeps the generation of every block (its
model); since it only ever writes whole blocks, the model at a quiesced
moment *is* the disk's content at that point in time.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import random
import threading
import time

from nbd_client import NBDClient

BLOCK = 64 * 1024
HEADER = 64
_RAMP = bytes(range(256)) * 2


def block_data(n, gen):
    """The content of block n at generation gen."""
    head = ('qblock-demo block %d gen %d' % (n, gen)).encode()
    head = head.ljust(HEADER - 1) + b'\n'
    phase = (n * 31 + gen * 97) % 256
    return head + (_RAMP[phase:phase + 256] * (BLOCK // 256))[:BLOCK - HEADER]


def write_raw_image(path, gens):
    """Writes the raw image whose block n is at generation gens[n]."""
    with open(path, 'wb') as f:
        for n, gen in enumerate(gens):
            f.write(block_data(n, gen))


def patch_raw_image(path, have, want):
    """Turns the raw image of model have into that of model want (same
    length) by rewriting only the blocks that differ; updates have.
    Returns the number of blocks rewritten."""
    changed = 0
    fd = os.open(path, os.O_WRONLY)
    try:
        for n, gen in enumerate(want):
            if have[n] != gen:
                os.pwrite(fd, block_data(n, gen), n * BLOCK)
                have[n] = gen
                changed += 1
    finally:
        os.close(fd)
    return changed


class Guest(threading.Thread):
    """Writes whole blocks at random through an NBD export, with up to
    depth requests in flight, at about rate blocks per second.

    quiesce() is the guest agent's fsfreeze: the writer stops issuing,
    waits for every in-flight write to be answered, flushes, and returns
    a copy of the model, i.e. the exact disk content from then until
    thaw().  Only the writer thread touches the connection and the model
    while running; the caller reads them only between quiesce() and
    thaw(), when the writer is parked."""

    def __init__(self, sock_path, export, gens, rate=400, depth=4, seed=1):
        super().__init__(name='guest-writer', daemon=True)
        self.sock_path = sock_path
        self.export = export
        self.gens = list(gens)
        self.rate = rate
        self.depth = depth
        self.rng = random.Random(seed)
        self.writes = 0
        self.error = None
        self.client = NBDClient(sock_path, export)
        if self.client.read_only:
            raise RuntimeError('export %r is read-only' % export)
        self._ctl = threading.Condition()
        self._want_pause = False
        self._paused = False
        self._want_stop = False

    # --- control, from the main thread ---

    def quiesce(self, timeout=30):
        with self._ctl:
            self._want_pause = True
            self._ctl.notify_all()
            if not self._ctl.wait_for(lambda: self._paused or self.error,
                                       timeout):
                raise RuntimeError('the guest writer did not quiesce')
            if self.error:
                raise RuntimeError('guest writer failed: %s' % self.error)
            return list(self.gens)

    def thaw(self):
        with self._ctl:
            self._want_pause = False
            self._ctl.notify_all()

    def switch_export(self, export):
        """Reconnects to another export; only while quiesced."""
        assert self._paused
        self.client.close()
        self.client = NBDClient(self.sock_path, export)
        self.export = export

    def stop(self, timeout=30):
        """Stops the writer (after its in-flight writes) and disconnects;
        returns the final model."""
        with self._ctl:
            self._want_stop = True
            self._ctl.notify_all()
        self.join(timeout)
        if self.is_alive():
            raise RuntimeError('the guest writer did not stop')
        if self.error:
            raise RuntimeError('guest writer failed: %s' % self.error)
        return list(self.gens)

    # --- the writer thread ---

    def run(self):
        try:
            self._loop()
            self.client.close()
        except Exception as e:
            with self._ctl:
                self.error = e
                self._ctl.notify_all()

    def _park(self):
        """Called with nothing in flight: flush, report paused, and wait
        for thaw() or stop()."""
        self.client.flush()
        with self._ctl:
            self._paused = True
            self._ctl.notify_all()
            self._ctl.wait_for(lambda: not self._want_pause or self._want_stop)
            self._paused = False

    def _loop(self):
        inflight = {}           # cookie -> block number
        interval = 1.0 / self.rate
        next_issue = time.monotonic()
        while True:
            with self._ctl:
                pause, stop = self._want_pause, self._want_stop
            if (pause or stop) and not inflight:
                if stop:
                    return
                self._park()
                next_issue = time.monotonic()
                continue
            if not (pause or stop) and len(inflight) < self.depth:
                delay = next_issue - time.monotonic()
                if delay <= 0 or not inflight:
                    if delay > 0:
                        time.sleep(delay)
                    next_issue = max(next_issue + interval,
                                     time.monotonic() - 0.1)
                    self._issue(inflight)
                    continue
            cookie = self.client.read_reply()
            del inflight[cookie]
            self.writes += 1

    def _issue(self, inflight):
        """Writes the next generation of a random block.  Two writes to
        one block are never in flight together: NBD does not order them."""
        busy = set(inflight.values())
        n = self.rng.randrange(len(self.gens))
        while n in busy:
            n = self.rng.randrange(len(self.gens))
        self.gens[n] += 1
        cookie = self.client.send_write(n * BLOCK,
                                        block_data(n, self.gens[n]))
        inflight[cookie] = n
