"""Threads for a heavy task: the machine's cores shared among the `training` pool's slots."""

from __future__ import annotations

from pipeline.core.config import threads_per_task


def use_task_threads() -> int:
    """Torch and BLAS threads for a heavy task (MOVIELENS_TRAINING_SLOTS slots share the cores),
    so tasks running side by side do not oversubscribe them; returns the count."""
    import torch  # here: the light stages never need it
    from threadpoolctl import threadpool_limits

    threads = threads_per_task()
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # EASE's LAPACK, scipy's sparse products
    return threads
