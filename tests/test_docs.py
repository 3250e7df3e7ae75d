"""The README, docs/ and the model card: every picture, link and heading link points into the repository, and the
README stays short with its test command first."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MODEL_CARD = REPO / "assets" / "weights" / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))

PICTURE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)|<img\s[^>]*?src=[\"']([^\"']+)[\"']")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _prose(doc: Path) -> str:
    """The text a reader sees as links: code blocks and inline code hold none."""
    return INLINE_CODE.sub("", FENCE.sub("", doc.read_text()))


def _local(target: str) -> str | None:
    """The path part of a link into the repository; None for web links, mail and anchors on the same page."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
        return None
    return target.split("#", 1)[0]


def _resolve(doc: Path, target: str) -> Path:
    path = (doc.parent / target).resolve()
    assert path == REPO or REPO in path.parents, f"{doc.name} links to {target}, outside the repository"
    return path


DOCUMENTS = [README, MODEL_CARD, *DOCS]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: str(d.relative_to(REPO)))
def test_every_picture_a_document_shows_is_in_the_repository_and_small(doc):
    pictures = [a or b for a, b in PICTURE.findall(_prose(doc))]
    local = [p for p in map(_local, pictures) if p]
    if doc in (README, MODEL_CARD):
        assert local, f"{doc.relative_to(REPO)} shows no pictures"
    for link in local:
        path = _resolve(doc, link)
        assert path.is_file(), f"{doc.relative_to(REPO)} shows {link}, which is not in the repository"
        assert path.stat().st_size < 2 * 2**20, f"{link} is over 2 MB: a README picture should load quickly"


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: str(d.relative_to(REPO)))
def test_every_relative_link_of_a_document_points_to_a_file_or_folder_that_exists(doc):
    missing = [target for target in LINK.findall(_prose(doc))
               if (path := _local(target)) and not _resolve(doc, path).exists()]
    assert not missing, f"{doc.relative_to(REPO)} links to paths that are not in the repository: {missing}"


def _anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    slugs: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", FENCE.sub("", doc.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = sum(1 for s in slugs if s == slug or re.fullmatch(re.escape(slug) + r"-\d+", s))
        slugs.add(f"{slug}-{n}" if n else slug)
    return slugs


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: str(d.relative_to(REPO)))
def test_every_link_to_a_heading_finds_that_heading(doc):
    broken = []
    for target in LINK.findall(_prose(doc)):
        if "#" not in target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue
        path, anchor = target.split("#", 1)
        page = _resolve(doc, path) if path else doc
        if page.suffix == ".md" and page.is_file() and anchor not in _anchors(page):
            broken.append(target)
    assert not broken, f"{doc.relative_to(REPO)} links to headings that are not there: {broken}"


def test_the_docs_folder_holds_the_pages_the_readme_promises():
    names = {d.name for d in DOCS}
    assert {"results.md", "speed.md", "serving.md", "benchmarks.md"} <= names, names


def test_the_readme_is_short_and_its_test_command_comes_first():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move details to docs/ (at most 200)"
    front_matter = lines[: lines.index("---", 1)]
    assert lines[0] == "---" and "app_file: app.py" in front_matter, "the Space's front matter comes first"
    # .ci/run runs the first line after the marker that starts with `python3 -m venv`.
    marker = next(i for i, line in enumerate(lines) if "TEST-COMMAND" in line)
    assert lines[marker + 1] == "```bash", "the TEST-COMMAND marker sits right before the ```bash fence"
    command = next(i for i in range(marker, min(marker + 4, len(lines))) if lines[i].startswith("python3 -m venv"))
    assert "-m pytest" in lines[command]
    assert command < 40, f"the test command is on line {command + 1}: keep it within the README's first 40 lines"


def test_the_link_checker_sees_links_and_pictures_and_skips_code_and_the_web(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('See [a](docs/a.md#part), [b](b.md "title"), [web](https://x.org/y), [mail](mailto:a@b.c),\n'
                    '[top](#top),\n'
                    '![p](pic.png "title") and <img src="phone.png" width="9">.\n'
                    "```bash\npython -m x [--flag](not-a-link)\n```\n`[code](nor-this)`\n")
    text = _prose(page)
    assert [_local(t) for t in LINK.findall(text)] == ["docs/a.md", "b.md", None, None, None]
    assert [a or b for a, b in PICTURE.findall(text)] == ["pic.png", "phone.png"]
    page.write_text("# The app\n## Ablations: how it was chosen\n```\n# not a heading\n```\n## The app\n")
    assert _anchors(page) == {"the-app", "ablations-how-it-was-chosen", "the-app-1"}
