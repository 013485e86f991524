"""Tests of mmseg_plugins/compat/ (the compatibility fixes)."""
import inspect
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch

from helpers import DEMO_CONFIG, ROOT
from mmseg_plugins import compat, distributed


NO_FALLBACK = 'full mmcv, or an mmseg that guards its mmcv.ops imports'


@pytest.mark.skipif(not compat.mmcv_ops_fallback_needed(),
                    reason=NO_FALLBACK)
def test_fallback_is_installed_with_mmcv_lite():
    from mmseg_plugins_mmcv_ops import ops
    assert getattr(sys.modules['mmcv.ops'], compat.FALLBACK_FLAG)
    import mmseg.models  # noqa: F401  (fails without the fallback)
    import mmseg.utils  # noqa: F401
    from mmcv.ops import point_sample, sigmoid_focal_loss
    assert point_sample is ops.point_sample
    assert sigmoid_focal_loss is ops.sigmoid_focal_loss
    assert 'mmcv_ops' in compat.applied()


def test_fallback_is_a_noop_with_full_mmcv(monkeypatch):
    sentinel = object()
    monkeypatch.setitem(sys.modules, 'mmcv.ops', sentinel)
    monkeypatch.setattr(compat.mmcv_ops, 'has_mmcv_ext', lambda: True)
    assert compat.install_mmcv_ops_fallback() is False
    assert sys.modules['mmcv.ops'] is sentinel


@pytest.mark.skipif(not compat.mmcv_ops_fallback_needed(),
                    reason=NO_FALLBACK)
def test_fallback_install_is_idempotent(monkeypatch):
    """Installing again (e.g. in an interpreter started with ``-S``, which
    skips the .pth) keeps one finder and the module in place."""
    import mmseg_plugins_mmcv_ops
    monkeypatch.setattr(sys, 'meta_path', [
        f for f in sys.meta_path
        if f is not mmseg_plugins_mmcv_ops.MMCVOpsFinder])
    first = sys.modules['mmcv.ops']
    assert compat.install_mmcv_ops_fallback() is True
    assert compat.install_mmcv_ops_fallback() is True
    assert sys.meta_path.count(mmseg_plugins_mmcv_ops.MMCVOpsFinder) == 1
    assert sys.modules['mmcv.ops'] is first


def test_mmengine_uses_the_safe_loader():
    from mmengine.runner.checkpoint import CheckpointLoader
    assert CheckpointLoader._get_checkpoint_loader('/x.pth') is \
        compat.load_from_local
    assert CheckpointLoader._get_checkpoint_loader('https://a/b.pth') is \
        compat.load_from_http


def test_pkg_resources_bound_lets_mmseg_bases_resolve(tmp_path):
    compat.check_pkg_resources()  # raises if the bound is not honoured
    from mmengine.config import Config
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text("_base_ = ['mmseg::_base_/datasets/ade20k.py']\n")
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'


def test_pkg_resources_missing_gives_clear_error(monkeypatch):
    monkeypatch.setattr(compat.configs, 'mmengine_needs_pkg_resources',
                        lambda: True)
    monkeypatch.setitem(sys.modules, 'pkg_resources', None)
    with pytest.raises(ImportError, match=r'setuptools<82'):
        compat.check_pkg_resources()


def test_cpu_distributed_config_switches_backend_and_wrapper(monkeypatch):
    from mmengine.config import Config
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(distributed, 'init_cpu_distributed',
                        lambda t=1800: True)
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl')),
                      find_unused_parameters=True))
    assert distributed.configure_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == \
        'mmseg_plugins.CPUDistributedDataParallel'
    assert cfg.model_wrapper_cfg.find_unused_parameters is True


def test_cpu_distributed_is_a_noop_on_gpu_machines(monkeypatch):
    from mmengine.config import Config
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert distributed.configure_cpu_distributed(cfg) is False
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg


def test_cpu_wrapper_is_found_by_mmengine_runner_lookup():
    from mmengine.registry import MODEL_WRAPPERS
    from mmseg_plugins.models.wrappers import CPUDistributedDataParallel
    assert MODEL_WRAPPERS.get('mmseg_plugins.CPUDistributedDataParallel') \
        is CPUDistributedDataParallel


