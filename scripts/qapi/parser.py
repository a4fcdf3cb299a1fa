"""QAPI schema reader: tokenizer, expression parser and doc comment parser.

The schema language is a sequence of JSON-like top-level objects (strings in
single quotes, Python-style true/false), '#' comments, and '##' doc blocks
that document the definition following them.  Every error is reported as
"FILE:LINE: message" through QAPIError.
"""

import os
import re
from collections import OrderedDict


class QAPIError(Exception):
    def __init__(self, info, msg):
        super().__init__(msg)
        self.info = info
        self.msg = msg

    def __str__(self):
        if self.info is None:
            return self.msg
        return '%s: %s' % (self.info, self.msg)


class SourceInfo:
    """Where a definition came from: the file (as given) and its line."""

    def __init__(self, fname, line, defn=None):
        self.fname = fname
        self.line = line
        self.defn = defn

    def __str__(self):
        return '%s:%d' % (self.fname, self.line)


class DocSection:
    def __init__(self, tag, text=''):
        self.tag = tag
        self.text = text


class QAPIDoc:
    """A parsed '##' block.

    symbol is the documented definition name, or None for a free-form block
    (headings such as '= Block devices', or prose).  args and features map
    member/feature names to their descriptions; sections keeps tagged
    paragraphs (Returns, Errors, Since, Example, Note) in source order.
    """

    SECTION_TAGS = ('Returns', 'Errors', 'Since', 'Example', 'Examples',
                    'Note', 'Notes')

    def __init__(self, info):
        self.info = info
        self.symbol = None
        self.heading = None
        self.body = ''
        self.args = OrderedDict()
        self.features = OrderedDict()
        self.sections = []

    def section(self, tag):
        for s in self.sections:
            if s.tag == tag:
                return s.text
        return None


def _parse_doc(fname, start_line, lines):
    """lines: the text after '#' of each comment line between the '##'s."""
    doc = QAPIDoc(SourceInfo(fname, start_line))
    if not lines:
        raise QAPIError(doc.info, 'empty documentation comment')
    first = lines[0].strip()
    m = re.match(r'^@([^:\s]+):$', first)
    if first.startswith('='):
        doc.heading = first
        doc.body = '\n'.join(l.strip() for l in lines[1:]).strip()
        return doc
    if not m:
        doc.body = '\n'.join(l.strip() for l in lines).strip()
        return doc
    doc.symbol = m.group(1)
    # 'mode' is where continuation lines go: ('body',), ('arg', name),
    # ('feature', name) or ('section', DocSection).
    mode = ('body',)
    in_features = False
    body = []
    for i, raw in enumerate(lines[1:], start=1):
        info = SourceInfo(fname, start_line + 1 + i)
        line = raw.rstrip()
        stripped = line.strip()
        am = re.match(r'^@([^:\s]+):\s*(.*)$', stripped)
        tm = re.match(r'^(%s):\s*(.*)$' % '|'.join(QAPIDoc.SECTION_TAGS),
                      stripped)
        if stripped == 'Features:':
            in_features = True
            mode = ('none',)
        elif am and not line.startswith('  '):
            name, text = am.group(1), am.group(2)
            table = doc.features if in_features else doc.args
            if name in table:
                raise QAPIError(info, "'@%s:' is documented twice" % name)
            table[name] = text
            mode = ('feature' if in_features else 'arg', name)
        elif tm and not line.startswith('  '):
            sec = DocSection(tm.group(1), tm.group(2))
            doc.sections.append(sec)
            mode = ('section', sec)
            in_features = False
        elif mode[0] == 'body':
            body.append(stripped)
        elif mode[0] in ('arg', 'feature'):
            table = doc.args if mode[0] == 'arg' else doc.features
            if stripped:
                table[mode[1]] = (table[mode[1]] + ' ' + stripped).strip()
            else:
                mode = ('body',) if not in_features else ('none',)
        elif mode[0] == 'section':
            # Examples keep their layout; other sections are reflowed.
            sec = mode[1]
            if sec.tag.startswith('Example'):
                sec.text += '\n' + line[1:] if line.startswith(' ') \
                    else '\n' + line
            elif sec.tag == 'Errors' and stripped.startswith('- '):
                sec.text = (sec.text + '\n' + stripped).strip('\n')
            elif stripped:
                sec.text = (sec.text + ' ' + stripped).strip()
            else:
                mode = ('body',)
        elif stripped:
            raise QAPIError(info, "unexpected text '%s' in Features section"
                            % stripped)
    doc.body = '\n'.join(body).strip()
    return doc


