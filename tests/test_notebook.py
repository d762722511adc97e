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
import numpy as np
import pytest
from nbclient import NotebookClient
from scipy import stats as scipy_stats

from jaxopt_lab import data, runs

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "optimization_methods.ipynb"
PAIRED_SCRIPT = NOTEBOOK.with_suffix(".py")
# Chapters 8 and 9 in a minute: 3 seeds of 1000 epochs, 2 learning rates. Adam's runs then have
# the same shape in both chapters (3 seeds x 2), so chapter 9 reuses that compiled program. Below
# 5 seeds the tables show no intervals and list the seeds' values instead: the tests below derive
# the pairs' evidence and the locations from those values.
SEEDS = 3
SMALL = {
    "JAXOPT_LAB_NOTEBOOK_SEEDS": str(SEEDS),
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
    # data, mini-batches, cost curves, boundaries, decay, paths; seeds, cost bands, time to
    # target, learning rates, range test
    assert len(pictures) >= 11
    for drawer in ("plot_time_to_target", "plot_range_test"):
        (cell,) = [c for c in executed[0].cells if c.cell_type == "code" and drawer in c.source]
        assert any("image/png" in output.get("data", {}) for output in cell.outputs), drawer


def test_no_cell_writes_to_stderr(executed):
    """No warning (matplotlib's, NumPy's, JAX's) reaches the learner: a kernel shows them as
    stderr output of the cell."""
    written = [
        output.text for cell in executed[0].cells if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream" and output.get("name") == "stderr"
    ]  # fmt: skip
    assert written == []


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
                        r"(\d+)%, the rest tie \(sign test p ([0-9.e+-]+)\)", text)  # fmt: skip
    # Adam over momentum, momentum over GD, decay rescuing GD and momentum
    assert len(claims) == 4
    for verdict, a, b, ahead, behind, p in claims:
        assert float(ahead) == round(100 * shares[(a, b)])
        assert float(behind) == round(100 * shares[(b, a)])
        wins, losses = round(SEEDS * shares[(a, b)]), round(SEEDS * shares[(b, a)])
        assert float(p) == pytest.approx(sign_test(wins, losses), rel=0.05)
        x, y = shares[(a, b)], shares[(b, a)]
        expected = ("holds on almost every seed" if x >= 0.9 else
                    "holds on most seeds, not all" if x >= 0.5 and x > y else
                    "is reversed on most seeds" if y >= 0.5 and y > x else
                    "is not settled by one seed: neither is ahead on most")  # fmt: skip
        assert verdict == expected
    assert re.search(r"their accuracies differ by [0-9.]+ on average, so momentum", text)


def sign_test(wins: int, losses: int) -> float:
    """SciPy's exact two-sided binomial test of the wins among the seeds that did not tie."""
    return 1.0 if wins + losses == 0 else scipy_stats.binomtest(wins, wins + losses).pvalue


def table_rows(text: str, header_start: str) -> list[list[str]]:
    """The cells of every row of the printed Markdown table whose header starts so."""
    lines = text.splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.startswith(header_start)]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def seed_values(text: str) -> dict[str, np.ndarray]:
    """The seeds' accuracies as listed below the tables, per method (NaN: diverged)."""
    listing = text.split("The values, seed by seed (accuracy / final cost):\n", 1)[1]
    found = {}
    for line in listing.splitlines():
        if not line.startswith("- "):
            break
        method, values = line[2:].split(": ", 1)
        found[method] = np.array([
            [np.nan, np.nan] if value == "diverged" else [float(v) for v in value.split(" / ")]
            for value in values.split(", ")
        ])  # fmt: skip
    return found


METHODS = [label for label, _ in runs.COURSE_RUNS]
OPTIMIZERS = ["gd", "momentum", "rmsprop", "adam"]
RULES = ["valley", "steep", "minimum/10"]


def test_below_five_seeds_the_tables_list_the_values_not_intervals(executed):
    """With 3 seeds no interval is printed (there is none to check within [0, 1]); the locations
    printed are those of the listed values, which are accuracies on 300 points."""
    text = printed(executed[0])
    values = seed_values(text)
    assert list(values) == METHODS
    rows = table_rows(text, f"| method | accuracy, mean ± std over {SEEDS} seeds")
    assert [row[0] for row in rows] == METHODS
    for method, spread, t, boot, median, iqm, *_ in rows:
        accuracy = values[method][:, 0]
        assert accuracy.shape == (SEEDS,) and np.all((accuracy >= 0) & (accuracy <= 1))
        assert np.allclose(accuracy * 300, np.round(accuracy * 300), atol=0.16)  # k / 300
        assert (t, boot) == ("-", "-") and "(" not in median + iqm
        mean = float(spread.split(" ± ")[0])
        assert mean == pytest.approx(np.mean(accuracy), abs=0.0011)
        assert float(median) == pytest.approx(np.median(accuracy), abs=0.0006)
        assert float(iqm) == pytest.approx(scipy_stats.trim_mean(accuracy, 0.25), abs=0.0011)
    timed = table_rows(text, f"| time to target, {SEEDS} seeds |")
    assert [row[2] for row in timed] == ["-"] * len(METHODS)


