"""QAPI schema model: definitions, type resolution and validation.

QAPISchema(fname) reads the main file and its includes, checks every
expression's shape, resolves type references and checks the semantic rules
(discriminators, alternates, clashes, docs).  Generators walk the resulting
entities; nothing in here emits code.
"""

import os
import re
from collections import OrderedDict

from .parser import QAPIError, QAPISchemaParser, SourceInfo, display_path

C_KEYWORDS = set('''
auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof
static struct switch typedef union unsigned void volatile while _Bool
bool true false asm typeof unix linux errno
'''.split())

BUILTINS = OrderedDict([
    # name: (C type, JSON type for introspection, list C name)
    ('str', ('char *', 'string')),
    ('number', ('double', 'number')),
    ('int', ('int64_t', 'int')),
    ('int8', ('int8_t', 'int')),
    ('int16', ('int16_t', 'int')),
    ('int32', ('int32_t', 'int')),
    ('int64', ('int64_t', 'int')),
    ('uint8', ('uint8_t', 'int')),
    ('uint16', ('uint16_t', 'int')),
    ('uint32', ('uint32_t', 'int')),
    ('uint64', ('uint64_t', 'int')),
    ('size', ('uint64_t', 'int')),
    ('bool', ('bool', 'boolean')),
    ('any', ('JsonNode *', 'value')),
    ('null', ('JsonNode *', 'null')),
])

NAME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_.-]*$')
SPECIAL_FEATURES = ('deprecated', 'unstable')


def c_name(name, protect=True):
    out = re.sub(r'[^A-Za-z0-9_]', '_', name)
    if protect and (out in C_KEYWORDS or out[0].isdigit()):
        return 'q_' + out
    return out


def camel_to_upper(name):
    """'BlockdevOnError' -> 'BLOCKDEV_ON_ERROR', 'JSONType' -> 'JSON_TYPE'."""
    out = []
    for i, ch in enumerate(name):
        prev = name[i - 1] if i else ''
        nxt = name[i + 1] if i + 1 < len(name) else ''
        if ch.isupper() and i and (prev.islower() or prev.isdigit() or
                                   (prev.isupper() and nxt.islower())):
            out.append('_')
        out.append(ch)
    return c_name(''.join(out), False).upper()


def c_enum_const(type_name, value, prefix=None):
    base = prefix if prefix is not None else camel_to_upper(type_name)
    return base + '_' + c_name(value, False).upper()


# --------------------------------------------------------------------------
# Conditions ('if')

class Cond:
    """An 'if' condition: a macro name or an all/any/not tree."""

    def __init__(self, expr=None):
        self.expr = expr

    def is_true(self):
        return self.expr is None

    def cgen(self, e=None):
        e = self.expr if e is None else e
        if isinstance(e, str):
            return 'defined(%s)' % e
        if 'not' in e:
            return '!(%s)' % self.cgen(e['not'])
        op = ' && ' if 'all' in e else ' || '
        return '(' + op.join(self.cgen(x) for x in list(e.values())[0]) + ')'

    def docgen(self, e=None):
        e = self.expr if e is None else e
        if isinstance(e, str):
            return e
        if 'not' in e:
            return 'not ' + self.docgen(e['not'])
        op = ' and ' if 'all' in e else ' or '
        return '(' + op.join(self.docgen(x) for x in list(e.values())[0]) + ')'


def check_if(expr, info, source):
    if 'if' not in expr:
        return Cond()
    cond = expr['if']

    def walk(e):
        if isinstance(e, str):
            if not re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', e):
                raise QAPIError(info, "'if' condition '%s' of %s is not a "
                                "valid macro name" % (e, source))
            return
        if not isinstance(e, dict) or len(e) != 1:
            raise QAPIError(info, "'if' condition of %s must be a string or "
                            "an object with one of 'all', 'any', 'not'"
                            % source)
        (op, arg), = e.items()
        if op == 'not':
            walk(arg)
        elif op in ('all', 'any'):
            if not isinstance(arg, list) or not arg:
                raise QAPIError(info, "'if' '%s' of %s needs a non-empty "
                                "list" % (op, source))
            for a in arg:
                walk(a)
        else:
            raise QAPIError(info, "'if' condition of %s has unknown "
                            "operator '%s'" % (source, op))
    walk(cond)
    return Cond(cond)


