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
