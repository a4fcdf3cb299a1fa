#!/usr/bin/python3
"""Backup and fleecing benchmarks: qblockd against Debian's QEMU, side by side.

    tests/bench/backup.py [--quick] [--size SIZE] [--runs N] [--dir DIR]
                          [--fio-runtime S] [--write-doc] [--keep]

Both daemons get the same QMP sequences on the same image files, one after
the other, in one run (QEMU first in every round, so neither side always
inherits the other's disk state).  QEMU is qemu-storage-daemon, or
qemu-system-x86_64 -machine none when that is absent.  Rows (see
docs/benchmarks.md for the exact commands):

  (a) full backup raw->qcow2 and qcow2->qcow2, cache.direct=on and off
  (b) sync=top of an overlay with 10 % of its 64 KiB clusters written
  (c) sync=bitmap after 5 % of the clusters were written through NBD
  (d) fleecing export read with nbdcopy: classic and copy-before-write
  (e) guest writes (fio nbd engine) idle, during sync=none, during full
  (f) peak RSS of each daemon during (a)

plus the physical baseline of the same filesystem (fio, dd).  Each row is
the median of RUNS runs with the min-max spread.  Nothing is asserted: a
command that fails shows "error" in its row and is listed under the table.

The interpreter is Debian's /usr/bin/python3 on purpose: it is the one
that sees python3-matplotlib, which scripts/ensure-deps.sh --bench installs.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import atexit
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, 'tests', 'qemu-iotests'))
from qmp import QMP, QMPError, QMPTimeout, QMPClosed, wait_for_path  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
CLUSTER = 64 * 1024
SIDES = ('qblock', 'qemu')
DOC = os.path.join(TOP, 'docs', 'benchmarks.md')
CHART = os.path.join(TOP, 'docs', 'benchmarks.png')
DOC_BEGIN = '<!-- bench-results:begin -->'
DOC_END = '<!-- bench-results:end -->'

# The guest writers of (e): label, fio --rw, --bs, --iodepth.
WRITERS = (('4k rand qd1', 'randwrite', '4k', 1),
           ('4k rand qd16', 'randwrite', '4k', 16),
           ('64k seq qd16', 'write', '64k', 16))
# 'none-xl2': the same fleecing node created with extended L2 entries
# (qemu-img create -o extended_l2=on), the same image on both sides.
WRITE_MODES = (('idle', 'no job'),
               ('none', 'sync=none backup into a fleecing node'),
               ('none-xl2', 'sync=none, fleecing node with extended L2'),
               ('full', 'sync=full backup'))


class BenchError(Exception):
    """One measurement failed; the row shows "error"."""


_T0 = time.monotonic()


def log(msg):
    print('bench: [%4.0fs] %s' % (time.monotonic() - _T0, msg),
          file=sys.stderr, flush=True)


def run(argv, **kw):
    """Runs a helper program; raises BenchError with its output on failure."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, **kw)
    if p.returncode != 0:
        raise BenchError('%s failed (%d): %s' % (
            ' '.join(argv[:3]), p.returncode, (p.stderr or p.stdout).strip()))
    return p.stdout


def parse_size(text):
    m = re.fullmatch(r'(\d+)([KMGT]?)', text.upper())
    if not m:
        raise argparse.ArgumentTypeError('bad size %r' % text)
    return int(m.group(1)) << {'': 0, 'K': 10, 'M': 20, 'G': 30,
                               'T': 40}[m.group(2)]


_warned_cache = False


class Disk:
    """The block device that holds the work directory, seen through
    /proc/diskstats (absent for a network filesystem: then settle() only
    returns)."""

    def __init__(self, path):
        st = os.stat(path)
        self.dev = (str(os.major(st.st_dev)), str(os.minor(st.st_dev)))
        stats = self.stats()
        self.discarded = stats[2] if stats else 0

    def stats(self):
        """(requests in flight, discards completed, sectors discarded)."""
        try:
            with open('/proc/diskstats') as f:
                for line in f:
                    v = line.split()
                    if tuple(v[:2]) == self.dev and len(v) >= 17:
                        return int(v[11]), int(v[14]), int(v[16])
        except OSError:
            pass
        return None

    def settle(self, quiet=1.0, limit=20.0):
        """Waits until nothing has been in flight and no discard has
        completed for @quiet seconds (at most @limit), then pauses after
        discards.  The filesystem may be mounted with `discard`: deleting
        the previous run's target discards its blocks, and on a virtual
        disk the host goes on freeing them after the guest saw the discard
        complete.  Measured here, sync=top right after a 2 GiB delete ran
        at 200 MiB/s against 290 five seconds later; the guest's counters
        were quiet by then.  So the pause grows with what was discarded:
        1 s plus 2 s per GiB, at most 10 s."""
        stats = self.stats()
        if stats is None:
            return
        deadline = time.monotonic() + limit
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats[:2] != last or stats[0]:
                last, since = stats[:2], time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            time.sleep(0.05)
        discarded = (stats[2] - self.discarded) * 512
        self.discarded = stats[2]
        if discarded > 0:
            time.sleep(min(10.0, 1.0 + 2.0 * discarded / GiB))


