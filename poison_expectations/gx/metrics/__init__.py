"""GX metric providers (thin). Each expectation module imports its metric,
which registers it with GX."""
