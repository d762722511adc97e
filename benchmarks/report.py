"""Turn the benchmark's rows into markdown tables and small PNG charts (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def flops_per_step(layers_dims, mini_batch_size: int) -> int:
    """Multiply-add FLOPs of one full mini-batch update (elementwise work left out).

    Forward ``2 b n_l n_{l-1}`` per layer; backward the same for every ``dW_l`` and again for every
    ``dA_{l-1}`` except the input's.
    """
    products = [a * b for a, b in zip(layers_dims[:-1], layers_dims[1:], strict=False)]
    return 2 * mini_batch_size * (3 * sum(products) - products[0])


def _rows(result: dict, section: str) -> list[dict]:
    return [row for row in result["rows"] if row["section"] == section]


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def _table(header: list[str], lines: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(v) for v in line) + " |" for line in lines]
    return "\n".join(out)


# Each table: (section, title, [(column header, how to read it off a row), ...]).
_TABLES = [
    ("contenders", "Contenders (speed-up over the NumPy course loop, float64, same process)", [
        ("contender", lambda r: r["name"]),
        ("dtype", lambda r: r["dtype"]),
        ("compile s", lambda r: r["compile_s"]),
        ("run s", lambda r: r["run_s"]),
        ("us/step", lambda r: r["us_per_step"]),
        ("x NumPy", lambda r: r["speedup_vs_numpy"]),
        ("final cost", lambda r: f"{r['final_cost']:.6f}"),
    ]),
    ("hand_vs_optax", "Hand-rolled vs Optax Adam inside the fused fit (time ratio, goal <= 1.05)", [
        ("dtype", lambda r: r["dtype"]),
        ("hand us/step", lambda r: r["hand_us_per_step"]),
        ("Optax us/step", lambda r: r["optax_us_per_step"]),
        ("ratio", lambda r: f"{r['time_ratio']:.3f}"),
        ("rounds", lambda r: r["rounds"]),
    ]),
    ("sweep", "Sweep throughput (Adam runs differing in learning rate, one vmapped program)", [
        ("how", lambda r: r["name"]),
        ("configs", lambda r: r["configs"]),
        ("dtype", lambda r: r["dtype"]),
        ("compile s", lambda r: r["compile_s"]),
        ("run s", lambda r: r["run_s"]),
        ("config-steps/s", lambda r: f"{r['config_steps_per_s']:,.0f}"),
        ("us/config-step", lambda r: r["us_per_config_step"]),
    ]),
    ("scaling_samples", "Scaling with the data (layers [2, 5, 2, 1])", [
        ("n_samples", lambda r: f"{r['n_samples']:,}"),
        ("contender", lambda r: r["name"]),
        ("dtype", lambda r: r["dtype"]),
        ("epochs", lambda r: r["epochs"]),
        ("ms/epoch", lambda r: r["s_per_epoch"] * 1e3),
        ("us/step", lambda r: r["us_per_step"]),
    ]),
    ("scaling_width", "Scaling with the width (layers [2, w, w, 1], the course's 300 samples)", [
        ("width", lambda r: r["width"]),
        ("contender", lambda r: r["name"]),
        ("dtype", lambda r: r["dtype"]),
        ("epochs", lambda r: r["epochs"]),
        ("ms/epoch", lambda r: r["s_per_epoch"] * 1e3),
        ("us/step", lambda r: r["us_per_step"]),
        ("GFLOP/s", lambda r: r["gflops_per_s"]),
    ]),
]  # fmt: skip


def markdown(result: dict) -> str:
    """All tables of a run, with the machine and settings they were measured under."""
    machine, settings = result["machine"], result["settings"]
    parts = [
        "## Machine",
        "",
        f"{machine['cpu']}, {machine['cpu_count']} CPUs; {machine['platform']}; Python "
        f"{machine['python']}; jax {machine['jax']}, jaxlib {machine['jaxlib']}, optax "
        f"{machine['optax']}, numpy {machine['numpy']}, torch {machine['torch'] or 'not installed'}; "
        f"JAX backend `{machine['backend']}` ({machine['device_kind']}); code at `{machine['git']}`; "
        f"{machine['date']}.",
        "",
        f"Command: `{settings['command']}`. Work: Adam lr {settings['learning_rate']}, layers "
        f"{settings['layers']}, mini-batch {settings['mini_batch_size']}, {settings['epochs']} epochs "
        f"x {settings['steps_per_epoch']} steps. Median of {settings['runs']} interleaved runs after a "
        "warm-up.",
    ]
    for section, title, columns in _TABLES:
        rows = _rows(result, section)
        if not rows:
            continue
        lines = [[read(row) for _, read in columns] for row in rows]
        parts += ["", f"## {title}", "", _table([header for header, _ in columns], lines)]
        if section == "contenders":
            shuffles = {
                r["dtype"]: r["first_run_host_shuffles_us_per_step"]
                for r in rows
                if "first_run_host_shuffles_us_per_step" in r
            }
            parts += ["", "A first `fit` also draws the course's shuffles on the host (cached "
                      "for later runs, so not in the table): " + ", ".join(
                          f"{us:.2f} us/step ({dtype})" for dtype, us in shuffles.items()) + "."]  # fmt: skip
    return "\n".join(parts) + "\n"


def charts(result: dict, out: Path) -> list[Path]:
    """Small PNGs of whichever sections ran: contenders, sweep throughput, scaling."""
    paths = []
    rows = _rows(result, "contenders")
    if rows:
        paths.append(_contenders_chart(rows, out / "contenders.png"))
    rows = _rows(result, "sweep")
    if rows:
        paths.append(_sweep_chart(rows, out / "sweep.png"))
    if _rows(result, "scaling_samples") or _rows(result, "scaling_width"):
        paths.append(_scaling_chart(result, out / "scaling.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _contenders_chart(rows: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=80)
    values = [r["us_per_step"] for r in rows]
    colors = [
        "tab:gray" if r["name"].startswith("numpy")
        else "tab:blue" if r["jax_dtype"] == "float32"
        else "tab:orange"
        for r in rows
    ]  # fmt: skip
    ax.barh(range(len(rows)), values, color=colors)
    ax.set_yticks(range(len(rows)), [f"{r['name']} [{r['dtype']}]" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(min(values) / 2, max(values) * 8)  # room for the labels
    ax.set_xlabel("microseconds per mini-batch step (log)")
    ax.set_title("Per step, one run (blue: float32 process, orange: float64)", fontsize=9)
    for i, r in enumerate(rows):
        label = f" {values[i]:.1f} us, {r['speedup_vs_numpy']:.1f}x"
        ax.text(values[i], i, label, va="center", fontsize=6)
    return _save(fig, path)


def _sweep_chart(rows: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=80)
    ax.plot([r["configs"] for r in rows], [r["config_steps_per_s"] for r in rows], "o-")
    ax.set(xscale="log", yscale="log", xlabel="configurations in one vmapped program")
    ax.set_ylabel("config-steps per second")
    ax.set_title("Sweep throughput", fontsize=9)
    return _save(fig, path)


def _scaling_chart(result: dict, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=80)
    for prefix, style in (("numpy", "s--"), ("fused", "o-")):
        rows = [r for r in _rows(result, "scaling_samples") if r["name"].startswith(prefix)]
        if rows:
            x, y = [r["n_samples"] for r in rows], [r["s_per_epoch"] for r in rows]
            left.plot(x, y, style, label=f"{rows[0]['name']} [{rows[0]['dtype']}]")
        rows = [r for r in _rows(result, "scaling_width") if r["name"].startswith(prefix)]
        if rows:
            x, y = [r["width"] for r in rows], [r["us_per_step"] for r in rows]
            right.plot(x, y, style, label=f"{rows[0]['name']} [{rows[0]['dtype']}]")
    left.set(xscale="log", yscale="log", xlabel="n_samples", ylabel="seconds per epoch")
    left.set_title("Data size, layers [2,5,2,1]", fontsize=9)
    right.set(xscale="log", yscale="log", xlabel="hidden width w", ylabel="us per step")
    right.set_title("Width, layers [2,w,w,1], 300 samples", fontsize=9)
    right.legend(fontsize=7)
    return _save(fig, path)
