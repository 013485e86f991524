"""Each tool script once in a fresh interpreter, as a user runs it: its
``__main__`` block reaches ``run_tool``, which turns bad input into one
``error:`` line and exit code 2. Everything else about the tools is tested
in-process (``helpers.call``)."""
import os.path as osp

import pytest

from helpers import PYTHON, ROOT, assert_refused, run

MISSING = 'no/such/file.py'
#: tool -> (arguments naming a missing file, what the error line says)
TOOLS = {
    'train.py': ([MISSING], 'config file not found'),
    'test.py': ([MISSING, 'x.pth'], 'config file not found'),
    'demo.py': (['--config', MISSING], 'config file not found'),
    'inference.py': ([MISSING, 'x.pth', 'in.png', '--out-dir', 'o'],
                     'no images to label: in.png: no such file'),
    'benchmark.py': ([MISSING], 'config file not found'),
    'analysis_tools/check_amp.py': ([MISSING], 'config file not found'),
    'analysis_tools/get_flops.py': ([MISSING], 'config file not found'),
    'analysis_tools/confusion_matrix.py': ([MISSING, 'x.pth', '--out', 'o'],
                                           'checkpoint not found'),
    'analysis_tools/plot_training.py': (['no/such/folder', '--out', 'c.png'],
                                        'no such file or folder'),
    'prepare_dataset.py': (['no/such/folder', '--model', 'afformer_tiny',
                            '--out', 'o'], 'is not a folder'),
    'deployment/pytorch2onnx.py': ([MISSING, 'x.pth', 'o.onnx'],
                                   'config file not found'),
    'deployment/quantize_onnx.py': ([MISSING, 'x.onnx', 'o.onnx'],
                                    'config file not found'),
    'model_converters/afformer2mmseg.py': (['x.pth', 'o.pth'],
                                           'checkpoint not found'),
    'model_converters/mpvit2mmseg.py': (['x.pth', 'o.pth'],
                                        'checkpoint not found'),
    'model_converters/segformer2mmseg.py': (['x.pth', 'o.pth'],
                                            'checkpoint not found'),
    'model_converters/segformer2hf.py': (['x.pth', 'o'],
                                         'checkpoint not found'),
}


@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_tool_refuses_a_missing_file_in_a_fresh_interpreter(tool, tmp_path):
    argv, pattern = TOOLS[tool]
    proc = run([PYTHON, osp.join(ROOT, 'tools', tool), *argv],
               cwd=str(tmp_path))
    assert_refused(proc, pattern)
    assert list(tmp_path.iterdir()) == []  # nothing written
