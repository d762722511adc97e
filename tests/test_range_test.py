"""The range test (``lr-find --range-test``): its losses against a plain Optax-style loop, its
smoothing, divergence and rules against plain Python loops, one program per optimizer structure,
its reading on the full-run curve against NumPy, its picture on degenerate results, and refusals.
"""

from __future__ import annotations

import io
import json
import logging
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import cli, data, model, optimizers, range_plots, train
from jaxopt_lab.config import LAYERS_DIMS
from jaxopt_lab.experiments import range_test as rt
from jaxopt_lab.settings import InvalidValue

NAMES = ["gd", "momentum", "adam"]  # two structures: RMSprop's is Adam's without the first moment


# ---------------------------------------------------------------------------------------------
# The program against a plain loop
# ---------------------------------------------------------------------------------------------


def plain_losses(name: str, seed: int, rates: np.ndarray) -> np.ndarray:
    """Each step's mini-batch loss of ``optimizers.<name>`` (GD itself, not momentum with beta 0)
    with the schedule ``step -> rates[step]``, over the params dict, one step per Python loop."""
    X, Y = data.load_moons()
    dtype = jnp.result_type(float)
    X, Y = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)
    table = jnp.asarray(rates, dtype)
    optimizer = optimizers.OPTIMIZERS[name](lambda count: table[count])
    params = model.init_params(LAYERS_DIMS, seed)
    state = optimizer.init(params)
    key, m = train.shuffle_key(seed), X.shape[1]

    @jax.jit
    def step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(model.loss)(params, xb, yb)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses, epoch = [], 0
    while len(losses) < len(rates):
        order = np.asarray(data.epoch_permutation(key, epoch, m))
        start = 0
        for size in data.batch_sizes(m, 64):
            columns = order[start : start + size]
            start += size
            if len(losses) < len(rates):
                params, state, loss = step(params, state, X[:, columns], Y[:, columns])
                losses.append(float(loss))
        epoch += 1
    return np.array(losses)


@pytest.fixture(scope="module")
def float64_test():
    """A float64 range test of GD, momentum and Adam, seeds 3 and 5, 12 steps (two epochs and a
    bit: the 44-example batch included) from 1e-3 to 1e3, with the traces of its programs; then
    another of the same shapes."""
    with jax.enable_x64(True):
        traces = _Traces()
        with traces:
            test = rt.range_test(NAMES, seeds=[3, 5], steps=12, lr_start=1e-3, lr_end=1e3)
        with traces:
            again = rt.range_test(NAMES, seeds=[7, 9], steps=12, lr_start=1e-2, lr_end=1e2)
        yield test, again, traces.count


class _Traces(logging.Handler):
    """Counts traces of the range-test program while in a ``with`` (JAX's compile log, switched
    on globally: the structures trace in worker threads)."""

    def __init__(self):
        super().__init__()
        self.count = []

    def emit(self, record):
        if "Finished tracing range_test_program" in record.getMessage():
            self.count[-1] += 1

    def __enter__(self):
        self.count.append(0)
        self.before = jax.config.jax_log_compiles
        jax.config.update("jax_log_compiles", True)
        logging.getLogger("jax").addHandler(self)

    def __exit__(self, *exc):
        logging.getLogger("jax").removeHandler(self)
        jax.config.update("jax_log_compiles", self.before)


@pytest.mark.parametrize("name", ["gd", "adam"])  # GD itself against momentum with beta 0
def test_losses_equal_a_plain_loop_with_the_rising_rate(float64_test, name):
    test, _, _ = float64_test
    i, j = test.names.index(name), 1  # seed 5: its own parameters and orders, not the first's
    assert test.losses.dtype == np.float64
    np.testing.assert_allclose(test.rates, 1e-3 * 1e6 ** (np.arange(12) / 11), rtol=1e-13)
    expected = plain_losses(name, test.seeds[j], test.rates)
    d = test.diverged_at[i, j]
    kept = slice(None) if d < 0 else slice(0, d)
    np.testing.assert_allclose(test.losses[i, j, kept], expected[kept], rtol=1e-9)
    # the divergence and the masking, from the loop's own losses
    smoothed = plain_smooth(expected)
    assert d == plain_divergence(smoothed)
    if d >= 0:
        assert np.isnan(test.losses[i, j, d:]).all() and np.isnan(test.smoothed[i, j, d:]).all()
    np.testing.assert_allclose(test.smoothed[i, j, kept], smoothed[kept], rtol=1e-9)


