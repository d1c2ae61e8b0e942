"""crossyard: cross-architecture builds for riscv64 and arm64 edge clusters."""

from __future__ import annotations

__version__ = "0.1.0"
