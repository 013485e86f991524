"""Command-line support for the scripts in ``tools/``: the top layer.

The scripts stay thin: they parse arguments and call these functions and
the library, so the same checks run in ``tools/train.py``, ``tools/test.py``
and ``tools/demo.py``, and tests can call them directly. Every script
exposes ``main(argv=None)`` and ends with ``run_tool(main)``, which turns
the package's errors (:mod:`mmseg_plugins.errors`) into one ``error:`` line
and exit code 2. Nothing below this module imports it.
"""
import os
import sys
import warnings
from typing import Callable, Optional, Sequence

from .config import (check_data_paths, check_pretrained_paths,  # noqa: F401
                     load_config, setup_work_dir)
from .errors import InvalidInputError, MMSegPluginsError
from .distributed import prepare_launcher, shutdown_distributed  # noqa: F401
from .reporting import Progress  # noqa: F401  (the tools' progress bar)

__all__ = [
    'ToolError', 'load_config', 'check_data_paths', 'check_pretrained_paths',
    'setup_work_dir', 'add_runner_args', 'parse_runner_args',
    'prepare_launcher', 'shutdown_distributed', 'quiet_known_warnings',
    'Progress', 'run_tool'
]


class ToolError(InvalidInputError):
    """Bad command-line input found by a tool script itself; reported as one
    line, exit code 2 (library code raises :mod:`mmseg_plugins.errors`)."""


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


def parse_runner_args(parser, argv=None):
    """Parse ``argv`` (default: ``sys.argv``), and export ``LOCAL_RANK`` as
    mmseg's scripts do."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


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


def run_tool(main: Callable[..., None],
             argv: Optional[Sequence[str]] = None,
             debug_env: str = 'MMSEG_PLUGINS_DEBUG') -> None:
    """Run a tool's ``main(argv)``: known noisy warnings silenced, bad input
    reported as one ``error:`` line with exit code 2 (``SystemExit``).

    Bad input is what the package reports as such (an
    :class:`~mmseg_plugins.errors.MMSegPluginsError`) and a file that is
    not there (``FileNotFoundError``); any other exception is a bug, in
    the tool or beneath it, and keeps its traceback.

    Args:
        main (callable): The tool's ``main(argv=None)``.
        argv (Sequence[str], optional): Its arguments (default:
            ``sys.argv[1:]``).
        debug_env (str): Set this environment variable (``=1``) to get the
            full traceback instead.
    """
    quiet_known_warnings()
    try:
        main(None if argv is None else list(argv))
    except (MMSegPluginsError, FileNotFoundError) as err:
        if os.environ.get(debug_env):
            raise
        msg = ' '.join(str(err).split()) or type(err).__name__
        print(f'error: {msg}', file=sys.stderr)
        sys.exit(2)
