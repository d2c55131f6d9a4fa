"""Using a trained run: rebuild it (:mod:`.restore`), apply it to new images
(:mod:`.predict`), export its graphs (:mod:`.graphs`, :mod:`.export`) and quantise
them (:mod:`.quantize`)."""

__all__ = []
