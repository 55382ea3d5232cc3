"""Poisoning signals: pure numpy/pandas/sklearn/pyod, no GX import."""

from poison_expectations.core.signals.base import Signal, SignalResult

__all__ = ["Signal", "SignalResult"]
