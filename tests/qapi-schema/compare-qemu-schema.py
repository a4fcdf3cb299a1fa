#!/usr/bin/env python3
"""Compares our schema with the one a real QEMU reports (TAP output).

usage: compare-qemu-schema.py SCHEMA

Asks qemu-system-x86_64 (Debian's QEMU 7.2) for query-qmp-schema and checks,
for every command and event we define, that argument, result and event data
members have QEMU's names, optionality and JSON types, that our enum values
are QEMU's (we may define fewer), and that features match.  Differences we
make on purpose are listed in KNOWN.  Skips when QEMU is not installed.
"""

import json
import os
import re
import shutil
import subprocess
import sys

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'scripts'))

from qapi.gen_c import Introspect  # noqa: E402
from qapi.schema import QAPISchema  # noqa: E402

QEMU = 'qemu-system-x86_64'

# Deliberate differences: encryption details are not modelled, and the
# vhost-user-blk and FUSE exports have no options in our build.
KNOWN = {
    'query-block->[].inserted.image.format-specific{qcow2}.data.encrypt',
    'query-named-block-nodes->[].image.format-specific{qcow2}.data.encrypt',
    'blockdev-create.options{qcow2}.encrypt',
    'block-export-add{vhost-user-blk}.addr',
    'block-export-add{vhost-user-blk}.logical-block-size',
    'block-export-add{vhost-user-blk}.num-queues',
    'block-export-add{fuse}.mountpoint',
    'block-export-add{fuse}.growable',
    'block-export-add{fuse}.allow-other',
    # qblock's extension: who holds references on a node.
    'x-debug-query-block-graph->.nodes[].refcount',
    'x-debug-query-block-graph->.nodes[].monitor-owned',
    # qblock's extension: a node name for drive-backup's target.
    'drive-backup.target-id',
    'transaction.actions[]{drive-backup}.data.target-id',
}


def qemu_schema():
    req = ('{"execute":"qmp_capabilities"}\n'
           '{"execute":"query-qmp-schema"}\n'
           '{"execute":"quit"}\n')
    r = subprocess.run([QEMU, '-machine', 'none', '-nodefaults', '-display',
                        'none', '-qmp', 'stdio'], input=req,
                       capture_output=True, text=True, timeout=60)
    for line in r.stdout.splitlines():
        msg = json.loads(line)
        if isinstance(msg.get('return'), list):
            return {e['name']: e for e in msg['return']}
    raise RuntimeError('no schema from %s' % QEMU)


def our_schema(path):
    s = QAPISchema(path)
    text = '[' + ''.join(t for e in Introspect(s).build() for _, t in e) + ']'
    text = re.sub(r',\s*([\]}])', r'\1', text)
    return {e['name']: e for e in json.loads(text)}


def main(argv):
    if not shutil.which(QEMU):
        print('1..0 # SKIP %s not installed' % QEMU)
        return 0
    mine = our_schema(argv[0])
    theirs = qemu_schema()
    problems = []
    def cmp(a, b, path, seen):
        """Compares our type @a with QEMU's type @b, reached via @path."""
        if (a, b) in seen:
            return
        seen.add((a, b))
        ea, eb = mine[a], theirs[b]
        meta = ea['meta-type']
        if meta != eb['meta-type']:
            problems.append('%s: meta-type %s vs %s'
                            % (path, meta, eb['meta-type']))
        elif meta == 'builtin':
            if ea['json-type'] != eb['json-type']:
                problems.append('%s: builtin %s vs %s' % (path, a, b))
        elif meta == 'enum':
            ours = ea['values']
            extra = set(ours) - set(eb['values'])
            if extra:
                problems.append('%s: enum values %s not in QEMU'
                                % (path, sorted(extra)))
            elif ours != [v for v in eb['values'] if v in ours]:
                problems.append('%s: enum order differs' % path)
        elif meta == 'array':
            cmp(ea['element-type'], eb['element-type'], path + '[]', seen)
        elif meta == 'object':
            cmp_object(ea, eb, path, seen)
        elif meta == 'alternate':
            ka = [x['type'] for x in ea['members']]
            kb = [x['type'] for x in eb['members']]
            if len(ka) != len(kb):
                problems.append('%s: alternate branches differ' % path)
            for x, y in zip(ka, kb):
                cmp(x, y, path + '|', seen)

    def cmp_object(ea, eb, path, seen):
        ma = {x['name']: x for x in ea['members']}
        mb = {x['name']: x for x in eb['members']}
        for name in mb:
            if name not in ma:
                problems.append('%s.%s: missing member' % (path, name))
        for name in ma:
            where = '%s.%s' % (path, name)
            if name not in mb:
                problems.append('%s: not in QEMU' % where)
                continue
            if ('default' in ma[name]) != ('default' in mb[name]):
                problems.append('%s: optionality differs' % where)
            cmp(ma[name]['type'], mb[name]['type'], where, seen)
        if ea.get('tag') != eb.get('tag'):
            problems.append('%s: tag %s vs %s'
                            % (path, ea.get('tag'), eb.get('tag')))
        vb = {v['case']: v['type'] for v in eb.get('variants', [])}
        for v in ea.get('variants', []):
            where = '%s{%s}' % (path, v['case'])
            if v['case'] in vb:
                cmp(v['type'], vb[v['case']], where, seen)
            else:
                problems.append('%s: variant not in QEMU' % where)

    n = 0
    failed = 0
    for name, e in sorted(mine.items()):
        if e['meta-type'] not in ('command', 'event'):
            continue
        before = len(problems)
        if name not in theirs:
            problems.append('%s: not in QEMU' % name)
        else:
            t = theirs[name]
            cmp(e['arg-type'], t['arg-type'], name, set())
            if e['meta-type'] == 'command':
                cmp(e['ret-type'], t['ret-type'], name + '->', set())
            if sorted(e.get('features', [])) != sorted(t.get('features', [])):
                problems.append('%s: features %s vs %s' % (
                    name, e.get('features'), t.get('features')))
        mine_probs = [p for p in problems[before:]
                      if p.split(':')[0] not in KNOWN]
        n += 1
        print('%s %d - %s %s' % ('not ok' if mine_probs else 'ok', n,
                                 e['meta-type'], name))
        for p in mine_probs:
            print('# ' + p)
        failed += bool(mine_probs)
    print('1..%d' % n)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
