"""Logging set-up shared by the CLI and the DAG: our lines, not the libraries' chatter."""

from __future__ import annotations

import logging
import warnings

NOISY = ("py.warnings", "urllib3", "numexpr")


def quiet_libraries() -> None:
    """Keep libraries' warnings, drop their INFO chatter."""
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="great_expectations")


def setup(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    quiet_libraries()
