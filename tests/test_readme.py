import base64
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "eval").glob("*.md"))]
DOCS += sorted((ROOT / "dsmlab").rglob("*.md")) + sorted((ROOT / "data").rglob("README.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = ci[ci.index("# README test command:") + 1]
    assert command.endswith("python -m pytest")
    assert command in (ROOT / "README.md").read_text()


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_every_link_in_the_docs_resolves_to_a_file_or_heading_of_the_repository():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert len(DOCS) >= 8 and not broken


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize(
    ("notebook", "figure"),
    [("02_delays", "delays.png"), ("05_turns_and_confidence", "turns.png")],
)
def test_the_readme_figures_are_the_ones_the_notebooks_drew(notebook, figure):
    book = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())
    images = [
        o["data"]["image/png"]
        for cell in book["cells"]
        for o in cell.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    path = ROOT / "notebooks" / "figures" / figure
    assert f"]({path.relative_to(ROOT)})" in (ROOT / "README.md").read_text()
    assert path.read_bytes() == base64.b64decode(images[0])
