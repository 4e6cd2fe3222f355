"""Blueprint → checked ``networkx`` graph → ``nn.Module``."""
from .build import Graph, build_graph, info

__all__ = ["Graph", "build_graph", "info"]
