"""The base of every backbone in this package.

A family is a subclass that declares its variant table and builds its
stages; :class:`StagedBackbone` owns everything else: the variant lookup and
its validation, ``out_indices``, the stochastic-depth schedule, the stage
loop, ``out_channels``, ``norm_eval``, ``frozen_stages``, gradient
checkpointing (``with_cp``), the deprecated ``pretrained`` argument and the
default initialisation. A new family needs only::

    @MODELS.register_module()
    class MyNet(StagedBackbone):
        family = 'MyNet'
        arch_table = {'small': dict(embed_dims=(...), depths=(...), ...)}
        default_arch = 'small'

        def build_stage(self, index, in_channels, drop_paths):
            return MyStage(in_channels, ...)  # with an ``out_channels``

plus :meth:`StagedBackbone.build_stem` if it has a stem.

The backbones are plain ``torch.nn`` modules: they import only torch, and
give mmengine's ``BaseModule`` interface (``init_cfg``, ``init_weights``,
``is_init``) themselves, so that mmseg's models initialise them as their
own children while timm (:mod:`mmseg_plugins.timm`) builds them without
mmseg, mmengine or mmcv installed.
"""
import contextlib
import copy
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import InvalidInputError
from .blocks import conv_stem
from .pretrained import init_weights_strictly
from .validation import (check_frozen_stages, check_min_input_size,
                         check_out_indices, conflict, resolve_arch,
                         stage_arguments)

__all__ = ['StagedBackbone', 'ConvStemBackbone', 'init_vit_weights']


