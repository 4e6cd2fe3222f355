"""Shape-traced summaries: the model is built and run on the meta device (no weights allocated). The
summary needs torch; the pictures (``picture``) and the rows they fold (``rows``) do not, so this package
imports the summary on first use."""
from .rows import Row

__all__ = ["Row", "Summary", "trace"]


def __getattr__(name: str):
    if name in ("Summary", "trace"):  # torch-bound: imported on first use
        from . import summary

        return getattr(summary, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
