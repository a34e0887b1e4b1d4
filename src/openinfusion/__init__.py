"""openinfusion: an open smart drug-infusion platform.

Layers (see docs/architecture.md): ``units`` and ``patient`` (0), ``library`` (1),
``security`` (keys and signatures, imports only layer 0), ``cli`` (6).
"""

__version__ = "0.1.0"
