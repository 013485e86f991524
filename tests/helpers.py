"""Helpers shared by the tests (conftest puts this folder on sys.path)."""
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


def run(cmd, cwd=None, env=None, timeout=300):
    """Run a command; return CompletedProcess with text output."""
    full_env = dict(os.environ)
    full_env.update({'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1'})
    full_env.update(env or {})
    return subprocess.run(
        cmd, cwd=cwd or ROOT, env=full_env, capture_output=True, text=True,
        timeout=timeout)



def same_weights_copy(ours):
    """A --compare builder for tests: an independent copy of our model."""
    import copy

    class Wrapped(__import__('torch').nn.Module):

        def __init__(self, model):
            super().__init__()
            self.model = copy.deepcopy(model)

        def forward(self, x):
            return self.model(x, mode='tensor')

    return Wrapped(ours)


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
