"""Poisoning signals: pure numpy/pandas/sklearn/pyod, no GX import."""

from .base import Signal, SignalResult

__all__ = ["Signal", "SignalResult"]
