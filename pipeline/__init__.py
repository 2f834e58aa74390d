"""Nightly MovieLens recommendation job: every stage, usable without Airflow."""

import logging

# Great Expectations logs hundreds of INFO lines on import (registrations);
# they would drown the job's own lines in Airflow task logs.
logging.getLogger("great_expectations").setLevel(logging.WARNING)
