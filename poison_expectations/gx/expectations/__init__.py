"""GX expectation classes (thin). Importing this package imports every
module in it, which registers each expectation with GX (by snake_case class
name) and each config family with `registry`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from great_expectations.expectations.expectation import Expectation

__all__: list[str] = []

for _module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _module = importlib.import_module(f"{__name__}.{_module_info.name}")
    for _name, _obj in vars(_module).items():
        if (inspect.isclass(_obj) and issubclass(_obj, Expectation) and _obj.__module__ == _module.__name__
                and _name.startswith("Expect") and not inspect.isabstract(_obj)):
            globals()[_name] = _obj
            __all__.append(_name)
