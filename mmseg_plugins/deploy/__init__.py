"""Deployment: ONNX export verified with ONNX Runtime (:mod:`.export`),
the ONNX Runtime runner (:mod:`.onnx_runtime`), int8 quantization
(:mod:`.quantize`) and mIoU of an ONNX model (:mod:`.evaluate`).

Needs the ``deploy`` extra: ``pip install 'mmseg_plugins[deploy]'`` (onnx,
onnxruntime, onnxscript).
"""
from .export import (ExportableSegmentor, ExportReport, ExportSettings,
                     export_metadata, export_onnx, replace_adaptive_pools)
from .metadata import ExportMetadata
from .onnx_runtime import OnnxSegmentor

__all__ = [
    'ExportSettings', 'ExportableSegmentor', 'ExportReport',
    'export_metadata', 'export_onnx', 'replace_adaptive_pools',
    'ExportMetadata', 'OnnxSegmentor'
]
