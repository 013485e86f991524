"""The base of every backbone in this package.

A family is a subclass that declares its variant table and builds its
stages; :class:`StagedBackbone` owns everything else: the variant lookup and
its validation, ``out_indices``, the stochastic-depth schedule, the stage
loop, ``out_channels``, ``norm_eval``, the deprecated ``pretrained``
argument and the default initialisation. A new family needs only::

    @MODELS.register_module()
    class MyNet(StagedBackbone):
        family = 'MyNet'
        arch_table = {'small': dict(embed_dims=(...), depths=(...), ...)}
        default_arch = 'small'

        def build_stage(self, index, in_channels, drop_paths):
            return MyStage(in_channels, ...)  # with an ``out_channels``

plus :meth:`StagedBackbone.build_stem` if it has a stem.
"""
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import (constant_init, normal_init,
                                        trunc_normal_init)
from torch.nn.modules.batchnorm import _BatchNorm

from .blocks import conv_stem
from .pretrained import init_weights_strictly, set_pretrained_loader
from .validation import check_min_input_size, check_out_indices, resolve_arch

__all__ = [
    'StagedBackbone', 'ConvStemBackbone', 'init_vit_weights',
    'set_pretrained_loader'
]


def init_vit_weights(module: nn.Module) -> None:
    """The SegFormer/PVT initialisation, used by every family when no
    ``init_cfg`` is given: truncated-normal Linear (std .02), unit
    LayerNorm, fan-out normal Conv2d, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_init(m, std=.02, bias=0.)
        elif isinstance(m, nn.LayerNorm):
            constant_init(m, val=1.0, bias=0.)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            fan_out //= m.groups
            normal_init(m, mean=0, std=math.sqrt(2.0 / fan_out), bias=0)


class StagedBackbone(BaseModule):
    """A stem followed by stages, returning the outputs of ``out_indices``.

    Subclasses declare:

    * ``family`` (str): the name used in messages;
    * ``arch_table`` (dict): ``{variant: settings}``; every setting is a
      per-stage sequence and a custom ``arch`` dict must give the same keys
      as the table's first variant;
    * ``default_arch`` (str): the variant used when ``arch`` is None;
    * ``num_stages`` (int, optional): a fixed stage count, or None when the
      length of ``depths`` decides;
    * ``min_input_size`` (int): the smallest input side accepted;
    * ``channels_last`` (bool): run the forward on channels-last tensors;

    and implement :meth:`build_stage` (and :meth:`build_stem` if the family
    has a stem). Options of their own are stored on ``self`` before calling
    ``super().__init__``, which builds the network through these hooks.

    Args:
        arch (str | dict, optional): Variant name, or a dict of per-stage
            settings. Default: ``default_arch``.
        in_channels (int): Input image channels. Default: 3.
        out_indices (Sequence[int]): Stages whose outputs are returned.
            Default: (0, 1, 2, 3).
        drop_path_rate (float): Stochastic depth, increasing linearly from 0
            over all blocks (``sum(depths)``), cut into one list per stage.
            Default: 0.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
            Default: False.
        pretrained (str, optional): Deprecated; becomes
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.
        init_cfg (dict, optional): mmengine initialisation config; without
            one the official initialisation (:func:`init_vit_weights`) runs.
    """

    family: str = ''
    arch_table: Mapping[str, Dict] = {}
    default_arch: str = ''
    num_stages: Optional[int] = 4
    min_input_size: int = 32
    channels_last: bool = False

    def __init__(self,
                 arch: Union[str, dict, None] = None,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.,
                 norm_eval: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('init_cfg and pretrained cannot be set at '
                                 'the same time')
            if not isinstance(pretrained, str):
                raise TypeError('pretrained must be a str or None')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        required = list(next(iter(self.arch_table.values())))
        self.arch_settings = resolve_arch(
            self.family, self.default_arch if arch is None else arch,
            self.arch_table, required, self.num_stages)
        depths = self.arch_settings['depths']
        self.out_indices = check_out_indices(self.family, out_indices,
                                             len(depths))
        self.norm_eval = norm_eval

        self.stem, channels = self.build_stem(in_channels)
        self.stages = ModuleList()
        for i, rates in enumerate(self.drop_path_rates(drop_path_rate,
                                                       depths)):
            stage = self.build_stage(i, channels, rates)
            self.stages.append(stage)
            channels = stage.out_channels

    # ---------------------------------------------------------------- hooks
    def build_stem(self, in_channels: int) -> Tuple[nn.Module, int]:
        """The module run before the stages and its output channels.
        Default: none (identity)."""
        return nn.Identity(), in_channels

    def build_stage(self, index: int, in_channels: int,
                    drop_paths: Sequence[float]) -> nn.Module:
        """Stage ``index`` (settings in ``self.arch_settings``), taking
        ``in_channels`` channels; the module must have an ``out_channels``
        attribute. ``drop_paths`` holds the stochastic-depth rate of each
        of its ``depths[index]`` blocks."""
        raise NotImplementedError(
            f'{type(self).__name__} must implement build_stage')

    # ------------------------------------------------------------ plumbing
    @staticmethod
    def drop_path_rates(rate: float,
                        depths: Sequence[int]) -> List[List[float]]:
        """Linear stochastic depth from 0 to ``rate`` over all blocks, cut
        into one list per stage."""
        rates = torch.linspace(0, rate, sum(depths), device='cpu').tolist()
        bounds = [sum(depths[:i]) for i in range(len(depths) + 1)]
        return [rates[a:b] for a, b in zip(bounds, bounds[1:])]

    @property
    def stage_channels(self) -> List[int]:
        """Output channels of every stage."""
        return [stage.out_channels for stage in self.stages]

    @property
    def out_channels(self) -> List[int]:
        """Channels of the returned feature maps."""
        return [self.stage_channels[i] for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """(B, C, H, W) image -> the feature maps of ``out_indices``."""
        check_min_input_size(x, self.min_input_size, self.family)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)  # (B, C_i, H_i, W_i)
            if i in self.out_indices:
                outs.append(x)
        return outs

    def train(self, mode: bool = True) -> 'StagedBackbone':
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def init_weights(self) -> None:
        """The official initialisation (:func:`init_vit_weights`) or the
        ``init_cfg`` initialisers, then the weights of each
        ``dict(type='Pretrained', checkpoint=..., prefix=None,
        partial=False)`` entry (``init_cfg`` a dict or a list of dicts),
        loaded through :func:`mmseg_plugins.weights.load_pretrained`: a
        file in any known layout (official AFFormer/MPViT, NVlabs/mmseg/
        Hugging Face/smp MiT, ours) is converted in memory, and every
        parameter and buffer must come from it unless ``partial=True``
        (see :func:`~.pretrained.init_weights_strictly`)."""
        init_weights_strictly(self, init_vit_weights)


class ConvStemBackbone(StagedBackbone):
    """A :class:`StagedBackbone` with the stride-4 convolutional stem of
    AFFormer and MPViT (:func:`~.blocks.conv_stem`, to ``embed_dims[0]``
    channels) that keeps tensors channels-last end to end: mkldnn
    convolutions take them without reordering, token <-> map conversions
    become views, and the outputs stay channels-last."""

    channels_last = True

    def build_stem(self, in_channels: int) -> Tuple[nn.Module, int]:
        dim = self.arch_settings['embed_dims'][0]
        return conv_stem(in_channels, dim), dim

    def stage_width(self, index: int) -> int:
        """Output channels of stage ``index``: the stem makes
        ``embed_dims[0]`` channels and stage ``i`` widens them to
        ``embed_dims[i + 1]``; the last stage keeps ``embed_dims[-1]``."""
        dims = list(self.arch_settings['embed_dims'])
        return (dims[1:] + dims[-1:])[index]
