"""What long-running library code tells the user: a progress bar on
stderr (:class:`Progress`) and loggers held quiet for a block
(:class:`quiet_logger`)."""
import logging
import sys
import time
from typing import Optional

__all__ = ['Progress', 'quiet_logger']


class quiet_logger:
    """Raise a logger (mmengine's current ``MMLogger`` when ``name`` is
    None) to ``level`` while a block runs, then restore its level."""

    def __init__(self, name: Optional[str] = None,
                 level: int = logging.WARNING) -> None:
        self.name, self.level = name, level

    def __enter__(self):
        if self.name is None:
            from mmengine.logging import MMLogger
            self.logger = MMLogger.get_current_instance()
        else:
            self.logger = logging.getLogger(self.name)
        self.previous = self.logger.level
        self.logger.setLevel(max(self.level, self.previous))
        return self.logger

    def __exit__(self, *exc_info) -> None:
        self.logger.setLevel(self.previous)


class Progress:
    """A one-line progress bar on stderr with the rate of work done.

    Args:
        total (int): Steps expected (a guess is fine; the bar never
            overflows).
        unit (str): What a step is, for the rate (e.g. ``'images'``).
    """

    def __init__(self, total: int, unit: str = 'steps') -> None:
        self.total, self.done, self.unit = max(total, 1), 0, unit
        self.start = time.perf_counter()

    @property
    def rate(self) -> float:
        """Steps per second so far."""
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
