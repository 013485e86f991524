"""model-index.yml and configs/*/metafile.yaml (what ``mim search`` lists):
every config once, figures equal to the benchmark table and the published
ones, conversion commands that exist."""
import csv
import glob
import os.path as osp
import re

import pytest
import yaml

from helpers import ROOT
from mmseg_plugins.benchmark import PAPER_FIGURES

FAMILIES = ('segformer', 'afformer', 'mpvit')


def _metafile(family: str) -> dict:
    with open(osp.join(ROOT, 'configs', family, 'metafile.yaml')) as f:
        return yaml.safe_load(f)


def _benchmark_rows() -> dict:
    with open(osp.join(ROOT, 'docs', 'benchmarks', 'cpu',
                       'benchmark.csv')) as f:
        return {row['config']: row for row in csv.DictReader(f)}


def test_model_index_imports_one_metafile_per_family():
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    assert sorted(index['Import']) == sorted(
        f'configs/{family}/metafile.yaml' for family in FAMILIES)


@pytest.mark.parametrize('family', FAMILIES)
def test_every_config_is_listed_once_with_its_path(family):
    models = _metafile(family)['Models']
    configs = sorted(
        osp.relpath(p, ROOT)
        for p in glob.glob(osp.join(ROOT, 'configs', family, '*.py')))
    assert sorted(m['Config'] for m in models) == configs
    for model in models:
        assert model['Config'] == f'configs/{family}/{model["Name"]}.py'


@pytest.mark.parametrize('family', FAMILIES)
def test_collection_names_paper_license_and_weight_conversion(family):
    (collection, ) = _metafile(family)['Collections']
    assert collection['License'] == 'Apache License 2.0'
    assert re.fullmatch(r'https://arxiv\.org/abs/\d{4}\.\d{5}',
                        collection['Paper']['URL'])
    assert collection['Paper']['Title']
    converter = re.search(r'python (tools/model_converters/\S+\.py) SRC DST',
                          collection['Metadata']['Weights Conversion'])
    assert osp.isfile(osp.join(ROOT, converter.group(1)))
    assert {m['In Collection'] for m in _metafile(family)['Models']} == \
        {collection['Name']}


@pytest.mark.parametrize('family', FAMILIES)
def test_figures_equal_the_benchmark_table_and_the_papers(family):
    rows = _benchmark_rows()
    for model in _metafile(family)['Models']:
        meta, row = model['Metadata'], rows.get(model['Name'])
        if row is None:
            assert 'Parameters' not in meta and 'FLOPs' not in meta
        else:
            assert meta['Parameters'] == round(float(row['params_m']) * 1e6)
            assert meta['FLOPs'] == round(float(row['gflops']) * 1e9)
            assert meta['FLOPs Input'] == row['flops_shape']
        paper = PAPER_FIGURES.get(model['Name'])
        if 'Results' not in model:
            assert paper is None or paper.miou is None, model['Name']
            continue
        miou = model['Results']['Metrics']['mIoU']
        assert meta['mIoU Source'].startswith('published')
        if paper is not None:
            assert miou == paper.miou
        else:  # AFFormer-base on Cityscapes, from the paper's abstract
            with open(osp.join(ROOT, 'docs',
                               'official_implementations.md')) as f:
                assert f'{model["Results"]["Dataset"]} {miou} mIoU' in \
                    f.read()
