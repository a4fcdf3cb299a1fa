#!/usr/bin/env python3
"""Generator tests, TAP output.

  test-qapi-schema.py QAPI_GEN TESTDIR [--update]
      bad/*.json must fail with exactly the text of bad/NAME.err;
      golden/NAME.json must generate exactly the files in golden/NAME/.
      --update rewrites the expected files from the current generator.
  test-qapi-schema.py --check-doc GENERATED COMMITTED
      the committed QMP reference must equal the one generated at build time
      (refresh it with "ninja -C BUILD qmp-reference").
  test-qapi-schema.py --update-doc GENERATED COMMITTED
      copies the generated reference over the committed one.
"""

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def result(self, ok, name, detail=''):
        self.n += 1
        print('%s %d - %s' % ('ok' if ok else 'not ok', self.n, name))
        if not ok:
            self.failed += 1
            for line in detail.splitlines():
                print('# ' + line)

    def finish(self):
        print('1..%d' % self.n)
        return 1 if self.failed else 0


def run_gen(gen, cwd, args):
    return subprocess.run([sys.executable, gen] + args, cwd=cwd,
                          capture_output=True, text=True)


def test_bad(tap, gen, testdir, update):
    bad = os.path.join(testdir, 'bad')
    for name in sorted(os.listdir(bad)):
        if not name.endswith('.json'):
            continue
        errfile = os.path.join(bad, name[:-5] + '.err')
        r = run_gen(gen, bad, ['--check', name])
        if update:
            with open(errfile, 'w') as f:
                f.write(r.stderr)
        with open(errfile) as f:
            expected = f.read()
        ok = r.returncode == 1 and r.stderr == expected
        tap.result(ok, 'bad/' + name, 'expected (exit 1):\n%sgot (exit %d):\n'
                   '%s' % (expected, r.returncode, r.stderr))


def test_golden(tap, gen, testdir, update):
    golden = os.path.join(testdir, 'golden')
    for name in sorted(os.listdir(golden)):
        if not name.endswith('.json'):
            continue
        expected_dir = os.path.join(golden, name[:-5])
        with tempfile.TemporaryDirectory() as out:
            r = run_gen(gen, golden, ['-o', out, name])
            if r.returncode != 0:
                tap.result(False, 'golden/' + name, r.stderr)
                continue
            if update:
                shutil.rmtree(expected_dir, ignore_errors=True)
                shutil.copytree(out, expected_dir)
            for f in sorted(os.listdir(out)):
                exp = os.path.join(expected_dir, f)
                ok = os.path.exists(exp) and filecmp.cmp(
                    os.path.join(out, f), exp, shallow=False)
                detail = ''
                if not ok:
                    r = subprocess.run(['diff', '-u', exp,
                                        os.path.join(out, f)],
                                       capture_output=True, text=True)
                    detail = r.stdout or 'missing ' + exp
                tap.result(ok, 'golden/%s/%s' % (name[:-5], f), detail)


def main(argv):
    tap = Tap()
    if argv[0] == '--update-doc':
        shutil.copyfile(argv[1], argv[2])
        print('wrote %s' % argv[2])
        return 0
    if argv[0] == '--check-doc':
        ok = os.path.exists(argv[2]) and filecmp.cmp(argv[1], argv[2],
                                                     shallow=False)
        tap.result(ok, 'committed QMP reference is current',
                   '%s differs from the schema; run "ninja -C BUILD '
                   'qmp-reference" and commit it' % argv[2])
        return tap.finish()
    gen, testdir = os.path.abspath(argv[0]), argv[1]
    update = '--update' in argv[2:]
    test_bad(tap, gen, testdir, update)
    test_golden(tap, gen, testdir, update)
    return tap.finish()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