def test_the_pairs_evidence_follows_from_the_seeds_values(executed):
    text = printed(executed[0])
    accuracy = {m: v[:, 0] for m, v in seed_values(text).items()}
    shares = beats_table(text)
    rows = table_rows(text, "| first vs second, accuracy on the same seeds |")
    pairs = [tuple(row[0].split(" vs ")) for row in rows]
    assert pairs == [(a, b) for i, a in enumerate(METHODS) for b in METHODS[i + 1 :]]
    for (a, b), (_, counts, p, better, difference) in zip(pairs, rows, strict=True):
        x = np.where(np.isnan(accuracy[a]), -np.inf, accuracy[a])  # diverged: below every value
        y = np.where(np.isnan(accuracy[b]), -np.inf, accuracy[b])
        wins, ties, losses = (int(n) for n in counts.split(" / "))
        # 3 decimals keep the order of accuracies k / 300 (they differ by 0.0033 or more)
        assert (wins, ties, losses) == (np.sum(x > y), np.sum(x == y), np.sum(x < y))
        assert round(100 * wins / SEEDS) == round(100 * shares[(a, b)])
        assert round(100 * losses / SEEDS) == round(100 * shares[(b, a)])
        assert float(p) == pytest.approx(sign_test(wins, losses), rel=0.005)
        every = np.mean((x[:, None] > y[None]) + 0.5 * (x[:, None] == y[None]))
        assert float(better) == pytest.approx(every, abs=0.0006)  # no interval below 5 seeds
        both = np.isfinite(x) & np.isfinite(y)
        assert float(difference) == pytest.approx(np.mean(x[both] - y[both]), abs=0.0011)


def test_the_time_to_target_table_and_its_fastest_sentence(executed):
    text = printed(executed[0])
    final_cost = {m: v[:, 1] for m, v in seed_values(text).items()}
    rows = table_rows(text, f"| time to target, {SEEDS} seeds | cost <= 0.4: median epochs |")
    assert [row[0] for row in rows] == METHODS
    fastest = {}
    for method, median, _, never, first in rows:
        never, fastest[method] = float(never.rstrip("%")) / 100, float(first.rstrip("%")) / 100
        for share in (never, fastest[method]):
            assert round(share * SEEDS) == pytest.approx(share * SEEDS, abs=0.02)  # k of 3
        # the median of 3 is never when 2 or 3 are; else one seed's whole epochs
        assert (median == "never") == (never > 0.5)
        if median != "never":
            assert 1 <= int(median) <= 1000
        # a run whose last epoch's cost is below 0.4 reached 0.4 at some epoch
        assert round(never * SEEDS) <= np.sum(~(final_cost[method] < 0.39995))
        assert round(fastest[method] * SEEDS) <= SEEDS - round(never * SEEDS)  # fastest: got there
    # on every seed that some run reached, some run was the fastest (ties count for each)
    reached = max(SEEDS - round(float(row[3].rstrip("%")) / 100 * SEEDS) for row in rows)
    assert sum(round(share * SEEDS) for share in fastest.values()) >= reached
    most = max(fastest.values())
    if most == 0:
        assert f"No run reached cost <= 0.4 on any of the {SEEDS} seeds" in text
        return
    ((named, share),) = re.findall(r"Fastest to cost <= 0\.4 on the most seeds: (.+) \((\d+)% of "
                                   r"the", text)  # fmt: skip
    assert named.split(" and ") == [m for m in METHODS if fastest[m] == most]
    assert float(share) == round(100 * most)


def test_the_learning_rate_chapter_reports_the_four_optimizers(executed):
    text = printed(executed[0])
    found = re.findall(r"^\| (gd|momentum|rmsprop|adam) \| ([0-9.e+-]+) \|.+\(x([0-9.e+]+)\)", text,
                       flags=re.MULTILINE)  # fmt: skip
    assert [name for name, _, _ in found] == ["gd", "momentum", "rmsprop", "adam"]
    factors = {name: float(factor) for name, _, factor in found}
    (most,) = re.findall(r"The most forgiving here is (\w+)\.", text)
    assert factors[most] == max(factors.values())


