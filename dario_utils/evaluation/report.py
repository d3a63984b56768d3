"""The report's own numbers (``data/report/``), read by every comparison with the report."""
from __future__ import annotations

import pandas as pd

from dario_utils.core import paths
from dario_utils.models.study_models import BILINEAR, DARIONET, ORIGINAL

REPORT_DIR = paths.PROJECT_ROOT / "data" / "report"
REPORT_BASELINE = BILINEAR
"""The baseline the report measures its gap against."""


def report_table1() -> pd.DataFrame:
    """Table 1 of the report, indexed by the study's model keys: ``avg_ce``, ``avg_psnr``, ``top1``, ``minutes``."""
    return pd.read_csv(REPORT_DIR / "table1.csv").set_index("model")


def report_gap() -> float:
    """The share of the top-1 lost to downsampling that the report's DarioNet recovers (against bilinear)."""
    top1 = report_table1()["top1"]
    return float((top1[DARIONET] - top1[REPORT_BASELINE]) / (top1[ORIGINAL] - top1[REPORT_BASELINE]))
