"""The command line shared by ``tools/model_converters/*2mmseg.py``:
``SRC DST [--arch A] [--source S]``, one conversion, a report on stdout."""
import argparse
from typing import Callable, Dict, Optional, Sequence

from .driver import summary_lines

__all__ = ['converter_cli']


def converter_cli(description: str,
                  convert: Callable[..., Dict],
                  archs: Sequence[str],
                  sources: Sequence[str] = (),
                  argv: Optional[Sequence[str]] = None) -> None:
    """Parse the converter arguments, run ``convert`` and print its report.

    Args:
        description (str): The tool's docstring (first line: summary; the
            rest is shown by ``--help``).
        convert (callable): ``convert(src, dst, arch=..., [source=...])``
            returning the info dict of
            :func:`~mmseg_plugins.converters.driver.convert_checkpoint`.
        archs (Sequence[str]): The family's variants (for ``--help``).
        sources (Sequence[str]): Source layouts; adds ``--source`` when
            not empty.
        argv (Sequence[str], optional): Arguments (default: ``sys.argv``).
    """
    summary, _, details = description.strip().partition('\n')
    parser = argparse.ArgumentParser(
        description=summary, epilog=details,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint to convert')
    parser.add_argument('dst', help='output file (written atomically)')
    parser.add_argument('--arch', default=None,
                        help=f'{", ".join(archs)} (default: detect from the '
                        'shapes)')
    if sources:
        parser.add_argument('--source', choices=list(sources), default=None,
                            help='layout of SRC (default: detect from the '
                            'keys)')
    args = vars(parser.parse_args(argv))
    info = convert(**args)
    if info.get('source'):
        print(f'source layout: {info["source"]}')
    print('\n'.join(summary_lines(info, args['dst'])))