def test_one_program_per_structure_and_none_for_the_same_shapes(float64_test):
    _, again, traces = float64_test
    assert traces == [2, 0]  # gd and momentum share one, adam has its own
    assert again.names == NAMES and again.losses.shape == (3, 2, 12)


def test_a_diverging_run_is_masked_from_its_divergence(float64_test):
    test, _, _ = float64_test
    d = test.diverged_at
    assert (d >= 0).any(), "rates up to 1e3 should make some run diverge"
    for i, j in zip(*np.nonzero(d >= 0), strict=True):
        assert np.isfinite(test.losses[i, j, : d[i, j]]).all()
        assert np.isnan(test.losses[i, j, d[i, j] :]).all()


# ---------------------------------------------------------------------------------------------
# Smoothing, divergence and the rules against plain loops
# ---------------------------------------------------------------------------------------------


def plain_smooth(losses, beta=0.98):
    average, out = 0.0, []
    for i, x in enumerate(losses):
        average = beta * average + (1 - beta) * x
        out.append(average / (1 - beta ** (i + 1)))
    return np.array(out)


def plain_divergence(smoothed, k=4.0):
    lowest = math.inf
    for i, s in enumerate(smoothed):
        if not math.isfinite(s):
            return i
        lowest = min(lowest, s)
        if s > k * lowest:
            return i
    return -1


