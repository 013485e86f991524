"""Fix 1, ``mmcv_ops``: the pure-PyTorch ``mmcv.ops`` for mmcv-lite
(:mod:`mmseg_plugins.compat`)."""
import mmseg_plugins_mmcv_ops
from mmseg_plugins_mmcv_ops import has_mmcv_ext
from mmseg_plugins_mmcv_ops.ops import FALLBACK_FLAG


def install_mmcv_ops_fallback() -> bool:
    """Provide the pure-PyTorch ``mmcv.ops`` when ``mmcv._ext`` is missing:
    put :class:`mmseg_plugins_mmcv_ops.MMCVOpsFinder` in ``sys.meta_path``
    (idempotent) and import ``mmcv.ops`` through it.

    Returns:
        bool: True if ``mmcv.ops`` is (now) the fallback, False if full mmcv
        is present and nothing was done.
    """
    if has_mmcv_ext():
        return False
    mmseg_plugins_mmcv_ops.install()
    import mmcv.ops
    return getattr(mmcv.ops, FALLBACK_FLAG, False)
