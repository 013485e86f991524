"""Model benchmarks: parameters, FLOPs, latency, throughput, training-step
time and peak memory, beside the papers' figures (``tools/benchmark.py``).

* :mod:`.measures`: one object per measurement and the primitives under
  them (conventions in its docstring);
* :mod:`.settings`: the options of a run and the configs it measures;
* :mod:`.run`: measuring a config's model (built by
  :mod:`mmseg_plugins.builder`) and assembling its table row;
* :mod:`.report`: the header and comparison lines of a report;
* :mod:`.amp`: the mixed-precision training check;
* :mod:`.references`: reference implementations for ``--compare``;
* :mod:`.figures`: the papers' published figures;
* :mod:`.tables`: Markdown/CSV tables and the mIoU-vs-GFLOPs plot.
"""
from .amp import (AMP_COLUMNS, AmpRun, check_amp_precisions, run_amp_check,
                  train_and_check)
from .figures import PAPER_FIGURES, PaperFigures, paper_figures
from .measures import (FlopCount, InferenceForward, InferenceTiming,
                       PeakMemory, Subject, Timing, TrainStepTiming,
                       count_flops, count_params, generic_train_step,
                       make_seg_samples, max_abs_diff, output_tensors,
                       paired_ratio, peak_memory_mb, time_models)
from .references import (build_reference, load_builder,
                         mmseg_mix_vision_transformer)
from ..builder import build_model, build_segmentor
from .report import comparison_lines, environment_lines
from .run import benchmark_config, run_benchmark
from .settings import MEASURES, BenchmarkSettings, collect_configs
from .tables import (COLUMNS, ONNXRUNTIME_COLUMNS, VERSUS_EAGER_COLUMNS,
                     format_table, plot_miou_vs_flops, write_tables)

__all__ = [
    'AMP_COLUMNS', 'AmpRun', 'check_amp_precisions', 'run_amp_check',
    'train_and_check',
    'PAPER_FIGURES', 'PaperFigures', 'paper_figures', 'FlopCount',
    'InferenceForward', 'InferenceTiming', 'PeakMemory', 'Subject', 'Timing',
    'TrainStepTiming', 'count_flops', 'count_params', 'generic_train_step',
    'make_seg_samples', 'max_abs_diff', 'output_tensors', 'paired_ratio',
    'peak_memory_mb', 'time_models', 'build_reference', 'load_builder',
    'mmseg_mix_vision_transformer', 'MEASURES', 'BenchmarkSettings',
    'benchmark_config', 'build_model', 'build_segmentor', 'collect_configs',
    'run_benchmark', 'comparison_lines', 'environment_lines', 'COLUMNS',
    'ONNXRUNTIME_COLUMNS',
    'VERSUS_EAGER_COLUMNS', 'format_table',
    'plot_miou_vs_flops', 'write_tables'
]