def plain_rules(rates, smoothed, skip=0.1):
    n = len(smoothed)
    ok = [i >= int(skip * n) and not math.isnan(smoothed[i]) for i in range(n)]
    kept = [i for i in range(n) if ok[i]]
    minimum = rates[min(kept, key=lambda i: (smoothed[i], i))] / 10 if kept else math.nan
    falls = [(smoothed[i + 1] - smoothed[i], i) for i in range(n - 1) if ok[i] and ok[i + 1]
             and smoothed[i + 1] < smoothed[i]]  # fmt: skip
    steep = math.sqrt(rates[min(falls)[1]] * rates[min(falls)[1] + 1]) if falls else math.nan
    best, a, run_start = 0, None, None
    for i in range(n - 1):
        if ok[i] and ok[i + 1] and smoothed[i + 1] < smoothed[i]:
            run_start = i if run_start is None else run_start
            if i + 1 - run_start > best:
                best, a = i + 1 - run_start, run_start
        else:
            run_start = None
    valley = rates[a + (2 * best) // 3] if best else math.nan
    return {"valley": valley, "steep": steep, "minimum/10": minimum}


def test_smooth_and_divergence_equal_plain_loops():
    rng = np.random.default_rng(0)
    losses = np.exp(np.cumsum(rng.normal(0, 0.3, (6, 40)), axis=1))
    losses[2, 17] = np.inf
    losses[3, 5] = np.nan
    smoothed = rt.smooth(losses)
    for row, s in zip(losses, smoothed, strict=True):
        expected = plain_smooth(row)
        finite = np.isfinite(expected)
        np.testing.assert_allclose(s[finite], expected[finite], rtol=1e-12)
        assert not np.isfinite(s[~finite]).any()
    assert rt.divergence(smoothed).tolist() == [plain_divergence(s) for s in smoothed]


HAND_MADE = {
    "a valley": [5, 5, 4.8, 4, 2.9, 2, 1.5, 1.4, 1.3, 2, 6, np.nan, np.nan],
    "never falls": [1, 1, 1.5, 2, 2, 3, 4, 5, 6, 7],
    "two runs, the later longer": [9, 9, 8, 7, 7.5, 7, 6, 5, 4, 4.5, 5],
    "all masked": [np.nan] * 10,
    "falls only at the start": [9, 1, 2, 3, 4, 5, 6, 7, 8, 9],
}


@pytest.mark.parametrize("name", list(HAND_MADE))
def test_rules_equal_plain_loops_on_hand_made_curves(name):
    smoothed = np.array(HAND_MADE[name], np.float64)
    rates = rt.rising_rates(1e-4, 1.0, len(smoothed))
    found = rt.suggest(rates, smoothed[None])
    expected = plain_rules(rates, smoothed)
    for rule in rt.RULES:
        np.testing.assert_allclose(found[rule][0], expected[rule], rtol=1e-12, equal_nan=True)
    if name == "a valley":  # step 0 skipped; steps 1..8 fall: 1 + floor(2 * 7 / 3) = step 5
        assert found["valley"][0] == rates[5] and found["minimum/10"][0] == rates[8] / 10
        assert found["steep"][0] == pytest.approx(math.sqrt(rates[3] * rates[4]))
    if name in ("never falls", "all masked", "falls only at the start"):
        assert np.isnan(found["valley"][0]) and np.isnan(found["steep"][0])


def test_rules_equal_plain_loops_on_random_curves():
    rng = np.random.default_rng(1)
    smoothed = np.cumsum(rng.normal(0, 1, (30, 50)), axis=1)
    for row, d in zip(smoothed, rng.integers(5, 60, 30), strict=True):
        row[d:] = np.nan
    rates = rt.rising_rates(1e-5, 10.0, 50)
    found = rt.suggest(rates, smoothed)
    for k, row in enumerate(smoothed):
        expected = plain_rules(rates, row)
        for rule in rt.RULES:
            np.testing.assert_allclose(found[rule][k], expected[rule], rtol=1e-12, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# The command: the table against the JSON's own rows, the picture, refusals
# ---------------------------------------------------------------------------------------------


TRUTH_RATES = np.geomspace(1e-3, 30, 6).tolist()


def truth_rows(names, learning_rates, seeds, **_):
    """The full runs, made up: accuracy peaks near 0.3 and differs by seed; every seed diverges
    at the largest rate, one at the one below (what lr_curve's rows look like, without the
    seconds of training them)."""
    rows = []
    for name in names:
        for rate in learning_rates:
            for seed in seeds:
                accuracy = 0.95 - 0.05 * abs(math.log10(rate / 0.3)) - 0.01 * seed
                diverged = rate == learning_rates[-1] or (rate == learning_rates[-2] and seed == 1)
                rows.append({"optimizer": name, "learning_rate": rate, "seed": int(seed),
                             "diverged_at_epoch": 3 if diverged else None,
                             "final_cost": None if diverged else 1 - accuracy,
                             "accuracy": None if diverged else round(accuracy * 300) / 300})  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def command(tmp_path_factory):
    """``lr-find --range-test --out`` for Adam over 3 seeds: the range test for real, the full
    runs made up (:func:`truth_rows`)."""
    from contextlib import redirect_stdout

    from jaxopt_lab.experiments import lr_find

    out = tmp_path_factory.mktemp("range") / "lr"
    printed = io.StringIO()
    argv = ["lr-find", "--range-test", "--optimizer", "adam", "--from", "1e-3", "--to", "30",
            "--points", "6", "--seeds", "3", "--epochs", "5", "--range-steps", "30",
            "--no-progress", "--out", str(out)]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(printed):
        patch.setattr(lr_find, "lr_curve", truth_rows)
        assert cli.main(argv) == 0
    return json.loads((out / "lr_find.json").read_text()), printed.getvalue(), out


def nearest(rate, grid):
    return min(range(len(grid)), key=lambda k: abs(math.log(rate) - math.log(grid[k])))


def median_lowest_first(values, lowest):
    """The median, a missing value ranked ``lowest``; None if the median is missing."""
    ranked = np.median([lowest if v is None else v for v in values])
    return None if np.isinf(ranked) else float(ranked)


def test_each_rule_is_read_on_the_full_runs_as_numpy_reads_it(command):
    result, printed, _ = command
    curve, found = result["curves"]["adam"], result["range_test"]["optimizers"]["adam"]
    grid, best = curve["learning_rate"], curve["best"]
    assert grid == pytest.approx(TRUTH_RATES)
    accuracy = {(row["learning_rate"], row["seed"]): row["accuracy"] for row in result["rows"]}
    read = 0
    for rule in rt.RULES:
        picks = found["suggestions"][rule]
        r = found["rules"][rule]
        some = [p for p in picks if p is not None]
        assert r["none"] == 3 - len(some)
        if not some:
            assert r["median"] is None
            continue
        assert r["median"] == pytest.approx(np.median(some))
        assert r["p90"] == pytest.approx(np.quantile(some, 0.9))
        if not grid[0] <= r["median"] <= grid[-1]:
            assert r["at"] is None
            continue
        at = grid[nearest(r["median"], grid)]
        there = [accuracy[(at, s)] for s in range(3)]
        assert r["at"] == at and r["diverged"] == there.count(None)
        assert r["accuracy"] == median_lowest_first(there, -np.inf)
        if r["accuracy"] is not None:
            assert r["loss"] == pytest.approx(best["accuracy"] - r["accuracy"])
        own = [None if accuracy[(grid[nearest(p, grid)], s)] is None
               else best["accuracy"] - accuracy[(grid[nearest(p, grid)], s)]
               for s, p in enumerate(picks) if p is not None and grid[0] <= p <= grid[-1]]  # fmt: skip
        assert r["seed_loss"] == median_lowest_first(own, np.inf)
        read += 1
    assert read, "no rule's suggestion could be read on the curve"
    assert "| adam | valley |" in printed
    assert "range test (adam; 3 seeds x 30 steps)" in printed


def test_the_command_writes_the_picture_and_the_markdown(command):
    _, printed, out = command
    assert (out / "range_test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| adam | steep |" in (out / "lr_find.md").read_text()


BAD = [
    (["--range-steps", "1"], "--range-steps must be at least 2"),
    (["--range-steps", "2147483648"], "--range-steps"),
    (["--range-steps", "1000000000", "--optimizer", "adam"], "--range-steps 1000000000 with --seeds 8"),
    (["--range-steps", "ten"], "--range-steps"),
    (["--from", "1", "--to", "0.1"], "--from must be below --to"),
]


@pytest.mark.parametrize(("argv", "says"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_range_test_settings_are_one_line_exit_2(argv, says, capsys):
    assert cli.main(["lr-find", "--range-test", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and says in captured.err


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: rt.range_test("adam", seeds=[0]), "optimizer"),
        (lambda: rt.range_test(["adam"], seeds=[0], steps=1), "steps"),
        (lambda: rt.range_test(["adam"], seeds=[0], lr_start=1.0, lr_end=0.5), "lr_start"),
        (lambda: rt.range_test(["adam"], seeds=[0, 0]), "seeds"),
        (lambda: rt.range_test(["adam"], seeds=range(10**6), steps=10**5), "steps"),
    ],
)
def test_bad_arguments_are_refused_naming_them(call, argument):
    with pytest.raises(InvalidValue) as caught:
        call()
    assert caught.value.name == argument


# ---------------------------------------------------------------------------------------------
# The picture of degenerate results
# ---------------------------------------------------------------------------------------------


def summary_of(suggestions, smoothed, diverged_at, rates, rules=None):
    none = {"median": None}
    return {
        "seeds": [0, 1], "steps": len(rates), "rates": rates,
        "optimizers": {"adam": {"suggestions": suggestions, "smoothed": smoothed,
                                "diverged_at": diverged_at, "rules": rules or {r: none for r in rt.RULES}}},
    }  # fmt: skip


DEGENERATE = {
    "every run diverged": (
        {"adam": {"learning_rate": [0.01, 0.1], "accuracy": {q: [None, None] for q in ("p10", "p50", "p90")},
                  "best": None}},  # fmt: skip
        summary_of({r: [None, None] for r in rt.RULES},
                   {q: [None, None, None] for q in ("p10", "p50", "p90")}, [0, 0], [1e-3, 0.1, 10.0]),
    ),
    "one point, inf and NaN drawn": (
        {"adam": {"learning_rate": [0.1], "accuracy": {q: [0.9] for q in ("p10", "p50", "p90")},
                  "best": {"learning_rate": 0.1, "accuracy": 0.9}}},  # fmt: skip
        summary_of({r: [float("inf"), float("nan")] for r in rt.RULES},
                   {q: [0.7, float("inf"), float("nan")] for q in ("p10", "p50", "p90")},
                   [None, 2], [1e-3, 0.1, 10.0], rules={r: {"median": 0.1} for r in rt.RULES}),
    ),
    "nothing suggested, no curve for it": (
        {},
        summary_of({}, {q: [0.7, 0.6] for q in ("p10", "p50", "p90")}, [None, None], [1e-3, 1.0]),
    ),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_the_picture_draws_degenerate_results_without_a_warning(case):
    curves, summary = DEGENERATE[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = range_plots.plot_range_test(curves, summary)
        png = io.BytesIO()
        figure.savefig(png, format="png")
    assert caught == [], [str(w.message) for w in caught]
    assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
