"""Tests of mmseg_plugins/benchmark/report.py: the CPU named in a
table's header."""
import platform

from mmseg_plugins.benchmark.report import cpu_description


def _cpuinfo(tmp_path, name, flags):
    path = tmp_path / 'cpuinfo'
    entry = f'processor\t: 0\nmodel name\t: {name}\nflags\t\t: {flags}\n'
    path.write_text(entry + entry.replace(': 0', ': 1'))
    return str(path)


def test_names_the_model_and_the_widest_vector_extension(tmp_path):
    assert cpu_description(_cpuinfo(
        tmp_path, 'AMD EPYC', 'fpu sse2 avx avx2 fma')) == 'AMD EPYC, avx2'
    assert cpu_description(_cpuinfo(
        tmp_path, 'Intel(R) Xeon(R) Platinum 8480+',
        'avx2 avx512f avx512_bf16 amx_bf16 amx_tile')) == \
        'Intel(R) Xeon(R) Platinum 8480+, amx_tile'
    assert cpu_description(_cpuinfo(
        tmp_path, 'Intel(R) Xeon(R) Gold 6248', 'avx2 avx512f')) == \
        'Intel(R) Xeon(R) Gold 6248, avx512f'
    assert cpu_description(_cpuinfo(tmp_path, 'Old', 'sse2')) == 'Old'


def test_without_cpuinfo_falls_back_to_the_platform(tmp_path):
    assert cpu_description(str(tmp_path / 'missing')) == (
        platform.processor() or platform.machine())