def test_mmengine_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    from mmengine.fileio.backends import LocalBackend
    from mmengine.runner.checkpoint import save_checkpoint

    from mmseg_plugins import fileio
    assert LocalBackend.put is compat.checkpoints._atomic_put
    dst = tmp_path / 'iter_1.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(dst))
    assert torch.load(dst, weights_only=True)['state_dict']['w'].sum() == 3

    # a save interrupted after writing some bytes leaves nothing behind
    real_atomic_write = fileio.atomic_write

    def interrupted(path, write):

        def write_some(f):
            f.write(b'0123456789')
            raise KeyboardInterrupt

        return real_atomic_write(path, write_some)

    monkeypatch.setattr(fileio, 'atomic_write', interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'state_dict': {'w': torch.ones(3)}},
                        str(tmp_path / 'iter_2.pth'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_1.pth']


def test_each_fix_is_gated_on_its_condition(monkeypatch):
    """The loader fix is needed while mmengine's loader unpickles without
    an allow-list, the put fix while mmengine writes in place, the drawing
    fix while mmseg draws into ``np.zeros_like(image)``, the index fix
    while mmengine reads every metafile on each config lookup, the text
    fix while mmengine formats a config with yapf on each call."""
    import mmengine.runner.checkpoint as mmengine_checkpoint
    from mmengine.fileio.backends import LocalBackend
    assert compat.mmengine_loader_is_unrestricted()  # mmengine 0.10.7

    def safe_loader(filename, map_location):
        return torch.load(filename, map_location, weights_only=True)

    # OneDL's load_from_local calls _safe_torch_load, which falls back to
    # weights_only=False
    monkeypatch.delattr(mmengine_checkpoint, '_safe_torch_load',
                        raising=False)
    monkeypatch.setattr(mmengine_checkpoint, 'load_from_local', safe_loader)
    assert not compat.mmengine_loader_is_unrestricted()

    def falls_back(filename, map_location):
        try:
            return torch.load(filename, map_location, weights_only=True)
        except Exception:
            return torch.load(filename, map_location, weights_only=False)

    monkeypatch.setattr(mmengine_checkpoint, 'load_from_local', falls_back)
    assert compat.mmengine_loader_is_unrestricted()

    assert not compat.mmengine_put_writes_in_place()  # ours is installed

    def in_place(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj)

    def renaming(self, obj, filepath):
        with open(filepath + '.tmp', 'wb') as f:
            f.write(obj)
        os.replace(filepath + '.tmp', filepath)

    monkeypatch.setattr(LocalBackend, 'put', in_place)
    assert compat.mmengine_put_writes_in_place()
    monkeypatch.setattr(LocalBackend, 'put', renaming)
    assert not compat.mmengine_put_writes_in_place()

    from mmseg.visualization import SegLocalVisualizer
    assert not compat.mmseg_draw_copies_image_layout()  # ours, or OneDL's
    draw = SegLocalVisualizer._draw_sem_seg
    mmseg_draw = getattr(draw, '__wrapped__', draw)
    monkeypatch.setattr(SegLocalVisualizer, '_draw_sem_seg', mmseg_draw)
    # mmseg 1.2.2 (fixed); OneDL's draws into a contiguous copy (not fixed)
    assert compat.mmseg_draw_copies_image_layout() == (draw is not mmseg_draw)

    def draws_into_fresh_array(self, image, sem_seg, classes, palette,
                               with_labels=True):
        mask = np.zeros(image.shape, np.uint8)
        return mask

    monkeypatch.setattr(SegLocalVisualizer, '_draw_sem_seg',
                        draws_into_fresh_array)
    assert not compat.mmseg_draw_copies_image_layout()

    from mmengine.config import utils as config_utils
    assert not compat.mmengine_reparses_metafiles()  # ours is installed
    monkeypatch.setattr(config_utils, '_get_cfg_metainfo',
                        compat.configs._cfg_metainfo_from_index.__wrapped__)
    assert compat.mmengine_reparses_metafiles()  # mmengine 0.10.7
    monkeypatch.delattr(config_utils, '_get_cfg_metainfo')
    assert not compat.mmengine_reparses_metafiles()  # nothing to fix

    from mmengine.config import config as config_module
    assert not compat.mmengine_reformats_config_text()  # ours, or OneDL's
    if hasattr(config_module, 'FormatCode'):  # upstream
        monkeypatch.setattr(config_module, 'FormatCode',
                            config_module.FormatCode.__wrapped__)
        assert compat.mmengine_reformats_config_text()  # mmengine 0.10.7
        assert not compat.config_text_uncachable()
        monkeypatch.delattr(config_module, 'FormatCode')
    assert not compat.mmengine_reformats_config_text()  # nothing to fix
    # OneDL imports FormatCode inside pretty_text: reported, not patched
    pretty_text = inspect.getsource(config_module.Config.pretty_text.fget)
    assert compat.config_text_uncachable() == ('FormatCode' in pretty_text)


def _package_with_metafile(root, names) -> str:
    """An installed-package layout: ``.mim/model-index.yml`` importing one
    metafile whose models have the configs ``configs/<name>``."""
    mim = root / '.mim'
    (mim / 'configs').mkdir(parents=True, exist_ok=True)
    (mim / 'model-index.yml').write_text(
        'Import:\n- configs/metafile.yaml\n')
    (mim / 'configs' / 'metafile.yaml').write_text('Models:\n' + ''.join(
        f'- Name: {n}\n  Config: configs/{n}\n' for n in names))
    return str(root)


def test_config_index_answers_as_mmengine(tmp_path):
    """The installed lookup gives mmengine's answers (an entry, or the same
    ValueError for a base path) on mmseg's metafiles and on a package with
    a config listed twice (the first entry wins)."""
    import mmseg
    from mmengine.config import utils
    assert utils._get_cfg_metainfo is compat.configs._cfg_metainfo_from_index
    mmengine_lookup = compat.configs._cfg_metainfo_from_index.__wrapped__
    mmseg_path = osp.dirname(mmseg.__file__)
    names = sorted(compat.config_index(mmseg_path))
    assert len(names) > 500
    toy = _package_with_metafile(tmp_path, ['a/x.py', 'a/y.py', 'a/x.py'])
    for package, name in [(mmseg_path, names[0]), (mmseg_path, names[-1]),
                          (toy, 'a/x.py'), (toy, 'a/y.py')]:
        ours = utils._get_cfg_metainfo(package, name)
        assert ours == mmengine_lookup(package, name)
        assert ours['Config'] == f'configs/{name}'
    for package in (mmseg_path, toy):
        errors = []
        for lookup in (utils._get_cfg_metainfo, mmengine_lookup):
            with pytest.raises(ValueError) as info:
                lookup(package, '_base_/datasets/ade20k')
            errors.append(str(info.value))
        assert errors[0] == errors[1]


def test_config_index_reads_metafiles_once_per_index_version(
        tmp_path, monkeypatch):
    """Loading configs with ``mmseg::`` bases reads no metafile once the
    index is built; a package whose model-index.yml changes is read
    again; an entry handed out is a copy."""
    import mmengine.fileio
    from mmengine.config import Config
    from mmengine.config import utils as config_utils
    real_load, reads = mmengine.fileio.load, []

    def counting_load(path, *args, **kwargs):
        reads.append(str(path))
        return real_load(path, *args, **kwargs)

    # both names: mmengine's own lookup reads through the one it imported
    monkeypatch.setattr(mmengine.fileio, 'load', counting_load)
    monkeypatch.setattr(config_utils, 'load', counting_load)
    config = osp.join(ROOT, 'configs', 'afformer', 'afformer_small_ade20k.py')
    Config.fromfile(config)  # the index may be built here
    reads.clear()
    cfg = Config.fromfile(config)
    assert cfg.model.backbone.type == 'mmseg_plugins.AFFormer'
    assert not [p for p in reads if p.endswith(('.yml', '.yaml'))]

    toy = _package_with_metafile(tmp_path, ['a/x.py'])
    assert sorted(compat.config_index(toy)) == ['a/x.py']
    reads.clear()
    entry = compat.configs._cfg_metainfo_from_index(toy, 'a/x.py')
    entry['Config'] = 'changed'
    assert compat.config_index(toy)['a/x.py']['Config'] == 'configs/a/x.py'
    assert reads == []
    _package_with_metafile(tmp_path, ['a/x.py', 'b/longer_name.py'])
    index_file = tmp_path / '.mim' / 'model-index.yml'
    index_file.write_text(index_file.read_text() + '# reinstalled\n')
    assert sorted(compat.config_index(toy)) == ['a/x.py', 'b/longer_name.py']
    assert len(reads) == 2  # model-index.yml and its one metafile


@pytest.mark.skipif(compat.config_text_uncachable(),
                    reason='OneDL: config_text does not apply')
def test_config_text_is_formatted_once_and_unchanged(monkeypatch):
    """A config's ``pretty_text`` asked for again (as a training run does
    for its log, dumps and checkpoints) runs yapf once and is yapf's text;
    a changed config is formatted anew; a call the cache cannot key goes
    to yapf each time."""
    from mmengine.config import Config
    from mmengine.config import config as config_module
    assert getattr(config_module.FormatCode,
                   compat.configs.FORMAT_ONCE_FLAG, False)
    yapf_format = config_module.FormatCode.__wrapped__
    sources = []

    def counting_format(source, **kwargs):
        sources.append(source)
        return yapf_format(source, **kwargs)

    once = compat.formatting_once(counting_format)
    monkeypatch.setattr(config_module, 'FormatCode', once)
    cfg = Config.fromfile(DEMO_CONFIG)
    text = cfg.pretty_text
    assert [cfg.pretty_text, cfg.pretty_text] == [text, text]
    assert len(sources) == 1
    cfg.train_cfg.max_iters = 7
    changed = cfg.pretty_text
    assert len(sources) == 2 and changed != text and 'max_iters=7' in changed
    monkeypatch.setattr(config_module, 'FormatCode', yapf_format)
    assert cfg.pretty_text == changed
    cfg.train_cfg.max_iters = Config.fromfile(DEMO_CONFIG).train_cfg.max_iters
    assert cfg.pretty_text == text
    for _ in range(2):  # a style named by file: not cached
        assert once('x  =  1\n', style_config='pep8') == \
            yapf_format('x  =  1\n', style_config='pep8')
    assert len(sources) == 4


def _strided_rgb_image():
    """What mmseg's browse_dataset.py tools draw on: an (H, W, 3) view of a
    (3, H, W) tensor, channels reversed, whose channels are planes."""
    chw = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(0))
    image = chw.permute(1, 2, 0).numpy()[..., [2, 1, 0]]
    assert not image.flags['C_CONTIGUOUS']
    return image