class QAPISchemaParser:
    """Parses one file; includes are followed by the caller (QAPISchema)."""

    def __init__(self, fname, display_name):
        self.fname = fname
        self.display = display_name
        with open(fname, encoding='utf-8') as f:
            self.src = f.read()
        if not self.src.endswith('\n'):
            self.src += '\n'
        self.pos = 0
        self.line = 1
        self.line_pos = 0
        self.exprs = []   # (expr, info, doc)
        self.docs = []    # free-form docs (headings), in order with exprs
        self._parse()

    def _info(self):
        return SourceInfo(self.display, self.line)

    def _error(self, msg):
        raise QAPIError(self._info(), msg)

    def _skip_space(self):
        """Skips whitespace and plain comments; stops before a '##' block."""
        while self.pos < len(self.src):
            c = self.src[self.pos]
            if c == '\n':
                self.pos += 1
                self.line += 1
                self.line_pos = self.pos
            elif c in ' \t\r':
                self.pos += 1
            elif c == '#':
                if self._at_doc_start():
                    return
                end = self.src.index('\n', self.pos)
                self.pos = end
            else:
                return

    def _at_doc_start(self):
        line_end = self.src.index('\n', self.pos)
        text = self.src[self.pos:line_end]
        return self.pos == self.line_pos and text.rstrip() == '##'

    def _read_doc(self):
        start = self.line
        end = self.src.index('\n', self.pos)
        self.pos = end + 1
        self.line += 1
        self.line_pos = self.pos
        lines = []
        while True:
            if self.pos >= len(self.src):
                raise QAPIError(SourceInfo(self.display, start),
                                'documentation comment is not terminated')
            end = self.src.index('\n', self.pos)
            text = self.src[self.pos:end]
            self.pos = end + 1
            self.line += 1
            self.line_pos = self.pos
            if text.rstrip() == '##':
                return _parse_doc(self.display, start, lines)
            if not text.startswith('#'):
                raise QAPIError(SourceInfo(self.display, self.line - 1),
                                "documentation comment line must start "
                                "with '#'")
            if text.startswith('# '):
                lines.append(text[2:])
            elif text.rstrip() == '#':
                lines.append('')
            else:
                raise QAPIError(SourceInfo(self.display, self.line - 1),
                                "missing space after '#'")

    def _parse(self):
        pending_doc = None
        while True:
            self._skip_space()
            if self.pos >= len(self.src):
                break
            if self.src[self.pos] == '#':
                doc = self._read_doc()
                if doc.symbol is None:
                    if pending_doc is not None:
                        raise QAPIError(pending_doc.info,
                                        'documentation for %s is not '
                                        'followed by its definition'
                                        % pending_doc.symbol)
                    self.docs.append((len(self.exprs), doc))
                    continue
                if pending_doc is not None:
                    raise QAPIError(pending_doc.info,
                                    'documentation for %s is not followed '
                                    'by its definition' % pending_doc.symbol)
                pending_doc = doc
                continue
            info = self._info()
            if self.src[self.pos] != '{':
                self._error('expected \'{\' at top level')
            expr = self._value()
            self.exprs.append((expr, info, pending_doc))
            pending_doc = None
        if pending_doc is not None:
            raise QAPIError(pending_doc.info,
                            'documentation for %s is not followed by its '
                            'definition' % pending_doc.symbol)

    def _value(self):
        self._skip_space()
        if self.pos >= len(self.src):
            self._error('unexpected end of file')
        c = self.src[self.pos]
        if c == '{':
            return self._object()
        if c == '[':
            return self._array()
        if c == "'":
            return self._string()
        for word, val in (('true', True), ('false', False)):
            if self.src.startswith(word, self.pos):
                self.pos += len(word)
                return val
        if c == '"':
            self._error('strings must be quoted with \'')
        self._error("stray '%s'" % c)

    def _string(self):
        self.pos += 1
        out = []
        while True:
            if self.pos >= len(self.src) or self.src[self.pos] == '\n':
                self._error('missing terminating \'')
            c = self.src[self.pos]
            self.pos += 1
            if c == "'":
                return ''.join(out)
            if c == '\\':
                esc = self.src[self.pos]
                self.pos += 1
                if esc not in "\\'\"/":
                    self._error("unknown escape \\%s" % esc)
                out.append(esc)
            else:
                out.append(c)

    def _object(self):
        self.pos += 1
        obj = OrderedDict()
        self._skip_space()
        if self.src[self.pos] == '}':
            self.pos += 1
            return obj
        while True:
            self._skip_space()
            if self.src[self.pos] == '"':
                self._error("strings must be quoted with '")
            if self.src[self.pos] != "'":
                self._error('expected string as object key')
            key = self._string()
            self._skip_space()
            if self.src[self.pos] != ':':
                self._error("expected ':' after object key '%s'" % key)
            self.pos += 1
            if key in obj:
                self._error("duplicate key '%s'" % key)
            obj[key] = self._value()
            self._skip_space()
            c = self.src[self.pos]
            self.pos += 1
            if c == '}':
                return obj
            if c != ',':
                self.pos -= 1
                self._error("expected ',' or '}'")

    def _array(self):
        self.pos += 1
        arr = []
        self._skip_space()
        if self.src[self.pos] == ']':
            self.pos += 1
            return arr
        while True:
            arr.append(self._value())
            self._skip_space()
            c = self.src[self.pos]
            self.pos += 1
            if c == ']':
                return arr
            if c != ',':
                self.pos -= 1
                self._error("expected ',' or ']'")


def display_path(path, base_dir):
    rel = os.path.relpath(path, base_dir)
    return path if rel.startswith('..') else rel
