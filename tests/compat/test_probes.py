"""How the compatibility fixes recognise what they fix: each probe gives the
right answer for the behaviour its fix is for and for the fixed behaviour
(small stand-ins written here, e.g. OneDL's visualiser, which draws into a
contiguous copy), and leaves nothing behind (mmseg_plugins/compat/probes.py
and the probes of checkpoints.py, configs.py, drawing.py)."""
import os
import os.path as osp

import numpy as np
import pytest

from mmseg_plugins.compat import checkpoints, configs, drawing, probes


# ----------------------------------------------------------------------------
# atomic_put: does LocalBackend.put write into the file or replace it?
# ----------------------------------------------------------------------------
def _in_place(data, path):
    with open(path, 'wb') as f:
        f.write(data)


def _replacing(data, path):
    with open(path + '.tmp', 'wb') as f:
        f.write(data)
    os.replace(path + '.tmp', path)


def _refused(data, path):
    raise PermissionError('the file is open')  # replacing it, on Windows


def test_put_probe_tells_writing_in_place_from_replacing():
    assert checkpoints.writes_in_place(_in_place)
    assert not checkpoints.writes_in_place(_replacing)
    assert checkpoints.writes_in_place(_refused)  # assumes mmengine 0.10's
    # the package's own atomic put, which the fix installs
    assert not checkpoints.writes_in_place(
        lambda data, path: checkpoints._atomic_put(None, data, path))


def test_put_probe_works_in_a_temporary_folder(tmp_path, monkeypatch):
    paths = []
    monkeypatch.chdir(tmp_path)
    checkpoints.writes_in_place(lambda data, path: paths.append(path))
    (path, ) = paths
    assert osp.isabs(path) and not osp.exists(osp.dirname(path))
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------
# config_index: does _get_cfg_metainfo read the metafiles on every call?
# ----------------------------------------------------------------------------
def _caching_lookup():
    """A ``_get_cfg_metainfo`` that reads a package's metafiles once."""
    from mmengine.config import utils
    mmengine_lookup = getattr(utils._get_cfg_metainfo, '__wrapped__',
                              utils._get_cfg_metainfo)
    seen = {}

    def lookup(package_path, cfg_path):
        if package_path not in seen:
            seen[package_path] = mmengine_lookup(package_path, cfg_path)
        return seen[package_path]

    return lookup


def test_metafile_probe_tells_rereading_from_caching():
    from mmengine.config import utils
    mmengine_lookup = getattr(utils._get_cfg_metainfo, '__wrapped__',
                              utils._get_cfg_metainfo)
    assert configs.reparses_metafiles(mmengine_lookup)  # mmengine 0.10.7
    assert not configs.reparses_metafiles(_caching_lookup())
    assert not configs.reparses_metafiles(  # the fix's own index
        configs._cfg_metainfo_from_index)


def test_a_lookup_that_does_not_answer_is_not_replaced():
    def other_signature(package_path):
        raise TypeError('takes 1 positional argument')

    assert not configs.reparses_metafiles(other_signature)


# ----------------------------------------------------------------------------
# contiguous_draw: does _draw_sem_seg fail on an image with planar channels?
# ----------------------------------------------------------------------------
def _mmseg_draw():
    """mmseg's ``_draw_sem_seg`` as installed, whether the fix wraps it,
    and its class."""
    from mmseg.visualization import SegLocalVisualizer
    draw = SegLocalVisualizer._draw_sem_seg
    return (getattr(draw, '__wrapped__', draw), hasattr(draw, '__wrapped__'),
            SegLocalVisualizer)


def _draws_into_contiguous_copy(self, image, sem_seg, classes, palette,
                                with_labels=True):
    """OneDL's way: draws the label boxes into a C-contiguous copy of a
    buffer made like the image."""
    import cv2
    mask = np.ascontiguousarray(np.zeros_like(image))
    mask = cv2.rectangle(mask, (1, 1), (9, 9), palette[0], -1)
    self.set_image(mask)
    return mask


def _draws_into_buffer_like_image(self, image, sem_seg, classes, palette,
                                  with_labels=True):
    """mmseg 1.2.2's way: draws into ``np.zeros_like(image)``."""
    import cv2
    mask = np.zeros_like(image)
    return cv2.rectangle(mask, (1, 1), (9, 9), palette[0], -1)


