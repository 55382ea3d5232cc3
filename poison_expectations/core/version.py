"""The plugin's version: one declaration, read by pyproject.toml and stored in every profile."""

VERSION = "0.1.0"
