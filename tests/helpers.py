"""Helpers shared by the tests (conftest puts this folder on sys.path)."""
import contextlib
import logging
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo',
                       'segformer_mit-b0_shapes-128x128.py')
PYTHON = sys.executable


def mmseg_tool(name: str) -> str:
    """Path of mmseg's own, unmodified tool inside the installed wheel."""
    import mmseg
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', name)
    assert osp.isfile(path), path
    return path


def demo_overrides(data_root: str, iters: int) -> list:
    """--cfg-options for a short, single-worker run of the demo config."""
    opts = [f'{k}.dataset.data_root={data_root}' for k in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    for k in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{k}.num_workers=0', f'{k}.persistent_workers=False']
    opts += [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
        f'param_scheduler.1.end={iters}', 'train_dataloader.batch_size=2'
    ]
    return opts


def one_block_per_stage_arch(family, variant: str) -> dict:
    """The ``arch`` of ``family`` (a backbone class) ``variant`` with one
    block per stage (MPViT: and two chained paths instead of three): every
    kind of block, in a fraction of the time the full variant takes to
    trace, compile or export."""
    from mmseg_plugins.models import MPViT
    arch = dict(family.arch_table[variant], depths=(1, 1, 1, 1))
    if family is MPViT:
        arch['num_paths'] = (2, 2, 2, 2)
    return arch


def one_block_per_stage_demo_config(directory) -> str:
    """Write ``shallow.py`` into ``directory``: DEMO_CONFIG (SegFormer-B0)
    with one block per stage, every kind of block, for the tests whose time
    is mostly compiling. Returns its path."""
    from mmseg_plugins.models import MIT_ARCHS
    arch = dict(MIT_ARCHS['b0'], depths=(1, 1, 1, 1), _delete_=True)
    path = osp.join(str(directory), 'shallow.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{DEMO_CONFIG!r}]\n'
                f'model = dict(backbone=dict(arch={arch!r}))\n')
    return path


def run(cmd, cwd=None, env=None, timeout=300):
    """Run a command in a fresh process (for what needs one: start-up
    hooks, packaging, several processes, one smoke test per tool); return
    CompletedProcess with text output."""
    full_env = dict(os.environ)
    full_env.update({'OMP_NUM_THREADS': '1'})
    full_env.update(env or {})
    return subprocess.run(
        cmd, cwd=cwd or ROOT, env=full_env, capture_output=True, text=True,
        timeout=timeout)


_TOOLS = {}


def load_tool(script: str):
    """The module of a tool script (``tools/...py``), imported once."""
    import importlib.util
    path = osp.abspath(script)
    if path not in _TOOLS:
        name = 'tool_' + osp.relpath(path, ROOT).replace(os.sep, '_')[:-3]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOLS[path] = module
    return _TOOLS[path]


def _manager_classes() -> list:
    """mmengine's classes that keep named instances (MMLogger, MessageHub,
    Visualizer and its subclasses, DefaultScope), each with its own
    ``_instance_dict``."""
    from mmengine.utils.manager import ManagerMixin
    found, todo = [], list(ManagerMixin.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@contextlib.contextmanager
def own_mmengine_instances():
    """The named instances a run creates in this process (its logger, with
    its log file, message hub, visualiser and default scope) are released
    when it ends, as a command-line run's are when its process exits.
    Without this, a later run that gets the same timestamped name (one
    started in the same second) would reuse them, and log into the earlier
    run's file."""
    # (none yet where mmengine is not imported: not imported here either)
    before = {cls: set(cls._instance_dict) for cls in _manager_classes()} \
        if 'mmengine' in sys.modules else {}
    try:
        yield
    finally:
        for cls in _manager_classes():
            for name in set(cls._instance_dict) - before.get(cls, set()):
                instance = cls._instance_dict.pop(name)
                for handler in getattr(instance, 'handlers', [])[:]:
                    if isinstance(handler, logging.FileHandler):
                        instance.removeHandler(handler)
                        handler.close()


def call_mmseg(name: str, *argv) -> None:
    """Run mmseg's own, unmodified tool ``name`` (``train.py``,
    ``test.py``) in this process: its ``main()`` with ``sys.argv`` set for
    the call. Exceptions propagate; what it logs is in :func:`run_log`."""
    import sys
    tool = load_tool(mmseg_tool(name))
    saved = sys.argv
    sys.argv = [name, *map(str, argv)]
    try:
        with own_mmengine_instances():
            tool.main()
    finally:
        sys.argv = saved


def logged_miou(log: str) -> str:
    """The last mIoU an mmengine log prints (``mIoU: 12.34``), as text."""
    import re
    found = re.findall(r'mIoU: ([\d.]+)', log)
    assert found, 'no mIoU in the log'
    return found[-1]


def run_log(work_dir) -> str:
    """The text of the newest run's log file (``<timestamp>/<timestamp>.log``)
    under an mmengine work directory."""
    import glob
    logs = sorted(glob.glob(osp.join(str(work_dir), '*', '*.log')))
    assert logs, f'no run log under {work_dir}'
    with open(logs[-1]) as f:
        return f.read()


def call(script: str, *argv, cwd=None, env=None):
    """Run a tool's ``main(argv)`` in this process, as its command line
    does (``run_tool``: ``error:`` line and exit code 2 on bad input), with
    stdout and stderr captured; returns a CompletedProcess like
    :func:`run`. Environment variables in ``env`` and the working
    directory hold for the call only."""
    import io
    import warnings

    from mmseg_plugins.cli import run_tool
    tool = load_tool(script)
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    code = 0
    try:
        os.environ.update(env or {})
        os.chdir(cwd or ROOT)
        with contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err), warnings.catch_warnings(), \
                own_mmengine_instances():
            try:
                run_tool(tool.main, [str(a) for a in argv])
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else \
                    (0 if exit_.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess([script, *map(str, argv)], code,
                                       out.getvalue(), err.getvalue())


def same_weights_copy(ours):
    """A --compare builder for tests: an independent copy of our model's
    inference computation."""
    import copy

    from mmseg_plugins.forward import SegmentorForward
    return SegmentorForward(copy.deepcopy(ours))


class Exploit:
    """Unpickling this would run ``touch <marker>``: checkpoints holding it
    must be refused."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def assert_refused(proc, pattern: str) -> str:
    """A tool refused bad input: exit code 2, exactly one ``error:`` line
    on stderr matching ``pattern``, no traceback. Returns the line."""
    import re
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith('error: ') and 'Traceback' not in proc.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def projection_loss(outputs, seed: int = 0):
    """A scalar that depends on every output element: the sum of each
    output tensor times a fixed random tensor of its shape."""
    import torch
    g = torch.Generator().manual_seed(seed)
    return sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum()
               for t in outputs)


def assert_relatively_close(ours, theirs, rtol: float, what: str = '',
                            floor: float = 0.):
    """max |ours - theirs| <= rtol * max(max |theirs|, floor): a relative
    bound that a wrong layer cannot meet. ``floor`` is the magnitude below
    which values count as zero, e.g. the largest gradient of the model for
    a gradient that is mathematically zero (a constant before a training-
    mode BatchNorm) and computed as rounding noise."""
    import torch
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    scale = theirs.abs().max().item()
    err = (ours - theirs).abs().max().item()
    bound = rtol * max(scale, floor, torch.finfo(theirs.dtype).tiny)
    assert err <= bound, \
        f'{what}: max abs difference {err:.3g} vs magnitude {scale:.3g}'


def assert_same_training_step(ours, theirs, rtol: float = 1e-10):
    """Every parameter gradient and buffer (BatchNorm statistics) of two
    modules with the same structure agree to ``rtol`` (gradients relative
    to their own magnitude, or the largest gradient of the model where
    they are mathematically zero)."""
    grads = [p.grad for p in theirs.parameters()]
    assert all(g is not None for g in grads)
    largest = max(g.abs().max().item() for g in grads)
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert a.grad is not None, name
        assert_relatively_close(a.grad, b.grad, rtol, f'{name}.grad',
                                floor=largest)
    for (name, a), b in zip(ours.named_buffers(), theirs.buffers()):
        assert_relatively_close(a.double(), b.double(), rtol, name)
