"""The plugin machinery: pluggy's manager with each plugin isolated (:mod:`.guard`),
loading the entry points into the registry (:mod:`.manager`), the name -> factory
tables (:mod:`.registry`) and the run-lifecycle calls to observers (:mod:`.lifecycle`).
The hooks themselves are specified in :mod:`benchbox.hookspecs`."""

__all__ = []
