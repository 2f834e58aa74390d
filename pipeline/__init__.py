"""Nightly MovieLens recommendation job: every stage, usable without Airflow."""