def test_opencv_cannot_draw_into_an_array_with_planar_channels():
    """The cause fixed by ``contiguous_draw``: ``np.zeros_like`` keeps the
    planar layout, and OpenCV refuses it as an output array."""
    import cv2
    mask = np.zeros_like(_strided_rgb_image())
    with pytest.raises(cv2.error, match='Layout of the output array'):
        cv2.rectangle(mask, (1, 1), (9, 9), (255, 0, 0), -1)
    contiguous = np.ascontiguousarray(mask)
    cv2.rectangle(contiguous, (1, 1), (9, 9), (255, 0, 0), -1)
    assert contiguous[5, 5].tolist() == [255, 0, 0]


def test_visualizer_draws_labelled_classes_on_a_strided_image():
    """mmseg's SegLocalVisualizer, as mmseg's dataset browsers call it:
    class colours where the labels are, and each class's name written in
    (anti-aliased) white on a black-framed box of its colour."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.visualization import SegLocalVisualizer

    from mmseg_plugins.demo_data import SHAPES_METAINFO
    label = torch.zeros(1, 64, 96, dtype=torch.int64)
    label[0, 4:60, 4:44] = 2  # square
    label[0, 4:60, 52:92] = 3  # triangle
    visualizer = SegLocalVisualizer(name='test_strided_labels', alpha=1.0)
    visualizer.dataset_meta = SHAPES_METAINFO
    visualizer.add_datasample(
        'strided', _strided_rgb_image(),
        SegDataSample(gt_sem_seg=PixelData(data=label)), draw_pred=False,
        with_labels=True, show=False)
    drawn = visualizer.get_image()  # alpha 1: the colour mask alone
    palette = np.array(SHAPES_METAINFO['palette'])
    assert drawn.shape == (64, 96, 3)
    for cls, (y, x) in ((0, (62, 48)), (2, (6, 6)), (3, (58, 90))):
        assert drawn[y, x].tolist() == palette[cls].tolist()
    for cls, cols in ((2, slice(4, 44)), (3, slice(52, 92))):
        region = drawn[4:60, cols].reshape(-1, 3).astype(int)
        assert (region == palette[cls]).all(axis=1).mean() > 0.5
        assert (region == 0).all(axis=1).sum() >= 10, cls  # the frame
        whiter = ((region >= palette[cls]).all(axis=1) &
                  (region > palette[cls]).any(axis=1))
        assert whiter.sum() >= 10, cls  # the text


def test_opt_out_leaves_mmengine_as_installed():
    from helpers import PYTHON, run
    code = ('import mmseg_plugins\n'
            'from mmseg_plugins import compat\n'
            'from mmengine.fileio.backends import LocalBackend\n'
            'from mmengine.runner.checkpoint import CheckpointLoader\n'
            'print(compat.applied())\n'
            "print(CheckpointLoader._get_checkpoint_loader('/x.pth')"
            '.__module__)\n'
            'print(LocalBackend.put.__module__)\n')
    proc = run([PYTHON, '-c', code],
               env={compat.OPT_OUT_ENV: 'safe_loader, atomic_put'})
    assert proc.returncode == 0, proc.stderr
    # (OneDL's mmseg prints "Could not import OneDL" on stdout first)
    applied, loader, put = proc.stdout.splitlines()[-3:]
    assert loader == 'mmengine.runner.checkpoint'
    assert put == 'mmengine.fileio.backends.local_backend'
    assert 'safe_loader' not in applied and 'atomic_put' not in applied
    assert ('mmcv_ops' in applied) == compat.mmcv_ops_fallback_needed()


@pytest.mark.skipif(not compat.mmcv_ops_fallback_needed(),
                    reason=NO_FALLBACK)
def test_opting_out_of_everything_shows_the_mmcv_lite_break():
    from helpers import PYTHON, run
    proc = run([PYTHON, '-c', 'import mmseg_plugins'],
               env={compat.OPT_OUT_ENV: 'all'})
    assert proc.returncode != 0
    assert "No module named 'mmcv._ext'" in proc.stderr


# ----------------------------------------------------------------------------
# the two stacks: upstream OpenMMLab and OneDL
# ----------------------------------------------------------------------------
def _found(*entries):
    """``installed_stack``'s answer with one distribution per module."""
    return {module: [entry] for module, entry in
            zip(('mmseg', 'mmengine', 'mmcv'), entries)}


