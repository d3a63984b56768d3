"""How much the demo's trained results move with the training seed, the CPU's kernels and
the thread count, and whether the study's claim holds in every case.

Each variant reruns notebooks 03-04 (fine-tuning, evaluation) through the runner in an
output folder of its own, starting from a copy of a finished run's ``runs/<profile>/``
(the split, the baselines and the cached head features, which training does not change),
and prints one line per variant: DarioNet's top-1, agreement, CE, the share of the gap
recovered, McNemar's p against bicubic and whether every claim of
:func:`dario_utils.evaluation.tables.claims` holds. With ``--notebooks 03,04,06`` notebook 06 reruns too,
and the script ends with every trained row's margin over the untrained start
(:func:`dario_utils.runner.recorded.trained_margins`), smallest and largest over the variants: the
measurements :data:`dario_utils.runner.recorded.MARGIN_FLOORS` are set from.

    python benchmarks/spread.py --seeds 1337,1,2 --isa default,SSE41 --threads 2,1 [--notebooks 03,04,06,07] [--write]

With notebook 07 it also measures 07's trained routes, frontier flags and answers. ``--write`` saves
the finished run's and every variant's values to ``notebooks/recorded_spread.json``, which
``tests/test_recorded.py`` checks the margin floors and 07's windows against; ``--collect`` reads
variants already finished under ``--out`` instead of rerunning them. ``--add DIR --label TEXT`` reruns
nothing either: it appends the finished run under the output root ``DIR`` to the saved record as one
more variant (for example ``make test``'s ``.test-output`` after ``ONEDNN_MAX_CPU_ISA=SSE41 make test``).
    python benchmarks/spread.py --profile imagenet-sample --data-root ../shared/imagenet-sample-dev --seeds 2 --isa default --threads 2

A variant is (seed, ONEDNN_MAX_CPU_ISA, threads); the first value of each list is combined
with every value of the others (one factor at a time), so the default call runs 5 variants.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from dario_utils.core import fileio, paths, result_files
from dario_utils.core.config import load_config
from dario_utils.core.result_files import DOGS_TEST, TABLE4
from dario_utils.evaluation import tables
from dario_utils.runner import recorded
from dario_utils.studies.super_categories import super_category_table


def variants(seeds: list[int], isas: list[str], threads: list[int]) -> list[tuple[int, str, int]]:
    """One factor at a time around the first value of each list."""
    base = (seeds[0], isas[0], threads[0])
    out = [base]
    out += [(s, base[1], base[2]) for s in seeds[1:]]
    out += [(base[0], i, base[2]) for i in isas[1:]]
    out += [(base[0], base[1], t) for t in threads[1:]]
    return out


def run_variant(profile: str, source: Path, folder: Path, seed: int, isa: str, threads: int,
                notebooks: str, data_root: str | None = None) -> tuple[dict, pd.DataFrame]:
    """Fine-tune and evaluate one variant in ``folder`` (``notebooks``, 03 and 04 at least); its
    Table 1 numbers and claims, and its trained rows' margins over the untrained start."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, paths.RunLayout(profile, folder).run,
                    ignore=shutil.ignore_patterns("checkpoints", "notebooks", "figures-*"))
    raw = yaml.safe_load(paths.profile_file(profile).read_text())
    raw["train"]["seed"], raw["num_threads"] = seed, threads
    if data_root is not None:
        raw["data_root"] = str(Path(data_root).resolve())
    profile_file = folder / f"{profile}.yaml"
    profile_file.write_text(yaml.safe_dump(raw))
    env = {**os.environ, paths.OUTPUT_ROOT_ENV: str(folder)}
    if isa != "default":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dario_utils.runner.reproduce", "--profile", str(profile_file), "--only", notebooks],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    row, margins, alternatives = collect(folder, profile_file)
    return {"seed": seed, "isa": isa, "threads": threads, **row, "seconds": seconds}, margins, alternatives


def collect(folder: Path, profile: str | Path) -> tuple[dict, pd.DataFrame, dict]:
    """A finished run's trained results under the output root ``folder``: Table 1's DarioNet and
    claims, every margin over the untrained start, and notebook 07's routes, frontier flags and
    answers where it ran."""
    config = load_config(profile, output_root=folder)
    run = result_files.read_results(config)
    table, tests = tables.table1(config, run), tables.mcnemar_tests(run)
    margins = recorded.trained_margins(config.layout, with_floors=False)
    if config.layout.table(TABLE4).is_file() and not config.layout.table(DOGS_TEST).is_file():
        super_category_table(config)  # a run of an older version: its dogs test, from its per-image results
    alternatives = recorded.alternatives_results(config.layout).get("alternatives", {})
    if alternatives:
        margins = pd.concat([margins, recorded.classifier_route_margins(config.layout, with_floors=False)])
    dario = table.set_index("model").loc["darionet"]
    claims = tables.claims(table, tests)
    return ({"top1": dario.top1, "agreement": dario.agreement, "avg_ce": dario.avg_ce, "avg_psnr": dario.avg_psnr,
             "gap_recovered": tables.gap_closed(table),
             "p_vs_bicubic": float(tests.set_index("baseline").loc["bicubic", "p_value"]),
             "claims_hold": bool(claims.loc[claims["kind"] == "required", "holds"].all())}, margins, alternatives)


