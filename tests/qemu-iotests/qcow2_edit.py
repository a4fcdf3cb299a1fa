#!/usr/bin/env python3
#
# Inspect and damage qcow2 images for iotests (stdlib only).
#
#   qcow2_edit.py IMG header                  print the header fields
#   qcow2_edit.py IMG set FIELD VALUE         overwrite a header field
#   qcow2_edit.py IMG l1 INDEX                print an L1 entry
#   qcow2_edit.py IMG set-l1 INDEX VALUE      overwrite an L1 entry
#   qcow2_edit.py IMG l2 GUEST_OFFSET         print the L2 entry mapping it
#   qcow2_edit.py IMG set-l2 GUEST_OFFSET VAL overwrite that L2 entry
#   qcow2_edit.py IMG reftable INDEX          print a refcount table entry
#   qcow2_edit.py IMG set-reftable INDEX VAL  overwrite it
#   qcow2_edit.py IMG refcount CLUSTER        print a cluster's refcount
#   qcow2_edit.py IMG set-refcount CLUSTER V  overwrite it
#   qcow2_edit.py IMG truncate SIZE           cut (or extend) the file
#
# Values accept 0x prefixes.  Field layout per docs/interop/qcow2.txt.
#
# SPDX-License-Identifier: GPL-2.0-or-later

import struct
import sys

# name, offset, struct code; v3 fields follow the v2 header (72 bytes).
FIELDS = [
    ('magic', 0, '>I'),
    ('version', 4, '>I'),
    ('backing_file_offset', 8, '>Q'),
    ('backing_file_size', 16, '>I'),
    ('cluster_bits', 20, '>I'),
    ('size', 24, '>Q'),
    ('crypt_method', 32, '>I'),
    ('l1_size', 36, '>I'),
    ('l1_table_offset', 40, '>Q'),
    ('refcount_table_offset', 48, '>Q'),
    ('refcount_table_clusters', 56, '>I'),
    ('nb_snapshots', 60, '>I'),
    ('snapshots_offset', 64, '>Q'),
    ('incompatible_features', 72, '>Q'),
    ('compatible_features', 80, '>Q'),
    ('autoclear_features', 88, '>Q'),
    ('refcount_order', 96, '>I'),
    ('header_length', 100, '>I'),
]
V2_HEADER_LEN = 72
L1_OFFSET_MASK = 0x00fffffffffffe00


class Image:
    def __init__(self, path):
        self.path = path
        self.f = open(path, 'r+b')

    def read(self, off, fmt):
        self.f.seek(off)
        size = struct.calcsize(fmt)
        data = self.f.read(size)
        if len(data) < size:
            data += b'\0' * (size - len(data))
        return struct.unpack(fmt, data)[0]

    def write(self, off, fmt, value):
        self.f.seek(off)
        self.f.write(struct.pack(fmt, value))

    def field(self, name):
        for fname, off, fmt in FIELDS:
            if fname == name:
                return off, fmt
        sys.exit('unknown header field: %s' % name)

    def get(self, name):
        return self.read(*self.field(name))

    @property
    def cluster_size(self):
        return 1 << self.get('cluster_bits')

    def header(self):
        limit = V2_HEADER_LEN if self.get('version') < 3 else 104
        for name, off, fmt in FIELDS:
            if off < limit:
                print('%-24s %#x' % (name, self.read(off, fmt)))

    def l2_entry_offset(self, guest):
        cs = self.cluster_size
        l2_entries = cs // 8
        l1_index = guest // cs // l2_entries
        l1 = self.read(self.get('l1_table_offset') + 8 * l1_index, '>Q')
        l2 = l1 & L1_OFFSET_MASK
        if not l2:
            sys.exit('guest offset %#x has no L2 table' % guest)
        return l2 + 8 * ((guest // cs) % l2_entries)

    def refcount_location(self, cluster):
        """(file offset, bits) of the refcount of a host cluster."""
        bits = 1 << (self.get('refcount_order')
                     if self.get('version') >= 3 else 4)
        per_block = self.cluster_size * 8 // bits
        rt = self.get('refcount_table_offset')
        block = self.read(rt + 8 * (cluster // per_block), '>Q')
        if not block:
            sys.exit('cluster %d has no refcount block' % cluster)
        return block, (cluster % per_block), bits

    def refcount(self, cluster):
        block, idx, bits = self.refcount_location(cluster)
        if bits < 8:
            byte = self.read(block + idx * bits // 8, '>B')
            return (byte >> (idx * bits % 8)) & ((1 << bits) - 1)
        return self.read(block + idx * bits // 8,
                         {8: '>B', 16: '>H', 32: '>I', 64: '>Q'}[bits])

    def set_refcount(self, cluster, value):
        block, idx, bits = self.refcount_location(cluster)
        if bits < 8:
            off = block + idx * bits // 8
            shift = idx * bits % 8
            mask = ((1 << bits) - 1) << shift
            byte = self.read(off, '>B')
            self.write(off, '>B', (byte & ~mask) | ((value << shift) & mask))
        else:
            self.write(block + idx * bits // 8,
                       {8: '>B', 16: '>H', 32: '>I', 64: '>Q'}[bits], value)


def parse(arg):
    """Integers (also negative ones, as shell arithmetic prints values with
    bit 63 set) become unsigned 64-bit values; anything else stays text."""
    try:
        return int(arg, 0) & 0xffffffffffffffff
    except ValueError:
        return arg


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__ if __doc__ else 'usage: qcow2_edit.py IMG CMD ...')
    img = Image(argv[1])
    cmd, args = argv[2], [parse(a) for a in argv[3:]]
    if cmd == 'header':
        img.header()
    elif cmd == 'set':
        img.write(*img.field(args[0]), args[1])
    elif cmd == 'l1':
        print('%#x' % img.read(img.get('l1_table_offset') + 8 * args[0],
                               '>Q'))
    elif cmd == 'set-l1':
        img.write(img.get('l1_table_offset') + 8 * args[0], '>Q', args[1])
    elif cmd == 'l2':
        print('%#x' % img.read(img.l2_entry_offset(args[0]), '>Q'))
    elif cmd == 'set-l2':
        img.write(img.l2_entry_offset(args[0]), '>Q', args[1])
    elif cmd == 'reftable':
        print('%#x' % img.read(img.get('refcount_table_offset') + 8 * args[0],
                               '>Q'))
    elif cmd == 'set-reftable':
        img.write(img.get('refcount_table_offset') + 8 * args[0], '>Q',
                  args[1])
    elif cmd == 'refcount':
        print(img.refcount(args[0]))
    elif cmd == 'set-refcount':
        img.set_refcount(args[0], args[1])
    elif cmd == 'truncate':
        img.f.truncate(args[0])
    else:
        sys.exit('unknown command: %s' % cmd)
    img.f.close()


if __name__ == '__main__':
    main(sys.argv)
