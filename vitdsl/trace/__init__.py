"""Shape-traced summaries: the model is built and run on the meta device (no weights allocated)."""
from .summary import Row, Summary, trace

__all__ = ["Row", "Summary", "trace"]
