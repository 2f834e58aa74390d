"""Logging set-up shared by the CLI and the DAG: our lines, not the libraries' chatter."""

from __future__ import annotations

import logging
import warnings

NOISY = ("great_expectations", "py.warnings", "urllib3", "numexpr")


def quiet_libraries() -> None:
    """GX logs every registration at INFO; keep its warnings, drop the rest."""
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="great_expectations")


def setup(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    quiet_libraries()
