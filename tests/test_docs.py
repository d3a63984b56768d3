"""README.md and docs/: every number from a run is generated from the committed files, every link resolves,
and the README is a front page (dario_utils.runner.docs)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from dario_utils.core import paths
from dario_utils.runner import docs

README = paths.PROJECT_ROOT / "README.md"


def test_the_committed_pages_agree_with_the_committed_results() -> None:
    assert docs.stale_pages() == [], "run make docs (python -m dario_utils.runner.docs) and commit the pages"


def _edit_a_number_in_a_block(text: str, block: str) -> str:
    """``text`` with the first digit inside the generated block ``block`` changed."""
    match = next(m for m in docs.BLOCK.finditer(text) if m.group(2) == block)
    start, end = match.span(3)
    body = re.sub(r"\d", lambda d: str((int(d.group()) + 1) % 10), match.group(3), count=1)
    assert body != match.group(3)
    return text[:start] + body + text[end:]


@pytest.mark.parametrize("block", ["headline", "results-table"])
def test_a_number_edited_inside_a_block_makes_the_page_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture, block: str) -> None:
    page = tmp_path / "README.md"
    page.write_text(_edit_a_number_in_a_block(README.read_text(), block))
    assert docs.stale_pages([page]) == [page]
    monkeypatch.setattr(docs, "pages", lambda: [page])
    assert docs.main(["--check"]) == 1
    assert f"stale: {page} disagrees with the committed results" in capsys.readouterr().err
    page.write_text(docs.render(page.read_text()))  # what make docs does to it
    assert docs.stale_pages([page]) == []
    assert page.read_text() == README.read_text()


def test_every_page_link_resolves() -> None:
    assert docs.broken_links() == []


def test_a_link_to_a_missing_file_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[there](there.md) [web](https://example.org/x.md) [anchor](#top) [here](page.md#top)\n")
    assert docs.broken_links([page]) == ["page.md: there.md"]


def test_an_unknown_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown generated block 'nonesuch'"):
        docs.render("<!-- begin: nonesuch -->\n<!-- end: nonesuch -->\n")


def test_the_readme_is_a_front_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 160
    first = "\n".join(lines[:40])
    headline = "".join(docs.BLOCK.search(m.group(0)).group(3) for m in docs.BLOCK.finditer(first)
                       if m.group(2) == "headline")
    assert "<!-- end: headline -->" in first and "%" in headline, "the headline and its interval in the first 40 lines"
    assert re.search(r"^make reproduce\b", first, re.M) and re.search(r"^make test\b", first, re.M)
    assert "figures/headline.png" in README.read_text()


def test_every_block_of_the_pages_is_known() -> None:
    for page in docs.pages():
        assert {m.group(2) for m in docs.BLOCK.finditer(page.read_text())} <= set(docs.BLOCKS), page.name


def test_the_variants_log_has_a_source_for_every_row() -> None:
    variants = pd.read_csv(paths.PROJECT_ROOT / "figures" / docs.HEADLINE_PROFILE / docs.VARIANTS, dtype=str)
    assert variants["source"].notna().all()
    scored = variants["test_top1"].notna()
    assert variants.loc[scored, "test_top1"].str.fullmatch(r"0\.\d{3}").all()


def _fake_crossval(root: Path, folds_done: int, folds: int = 3) -> None:
    """A partial cross-validation of the headline profile under ``root``: ``folds_done`` of ``folds`` folds."""
    folder = root / "figures" / docs.HEADLINE_PROFILE / "crossval"
    images = [f"img{i}" for i in range(12)]
    folder.mkdir(parents=True)
    pd.DataFrame({"image": images, "fold": [i % folds + 1 for i in range(12)]}).to_csv(folder / "folds.csv")
    pd.DataFrame({"fold": range(1, folds_done + 1)}).to_csv(folder / "crossval_folds.csv")
    hits = {"original": 1, "bilinear": 0, "bicubic": 0, "esrgan": 0, "darionet": 1}
    for fold in range(1, folds_done + 1):
        (folder / f"fold{fold}").mkdir()
        rows = [{"judge": judge, "image": image, "model": model, "top1": hit ^ (i % 4 == 0 and model == "darionet")}
                for judge in ("efficientnet_lite0", "efficientnet_lite2") for i, image in enumerate(images)
                if i % folds + 1 == fold for model, hit in hits.items()]
        pd.DataFrame(rows).to_csv(folder / f"fold{fold}" / "per_image.csv", index=False)
    row = {"n_images": 4 * folds_done, **{f"top1_{m}": 0.5 for m in hits},
           **{f"gap_vs_{r}{s}": v for r in ("bicubic", "bilinear") for s, v in (("", 0.7), ("_low", 0.5), ("_high", 0.9))},
           **{f"mcnemar_{k}_{w}": 3 for k in ("bicubic", "start") for w in ("darionet_only", "other_only")}}
    pd.DataFrame([{"judge": "efficientnet_lite0", "role": "teacher", **row},
                  {"judge": "efficientnet_lite2", "role": "unseen judge", **row}]).to_csv(folder / "crossval.csv")


def test_a_partial_cross_validation_is_said_to_be_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for profile in ("demo", "imagenet-sample"):
        shutil.copytree(paths.PROJECT_ROOT / "figures" / profile, tmp_path / "figures" / profile,
                        ignore=shutil.ignore_patterns("*.png", "*.pdf", "crossval"))
    _fake_crossval(tmp_path, folds_done=1)
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    assert "So far 1 of 3 folds are done" in docs.headline() and "70.0%** (50.0%-90.0%" in docs.headline()
    assert "partial: 1 of 3 folds done" in docs.crossval_table()
    assert docs.headline_figure(tmp_path / "headline.png").stat().st_size > 0


def test_make_test_s_time_is_quoted_from_its_record(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    assert "not recorded" in docs._test_time_row()["time"]
    (tmp_path / "figures").mkdir()
    (tmp_path / docs.TEST_TIME_FILE).write_text(
        '{"seconds": 1020.4, "commit": "abc1234", "dirty": false, "date": "2026-12-06T07:00:00Z", "cpu": "AMD EPYC",'
        ' "cores": 2, "onednn_max_cpu_isa": null, "phases": [{"target": "unit-tests", "seconds": 300,'
        ' "counts": {"passed": 406}}, {"target": "notebook-tests", "seconds": 720.4, "counts": {"passed": 63}}]}')
    row = docs._test_time_row()
    assert row["time"] == "17 min (unit-tests 406 passed in 5 min, notebook-tests 63 passed in 12 min)"
    assert row["machine"] == "AMD EPYC, 2 cores" and row["published run"] == "commit abc1234, 2026-12-06"


def _fake_two_teachers(root: Path, low: float, high: float, p: float) -> None:
    """One fold of the two-teacher cross-validation under ``root``, compared with the headline's: the difference
    of the gaps under the unseen judge has the interval ``low`` to ``high`` and McNemar's p-value ``p``."""
    folder = root / "figures" / docs.TWO_TEACHERS / "crossval"
    (folder / "fold1").mkdir(parents=True)
    pd.DataFrame({"image": ["a", "b", "c"], "fold": [1, 2, 3]}).to_csv(folder / "folds.csv")
    pd.DataFrame({"fold": [1]}).to_csv(folder / "crossval_folds.csv")
    pd.DataFrame({"epoch": [1], "seconds": [600.0]}).to_csv(folder / "fold1" / "history.csv")
    row = {"n_images": 1, **{f"top1_{m}": 0.5 for m in ("original", "bilinear", "bicubic", "esrgan", "darionet")},
           **{f"gap_vs_{r}{s}": 0.5 for r in ("bicubic", "bilinear") for s in ("", "_low", "_high")},
           **{f"mcnemar_{k}_{w}": 1 for k in ("bicubic", "start") for w in ("darionet_only", "other_only")}}
    pd.DataFrame([{"judge": "efficientnet_lite0", "role": "teacher", **row},
                  {"judge": "efficientnet_lite2", "role": "unseen judge", **row}]).to_csv(folder / "crossval.csv")
    versus = {"folds": "1", "n_images": 167, "top1_darionet": 0.75, "top1_darionet_other": 0.7, "gap_vs_bicubic": 0.55,
              "gap_vs_bicubic_other": 0.45, "gap_difference": 0.1, "gap_difference_low": low,
              "gap_difference_high": high, "mcnemar_this_only": 12, "mcnemar_other_only": 4, "mcnemar_p": p}
    pd.DataFrame([{"judge": "efficientnet_lite0", "role": "teacher", **versus},
                  {"judge": "efficientnet_lite2", "role": "unseen judge", **versus}]).to_csv(
        folder / "versus_imagenet-sample.csv", index=False)


@pytest.mark.parametrize(("low", "high", "p", "verdict"), [(-0.02, 0.2, 0.08, "no change shown"),
                                                           (0.03, 0.2, 0.08, "suggestive, not shown"),
                                                           (0.03, 0.2, 0.01, "McNemar's test gives p < 0.05")])
def test_the_two_teacher_answer_follows_the_interval_and_the_test(tmp_path, monkeypatch, low, high, p, verdict) -> None:
    _fake_two_teachers(tmp_path, low, high, p)
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    text = docs.two_teachers()
    assert "partial: 1 of 3 folds done" in text and "| 1 | 10 min |" in text and "not always free" in text
    assert f"Under efficientnet_lite2, which taught neither, two teachers recover 55.0%" in text
    assert verdict in text and "12:4" in text
    assert docs.two_teachers_answer() in text and verdict in docs.two_teachers_answer()


def test_the_two_teacher_block_says_when_it_has_not_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    assert docs.two_teachers().startswith("Not run yet: `make crossval PROFILE=imagenet-sample-two-teachers")
    assert docs.two_teachers_answer().startswith("Not answered yet: `make crossval PROFILE=imagenet-sample-two-teachers")