def test_stack_is_named_by_its_distributions():
    from mmseg_plugins.compat import stack
    assert stack.check_stack(_found(
        ('OpenMMLab', 'mmsegmentation', '1.2.2'),
        ('OpenMMLab', 'mmengine', '0.10.7'),
        ('OpenMMLab', 'mmcv-lite', '2.1.0'))) == stack.UPSTREAM
    assert stack.check_stack(_found(
        ('OneDL', 'onedl-mmsegmentation', '1.4.2'),
        ('OneDL', 'onedl-mmengine', '0.10.12'),
        ('OneDL', 'onedl-mmcv', '2.3.6'))) == stack.ONEDL
    # this environment's: one stack, the one its mmseg comes from
    installed = stack.installed_stack()
    assert stack.check_stack() == installed['mmseg'][0][0]


def test_mixed_stack_is_refused_naming_both():
    from mmseg_plugins.compat import stack
    mixed = _found(('OneDL', 'onedl-mmsegmentation', '1.4.2'),
                   ('OpenMMLab', 'mmengine', '0.10.7'),
                   ('OneDL', 'onedl-mmcv', '2.3.6'))
    with pytest.raises(stack.StackError) as error:
        stack.check_stack(mixed)
    message = str(error.value)
    assert 'mixed OpenMMLab stacks' in message
    assert 'mmengine: mmengine 0.10.7 (OpenMMLab)' in message
    assert 'mmseg: onedl-mmsegmentation 1.4.2 (OneDL)' in message
    assert "mmseg_plugins[openmmlab]" in message
    assert "mmseg_plugins[onedl]" in message
    # both distributions of one module (the later overwrote the earlier)
    both = _found(('OneDL', 'onedl-mmsegmentation', '1.4.2'),
                  ('OneDL', 'onedl-mmengine', '0.10.12'),
                  ('OneDL', 'onedl-mmcv', '2.3.6'))
    both['mmcv'].append(('OpenMMLab', 'mmcv-lite', '2.1.0'))
    with pytest.raises(stack.StackError, match='onedl-mmcv 2.3.6 '
                       r'\(OneDL\) \+ mmcv-lite 2.1.0 \(OpenMMLab\)'):
        stack.check_stack(both)


