"""MiT, AFFormer and MPViT as timm models (and so as
segmentation_models_pytorch ``tu-`` encoders).

Importing this module (``import mmseg_plugins`` does it when timm is
installed) registers ``mit_b0`` ... ``mit_b5``, ``afformer_tiny``/``small``/
``base`` and ``mpvit_tiny``/``xsmall``/``small``/``base`` with timm; none of
these names is taken by timm itself. It imports only torch and timm (and
the package's torch-only networks and weight loader): mmseg, mmengine and
mmcv need not be installed.

The networks are the mmseg backbones themselves (:class:`TimmMiT` is
:class:`~mmseg_plugins.models.MiT` plus timm's interface), so a state dict
moves between the two unchanged; the classifier (``head``, a global average
pool and a Linear layer on the last stage, as in the official ImageNet
models of MiT and MPViT) is the only addition, and ``num_classes=0`` drops
it. timm's conventions:

* ``features_only=True`` (with ``out_indices``) through timm's
  ``FeatureGetterNet``; ``feature_info`` gives each stage's channels and
  reduction (MiT, MPViT: 4, 8, 16, 32; AFFormer: 4, 8, 8, 8, the paper's
  design, so AFFormer is not a 4..32 pyramid for smp's decoders);
* ``forward_features`` (the last stage's map), ``forward_head``,
  ``forward_intermediates``, ``prune_intermediate_layers``,
  ``reset_classifier``;
* ``in_chans`` other than 3: the pretrained RGB filters of the first
  convolution are adapted (1 channel: their sum; more: repeated and scaled
  by 3/N, timm's rule);
* ``pretrained=True`` loads ``pretrained_cfg``'s ``file`` (or its
  ``hf_hub_id``/``url``) through the package's loader: any layout it knows
  (official AFFormer, MPViT ``{'model': ...}``, NVlabs/mmseg/Hugging Face
  MiT, the package's own) is converted in memory, and every backbone
  weight must load (else :class:`~mmseg_plugins.errors.CheckpointError`).
  The official ImageNet classifier (MiT ``head.*``, MPViT ``cls_head.cls.*``)
  loads into ``head`` when its class count matches; otherwise ``head``
  keeps its initialisation, as timm does for another ``num_classes``.
"""
from typing import Callable, Dict, List, Optional, Tuple, Union

import timm
import torch
import torch.nn as nn
from timm.models import build_model_with_cfg, generate_default_cfgs
from timm.models._features import FeatureGetterNet, feature_take_indices

from .errors import CheckpointError, InvalidInputError
from .models.afformer import AFFORMER_ARCHS, AFFormer
from .models.mpvit import MPVIT_ARCHS, MPViT
from .models.segformer import MIT_ARCHS, MiT

__all__ = ['TimmBackbone', 'TimmMiT', 'TimmAFFormer', 'TimmMPViT',
           'MODEL_NAMES', 'create']

#: Keys of the official ImageNet classifiers, by family: ours <- theirs.
OFFICIAL_CLASSIFIERS = {
    'MiT': {'head.weight': 'head.weight', 'head.bias': 'head.bias'},
    'MPViT': {'head.weight': 'cls_head.cls.weight',
              'head.bias': 'cls_head.cls.bias'},
    'AFFormer': {},
}


