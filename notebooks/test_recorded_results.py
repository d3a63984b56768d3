"""Checks run by ``make test`` after nbval has rerun the notebooks on the demo profile
(it collects this file after the ``NN_*.ipynb`` notebooks): what training produced must be
within the stated tolerances of the recorded run, and the study's claim must hold.
See :mod:`dario_utils.runner.recorded`."""
from __future__ import annotations

import pytest

from dario_utils.core import paths, result_files
from dario_utils.core.config import Config, load_config
from dario_utils.evaluation import tables
from dario_utils.runner import recorded


@pytest.fixture(scope="module")
def demo() -> Config:
    """The demo's config under the output root nbval's notebooks wrote to (``make notebook-tests``)."""
    return load_config("demo", output_root=paths.output_root_from_env())


def test_trained_results_are_within_tolerance_of_the_recorded_run(demo: Config):
    frame = recorded.compare(demo.layout)
    assert frame["ok"].all(), "outside tolerance:\n" + frame[~frame["ok"]].to_string()


def test_every_trained_row_beats_the_untrained_start(demo: Config):
    frame = recorded.trained_margins(demo.layout)
    assert frame["ok"].all(), "trained rows that do not beat the untrained start:\n" + frame[~frame["ok"]].to_string()


def test_the_fine_tuned_classifier_of_notebook_07_trained(demo: Config):
    """Routes (b) and (c) beat the frozen classifier on the same images by their floors; their windows,
    the frontier flags and the answers are compared with the recorded run by the first test."""
    frame = recorded.classifier_route_margins(demo.layout)
    assert frame["ok"].all(), "margins over the untrained classifier that do not hold:\n" + frame.to_string()


def test_the_demo_shows_the_study_claim(demo: Config):
    run = result_files.read_results(demo)
    frame = tables.claims(tables.table1(demo, run), tables.mcnemar_tests(run))
    required = frame[frame["kind"] == "required"]
    assert len(required) == 4, frame.to_string()
    assert required["holds"].all(), "claims that do not hold:\n" + required[~required["holds"]].to_string()
