"""Each tool script once as a user runs it (``python tools/X.py ARGS``:
``__main__``, its own arguments, ``sys.path[0]`` and working directory),
all in one fresh interpreter (``run_scripts.py``; a fresh interpreter per
tool would spend seconds on the same imports 16 times): its ``__main__``
block reaches ``run_tool``, which turns bad input into one ``error:`` line
on stderr and exit code 2. Everything else about the tools is tested
in-process (``helpers.call``)."""
import os
import os.path as osp

import pytest

from helpers import ROOT, assert_refused
from run_scripts import run_steps

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


@pytest.fixture(scope='module')
def refusals(tmp_path_factory):
    """``{tool: (CompletedProcess, its working directory)}``: every tool
    run once, each in an empty folder of its own."""
    root = tmp_path_factory.mktemp('smoke')
    steps = []
    for index, tool in enumerate(sorted(TOOLS)):
        cwd = root / f'tool{index}'
        cwd.mkdir()
        steps.append(dict(name=tool, cwd=str(cwd), argv=[
            osp.join(ROOT, 'tools', tool), *TOOLS[tool][0]]))
    found = run_steps(steps, root)
    return {step['name']: (found[step['name']], step['cwd'])
            for step in steps}


@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_tool_refuses_a_missing_file_as_a_script(tool, refusals):
    proc, cwd = refusals[tool]
    assert_refused(proc, TOOLS[tool][1])
    assert os.listdir(cwd) == []  # nothing written