def learning_rate_table(text: str) -> dict[str, list[str]]:
    """lr_find_table's rows by optimizer: best rate, accuracy, cost, range within, diverged."""
    rows = table_rows(text, "| optimizer | best learning rate |")
    return {row[0]: row[1:] for row in rows}


def range_test_rows(text: str) -> list[list[str]]:
    return table_rows(text, "| optimizer | rule | suggested rate (median) |")


def rate_read(there: str) -> float | None:
    """The curve's rate a suggestion was read at: 'A at R' or 'diverged (k of n) at R'."""
    return None if there == "outside the curve" else float(there.split(" at ")[-1])


def test_the_range_test_names_every_rule_for_every_optimizer_and_reads_it_on_the_curve(executed):
    text = printed(executed[0])
    rows, curves = range_test_rows(text), learning_rate_table(text)
    assert [row[:2] for row in rows] == [[name, rule] for name in OPTIMIZERS for rule in RULES]
    grid = np.geomspace(1e-5, 10, int(SMALL["JAXOPT_LAB_NOTEBOOK_POINTS"]))  # lr_from, lr_to
    for name, _, median, spread, there, best, loss, seed_loss in rows:
        best_rate, best_accuracy = curves[name][:2]
        assert best == ("-" if best_rate.startswith("none") else f"{best_accuracy} at {best_rate}")
        if median.startswith("none"):
            assert [spread, there, loss, seed_loss] == ["-"] * 4
            continue
        low, high = (float(v) for v in spread.split(" to "))
        median = float(median.split(" (")[0])
        assert 1e-6 <= low <= median <= high <= 10  # minimum/10 may go a tenth below 1e-5
        at = rate_read(there)
        if at is None:
            assert not grid[0] * 0.995 <= median <= grid[-1] * 1.005
            continue
        assert at == pytest.approx(grid[np.argmin(np.abs(np.log(grid / median)))], rel=0.005)
        if there.startswith("diverged") or best == "-":
            continue
        accuracy = float(there.split(" at ")[0])
        assert 0 <= accuracy <= 1 and 0 <= float(best_accuracy) <= 1
        assert float(loss) == pytest.approx(float(best_accuracy) - accuracy, abs=0.0011)
        assert -1 <= float(seed_loss) <= 1  # a seed at its own rate may beat the best median
    (runs_line,) = re.findall(r"(\d+) runs in ([0-9.]+) s \(the range test ([0-9.]+) s of it\)",
                              text)  # fmt: skip
    assert int(runs_line[0]) == len(OPTIMIZERS) * len(grid) * SEEDS
    assert float(runs_line[2]) <= float(runs_line[1])


def test_whether_to_trust_the_finder_follows_from_the_range_test_table(executed):
    text = printed(executed[0])
    rows, curves = range_test_rows(text), learning_rate_table(text)
    said = re.findall(
        r"^(\w+): (trust any of the three rules|trust only .+?|do not trust the finder) here\. "
        r"Within 0\.01 of the best median accuracy at the seeds' median suggestion: (.+?); also "
        r"for one seed at its own suggestion: (.+?)\.?$", text, flags=re.MULTILINE,
    )  # fmt: skip
    assert [name for name, *_ in said] == [n for n in OPTIMIZERS if curves[n][3] != "-"]

    def close(cell: str) -> bool:  # 3 decimals tell losses apart: they are multiples of 1/1200
        return cell != "-" and float(cell) <= 0.0100001

    for name, verdict, at_median, also in said:
        mine = {row[1]: row for row in rows if row[0] == name}
        expected_median = [rule for rule in RULES if close(mine[rule][6])]
        expected_also = [rule for rule in expected_median if close(mine[rule][7])]
        assert at_median == (", ".join(expected_median) or "none")
        assert also == (", ".join(expected_also) or "none")
        assert verdict == (
            "trust any of the three rules" if expected_also == RULES else
            f"trust only {' and '.join(expected_also)}" if expected_also else
            "do not trust the finder"
        )  # fmt: skip


def test_the_notebook_is_stored_without_outputs_and_matches_its_script():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    script = jupytext.read(PAIRED_SCRIPT)
    cells = [(c.cell_type, c.source) for c in notebook.cells]
    assert cells == [(c.cell_type, c.source) for c in script.cells]
