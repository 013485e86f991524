"""The one build step ``pyproject.toml`` cannot declare: installing
``mmseg_plugins_mmcv_ops.pth`` into site-packages, for regular and for
editable installs. Everything else (metadata, packages, package data) is in
``pyproject.toml``.

The ``.pth`` file runs ``mmseg_plugins_mmcv_ops.install()`` at interpreter
start (see that package's docstring). A regular wheel gets it from
``build_py``, which copies it to the root of the build directory, i.e. of
the wheel. setuptools' editable wheels (PEP 660) contain only setuptools'
own path hook and ignore the build directory, so ``editable_wheel`` adds
the file itself, in the same ``WheelFile`` session that writes the wheel's
RECORD.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

STARTUP_PTH = 'mmseg_plugins_mmcv_ops.pth'
STARTUP_LINE = ('import mmseg_plugins_mmcv_ops; '
                'mmseg_plugins_mmcv_ops.install()\n')


class BuildPyWithStartupPth(build_py):
    """``build_py`` that also writes :data:`STARTUP_PTH` at the root of the
    build directory."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self.mkpath(self.build_lib)
            with open(os.path.join(self.build_lib, STARTUP_PTH), 'w') as f:
                f.write(STARTUP_LINE)


class StrategyWithStartupPth:
    """Wraps an editable-install strategy of setuptools: writes
    :data:`STARTUP_PTH` into the editable wheel, then lets the strategy
    write its own files."""

    def __init__(self, strategy) -> None:
        self.strategy = strategy

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.strategy.__exit__(*exc_info)

    def __call__(self, wheel, files, mapping) -> None:
        wheel.writestr(STARTUP_PTH, STARTUP_LINE.encode())
        self.strategy(wheel, files, mapping)


class EditableWheelWithStartupPth(editable_wheel):
    """``editable_wheel`` whose wheel also installs :data:`STARTUP_PTH`."""

    def _select_strategy(self, *args, **kwargs):
        return StrategyWithStartupPth(
            super()._select_strategy(*args, **kwargs))


if not hasattr(editable_wheel, '_select_strategy'):
    raise RuntimeError(
        'this setuptools has no editable_wheel._select_strategy, so an '
        f'editable install would lack {STARTUP_PTH}; build with the '
        'setuptools range pyproject.toml declares')

setup(cmdclass={
    'build_py': BuildPyWithStartupPth,
    'editable_wheel': EditableWheelWithStartupPth,
})
