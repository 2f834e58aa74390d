"""Operating the pipeline through real Airflow: a local Airflow, backfills."""
