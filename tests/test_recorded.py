"""The recorded run's checks are guards: every window leaves out the untrained value, every margin
floor fails a run with half the recorded training effect and passes every run measured over seeds
(``notebooks/recorded_spread.json``), and every required claim fails for a DarioNet that did not
train (:mod:`dario_utils.runner.recorded`, :func:`dario_utils.evaluation.tables.claims`)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from dario_utils.core import paths
from dario_utils.core.paths import RunLayout
from dario_utils.evaluation import tables
from dario_utils.runner import recorded

from conftest import load_benchmark

RECORD = json.loads(recorded.RECORD_FILE.read_text())
SPREAD = json.loads(recorded.SPREAD_FILE.read_text())


def _windows():
    """(what, metric, recorded value, untrained value, window) of every window of the record."""
    untrained = RECORD["untrained"]
    for model, values in RECORD["table1"].items():
        for k, v in values.items():
            yield f"Table 1, {model}", k, v, untrained["table1"][model][k], recorded.TOLERANCES["table1"][k]
    for k, v in RECORD["best_val"].items():
        yield "best validation epoch", k, v, untrained["best_val"][k], recorded.TOLERANCES["best_val"][k]
    for what, values in RECORD.get("beyond", {}).items():
        kind = "ablation" if what.startswith("loss ") else "beyond"
        for k, v in values.items():
            yield f"06, {what}", k, v, untrained["beyond"][what][k], recorded.TOLERANCES[kind][k]
    for route, values in RECORD.get("alternatives", {}).get("routes", {}).items():
        for k, v in values.items():
            yield f"07, route {route}", k, v, untrained["alternatives"][route][k], recorded.TOLERANCES["alternatives"][k]


WINDOWS = list(_windows())


def test_the_record_has_notebook_07_and_its_untrained_values():
    assert "alternatives" in RECORD and "untrained" in RECORD and "margins" in RECORD


@pytest.mark.parametrize("what,metric,value,untrained,window", WINDOWS, ids=[f"{w[0]}-{w[1]}" for w in WINDOWS])
def test_every_window_leaves_out_the_untrained_value(what, metric, value, untrained, window):
    assert abs(value - untrained) > window, f"{what} {metric}: untrained {untrained} is within {value} ± {window}"


def _kind_floors():
    for key, measured in SPREAD["margins"].items():
        what, metric = key.split("|")
        if metric in recorded.MARGIN_FLOORS[measured["kind"]]:
            yield what, metric, measured["kind"], measured["values"]


FLOORS = list(_kind_floors())


def test_every_floor_of_the_demo_was_measured():
    measured = {(kind, metric) for _, metric, kind, _ in FLOORS}
    expected = {(kind, metric) for kind, metrics in recorded.MARGIN_FLOORS.items() for metric in metrics
                if kind != "ablation"}  # the demo runs no loss ablation
    assert expected <= measured, expected - measured


@pytest.mark.parametrize("what,metric,kind,measured", FLOORS, ids=[f"{f[0]}-{f[1]}" for f in FLOORS])
def test_every_floor_fails_half_the_effect_and_passes_every_measured_run(what, metric, kind, measured):
    floor = recorded.MARGIN_FLOORS[kind][metric]
    margin = RECORD["margins"][f"{what}|{metric}"]
    assert floor > recorded.HALF_EFFECT * margin, f"a run with half the effect ({margin / 2:.4f}) passes {floor}"
    assert floor <= min(measured), f"a measured run ({min(measured):.4f}) fails {floor}"
    rule = recorded.floor_by_rule(margin, min(measured))
    assert rule is not None and abs(floor - rule) <= 0.01, f"the rule gives {rule}"


def test_notebook_07_windows_cover_the_seeds():
    for key, values in SPREAD["routes"].items():
        route, metric = key.split("|")
        centre = RECORD["alternatives"]["routes"][route][metric]
        window = recorded.TOLERANCES["alternatives"][metric]
        assert window >= 1.5 * max(abs(v - centre) for v in values) - 1e-9, key
        assert window >= recorded.TOLERANCES["table1"][metric], key


def test_every_required_claim_fails_for_a_darionet_that_did_not_train():
    table = pd.read_csv(paths.PROJECT_ROOT / "figures" / "demo" / "table1.csv")
    columns = ["avg_ce", "avg_psnr", "top1", "agreement"]
    table.loc[table["model"] == "darionet", columns] = table.loc[table["model"] == "esrgan", columns].to_numpy()
    tests = pd.DataFrame({"baseline": ["bicubic", "pretrained SR"], "p_value": [1e-4, 1.0]})
    claims = tables.claims(table, tests)
    required = claims[claims["kind"] == "required"]
    assert len(required) == 4 and not required["holds"].any(), required.to_string()


def test_re_recording_a_moved_result_takes_the_flag(tmp_path, monkeypatch):
    moved = json.loads(recorded.RECORD_FILE.read_text())
    moved["table1"]["darionet"]["top1"] += 0.2
    record_file = tmp_path / "recorded.json"
    record_file.write_text(json.dumps(moved))
    monkeypatch.setattr(recorded, "RECORD_FILE", record_file)
    monkeypatch.setattr(recorded, "compare", lambda layout: pd.DataFrame(
        [{"what": "Table 1, darionet", "metric": "top1", "recorded": 0.6, "this run": 0.4, "tolerance": 0.03,
          "ok": False}]))
    with pytest.raises(recorded.RecordingError, match="Table 1, darionet top1: 0.6 -> 0.4"):
        recorded.record(RunLayout("demo", tmp_path))
    assert json.loads(record_file.read_text()) == moved  # nothing written


def test_a_classifier_that_did_not_train_fails_notebook_07s_margins(tmp_path):
    """Route (b) with learning rate 0 is the frozen classifier on bicubic images, and (c) is (a): every
    margin of :func:`recorded.classifier_route_margins` is 0 and fails its floor."""
    layout = RunLayout("demo", tmp_path)
    table3 = pd.read_csv(paths.PROJECT_ROOT / "figures" / "demo" / "table3_classifier_vs_sr.csv").set_index("route")
    for trained, frozen in (("b", "bicubic"), ("c", "a")):
        table3.loc[trained, ["top1", "agreement"]] = table3.loc[frozen, ["top1", "agreement"]]
    target = layout.figures / "table3_classifier_vs_sr.csv"
    target.parent.mkdir(parents=True)
    table3.reset_index().to_csv(target, index=False)
    margins = recorded.classifier_route_margins(layout)
    assert len(margins) == 2 and not margins["ok"].any(), margins.to_string()


def test_a_run_added_to_the_spread_joins_every_value_and_can_unsettle_an_answer():
    spread = load_benchmark("spread")
    margins = pd.DataFrame([{"what": "Table 1, DarioNet", "metric": "top1", "kind": "table1", "margin": 0.07}])
    alternatives = {"routes": {"b": {"top1": 0.44}}, "on_frontier": {"bicubic": True}, "answers": {"dogs": "no"}}
    record = spread.spread_record([margins, margins.assign(margin=0.08)], [alternatives, alternatives], ["r", "s"])
    other = {**alternatives, "answers": {"dogs": "yes"}}
    added = spread.appended(record, margins.assign(margin=0.05), other, "t")
    assert added["variants"] == ["r", "s", "t"]
    assert added["margins"]["Table 1, DarioNet|top1"]["values"] == [0.07, 0.08, 0.05]
    assert added["answers"]["dogs"] == ["no", "no", "yes"] and added["routes"]["b|top1"] == [0.44, 0.44, 0.44]
    with pytest.raises(KeyError, match="lacks"):
        spread.appended(record, margins.assign(metric="agreement"), alternatives, "u")