def spread_record(margins: list[pd.DataFrame], alternatives: list[dict], variants: list[str]) -> dict:
    """What ``--write`` saves (:data:`dario_utils.runner.recorded.SPREAD_FILE`): every margin, route value,
    frontier flag and answer, one value per run, in the order of ``variants``."""
    frame = pd.concat(margins)
    record = {"variants": variants,
              "margins": {f"{w}|{m}": {"kind": g["kind"].iloc[0], "values": list(g["margin"])}
                          for (w, m), g in frame.groupby(["what", "metric"], sort=False)}}
    if all(alternatives):
        record["routes"] = {f"{route}|{k}": [a["routes"][route][k] for a in alternatives]
                            for route, values in alternatives[0]["routes"].items() for k in values}
        for kind in ("on_frontier", "answers"):
            record[kind] = {key: [a[kind][key] for a in alternatives] for key in alternatives[0][kind]}
    return record


def appended(record: dict, margins: pd.DataFrame, alternatives: dict, name: str) -> dict:
    """``record`` (:func:`spread_record`'s) with one more run, ``name``: its margins and, where the record
    has them, its routes, frontier flags and answers (a value the run lacks is an error, not a gap)."""
    one = spread_record([margins], [alternatives], [name])
    missing = [key for kind in ("margins", "routes", "on_frontier", "answers")
               for key in record.get(kind, {}) if key not in one.get(kind, {})]
    if missing:
        raise KeyError(f"the run {name!r} lacks {len(missing)} recorded values, e.g. {missing[:3]}: run its notebooks")
    out = {**record, "variants": [*record["variants"], name]}
    out["margins"] = {key: {**entry, "values": [*entry["values"], *one["margins"][key]["values"]]}
                      for key, entry in record["margins"].items()}
    for kind in ("routes", "on_frontier", "answers"):
        if kind in record:
            out[kind] = {key: [*values, *one[kind][key]] for key, values in record[kind].items()}
    return out


def add_run(output_root: Path, profile: str, name: str) -> int:
    """``--add``: append the finished run under ``output_root`` to :data:`recorded.SPREAD_FILE`."""
    _, margins, alternatives = collect(output_root, profile)
    record = appended(json.loads(recorded.SPREAD_FILE.read_text()), margins, alternatives, name)
    fileio.write_text(recorded.SPREAD_FILE, json.dumps(record, indent=2) + "\n")
    print(f"wrote {recorded.SPREAD_FILE}: {len(record['variants'])} runs")
    for key, values in record.get("answers", {}).items():
        print(f"  07 answer {key}: {'same in every run' if len(set(values)) == 1 else 'differs: ' + ', '.join(values)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seeds", default="1337,1,2")
    parser.add_argument("--isa", default="default,SSE41", help="ONEDNN_MAX_CPU_ISA values (default: unset)")
    parser.add_argument("--threads", default="2,1")
    parser.add_argument("--notebooks", default="03,04", help="notebooks each variant reruns (03,04 or 03,04,06)")
    parser.add_argument("--data-root", help="data folder (overrides the profile's data_root)")
    parser.add_argument("--out", default="/tmp/darionet-spread")
    parser.add_argument("--collect", action="store_true",
                        help="rerun nothing: read the variants already finished under --out")
    parser.add_argument("--write", action="store_true",
                        help=f"save the finished run's and every variant's values to {recorded.SPREAD_FILE.name} "
                             "(the measurements the margin floors and 07's windows are checked against)")
    parser.add_argument("--add", type=Path, metavar="DIR",
                        help=f"rerun nothing: append the finished run under the output root DIR to "
                             f"{recorded.SPREAD_FILE.name} as the variant --label")
    parser.add_argument("--label", help="with --add: how the run is named (seed, ONEDNN_MAX_CPU_ISA, threads)")
    args = parser.parse_args(argv)
    if args.add is not None:
        if not args.label:
            parser.error("--add needs --label (for example 'seed 1337, SSE41, 2 threads')")
        return add_run(args.add, args.profile, args.label)
    output_root = paths.output_root_from_env()
    source = paths.RunLayout(args.profile, output_root).run
    if not (source / "cache").is_dir():
        print(f"error: no finished run at {source}: run the notebooks of profile '{args.profile}' first", file=sys.stderr)
        return 2
    base, base_margins, base_alternatives = collect(output_root, args.profile)
    rows, margins, alternatives, names = [], [base_margins], [base_alternatives], ["the finished run"]
    for seed, isa, threads in variants([int(s) for s in args.seeds.split(",")], args.isa.split(","),
                                       [int(t) for t in args.threads.split(",")]):
        folder = Path(args.out) / f"seed{seed}-{isa}-t{threads}"
        if args.collect:
            row, margin, alternative = collect(folder, folder / f"{args.profile}.yaml")
            row = {"seed": seed, "isa": isa, "threads": threads, **row}
        else:
            row, margin, alternative = run_variant(args.profile, source, folder, seed, isa, threads, args.notebooks,
                                                   args.data_root)
        rows.append(row)
        names.append(f"seed {seed}, {isa}, {threads} threads")
        margins.append(margin.assign(variant=names[-1]))
        alternatives.append(alternative)
        print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    if args.write:
        fileio.write_text(recorded.SPREAD_FILE, json.dumps(spread_record(margins, alternatives, names), indent=2) + "\n")
        print(f"wrote {recorded.SPREAD_FILE}")
    frame = pd.DataFrame(rows)
    print("\nspread (max - min):", ", ".join(f"{c} {frame[c].max() - frame[c].min():.4f}"
                                             for c in ("top1", "agreement", "avg_ce", "avg_psnr", "gap_recovered")))
    print("claims hold in every variant:", bool(frame["claims_hold"].all()))
    measured = pd.concat(margins).groupby(["what", "metric"], sort=False).agg(
        smallest=("margin", "min"), largest=("margin", "max"))
    print("\nmargins over the untrained start (recorded.MARGIN_FLOORS), over the finished run and the variants:")
    print(measured.round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