def test_missing_stack_is_refused_naming_both_extras(monkeypatch):
    from mmseg_plugins.compat import stack
    monkeypatch.setattr(stack, '_find_spec', lambda name: None)
    none = {module: [] for module in stack.DISTRIBUTIONS}
    with pytest.raises(ImportError) as error:
        stack.check_stack(none)
    message = str(error.value)
    assert 'mmseg, mmengine, mmcv cannot be imported' in message
    assert "'mmseg_plugins[openmmlab]' (upstream OpenMMLab)" in message
    assert "'mmseg_plugins[onedl]' (the maintained fork OneDL)" in message
    # a source checkout without metadata is accepted
    monkeypatch.setattr(stack, '_find_spec', lambda name: object())
    assert stack.check_stack(none) is None


def test_one_debug_line_names_the_stack_and_the_fixes():
    from helpers import PYTHON, run
    from mmseg_plugins.compat import stack
    code = ('import logging\n'
            'logging.basicConfig(level=logging.DEBUG, format="%(name)s| '
            '%(message)s")\n'
            'import mmseg_plugins\n'
            'print(mmseg_plugins.compat.applied())\n')
    proc = run([PYTHON, '-c', code])
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line, ) = [ln for ln in proc.stderr.splitlines()
                if ln.startswith('mmseg_plugins.compat| ')]
    applied = eval(proc.stdout.splitlines()[-1])
    assert stack.describe_stack() in line
    assert f'applied: {", ".join(applied)};' in line
    for fix in compat.FIXES:
        assert fix.name in line
    if stack.check_stack() == stack.ONEDL:
        assert 'config_text does not apply' in line
        assert 'mmcv_ops' not in applied and 'config_text' not in applied
        assert 'config_package' in applied


