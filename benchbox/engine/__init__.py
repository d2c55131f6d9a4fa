"""A run config in, a run result out: check and build (:mod:`.prepare`), train
(:mod:`.train`, :mod:`.schedule`), select on validation (:mod:`.selection`), predict
(:mod:`.inference`, :mod:`.tta`, :mod:`.postprocess`), across processes
(:mod:`.distributed`, :mod:`.launch`), and the whole run (:mod:`.runner`)."""

__all__ = []
