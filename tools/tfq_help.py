"""The tfq executable's help text, read into commands and options.

gen_man.py and gen_completion.py build on this, so the man pages and the
shell completions say what the binary says.  Every function that runs tfq
raises HelpError, naming the command line and what was wrong, when tfq fails
or prints help this module cannot read.
"""

import re
import subprocess

# An option in the help: --long, its argument (an upper-case word such as
# FILE, DIR, N, NAME|SPEC) if one follows after a single space.
_OPTION = re.compile(r'(?<![\w-])(--[a-z][a-z0-9-]*)(?: ([A-Z][A-Z0-9_|]*)(?![a-z]))?')
# An option line: indented, an optional short form, the option, then its
# description.
OPTION_LINE = re.compile(
    r'^\s+(?:-[a-zA-Z],\s+)?(--[a-z][a-z0-9-]*)(?:,\s*--[a-z][a-z0-9-]*)*'
    r'(?: ([A-Z][A-Z0-9_|]*))?(?:\s+(.*))?$')
_COMMAND_LINE = re.compile(r'^  ([a-z][a-z0-9-]*)\s{2,}(.*)$')
# Arguments naming a file or a directory, completed as such.
FILE_ARGS = {'FILE', 'CKPT'}
DIR_ARGS = {'DIR'}


class HelpError(Exception):
    pass


def run_help(tfq, *args):
    """The text `tfq ARGS... --help` prints on stdout; HelpError when it
    exits non-zero or prints nothing."""
    argv = [tfq, *args, '--help']
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HelpError(f"{' '.join(argv)}: {e}") from e
    if p.returncode != 0 or not p.stdout.strip():
        raise HelpError(f"{' '.join(argv)}: exit {p.returncode}, "
                        f"{len(p.stdout)} bytes of help: {p.stderr.strip()}")
    return p.stdout


def commands(main_help):
    """[(name, summary)] of the 'commands:' block of `tfq --help`, in its
    order; HelpError when there is no such block."""
    lines = main_help.splitlines()
    try:
        start = lines.index('commands:') + 1
    except ValueError:
        raise HelpError("tfq --help: no 'commands:' line") from None
    out = []
    for line in lines[start:]:
        m = _COMMAND_LINE.match(line)
        if not m:
            break
        out.append((m.group(1), m.group(2).strip()))
    if not out:
        raise HelpError("tfq --help: no command under 'commands:'")
    return out


def split_usage(text):
    """(usage lines, the rest) of a help text: the first line starts with
    'usage: ', and lines indented past it that start with 'tfq' continue
    it."""
    lines = text.rstrip('\n').splitlines()
    if not lines or not lines[0].startswith('usage: '):
        raise HelpError(f"help text does not start with 'usage: ': {lines[:1]}")
    usage = [lines[0][len('usage: '):]]
    rest = lines[1:]
    while rest and re.match(r'^\s+tfq\b', rest[0]):
        usage.append(rest.pop(0).strip())
    return usage, rest


def options(text):
    """{--option: (ARG or None, description)} of a help text: the options of
    its usage lines and its option lines, in order of appearance; an option
    line's description goes on over the lines indented past it."""
    usage, rest = split_usage(text)
    found = {}
    for line in usage:
        for m in _OPTION.finditer(line):
            found.setdefault(m.group(1), (m.group(2), ''))
    last, indent = None, 0  # the option whose description may go on
    for line in rest:
        m = OPTION_LINE.match(line)
        if not m:
            lead = len(line) - len(line.lstrip())
            if last and line.strip() and lead > indent:
                arg, desc = found[last]
                found[last] = (arg, (desc + ' ' + line.strip()).strip())
            else:
                last = None
            continue
        old_arg, old_desc = found.get(m.group(1), (None, ''))
        found[m.group(1)] = (m.group(2) or old_arg,
                             old_desc or (m.group(3) or '').strip())
        # "--csv, --json  ...": the options named with it share its text.
        head = re.split(r'\s{2,}', line.strip(), maxsplit=1)[0]
        for other in re.findall(r',\s*(--[a-z][a-z0-9-]*)', head):
            found.setdefault(other, (None, (m.group(3) or '').strip()))
        last = m.group(1) if not old_desc else None
        indent = len(line) - len(line.lstrip())
    return found


def subcommands(text, command):
    """The literal words that follow `tfq COMMAND` in the usage lines
    before any argument or option (checkpoint: ['get'])."""
    words = []
    for line in split_usage(text)[0]:
        parts = line.split()
        if parts[:2] != ['tfq', command]:
            continue
        for w in parts[2:]:
            if not re.fullmatch(r'[a-z][a-z0-9-]*', w):
                break
            if w not in words:
                words.append(w)
    return words


def global_options(main_help):
    """{--option: ARG or None} that every command takes (--curve-key,
    --server-key): those named in `tfq --help`'s "Every command takes"
    sentence, up to its full stop.  The rest of the text below the commands
    names options of some commands only (--connect, status --watch)."""
    lines = main_help.splitlines()
    start = lines.index('commands:') + 1 + len(commands(main_help))
    tail = '\n'.join(lines[start:])
    m = re.search(r'Every command takes(.*?)\.(?:\s|$)', tail, re.S)
    if not m:
        raise HelpError("tfq --help has no 'Every command takes ...' sentence")
    found = {}
    for o in _OPTION.finditer(m.group(1)):
        found.setdefault(o.group(1), o.group(2))
    return found


def read_all(tfq):
    """Everything the binary says: {'main': text, 'commands': [(name,
    summary)], 'help': {name: text}}."""
    main = run_help(tfq)
    cmds = commands(main)
    return {'main': main, 'commands': cmds,
            'help': {name: run_help(tfq, name) for name, _ in cmds}}


def table_commands(tfq_c):
    """The command names of cli/tfq.c's s_commands table, in order; what
    meson knows before tfq is built.  HelpError when none is found."""
    with open(tfq_c, encoding='utf-8') as f:
        src = f.read()
    m = re.search(r's_commands\[\]\s*=\s*\{(.*?)\n\};', src, re.S)
    # Rows are {"name", fn, ...} or CMD(name, ...).
    names = re.findall(r'(?:\{"|^\s*CMD\()([a-z][a-z0-9-]*)["),]', m.group(1),
                       re.M) if m else []
    if not names:
        raise HelpError(f"{tfq_c}: no s_commands table of {{\"name\", fn, "
                        "...}} or CMD(name, ...) rows")
    return names


if __name__ == '__main__':
    # tfq_help.py --commands cli/tfq.c: the names, one a line (for meson).
    import sys
    if len(sys.argv) != 3 or sys.argv[1] != '--commands':
        sys.exit('usage: tfq_help.py --commands PATH-TO-tfq.c')
    try:
        print('\n'.join(table_commands(sys.argv[2])))
    except (OSError, HelpError) as e:
        sys.exit(f'tfq_help.py: {e}')
