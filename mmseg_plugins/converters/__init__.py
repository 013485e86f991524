"""Checkpoint conversion: declarative key-mapping rules (``rules``) and the
per-family rule tables."""
from .rules import (ConversionError, ConversionReport, Drop, Rename, Split,
                    convert_state_dict)

__all__ = [
    'ConversionError', 'ConversionReport', 'Drop', 'Rename', 'Split',
    'convert_state_dict'
]
