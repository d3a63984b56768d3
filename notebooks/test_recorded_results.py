"""Checks run by ``make test`` after nbval has rerun the notebooks on the demo profile
(it collects this file after the ``NN_*.ipynb`` notebooks): what training produced must be
within the stated tolerances of the recorded run, and the study's claim must hold.
See :mod:`dario_utils.runner.recorded`."""
from __future__ import annotations

from dario_utils.core import result_files
from dario_utils.core.config import load_config
from dario_utils.evaluation import tables
from dario_utils.runner import recorded


def test_trained_results_are_within_tolerance_of_the_recorded_run():
    frame = recorded.compare("demo")
    assert frame["ok"].all(), "outside tolerance:\n" + frame[~frame["ok"]].to_string()


def test_every_trained_row_beats_the_untrained_start():
    frame = recorded.trained_margins("demo")
    assert frame["ok"].all(), "trained rows that do not beat the untrained start:\n" + frame[~frame["ok"]].to_string()


def test_the_fine_tuned_classifier_of_notebook_07_trained():
    """Routes (b) and (c) beat the frozen classifier on the same images by their floors; their windows,
    the frontier flags and the answers are compared with the recorded run by the first test."""
    frame = recorded.classifier_route_margins("demo")
    assert frame["ok"].all(), "margins over the untrained classifier that do not hold:\n" + frame.to_string()


def test_the_demo_shows_the_study_claim():
    config = load_config("demo")
    run = result_files.read_results(config)
    frame = tables.claims(tables.table1(config, run), tables.mcnemar_tests(run))
    required = frame[frame["kind"] == "required"]
    assert len(required) == 4, frame.to_string()
    assert required["holds"].all(), "claims that do not hold:\n" + required[~required["holds"]].to_string()
