"""Shared logic of the command-line tools in ``tools/``.

The scripts stay thin: they parse arguments and call these functions, so
the same checks run in ``tools/train.py``, ``tools/test.py`` and
``tools/demo.py``, and tests can call them directly. Every script ends with
``run_tool(main)``.
"""
import os
import os.path as osp
import sys
import warnings
from typing import Callable, Iterable, List, Optional

from mmengine.config import Config

__all__ = [
    'ToolError', 'load_config', 'check_data_paths', 'check_pretrained_paths',
    'setup_work_dir', 'add_runner_args', 'parse_runner_args',
    'prepare_launcher', 'shutdown_distributed', 'quiet_known_warnings',
    'Progress', 'run_tool'
]


class ToolError(Exception):
    """Bad input to a tool; reported as one line, exit code 2."""


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file, apply ``--cfg-options`` and check it has a
    model."""
    from .compat import check_pkg_resources
    if not osp.isfile(path):
        raise ToolError(f'config file not found: {path}')
    try:
        check_pkg_resources()  # "mmseg::" bases need it on mmengine 0.10
    except ImportError as err:
        raise ToolError(str(err)) from None
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ToolError(f'config {path} defines no "model"')
    return cfg


def _dataset_dirs(dataset: dict) -> List[str]:
    """Directories a (possibly wrapped) mmseg dataset config reads."""
    if not isinstance(dataset, dict):
        return []
    if 'dataset' in dataset:  # RepeatDataset, MultiImageMixDataset ...
        return _dataset_dirs(dataset['dataset'])
    if 'datasets' in dataset:  # ConcatDataset
        return [d for sub in dataset['datasets'] for d in _dataset_dirs(sub)]
    root = dataset.get('data_root', '') or ''
    prefix = dataset.get('data_prefix', {}) or {}
    dirs = [osp.join(root, p) for p in prefix.values() if p]
    return dirs or ([root] if root else [])


def check_data_paths(cfg: Config, loaders: Iterable[str]) -> None:
    """Raise :class:`ToolError` naming the first missing dataset directory.

    Args:
        cfg (Config): The config.
        loaders (Iterable[str]): Dataloader keys to check, e.g.
            ``('train_dataloader', 'val_dataloader')``.
    """
    for key in loaders:
        loader = cfg.get(key)
        if not loader:
            continue
        for d in _dataset_dirs(loader.get('dataset', {})):
            if not osp.isdir(d):
                raise ToolError(
                    f'dataset directory {d!r} ({key}) does not exist; put '
                    'the data there or set --cfg-options '
                    f'{key}.dataset.data_root=<path>')


def _pretrained_paths(node, where: str):
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and node.get('checkpoint'):
            yield f'{where}.checkpoint', node['checkpoint']
        if isinstance(node.get('pretrained'), str):
            yield f'{where}.pretrained', node['pretrained']
        for key, value in node.items():
            yield from _pretrained_paths(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_paths(value, f'{where}.{i}')


def check_pretrained_paths(cfg: Config) -> None:
    """Raise :class:`ToolError` if a local checkpoint named in the model
    config (``pretrained=`` or ``init_cfg=dict(type='Pretrained',
    checkpoint=...)``) or as ``load_from`` does not exist. URLs are left to
    the loader."""
    paths = list(_pretrained_paths(cfg.get('model', {}), 'model'))
    if cfg.get('load_from') and not cfg.get('resume', False):
        paths.append(('load_from', cfg.load_from))
    for where, path in paths:
        if '://' in str(path):
            continue
        if not osp.isfile(path):
            raise ToolError(f'pretrained checkpoint {path!r} ({where}) does '
                            'not exist')


def setup_work_dir(cfg: Config, config_path: str,
                   work_dir: Optional[str]) -> None:
    """mmseg's rule: CLI > config > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def shutdown_distributed() -> None:
    """After a finished multi-process run: wait for every rank, then tear
    the process group down, so that no communication thread is still alive
    when the interpreter exits (gloo aborts the process otherwise, now and
    then, with 'terminate called without an active exception')."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def prepare_launcher(cfg: Config, launcher: str) -> None:
    """Set ``cfg.launcher``; for multi-process runs without CUDA, switch to
    gloo and the CPU-aware DDP wrapper (see :mod:`mmseg_plugins.compat`)."""
    cfg.launcher = launcher
    if launcher == 'none':
        return
    os.environ.setdefault('LOCAL_RANK', '0')
    from .compat import configure_cpu_distributed
    configure_cpu_distributed(cfg)


def add_runner_args(parser) -> None:
    """The arguments mmseg's train/test scripts share: ``--work-dir``,
    ``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser):
    """Parse, and export ``LOCAL_RANK`` as mmseg's scripts do."""
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


class Progress:
    """A one-line progress bar on stderr with the rate of work done.

    Args:
        total (int): Steps expected (a guess is fine; the bar never
            overflows).
        unit (str): What a step is, for the rate (e.g. ``'images'``).
    """

    def __init__(self, total: int, unit: str = 'steps') -> None:
        import time
        self.total, self.done, self.unit = max(total, 1), 0, unit
        self.start = time.perf_counter()

    @property
    def rate(self) -> float:
        """Steps per second so far."""
        import time
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.

    def step(self, label: str = '', n: int = 1) -> None:
        self.done += n
        bar = '#' * min(30, 30 * self.done // self.total)
        print(f'\r[{bar:<30}] {self.done}/{self.total} {self.rate:.2f} '
              f'{self.unit}/s {label[:40]:<40}', end='', file=sys.stderr,
              flush=True)

    def close(self) -> None:
        print(file=sys.stderr, flush=True)


#: Warnings that mmseg 1.2.2 prints on every run of a tool and that say
#: nothing about the user's setup: (message regex, category).
KNOWN_NOISY_WARNINGS = (
    # CrossEntropyLoss informs about a default it keeps for compatibility
    (r'Default ``avg_non_ignore`` is False', UserWarning),
    # mmseg's own heads call its deprecated build_loss
    (r'``build_loss`` would be deprecated soon', UserWarning),
    # the visualization hook of mmseg's default runtime is off unless asked
    (r'The draw is False, it means that the hook for visualization',
     UserWarning),
)


def quiet_known_warnings() -> None:
    """Silence :data:`KNOWN_NOISY_WARNINGS` (every other warning, e.g. a
    deprecation that concerns the user's code or environment, is shown)."""
    for message, category in KNOWN_NOISY_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category)


def run_tool(main: Callable[[], None],
             debug_env: str = 'MMSEG_PLUGINS_DEBUG') -> None:
    """Run a tool's ``main()``: known noisy warnings silenced, bad input
    reported as one ``error:`` line with exit code 2.

    Set the environment variable ``MMSEG_PLUGINS_DEBUG=1`` to get the full
    traceback instead.
    """
    from .checkpoint import CheckpointError
    quiet_known_warnings()
    try:
        main()
    except (ToolError, CheckpointError, FileNotFoundError, ValueError,
            KeyError, TypeError, SyntaxError) as err:
        if os.environ.get(debug_env):
            raise
        msg = ' '.join(str(err).split()) or type(err).__name__
        print(f'error: {msg}', file=sys.stderr)
        sys.exit(2)
