import os
import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


def _runs_tests(config) -> bool:
    """False in pytest-xdist's controller (``make test``'s ``-n``), which
    only hands the tests to its workers."""
    return hasattr(config, 'workerinput') or \
        not getattr(config.option, 'numprocesses', None)


def pytest_configure(config):
    """In the processes that run tests, before collection: the package
    (compatibility layer, registration), and, under pytest-xdist, each
    worker's share of the cores for its in-process torch (two workers with
    two intra-op threads each on two cores would oversubscribe them). The
    controller skips both: its seconds of imports would only delay the
    workers' start."""
    if not _runs_tests(config):
        # yapf (imported by mmengine's Config) caches its grammar tables in
        # ~/.cache/YAPF on its first import after an install, and renames
        # that file into place before it has been flushed: two workers
        # starting together in a fresh environment could read it empty
        # (EOFError). The controller writes it first (a 0.1 s import).
        import yapf  # noqa: F401
        return
    import mmseg_plugins  # noqa: F401  (compat layer, registration)
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        import torch
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


#: The longest modules (CI's log lists the slowest tests), longest first.
#: pytest-xdist hands each worker one module at a time (``--dist
#: loadscope``), in collection order (``make test`` turns off its reordering
#: by test count, which started the resume and packaging tests, few but
#: long, last): started first, they do not leave one worker busy at the end
#: while the other has nothing left.
LONGEST_FIRST = (
    'deploy/test_export.py', 'test_hooks.py', 'test_packaging.py',
    'tools/test_benchmark.py', 'tools/test_tools.py',
    'models/test_compile.py', 'deploy/test_quantize.py',
    'benchmark/test_amp.py', 'test_entry_points.py',
    'tools/test_dist_scripts.py',
)


def pytest_collection_modifyitems(config, items):
    """The modules of :data:`LONGEST_FIRST` first, in that order; the rest
    and the tests within each module in their collection order. Tests
    marked ``upstream_only`` (they assert a bug of upstream OpenMMLab that
    OneDL fixed) are skipped on OneDL."""
    if any(item.get_closest_marker('upstream_only') for item in items):
        from mmseg_plugins.compat.stack import ONEDL, check_stack
        if check_stack() == ONEDL:
            skip = pytest.mark.skip(reason='asserts an upstream OpenMMLab '
                                    'behaviour that OneDL changed')
            for item in items:
                if item.get_closest_marker('upstream_only'):
                    item.add_marker(skip)
    here = osp.dirname(osp.abspath(__file__))
    rank = {}
    for index, name in enumerate(LONGEST_FIRST):
        path = osp.join(here, name)
        assert osp.isfile(path), f'LONGEST_FIRST names a missing {path}'
        rank[path] = index
    items.sort(key=lambda item: rank.get(str(item.path), len(rank)))


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """The generated demo dataset, written once per test session."""
    from mmseg_plugins.demo_data import generate_shapes_dataset
    root = str(tmp_path_factory.mktemp('demo_shapes'))
    generate_shapes_dataset(root)
    return root


@pytest.fixture(scope='session')
def demo_checkpoint(tmp_path_factory):
    """The demo config's model (helpers.DEMO_CONFIG) with its initial
    weights, saved as an mmengine checkpoint with the demo dataset's classes
    in its meta: for the tools that load a checkpoint, without training."""
    import torch
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from helpers import DEMO_CONFIG
    from mmseg_plugins.datasets import DemoShapesDataset
    from mmseg_plugins.cli import load_config
    init_default_scope('mmseg')
    model = MODELS.build(load_config(DEMO_CONFIG).model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('demo_checkpoint') / 'demo.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': dict(DemoShapesDataset.METAINFO)}},
               path)
    return path


# The demo models of the three families (tiny variants, random weights) and
# their verified ONNX exports, built once per session (deployment and tool
# tests).
DEMO_CONFIGS = dict(
    afformer='configs/demo/afformer_tiny_shapes-128x128.py',
    segformer='configs/demo/segformer_mit-b0_shapes-128x128.py',
    mpvit='configs/demo/mpvit_tiny_upernet_shapes-128x128.py')


@pytest.fixture(scope='session')
def demo_configs():
    """``{family: absolute path of its demo config}``."""
    from helpers import ROOT
    return {k: osp.join(ROOT, v) for k, v in DEMO_CONFIGS.items()}


@pytest.fixture(scope='session')
def demo_segmentor():
    """``demo_segmentor(family) -> (cfg, model)``: the demo config's model
    in eval mode, every parameter and BatchNorm statistic random (so that
    every layer changes the logits)."""
    import mhca_reference as ref
    from helpers import ROOT
    from mmseg_plugins.builder import build_segmentor
    from mmseg_plugins.cli import load_config
    cache = {}

    def make(family):
        if family not in cache:
            cfg = load_config(osp.join(ROOT, DEMO_CONFIGS[family]))
            model, _ = build_segmentor(cfg, None, 'cpu')
            cache[family] = cfg, ref.randomise(model, seed=0, scale=0.1)
        return cache[family]

    return make


@pytest.fixture(scope='session')
def demo_export(demo_segmentor, tmp_path_factory):
    """``demo_export(family, **settings) -> (path, report)``: a verified
    export of the demo model (64x64; TorchScript exporter unless
    ``exporter='dynamo'``), made once per set of settings."""
    from mmseg_plugins.deploy import (ExportSettings, export_metadata,
                                      export_onnx)
    folder = tmp_path_factory.mktemp('exports')
    cache = {}

    def make(family, **options):
        key = (family, tuple(sorted(options.items())))
        if key not in cache:
            options = dict(dict(shape=(64, 64), exporter='torchscript'),
                           **options)
            settings = ExportSettings(**options)
            cfg, model = demo_segmentor(family)
            path = str(folder / f'{family}_{len(cache)}.onnx')
            report = export_onnx(
                model, export_metadata(cfg, model, settings, {}), path,
                settings)
            cache[key] = path, report
        return cache[key]

    return make