def drop_caches(disk):
    """Writes back dirty pages, empties the page cache (needs root) and waits
    for @disk to settle (Disk.settle()), so no run inherits cached data,
    pending writeback or the discards of the previous run's files."""
    global _warned_cache
    os.sync()
    try:
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('3\n')
    except OSError:
        if not _warned_cache:
            log('cannot drop the page cache (not root): cached reads may '
                'flatter both sides')
            _warned_cache = True
    disk.settle()


def qemu_img_create(path, size, backing=None, extended_l2=False):
    if os.path.exists(path):
        os.unlink(path)
    argv = ['qemu-img', 'create', '-q', '-f', 'qcow2']
    if backing:
        argv += ['-F', 'qcow2', '-b', backing]
    if extended_l2:
        argv += ['-o', 'extended_l2=on']
    run(argv + [path, str(size)])


# --- daemons ---------------------------------------------------------------

_live = {}


def _kill_live():
    for proc in list(_live.values()):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _live.clear()


atexit.register(_kill_live)


class Daemon:
    """One qblockd or QEMU process with a QMP monitor on a unix socket.

    Each measurement starts a fresh daemon and stops it afterwards, so no
    state (caches, leftover nodes, heap) carries from one run to the next."""

    def __init__(self, kind, argv_base, work):
        self.kind = kind
        self.sock = os.path.join(work, 'qmp-%s.sock' % kind)
        self.nbd_sock = os.path.join(work, 'nbd-%s.sock' % kind)
        self.logpath = os.path.join(work, '%s.log' % kind)
        self.argv_base = argv_base
        self.proc = None
        self.qmp = None

    def argv(self):
        if self.kind == 'qblock' or 'qemu-system' in self.argv_base[0]:
            return self.argv_base + [
                '-qmp', 'unix:%s,server=on,wait=off' % self.sock]
        return self.argv_base + [
            '--chardev', 'socket,id=mon0,path=%s,server=on,wait=off'
            % self.sock, '--monitor', 'chardev=mon0']

    def start(self):
        """Starts the daemon and negotiates QMP.  A daemon that does not
        greet within 30 s is killed and started once more: a start-up
        hiccup of the machine is not a measurement."""
        for attempt in (1, 2):
            try:
                return self._start_once()
            except BenchError as e:
                if attempt == 2:
                    raise
                log('%s; starting it again' % e)

    def _start_once(self):
        for p in (self.sock, self.nbd_sock):
            if os.path.exists(p):
                os.unlink(p)
        with open(self.logpath, 'a') as logf:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf)
        _live[self.proc.pid] = self.proc
        try:
            wait_for_path(self.sock, 30, self.proc)
            self.qmp = QMP(self.sock, timeout=30)
            self.qmp.connect(retry_for=30)
            self.qmp.timeout = 300
            self.qmp.sock.settimeout(300)
        except (RuntimeError, QMPTimeout, QMPClosed, QMPError, OSError,
                KeyError) as e:
            # KeyError: a reply to qmp_capabilities without "return"
            # (seen once from qemu-storage-daemon on this machine).
            self.stop()
            raise BenchError('%s did not start: %s: %s (see %s)'
                             % (self.kind, type(e).__name__, e, self.logpath))
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def cmd(self, command, /, **args):
        """A QMP command; its arguments are sent verbatim (use a dict with
        dashed names via **{...})."""
        try:
            return self.qmp.command(command, arguments=args)
        except QMPError as e:
            raise BenchError('%s: %s' % (command, e))
        except (QMPTimeout, QMPClosed, OSError) as e:
            raise BenchError('%s: %s: %s' % (command, type(e).__name__, e))

    def wait_job(self, job_id, timeout, names=('BLOCK_JOB_COMPLETED',)):
        """Waits for the end of job_id; returns the event's data.  A job that
        ended with an error raises BenchError."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.qmp.events):
                if (ev['event'] in names
                        and ev.get('data', {}).get('device') == job_id):
                    self.qmp.events.pop(i)
                    data = ev.get('data', {})
                    if data.get('error'):
                        raise BenchError('job %s: %s' % (job_id, data['error']))
                    return data
            self.qmp.events.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError('job %s: no %s within %d s'
                                 % (job_id, '/'.join(names), timeout))
            try:
                msg = self.qmp.read_message(left)
            except (QMPTimeout, QMPClosed, OSError) as e:
                raise BenchError('job %s: %s' % (job_id, e))
            if 'event' in msg:
                self.qmp.events.append(msg)

    def vm_hwm(self):
        """Peak resident set size so far (VmHWM), in bytes."""
        with open('/proc/%d/status' % self.proc.pid) as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
        raise BenchError('no VmHWM for pid %d' % self.proc.pid)

    def stop(self):
        if self.proc is None:
            return
        if self.qmp is not None:
            try:
                self.qmp.send({'execute': 'quit'})
            except OSError:
                pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        _live.pop(self.proc.pid, None)
        self.proc = None

    def start_nbd(self):
        self.cmd('nbd-server-start',
                 addr={'type': 'unix', 'data': {'path': self.nbd_sock}})

    def export(self, node, writable=False):
        self.cmd('block-export-add', type='nbd', id='exp-' + node,
                 **{'node-name': node, 'name': node, 'writable': writable})
        return 'nbd+unix:///%s?socket=%s' % (node, self.nbd_sock)


def file_opts(path, direct):
    """The protocol node of every image, the same options on both sides:
    O_DIRECT with Linux AIO for cache.direct=on; the page cache with each
    daemon's default I/O engine otherwise (qblock: io_uring where built,
    QEMU 7.2: the thread pool), which is what a user gets."""
    opts = {'driver': 'file', 'filename': path,
            'cache': {'direct': direct, 'no-flush': False}}
    if direct:
        opts['aio'] = 'native'
    return opts


def add_image(d, node, fmt, path, direct, **extra):
    d.cmd('blockdev-add', driver=fmt, file=file_opts(path, direct),
          **{'node-name': node}, **extra)


def timed_backup(d, job, source, target, sync, timeout, **extra):
    """Seconds from blockdev-backup to the completion event plus the
    blockdev-del of the target, which flushes it: both sides are timed to
    durable data."""
    t0 = time.monotonic()
    d.cmd('blockdev-backup', device=source, target=target, sync=sync,
          **{'job-id': job}, **extra)
    d.wait_job(job, timeout)
    d.cmd('blockdev-del', **{'node-name': target})
    return time.monotonic() - t0


# --- fio -------------------------------------------------------------------

def fio_json(args):
    out = run(['fio', '--output-format=json'] + args)
    try:
        return json.loads(out[out.index('{'):])['jobs'][0]
    except (ValueError, KeyError, IndexError) as e:
        raise BenchError('fio output not understood: %s' % e)


def fio_write_stats(job):
    """(IOPS, p50 us, p99 us) of a fio job's writes."""
    w = job['write']
    pct = w['clat_ns'].get('percentile', {})
    return (w['iops'], pct.get('50.000000', 0) / 1000.0,
            pct.get('99.000000', 0) / 1000.0)


