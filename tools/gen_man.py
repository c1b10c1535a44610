#!/usr/bin/env python3
"""Writes the man pages tfq(1) and tfq-COMMAND(1) from the help text the
built binary prints (`tfq --help`, `tfq COMMAND --help`), in man(7) markup.

usage: gen_man.py PATH-TO-TFQ --version V --outdir DIR --expect CMD...
--expect names the commands meson was told of (cli/tfq.c's table, read
when it configured): a binary that lists others is refused, so that no page
is missing or left over.  Exits 1 with a message naming what was wrong.

The help text becomes: its usage lines the SYNOPSIS; unindented lines
filled paragraphs (a lower-case one-line 'heading:' a subsection); an
indented block of 'TERM  description' lines a list of tagged paragraphs,
and any other indented block a preformatted one.
"""

import argparse
import re
import sys

import tfq_help

SUMMARY = 'a job queue that trains convolutional networks on many machines'
# An item of an indented block: a term, two spaces or more, its description
# (or the term alone).
_ITEM = re.compile(r'^(\S+(?: \S+)*?)(?:\s{2,}(\S.*))?$')


def esc(text):
    """TEXT with man(7)'s specials escaped: backslashes and hyphens."""
    return text.replace('\\', '\\e').replace('-', '\\-')


def line(text):
    """One line of output text: a leading '.' or "'" would be a request."""
    return '\\&' + text if text[:1] in ('.', "'") else text


def term(text):
    """A list item's term in bold, its upper-case argument words in
    italics: --state DIR becomes \\fB\\-\\-state\\fR \\fIDIR\\fR."""
    out = []
    for w in text.split(' '):
        bare = w.rstrip(',')
        font = 'I' if re.fullmatch(r'[A-Z][A-Z0-9_|]*', bare) else 'B'
        out.append(f'\\f{font}{esc(bare)}\\fR' + w[len(bare):])
    return ' '.join(out)


def indented(block):
    """man(7) lines for a run of indented help lines."""
    base = min(len(b) - len(b.lstrip()) for b in block)
    items = []
    for b in block:
        lead = len(b) - len(b.lstrip())
        m = _ITEM.match(b.strip())
        opt = tfq_help.OPTION_LINE.match(b)
        if lead == base and opt:
            desc = (opt.group(3) or '').strip()
            items.append([b.strip()[:len(b.strip()) - len(desc)].strip(), desc])
        elif lead == base and m and (m.group(2) or len(m.group(1).split()) <= 3):
            items.append([m.group(1), m.group(2) or ''])
        elif lead > base and items:
            items[-1][1] = (items[-1][1] + ' ' + b.strip()).strip()
        else:
            return ['.RS 2', '.nf'] + [line(esc(b[base:])) for b in block] + ['.fi', '.RE']
    out = []
    for t, desc in items:
        out += ['.TP', line(term(t))] + ([line(esc(desc))] if desc else [])
    return out


def body(lines):
    """man(7) lines for the help text after its usage lines."""
    out, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        j = i
        if lines[i][0].isspace():
            while j < len(lines) and lines[j].strip() and lines[j][0].isspace():
                j += 1
            out += indented(lines[i:j])
        else:
            while j < len(lines) and lines[j].strip() and not lines[j][0].isspace():
                j += 1
            para = lines[i:j]
            if len(para) == 1 and para[0].endswith(':') and para[0][0].islower():
                out += ['.SS ' + esc(para[0][:-1])]
            else:
                out += ['.PP'] + [line(esc(p)) for p in para]
        i = j
    return out


def page(name, version, summary, help_text, see_also):
    """The whole page NAME(1) for HELP_TEXT."""
    usage, rest = tfq_help.split_usage(help_text)
    out = [f'.TH {esc(name.upper())} 1 "" "tfq {esc(version)}" "tfq manual"',
           '.nh', '.SH NAME', f'{esc(name)} \\- {esc(summary)}', '.SH SYNOPSIS', '.nf']
    for u in usage:
        words = u.split(' ')
        n = 2 if len(words) > 1 and words[0] == 'tfq' and not words[1].startswith('-') \
            and not words[1].isupper() else 1
        out.append(line(f'\\fB{esc(" ".join(words[:n]))}\\fR ' + esc(' '.join(words[n:]))))
    out += ['.fi', '.SH DESCRIPTION'] + body(rest)
    out += ['.SH SEE ALSO', ',\n'.join(f'.BR {p} (1)' for p in see_also)]
    return '\n'.join(out) + '\n'


def main():
    ap = argparse.ArgumentParser(description='tfq man pages from tfq --help')
    ap.add_argument('tfq')
    ap.add_argument('--version', required=True)
    ap.add_argument('--outdir', required=True)
    ap.add_argument('--expect', nargs='+', required=True)
    a = ap.parse_args()
    try:
        helps = tfq_help.read_all(a.tfq)
        names = [n for n, _ in helps['commands']]
        if names != a.expect:
            raise tfq_help.HelpError(
                f"tfq --help lists {' '.join(names)}; meson expects "
                f"{' '.join(a.expect)} (cli/tfq.c's table): reconfigure")
        pages = {'tfq': page('tfq', a.version, SUMMARY, helps['main'],
                             [f'tfq\\-{n}' for n in names])}
        for n, summary in helps['commands']:
            pages[f'tfq-{n}'] = page(f'tfq-{n}', a.version, summary,
                                     helps['help'][n], ['tfq'])
    except tfq_help.HelpError as e:
        sys.exit(f'gen_man.py: {e}')
    for name, text in pages.items():
        with open(f'{a.outdir}/{name}.1', 'w', encoding='utf-8') as f:
            f.write(text)


if __name__ == '__main__':
    main()
