"""The job's stages, one module each, over one run folder; the DAG and the CLI call them."""
