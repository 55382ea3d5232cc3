"""Execution engines beside the in-process pandas one (GX-free: they import
core and stores only, never gx or apps)."""
