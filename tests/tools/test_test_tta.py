"""tools/test.py --tta: test-time augmentation from the config's
tta_pipeline and tta_model, or one error line when the config lacks them."""
import os.path as osp

import pytest

from helpers import call
from helpers import DEMO_CONFIG, ROOT, assert_refused, demo_overrides

TEST = osp.join(ROOT, 'tools', 'test.py')


def test_tta_runs_on_the_demo_config(demo_root, demo_checkpoint, tmp_path):
    """The demo configs carry mmseg's six scales with and without flip."""
    proc = call(TEST, DEMO_CONFIG, demo_checkpoint, '--tta',
                '--work-dir', str(tmp_path), '--cfg-options',
                *demo_overrides(demo_root, 2),
                'test_dataloader.dataset.indices=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'mIoU' in proc.stdout


@pytest.mark.parametrize('bases,missing', [
    (['models/segformer_mit-b0.py', 'demo_runtime.py'], 'tta_pipeline'),
    (['models/segformer_mit-b0.py'], 'tta_pipeline and tta_model'),
])
def test_tta_without_its_config_is_refused(tmp_path, bases, missing):
    config = tmp_path / 'no_tta.py'
    paths = [osp.join(ROOT, 'configs', '_base_', b) for b in bases]
    config.write_text(f'_base_ = {paths!r}\n')
    proc = call(TEST, str(config), str(tmp_path / 'any.pth'),
                '--tta')
    assert_refused(proc, rf'--tta needs {missing} in the config .*no_tta.py')
