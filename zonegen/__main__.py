"""``python -m zonegen`` and the ``zonegen`` console script: the click CLI of ``cli.py``.

The wheel installs ``cli.py`` as ``zonegen.command.cli`` (pyproject.toml), so it adds no
generic import name. An editable install of a checkout cannot map that module (setuptools'
editable finder maps packages, and the repository root is none), so there the CLI is
loaded from ``cli.py`` beside the package: ``pip install -e .`` gives a working command too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main() -> None:
    try:
        from zonegen.command.cli import main as cli_main  # type: ignore[import-not-found]
    except ModuleNotFoundError as e:
        if e.name not in ("zonegen.command", "zonegen.command.cli"):
            raise  # a missing dependency, not a checkout: say so as Python does
        path = Path(__file__).resolve().parent.parent / "cli.py"
        spec = importlib.util.spec_from_file_location("cli", path)
        if spec is None or spec.loader is None or not path.is_file():
            sys.exit(f"zonegen: the command-line module is missing ({path})")
        module = importlib.util.module_from_spec(spec)
        sys.modules["cli"] = module
        spec.loader.exec_module(module)
        cli_main = module.main
    cli_main()


if __name__ == "__main__":
    main()
