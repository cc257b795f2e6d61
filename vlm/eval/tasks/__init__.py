"""One module per benchmark; importing this package registers every module's tasks in `TASKS`, so a new
benchmark is one new file here."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