def test_mmseg_bases_resolve_through_the_start_up_hook(tmp_path):
    """In a fresh interpreter (the start-up hook, no mmseg_plugins): mmengine
    maps ``mmseg`` to the distribution that is installed (OneDL's mmengine
    names ``mmsegmentation``, which the fork does not install), and an
    ``mmseg::`` base loads, as in the fork's own tools/train.py."""
    from helpers import PYTHON, run
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text("_base_ = ['mmseg::_base_/datasets/ade20k.py']\n")
    code = ('import sys, importlib.metadata as md\n'
            'from mmengine.config import Config, utils\n'
            "name = utils.PKG2PROJECT['mmseg']\n"
            'print(name, md.version(name))\n'
            f'cfg = Config.fromfile({str(cfg_file)!r})\n'
            'print(cfg.train_dataloader.dataset.type)\n'
            "print('mmseg_plugins' in sys.modules)\n")
    proc = run([PYTHON, '-c', code])
    assert proc.returncode == 0, proc.stderr[-2000:]
    distribution, dataset, plugins = proc.stdout.splitlines()[-3:]
    assert distribution.split()[0] in ('mmsegmentation',
                                       'onedl-mmsegmentation')
    assert dataset == 'ADE20KDataset'
    assert plugins == 'False'


def test_mmseg_entry_is_renamed_only_when_misnamed(monkeypatch):
    import types

    from mmseg_plugins_mmcv_ops import config_packages
    installed = {'onedl-mmsegmentation'}
    monkeypatch.setattr(config_packages, '_installed',
                        lambda name: name in installed)
    utils = types.SimpleNamespace(
        __name__='utils', MODULE2PACKAGE={'mmseg': 'mmsegmentation'})
    assert config_packages.misnamed_mmseg(utils)
    assert config_packages.name_mmseg_distribution(utils)
    assert utils.MODULE2PACKAGE == {'mmseg': 'onedl-mmsegmentation'}
    assert not config_packages.name_mmseg_distribution(utils)  # done
    # upstream: the named distribution is installed
    installed = {'mmsegmentation'}
    utils.MODULE2PACKAGE['mmseg'] = 'mmsegmentation'
    assert not config_packages.misnamed_mmseg(utils)
    # nothing provides mmseg: left for mmengine to report
    installed = set()
    assert not config_packages.misnamed_mmseg(utils)
