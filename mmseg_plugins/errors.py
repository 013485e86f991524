"""The package's exceptions, at the bottom of its layers.

Library code raises these; it never prints or exits. The command-line tools
(:func:`mmseg_plugins.cli.run_tool`) turn an :class:`MMSegPluginsError` into
one ``error:`` line and exit code 2, and Python callers catch them by type:

- :class:`InvalidInputError`: an argument, option or setting that cannot be
  honoured (a size below the network's minimum, an unknown precision, a
  CUDA device on a machine without one ...).
- :class:`ConflictingArgumentsError`: two arguments that contradict each
  other (an ``arch`` and a per-stage argument, ``pretrained`` and
  ``init_cfg`` ...); also an ``AssertionError``, which is what mmseg's
  backbones raise in the same cases.
- :class:`ConfigError`: a config that is missing, unreadable or lacks what
  the caller needs (a model, a dataset directory ...).
- :class:`CheckpointError`: a file that is not a readable checkpoint, holds
  pickled objects outside the allow-list, or does not fit the model.
- :class:`ExportError`: an export or quantization that failed or did not
  pass its numerical verification (nothing was written).
- :class:`FuseError`: a model the inference transform cannot fuse or
  whose fused form did not verify.
- :class:`DatasetError`: a user's dataset that would train wrong or cannot
  be read.

Each also derives from the built-in exception a caller would expect
(``ValueError`` around input checks). Where mmengine raises an exception
of its own in the same case, the package's error derives from that type
too, so code written for mmengine keeps catching it: a missing checkpoint
(:class:`CheckpointNotFoundError`) is a ``FileNotFoundError`` (an
``OSError``), a refused pickled object (:class:`UnsafeCheckpointError`) a
``pickle.UnpicklingError``, a ``Pretrained`` prefix no key has
(:class:`CheckpointPrefixError`) an ``AssertionError``, an ``init_cfg``
of a form mmengine cannot build (:class:`InitConfigError`) a ``TypeError``.
"""
import pickle

__all__ = [
    'MMSegPluginsError', 'InvalidInputError', 'ConflictingArgumentsError',
    'ConfigError', 'CheckpointError', 'CheckpointNotFoundError',
    'UnsafeCheckpointError', 'CheckpointPrefixError', 'InitConfigError',
    'ExportError', 'FuseError', 'DatasetError', 'first_line'
]


class MMSegPluginsError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidInputError(MMSegPluginsError, ValueError):
    """An argument or setting that cannot be honoured."""


class ConflictingArgumentsError(InvalidInputError, AssertionError):
    """Two arguments that contradict each other; the message names both.
    (mmseg's backbones assert such combinations away, hence the
    ``AssertionError`` base.)"""


class ConfigError(MMSegPluginsError, ValueError):
    """A config that is missing, unreadable or incomplete."""


class CheckpointError(MMSegPluginsError, RuntimeError):
    """A file could not be read as a checkpoint, was refused, or does not
    fit the model it is loaded into."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that does not exist (mmengine's loader raises
    ``FileNotFoundError`` there)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holding a pickled object outside the allow-list
    (``torch.load(weights_only=True)`` raises ``UnpicklingError`` there)."""


class CheckpointPrefixError(CheckpointError, AssertionError):
    """A ``Pretrained`` ``prefix`` that no key of the checkpoint has
    (mmengine's ``_load_checkpoint_with_prefix`` asserts there)."""


class InitConfigError(ConfigError, TypeError):
    """An ``init_cfg`` of a form that cannot be honoured: not a dict or a
    list of dicts, unknown keys of ``Pretrained`` (mmengine raises
    ``TypeError`` for both), or a checkpoint where only the strict loader
    may load one (an ``override`` of another initialiser)."""


class ExportError(MMSegPluginsError, RuntimeError):
    """An export or quantization failed or did not verify."""


class FuseError(MMSegPluginsError, RuntimeError):
    """A model that :func:`mmseg_plugins.fuse` cannot fuse, or whose fused
    form did not compute what the reference forward computes."""


class DatasetError(MMSegPluginsError, ValueError):
    """A dataset that cannot be read or would train wrong."""


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name if
    the message is empty), without the graph dump some exporters and
    runtimes append in brackets: what one ``error:`` line can carry."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return (lines[0] if lines else type(err).__name__).split(' [Caused by')[0]
