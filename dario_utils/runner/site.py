"""``make site``: the README, ``docs/`` and every profile's executed notebooks as static HTML, in ``site/``.

    python -m dario_utils.runner.site [--out DIR]

Each page is converted by nbconvert (a Markdown page as a notebook of one Markdown cell), and so is
every Markdown page or notebook they link to. The site keeps the repository's layout: a link to a
page points at its HTML, and every other file a page links to or shows (figures, tables, PDFs) is
copied to the same place, so ``site/`` opens without the repository (``site/index.html``). A
relative link to a file that does not exist is an error, naming the page and the link.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from os.path import relpath
from pathlib import Path

from dario_utils.core import paths
from dario_utils.runner.docs import LINK, pages

SITE_DIR = paths.PROJECT_ROOT / "site"
"""Where ``make site`` writes (ignored by git)."""
PAGE_SUFFIXES = (".md", ".ipynb")
"""Files that become pages of the site; any other linked file is copied as it is."""


OFFLINE_TEMPLATE = "offline.html.j2"
_OFFLINE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
"""nbconvert's JupyterLab page without the scripts it loads from the web (RequireJS, MathJax, Mermaid): the
site needs none, and opens offline."""


class SiteError(ValueError):
    """A page links to a file that does not exist."""


def executed_notebooks(root: Path = paths.PROJECT_ROOT) -> list[Path]:
    """Every executed notebook of the repository: the demo's (``notebooks/``) and each other published
    profile's (``figures/<profile>/notebooks/``)."""
    stored = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    return stored + sorted((root / "figures").glob(f"*/{paths.EXECUTED_NOTEBOOKS}/*.ipynb"))


def _page_target(path: Path) -> Path | None:
    """The page a relative link's file stands for: itself (Markdown, notebook), a folder's README, a folder
    without one (its listing, ``index.html``); else None (a file copied as it is)."""
    if path.is_dir():
        readme = path / "README.md"
        return readme if readme.is_file() else path
    return path if path.suffix in PAGE_SUFFIXES else None


def _site_name(page: Path) -> Path:
    """Where a page's HTML goes, relative to the repository's layout: ``x.md`` -> ``x.html``, a folder ->
    its ``index.html``."""
    return page / "index.html" if page.is_dir() else page.with_suffix(".html")


def _links(text: str, source: Path, root: Path, pages_found: list[Path], assets: set[Path]) -> str:
    """``text`` (Markdown of ``source``) with each relative link to a page pointed at its HTML; the pages
    and other files it links to are added to ``pages_found`` and ``assets``. :class:`SiteError` on a link
    to a missing file."""
    def rewrite(match: re.Match) -> str:
        target = match[1]
        path, _, anchor = target.partition("#")
        if not path or "://" in path or path.startswith("mailto:"):
            return match[0]
        resolved = (source.parent / path).resolve()
        if not resolved.exists() or root not in (resolved, *resolved.parents):
            raise SiteError(f"{source.relative_to(root)}: link to {target}, which is not a file of the repository")
        page = _page_target(resolved)
        if page is None:
            assets.add(resolved)
            return match[0]
        if page not in pages_found:
            pages_found.append(page)
        href = relpath(_site_name(page), source.parent) + (f"#{anchor}" if anchor else "")
        return match[0].replace(f"({target})", f"({href})")
    return LINK.sub(rewrite, text)


def _listing(folder: Path) -> str:
    """A folder without a README as Markdown: a link to each of its files and folders."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith((".", "__")))
    return f"# {folder.name}/\n\n" + "".join(f"- [{p.name}{'/' if p.is_dir() else ''}]({p.name})\n" for p in entries)


def _convert(page: Path, root: Path, pages_found: list[Path], assets: set[Path]) -> str:
    """The HTML of one page (a folder: its :func:`_listing`), its links rewritten (:func:`_links`)."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    if page.is_dir() or page.suffix == ".md":
        text = _listing(page) if page.is_dir() else page.read_text()
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    else:
        notebook = nbformat.read(page, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = _links(cell.source, page / "index.md" if page.is_dir() else page, root, pages_found, assets)
    exporter = HTMLExporter(template_name="lab", template_file=OFFLINE_TEMPLATE,
                            extra_loaders=[DictLoader({OFFLINE_TEMPLATE: _OFFLINE})])
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {
        "name": page.stem if page.name != "README.md" else page.parent.name or "README"}})
    return body


def build_site(out: Path = SITE_DIR, progress: bool = True) -> list[Path]:
    """Write the site into ``out`` (emptied first): the README, ``docs/`` and :func:`executed_notebooks`,
    and every page they link to, as HTML, with the files they link to; return the HTML pages written."""
    root = paths.PROJECT_ROOT.resolve()
    if out.exists():
        shutil.rmtree(out)
    to_do = [page.resolve() for page in (*pages(), *executed_notebooks(root))]
    assets: set[Path] = set()
    written = []
    for page in to_do:  # grows as pages link to others
        html = out / _site_name(page).relative_to(root)
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(_convert(page, root, to_do, assets))
        written.append(html)
        if progress:
            print(f"{html.relative_to(out)}", flush=True)
    for asset in sorted(assets):
        copy = out / asset.relative_to(root)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(asset, copy)
    index = out / "index.html"
    index.write_text('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; '
                     'url=README.html"><title>DarioNet, reproduced</title></head>\n'
                     '<body><a href="README.html">README</a></body></html>\n')
    return [index, *written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=SITE_DIR, help=f"where to write (default {SITE_DIR})")
    args = parser.parse_args(argv)
    try:
        written = build_site(args.out)
    except SiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(written)} pages in {args.out}; open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