def init_vit_weights(module: nn.Module) -> None:
    """The SegFormer/PVT initialisation, used by every family when no
    ``init_cfg`` is given: truncated-normal Linear (std .02), unit
    LayerNorm, fan-out normal Conv2d, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
        elif isinstance(m, nn.LayerNorm):
            if m.weight is not None:
                nn.init.ones_(m.weight)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            fan_out //= m.groups
            nn.init.normal_(m.weight, mean=0, std=math.sqrt(2.0 / fan_out))
        else:
            continue
        if getattr(m, 'bias', None) is not None:
            nn.init.zeros_(m.bias)


class StagedBackbone(nn.Module):
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
        with_cp (bool): Gradient checkpointing (``torch.utils.checkpoint``,
            non-reentrant): activations inside each checkpointed unit (a
            stage here; :attr:`checkpoint_stages` False leaves it to the
            family, MiT: each block) are recomputed in backward instead of
            kept. Outputs and gradients are unchanged, and so are the
            BatchNorm running statistics (the recomputation does not update
            them twice). Default: False.
        frozen_stages (int): mmseg's meaning: the stem (:meth:`stem_modules`)
            and the first ``frozen_stages`` stages stay in eval mode with
            ``requires_grad=False``, re-applied by every ``train()``; 0
            freezes the stem only, -1 nothing. Default: -1.
    """

    family: str = ''
    arch_table: Mapping[str, Dict] = {}
    default_arch: str = ''
    num_stages: Optional[int] = 4
    min_input_size: int = 32
    channels_last: bool = False
    #: ``with_cp`` checkpoints each stage call; False when the family
    #: checkpoints finer units itself.
    checkpoint_stages: bool = True

    def __init__(self,
                 arch: Union[str, dict, None] = None,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.,
                 norm_eval: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 frozen_stages: int = -1) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise conflict(self.family, 'pretrained', pretrained,
                               'init_cfg', init_cfg,
                               'give one; pretrained is deprecated')
            if not isinstance(pretrained, str):
                raise TypeError('pretrained must be a str or None')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__()
        self.init_cfg = copy.deepcopy(init_cfg)
        self._is_init = False
        required = list(next(iter(self.arch_table.values())))
        self.arch_settings = resolve_arch(
            self.family, self.default_arch if arch is None else arch,
            self.arch_table, required, self.num_stages)
        depths = self.arch_settings['depths']
        self.out_indices = check_out_indices(self.family, out_indices,
                                             len(depths))
        self.norm_eval = norm_eval

        self.stem, channels = self.build_stem(in_channels)
        self.stages = nn.ModuleList()
        for i, rates in enumerate(self.drop_path_rates(drop_path_rate,
                                                       depths)):
            stage = self.build_stage(i, channels, rates)
            self.stages.append(stage)
            channels = stage.out_channels
        self.with_cp = bool(with_cp)
        self.frozen_stages = check_frozen_stages(self.family, frozen_stages,
                                                 len(self.stages))
        self.freeze()

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

    def stem_modules(self) -> List[nn.Module]:
        """What ``frozen_stages=0`` freezes: the stem (MiT, which has none,
        freezes its first patch embedding)."""
        return [self.stem]

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

    #: Stride of the stem (1: no stem).
    stem_stride: int = 1

    def stage_stride(self, index: int) -> int:
        """How much stage ``index`` downsamples its input."""
        raise NotImplementedError(
            f'{type(self).__name__} must implement stage_stride')

    @property
    def stage_reductions(self) -> List[int]:
        """Total stride of every stage's output (MiT, MPViT: 4, 8, 16,
        32; AFFormer: 4, 8, 8, 8)."""
        reductions, total = [], self.stem_stride
        for i in range(len(self.stages)):
            total *= self.stage_stride(i)
            reductions.append(total)
        return reductions

    def forward_stages(self, x: torch.Tensor,
                       indices: Sequence[int]) -> List[torch.Tensor]:
        """(B, C, H, W) image -> the outputs of the stages ``indices``
        (sorted), running the stages up to the last of them."""
        check_min_input_size(x, self.min_input_size, self.family)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages[:max(indices) + 1]):
            x = self.run_stage(stage, x)  # (B, C_i, H_i, W_i)
            if i in indices:
                outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """(B, C, H, W) image -> the feature maps of ``out_indices``."""
        return self.forward_stages(x, self.out_indices)

    def run_stage(self, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``stage(x)``, checkpointed with ``with_cp`` while autograd
        records (non-reentrant; the BatchNorm statistics of the
        recomputation are put back: see :func:`keep_norm_statistics`)."""
        if self.with_cp and self.checkpoint_stages and \
                torch.is_grad_enabled() and not torch.jit.is_tracing():
            return cp.checkpoint(
                stage,
                x,
                use_reentrant=False,
                context_fn=lambda: (contextlib.nullcontext(),
                                    keep_norm_statistics(stage)))
        return stage(x)

    def frozen_modules(self) -> List[nn.Module]:
        """The modules ``frozen_stages`` freezes."""
        if self.frozen_stages < 0:
            return []
        return self.stem_modules() + list(self.stages[:self.frozen_stages])

    def freeze(self) -> None:
        """Put the :meth:`frozen_modules` in eval mode without gradients."""
        for module in self.frozen_modules():
            module.eval()
            for p in module.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'StagedBackbone':
        super().train(mode)
        self.freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    @property
    def is_init(self) -> bool:
        """Whether :meth:`init_weights` has run (mmengine's attribute)."""
        return self._is_init

    @is_init.setter
    def is_init(self, value: bool) -> None:
        self._is_init = value

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


@contextlib.contextmanager
def keep_norm_statistics(module: nn.Module):
    """Restore the running statistics of ``module``'s training BatchNorm
    layers on exit: the recomputation of a checkpointed forward would
    otherwise update them a second time."""
    norms = [
        m for m in module.modules() if isinstance(m, _BatchNorm) and
        m.training and m.track_running_stats
    ]
    saved = [[b.clone() for b in m.buffers(recurse=False)] for m in norms]
    try:  # the recomputation may stop early, with an exception
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(norms, saved):
                for b, old in zip(m.buffers(recurse=False), buffers):
                    b.copy_(old)


#: The ``norm_cfg`` types of the BatchNorm families and their classes.
BATCH_NORMS = {'BN': nn.BatchNorm2d, 'SyncBN': nn.SyncBatchNorm}


class ConvStemBackbone(StagedBackbone):
    """A :class:`StagedBackbone` with the stride-4 convolutional stem of
    AFFormer and MPViT (:func:`~.blocks.conv_stem`, to ``embed_dims[0]``
    channels) that keeps tensors channels-last end to end: mkldnn
    convolutions take them without reordering, token <-> map conversions
    become views, and the outputs stay channels-last."""

    channels_last = True
    stem_stride = 4

    def build_stem(self, in_channels: int) -> Tuple[nn.Module, int]:
        dim = self.arch_settings['embed_dims'][0]
        return conv_stem(in_channels, dim), dim

    #: The official constructor's defaults of its per-stage arguments, as
    #: ``arch`` keys (used when those arguments define the network).
    official_defaults: Mapping[str, Sequence] = {}

    @classmethod
    def official_arch(cls, arch: Union[str, dict, None],
                      num_stages: Optional[int],
                      **given: Tuple[str, Optional[Sequence]]
                      ) -> Union[str, dict]:
        """The ``arch`` to build from ``arch`` and the official
        constructor's per-stage arguments ``given`` as ``{name: (arch key,
        value or None)}`` (see :func:`~.validation.stage_arguments`);
        ``num_stages``, if given, must be the family's."""
        if num_stages is not None and num_stages != cls.num_stages:
            raise InvalidInputError(
                f'{cls.family} num_stages={num_stages!r}: the network has '
                f'{cls.num_stages} stages')
        arch, _ = stage_arguments(cls.family, arch, cls.arch_table,
                                  cls.default_arch, given,
                                  cls.official_defaults)
        return arch

    def apply_norm_cfg(self, norm_cfg: Optional[dict]) -> None:
        """Give every BatchNorm layer the settings of mmcv's ``norm_cfg``
        (what the official MPViT builds with ``build_norm_layer``):
        ``type`` 'BN' or 'SyncBN' (``nn.SyncBatchNorm``; same parameters
        and state-dict keys), ``eps``, ``momentum`` and ``requires_grad``.
        The LayerNorms of the transformer blocks do not follow it (nor do
        they in the official code)."""
        if norm_cfg is None:
            return
        if not isinstance(norm_cfg, dict) or \
                norm_cfg.get('type') not in BATCH_NORMS:
            raise InvalidInputError(
                f'{self.family} norm_cfg={norm_cfg!r}: the network\'s norms '
                f'are BatchNorm; type must be one of {list(BATCH_NORMS)}')
        unknown = set(norm_cfg) - {'type', 'eps', 'momentum', 'requires_grad'}
        if unknown:
            raise InvalidInputError(
                f'{self.family} norm_cfg keys {sorted(unknown)} are not '
                f'supported (type, eps, momentum, requires_grad are)')
        norms = [m for m in self.modules() if isinstance(m, _BatchNorm)]
        for m in norms:
            m.eps = norm_cfg.get('eps', m.eps)
            m.momentum = norm_cfg.get('momentum', m.momentum)
            for p in m.parameters():
                p.requires_grad = bool(norm_cfg.get('requires_grad', True))
        if norm_cfg['type'] == 'SyncBN':  # replaces the children in place
            nn.SyncBatchNorm.convert_sync_batchnorm(self)

    def stage_width(self, index: int) -> int:
        """Output channels of stage ``index``: the stem makes
        ``embed_dims[0]`` channels and stage ``i`` widens them to
        ``embed_dims[i + 1]``; the last stage keeps ``embed_dims[-1]``."""
        dims = list(self.arch_settings['embed_dims'])
        return (dims[1:] + dims[-1:])[index]
