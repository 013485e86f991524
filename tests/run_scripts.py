"""Run several scripts one after the other in this one interpreter, each as
its command line would (``__main__``, its own ``sys.argv``, ``sys.path[0]``
and working directory), for tests that need a process of their own but not
one per script: each fresh interpreter spends seconds importing torch,
mmengine and mmseg.

Usage: ``python tests/run_scripts.py STEPS.json``, where the file holds a
list of ``{"name", "argv", "cwd"}`` steps; ``argv[0]`` is a script path, or
``-c`` followed by code. Each step's output on stdout and on stderr is
framed by ``@@ <name> begin`` and ``@@ <name> end <exit code>`` lines (see
``split_runs``). The mmengine instances a step creates (logger, message
hub, visualiser, scope) end with it, as they would with its process.
"""
import json
import os
import runpy
import subprocess
import sys
import traceback
from typing import Dict

BEGIN, END = '@@ {} begin', '@@ {} end '


def _mark(text: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        print(text, file=stream, flush=True)


def _forget_shown_warnings() -> None:
    """A warning already shown by an earlier step shows again, as in a
    process of its own (Python shows each once per code location)."""
    for module in list(sys.modules.values()):
        registry = getattr(module, '__warningregistry__', None)
        if isinstance(registry, dict):
            registry.clear()


def _run(argv: list) -> int:
    """One step: ``python SCRIPT ARGS`` or ``python -c CODE ARGS``, with
    ``sys.argv`` and ``sys.path[0]`` as Python sets them for it."""
    sys.argv = list(argv) if argv[0] != '-c' else ['-c', *argv[2:]]
    sys.path[0] = '' if argv[0] == '-c' else \
        os.path.dirname(os.path.abspath(argv[0]))
    _forget_shown_warnings()
    try:
        if argv[0] == '-c':
            exec(compile(argv[1], '<string>', 'exec'),
                 {'__name__': '__main__'})
        else:
            runpy.run_path(argv[0], run_name='__main__')
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else \
            (0 if exit_.code is None else 1)
    except BaseException:  # reported like an uncaught exception
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    from helpers import own_mmengine_instances  # (sys.path[0]: tests/)
    with open(sys.argv[1]) as f:
        steps = json.load(f)
    for step in steps:
        _mark(BEGIN.format(step['name']))
        os.chdir(step['cwd'])
        with own_mmengine_instances():
            code = _run(step['argv'])
        _mark(END.format(step['name']) + str(code))


def split_runs(proc: subprocess.CompletedProcess
               ) -> Dict[str, subprocess.CompletedProcess]:
    """The steps of a finished ``run_scripts.py`` process, each as a
    CompletedProcess of its own (exit code, stdout, stderr); a step that
    never ended (the process died in it) gets the process's exit code, or
    -1."""
    runs: Dict[str, dict] = {}
    for stream in ('stdout', 'stderr'):
        name = None
        for line in getattr(proc, stream).splitlines(keepends=True):
            if line.startswith('@@ ') and line.split()[2:3] == ['begin']:
                name = line.split()[1]
                runs.setdefault(name, dict(stdout='', stderr='',
                                           returncode=None))
            elif name and line.startswith(END.format(name)):
                runs[name]['returncode'] = int(line.split()[-1])
                name = None
            elif name:
                runs[name][stream] += line
    return {name: subprocess.CompletedProcess(
        [name], (proc.returncode or -1) if r['returncode'] is None
        else r['returncode'], r['stdout'], r['stderr'])
        for name, r in runs.items()}


def run_steps(steps: list, folder) -> Dict[str, subprocess.CompletedProcess]:
    """Run ``steps`` (``{"name", "argv", "cwd"}`` each) in one fresh
    interpreter (``steps.json`` written to ``folder``); returns
    :func:`split_runs` of it, after checking that every step began."""
    from helpers import PYTHON, run
    path = os.path.join(str(folder), 'steps.json')
    with open(path, 'w') as f:
        json.dump(steps, f)
    proc = run([PYTHON, os.path.abspath(__file__), path], cwd=str(folder))
    found = split_runs(proc)
    assert list(found) == [step['name'] for step in steps], \
        proc.stdout[-3000:] + proc.stderr[-3000:]
    return found


if __name__ == '__main__':
    main()
