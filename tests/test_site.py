"""``make site``: the README, docs/ and every executed notebook as static HTML, opened in headless
Chromium (Debian's ``chromium``), where every image must load and every link must reach a file of
the site (dario_utils.runner.site)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from dario_utils.runner import site

CHROMIUM = shutil.which("chromium")
CHECK = """<script>window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src"));
  const links = [...document.querySelectorAll("a[href]")].map(a => a.href);
  const found = document.createElement("pre");
  found.id = "site-check";
  found.textContent = JSON.stringify({broken, links});
  document.body.appendChild(found);
});</script>"""
"""Appended to each page in the test: on load, the images that did not load and every link's address."""
FOUND = re.compile(r'<pre id="site-check">(.*?)</pre>', re.DOTALL)


def _open(page: Path, profile_dir: Path) -> dict:
    """The page as headless Chromium loads it: the :data:`CHECK` results from its DOM."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile_dir}", "--allow-file-access-from-files", "--virtual-time-budget=3000",
               "--dump-dom", page.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    found = FOUND.search(dom)
    assert found, f"{page.name}: Chromium showed no page ({len(dom)} characters of DOM)"
    return json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("site") / "site"
    return out, site.build_site(out, progress=False)


def test_every_image_and_link_of_the_site_resolves_in_chromium(built, tmp_path: Path) -> None:
    assert CHROMIUM, "make test opens the site in Chromium: install Debian's chromium (apt-get install chromium)"
    out, written = built
    names = {str(page.relative_to(out)) for page in written}
    assert {"index.html", "README.html", "docs/results.html", "notebooks/07_alternatives_and_costs.html"} <= names
    for page in written:
        page.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    problems = []
    for page in written:
        seen = _open(page, tmp_path / "chromium")
        problems += [f"{page.relative_to(out)}: image {src} did not load" for src in seen["broken"]]
        for link in seen["links"]:
            address = urlparse(link)
            if address.scheme == "file" and not Path(unquote(address.path)).exists():
                problems.append(f"{page.relative_to(out)}: link to {link}, missing")
            elif address.scheme == "file" and out.resolve() not in Path(unquote(address.path)).resolve().parents:
                problems.append(f"{page.relative_to(out)}: link to {link}, outside the site")
    assert problems == []


def test_the_site_has_every_executed_notebook_and_no_web_script(built) -> None:
    out, written = built
    for notebook in site.executed_notebooks():
        relative = notebook.relative_to(site.paths.PROJECT_ROOT).with_suffix(".html")
        assert (out / relative).is_file(), f"{relative} missing from the site"
    assert not [page for page in written if re.search(r'<script[^>]+src="https?:|import\("https?:', page.read_text())]


def test_a_link_to_a_missing_file_stops_the_site(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("See [the table](figures/nowhere.csv).\n")
    with pytest.raises(site.SiteError, match=r"page.md: link to figures/nowhere.csv"):
        site._links(page.read_text(), page, tmp_path, [], set())


def test_a_page_link_points_at_its_html_and_a_file_is_copied(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# other\n")
    (tmp_path / "table.csv").write_text("a\n1\n")
    page = tmp_path / "README.md"
    pages, assets = [], set()
    text = site._links("[o](docs/other.md#part) and [t](table.csv)", page, tmp_path, pages, assets)
    assert text == "[o](docs/other.html#part) and [t](table.csv)"
    assert pages == [tmp_path / "docs" / "other.md"] and assets == {tmp_path / "table.csv"}
