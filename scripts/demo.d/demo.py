#!/usr/bin/env python3
"""make demo: live backups of a disk that a guest keeps writing.

qblockd serves a qcow2 "guest disk" through a writable NBD export; a
guest stand-in (guest.py) rewrites random 64 KiB blocks through it the
whole time.  The demo takes a full backup, an external snapshot plus a
sync=top backup of the overlay, a persistent-bitmap incremental backup
and a fleecing export read by an NBD client.  Each one captures the
moment the writer was quiesced (as a guest agent's fsfreeze would);
the writer's model gives that moment's exact content, and at the end
every backup is compared with it (the real qemu-img when installed).

    scripts/demo [--size SIZE] [--keep] [--dir DIR]

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(TOP, 'tests', 'qemu-iotests'))

from guest import BLOCK, Guest, patch_raw_image, write_raw_image  # noqa
from qmp import QMP, QMPTimeout, wait_for_path  # noqa

MiB = 1024 * 1024
WRITER_RATE = 400           # guest blocks (64 KiB) per second
WRITER_DEPTH = 4            # guest writes in flight
SETTLE = 1.5                # seconds of guest writes between the backups
JOB_TIMEOUT = 300
FILES = ('expected.raw', 'disk.qcow2', 'full.qcow2', 'overlay.qcow2',
         'top.qcow2', 'inc.qcow2', 'fleece.qcow2', 'fleece-read.raw',
         'qblockd.log')


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted('interrupted by signal %d' % signum)


# --- terminal output ---

class Ui:
    def __init__(self):
        self.tty = sys.stdout.isatty()

    def bold(self, text):
        return '\033[1m%s\033[0m' % text if self.tty else text

    def step(self, text):
        print('\n' + self.bold('== ' + text), flush=True)

    def say(self, text):
        print('   ' + text, flush=True)


class Progress:
    """One live progress line: redrawn in place with \\r on a terminal,
    a plain line about once a second otherwise."""

    WIDTH = 20

    def __init__(self, ui, label, start):
        self.ui = ui
        self.label = label
        self.last_line = 0.0
        self.start = start          # wall-clock time the work started

    def show(self, done, total, extra='', final=False):
        frac = min(done / total, 1.0) if total else 0.0
        fill = int(frac * self.WIDTH)
        bar = '#' * fill + '.' * (self.WIDTH - fill)
        elapsed = time.time() - self.start
        rate = done / MiB / elapsed if elapsed > 0 else 0.0
        line = '   %-6s [%s] %3d%% %5.0f/%.0f MiB %5.0f MiB/s %s' % (
            self.label, bar, frac * 100, done / MiB, total / MiB, rate, extra)
        if self.ui.tty:
            # Never wider than the terminal: \r only rewinds one row.
            width = max(shutil.get_terminal_size().columns - 1, 40)
            sys.stdout.write('\r' + line[:width].ljust(width)
                             + ('\n' if final else ''))
            sys.stdout.flush()
        elif final or time.monotonic() - self.last_line >= 1.0:
            self.last_line = time.monotonic()
            print(line.rstrip(), flush=True)


# --- helpers ---

def parse_size(text):
    units = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
    t = text.strip().upper()
    for suffix in ('IB', 'B'):
        if t.endswith(suffix) and len(t) > len(suffix):
            t = t[:-len(suffix)]
            break
    unit = t[-1] if t and t[-1] in units else ''
    try:
        value = float(t[:-1] if unit else t)
    except ValueError:
        raise argparse.ArgumentTypeError('invalid size %r' % text)
    size = int(value * units[unit])
    if size < 4 * MiB or size % BLOCK:
        raise argparse.ArgumentTypeError(
            'size must be a multiple of 64 KiB, at least 4 MiB')
    return size


def run(args, check=True):
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (' '.join(args),
                                                   r.returncode,
                                                   r.stdout.strip()))
    return r


def event_time(ev):
    ts = ev['timestamp']
    return ts['seconds'] + ts['microseconds'] / 1e6


class Daemon:
    """qblockd with a QMP unix socket; its output goes to a log file.
    stop() ends it by its own pid on every path."""

    def __init__(self, prog, qmp_sock, log_path):
        self.qmp_sock = qmp_sock
        self.log_path = log_path
        self.log = open(log_path, 'wb')
        self.proc = subprocess.Popen(
            [prog, '-qmp', 'unix:%s,server=on,wait=off' % qmp_sock],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        self.qmp = QMP(qmp_sock)
        try:
            wait_for_path(qmp_sock, 30, self.proc)
            self.qmp.connect(retry_for=30)
        except BaseException:
            self.stop()
            raise

    def cmd(self, command, /, **args):
        return self.qmp.command(command, arguments=args)

    def stop(self):
        """quit over QMP; SIGTERM and then SIGKILL to its pid if it does
        not go.  Returns its exit status."""
        if self.proc.poll() is None:
            try:
                self.qmp.command('quit', timeout=10)
            except Exception:
                self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.qmp.close()
        self.log.close()
        return self.proc.returncode


# --- the scenario ---

class Demo:
    def __init__(self, opts):
        self.opts = opts
        self.ui = Ui()
        self.size = opts.size
        self.nblocks = self.size // BLOCK
        build = opts.build
        self.img = os.path.join(build, 'qblock-img')
        self.io = os.path.join(build, 'qblock-io')
        self.qblockd = os.path.join(build, 'qblockd')
        self.judge = shutil.which('qemu-img') or self.img
        self.nbdcopy = shutil.which('nbdcopy')
        self.daemon = None
        self.guest = None
        self.reader = None
        self.rows = []
        self.models = {}
        self.made_dir = False

    def path(self, name):
        return os.path.join(self.dir, name)

    # --- setup ---

    def make_dir(self):
        if self.opts.dir:
            self.dir = os.path.abspath(self.opts.dir)
            if not os.path.isdir(self.dir):
                os.makedirs(self.dir)
                self.made_dir = True
        else:
            self.dir = tempfile.mkdtemp(prefix='qblock-demo.')
            self.made_dir = True
        self.sock_dir = self.dir
        if len(self.path('qmp.sock')) > 100:
            self.sock_dir = tempfile.mkdtemp(prefix='qblock-demo-sock.')
        self.qmp_sock = os.path.join(self.sock_dir, 'qmp.sock')
        self.nbd_sock = os.path.join(self.sock_dir, 'nbd.sock')

    def cleanup_files(self):
        for name in FILES:
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass
        for sock in (self.qmp_sock, self.nbd_sock):
            try:
                os.unlink(sock)
            except FileNotFoundError:
                pass
        if self.sock_dir != self.dir:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
        if self.made_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def stop_processes(self):
        """Every exit path: the reader, the writer, the daemon, each by
        its own handle, each even if stopping another one failed."""
        if self.reader is not None:
            if self.reader.poll() is None:
                self.reader.terminate()
            try:
                self.reader.wait(10)
            except subprocess.TimeoutExpired:
                self.reader.kill()
                self.reader.wait()
            self.reader = None
        if self.guest is not None and self.guest.is_alive():
            try:
                self.guest.stop(10)
            except Exception as e:
                print('demo: stopping the guest writer: %s' % e,
                      file=sys.stderr)
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def create_disk(self):
        mib = self.size // MiB
        self.ui.step('1. A %d MiB qcow2 guest disk with recognisable data' % mib)
        t0 = time.monotonic()
        gens = [0] * self.nblocks
        write_raw_image(self.path('expected.raw'), gens)
        run([self.img, 'convert', '-f', 'raw', '-O', 'qcow2',
             self.path('expected.raw'), self.path('disk.qcow2')])
        self.expected_gens = gens
        self.ui.say('%d blocks of 64 KiB, each starting with its own header'
                    ' (%.1f s):' % (self.nblocks, time.monotonic() - t0))
        out = run([self.io, '-r', '-c', 'read -v %d 32' % BLOCK,
                   self.path('disk.qcow2')]).stdout
        for line in out.splitlines()[:2]:
            self.ui.say('  ' + line)

    def start_daemon(self):
        self.ui.step('2. qblockd serves the disk over a writable NBD export')
        self.daemon = Daemon(self.qblockd, self.qmp_sock,
                             self.path('qblockd.log'))
        d = self.daemon
        d.cmd('blockdev-add', **{
            'driver': 'qcow2', 'node-name': 'disk',
            'file': {'driver': 'file', 'filename': self.path('disk.qcow2')}})
        d.cmd('nbd-server-start',
              addr={'type': 'unix', 'data': {'path': self.nbd_sock}})
        d.cmd('block-export-add', **{'type': 'nbd', 'id': 'guest',
                                     'node-name': 'disk', 'name': 'guest',
                                     'writable': True})
        self.ui.say('qblockd pid %d, QMP %s' % (d.proc.pid, self.qmp_sock))
        self.ui.say('export "guest" (writable): nbd+unix:///guest?socket=%s'
                    % self.nbd_sock)

    def start_guest(self):
        self.ui.step('3. The guest starts writing')
        self.guest = Guest(self.nbd_sock, 'guest', self.expected_gens,
                           rate=WRITER_RATE, depth=WRITER_DEPTH)
        self.guest.start()
        self.ui.say('a writer rewrites random 64 KiB blocks through the export'
                    ' (~%d MiB/s, %d in flight), bumping each block\'s'
                    ' generation' % (WRITER_RATE * BLOCK // MiB, WRITER_DEPTH))
        time.sleep(SETTLE)

    # --- one point in time ---

    def at_point_in_time(self, label, what, action):
        """Quiesces the guest, keeps its model as point in time label,
        runs action() (the commands that define that point) and lets the
        guest go on.  Returns the wall time just before action()."""
        model = self.guest.quiesce()
        writes = self.guest.writes
        try:
            self.models[label] = model
            start = time.time()
            action()
        finally:
            self.guest.thaw()
        self.ui.say('point in time %s: guest quiesced after %d writes, %s,'
                    ' guest resumed' % (label, writes, what))
        return start

    def freeze_and_run(self, label, command, **args):
        return self.at_point_in_time(
            label, command + ' issued',
            lambda: self.daemon.cmd(command, **args))

    def watch_job(self, job_id, label, start):
        """Draws the job's progress from query-jobs until it ends; returns
        (bytes copied, seconds) from its BLOCK_JOB_COMPLETED event."""
        q = self.daemon.qmp
        bar = Progress(self.ui, label, start)
        writes0 = self.guest.writes
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            jobs = [j for j in q.command('query-jobs') if j['id'] == job_id]
            if not jobs or jobs[0]['status'] in ('concluded', 'null'):
                break
            j = jobs[0]
            status = '' if j['status'] == 'running' else ' (%s)' % j['status']
            bar.show(j['current-progress'], j['total-progress'],
                     'guest %d writes%s' % (self.guest.writes - writes0,
                                            status))
            if time.monotonic() > deadline:
                raise RuntimeError('job %s did not finish' % job_id)
            time.sleep(0.2)
        ev = self.job_end_event(job_id)
        data = ev['data']
        bar.show(data['offset'], data['len'],
                 'guest %d writes' % (self.guest.writes - writes0),
                 final=True)
        if ev['event'] != 'BLOCK_JOB_COMPLETED' or data.get('error'):
            raise RuntimeError('job %s: %s %s' % (job_id, ev['event'],
                                                  data.get('error', '')))
        return data['offset'], event_time(ev) - start

    def job_end_event(self, job_id, timeout=30):
        q = self.daemon.qmp
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(q.events):
                if (ev['event'] in ('BLOCK_JOB_COMPLETED', 'BLOCK_JOB_CANCELLED')
                        and ev['data'].get('device') == job_id):
                    return q.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError('no end event for job %s' % job_id)
            try:
                msg = q.read_message(min(left, 0.5))
            except QMPTimeout:
                continue
            if 'event' in msg:
                q.events.append(msg)

    # --- the four backups ---

    def full_backup(self):
        self.ui.step('(a) Full backup, and a persistent dirty bitmap from the'
                     ' same instant')
        self.ui.say('transaction: block-dirty-bitmap-add disk/bm0'
                    ' persistent=true + drive-backup sync=full -> full.qcow2')
        start = self.freeze_and_run('a', 'transaction', actions=[
            {'type': 'block-dirty-bitmap-add',
             'data': {'node': 'disk', 'name': 'bm0', 'persistent': True}},
            {'type': 'drive-backup',
             'data': {'job-id': 'full', 'device': 'disk', 'sync': 'full',
                      'format': 'qcow2', 'mode': 'absolute-paths',
                      'target': self.path('full.qcow2')}}])
        copied, secs = self.watch_job('full', 'full', start)
        self.rows.append({'mode': 'full', 'chain': 'full.qcow2',
                          'copied': copied, 'secs': secs, 'point': 'a',
                          'checks': [('a', 'full.qcow2', 'qcow2')],
                          'images': ['full.qcow2']})

    def snapshot_and_top(self):
        self.ui.step('(b) External snapshot, then a sync=top backup of the'
                     ' overlay')
        self.ui.say('transaction: blockdev-snapshot-sync disk -> overlay.qcow2'
                    ' + block-dirty-bitmap-add overlay/bm0 persistent=true')
        self.freeze_and_run('s', 'transaction', actions=[
            {'type': 'blockdev-snapshot-sync',
             'data': {'node-name': 'disk', 'snapshot-node-name': 'overlay',
                      'snapshot-file': self.path('overlay.qcow2'),
                      'format': 'qcow2', 'mode': 'absolute-paths'}},
            {'type': 'block-dirty-bitmap-add',
             'data': {'node': 'overlay', 'name': 'bm0', 'persistent': True}}])
        self.ui.say('disk.qcow2 is now the frozen base; the export follows the'
                    ' active layer, so guest writes land in overlay.qcow2')
        time.sleep(SETTLE)
        self.ui.say('drive-backup overlay sync=top -> top.qcow2'
                    ' (backing file: disk.qcow2)')
        start = self.freeze_and_run('b', 'drive-backup', **{
            'job-id': 'top', 'device': 'overlay', 'sync': 'top',
            'format': 'qcow2', 'mode': 'absolute-paths',
            'target': self.path('top.qcow2')})
        copied, secs = self.watch_job('top', 'top', start)
        self.rows.append({'mode': 'snapshot + sync=top',
                          'chain': 'top.qcow2 > disk.qcow2',
                          'copied': copied, 'secs': secs, 'point': 'b',
                          'checks': [('s', 'disk.qcow2', 'qcow2'),
                                     ('b', 'top.qcow2', 'qcow2')],
                          'images': ['top.qcow2']})

    def incremental(self):
        self.ui.step('(c) Incremental backup from the persistent bitmap')
        run([self.img, 'create', '-f', 'qcow2', '-b', self.path('full.qcow2'),
             '-F', 'qcow2', self.path('inc.qcow2'), str(self.size)])
        time.sleep(SETTLE)
        self.ui.say('bm0 holds every write since (a): on disk until the'
                    ' snapshot, on overlay since')
        self.ui.say('transaction: block-dirty-bitmap-merge disk/bm0 into'
                    ' overlay/bm0 + drive-backup sync=incremental'
                    ' -> inc.qcow2 (backing file: full.qcow2)')
        start = self.freeze_and_run('c', 'transaction', actions=[
            {'type': 'block-dirty-bitmap-merge',
             'data': {'node': 'overlay', 'target': 'bm0',
                      'bitmaps': [{'node': 'disk', 'name': 'bm0'}]}},
            {'type': 'drive-backup',
             'data': {'job-id': 'inc', 'device': 'overlay',
                      'sync': 'incremental', 'bitmap': 'bm0',
                      'format': 'qcow2', 'mode': 'existing',
                      'target': self.path('inc.qcow2')}}])
        copied, secs = self.watch_job('inc', 'incr', start)
        self.rows.append({'mode': 'incremental (bitmap)',
                          'chain': 'inc.qcow2 > full.qcow2',
                          'copied': copied, 'secs': secs, 'point': 'c',
                          'checks': [('c', 'inc.qcow2', 'qcow2')],
                          'images': ['inc.qcow2']})

    def fleecing(self):
        self.ui.step('(d) Fleecing: a point-in-time view exported over NBD')
        d = self.daemon
        run([self.img, 'create', '-f', 'qcow2', self.path('fleece.qcow2'),
             str(self.size)])
        d.cmd('blockdev-add', **{
            'driver': 'qcow2', 'node-name': 'tmp',
            'file': {'driver': 'file',
                     'filename': self.path('fleece.qcow2')}})
        self.ui.say('a copy-before-write filter over the live overlay saves'
                    ' old data into fleece.qcow2 before the guest overwrites'
                    ' it; the guest now writes through the filter')

        def install_filter():
            d.cmd('blockdev-add', **{'driver': 'copy-before-write',
                                     'node-name': 'cbw', 'file': 'overlay',
                                     'target': 'tmp'})
            d.cmd('block-export-add', **{'type': 'nbd', 'id': 'guest-cbw',
                                         'node-name': 'cbw',
                                         'name': 'guest-cbw',
                                         'writable': True})
            self.guest.switch_export('guest-cbw')

        self.at_point_in_time('d', 'filter cbw added, guest moved to its'
                              ' export', install_filter)
        d.cmd('blockdev-add', **{'driver': 'snapshot-access',
                                 'node-name': 'snap', 'file': 'cbw'})
        d.cmd('block-export-add', **{'type': 'nbd', 'id': 'snap',
                                     'node-name': 'snap', 'name': 'snap'})
        uri = 'nbd+unix:///snap?socket=%s' % self.nbd_sock
        self.ui.say('snapshot-access node exported read-only: %s' % uri)
        copied, secs, cow = self.read_export(uri)
        self.remove_export('snap')

        self.guest.quiesce()
        try:
            self.guest.switch_export('guest')
            self.remove_export('guest-cbw')
        finally:
            self.guest.thaw()
        for node in ('snap', 'cbw', 'tmp'):
            d.cmd('blockdev-del', **{'node-name': node})
        self.ui.say('exports removed, guest back on the overlay\'s export,'
                    ' snap/cbw/tmp deleted; copy-before-write saved %.1f MiB'
                    ' of old data for the reader' % (cow / MiB))
        self.rows.append({'mode': 'fleecing (cbw)',
                          'chain': 'fleece-read.raw',
                          'copied': copied, 'secs': secs, 'point': 'd',
                          'checks': [('d', 'fleece-read.raw', 'raw')],
                          'images': []})

    def remove_export(self, export_id):
        self.daemon.cmd('block-export-del', id=export_id)
        self.daemon.qmp.event_wait('BLOCK_EXPORT_DELETED',
                                   match={'id': export_id})

    def read_export(self, uri):
        """Reads the whole export into fleece-read.raw with nbdcopy (or
        qemu-img convert without it) while the guest keeps writing.
        Returns (bytes read, seconds, bytes saved by copy-before-write,
        measured as the growth of fleece.qcow2)."""
        out = self.path('fleece-read.raw')
        fleece = self.path('fleece.qcow2')
        used0 = os.stat(fleece).st_blocks * 512
        pct = [0]
        fds = ()
        if self.nbdcopy:
            rfd, wfd = os.pipe()
            args = [self.nbdcopy, '--progress=%d' % wfd, uri, out]
            fds = (wfd,)
            reader_name = 'nbdcopy'
        else:
            rfd = wfd = None
            args = [self.judge, 'convert', '-O', 'raw', uri, out]
            reader_name = os.path.basename(self.judge) + ' convert'
        self.ui.say('%s reads it while the guest keeps writing' % reader_name)
        start = time.time()
        self.reader = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, pass_fds=fds,
                                       start_new_session=True)
        if wfd is not None:
            os.close(wfd)
            threading.Thread(target=self._read_percent, args=(rfd, pct),
                             daemon=True).start()
        bar = Progress(self.ui, 'fleece', start)
        writes0 = self.guest.writes
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            try:
                self.reader.wait(0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            cow = os.stat(fleece).st_blocks * 512 - used0
            bar.show(self.size * pct[0] // 100, self.size,
                     'CoW %.0f MiB, guest %d writes'
                     % (cow / MiB, self.guest.writes - writes0))
            if time.monotonic() > deadline:
                raise RuntimeError('%s did not finish' % reader_name)
        secs = time.time() - start
        err = self.reader.stderr.read().decode(errors='replace').strip()
        status = self.reader.returncode
        self.reader = None
        if status != 0:
            raise RuntimeError('%s failed (%d): %s' % (reader_name, status,
                                                       err))
        cow = os.stat(fleece).st_blocks * 512 - used0
        bar.show(self.size, self.size,
                 'CoW %.0f MiB, guest %d writes'
                 % (cow / MiB, self.guest.writes - writes0), final=True)
        return self.size, secs, cow

    @staticmethod
    def _read_percent(fd, pct):
        with os.fdopen(fd, 'r') as f:
            for line in f:
                try:
                    pct[0] = int(line.split('/')[0])
                except ValueError:
                    pass

    # --- verification ---

    def finish(self):
        self.ui.step('The guest stops; qblockd quits')
        self.models['end'] = self.guest.stop()
        self.ui.say('%d guest writes in all' % self.guest.writes)
        status = self.daemon.stop()
        self.daemon = None
        if status != 0:
            raise RuntimeError('qblockd exited with status %d' % status)
        info = json.loads(run([self.judge, 'info', '--output=json',
                               self.path('overlay.qcow2')]).stdout)
        bitmaps = info.get('format-specific', {}).get('data', {}).get(
            'bitmaps', [])
        self.ui.say('persistent bitmaps stored in overlay.qcow2 for the next'
                    ' incremental: %s' % (', '.join(
                        '%s (granularity %d KiB)' % (b['name'],
                                                     b['granularity'] // 1024)
                        for b in bitmaps) or 'none'))

    def compare(self, point, image, fmt):
        """Turns expected.raw into point's content and compares image with
        it; returns True when identical."""
        patch_raw_image(self.path('expected.raw'), self.expected_gens,
                        self.models[point])
        r = run([self.judge, 'compare', '-U', '-f', 'raw', '-F', fmt,
                 self.path('expected.raw'), self.path(image)], check=False)
        verdict = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''
        self.ui.say('%-16s vs point in time %-3s: %s' % (image, point,
                                                         verdict))
        return r.returncode == 0

    def check(self, image):
        r = run([self.judge, 'check', '-U', self.path(image)], check=False)
        first = r.stdout.strip().splitlines()[0] if r.stdout.strip() else ''
        self.ui.say('%-16s %s check: %s' % (image,
                                            os.path.basename(self.judge),
                                            first))
        return r.returncode == 0

    def verify(self):
        judge = os.path.basename(self.judge)
        self.ui.step('Verification with %s: each backup against the exact'
                     ' point-in-time content from the writer\'s model'
                     % judge)
        order = ['a', 's', 'b', 'c', 'd', 'end']
        checks = []
        for row in self.rows:
            for point, image, fmt in row['checks']:
                checks.append((order.index(point), point, image, fmt, row))
        # expected.raw moves forward in time only, one patch per point.
        for _, point, image, fmt, row in sorted(checks, key=lambda c: c[0]):
            ok = self.compare(point, image, fmt)
            row['ok'] = row.get('ok', True) and ok
        for row in self.rows:
            for image in row['images']:
                row['ok'] = self.check(image) and row['ok']
        self.live_ok = self.compare('end', 'overlay.qcow2', 'qcow2')

    def table(self):
        self.ui.step('Summary')
        head = '%-22s %-24s %10s %8s %9s  %s' % (
            'backup', 'restore from', 'copied', 'time', 'MiB/s', 'result')
        print('   ' + self.ui.bold(head))
        for row in self.rows:
            rate = row['copied'] / MiB / row['secs'] if row['secs'] > 0 else 0
            print('   %-22s %-24s %6.1f MiB %7.2fs %9.1f  %s' % (
                row['mode'], row['chain'], row['copied'] / MiB, row['secs'],
                rate, 'verified' if row.get('ok') else 'FAILED'))
        print('   live disk (overlay.qcow2 > disk.qcow2) after the guest'
              ' stopped: %s' % ('matches the writer\'s model' if self.live_ok
                                else 'DIFFERS from the writer\'s model'))
        return all(r.get('ok') for r in self.rows) and self.live_ok

    def run(self):
        self.make_dir()
        print(self.ui.bold('qblock demo') + ': live backups of a disk a guest'
              ' keeps writing (files in %s)' % self.dir)
        t0 = time.monotonic()
        ok = False
        try:
            self.create_disk()
            self.start_daemon()
            self.start_guest()
            self.full_backup()
            self.snapshot_and_top()
            self.incremental()
            self.fleecing()
            self.finish()
            self.verify()
            ok = self.table()
        except KeyboardInterrupt:
            print('\ndemo: interrupted', file=sys.stderr)
        except Exception as e:
            print('\ndemo: error: %s' % e, file=sys.stderr)
            log = self.path('qblockd.log')
            if os.path.exists(log) and os.path.getsize(log):
                with open(log, errors='replace') as f:
                    tail = f.read()[-2000:]
                print('qblockd log:\n' + tail, file=sys.stderr)
        finally:
            self.stop_processes()
            if self.opts.keep:
                print('\nfiles kept in %s' % self.dir)
            else:
                self.cleanup_files()
        print('\ndemo %s in %.1f s' % ('passed' if ok else 'FAILED',
                                       time.monotonic() - t0))
        return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(
        prog='scripts/demo',
        description='Live backups of a disk that a guest keeps writing.')
    p.add_argument('--size', type=parse_size, default=parse_size('1G'),
                   help='guest disk size (default 1G; multiple of 64K)')
    p.add_argument('--keep', action='store_true',
                   help='keep the images and print where they are')
    p.add_argument('--dir', help='work directory (default: a new one in'
                   ' $TMPDIR)')
    p.add_argument('--build', default=os.environ.get(
        'QBLOCK_BUILD_DIR', os.path.join(TOP, 'build')),
        help='build directory (default $QBLOCK_BUILD_DIR or build/)')
    opts = p.parse_args()
    for prog in ('qblock-img', 'qblock-io', 'qblockd'):
        if not os.access(os.path.join(opts.build, prog), os.X_OK):
            p.error('%s/%s not found: build first (make)' % (opts.build, prog))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    return Demo(opts).run()


if __name__ == '__main__':
    sys.exit(main())
