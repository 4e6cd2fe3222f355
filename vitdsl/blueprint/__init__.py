"""Blueprint text → pure data: YAML with positions, extends, variants, overrides, $params, expansion."""
from .expand import Design, Node, expand
from .load import load, loads, parse_override, zoo_dir, zoo_names
from .model import Blueprint

__all__ = ["Blueprint", "Design", "Node", "expand", "load", "loads", "parse_override", "zoo_dir", "zoo_names"]
