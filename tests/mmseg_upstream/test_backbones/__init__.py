# Copied unchanged (but for this header) from MMSegmentation v1.2.2,
# tests/test_models/test_backbones/__init__.py
# (the mmsegmentation-1.2.2 sdist on PyPI; github.com/open-mmlab/
# mmsegmentation, tag v1.2.2). Copyright (c) OpenMMLab; Apache License 2.0
# (www.apache.org/licenses/LICENSE-2.0). Run with mmseg_plugins imported.
# Copyright (c) OpenMMLab. All rights reserved.
