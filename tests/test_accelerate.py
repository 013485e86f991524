"""Tests of mmseg_plugins/accelerate.py: options the machine cannot honour
are refused before any work."""
import pytest
import torch

from mmseg_plugins import accelerate
from mmseg_plugins.errors import MMSegPluginsError as Refused


def test_device_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert accelerate.resolve_device('auto') == 'cpu'
    with pytest.raises(Refused, match='no CUDA device is available'):
        accelerate.resolve_device('cuda:1')
    with pytest.raises(Refused, match="unknown device 'tpu'"):
        accelerate.resolve_device('tpu')


def test_precision_checks(monkeypatch):
    accelerate.check_precision('fp32', 'cpu')
    with pytest.raises(Refused, match=r'fp16 \(autocast\) needs a CUDA'):
        accelerate.check_precision('fp16', 'cpu')
    monkeypatch.setattr(accelerate, '_cpu_supports_bf16', lambda: False)
    with pytest.raises(Refused, match='this CPU has no bfloat16'):
        accelerate.check_precision('bf16', 'cpu')
    monkeypatch.setattr(accelerate, '_cpu_supports_bf16', lambda: True)
    accelerate.check_precision('bf16', 'cpu')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: False)
    with pytest.raises(Refused, match='this GPU has no bfloat16'):
        accelerate.check_precision('bf16', 'cuda')
    with pytest.raises(Refused, match="unknown precision 'int4'"):
        accelerate.check_precision('int4', 'cpu')


def test_compile_checks(monkeypatch):
    with pytest.raises(Refused, match="unknown torch.compile backend"):
        accelerate.check_compile('default', 'no_such_backend', 'cpu')
    with pytest.raises(Refused, match='needs a CUDA device'):
        accelerate.check_compile('reduce-overhead', 'aot_eager', 'cpu')
    with pytest.raises(Refused, match="unknown compile mode 'fast'"):
        accelerate.check_compile('fast', 'aot_eager', 'cpu')
    monkeypatch.setattr(accelerate.shutil, 'which', lambda name: None)
    with pytest.raises(Refused, match='needs a C\\+\\+ compiler'):
        accelerate.check_compile('default', 'inductor', 'cpu')


def test_a_broken_backend_is_refused_before_any_work(monkeypatch):
    import torch._dynamo

    def broken(gm, example_inputs):
        raise RuntimeError('the toolchain is broken')

    registry = torch._dynamo.backends.registry
    monkeypatch.setitem(registry._BACKENDS, 'broken_for_test', None)
    monkeypatch.setitem(registry._COMPILER_FNS, 'broken_for_test', broken)
    with pytest.raises(Refused, match="'broken_for_test' does not work on "
                       'cpu: .*the toolchain is broken'):
        accelerate.check_compile('default', 'broken_for_test', 'cpu')


def test_compile_in_place_keeps_state_dict_keys():
    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    keys = list(module.state_dict())
    accelerate.compile_in_place(module, 'default', 'aot_eager', 'cpu')
    assert list(module.state_dict()) == keys
    x = torch.randn(4, 3)
    torch.testing.assert_close(module(x), module[0](x))


def test_compile_option_becomes_the_compile_hook(monkeypatch):
    from mmengine.config import Config
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(custom_hooks=[dict(type='X')]))
    assert not accelerate.compile_networks(cfg)
    assert cfg.custom_hooks == [dict(type='X')]
    cfg = Config(dict(compile=dict(backend='aot_eager'),
                      custom_hooks=[dict(type='X')]))
    assert accelerate.compile_networks(cfg)
    assert 'compile' not in cfg
    assert cfg.custom_hooks == [dict(type='X'), dict(
        type='mmseg_plugins.CompileHook', mode=None, backend='aot_eager')]
    cfg = Config(dict(compile=dict(backend='no_such_backend')))
    with pytest.raises(Refused, match='unknown torch.compile backend'):
        accelerate.compile_networks(cfg)
    assert 'custom_hooks' not in cfg
