"""Fixtures of the own-data tests."""
import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from own_data_helpers import make_dataset  # noqa: E402


@pytest.fixture
def dataset_factory(tmp_path):
    def factory(**kwargs):
        root = tmp_path / f'data_{len(list(tmp_path.iterdir()))}'
        make_dataset(str(root), **kwargs)
        return str(root)
    return factory
