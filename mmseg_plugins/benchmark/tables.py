"""The benchmark table (Markdown and CSV) and the mIoU-vs-GFLOPs plot, all
written atomically."""
import csv
import io
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..fileio import atomic_write

__all__ = [
    'COLUMNS', 'ONNXRUNTIME_COLUMNS', 'VERSUS_EAGER_COLUMNS', 'format_table',
    'write_tables', 'plot_miou_vs_flops'
]

#: (key, header) of the table columns, in order.
COLUMNS = (
    ('config', 'config'),
    ('model', 'model'),
    ('params_m', 'params (M)'),
    ('paper_params_m', 'paper params (M)'),
    ('flops_shape', 'FLOPs input'),
    ('gflops', 'GFLOPs'),
    ('paper_gflops', 'paper GFLOPs'),
    ('latency_ms', 'latency b1 (ms)'),
    ('throughput', 'throughput (img/s)'),
    ('train_ms', 'train step (ms)'),
    ('peak_infer_mb', 'peak mem infer (MiB)'),
    ('peak_train_mb', 'peak mem train (MiB)'),
    ('paper_miou', 'paper mIoU'),
)

#: The columns of ``--backend onnxruntime``: PyTorch eager beside ONNX
#: Runtime on the exported file.
ONNXRUNTIME_COLUMNS = (
    ('config', 'config'),
    ('model', 'model'),
    ('params_m', 'params (M)'),
    ('export_s', 'export (s)'),
    ('onnx_mib', 'ONNX file (MiB)'),
    ('onnx_max_diff', 'max diff ORT vs PyTorch (3 sizes)'),
    ('latency_ms', 'PyTorch latency b1 (ms)'),
    ('ort_latency_ms', 'ORT latency b1 (ms)'),
    ('ort_latency_ratio', 'ORT speed-up (latency)'),
    ('throughput', 'PyTorch throughput (img/s)'),
    ('ort_throughput', 'ORT throughput (img/s)'),
    ('ort_throughput_ratio', 'ORT speed-up (throughput)'),
)


#: The columns ``--versus-eager`` adds: the eager float32 model timed
#: beside the measured one (compiled, autocast, channels-last, ...).
VERSUS_EAGER_COLUMNS = (
    ('eager_rel_diff', 'rel. diff vs eager fp32'),
    ('eager_latency_ms', 'eager latency b1 (ms)'),
    ('latency_speedup', 'speed-up latency'),
    ('eager_throughput', 'eager throughput (img/s)'),
    ('throughput_speedup', 'speed-up throughput'),
    ('eager_train_ms', 'eager train step (ms)'),
    ('train_speedup', 'speed-up train step'),
)


def _fmt(value) -> str:
    if value is None:
        return '—'
    if isinstance(value, float):
        if 0 < abs(value) < 1e-2:  # e.g. relative differences
            return f'{value:.1e}'
        if value >= 100:
            return f'{value:.0f}'
        return f'{value:.2f}' if value < 10 else f'{value:.1f}'
    return str(value)


def format_table(rows: Sequence[Dict], columns=COLUMNS) -> str:
    """Markdown table of the rows (missing values as an em dash)."""
    head = '| ' + ' | '.join(h for _, h in columns) + ' |'
    rule = '|' + '|'.join('---' for _ in columns) + '|'
    lines = [head, rule]
    for row in rows:
        lines.append('| ' + ' | '.join(_fmt(row.get(k)) for k, _ in columns) +
                     ' |')
    return '\n'.join(lines)


def write_tables(rows: Sequence[Dict], header_lines: Sequence[str],
                 out_dir: str, stem: str = 'benchmark',
                 columns=COLUMNS) -> Tuple[str, str]:
    """Write ``<stem>.md`` (header lines + table) and ``<stem>.csv``
    atomically; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    md = osp.join(out_dir, f'{stem}.md')
    text = '\n'.join(list(header_lines) + ['', format_table(rows, columns),
                                           ''])
    atomic_write(md, lambda f: f.write(text.encode()))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([k for k, _ in columns])
    for row in rows:
        writer.writerow(['' if row.get(k) is None else row.get(k)
                         for k, _ in columns])
    path = osp.join(out_dir, f'{stem}.csv')
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))
    return md, path


def plot_miou_vs_flops(rows: Sequence[Dict], path: str,
                       title: str = '') -> Optional[str]:
    """Scatter of the papers' mIoU against our counted GFLOPs (log x), one
    colour per family; rows without a published mIoU are left out. Returns
    ``path``, or None when no row has a published mIoU."""
    points = [r for r in rows
              if r.get('paper_miou') is not None and r.get('gflops')]
    if not points:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    families: Dict[str, List[Dict]] = {}
    for r in points:
        families.setdefault(r['model'].split('-')[0], []).append(r)
    for family, rs in families.items():
        rs = sorted(rs, key=lambda r: r['gflops'])
        ax.plot([r['gflops'] for r in rs], [r['paper_miou'] for r in rs],
                marker='o', label=family)
        for r in rs:
            ax.annotate(r['model'].split('-', 1)[-1],
                        (r['gflops'], r['paper_miou']),
                        textcoords='offset points', xytext=(4, -10),
                        fontsize=8)
    ax.set_xscale('log')
    ax.set_xlabel('GFLOPs (counted by tools/benchmark.py, paper input size)')
    ax.set_ylabel('ADE20K mIoU (published, single scale)')
    ax.grid(True, which='both', alpha=.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format='png'))
    plt.close(fig)
    return path
