import os.path as osp
import sys
import warnings

import pytest

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
warnings.filterwarnings('ignore', category=UserWarning)

import mmseg_plugins  # noqa: E402,F401  (compat layer, registration)


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
    from mmseg_plugins.tools import load_config
    init_default_scope('mmseg')
    model = MODELS.build(load_config(DEMO_CONFIG).model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('demo_checkpoint') / 'demo.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': dict(DemoShapesDataset.METAINFO)}},
               path)
    return path