# --------------------------------------------------------------------------
# Entities

class Entity:
    meta = None

    def __init__(self, name, info, doc, cond, features, module):
        self.name = name
        self.info = info
        self.doc = doc
        self.cond = cond or Cond()
        self.features = features or []
        self.module = module

    def c_name(self):
        return c_name(self.name)

    def is_implicit(self):
        return self.name.startswith('q_')

    def describe(self):
        """"struct 'Foo'", "union 'Bar'", "command 'baz'"..."""
        meta = self.meta
        if isinstance(self, ObjectType):
            meta = 'union' if self.is_union() else 'struct'
        return "%s '%s'" % (meta, self.name)

    def special_features(self):
        return [f.name for f in self.features if f.name in SPECIAL_FEATURES]


class Feature:
    def __init__(self, name, cond):
        self.name = name
        self.cond = cond


class Type(Entity):
    def c_type(self):
        """C type of a member/argument of this type."""
        raise NotImplementedError

    def c_param_type(self):
        return self.c_type()

    def is_pointer(self):
        return self.c_type().endswith('*')

    def json_kind(self):
        """JSON value kind on the wire (for alternates)."""
        raise NotImplementedError


class BuiltinType(Type):
    meta = 'builtin'

    def __init__(self, name):
        super().__init__(name, None, None, None, None, None)
        self.ctype, self.json_type = BUILTINS[name]

    def c_type(self):
        return self.ctype

    def c_param_type(self):
        return 'const char *' if self.name == 'str' else self.ctype

    def json_kind(self):
        return {'string': 'string', 'number': 'number', 'int': 'number',
                'boolean': 'bool', 'value': 'value', 'null': 'null'}[
                    self.json_type]

    def c_name(self):
        return self.name


class EnumType(Type):
    meta = 'enum'

    def __init__(self, name, info, doc, cond, features, module, values,
                 prefix):
        super().__init__(name, info, doc, cond, features, module)
        self.values = values   # list of EnumValue
        self.prefix = prefix

    def c_type(self):
        return self.c_name()

    def json_kind(self):
        return 'string'

    def const(self, value):
        return c_enum_const(self.name, value, self.prefix)

    def max_const(self):
        return c_enum_const(self.name, '_MAX', self.prefix)


class EnumValue:
    def __init__(self, name, cond, features):
        self.name = name
        self.cond = cond
        self.features = features


class ArrayType(Type):
    meta = 'array'

    def __init__(self, element, info):
        super().__init__('[%s]' % element.name, info, None, element.cond,
                         None, element.module)
        self.element = element

    def c_name(self):
        return self.element.c_name() + 'List'

    def c_type(self):
        return self.c_name() + ' *'

    def json_kind(self):
        return 'array'


class Member:
    def __init__(self, name, typ_name, optional, info, cond, features,
                 owner):
        self.name = name
        self.type_name = typ_name
        self.type = None
        self.optional = optional
        self.info = info
        self.cond = cond
        self.features = features
        self.owner = owner

    def c_name(self):
        return c_name(self.name)

    def has_flag(self):
        """Optional scalars carry has_NAME; optional pointers use NULL."""
        return self.optional and not self.type.is_pointer()


class Variant:
    def __init__(self, case, type_name, info, cond):
        self.case = case
        self.type_name = type_name
        self.type = None
        self.info = info
        self.cond = cond


