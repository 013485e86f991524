"""Command-line support (mmseg_plugins/cli.py): what ``run_tool`` reports
as bad input, and what it leaves as a bug with its traceback."""
import os

import pytest

from mmseg_plugins.cli import run_tool
from mmseg_plugins.config import load_config
from mmseg_plugins.errors import ConfigError, InvalidInputError


def _raising(err):
    def main(argv=None):
        raise err
    return main


@pytest.mark.parametrize('err', [
    InvalidInputError('--tile must be at least 32'),
    FileNotFoundError('no/such/file.png'),
])
def test_bad_input_is_one_error_line_and_exit_2(err, capsys, monkeypatch):
    monkeypatch.delenv('MMSEG_PLUGINS_DEBUG', raising=False)
    with pytest.raises(SystemExit) as caught:
        run_tool(_raising(err), [])
    assert caught.value.code == 2
    assert capsys.readouterr().err == f'error: {err}\n'


@pytest.mark.parametrize('err', [
    TypeError("f() got an unexpected keyword argument 'x'"),
    ValueError('a bug, not bad input'), KeyError('state_dict'),
])
def test_a_bug_in_a_tool_keeps_its_traceback(err, capsys, monkeypatch):
    monkeypatch.delenv('MMSEG_PLUGINS_DEBUG', raising=False)
    with pytest.raises(type(err)) as caught:
        run_tool(_raising(err), [])
    assert caught.value is err
    assert 'error:' not in capsys.readouterr().err


def test_debug_variable_gives_the_traceback_of_bad_input(monkeypatch):
    monkeypatch.setenv('MMSEG_PLUGINS_DEBUG', '1')
    with pytest.raises(InvalidInputError):
        run_tool(_raising(InvalidInputError('x')), [])


@pytest.mark.parametrize('text, what', [
    ('model = dict(\n', 'SyntaxError'),
    ('model = dict(type=undefined_name)\n', 'NameError'),
])
def test_a_broken_config_file_is_a_config_error(tmp_path, text, what):
    path = tmp_path / 'broken.py'
    path.write_text(text)
    with pytest.raises(ConfigError, match=f'cannot read config .*{what}'):
        load_config(str(path))


def test_cfg_options_that_do_not_fit_are_a_config_error(tmp_path):
    path = tmp_path / 'c.py'
    path.write_text('model = dict(type="X", backbone=[1, 2])\n')
    with pytest.raises(ConfigError, match='--cfg-options do not fit'):
        load_config(str(path), {'model.backbone.depth': 3})
    assert os.path.isfile(path)
