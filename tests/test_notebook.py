"""The lesson notebook, executed as a learner's Jupyter would: nbclient drives a real IPython kernel
through every cell; the values it prints are then checked against the course's figures."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from jaxopt_lab import data

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "optimization_methods.ipynb"
PAIRED_SCRIPT = NOTEBOOK.with_suffix(".py")
# Chapters 8 and 9 in a minute: 3 seeds of 1000 epochs, 2 learning rates. Adam's runs then have
# the same shape in both chapters (3 seeds x 2), so chapter 9 reuses that compiled program.
SMALL = {
    "JAXOPT_LAB_NOTEBOOK_SEEDS": "3",
    "JAXOPT_LAB_NOTEBOOK_EPOCHS": "1000",
    "JAXOPT_LAB_NOTEBOOK_POINTS": "2",
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> tuple[nbformat.NotebookNode, float]:
    """The notebook after a full run, and its wall time.

    The kernel is this interpreter (a kernel spec written for the test), so it sees exactly the
    packages and the ``jaxopt_lab`` the tests see, whatever ``python`` is first on PATH.
    """
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels" / "jaxopt-lab-test"
    kernels.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "jaxopt_lab tests",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=240, kernel_name="jaxopt-lab-test",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )  # fmt: skip
    env_path = str(kernels.parent.parent)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", env_path)
        patch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        for name, value in SMALL.items():
            patch.setenv(name, value)
        start = time.perf_counter()
        client.execute()
    return notebook, time.perf_counter() - start


def printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream" and output.get("name") == "stdout"
    )


def test_every_cell_runs_without_error_in_under_a_minute(executed):
    notebook, seconds = executed
    errors = [
        output for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs if output.output_type == "error"
    ]  # fmt: skip
    assert errors == []
    assert seconds < 60, f"the notebook took {seconds:.0f} s"


def test_the_seven_accuracies_are_the_course_s(executed):
    found = re.findall(r"accuracy (.+): this run ([0-9.]+), course ([0-9.]+)", printed(executed[0]))
    recorded = [run["accuracy"] for run in data.course_results()]
    assert [float(this) for _, this, _ in found] == recorded
    assert [float(course) for _, _, course in found] == recorded


def test_hand_written_rules_equal_their_optax_twins(executed):
    found = re.findall(
        r"twin max \|difference\| (\w+): hand vs Optax ([0-9.e+-]+), "
        r"jaxopt_lab.optimizers vs Optax ([0-9.e+-]+)",
        printed(executed[0]),
    )
    assert [name for name, *_ in found] == ["gd", "momentum", "adam"]
    for name, hand, library in found:
        assert float(hand) < 1e-6 and float(library) < 1e-6, name


def test_jax_grad_agrees_with_finite_differences(executed):
    (error,) = re.findall(
        r"finite-difference check: max relative error ([0-9.e+-]+)", printed(executed[0])
    )
    assert float(error) < 1e-5


def test_the_python_loop_and_the_fused_loop_train_the_same_weights(executed):
    text = printed(executed[0])
    (difference,) = re.findall(r"max \|difference\| of the final weights ([0-9.e+-]+)", text)
    assert float(difference) < 1e-10
    python_us, fused_us = (
        float(re.search(rf"{name}: ([0-9.]+) us per mini-batch step", text).group(1))
        for name in ("Python loop", "fused loop")
    )
    assert fused_us < python_us


def test_figures_are_drawn_inline(executed):
    pictures = [
        output for cell in executed[0].cells if cell.cell_type == "code"
        for output in cell.outputs if "image/png" in output.get("data", {})
    ]  # fmt: skip
    # data, mini-batches, cost curves, boundaries, decay, paths; seeds, cost bands, learning rates
    assert len(pictures) >= 9


def beats_table(text: str) -> dict[tuple[str, str], float]:
    """The printed paired comparison: (row's method, column's method) -> share."""
    rows = re.findall(r"^\| \((\d+)\) (.+?) \| (.+) \|$", text, flags=re.MULTILINE)
    methods = {int(i): method for i, method, _ in rows}
    return {
        (method, methods[j + 1]): float(cell.strip().rstrip("%")) / 100
        for _, method, cells in rows
        for j, cell in enumerate(cells.split("|"))
        if cell.strip()
    }


def test_the_seeds_chapter_says_what_its_numbers_say(executed):
    text = printed(executed[0])
    assert "21 runs (7 x 3 seeds x 1000 epochs) and the course's own seven" in text
    shares = beats_table(text)
    assert len(shares) == 7 * 6
    claims = re.findall(r"(holds on almost every seed|holds on most seeds, not all|is reversed on "
                        r"most seeds|is not settled by one seed: neither is ahead on most): (.+?) "
                        r"is more accurate than (.+?) on (\d+)% of the 3 seeds, .+? than .+? on "
                        r"(\d+)%, the rest tie", text)  # fmt: skip
    # Adam over momentum, momentum over GD, decay rescuing GD and momentum
    assert len(claims) == 4
    for verdict, a, b, ahead, behind in claims:
        assert float(ahead) == round(100 * shares[(a, b)])
        assert float(behind) == round(100 * shares[(b, a)])
        x, y = shares[(a, b)], shares[(b, a)]
        expected = ("holds on almost every seed" if x >= 0.9 else
                    "holds on most seeds, not all" if x >= 0.5 and x > y else
                    "is reversed on most seeds" if y >= 0.5 and y > x else
                    "is not settled by one seed: neither is ahead on most")  # fmt: skip
        assert verdict == expected
    assert re.search(r"their accuracies differ by [0-9.]+ on average, so momentum", text)


def test_the_learning_rate_chapter_reports_the_four_optimizers(executed):
    text = printed(executed[0])
    found = re.findall(r"^\| (gd|momentum|rmsprop|adam) \| ([0-9.e+-]+) \|.+\(x([0-9.e+]+)\)", text,
                       flags=re.MULTILINE)  # fmt: skip
    assert [name for name, _, _ in found] == ["gd", "momentum", "rmsprop", "adam"]
    factors = {name: float(factor) for name, _, factor in found}
    (most,) = re.findall(r"The most forgiving here is (\w+)\.", text)
    assert factors[most] == max(factors.values())


def test_the_notebook_is_stored_without_outputs_and_matches_its_script():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    script = jupytext.read(PAIRED_SCRIPT)
    cells = [(c.cell_type, c.source) for c in notebook.cells]
    assert cells == [(c.cell_type, c.source) for c in script.cells]
