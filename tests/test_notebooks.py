"""Every notebook runs headless on the bundled defaults, without error, and draws its figures."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# figures each notebook must draw on the bundled defaults
FIGURES = {
    "01_quickstart": 3,
    "02_delays": 3,
    "03_flush_trick": 3,
    "04_benchmark_report": 1,
    "05_turns_and_confidence": 2,
    "06_long_streams": 2,
    "07_finetune": 3,
}


def test_every_notebook_is_checked():
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(FIGURES)


def test_committed_notebooks_keep_their_outputs_without_errors():
    for name, figures in FIGURES.items():
        book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], name
        assert sum("image/png" in o.get("data", {}) for o in outputs) == figures, name
        assert [c for c in book.cells if "parameters" in c.metadata.get("tags", [])], name


@pytest.mark.slow
def test_notebooks_execute_in_order():
    """02 runs the sweep that 04 reads, so they run in order (about 8 minutes on 2 cores)."""
    for name, figures in FIGURES.items():
        book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        for cell in book.cells:
            if cell.cell_type == "code":
                cell.outputs = []
        NotebookClient(
            book,
            timeout=1800,  # a guard against a hung kernel, not a speed goal: 02's sweep cell took
            # 4 minutes at one thread beside a training job, over 15 at torch's default threads
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        ).execute()
        outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], name
        assert sum("image/png" in o.get("data", {}) for o in outputs) == figures, name