class ObjectType(Type):
    meta = 'object'

    def __init__(self, name, info, doc, cond, features, module, base_name,
                 members, tag_name=None, variants=None):
        super().__init__(name, info, doc, cond, features, module)
        self.base_name = base_name
        self.base = None
        self.local_members = members
        self.tag_name = tag_name
        self.tag = None
        self.variants = variants or []

    def c_type(self):
        return self.c_name() + ' *'

    def json_kind(self):
        return 'object'

    def is_union(self):
        return self.tag_name is not None

    def members(self):
        """All non-variant members, base members first."""
        return (self.base.members() if self.base else []) + \
            self.local_members

    def is_empty(self):
        return not self.members() and not self.variants


class AlternateType(Type):
    meta = 'alternate'

    def __init__(self, name, info, doc, cond, features, module, variants):
        super().__init__(name, info, doc, cond, features, module)
        self.variants = variants

    def c_type(self):
        return self.c_name() + ' *'

    def json_kind(self):
        return 'alternate'


class Command(Entity):
    meta = 'command'

    def __init__(self, name, info, doc, cond, features, module, arg_name,
                 ret_name, boxed, gen, success_response, allow_oob,
                 allow_preconfig, coroutine):
        super().__init__(name, info, doc, cond, features, module)
        self.arg_name = arg_name
        self.arg_type = None
        self.ret_name = ret_name
        self.ret_type = None
        self.boxed = boxed
        self.gen = gen
        self.success_response = success_response
        self.allow_oob = allow_oob
        self.allow_preconfig = allow_preconfig
        self.coroutine = coroutine


class Event(Entity):
    meta = 'event'

    def __init__(self, name, info, doc, cond, features, module, arg_name,
                 boxed):
        super().__init__(name, info, doc, cond, features, module)
        self.arg_name = arg_name
        self.arg_type = None
        self.boxed = boxed


# --------------------------------------------------------------------------
# Schema

DEF_KEYS = {
    'enum': ({'enum', 'data'}, {'if', 'features', 'prefix'}),
    'struct': ({'struct', 'data'}, {'base', 'if', 'features'}),
    'union': ({'union', 'base', 'discriminator', 'data'}, {'if', 'features'}),
    'alternate': ({'alternate', 'data'}, {'if', 'features'}),
    'command': ({'command'}, {'data', 'returns', 'boxed', 'if', 'features',
                              'gen', 'success-response', 'allow-oob',
                              'allow-preconfig', 'coroutine'}),
    'event': ({'event'}, {'data', 'boxed', 'if', 'features'}),
    'include': ({'include'}, set()),
    'pragma': ({'pragma'}, set()),
}


