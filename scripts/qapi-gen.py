#!/usr/bin/env python3
"""QAPI code generator.

usage: qapi-gen.py [-o OUTDIR] [-p PREFIX] [--check] [--doc FILE] SCHEMA

Reads SCHEMA (qapi/qapi-schema.json and the files it includes), validates it,
and writes into OUTDIR:
  PREFIXqapi-types.{h,c}       C types, enum lookup tables, qapi_free_*()
  PREFIXqapi-visit.{h,c}       JSON (json-glib) input/output visitors
  PREFIXqapi-commands.{h,c}    qmp_* prototypes, marshallers, qmp_init_marshal
  PREFIXqapi-events.{h,c}      qapi_event_send_*() emitters
  PREFIXqapi-introspect.{h,c}  query-qmp-schema data
  PREFIXqmp-reference.md       the QMP reference from the doc comments
--check only validates; errors are printed as "FILE:LINE: message" and the
exit status is 1.  Python standard library only.
"""

import argparse
import os
import sys

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from qapi.gen_c import CGen, Introspect  # noqa: E402
from qapi.gen_doc import gen_doc  # noqa: E402
from qapi.parser import QAPIError  # noqa: E402
from qapi.schema import QAPISchema  # noqa: E402


def write_file(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def main(argv):
    ap = argparse.ArgumentParser(description='Generate C code from a QAPI '
                                 'schema.')
    ap.add_argument('schema')
    ap.add_argument('-o', '--output-dir', default='.')
    ap.add_argument('-p', '--prefix', default='')
    ap.add_argument('--check', action='store_true',
                    help='validate only, write nothing')
    ap.add_argument('--title', default='QMP Reference',
                    help='title of the generated reference')
    args = ap.parse_args(argv)
    try:
        schema = QAPISchema(args.schema)
    except QAPIError as err:
        print(err, file=sys.stderr)
        return 1
    if args.check:
        return 0
    src = os.path.basename(args.schema)
    gen = CGen(schema, args.prefix, src)
    outputs = {
        'qapi-types.h': gen.gen_types_h(),
        'qapi-types.c': gen.gen_types_c(),
        'qapi-visit.h': gen.gen_visit_h(),
        'qapi-visit.c': gen.gen_visit_c(),
        'qapi-commands.h': gen.gen_commands_h(),
        'qapi-commands.c': gen.gen_commands_c(),
        'qapi-events.h': gen.gen_events_h(),
        'qapi-events.c': gen.gen_events_c(),
        'qapi-introspect.h': gen.gen_introspect_h(),
        'qapi-introspect.c': gen.gen_introspect_c(Introspect(schema).build()),
        'qmp-reference.md': gen_doc(schema, args.title),
    }
    os.makedirs(args.output_dir, exist_ok=True)
    for name, text in outputs.items():
        write_file(os.path.join(args.output_dir, args.prefix + name),
                         text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