def fio_guest(uri, size, rw, bs, depth, runtime):
    return fio_write_stats(fio_json([
        '--name=guest', '--ioengine=nbd', '--uri=' + uri, '--rw=' + rw,
        '--bs=' + bs, '--iodepth=%d' % depth, '--size=%d' % size,
        '--runtime=%d' % runtime, '--time_based']))


def fio_dirty(uri, size, nclusters):
    """Writes nclusters distinct 64 KiB clusters at random (fio's random map
    never repeats a block) through an NBD export."""
    fio_json(['--name=dirty', '--ioengine=nbd', '--uri=' + uri,
              '--rw=randwrite', '--bs=64k', '--iodepth=16',
              '--size=%d' % size, '--io_size=%d' % (nclusters * CLUSTER),
              '--randseed=42'])


# --- results ---------------------------------------------------------------

class Row:
    """One line of a table: samples per side, errors per side, and the
    physical baseline it is compared with."""

    def __init__(self, key, label, unit, higher_better=True, baseline=None):
        self.key = key
        self.label = label
        self.unit = unit
        self.higher_better = higher_better
        self.baseline = baseline
        self.samples = {s: [] for s in SIDES}
        self.errors = {s: None for s in SIDES}
        self.flags = {s: '' for s in SIDES}

    def add(self, side, value):
        self.samples[side].append(value)

    def fail(self, side, err):
        if self.errors[side] is None:
            self.errors[side] = str(err)

    def median(self, side):
        if self.errors[side] or not self.samples[side]:
            return None
        return statistics.median(self.samples[side])

    def ratio(self):
        qb, qe = self.median('qblock'), self.median('qemu')
        if qb is None or not qe:
            return None
        return qb / qe


def fmt_num(v, unit):
    if v is None:
        return '-'
    if unit.startswith('us'):
        return '%.1f' % v if v < 100 else '%.0f' % v
    if v >= 100:
        return '%.0f' % v
    return '%.1f' % v


