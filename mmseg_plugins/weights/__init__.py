"""Official weights as their authors ship them: detected, converted in
memory, loaded strictly (:mod:`.loading`), downloaded once with a hash
check (:mod:`.download`)."""
from .detect import Detected, convert_weights, read_weights
from .download import checkpoint_found, download, is_fetched, resolve
from .loading import (CLASS_LAYER_PATTERN, adapt_input_filters,
                      load_backbone_weights, load_model_weights,
                      load_part_weights, load_pretrained)

__all__ = [
    'Detected', 'convert_weights', 'read_weights', 'download', 'resolve',
    'is_fetched', 'checkpoint_found',
    'CLASS_LAYER_PATTERN', 'adapt_input_filters', 'load_backbone_weights',
    'load_model_weights', 'load_part_weights', 'load_pretrained'
]
