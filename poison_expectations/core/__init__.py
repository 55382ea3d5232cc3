"""The GX-free core: features, neighbours, signals, gates, config. Importing it never imports Great Expectations."""
