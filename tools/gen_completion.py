#!/usr/bin/env python3
"""Writes bash or zsh completion for tfq from what the built binary prints:
the commands of `tfq --help`, each command's long options from `tfq CMD
--help`, and the options every command takes.  An option's argument named
FILE or CKPT completes file names, DIR directories; any other takes a value
and completes nothing.

usage: gen_completion.py bash|zsh PATH-TO-TFQ -o OUTPUT
Exits 1 with a message naming the command line when tfq's help cannot be
read (tfq_help.HelpError).
"""

import argparse
import sys

import tfq_help


def model(tfq):
    """[(command, summary, subcommands, {--opt: (ARG, description)})]: each
    command's own options, then the global ones; an empty description is
    filled from another command's description of the same option."""
    helps = tfq_help.read_all(tfq)
    glob = tfq_help.global_options(helps['main'])
    per = {name: tfq_help.options(helps['help'][name]) for name, _ in helps['commands']}
    known = {}
    for opts in per.values():
        for opt, (_, desc) in opts.items():
            if desc:
                known.setdefault(opt, desc)
    known.setdefault('--help', 'describe the options')
    out = []
    for name, summary in helps['commands']:
        opts = dict(per[name])
        for opt, arg in glob.items():
            opts.setdefault(opt, (arg, ''))
        opts = {o: (a, d or known.get(o, '')) for o, (a, d) in opts.items()}
        out.append((name, summary, tfq_help.subcommands(helps['help'][name], name), opts))
    return out


def _words(opts, kinds):
    return ' '.join(o for o, (a, _) in opts.items() if a is not None and a in kinds)


def bash(cmds):
    """The bash completion script: plain bash, no bash-completion helpers."""
    lines = [
        '# bash completion for tfq, generated from its --help by',
        '# tools/gen_completion.py: edit the help text, not this file.',
        '_tfq() {',
        '    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}',
        '    local opts="" files="" dirs="" values="" subs=""',
        '    COMPREPLY=()',
        '    if [ "$COMP_CWORD" -eq 1 ]; then',
        f'        mapfile -t COMPREPLY < <(compgen -W "{" ".join(c[0] for c in cmds)}" -- "$cur")',
        '        return',
        '    fi',
        '    case ${COMP_WORDS[1]} in',
    ]
    for name, _, subs, opts in cmds:
        valued = ' '.join(o for o, (a, _) in opts.items() if a is not None)
        lines += [f'    {name})',
                  f'        opts="{" ".join(opts)}"',
                  f'        files="{_words(opts, tfq_help.FILE_ARGS)}"',
                  f'        dirs="{_words(opts, tfq_help.DIR_ARGS)}"',
                  f'        values="{valued}"',
                  f'        subs="{" ".join(subs)}" ;;']
    lines += [
        '    *) return ;;',
        '    esac',
        '    case " $files " in *" $prev "*)',
        '        mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;; esac',
        '    case " $dirs " in *" $prev "*)',
        '        mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;; esac',
        '    case " $values " in *" $prev "*) return ;; esac',
        '    if [[ $cur == -* ]]; then',
        '        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")',
        '    elif [ "$COMP_CWORD" -eq 2 ] && [ -n "$subs" ]; then',
        '        mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")',
        '    else',
        '        mapfile -t COMPREPLY < <(compgen -f -- "$cur")',
        '    fi',
        '}',
        'complete -o filenames -F _tfq tfq',
    ]
    return '\n'.join(lines) + '\n'


def _zq(text):
    """TEXT as one single-quoted zsh word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _zspec(opt, arg, desc):
    """One _arguments spec: --opt[description]:ARG:action."""
    desc = desc.replace('\\', '\\\\').replace('[', '\\[').replace(']', '\\]')
    spec = f'{opt}[{desc}]'
    if arg is not None:
        action = ('_files' if arg in tfq_help.FILE_ARGS else
                  '_files -/' if arg in tfq_help.DIR_ARGS else ' ')
        spec += f':{arg.lower().replace(":", "")}:{action}'
    return _zq(spec)


def zsh(cmds):
    """The zsh completion script (#compdef tfq), with _arguments and
    _describe."""
    lines = [
        '#compdef tfq',
        '# zsh completion for tfq, generated from its --help by',
        '# tools/gen_completion.py: edit the help text, not this file.',
        '_tfq() {',
        '    local -a commands',
        '    commands=(',
    ]
    lines += [f'        {_zq(name + ":" + summary)}' for name, summary, _, _ in cmds]
    lines += [
        '    )',
        '    if (( CURRENT == 2 )); then',
        "        _describe -t commands 'tfq command' commands",
        '        return',
        '    fi',
        '    local cmd=$words[2]',
        '    shift words',
        '    (( CURRENT-- ))',
        '    case $cmd in',
    ]
    for name, _, subs, opts in cmds:
        rest = (_zq(f'1:subcommand:({" ".join(subs)})') + ' ' if subs else '') + \
            _zq('*:file:_files')
        specs = [_zspec(o, a, d) for o, (a, d) in opts.items()]
        lines.append(f'    {name})')
        lines.append("        _arguments \\")
        lines += [f'            {s} \\' for s in specs]
        lines.append(f'            {rest} ;;')
    lines += ['    esac', '}', '_tfq "$@"']
    return '\n'.join(lines) + '\n'


def main():
    ap = argparse.ArgumentParser(description='tfq shell completion from tfq --help')
    ap.add_argument('shell', choices=['bash', 'zsh'])
    ap.add_argument('tfq')
    ap.add_argument('-o', '--output', required=True)
    a = ap.parse_args()
    try:
        cmds = model(a.tfq)
    except tfq_help.HelpError as e:
        sys.exit(f'gen_completion.py: {e}')
    text = bash(cmds) if a.shell == 'bash' else zsh(cmds)
    with open(a.output, 'w', encoding='utf-8') as f:
        f.write(text)


if __name__ == '__main__':
    main()