class QAPISchema:
    def __init__(self, fname):
        self.base_dir = os.path.dirname(os.path.abspath(fname))
        self.entities = OrderedDict()
        self.order = []          # entities in definition order
        self.docs = []           # (entity-or-None, QAPIDoc) in source order
        self.modules = []        # display names of files, in include order
        self.doc_required = True
        for name in BUILTINS:
            self.entities[name] = BuiltinType(name)
        self._included = set()
        self._read(os.path.abspath(fname), None)
        self._resolve()
        self._check()

    # ---- reading -------------------------------------------------------

    def _read(self, path, incl_info):
        if path in self._included:
            return
        self._included.add(path)
        display = display_path(path, os.getcwd())
        if not os.path.exists(path):
            raise QAPIError(incl_info, "cannot read include file '%s'"
                            % display)
        module = display_path(path, self.base_dir)
        self.modules.append(module)
        parser = QAPISchemaParser(path, display)
        # Free-form doc blocks (headings) are interleaved with definitions
        # by their position, so the reference keeps the source order.
        free_docs_list = list(parser.docs)
        di = 0
        for idx, (expr, info, doc) in enumerate(parser.exprs):
            while di < len(free_docs_list) and free_docs_list[di][0] <= idx:
                self.docs.append((None, free_docs_list[di][1], module))
                di += 1
            if 'include' in expr:
                self._check_keys(expr, info, 'include')
                inc = expr['include']
                if not isinstance(inc, str):
                    raise QAPIError(info, "value of 'include' must be a "
                                    "string")
                if doc is not None:
                    raise QAPIError(doc.info, 'documentation for %s is not '
                                    'followed by its definition' % doc.symbol)
                self._read(os.path.join(os.path.dirname(path), inc), info)
                continue
            if 'pragma' in expr:
                self._pragma(expr, info)
                continue
            ent = self._define(expr, info, doc, module)
            self.docs.append((ent, doc, module))
        for _, d in free_docs_list[di:]:
            self.docs.append((None, d, module))

    def _pragma(self, expr, info):
        self._check_keys(expr, info, 'pragma')
        p = expr['pragma']
        if not isinstance(p, dict):
            raise QAPIError(info, "value of 'pragma' must be an object")
        for k, v in p.items():
            if k == 'doc-required':
                if not isinstance(v, bool):
                    raise QAPIError(info, "pragma 'doc-required' must be "
                                    "true or false")
                self.doc_required = v
            else:
                raise QAPIError(info, "unknown pragma '%s'" % k)

    def _check_keys(self, expr, info, meta):
        required, optional = DEF_KEYS[meta]
        for k in expr:
            if k not in required and k not in optional:
                raise QAPIError(info, "%s '%s' has unknown key '%s'"
                                % (meta, expr[meta], k))
        for k in sorted(required):
            if k not in expr:
                raise QAPIError(info, "%s '%s' lacks key '%s'"
                                % (meta, expr[meta], k))

    def _check_name(self, name, info, what, style=None):
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise QAPIError(info, "%s has an invalid name '%s'"
                            % (what, name))
        if name.startswith('q_') or (style == 'type' and
                                     name.endswith('List')):
            raise QAPIError(info, "%s name '%s' is reserved"
                            % (what, name))
        if style == 'type' and not re.match(r'^[A-Z][A-Za-z0-9]*$', name):
            raise QAPIError(info, "%s name '%s' must be CamelCase"
                            % (what, name))
        if style == 'event' and not re.match(r'^[A-Z][A-Z0-9_]*$', name):
            raise QAPIError(info, "event name '%s' must be ALL_CAPS" % name)
        if style == 'command' and not re.match(r'^[a-z][a-z0-9_-]*$', name):
            raise QAPIError(info, "command name '%s' must be lower-case"
                            % name)
        if style == 'member' and not re.match(r'^[a-z][a-z0-9_-]*$',
                                              name.lower()):
            raise QAPIError(info, "%s has an invalid name '%s'"
                            % (what, name))

    def _check_bool(self, expr, key, info, source):
        if key in expr and not isinstance(expr[key], bool):
            raise QAPIError(info, "'%s' of %s must be true or false"
                            % (key, source))
        return expr.get(key)

    def _features(self, expr, info, source):
        feats = expr.get('features', [])
        if not isinstance(feats, list):
            raise QAPIError(info, "'features' of %s must be a list"
                            % source)
        out = []
        seen = set()
        for f in feats:
            if isinstance(f, str):
                f = {'name': f}
            if not isinstance(f, dict) or 'name' not in f or \
                    set(f) - {'name', 'if'}:
                raise QAPIError(info, "feature of %s must be a string or an "
                                "object with 'name' and optional 'if'"
                                % source)
            self._check_name(f['name'], info, 'feature of %s' % source,
                             'member')
            if f['name'] in seen:
                raise QAPIError(info, "%s has duplicate feature '%s'"
                                % (source, f['name']))
            seen.add(f['name'])
            out.append(Feature(f['name'], check_if(f, info, 'feature')))
        return out

    def _type_ref(self, t, info, source, allow_array=True):
        """A type reference: 'Name' or ['Name']; returns the textual form."""
        if isinstance(t, list):
            if not allow_array:
                raise QAPIError(info, "%s cannot be an array" % source)
            if len(t) != 1 or not isinstance(t[0], str):
                raise QAPIError(info, "%s: array type must contain exactly "
                                "one type name" % source)
            return [t[0]]
        if not isinstance(t, str):
            raise QAPIError(info, "%s must name a type" % source)
        return t

    def _members(self, data, info, owner, source):
        if not isinstance(data, dict):
            raise QAPIError(info, "'data' of %s must be an object" % source)
        members = []
        seen = set()
        for key, val in data.items():
            optional = key.startswith('*')
            name = key[1:] if optional else key
            what = "member '%s' of %s" % (name, source)
            self._check_name(name, info, what, 'member')
            if name in seen:
                raise QAPIError(info, "%s has duplicate member '%s'"
                                % (source, name))
            seen.add(name)
            cond = Cond()
            feats = []
            if isinstance(val, dict):
                if 'type' not in val or set(val) - {'type', 'if',
                                                     'features'}:
                    raise QAPIError(info, "%s must be a type name or an "
                                    "object with 'type' and optional 'if', "
                                    "'features'" % what)
                cond = check_if(val, info, what)
                feats = self._features(val, info, what)
                val = val['type']
            members.append(Member(name, self._type_ref(val, info, what),
                                  optional, info, cond, feats, owner))
        return members

    def _add(self, ent):
        if ent.name in self.entities:
            other = self.entities[ent.name]
            where = (' (first defined at %s)' % other.info) if other.info \
                else ' (a built-in type)'
            raise QAPIError(ent.info, "'%s' is already defined%s"
                            % (ent.name, where))
        self.entities[ent.name] = ent
        self.order.append(ent)
        return ent

    def _implicit_object(self, name, data, info, module, source, cond):
        obj = ObjectType(name, info, None, cond, None, module, None, [])
        obj.local_members = self._members(data, info, obj, source)
        return self._add(obj)

    def _define(self, expr, info, doc, module):
        metas = [m for m in DEF_KEYS if m in expr and
                 m not in ('include', 'pragma')]
        if len(metas) != 1:
            raise QAPIError(info, 'expression must have exactly one of the '
                            "keys 'enum', 'struct', 'union', 'alternate', "
                            "'command', 'event', 'include', 'pragma'")
        meta = metas[0]
        name = expr[meta]
        style = meta if meta in ('command', 'event') else 'type'
        self._check_name(name, info, meta, style)
        self._check_keys(expr, info, meta)
        info = SourceInfo(info.fname, info.line, name)
        source = "%s '%s'" % (meta, name)
        if doc is None and self.doc_required:
            raise QAPIError(info, 'documentation comment required for %s'
                            % source)
        if doc is not None and doc.symbol != name:
            raise QAPIError(doc.info, "documentation comment is for '%s' "
                            "but the definition is %s" % (doc.symbol, source))
        cond = check_if(expr, info, source)
        feats = self._features(expr, info, source)
        return getattr(self, '_def_' + meta)(expr, info, doc, cond, feats,
                                             module, name, source)

    def _def_enum(self, expr, info, doc, cond, feats, module, name, source):
        data = expr['data']
        if not isinstance(data, list):
            raise QAPIError(info, "'data' of %s must be a list" % source)
        prefix = expr.get('prefix')
        if prefix is not None and not isinstance(prefix, str):
            raise QAPIError(info, "'prefix' of %s must be a string" % source)
        values = []
        seen = {}
        for v in data:
            vcond = Cond()
            vfeats = []
            if isinstance(v, dict):
                if 'name' not in v or set(v) - {'name', 'if', 'features'}:
                    raise QAPIError(info, "value of %s must be a string or "
                                    "an object with 'name'" % source)
                vcond = check_if(v, info, source)
                vfeats = self._features(v, info, "value '%s' of %s"
                                        % (v['name'], source))
                v = v['name']
            if not isinstance(v, str) or \
                    not re.match(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$', v):
                raise QAPIError(info, "%s has an invalid value '%s'"
                                % (source, v))
            cn = c_name(v, False).upper()
            if cn in seen:
                raise QAPIError(info, "%s value '%s' clashes with '%s'"
                                % (source, v, seen[cn]))
            seen[cn] = v
            values.append(EnumValue(v, vcond, vfeats))
        return self._add(EnumType(name, info, doc, cond, feats, module,
                                  values, prefix))

    def _def_struct(self, expr, info, doc, cond, feats, module, name,
                    source):
        base = expr.get('base')
        if base is not None and not isinstance(base, str):
            raise QAPIError(info, "'base' of %s must name a struct type"
                            % source)
        obj = ObjectType(name, info, doc, cond, feats, module, base, [])
        obj.local_members = self._members(expr['data'], info, obj, source)
        return self._add(obj)

    def _def_union(self, expr, info, doc, cond, feats, module, name, source):
        base = expr['base']
        if isinstance(base, dict):
            base_obj = self._implicit_object('q_obj_%s-base' % name, base,
                                             info, module, source, cond)
            base = base_obj.name
        elif not isinstance(base, str):
            raise QAPIError(info, "'base' of %s must be a struct name or an "
                            "object" % source)
        tag = expr['discriminator']
        if not isinstance(tag, str):
            raise QAPIError(info, "'discriminator' of %s must be a string"
                            % source)
        data = expr['data']
        if not isinstance(data, dict):
            raise QAPIError(info, "'data' of %s must be an object" % source)
        variants = []
        for case, val in data.items():
            vcond = Cond()
            if isinstance(val, dict):
                if 'type' not in val or set(val) - {'type', 'if'}:
                    raise QAPIError(info, "branch '%s' of %s must be a type "
                                    "name or an object with 'type' and "
                                    "optional 'if'" % (case, source))
                vcond = check_if(val, info, source)
                val = val['type']
            t = self._type_ref(val, info, "branch '%s' of %s"
                               % (case, source), allow_array=False)
            variants.append(Variant(case, t, info, vcond))
        obj = ObjectType(name, info, doc, cond, feats, module, base, [],
                         tag, variants)
        return self._add(obj)

    def _def_alternate(self, expr, info, doc, cond, feats, module, name,
                       source):
        data = expr['data']
        if not isinstance(data, dict) or not data:
            raise QAPIError(info, "'data' of %s must be a non-empty object"
                            % source)
        variants = []
        for case, val in data.items():
            self._check_name(case, info, "branch of %s" % source, 'member')
            vcond = Cond()
            if isinstance(val, dict):
                if 'type' not in val or set(val) - {'type', 'if'}:
                    raise QAPIError(info, "branch '%s' of %s must be a type "
                                    "name" % (case, source))
                vcond = check_if(val, info, source)
                val = val['type']
            t = self._type_ref(val, info, "branch '%s' of %s"
                               % (case, source))
            variants.append(Variant(case, t, info, vcond))
        return self._add(AlternateType(name, info, doc, cond, feats, module,
                                       variants))

    def _arg_type(self, expr, info, module, name, source, cond):
        data = expr.get('data')
        boxed = self._check_bool(expr, 'boxed', info, source) or False
        if data is None:
            if boxed:
                raise QAPIError(info, "%s uses 'boxed' without 'data'"
                                % source)
            return None, boxed
        if isinstance(data, dict):
            if boxed:
                raise QAPIError(info, "'data' of boxed %s must name a type"
                                % source)
            obj = self._implicit_object('q_obj_%s-arg' % name, data, info,
                                        module, source, cond)
            return obj.name, boxed
        if not isinstance(data, str):
            raise QAPIError(info, "'data' of %s must be an object or a type "
                            "name" % source)
        return data, boxed

    def _def_command(self, expr, info, doc, cond, feats, module, name,
                     source):
        arg, boxed = self._arg_type(expr, info, module, name, source, cond)
        ret = expr.get('returns')
        if ret is not None:
            ret = self._type_ref(ret, info, "'returns' of %s" % source)
        flags = {}
        for k in ('gen', 'success-response', 'allow-oob', 'allow-preconfig',
                  'coroutine'):
            flags[k] = self._check_bool(expr, k, info, source)
        return self._add(Command(
            name, info, doc, cond, feats, module, arg, ret, boxed,
            flags['gen'] is not False, flags['success-response'] is not False,
            bool(flags['allow-oob']), bool(flags['allow-preconfig']),
            bool(flags['coroutine'])))

    def _def_event(self, expr, info, doc, cond, feats, module, name, source):
        arg, boxed = self._arg_type(expr, info, module, name, source, cond)
        return self._add(Event(name, info, doc, cond, feats, module, arg,
                               boxed))

    # ---- resolution ----------------------------------------------------

    def lookup(self, ref, info, source):
        if isinstance(ref, list):
            elem = self.lookup(ref[0], info, source)
            key = '[%s]' % elem.name
            if key not in self.entities:
                self.entities[key] = ArrayType(elem, info)
            return self.entities[key]
        t = self.entities.get(ref)
        if t is None or not isinstance(t, Type):
            raise QAPIError(info, "%s uses unknown type '%s'"
                            % (source, ref))
        return t

    def _resolve(self):
        for ent in list(self.order):
            src = ent.describe()
            if isinstance(ent, ObjectType):
                for m in ent.local_members:
                    m.type = self.lookup(m.type_name, m.info,
                                         "member '%s' of %s" % (m.name, src))
                if ent.base_name:
                    b = self.lookup(ent.base_name, ent.info,
                                    "'base' of %s" % src)
                    if not isinstance(b, ObjectType) or b.is_union():
                        raise QAPIError(ent.info, "'base' of %s must be a "
                                        "struct type, not '%s'"
                                        % (src, b.name))
                    ent.base = b
                for v in ent.variants:
                    v.type = self.lookup(v.type_name, v.info,
                                         "branch '%s' of %s" % (v.case, src))
            elif isinstance(ent, AlternateType):
                for v in ent.variants:
                    v.type = self.lookup(v.type_name, v.info,
                                         "branch '%s' of %s" % (v.case, src))
            elif isinstance(ent, (Command, Event)):
                if ent.arg_name:
                    ent.arg_type = self.lookup(ent.arg_name, ent.info,
                                               "'data' of %s" % src)
                    if not isinstance(ent.arg_type, ObjectType):
                        raise QAPIError(ent.info, "'data' of %s must name "
                                        "a struct or union type" % src)
                    if not ent.boxed and ent.arg_type.is_union():
                        raise QAPIError(ent.info, "%s takes union '%s' as "
                                        "'data' and must be 'boxed'"
                                        % (src, ent.arg_name))
                if isinstance(ent, Command) and ent.ret_name:
                    ent.ret_type = self.lookup(ent.ret_name, ent.info,
                                               "'returns' of %s" % src)
                    rt = ent.ret_type
                    el = rt.element if isinstance(rt, ArrayType) else rt
                    if isinstance(el, EnumType):
                        raise QAPIError(ent.info, "%s cannot return enum "
                                        "'%s'" % (src, el.name))

    # ---- semantic checks -----------------------------------------------

    def _check(self):
        for ent in self.order:
            src = ent.describe()
            if isinstance(ent, ObjectType):
                self._check_object(ent, src)
            elif isinstance(ent, AlternateType):
                self._check_alternate(ent, src)
            if not ent.is_implicit():
                self._check_doc(ent, src)

    def _check_cycle(self, ent, src):
        seen = set()
        b = ent
        while b is not None:
            if b.name in seen:
                raise QAPIError(ent.info, "%s has a 'base' cycle" % src)
            seen.add(b.name)
            b = b.base

    def _check_object(self, ent, src):
        self._check_cycle(ent, src)
        names = {}
        for m in ent.members():
            if m.type.name == 'null':
                raise QAPIError(m.info, "member '%s' of %s cannot have type "
                                "'null'" % (m.name, src))
            cn = m.c_name()
            if cn in names:
                raise QAPIError(ent.info, "member '%s' of %s clashes with "
                                "'%s'" % (m.name, src, names[cn]))
            names[cn] = m.name
        if not ent.is_union():
            return
        tag = [m for m in ent.members() if m.name == ent.tag_name]
        if not tag:
            raise QAPIError(ent.info, "discriminator '%s' of %s is not a "
                            "member of its base" % (ent.tag_name, src))
        tag = tag[0]
        if tag.optional:
            raise QAPIError(ent.info, "discriminator member '%s' of %s must "
                            "not be optional" % (tag.name, src))
        if not isinstance(tag.type, EnumType):
            raise QAPIError(ent.info, "discriminator member '%s' of %s must "
                            "be of enum type" % (tag.name, src))
        ent.tag = tag
        values = [v.name for v in tag.type.values]
        for v in ent.variants:
            if v.case not in values:
                raise QAPIError(v.info, "branch '%s' of %s is not a value of "
                                "%s" % (v.case, src, tag.type.name))
            if not isinstance(v.type, ObjectType) or v.type.is_union():
                raise QAPIError(v.info, "branch '%s' of %s must be a struct "
                                "type" % (v.case, src))
            for m in v.type.members():
                if m.c_name() in names:
                    raise QAPIError(v.info, "member '%s' of branch '%s' of "
                                    "%s clashes with a base member"
                                    % (m.name, v.case, src))

    def _check_alternate(self, ent, src):
        kinds = {}
        for v in ent.variants:
            t = v.type
            if isinstance(t, AlternateType):
                raise QAPIError(v.info, "branch '%s' of %s cannot be an "
                                "alternate" % (v.case, src))
            if isinstance(t, BuiltinType) and t.name == 'any':
                raise QAPIError(v.info, "branch '%s' of %s cannot use type "
                                "'any'" % (v.case, src))
            k = t.json_kind()
            if k in kinds:
                raise QAPIError(v.info, "branch '%s' of %s can't be "
                                "distinguished from '%s'"
                                % (v.case, src, kinds[k]))
            kinds[k] = v.case

    def _documentable_members(self, ent):
        if isinstance(ent, ObjectType):
            own = list(ent.local_members)
            if ent.base and ent.base.is_implicit():
                own = ent.base.members() + own
            return own
        if isinstance(ent, (Command, Event)):
            if ent.arg_type and ent.arg_type.is_implicit():
                return ent.arg_type.members()
            return []
        if isinstance(ent, EnumType):
            return ent.values
        if isinstance(ent, AlternateType):
            return ent.variants
        return []

    def _check_doc(self, ent, src):
        doc = ent.doc
        if doc is None:
            return
        names = [getattr(m, 'name', None) or m.case
                 for m in self._documentable_members(ent)]
        for n in doc.args:
            if n not in names:
                raise QAPIError(doc.info, "documented member '%s' does not "
                                "exist in %s" % (n, src))
        if self.doc_required:
            for n in names:
                if n not in doc.args:
                    raise QAPIError(ent.info, "member '%s' of %s lacks "
                                    "documentation" % (n, src))
        feats = [f.name for f in ent.features]
        for m in self._documentable_members(ent):
            feats += [f.name for f in getattr(m, 'features', [])]
        for f in doc.features:
            if f not in feats:
                raise QAPIError(doc.info, "documented feature '%s' does not "
                                "exist in %s" % (f, src))
        if self.doc_required:
            for f in feats:
                if f not in doc.features:
                    raise QAPIError(ent.info, "feature '%s' of %s lacks "
                                    "documentation" % (f, src))

    # ---- queries for generators ----------------------------------------

    def types(self):
        return [e for e in self.order if isinstance(e, Type)]

    def commands(self):
        return [e for e in self.order if isinstance(e, Command)]

    def events(self):
        return [e for e in self.order if isinstance(e, Event)]

    def array_types(self):
        return [e for e in self.entities.values()
                if isinstance(e, ArrayType)]
