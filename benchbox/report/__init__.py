"""Rendering of comparisons: text tables (rich, Markdown, CSV) and the report pages.

:mod:`benchbox.report.tables` turns a :class:`~benchbox.compare.Comparison` into rows
of strings; :mod:`benchbox.report.figures` draws the plots with matplotlib (Agg);
:mod:`benchbox.report.build` assembles the self-contained HTML or Markdown report.
"""