class TimmBackbone:
    """timm's model interface on a
    :class:`~mmseg_plugins.models.StagedBackbone` (a mixin before the
    backbone class).

    Args:
        arch (str): The backbone variant.
        num_classes (int): Classifier outputs; 0: no classifier.
            Default: 1000.
        in_chans (int): Input channels. Default: 3.
        global_pool (str): ``'avg'`` or ``''`` (no pooling). Default:
            ``'avg'``.
        drop_rate (float): Dropout before the classifier. Default: 0.
        **kwargs: The backbone's own arguments (``drop_path_rate``,
            ``with_cp``, ...).
    """

    def __init__(self, arch: str, num_classes: int = 1000, in_chans: int = 3,
                 global_pool: str = 'avg', drop_rate: float = 0.,
                 **kwargs) -> None:
        super().__init__(arch=arch, in_channels=in_chans, **kwargs)
        self.num_features = self.head_hidden_size = self.stage_channels[-1]
        self.drop_rate = drop_rate
        self.head_drop = nn.Dropout(drop_rate)
        self.feature_info = [
            dict(num_chs=c, reduction=r, module=f'stages.{i}')
            for i, (c, r) in enumerate(
                zip(self.stage_channels, self.stage_reductions))
        ]
        self.reset_classifier(num_classes, global_pool)

    # ------------------------------------------------------------ classifier
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int,
                         global_pool: Optional[str] = None) -> None:
        """A new classifier of ``num_classes`` outputs (0: none), truncated
        normal weights (std .02) and zero bias."""
        if global_pool is not None:
            if global_pool not in ('avg', ''):
                raise InvalidInputError(
                    f'{self.family} global_pool={global_pool!r}: use '
                    f"'avg' or '' (no pooling)")
            self.global_pool = global_pool
        self.num_classes = num_classes
        if num_classes > 0:
            param = next(self.parameters())
            self.head = nn.Linear(self.num_features, num_classes).to(param)
            nn.init.trunc_normal_(self.head.weight, std=.02)
            nn.init.zeros_(self.head.bias)
        else:
            self.head = nn.Identity()

    # --------------------------------------------------------------- forward
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) image -> the last stage's map (B, C_3, H/r, W/r)."""
        return self.forward_stages(x, [len(self.stages) - 1])[0]

    def forward_head(self, x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = x.mean(dim=(2, 3))  # (B, C)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The stage outputs ``indices`` (timm's meaning: an int takes the
        last n) and, unless ``intermediates_only``, the final map. The
        stages have no separate final norm (``norm`` changes nothing)."""
        if output_fmt != 'NCHW':
            raise InvalidInputError(f'{self.family} output_fmt must be '
                                    f"'NCHW', got {output_fmt!r}")
        take, last = feature_take_indices(len(self.stages), indices)
        final = len(self.stages) - 1
        wanted = sorted(set(take) | ({last if stop_early else final}
                                     if not intermediates_only else set()))
        outs = dict(zip(wanted, self.forward_stages(x, wanted)))
        intermediates = [outs[i] for i in take]
        if intermediates_only:
            return intermediates
        return outs[max(wanted)], intermediates

    def prune_intermediate_layers(self,
                                  indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop the stages after the last of ``indices`` (and the
        classifier); returns the kept indices."""
        take, last = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[:last + 1]
        self.feature_info = self.feature_info[:last + 1]
        if prune_head:
            self.reset_classifier(0, '')
        return take

    # ----------------------------------------------------------- weights
    def load_timm_pretrained(self, source: str) -> None:
        """Load ``source`` (a file, ``hf://`` or ``http(s)://``) through the
        package's loader: every backbone weight strictly (converted from a
        known layout, RGB input filters adapted to ``in_chans``), the
        official classifier where it fits."""
        from .weights.loading import (_log, load_part_state_dict,
                                      read_checkpoint)
        sd, _ = read_checkpoint(source)  # read once, for both parts
        head, self.head = self.head, nn.Identity()
        try:  # the backbone's own keys, exactly
            load_part_state_dict(self, sd, source, 'backbone')
        finally:
            self.head = head
        if self.num_classes == 0:
            return
        theirs = {ours.split('.', 1)[1]: sd.get(key)
                  for ours, key in OFFICIAL_CLASSIFIERS[self.family].items()}
        fits = bool(theirs) and all(
            t is not None and t.shape == p.shape
            for (k, t), p in zip(theirs.items(), (self.head.weight,
                                                  self.head.bias)))
        if fits:
            self.head.load_state_dict(theirs)
        else:
            _log(f'{self.family}: {source} has no {self.num_classes}-class '
                 'classifier; head keeps its initialisation')


class TimmMiT(TimmBackbone, MiT):
    """:class:`~mmseg_plugins.models.MiT` as a timm model."""


class TimmAFFormer(TimmBackbone, AFFormer):
    """:class:`~mmseg_plugins.models.AFFormer` as a timm model."""


class TimmMPViT(TimmBackbone, MPViT):
    """:class:`~mmseg_plugins.models.MPViT` as a timm model."""


#: timm name -> (class, variant)
MODEL_NAMES: Dict[str, Tuple[type, str]] = {
    **{f'mit_{v}': (TimmMiT, v) for v in MIT_ARCHS},
    **{f'afformer_{v}': (TimmAFFormer, v) for v in AFFORMER_ARCHS},
    **{f'mpvit_{v}': (TimmMPViT, v) for v in MPVIT_ARCHS},
}