def test_draw_probe_tells_the_failing_draw_from_the_fixed_one():
    draw, fixed, visualizer_class = _mmseg_draw()
    before = dict(visualizer_class._instance_dict)
    # mmseg 1.2.2's fails (the fix wraps it); OneDL's does not
    assert drawing.fails_on_planar_image(draw, visualizer_class) == fixed
    assert drawing.fails_on_planar_image(_draws_into_buffer_like_image,
                                         visualizer_class)
    assert not drawing.fails_on_planar_image(_draws_into_contiguous_copy,
                                             visualizer_class)
    # the fix: mmseg's own draw on a contiguous copy of the image
    assert not drawing.fails_on_planar_image(
        lambda self, image, *args, **kwargs: draw(
            self, np.ascontiguousarray(image), *args, **kwargs),
        visualizer_class)
    # no visualiser was created (none is current because of a probe)
    assert visualizer_class._instance_dict == before


def test_a_draw_that_needs_more_of_its_visualiser_is_fixed_anyway():
    def needs_a_dataset(self, image, *args, **kwargs):
        return self.dataset_meta

    *_, visualizer_class = _mmseg_draw()
    assert drawing.fails_on_planar_image(needs_a_dataset, visualizer_class)


# ----------------------------------------------------------------------------
# reading the installed code where trying would have an effect
# ----------------------------------------------------------------------------
def test_code_probe_names_what_a_function_imports():
    def resolves_with_pkg_resources(package):
        from pkg_resources import get_distribution
        return get_distribution(package).location

    def resolves_with_importlib(package):
        # a comment naming pkg_resources does not count
        import importlib.metadata
        return importlib.metadata.distribution(package).locate_file('')

    def imports_in_a_nested_function():
        def inner():
            from yapf.yapflib.yapf_api import FormatCode
            return FormatCode
        return inner

    assert probes.code_refers_to(resolves_with_pkg_resources,
                                 'pkg_resources')
    assert not probes.code_refers_to(resolves_with_importlib,
                                     'pkg_resources')
    assert probes.code_refers_to(imports_in_a_nested_function, 'FormatCode')
    assert not probes.code_refers_to(resolves_with_importlib, 'FormatCode')
    # a property getter and a method reach their functions' code
    assert probes.code_refers_to(
        type('C', (), {'p': property(imports_in_a_nested_function)}).p.fget,
        'FormatCode')
    # without Python code: the behaviour the fix was written for
    assert probes.code_names(len) is None
    assert probes.code_refers_to(len, 'pkg_resources')


def test_code_probe_answers_for_the_installed_mmengine():
    from mmengine.config import config
    from mmengine.utils import package_utils
    import inspect
    source = inspect.getsource(package_utils.get_installed_path)
    assert probes.code_refers_to(package_utils.get_installed_path,
                                 'pkg_resources') == (
        'import pkg_resources' in source or 'from pkg_resources' in source)
    assert probes.code_refers_to(config.Config.pretty_text.fget,
                                 'FormatCode')  # global or imported


def test_source_probe_reads_the_installed_source(monkeypatch):
    """Where there is no source to read, the condition assumes the
    behaviour the fix was written for."""
    import inspect

    def draws_in_place(image):
        return image.fill(0)

    assert probes.source_matches(draws_in_place, lambda s: 'fill(0)' in s)
    assert not probes.source_matches(draws_in_place,
                                     lambda s: 'zeros_like' in s)
    namespace = {}
    exec('def no_file(x):\n    return x\n', namespace)  # no source file
    assert probes.source_matches(namespace['no_file'], lambda s: False)
    assert probes.source_matches(len, lambda s: False)  # a builtin

    def unreadable(function):
        raise OSError('could not get source code')

    monkeypatch.setattr(inspect, 'getsource', unreadable)
    assert probes.source_matches(draws_in_place, lambda s: 'zeros_like' in s)


@pytest.mark.parametrize('fix', ['atomic_put', 'contiguous_draw',
                                 'config_index'])
def test_a_switched_off_fix_is_not_probed(monkeypatch, fix):
    """Under MMSEG_PLUGINS_NO_COMPAT a fix's condition is not even tried."""
    from mmseg_plugins import compat
    (entry, ) = [f for f in compat.FIXES if f.name == fix]
    probed = []

    def needed():
        probed.append(fix)
        return entry.needed()

    # this fix alone, its condition counting its calls, nothing installed
    monkeypatch.setattr(compat, 'FIXES', (
        compat.Fix(fix, needed, lambda: None), ))
    monkeypatch.setattr(compat, '_APPLIED', None)
    monkeypatch.setenv(compat.OPT_OUT_ENV, fix)
    assert compat.apply() == [] and probed == []
    monkeypatch.setattr(compat, '_APPLIED', None)
    monkeypatch.delenv(compat.OPT_OUT_ENV)
    compat.apply()
    assert probed == [fix]  # the test can fail
