"""Stores: reading and writing tables, the reputation ledger, quarantine outputs, reference profiles."""
