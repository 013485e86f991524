"""The package's build backend: setuptools' (``setuptools.build_meta``),
whose wheels, regular and editable, also install
``mmseg_plugins_mmcv_ops.pth`` into site-packages.

That ``.pth`` file runs ``mmseg_plugins_mmcv_ops.install()`` at interpreter
start (see that package's docstring). It is the one thing of the build that
``pyproject.toml`` cannot declare, and setuptools offers no supported way
to put a file into site-packages for an editable install: its editable
wheels (PEP 660) hold only setuptools' own path hook (the files that build
commands report through ``get_outputs``/``get_output_mapping``, as
setuptools' "Extending or Customizing Setuptools" page describes, reach
only the ``editable_mode=strict`` link tree, a folder on ``sys.path`` whose
``.pth`` files ``site`` never reads); the command that writes those wheels,
``editable_wheel``, is documented as internal; and ``data_files`` install
under the environment's prefix, not into site-packages.

So this module does it with public interfaces only: it is an in-tree build
backend (PEP 517 ``backend-path``, the route setuptools' "build_meta"
page documents for adjusting its backend) that re-exports
``setuptools.build_meta`` and wraps the two hooks that write wheels,
``build_wheel`` (PEP 517) and ``build_editable`` (PEP 660). Each adds
:data:`STARTUP_PTH` at the root of the finished wheel, with its line in
the wheel's ``RECORD`` (the binary distribution format: files at the root
of a pure wheel install into site-packages). A wheel without ``RECORD``, or
with another ``.pth`` of that name, is refused with an error, so a build
never produces a wheel without the hook.
"""
import base64
import hashlib
import os
import zipfile

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F401,F403 (the other hooks)

STARTUP_PTH = 'mmseg_plugins_mmcv_ops.pth'
STARTUP_LINE = ('import mmseg_plugins_mmcv_ops; '
                'mmseg_plugins_mmcv_ops.install()\n')


def record_line(name: str, data: bytes) -> str:
    """The ``RECORD`` line of a file of the wheel: path, urlsafe base64
    SHA-256 without padding, size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    return f'{name},sha256={digest.rstrip(b"=").decode()},{len(data)}\n'


def add_startup_pth(wheel_path: str) -> None:
    """Add :data:`STARTUP_PTH` to the root of the wheel ``wheel_path`` and
    its line to the wheel's ``RECORD``, in place (the archive is written
    anew; the ``.dist-info`` files stay last, as the wheel format
    recommends).

    Args:
        wheel_path (str): A wheel that setuptools built.

    Raises:
        RuntimeError: The wheel has no ``.dist-info/RECORD``, or a
            :data:`STARTUP_PTH` already.
    """
    with zipfile.ZipFile(wheel_path) as wheel:
        entries = [(info, wheel.read(info)) for info in wheel.infolist()]
    names = [info.filename for info, _ in entries]
    records = [n for n in names if n.count('/') == 1
               and n.endswith('.dist-info/RECORD')]
    if len(records) != 1 or STARTUP_PTH in names:
        raise RuntimeError(
            f'cannot add {STARTUP_PTH} to {wheel_path}: expected one '
            f'.dist-info/RECORD and no {STARTUP_PTH}, found {names}')
    dist_info = records[0].partition('/')[0] + '/'
    data = STARTUP_LINE.encode()
    pth = zipfile.ZipInfo(STARTUP_PTH, date_time=next(
        info.date_time for info, _ in entries if info.filename == records[0]))
    pth.compress_type = zipfile.ZIP_DEFLATED
    pth.external_attr = 0o644 << 16
    temporary = wheel_path + '.tmp'
    with zipfile.ZipFile(temporary, 'w', zipfile.ZIP_DEFLATED) as wheel:
        for info, content in entries:
            if not info.filename.startswith(dist_info):
                wheel.writestr(info, content)
        wheel.writestr(pth, data)
        for info, content in entries:
            if info.filename == records[0]:
                content = record_line(STARTUP_PTH, data).encode() + content
            if info.filename.startswith(dist_info):
                wheel.writestr(info, content)
    os.replace(temporary, wheel_path)


def build_wheel(wheel_directory, config_settings=None,
                metadata_directory=None):
    """PEP 517's hook: setuptools' wheel, plus :data:`STARTUP_PTH`."""
    name = build_meta.build_wheel(wheel_directory, config_settings,
                                  metadata_directory)
    add_startup_pth(os.path.join(wheel_directory, name))
    return name


def build_editable(wheel_directory, config_settings=None,
                   metadata_directory=None):
    """PEP 660's hook: setuptools' editable wheel, plus
    :data:`STARTUP_PTH`."""
    name = build_meta.build_editable(wheel_directory, config_settings,
                                     metadata_directory)
    add_startup_pth(os.path.join(wheel_directory, name))
    return name
