"""Every location of the study: the project's folders, and one run's layout (:class:`RunLayout`).

Generated data live under an output root (the project root unless an entry point is given
another: the CLIs and the notebooks' ``setup`` read ``DARIO_OUTPUT_ROOT`` once, as the tests'
subprocesses set it): ``runs/<profile>/`` for manifests, checkpoints, results and the tables and
figures the notebooks write, ``figures/<profile>/`` for the tables and figures the runner published.
A :class:`RunLayout` of the profile and that root makes every one of these paths. Downloaded or
converted weights go to the weights cache (``DARIO_WEIGHTS_CACHE``, default ``~/.cache/darionet``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = PROJECT_ROOT / "profiles"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
OUTPUT_ROOT_ENV = "DARIO_OUTPUT_ROOT"
STORED_OUTPUTS_PROFILE = "demo"
"""The profile whose outputs the committed notebooks in ``notebooks/`` hold (``make notebooks``)."""
EXECUTED_NOTEBOOKS = "notebooks"
"""The folder of a published ``figures/<profile>/`` that holds the run's executed notebooks, cleaned (other profiles)."""
"""Where an entry point finds another output root than the project's (read once, by :func:`output_root_from_env`)."""

HISTORY_FILE = "history.csv"
LAST_FILE = "darionet_last.pt"
BEST_FILE = "darionet_best.pt"


def output_root_from_env() -> Path:
    """The output root an entry point was given: ``$DARIO_OUTPUT_ROOT``, else the project root."""
    return Path(os.environ.get(OUTPUT_ROOT_ENV) or PROJECT_ROOT).resolve()


def _judge_suffix(judge: str | None) -> str:
    """A file name's ending for an unseen judge's version of a file (none for the teacher's)."""
    return "" if judge is None else f"-{judge}"


@dataclass(frozen=True)
class RunLayout:
    """Every path of one profile's run under one output root."""

    profile: str
    output_root: Path = PROJECT_ROOT

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_root", Path(self.output_root))  # a notebook's parameter is a str

    @property
    def run(self) -> Path:
        """``runs/<profile>/``: manifests, checkpoints, results, executed notebooks, the run's tables and figures."""
        return self.output_root / "runs" / self.profile

    @property
    def manifests(self) -> Path:
        return self.run / "manifests"

    def manifest(self, split: str) -> Path:
        """``runs/<p>/manifests/<split>.csv``."""
        return self.manifests / f"{split}.csv"

    @property
    def manifests_meta(self) -> Path:
        """``runs/<p>/manifests/meta.json``: the data root, counts and images' fingerprint of the split."""
        return self.manifests / "meta.json"

    @property
    def checkpoints(self) -> Path:
        return self.run / "checkpoints"

    @property
    def best_checkpoint(self) -> Path:
        """``runs/<p>/checkpoints/darionet_best.pt``, written by notebook 03."""
        return self.checkpoints / BEST_FILE

    @property
    def results(self) -> Path:
        """``runs/<p>/results/``: per-image results, the training history, the examples."""
        return self.run / "results"

    @property
    def history(self) -> Path:
        """``runs/<p>/results/history.csv``, written by notebook 03."""
        return self.results / HISTORY_FILE

    @property
    def examples(self) -> Path:
        """``runs/<p>/results/examples.npz``, written by notebook 04."""
        return self.results / "examples.npz"

    def eval_results(self, name: str, suffix: str = "") -> Path:
        """``runs/<p>/results/<name><suffix>.csv``, ``name`` being ``per_image`` or ``summary``."""
        return self.results / f"{name}{suffix}.csv"

    @property
    def per_image(self) -> Path:
        """``runs/<p>/results/per_image.csv``: the per-image results on the test split judged by the teacher."""
        return self.eval_results("per_image")

    @property
    def beyond_results(self) -> Path:
        """``runs/<p>/results/beyond/``: notebook 06's trained variants and per-image results."""
        return self.results / "beyond"

    @property
    def alternatives_results(self) -> Path:
        """``runs/<p>/results/alternatives/``: notebook 07's classifier route."""
        return self.results / "alternatives"

    @property
    def classifier_checkpoint(self) -> Path:
        """``runs/<p>/checkpoints/classifier_lowres.pt``: the teacher fine-tuned for small images (notebook 07)."""
        return self.classifier_checkpoint_of(None)

    @property
    def classifier_history(self) -> Path:
        """``runs/<p>/results/alternatives/classifier_history.csv`` (notebook 07)."""
        return self.classifier_history_of(None)

    def classifier_checkpoint_of(self, judge: str | None) -> Path:
        """The weights of a classifier fine-tuned for small images (notebook 07): the teacher's copy
        (``judge`` None, ``classifier_lowres.pt``) or an unseen judge's (``classifier_lowres-<judge>.pt``)."""
        return self.checkpoints / f"classifier_lowres{_judge_suffix(judge)}.pt"

    def classifier_history_of(self, judge: str | None) -> Path:
        """The history of :meth:`classifier_checkpoint_of`'s fine-tuning (``results/alternatives/``)."""
        return self.alternatives_results / f"classifier_history{_judge_suffix(judge)}.csv"

    def head_cache(self, name: str) -> Path:
        """``runs/<p>/cache/<name>``: the frozen head's features of one split."""
        return self.run / "cache" / name

    @property
    def executed_notebooks(self) -> Path:
        """``runs/<p>/notebooks/``: the runner's executed copies."""
        return self.run / "notebooks"

    @property
    def figures(self) -> Path:
        """``runs/<p>/figures/``: the tables and figures as the notebooks write them, which the runner
        publishes as :attr:`published_figures` once every notebook of a run has succeeded."""
        return self.run / "figures"

    def table(self, name: str) -> Path:
        """``runs/<p>/figures/<name>.csv``: a table of notebooks 02, 04, 06 or 07."""
        return self.figures / f"{name}.csv"

    def per_class(self, model: str) -> Path:
        """``runs/<p>/figures/per_class_<model>.csv``, written by notebooks 02 and 04."""
        return self.table(f"per_class_{model}")

    @property
    def published_figures(self) -> Path:
        """``figures/<p>/``: the tables and figures of the last complete run, with their provenance."""
        return self.output_root / "figures" / self.profile

    @property
    def crossval(self) -> Path:
        """``figures/<p>/crossval/``: the folds of the cross-validation, each committed as it finishes."""
        return self.published_figures / "crossval"

    @property
    def scorings_log(self) -> Path:
        """``figures/test_scorings.csv``: every scoring of a test split or fold, of every profile."""
        return self.output_root / "figures" / "test_scorings.csv"


def weights_cache() -> Path:
    """Where converted or downloaded weights are cached."""
    default = Path.home() / ".cache" / "darionet"
    return Path(os.environ.get("DARIO_WEIGHTS_CACHE", default)).expanduser()


def profile_file(name: str) -> Path:
    return PROFILES_DIR / f"{name}.yaml"
