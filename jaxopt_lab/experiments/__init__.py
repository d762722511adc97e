"""Experiments of many runs, each a thin function over :mod:`jaxopt_lab.engine` with its report:
:mod:`.compare` (the course's seven, once), :mod:`.seeds` (the seven over many seeds),
:mod:`.lr_find` (learning-rate curves), :mod:`.sweeps` (grids of :class:`RunConfig` settings)."""