class Bench:
    def __init__(self, args):
        self.args = args
        self.size = args.size
        self.work = args.dir
        self.rows = {}
        self.guest_rows = []
        self.order = []
        build = os.environ.get('QBLOCK_BUILD_DIR', os.path.join(TOP, 'build'))
        self.qblockd = os.path.join(build, 'qblockd')
        qsd = shutil.which('qemu-storage-daemon')
        if qsd:
            qemu_argv = [qsd]
        else:
            qemu_argv = [shutil.which('qemu-system-x86_64') or
                         'qemu-system-x86_64', '-machine', 'none',
                         '-nodefaults', '-display', 'none']
        self.daemons = {'qblock': Daemon('qblock', [self.qblockd], self.work),
                        'qemu': Daemon('qemu', qemu_argv, self.work)}
        self.job_timeout = max(120, self.size // (10 * MiB))
        # The tree as it is when the run starts (others may commit during
        # a long run); --dirty says the binary may hold uncommitted code.
        self.rev = subprocess.run(['git', '-C', TOP, 'describe', '--always',
                                   '--dirty'], capture_output=True,
                                  text=True).stdout.strip()
        self.t_start = time.monotonic()

    def path(self, name):
        return os.path.join(self.work, name)

    def row(self, key, *a, **kw):
        if key not in self.rows:
            self.rows[key] = Row(key, *a, **kw)
            self.order.append(key)
        return self.rows[key]

    def measure(self, row, side, fn):
        """Runs one sample; a failure marks the row and stops the daemon."""
        if row.errors[side]:
            return
        try:
            value = fn(self.daemons[side])
            row.add(side, value)
            log('  %-6s %s %s' % (side, fmt_num(value, row.unit), row.unit))
        except BenchError as e:
            log('%s %s: error: %s' % (side, row.label, e))
            row.fail(side, e)
            self.daemons[side].stop()

    def rounds(self, row, fn):
        for _ in range(self.args.runs):
            for side in ('qemu', 'qblock'):
                self.measure(row, side, fn)

    # --- images ---

    def prepare(self):
        os.makedirs(self.work, exist_ok=True)
        self.disk = Disk(self.work)
        n = self.size // CLUSTER
        log('preparing %d MiB images in %s' % (self.size // MiB, self.work))
        self.raw = self.path('src.raw')
        fio_json(['--name=fill', '--filename=' + self.raw,
                  '--size=%d' % self.size, '--bs=1M', '--rw=write',
                  '--ioengine=libaio', '--iodepth=16', '--direct=1',
                  '--refill_buffers'])
        self.qcow2 = self.path('src.qcow2')
        run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
             self.raw, self.qcow2])
        # (b): an overlay of src.qcow2 with 10 % of its clusters written.
        self.top = self.path('top.qcow2')
        qemu_img_create(self.top, self.size, backing=self.qcow2)
        rng = random.Random(42)
        self.top_clusters = max(1, n // 10)
        cmds = ''.join('write -q -P 0x%02x %d %d\n'
                       % (1 + c % 255, c * CLUSTER, CLUSTER)
                       for c in rng.sample(range(n), self.top_clusters))
        p = subprocess.run(['qemu-io', '-f', 'qcow2', self.top],
                           input=cmds + 'flush\n', capture_output=True,
                           text=True)
        if p.returncode != 0:
            raise BenchError('qemu-io overlay writes: ' + p.stderr)
        self.dirty_clusters = max(1, n // 20)

    # --- physical baseline ---

    def baseline(self):
        f = self.path('baseline.dat')
        # The bandwidth runs stop after the whole file or fio_runtime
        # seconds, whichever comes first: a rate, not a copy, is measured.
        common = ['--name=base', '--filename=' + f, '--size=%d' % self.size,
                  '--bs=1M', '--iodepth=16', '--ioengine=libaio',
                  '--direct=1', '--runtime=%d' % self.args.fio_runtime]
        rows = {
            'write': Row('base-w', 'fio 1 MiB write qd16', 'MiB/s'),
            'neww': Row('base-nw', 'fio 1 MiB write qd16, new file + '
                        'fdatasync', 'MiB/s'),
            'read': Row('base-r', 'fio 1 MiB read qd16', 'MiB/s'),
            'rw': Row('base-rw', 'fio 1 MiB 50/50 rw qd16, per direction',
                      'MiB/s'),
            'ddw': Row('base-ddw', 'dd oflag=direct bs=1M', 'MiB/s'),
            'ddr': Row('base-ddr', 'dd iflag=direct bs=1M', 'MiB/s')}
        # A baseline row has one side: the disk.  Its samples are kept in
        # the 'qemu' slot and printed in the baseline column.
        log('physical baseline')
        count = self.size // MiB
        dd = {'ddw': ['dd', 'if=/dev/zero', 'of=' + f, 'bs=1M',
                      'count=%d' % count, 'oflag=direct'],
              'ddr': ['dd', 'if=' + f, 'of=/dev/null', 'bs=1M',
                      'count=%d' % count, 'iflag=direct']}
        # dd writes every block first, so no fio read meets an unwritten
        # (fallocated) extent that the filesystem answers without the disk.
        for _ in range(self.args.runs):
            for what in ('ddw', 'neww', 'write', 'read', 'rw', 'ddr'):
                drop_caches(self.disk)
                if what == 'neww':
                    rows[what].add('qemu', self.new_file_write())
                    continue
                if what in dd:
                    t0 = time.monotonic()
                    run(dd[what])
                    rows[what].add('qemu', count / (time.monotonic() - t0))
                    continue
                job = fio_json(common + ['--rw=' + what, '--rwmixread=50'])
                key = 'write' if what == 'write' else 'read'
                rows[what].add('qemu', job[key]['bw_bytes'] / MiB)
        # Guest-write baseline: the same fio jobs on the file, no NBD.
        self.guest_base = {}
        for label, rw, bs, depth in WRITERS:
            stats = []
            for _ in range(self.args.runs):
                stats.append(fio_write_stats(fio_json([
                    '--name=base', '--filename=' + f,
                    '--size=%d' % self.size, '--rw=' + rw, '--bs=' + bs,
                    '--iodepth=%d' % depth, '--ioengine=libaio',
                    '--direct=1', '--runtime=%d' % self.args.fio_runtime,
                    '--time_based'])))
            self.guest_base[label] = tuple(
                statistics.median(s[i] for s in stats) for i in range(3))
        os.unlink(f)
        self.phys = {k: r.median('qemu') for k, r in rows.items()}
        self.baseline_rows = list(rows.values())

    def new_file_write(self):
        """
        What a backup into a new image is bound by: writing blocks the
        file never had, durably (the clock of (a) stops after the target is
        flushed).  On a thin-provisioned virtual disk or a filesystem
        mounted with discard this can be far slower than overwriting the
        blocks of an existing file, which is what the plain write row does.
        """
        f = self.path('baseline-new.dat')
        if os.path.exists(f):
            os.unlink(f)
        t0 = time.monotonic()
        job = fio_json(['--name=new', '--filename=' + f,
                        '--size=%d' % self.size, '--bs=1M', '--iodepth=16',
                        '--ioengine=libaio', '--direct=1', '--rw=write',
                        '--end_fsync=1',
                        '--runtime=%d' % self.args.fio_runtime])
        dt = time.monotonic() - t0
        os.unlink(f)
        return job['write']['io_bytes'] / MiB / dt

    # --- (a) full backup, (f) RSS ---

    def full_backup(self):
        rss = self.row('f', '(f) peak RSS during (a)', 'MiB',
                       higher_better=False)
        for direct in (True, False):
            for fmt, src in (('raw', self.raw), ('qcow2', self.qcow2)):
                mode = 'direct=on' if direct else 'direct=off'
                row = self.row('a-%s-%s' % (fmt, mode),
                               '(a) full %s->qcow2 %s' % (fmt, mode),
                               'MiB/s', baseline=self.phys['neww'])
                log(row.label)
                tgt = self.path('tgt.qcow2')

                def one(d, fmt=fmt, src=src, direct=direct, side_rss=rss):
                    qemu_img_create(tgt, self.size)
                    with d:
                        add_image(d, 'src', fmt, src, direct)
                        add_image(d, 'tgt', 'qcow2', tgt, direct)
                        drop_caches(self.disk)
                        dt = timed_backup(d, 'bk', 'src', 'tgt', 'full',
                                          self.job_timeout)
                        side_rss.add(d.kind, d.vm_hwm() / MiB)
                    return self.size / MiB / dt
                self.rounds(row, one)
                for side in SIDES:
                    if row.errors[side]:
                        rss.fail(side, 'see (a)')
        self.order.remove(rss.key)
        self.order.append(rss.key)

    # --- (b) sync=top ---

    def sync_top(self):
        row = self.row('b', '(b) sync=top, 10 % of clusters', 'MiB/s',
                       baseline=self.phys['rw'])
        log(row.label)
        tgt = self.path('tgt.qcow2')
        nbytes = self.top_clusters * CLUSTER

        def one(d):
            qemu_img_create(tgt, self.size, backing=self.qcow2)
            with d:
                add_image(d, 'base', 'qcow2', self.qcow2, True,
                          **{'read-only': True})
                add_image(d, 'top', 'qcow2', self.top, True, backing='base')
                add_image(d, 'tgt', 'qcow2', tgt, True, backing='base')
                drop_caches(self.disk)
                dt = timed_backup(d, 'bk', 'top', 'tgt', 'top',
                                  self.job_timeout)
            return nbytes / MiB / dt
        self.rounds(row, one)

    # --- (c) sync=bitmap ---

    def incremental(self):
        row = self.row('c', '(c) sync=bitmap, 5 % of clusters', 'MiB/s',
                       baseline=self.phys['rw'])
        log(row.label)
        tgt = self.path('tgt.qcow2')
        nbytes = self.dirty_clusters * CLUSTER

        def one(d):
            qemu_img_create(tgt, self.size)
            with d:
                add_image(d, 'src', 'qcow2', self.qcow2, True)
                d.cmd('block-dirty-bitmap-add', node='src', name='b0',
                      granularity=CLUSTER)
                d.start_nbd()
                uri = d.export('src', writable=True)
                fio_dirty(uri, self.size, self.dirty_clusters)
                d.cmd('block-export-del', id='exp-src')
                add_image(d, 'tgt', 'qcow2', tgt, True)
                drop_caches(self.disk)
                dt = timed_backup(d, 'bk', 'src', 'tgt', 'bitmap',
                                  self.job_timeout, bitmap='b0',
                                  **{'bitmap-mode': 'on-success'})
            return nbytes / MiB / dt
        self.rounds(row, one)

    # --- (d) fleecing export read ---

    def fleecing(self):
        for recipe in ('classic', 'cbw'):
            row = self.row('d-' + recipe, '(d) fleecing read, %s' % recipe,
                           'MiB/s', baseline=self.phys['read'])
            log(row.label)
            tmp = self.path('fleece.qcow2')

            def one(d, recipe=recipe):
                with d:
                    add_image(d, 'src', 'qcow2', self.qcow2, True)
                    node = self.setup_fleecing(d, recipe, tmp)
                    d.start_nbd()
                    uri = d.export(node)
                    drop_caches(self.disk)
                    t0 = time.monotonic()
                    run(['nbdcopy', uri, 'null:'],
                        timeout=self.job_timeout)
                    dt = time.monotonic() - t0
                return self.size / MiB / dt
            self.rounds(row, one)

    def setup_fleecing(self, d, recipe, tmp):
        """Gives the point-in-time view of 'src'; returns the node to read.
        classic: a qcow2 node backed by src and a sync=none backup into it;
        cbw: a copy-before-write filter and a snapshot-access node."""
        if recipe == 'classic':
            qemu_img_create(tmp, self.size, backing=self.qcow2)
            add_image(d, 'fleece', 'qcow2', tmp, True, backing='src')
            d.cmd('blockdev-backup', device='src', target='fleece',
                  sync='none', **{'job-id': 'fl'})
            return 'fleece'
        qemu_img_create(tmp, self.size)
        add_image(d, 'tmp', 'qcow2', tmp, True)
        d.cmd('blockdev-add', driver='copy-before-write', file='src',
              target='tmp', **{'node-name': 'cbw'})
        d.cmd('blockdev-add', driver='snapshot-access', file='cbw',
              **{'node-name': 'snap'})
        return 'snap'

    # --- (e) guest writes ---

    def guest_writes(self):
        runtime = self.args.fio_runtime
        tmp = self.path('fleece.qcow2')
        tgt = self.path('tgt.qcow2')
        for label, rw, bs, depth in WRITERS:
            for mode, _ in WRITE_MODES:
                key = 'e-%s-%s' % (label, mode)
                row = self.row(key, '%s, %s' % (label, mode), 'IOPS')
                row.writer, row.mode = label, mode
                row.lat = {s: [] for s in SIDES}
                self.guest_rows.append(row)
                log('(e) guest writes %s' % row.label)

                def one(d, row=row, rw=rw, bs=bs, depth=depth, mode=mode):
                    # The target replaces the previous run's, and the disk
                    # settles from that before anything is timed.
                    if mode.startswith('none'):
                        qemu_img_create(tmp, self.size, backing=self.qcow2,
                                        extended_l2=mode == 'none-xl2')
                    elif mode == 'full':
                        qemu_img_create(tgt, self.size)
                    drop_caches(self.disk)
                    with d:
                        add_image(d, 'src', 'qcow2', self.qcow2, True)
                        d.start_nbd()
                        # QEMU 7.2 refuses a writable export on a node whose
                        # backup already runs, so the export comes first on
                        # both sides.
                        uri = d.export('src', writable=True)
                        if mode.startswith('none'):
                            add_image(d, 'fleece', 'qcow2', tmp, True,
                                      backing='src')
                            d.cmd('blockdev-backup', device='src',
                                  target='fleece', sync='none',
                                  **{'job-id': 'bk'})
                        elif mode == 'full':
                            add_image(d, 'tgt', 'qcow2', tgt, True)
                            d.cmd('blockdev-backup', device='src',
                                  target='tgt', sync='full',
                                  **{'job-id': 'bk'})
                        iops, p50, p99 = fio_guest(uri, self.size, rw, bs,
                                                   depth, runtime)
                        if mode != 'idle':
                            jobs = d.cmd('query-jobs')
                            if not any(j['id'] == 'bk' and
                                       j['status'] == 'running'
                                       for j in jobs):
                                row.flags[d.kind] = '*'
                    row.lat[d.kind].append((p50, p99))
                    return iops
                self.rounds(row, one)

    # --- output ---

    def main_table(self):
        head = ['row', 'unit', 'qblock', 'QEMU', 'ratio', 'baseline',
                'runs', 'qblock min-max', 'QEMU min-max']
        lines = []
        for key in self.order:
            r = self.rows[key]
            if key.startswith('e-'):
                continue
            cells = [r.label, r.unit]
            for side in SIDES:
                cells.append('error' if r.errors[side]
                             else fmt_num(r.median(side), r.unit))
            ratio = r.ratio()
            cells.append('-' if ratio is None else '%.2f' % ratio)
            cells.append(fmt_num(r.baseline, r.unit))
            cells.append(str(self.args.runs))
            for side in SIDES:
                s = r.samples[side]
                cells.append('-' if r.errors[side] or not s else '%s-%s' % (
                    fmt_num(min(s), r.unit), fmt_num(max(s), r.unit)))
            lines.append(cells)
        for r in self.baseline_rows:
            v = r.median('qemu')
            s = r.samples['qemu']
            lines.append(['baseline: ' + r.label, r.unit, '', '', '',
                          '%s (%s-%s)' % (fmt_num(v, r.unit),
                                          fmt_num(min(s), r.unit),
                                          fmt_num(max(s), r.unit)),
                          str(self.args.runs), '', ''])
        return head, lines

    def guest_table(self):
        head = ['writer', 'during', 'qblock IOPS', 'QEMU IOPS', 'ratio',
                'qblock p50/p99 us', 'QEMU p50/p99 us',
                'baseline IOPS (p50/p99 us)', 'runs', 'qblock min-max',
                'QEMU min-max']
        lines = []
        for r in self.guest_rows:
            cells = [r.writer, r.mode]
            for side in SIDES:
                cells.append('error' if r.errors[side]
                             else fmt_num(r.median(side), '') + r.flags[side])
            ratio = r.ratio()
            cells.append('-' if ratio is None else '%.2f' % ratio)
            for side in SIDES:
                lat = r.lat[side]
                if r.errors[side] or not lat:
                    cells.append('-')
                else:
                    cells.append('%s/%s' % (
                        fmt_num(statistics.median(x[0] for x in lat), 'us'),
                        fmt_num(statistics.median(x[1] for x in lat), 'us')))
            b = self.guest_base[r.writer]
            cells.append('%s (%s/%s)' % (fmt_num(b[0], ''), fmt_num(b[1], 'us'),
                                         fmt_num(b[2], 'us'))
                         if r.mode == 'idle' else '')
            cells.append(str(self.args.runs))
            for side in SIDES:
                s = r.samples[side]
                cells.append('-' if r.errors[side] or not s else '%s-%s' % (
                    fmt_num(min(s), ''), fmt_num(max(s), '')))
            lines.append(cells)
        return head, lines

    def errors(self):
        out = []
        for key in self.order:
            r = self.rows[key]
            for side in SIDES:
                if r.errors[side] and r.errors[side] != 'see (a)':
                    out.append('%s, %s: %s' % (side, r.label, r.errors[side]))
        return out

    def notes(self):
        notes = ['ratio = qblock / QEMU (median of runs); for throughput and '
                 'IOPS > 1 means qblock is faster; for RSS < 1 means qblock '
                 'uses less memory.',
                 'baseline: (a) durable write of a new file (a full backup '
                 'fills a new image and is timed until it is flushed), '
                 '(b)-(c) per-direction bandwidth of the 50/50 fio '
                 'mix (a copy reads and writes the same disk), (d) fio read, '
                 '(e) the same fio job on a file with libaio + O_DIRECT.']
        if any(r.flags[s] for r in self.guest_rows for s in SIDES):
            notes.append('* the backup job had finished before the writer '
                         'stopped (in at least one run): part of that run '
                         'saw no job.')
        return notes

    def machine(self):
        cpu = '?'
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
        mem = '?'
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemTotal:'):
                    mem = '%.1f GiB' % (int(line.split()[1]) / (1 << 20))
        fs = subprocess.run(['findmnt', '-n', '-o', 'FSTYPE,SOURCE,OPTIONS',
                             '-T', self.work], capture_output=True,
                            text=True).stdout.strip()
        qemu = subprocess.run([self.daemons['qemu'].argv_base[0],
                               '--version'], capture_output=True,
                              text=True).stdout.splitlines()
        fio = subprocess.run(['fio', '--version'], capture_output=True,
                             text=True).stdout.strip()
        return [
            ('CPU', '%s, %d cores' % (cpu, os.cpu_count())),
            ('memory', mem),
            ('kernel', os.uname().release),
            ('filesystem', ' '.join(fs.split()) or '?'),
            ('QEMU', '%s (%s)' % (qemu[0] if qemu else '?',
                                 os.path.basename(
                                     self.daemons['qemu'].argv_base[0]))),
            ('qblock', 'git %s (%s)' % (self.rev or '?', self.qblockd)),
            ('fio', fio),
            ('image size', '%d MiB, runs %d, fio runtime %d s'
             % (self.size // MiB, self.args.runs, self.args.fio_runtime)),
            ('date', time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())),
        ]


def text_table(head, lines):
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    out = ['  '.join(str(c).ljust(w) for c, w in zip(head, widths)).rstrip()]
    out.append('  '.join('-' * w for w in widths))
    for cells in lines:
        out.append('  '.join(str(c).ljust(w)
                             for c, w in zip(cells, widths)).rstrip())
    return '\n'.join(out)


def md_table(head, lines):
    out = ['| ' + ' | '.join(head) + ' |',
           '|' + '|'.join('---' for _ in head) + '|']
    for cells in lines:
        out.append('| ' + ' | '.join(str(c).replace('|', '/') or ' '
                                     for c in cells) + ' |')
    return '\n'.join(out)


def chart(bench, path):
    """Grouped horizontal bars, qblock against QEMU = 1 per row.  Returns
    False (after saying why) when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        log('python3-matplotlib not installed: no chart')
        return False
    labels, values = [], []
    for key in bench.order:
        r = bench.rows[key]
        ratio = r.ratio()
        if ratio is None:
            continue
        label = r.label
        if key.startswith('e-'):
            label = '(e) IOPS ' + label
        if not r.higher_better:
            label += ' (lower is better)'
        labels.append(label)
        values.append(ratio)
    if not labels:
        log('no row has both sides: no chart')
        return False
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(labels) + 1.6))
    ys = range(len(labels))
    h = 0.38
    ax.barh([y - h / 2 for y in ys], [1.0] * len(labels), h,
            color='#9a9a9a')
    ax.barh([y + h / 2 for y in ys], values, h, color='#2f6db5')
    for y, v in zip(ys, values):
        ax.text(v, y + h / 2, ' %.2f' % v, va='center', fontsize=8)
    # Ratios: a log axis shows 0.5x and 2x at the same distance from 1.
    ax.set_xscale('log')
    lo, hi = min(0.5, min(values) / 1.5), max(2.0, max(values) * 2)
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(ticker.FixedLocator(
        [t for t in (0.01, 0.1, 0.25, 0.5, 1, 2, 4, 10, 100, 1000)
         if lo <= t <= hi]))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter('%g'))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color='black', linewidth=0.8)
    ax.set_xlabel('qblock relative to QEMU, log scale '
                  '(higher is better unless marked)')
    ax.set_title('qblock (blue) vs QEMU 7.2 (grey, = 1): %d MiB images, '
                 'median of %d runs' % (bench.size // MiB, bench.args.runs),
                 loc='left', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_doc(bench, text):
    with open(DOC) as f:
        doc = f.read()
    begin, end = doc.find(DOC_BEGIN), doc.find(DOC_END)
    if begin < 0 or end < begin:
        raise SystemExit('bench: %s has no %s ... %s markers'
                         % (DOC, DOC_BEGIN, DOC_END))
    doc = doc[:begin + len(DOC_BEGIN)] + '\n' + text + '\n' + doc[end:]
    with open(DOC, 'w') as f:
        f.write(doc)
    log('results written to %s' % DOC)


def main():
    ap = argparse.ArgumentParser(
        description='Backup/fleecing benchmarks, qblockd vs QEMU.')
    ap.add_argument('--quick', action='store_true',
                    help='256 MiB image, 1 run, 2 s fio runs')
    ap.add_argument('--size', type=parse_size,
                    help='image size (default 4G; 256M with --quick)')
    ap.add_argument('--runs', type=int, help='runs per row (default 3)')
    ap.add_argument('--fio-runtime', type=int,
                    help='seconds per guest-write fio run (default 4)')
    ap.add_argument('--dir', help='work directory (default '
                    '$QBLOCK_BUILD_DIR/bench-backup)')
    ap.add_argument('--write-doc', action='store_true',
                    help='write the tables into docs/benchmarks.md and the '
                    'chart into docs/benchmarks.png')
    ap.add_argument('--keep', action='store_true',
                    help='keep the image files')
    ap.add_argument('--rows', default='abcdef',
                    help='rows to run, e.g. "bc" (default: abcdef; f needs a)')
    args = ap.parse_args()
    args.size = args.size or (256 * MiB if args.quick else 4 * GiB)
    args.size -= args.size % CLUSTER
    args.runs = args.runs or (1 if args.quick else 3)
    args.fio_runtime = args.fio_runtime or (2 if args.quick else 4)
    build = os.environ.get('QBLOCK_BUILD_DIR', os.path.join(TOP, 'build'))
    args.dir = os.path.abspath(args.dir or os.path.join(build,
                                                        'bench-backup'))

    for tool in ('qemu-img', 'qemu-io', 'fio', 'nbdcopy'):
        if not shutil.which(tool):
            raise SystemExit('bench: %s not installed (scripts/ensure-deps.sh '
                             '--bench installs it)' % tool)
    bench = Bench(args)
    if not os.access(bench.qblockd, os.X_OK):
        raise SystemExit('bench: %s missing: build qblock first'
                         % bench.qblockd)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))

    try:
        bench.prepare()
        bench.baseline()
        for key, step in (('a', bench.full_backup), ('b', bench.sync_top),
                          ('c', bench.incremental), ('d', bench.fleecing),
                          ('e', bench.guest_writes)):
            if key in args.rows:
                step()
    finally:
        _kill_live()
        if not args.keep:
            for name in os.listdir(args.dir) if os.path.isdir(args.dir) \
                    else ():
                if name.endswith(('.raw', '.qcow2', '.dat', '.sock')):
                    os.unlink(os.path.join(args.dir, name))

    mh, ml = bench.main_table()
    gh, gl = bench.guest_table()
    errors = bench.errors()
    print()
    print(text_table(mh, ml))
    print()
    print('(e) guest writes through a writable NBD export (fio nbd engine)')
    print(text_table(gh, gl))
    print()
    for n in bench.notes():
        print(n)
    if errors:
        print('\nerrors:')
        for e in errors:
            print('  ' + e)
    log('done in %.0f s' % (time.monotonic() - bench.t_start))

    if args.write_doc:
        parts = ['### Machine', '',
                 md_table(['', ''], bench.machine()), '',
                 '### Backup, fleecing and memory', '',
                 md_table(mh, ml), '',
                 '### Guest writes through a writable NBD export', '',
                 md_table(gh, gl), '']
        parts += ['- ' + n for n in bench.notes()]
        if errors:
            parts += ['', 'Errors:', '']
            parts += ['- `%s`' % e for e in errors]
        parts.append('')
        if chart(bench, CHART):
            parts += ['![qblock vs QEMU](benchmarks.png)', '']
            log('chart written to %s' % CHART)
        write_doc(bench, '\n'.join(parts))


if __name__ == '__main__':
    main()
