"""The bounds that keep an untrusted blueprint from taking unbounded time or memory.

Each is far above what any real architecture needs (the largest zoo file has a few hundred YAML values and
a few hundred blocks), and each is refused with a located error as soon as it is crossed, long before
the work it would cost.
"""
from __future__ import annotations

FILE_BYTES = 1 << 20  # a blueprint file, in bytes
YAML_NODES = 50_000  # values a document expands to, aliases counted at every use
YAML_DEPTH = 64  # nesting levels of mappings and lists
INT_MAX, INT_MIN = 2**63 - 1, -(2**63)  # what a tensor size or a count can hold
SEQUENCE = 100_000  # elements of a list built by an expression (range, *, +, comprehension)
EXPRESSION_CHARS = 2_000  # characters of one ${...}
EXPRESSION_STEPS = 50_000  # operations one expression may take (comprehension iterations included)
BLOCKS = 10_000  # block nodes of a whole blueprint after repeats and stages are expanded
EXTENDS = 32  # blueprints in one chain of 'extends'
