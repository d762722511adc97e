"""One long table of an experiment's runs, the file any tool loads: one row per run and seed,
every setting, the seed and every outcome as columns, in ``runs.csv`` and, when ``pyarrow`` is
installed (the ``parquet`` extra), ``runs.parquet``, with what produced it beside them
(:func:`metadata`): in ``runs.meta.json`` for the CSV file, in the Parquet schema's key-value
metadata (``jaxopt_lab``, and ``PANDAS_ATTRS``, which ``pandas.read_parquet`` puts in ``.attrs``).

Each column has one kind, the same in both files: ``int`` (int64), ``float`` (float64; a
float32 run's value widened exactly), ``bool`` or ``text``. A missing value (a diverged run's
metrics, a course-mode run's seed, a key some rows lack) is an empty CSV field and a Parquet
null; pandas reads it as NaN from both, so an int or bool column with a missing value comes
back as float64 (bool as 1.0/0.0) from either file. Empty text counts as missing: CSV cannot
tell the two apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from jaxopt_lab import __version__, data, runtime
from jaxopt_lab.settings import InvalidValue
from jaxopt_lab.table import RunTable, is_real

CSV_NAME = "runs.csv"
PARQUET_NAME = "runs.parquet"
META_NAME = "runs.meta.json"  # the CSV file's metadata (Parquet carries its own)
META_KEY = b"jaxopt_lab"  # the Parquet schema's metadata key holding the same JSON
PANDAS_ATTRS_KEY = b"PANDAS_ATTRS"  # pandas.read_parquet turns this key into DataFrame.attrs
CSV_CHUNK_RUNS = 65_536  # runs laid out at a time (a few MiB of bytes)
_INT64 = (-(2**63), 2**63 - 1)


class Column(NamedTuple):
    """One column of the long table. Run ``i`` holds ``values[i]``, or ``values[codes[i]]``
    when ``codes`` is set (a setting of a sweep: its few values and each run's position)."""

    kind: str  # "int", "float", "bool" or "text"
    values: np.ndarray  # int64, float64, bool or object (str); "" / 0 where missing
    missing: np.ndarray  # bool, the shape of values
    codes: np.ndarray | None = None  # shape=(runs,), int64

    @property
    def runs(self) -> int:
        return len(self.values if self.codes is None else self.codes)


def write_long_table(
    out: str | Path,
    runs: RunTable | Sequence[Mapping[str, Any]],
    *,
    experiment: str,
    settings: Mapping[str, Any] | None = None,
    by_method: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``runs.csv``, ``runs.meta.json`` and (with pyarrow) ``runs.parquet`` into ``out``,
    each atomically (:func:`runtime.atomic_write`).

    Args:
      out: the folder.
      runs: result rows (dicts: a nested dict becomes ``key.subkey`` columns, a list JSON text),
        or a :class:`RunTable`, written column by column without a dict per run (a million runs
        take seconds).
      experiment: its name, e.g. ``"lr_find"``, for the metadata.
      settings: settings every run shares (a mapping or a :class:`RunConfig`): a column each
        where the runs do not carry it, and in the metadata.
      by_method: per method label, the settings of the rows whose ``method`` is that label (a
        mapping or a :class:`RunConfig` each); also in the metadata as ``methods``.

    Returns:
      The files written.

    Raises:
      InvalidValue: ``runs`` is neither a RunTable nor a sequence of dicts, ``experiment`` is
        not a name, or ``settings`` or ``by_method`` (used with rows only) is not a mapping of
        settings.
    """
    if not isinstance(experiment, str) or not experiment:
        raise InvalidValue("experiment", f"must be a non-empty name, got {experiment!r}")
    settings = _as_dict(settings or {}, "settings")
    if not isinstance(by_method or {}, Mapping):
        raise InvalidValue("by_method", f"must map method labels to settings, got {by_method!r}")
    methods = {str(k): _as_dict(v, "by_method") for k, v in (by_method or {}).items()}
    columns = long_columns(runs, settings=settings, by_method=methods)
    meta = metadata(experiment, columns, settings=settings, by_method=methods)
    out = Path(out)
    written = [
        runtime.atomic_write(out / CSV_NAME, lambda f: write_csv(f, columns)),
        runtime.write_json(out / META_NAME, meta),
    ]
    arrow = _pyarrow()
    if arrow is not None:
        table = parquet_table(columns, meta, arrow[0])
        written.append(runtime.atomic_write(out / PARQUET_NAME,
                                            lambda f: arrow[1].write_table(table, f)))  # fmt: skip
    return written


def long_columns(
    runs: RunTable | Sequence[Mapping[str, Any]],
    *,
    settings: Mapping[str, Any] | None = None,
    by_method: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Column]:
    """The long table's columns, in order: the shared settings, a row's method settings, then
    the runs' own fields in order of first appearance (a run's own value wins)."""
    settings, by_method = dict(settings or {}), dict(by_method or {})
    if isinstance(runs, RunTable):
        return _table_columns(runs, settings)
    if (
        isinstance(runs, (str, bytes, Mapping))
        or not isinstance(runs, Sequence)
        or not all(isinstance(row, Mapping) for row in runs)
    ):
        raise InvalidValue(
            "runs", f"must be a RunTable or a list of dicts, got {type(runs).__name__}"
        )
    merged = [_flatten({**settings, **by_method.get(row.get("method"), {}), **row}) for row in runs]
    names = dict.fromkeys(_flatten(settings))
    for row in merged:
        names.update(dict.fromkeys(row))
    return {name: column_of([row.get(name) for row in merged]) for name in names}


def metadata(
    experiment: str,
    columns: Mapping[str, Column],
    *,
    settings: Mapping[str, Any] | None = None,
    by_method: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """What produced the table: the experiment and its settings, the package, JAX and device,
    the precision of the runs' floats, the seed scheme, and every column's kind.

    ``seed_scheme`` is ``"course"`` (no run has a seed: the course's NumPy randomness, seed 3
    for the initial parameters and ``11 + epoch`` for each epoch's shuffle), ``"seed mode"``
    (every run has a seed: ``jax.random`` keys from it, epochs in the order named by
    ``epoch_order``, :data:`data.EPOCH_ORDER`) or ``"course and seed mode"`` (the runs without
    a seed are the course's). ``epoch_order`` is None without seed mode."""
    env = runtime.environment()
    seeded = _seeded(columns.get("seed"))
    scheme = (
        "course" if not seeded.any() else "seed mode" if seeded.all() else "course and seed mode"
    )
    meta = {
        "experiment": experiment,
        "rows": next(iter(columns.values())).runs if columns else 0,
        "jaxopt_lab_version": __version__,
        "jax_version": env["jax_version"],
        "backend": env["backend"],
        "device": env["device"],
        "precision": env["float"],
        "seed_scheme": scheme,
        "epoch_order": data.EPOCH_ORDER if seeded.any() else None,
        "settings": _json_ready(dict(settings or {})),
        "columns": {name: column.kind for name, column in columns.items()},
    }
    if by_method:
        meta["methods"] = _json_ready(dict(by_method))
    return meta


def column_of(values: Sequence[Any]) -> Column:
    """A column from one value per run (None or ``""`` where missing): ints (within int64) make
    an int column, numbers a float column, bools a bool column (float 1/0 with a missing value),
    anything else text (``repr`` of a float, JSON of a list)."""
    values = [_plain(v) for v in values]
    missing = np.array([v is None for v in values], dtype=bool)
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present) and present and not missing.any():
        return Column("bool", np.array(values, dtype=bool), missing)
    if all(isinstance(v, bool) for v in present) and present:
        present = [float(v) for v in present]
        values = [None if v is None else float(v) for v in values]
    numbers = all(is_real(v) for v in present)
    if numbers and all(isinstance(v, int) and _INT64[0] <= v <= _INT64[1] for v in present):
        return Column("int", np.array([0 if v is None else v for v in values], np.int64), missing)
    if numbers:
        return Column("float", np.array([0.0 if v is None else v for v in values], np.float64),
                      missing)  # fmt: skip
    texts = np.empty(len(values), dtype=object)
    texts[:] = [_text(v) for v in values]
    return Column("text", texts, missing)


def write_csv(file: IO[bytes], columns: Mapping[str, Column]) -> None:
    """The CSV file: a header, then one line per run. Floats in the shortest text that reads
    back to the same float64; an empty field where a value is missing; text quoted where it
    holds a comma, a quote or a line break (a NUL character is dropped).

    Built without a Python loop over runs: each column's distinct values become text once, and
    :data:`CSV_CHUNK_RUNS` runs at a time are laid out as one byte matrix (every field padded
    with NULs to its column's widest text, a comma or line break after it), whose NULs are
    removed in one pass."""
    file.write(",".join(_quoted(name) for name in columns).encode() + b"\n")
    fields = [_csv_texts(column) for column in columns.values()]
    runs = next(iter(columns.values())).runs if columns else 0
    for start in range(0, runs, CSV_CHUNK_RUNS):
        stop = min(start + CSV_CHUNK_RUNS, runs)
        parts = []
        for i, (texts, codes) in enumerate(fields):
            chunk = texts[codes[start:stop]]
            parts.append(chunk.view(np.uint8).reshape(stop - start, chunk.itemsize))
            end = b"\n" if i == len(fields) - 1 else b","
            parts.append(np.full((stop - start, 1), end[0], dtype=np.uint8))
        matrix = np.concatenate(parts, axis=1)
        file.write(matrix[matrix != 0].tobytes())


def parquet_table(columns: Mapping[str, Column], meta: Mapping[str, Any], pa):
    """The columns as a ``pyarrow.Table`` (int64, float64, bool or string; nulls where missing)
    whose schema metadata holds ``meta`` as JSON under :data:`META_KEY` and
    :data:`PANDAS_ATTRS_KEY`."""
    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "text": pa.string()}
    arrays = []
    for column in columns.values():
        array = pa.array(column.values, type=types[column.kind], mask=column.missing)
        arrays.append(array if column.codes is None else array.take(pa.array(column.codes)))
    text = json.dumps(meta, allow_nan=False).encode()
    return pa.Table.from_arrays(arrays, names=list(columns),
                                metadata={META_KEY: text, PANDAS_ATTRS_KEY: text})  # fmt: skip


def _table_columns(table: RunTable, settings: dict[str, Any]) -> dict[str, Column]:
    """A RunTable's columns without a row per run: each setting from the grid's few values and
    every run's position among them; the seed likewise; the outcomes as the table holds them."""
    runs = len(table)
    constant = np.zeros(runs, dtype=np.int64)
    columns: dict[str, Column] = {}
    for name, value in _flatten(settings).items():
        columns[name] = column_of([value])._replace(codes=constant)
    if "optimizer" not in table.grid:
        columns["optimizer"] = column_of([table.optimizer])._replace(codes=constant)
    for name, values in table.grid.items():
        columns[name] = column_of(list(values))._replace(codes=table.codes(name))
    columns["seed"] = column_of(table.seeds.tolist())._replace(codes=table.codes("seed"))
    diverged = table.diverged
    columns["diverged_at_epoch"] = Column(
        "int", np.where(diverged, table.diverged_at_epoch, 0).astype(np.int64), ~diverged
    )
    for name in table.metrics():
        values = getattr(table, name).astype(np.float64)
        columns[name] = Column("float", np.where(diverged, 0.0, values), diverged.copy())
    return columns


def _csv_texts(column: Column) -> tuple[np.ndarray, np.ndarray]:
    """A column's CSV fields as ``(texts, codes)``: run ``i``'s field is ``texts[codes[i]]``,
    the last text empty (for the missing values). A numeric column's distinct values become
    text once (NumPy's text of a float64 is its shortest round-trip repr)."""
    if column.kind == "text":
        texts = np.array([_quoted(v.replace("\0", "")).encode() for v in column.values.tolist()],
                         dtype=bytes)  # fmt: skip
        positions = np.arange(len(texts))
    elif column.kind == "bool":
        texts, positions = np.array([b"False", b"True"]), column.values.astype(np.int64)
    else:
        distinct, positions = np.unique(column.values, return_inverse=True)
        texts = distinct.astype(bytes)
    texts = np.append(texts, b"")
    positions = np.where(column.missing, len(texts) - 1, positions.reshape(-1))
    return texts, positions if column.codes is None else positions[column.codes]


def _seeded(column: Column | None) -> np.ndarray:
    """Whether each run has a seed (none without a seed column)."""
    if column is None:
        return np.zeros(0, dtype=bool)
    present = ~column.missing
    return present if column.codes is None else present[column.codes]


def _flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A row's fields, nested dicts as ``key.subkey`` fields."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _plain(value: Any) -> Any:
    """A NumPy scalar as its Python value; empty text as missing (None)."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, str) and value == "" else value


def _text(value: Any) -> str:
    """A value's text in a text column ("" where missing)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return json.dumps(_json_ready(list(value)))
    return str(value)


def _quoted(text: str) -> str:
    """A CSV field: quoted (quotes doubled) where it holds a comma, a quote or a line break."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


def _as_dict(settings: Any, name: str) -> dict[str, Any]:
    """Settings as a dict: a mapping, or a NamedTuple such as :class:`RunConfig`."""
    if hasattr(settings, "_asdict"):
        return dict(settings._asdict())
    if isinstance(settings, Mapping):
        return dict(settings)
    raise InvalidValue(name, f"must be a mapping or a RunConfig, got {settings!r}")


def _json_ready(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays as Python values, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [
            _json_ready(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)
        ]
    return value.item() if isinstance(value, np.generic) else value


def _pyarrow():
    """``(pyarrow, pyarrow.parquet)``, or None when pyarrow is not installed."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return None
    return pyarrow, pyarrow.parquet
