"""How closely a rerun must match the recorded run.

Training amplifies the last-bit differences of the CPU's convolution kernels (oneDNN and
MKL pick them by instruction set and thread count), so the demo rerun on another CPU trains
a slightly different DarioNet. ``make notebooks`` records the run whose outputs the
committed notebooks store (:func:`record`, ``notebooks/recorded_results.json``);
``make test`` reruns the notebooks and then (``notebooks/test_recorded_results.py``):

- compares what does not depend on training exactly: nbval, cell by cell;
- compares what does (DarioNet's row of Table 1, the best validation epoch and, where
  notebook 06 ran, its trained models' rows) within :data:`TOLERANCES` of the recorded
  values (:func:`compare`);
- requires every trained row to beat the untrained start of the same run by
  :data:`MARGIN_FLOORS` (:func:`trained_margins`), so that a DarioNet that did not train fails
  on every row, whatever the recording;
- requires the study's claim (:func:`dario_utils.evaluation.tables.claims`, its ``required`` checks) to hold
  on the rerun.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dario_utils.core import fileio, paths
from dario_utils.core.paths import RunLayout
from dario_utils.models.study_models import BICUBIC, DARIONET, ORIGINAL, PRETRAINED_SR
from dario_utils.studies.alternatives import answer_directions
from dario_utils.core.result_files import (ALTERNATIVES_NOTEBOOK, BEYOND_NOTEBOOK, COST_FRONTIER, DOGS_TEST, EVALUATION_NOTEBOOK,
                           LOSS_ABLATION, SCALE_SWEEP, TABLE1, TABLE2, TABLE3, TABLE4, best_epoch_row,
                           read_table, start_row)

RECORD_FILE = paths.NOTEBOOKS_DIR / "recorded_results.json"
TRAINED_MODELS = (DARIONET,)
TOLERANCES = {
    "table1": {"top1": 0.03, "agreement": 0.05, "avg_ce": 0.12, "avg_psnr": 0.25},
    "best_val": {"val_loss": 0.15, "psnr": 0.35},
    "beyond": {"avg_ce": 0.15},
    "ablation": {"top1": 0.08, "agreement": 0.075, "avg_psnr": 2.5},
    "alternatives": {"top1": 0.03, "agreement": 0.05},
}
"""Largest absolute difference allowed from the recorded run, for what training produced:
about 1.5 times the largest difference from the recorded run measured over seeds (1, 2) and
CPUs (the AMD, SSE4.1 kernels), listed in the README (Checks that can fail). Table 1's top-1
window, 0.03, is 7 of the demo's 249 test images. A window alone would pass a DarioNet that
did not train where its margin is small, so every trained row must also beat the untrained
start by :data:`MARGIN_FLOORS`. A window that holds the untrained start's value guards nothing and
is not kept (the best validation epoch's agreement, the unseen judge's and factor 0.25's top-1 and
agreement;
``tests/test_recorded.py`` checks every window against the recorded run's untrained values).
``alternatives``: notebook 07's route (b) and the fine-tuned classifier on the originals, 1.5 times
the largest difference over three seeds and one SSE4.1 run (``notebooks/recorded_spread.json``:
0.004 top-1, 0.008 agreement) but at least Table 1's windows. Route (c) has
no window: over the seeds its top-1 moved by up to 0.040 and its agreement by 0.044, so a window
wide enough for the seeds would hold the untrained value ((a)'s) and guard nothing."""

MARGIN_FLOORS = {
    "table1": {"top1": 0.054, "agreement": 0.066, "avg_ce": 0.249},
    "best_val": {"val_loss": 0.318},
    "unseen judge": {"avg_ce": 0.332},
    "factor": {"avg_ce": 0.257},
    "ablation": {"avg_ce": 0.08},
    "classifier route": {"top1": 0.096, "agreement": 0.108},
}
"""Least margin each trained row must have over the untrained start measured in the same run
(higher top-1 and agreement, lower CE and validation loss). The rule (:func:`floor_by_rule`):
midway between half the recorded run's margin and the smallest margin measured over seeds and
CPUs (``notebooks/recorded_spread.json``), so that a run with half the recorded training effect
fails and every measured run passes; ``tests/test_recorded.py`` checks each floor against both
files. A margin whose smallest measured value is not above half the recorded one cannot tell half
the effect from the spread and is not a floor (the unseen judge's agreement). The kinds:

- ``table1``: Table 1's DarioNet against its pretrained SR (row 3);
- ``best_val``: the best validation epoch against the untrained start (``history.csv``'s
  ``start`` row);
- ``unseen judge``: Table 2's DarioNet against the pretrained SR, both under the unseen judge;
- ``factor``: DarioNet against the pretrained SR at each other factor of the scale sweep
  (top-1 and agreement gain too little at 0.25 to be told from the spread);
- ``ablation`` (profiles that run it; not the demo, so set by the old rule, half the smallest margin
  measured): each loss's test CE against Table 1's pretrained SR (its validation loss after one
  epoch is not a margin: with seed 2 the KL run's moved by 0.002 from its start while its test CE
  fell by 0.27);
- ``classifier route``: notebook 07's classifier fine-tuned on bicubic images, route (b), against
  the frozen classifier on the same images."""

HALF_EFFECT = 0.5
"""The share of the recorded training effect that a margin floor must fail."""
SPREAD_FILE = paths.NOTEBOOKS_DIR / "recorded_spread.json"
"""Margins and notebook 07's results over seeds, written by ``benchmarks/spread.py --write``."""


class RecordingError(ValueError):
    """A rerun moved outside a window of the recorded run and re-recording was not asked for."""


def floor_by_rule(recorded_margin: float, smallest_measured: float) -> float | None:
    """The margin floor of :data:`MARGIN_FLOORS`' rule: midway between ``HALF_EFFECT`` times the recorded
    run's margin and the smallest margin measured over seeds and CPUs; None where the smallest is not
    above the half (the spread hides half the effect)."""
    half = HALF_EFFECT * recorded_margin
    return None if smallest_measured <= half else (half + smallest_measured) / 2

_LOWER_IS_BETTER = {"avg_ce", "val_loss"}


def _results(layout: RunLayout) -> dict:
    """Table 1 (trained rows) and the best validation epoch of a finished run of ``layout``'s profile."""
    table_file, history_file = layout.table(TABLE1), layout.history
    for file in (table_file, history_file):
        if not file.is_file():
            raise FileNotFoundError(f"no {file}: run the notebooks of profile '{layout.profile}' first "
                                    f"(python -m dario_utils.runner.reproduce --profile {layout.profile})")
    table = pd.read_csv(table_file).set_index("model")
    best = best_epoch_row(pd.read_csv(history_file))
    return {"table1": {m: {k: float(table.loc[m, k]) for k in TOLERANCES["table1"]} for m in TRAINED_MODELS},
            "best_val": {k: float(best[k]) for k in TOLERANCES["best_val"]}}


def _beyond_tables(layout: RunLayout) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None] | None:
    """Notebook 06's Table 2, scale sweep and loss ablation (None where the run had the ablation
    off: ``beyond.loss_ablation``); None where 06 has not run."""
    if not layout.table(SCALE_SWEEP).is_file():
        return None
    ablation = read_table(layout, LOSS_ABLATION, BEYOND_NOTEBOOK) if layout.table(LOSS_ABLATION).is_file() else None
    return read_table(layout, TABLE2, BEYOND_NOTEBOOK), read_table(layout, SCALE_SWEEP, BEYOND_NOTEBOOK), ablation


def _beyond_results(layout: RunLayout) -> dict[str, dict[str, dict[str, float]]]:
    """Notebook 06's trained rows (:data:`TOLERANCES` ``beyond``): DarioNet under the unseen judge,
    at each factor other than ``data.scale`` (there it is Table 1's row), and each loss of the
    ablation; {} where 06 has not run."""
    tables = _beyond_tables(layout)
    if tables is None:
        return {}
    table2, sweep, ablation = tables
    rows = {"unseen judge": table2[(table2["role"] == "unseen judge") & (table2["model"] == DARIONET)]}
    trained = sweep[sweep["model"].str.startswith(DARIONET) & (sweep["scale"] != sweep["trained_at"])]
    for (scale, model), group in trained.groupby(["scale", "model"], sort=False):
        rows[f"factor {scale:g}" + ("" if model == DARIONET else f", {model}")] = group
    if ablation is not None:
        rows.update({f"loss {key}": ablation[ablation["loss"] == key] for key in ablation["loss"]})
    return {"beyond": {what: {k: float(frame[k].iloc[0])
                              for k in TOLERANCES["ablation" if what.startswith("loss ") else "beyond"]}
                       for what, frame in rows.items()}}


ROUTES_RECORDED = ("b", "original_finetuned")
"""Notebook 07's trained routes whose top-1 and agreement are recorded (Table 3's ``route``)."""


def alternatives_results(layout: RunLayout) -> dict:
    """Notebook 07's trained results: routes :data:`ROUTES_RECORDED` (:data:`TOLERANCES` ``alternatives``),
    each method's place on the cost frontier and the direction of each answer
    (:func:`dario_utils.studies.alternatives.answer_directions`); {} where 07 has not run."""
    if not layout.table(TABLE3).is_file():
        return {}
    table3 = read_table(layout, TABLE3, ALTERNATIVES_NOTEBOOK)
    routes = table3.set_index("route")
    costs = read_table(layout, COST_FRONTIER, ALTERNATIVES_NOTEBOOK)
    dogs = read_table(layout, DOGS_TEST, ALTERNATIVES_NOTEBOOK).iloc[0].to_dict()
    directions = answer_directions(table3, read_table(layout, TABLE4, ALTERNATIVES_NOTEBOOK), dogs)
    return {"alternatives": {
        "routes": {route: {k: float(routes.loc[route, k]) for k in TOLERANCES["alternatives"]}
                   for route in ROUTES_RECORDED},
        "on_frontier": {str(m): bool(f) for m, f in zip(costs["method"], costs["on_frontier"])},
        "answers": directions}}


def _untrained_results(layout: RunLayout) -> dict:
    """The untrained counterpart of every windowed value (the pretrained SR's rows, the validation
    start, the frozen classifier's routes), which a window must leave out to guard anything."""
    table1 = read_table(layout, TABLE1, EVALUATION_NOTEBOOK).set_index("model")
    start = start_row(pd.read_csv(layout.history))
    values = {"table1": {m: {k: float(table1.loc[PRETRAINED_SR, k]) for k in TOLERANCES["table1"]} for m in TRAINED_MODELS},
              "best_val": {k: float(start[k]) for k in TOLERANCES["best_val"]}}
    tables = _beyond_tables(layout)
    if tables is not None:
        table2, sweep, ablation = tables
        rows = {"unseen judge": table2[(table2["role"] == "unseen judge") & (table2["model"] == PRETRAINED_SR)]}
        for scale, group in sweep[sweep["model"].eq(PRETRAINED_SR) & (sweep["scale"] != sweep["trained_at"])].groupby("scale"):
            rows[f"factor {scale:g}"] = group
        values["beyond"] = {what: {k: float(frame[k].iloc[0]) for k in TOLERANCES["beyond"]}
                            for what, frame in rows.items()}
        if ablation is not None:
            values["beyond"].update({f"loss {key}": {k: float(table1.loc[PRETRAINED_SR, k]) for k in TOLERANCES["ablation"]}
                                     for key in ablation["loss"]})
    if layout.table(TABLE3).is_file():
        routes = read_table(layout, TABLE3, ALTERNATIVES_NOTEBOOK).set_index("route")
        frozen = {"b": BICUBIC, "original_finetuned": ORIGINAL}
        values["alternatives"] = {route: {k: float(routes.loc[frozen[route], k]) for k in TOLERANCES["alternatives"]}
                                  for route in ROUTES_RECORDED}
    return values


def _all_results(layout: RunLayout) -> dict:
    """What :func:`record` writes: the trained results, their untrained counterparts and every margin."""
    margins = trained_margins(layout, with_floors=False)
    if layout.table(TABLE3).is_file():
        margins = pd.concat([margins, classifier_route_margins(layout, with_floors=False)], ignore_index=True)
    return {"profile": layout.profile, **_results(layout), **_beyond_results(layout), **alternatives_results(layout),
            "untrained": _untrained_results(layout),
            "margins": {f"{r['what']}|{r['metric']}": r["margin"] for r in margins.to_dict("records")}}


def refuse_moved(layout: RunLayout, accept_moved: bool = False) -> None:
    """:class:`RecordingError` naming what moved, where a recording of ``layout``'s profile exists and this run
    moved outside one of its windows (:func:`compare`) or changed a frontier flag or an answer's
    direction, unless ``accept_moved`` (``--re-record``) says the move is meant."""
    if accept_moved or not RECORD_FILE.is_file() or json.loads(RECORD_FILE.read_text()).get("profile") != layout.profile:
        return
    try:
        frame = compare(layout)
    except FileNotFoundError:  # a run without trained results records nothing (see record)
        return
    moved = frame[~frame["ok"]]
    if len(moved):
        raise RecordingError(
            "this run moved outside the recorded run's windows, so it is not recorded: "
            + "; ".join(f"{r['what']} {r['metric']}: {r['recorded']} -> {r['this run']} (window {r['tolerance']})"
                        for r in moved.to_dict("records"))
            + " (rerun with --re-record, RERECORD=1 for make notebooks, to record it anyway)")


def record(layout: RunLayout, accept_moved: bool = False) -> Path:
    """Write the finished run's trained results as the recorded ones (``make notebooks``), unless
    :func:`refuse_moved` refuses."""
    refuse_moved(layout, accept_moved)
    return fileio.write_text(RECORD_FILE, json.dumps(_all_results(layout), indent=2) + "\n")


def compare(layout: RunLayout) -> pd.DataFrame:
    """This run's trained results beside the recorded ones: one row per value, with the
    tolerance and whether it holds."""
    recorded = json.loads(RECORD_FILE.read_text())
    if recorded["profile"] != layout.profile:
        raise ValueError(f"{RECORD_FILE} records profile '{recorded['profile']}', not '{layout.profile}'")
    current = _results(layout)
    rows = [{"what": "best validation epoch", "metric": k, "recorded": v, "this run": current["best_val"][k],
             "tolerance": TOLERANCES["best_val"][k]} for k, v in recorded["best_val"].items()]
    rows += [{"what": f"Table 1, {model}", "metric": k, "recorded": v, "this run": current["table1"][model][k],
              "tolerance": TOLERANCES["table1"][k]}
             for model, values in recorded["table1"].items() for k, v in values.items()]
    if "beyond" in recorded:  # notebook 06 ran for the record: its rerun must match too
        beyond = _beyond_results(layout).get("beyond")
        if beyond is None:
            raise FileNotFoundError(f"{RECORD_FILE} records notebook 06's results, but this run has none: "
                                    f"run notebook 06 (python -m dario_utils.runner.reproduce --profile {layout.profile} --only 06)")
        rows += [{"what": f"06, DarioNet, {what}", "metric": k, "recorded": v,
                  "this run": beyond.get(what, {}).get(k, float("nan")),
                  "tolerance": TOLERANCES["ablation" if what.startswith("loss ") else "beyond"][k]}
                 for what, values in recorded["beyond"].items() for k, v in values.items()]
    frame = pd.DataFrame(rows)
    frame["ok"] = (frame["this run"] - frame["recorded"]).abs() <= frame["tolerance"] + 1e-9  # float round-off
    if "alternatives" in recorded:
        frame = pd.concat([frame, _compare_alternatives(layout, recorded["alternatives"])], ignore_index=True)
    return frame


def _compare_alternatives(layout: RunLayout, recorded: dict) -> pd.DataFrame:
    """Notebook 07's rerun against the recorded run: routes within their windows, the same methods on
    the cost frontier and each answer in the same direction, for the flags and answers that held over
    the seeds of :data:`SPREAD_FILE` (one that changed with the seed is not a claim a rerun must repeat:
    route (c) on the frontier, the groups that gain most and least)."""
    current = alternatives_results(layout).get("alternatives")
    if current is None:
        raise FileNotFoundError(f"{RECORD_FILE} records notebook 07's results, but this run has none: "
                                f"run notebook 07 (python -m dario_utils.runner.reproduce --profile {layout.profile} --only 07)")
    rows = [{"what": f"07, route {route}", "metric": k, "recorded": v, "this run": current["routes"][route][k],
             "tolerance": TOLERANCES["alternatives"][k]}
            for route, values in recorded["routes"].items() for k, v in values.items()]
    frame = pd.DataFrame(rows)
    frame["ok"] = (frame["this run"] - frame["recorded"]).abs() <= frame["tolerance"] + 1e-9
    same = [{"what": f"07, {kind}", "metric": key, "recorded": value, "this run": current[kind].get(key),
             "tolerance": "same", "ok": current[kind].get(key) == value}
            for kind in ("on_frontier", "answers") for key, value in recorded[kind].items()
            if key in stable_over_seeds(kind)]
    return pd.concat([frame, pd.DataFrame(same)], ignore_index=True)


def stable_over_seeds(kind: str) -> set[str]:
    """Notebook 07's frontier flags (``kind`` ``on_frontier``) or answers (``answers``) that were the same
    in every run of :data:`SPREAD_FILE`: the ones a rerun must repeat."""
    spread = json.loads(SPREAD_FILE.read_text()) if SPREAD_FILE.is_file() else {}
    return {key for key, values in spread.get(kind, {}).items() if len(set(values)) == 1}


def _margin_rows(what: str, kind: str, trained: pd.Series | dict, untrained: pd.Series | dict) -> list[dict]:
    """One row per metric of :data:`MARGIN_FLOORS` ``kind``: ``trained`` minus ``untrained``, negated
    where lower is better."""
    rows = []
    for metric, floor in MARGIN_FLOORS[kind].items():
        margin = float(trained[metric]) - float(untrained[metric])
        rows.append({"what": what, "kind": kind, "metric": metric, "trained": float(trained[metric]),
                     "untrained": float(untrained[metric]),
                     "margin": -margin if metric in _LOWER_IS_BETTER else margin, "floor": floor})
    return rows


def trained_margins(layout: RunLayout, with_floors: bool = True) -> pd.DataFrame:
    """Every trained row against the untrained start measured in the same run (:data:`MARGIN_FLOORS`):
    one row per margin, signed so that better is positive, with whether it reaches its floor
    (without ``with_floors``, the margins alone: what ``benchmarks/spread.py`` measures)."""
    table1 = read_table(layout, TABLE1, EVALUATION_NOTEBOOK).set_index("model")
    history = pd.read_csv(layout.history)
    rows = _margin_rows("Table 1, DarioNet", "table1", table1.loc[DARIONET], table1.loc[PRETRAINED_SR])
    rows += _margin_rows("best validation epoch", "best_val", best_epoch_row(history), start_row(history))
    tables = _beyond_tables(layout)
    if tables is not None:
        table2, sweep, ablation = tables
        unseen = table2[table2["role"] == "unseen judge"].set_index("model")
        rows += _margin_rows("06, DarioNet, unseen judge", "unseen judge", unseen.loc[DARIONET], unseen.loc[PRETRAINED_SR])
        for scale, group in sweep[sweep["scale"] != sweep["trained_at"]].groupby("scale"):
            models = group.set_index("model")
            rows += _margin_rows(f"06, DarioNet, factor {scale:g}", "factor", models.loc[DARIONET],
                                 models.loc[PRETRAINED_SR])
        for _, loss in ([] if ablation is None else ablation.iterrows()):
            what = f"06, DarioNet, loss {loss['loss']}"
            rows += _margin_rows(what, "ablation", loss, table1.loc[PRETRAINED_SR])
    return _with_floors(pd.DataFrame(rows), with_floors)


def _with_floors(frame: pd.DataFrame, with_floors: bool) -> pd.DataFrame:
    """``frame`` with whether each margin reaches its floor; without ``with_floors``, without the floors."""
    if not with_floors:
        return frame.drop(columns="floor")
    frame["ok"] = frame["margin"] >= frame["floor"]
    return frame


def classifier_route_margins(layout: RunLayout, with_floors: bool = True) -> pd.DataFrame:
    """Notebook 07's trained classifier against the untrained one of the same run (Table 3): on the
    bicubic images of the test split, route (b) (the copy fine-tuned with the study's loss) against the
    frozen classifier, by :data:`MARGIN_FLOORS` ``classifier route`` on top-1 and on agreement with the
    frozen classifier on the originals. One row per margin, with whether it holds; a copy that did not
    train (learning rate 0) has every margin at 0 and fails. Route (c) against (a) is no margin: on
    DarioNet's images the fine-tuned classifier's agreement fell below the frozen one's in the
    recorded run; its window (:data:`TOLERANCES` ``alternatives``) leaves the untrained value out."""
    routes = read_table(layout, TABLE3, ALTERNATIVES_NOTEBOOK).set_index("route")
    rows = [{"what": what, "kind": "classifier route", "metric": metric,
             "trained": float(routes.loc[trained, metric]), "untrained": float(routes.loc[frozen, metric]),
             "margin": float(routes.loc[trained, metric] - routes.loc[frozen, metric]), "floor": floor}
            for what, trained, frozen in (("07, (b) fine-tuned classifier minus frozen, on bicubic images", "b", "bicubic"),)
            for metric, floor in MARGIN_FLOORS["classifier route"].items()]
    return _with_floors(pd.DataFrame(rows), with_floors)