#: Where the official ImageNet weights are published: the authors'
#: repository and file name; MiT's are public on the Hugging Face hub.
OFFICIAL_FILES = {
    **{f'mit_{v}': ('https://github.com/NVlabs/SegFormer', f'mit_{v}.pth',
                    f'nvidia/mit-{v}') for v in MIT_ARCHS},
    **{f'afformer_{v}': ('https://github.com/dongbo811/AFFormer',
                         f'AFFormer_{v}_ImageNet1k.pth', None)
       for v in AFFORMER_ARCHS},
    **{f'mpvit_{v}': ('https://github.com/youngwanLEE/MPViT',
                      f'mpvit_{v}.pth', None) for v in MPVIT_ARCHS},
}


def _cfg(name: str) -> dict:
    cls, _ = MODEL_NAMES[name]
    origin, file_name, hub_id = OFFICIAL_FILES[name]
    return dict(
        hf_hub_id=hub_id, origin_url=origin,
        notes=(f'official ImageNet weights: {file_name} (any layout the '
               'package loader knows; pretrained_cfg_overlay=dict(file=...))',
               ),
        num_classes=0 if cls is TimmAFFormer else 1000,
        input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.9,
        interpolation='bicubic', mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225), first_conv='stem.0.conv'
        if cls is not TimmMiT else 'stages.0.patch_embed.proj',
        classifier='head')


def create(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build the timm model ``name`` (what ``timm.create_model`` calls).

    Raises:
        InvalidInputError: an unknown name or ``out_indices`` out of range.
        CheckpointError: ``pretrained`` weights that do not fit.
    """
    if name not in MODEL_NAMES:
        raise InvalidInputError(f'unknown model {name!r}; these are '
                                f'provided: {", ".join(MODEL_NAMES)}')
    cls, variant = MODEL_NAMES[name]
    features_only = kwargs.pop('features_only', False)
    out_indices = kwargs.pop('out_indices', (0, 1, 2, 3))
    kwargs.pop('feature_cls', None)
    indices = [out_indices] if isinstance(out_indices, int) else \
        list(out_indices)
    if features_only and (not indices or not all(
            isinstance(i, int) and -4 <= i < 4 for i in indices)):
        raise InvalidInputError(
            f'{name}: out_indices={out_indices!r}; the model has 4 stages, '
            f'use indices in 0..3 (or -4..-1)')
    model = build_model_with_cfg(cls, name, pretrained=False, arch=variant,
                                 **kwargs)
    if pretrained:
        model.load_timm_pretrained(_pretrained_source(name,
                                                      model.pretrained_cfg))
    if not features_only:
        return model
    features = FeatureGetterNet(model, tuple(i % 4 for i in indices))
    features.pretrained_cfg = features.default_cfg = model.pretrained_cfg
    return features


def _pretrained_source(name: str, cfg: dict) -> str:
    """The file of ``pretrained_cfg``: ``file``, else ``hf_hub_id`` (an
    ``hf://`` reference), else ``url``."""
    if cfg.get('file'):
        return cfg['file']
    if cfg.get('hf_hub_id'):
        return f'hf://{cfg["hf_hub_id"]}'
    if cfg.get('url'):
        return cfg['url']
    origin, file_name, _ = OFFICIAL_FILES[name]
    raise CheckpointError(
        f'{name}: no public copy of the official weights ({file_name}); '
        f'download it from {origin} and pass '
        f'pretrained_cfg_overlay=dict(file=PATH)')


def _entry_point(name: str) -> Callable[..., nn.Module]:
    def build(pretrained: bool = False, **kwargs) -> nn.Module:
        return create(name, pretrained, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = f'{name} (mmseg_plugins), see :func:`create`.'
    return build


#: The pretrained configurations timm reads from this module when the
#: entry points below are registered.
default_cfgs = generate_default_cfgs(
    {f'{n}.official': _cfg(n) for n in MODEL_NAMES})


def _register() -> None:
    """Register every name with timm, once (a re-import finds them)."""
    if set(MODEL_NAMES) <= set(timm.list_models()):
        return
    for name in MODEL_NAMES:
        fn = _entry_point(name)
        globals()[name] = fn
        timm.models.register_model(fn)


_register()
