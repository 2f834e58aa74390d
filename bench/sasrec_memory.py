"""SASRec's sampled-softmax training step on a big catalogue: seconds and resident memory,
the fused chunked loss against the plain logits matrix, same run.

At ml-25m's 62,000 movies sasrec trains with a sampled softmax (2,048
negatives shared by a batch). Each loss runs `--steps` training steps of the
registry's default network (batch 32 windows, max_len 200, d 128, bf16
products under autocast where the CPU has them) on random windows, in its
own fresh process, with the training loop's heap trim every 50 steps. It
prints the seconds, the resident memory after setup, and the peak (VmHWM)
over the steps; the difference is what the step itself costs the process.

    python bench/sasrec_memory.py [--movies 62423] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOSSES = {"fused": "sampled_cross_entropy", "logits matrix": "_sampled_logits_cross_entropy"}


def child(loss: str, movies: int, steps: int) -> dict[str, float]:
    """One loss's steps in this process."""
    import time

    import numpy as np
    import torch

    from pipeline.core.timings import peak_rss_mib, release_free_memory, reset_peak_rss, rss_mib
    from pipeline.models import sasrec
    from pipeline.models.registry import hyper_parameters
    from pipeline.training.loop import TRIM_EVERY_STEPS, cpu_has_native_bf16

    p = hyper_parameters("sasrec", {})
    batch, max_len, negatives = int(p["batch_size"]), int(p["max_len"]), int(p["sampled_negatives"])
    torch.manual_seed(0)
    model = sasrec.SASRec(movies, max_len, int(p["embedding_dim"]), int(p["blocks"]), int(p["heads"]), 0.2)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    rng = np.random.default_rng(0)
    history = rng.integers(0, movies, 2_000_000)
    sampling = torch.from_numpy(rng.zipf(1.3, movies).astype(np.float32))
    sampling /= sampling.sum()
    log_q = torch.log(sampling * negatives)
    generator = torch.Generator().manual_seed(0)
    loss_of = getattr(sasrec, LOSSES[loss])
    release_free_memory()
    base = round(rss_mib())
    reset_peak_rss()  # the peak from here
    started = time.perf_counter()
    for step in range(1, steps + 1):
        lengths = np.full(batch, max_len) if step % 2 else rng.integers(2, max_len + 1, batch)
        start = rng.integers(0, len(history) - max_len - 1, batch)
        inputs = torch.from_numpy(sasrec.padded(history, start, lengths, movies))
        targets = torch.from_numpy(sasrec.padded(history, start + 1, lengths, -1))
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_native_bf16()):
            valid = targets >= 0
            drawn = torch.multinomial(sampling, negatives, replacement=True, generator=generator)
            loss_value = loss_of(model.encode(inputs)[valid], model.item_matrix(), targets[valid], drawn, log_q)
        loss_value.backward()
        optimiser.step()
        if step % TRIM_EVERY_STEPS == 0:
            release_free_memory(collect=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "base_mib": base, "peak_mib": round(peak_rss_mib()), "last_loss": float(loss_value)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=62_423)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--child", choices=list(LOSSES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.movies, args.steps)))
        return
    rows = {}
    for loss in LOSSES:
        cmd = [sys.executable, __file__, "--child", loss, "--movies", str(args.movies), "--steps", str(args.steps)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        rows[loss] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"sasrec sampled-softmax step, {args.movies:,} movies, {args.steps} steps, one process per loss")
    print(f"{'loss':<15}{'seconds':>9}{'base MiB':>10}{'peak MiB':>10}{'step MiB':>10}")
    for loss, r in rows.items():
        step_mib = r["peak_mib"] - r["base_mib"]
        print(f"{loss:<15}{r['seconds']:>9.1f}{r['base_mib']:>10,}{r['peak_mib']:>10,}{step_mib:>10,}")
    fused, plain = rows["fused"], rows["logits matrix"]
    print(
        f"fused against the logits matrix: {plain['seconds'] / fused['seconds']:.2f}x faster, "
        f"{(plain['peak_mib'] - plain['base_mib']) / max(fused['peak_mib'] - fused['base_mib'], 1):.2f}x less "
        "memory over the base"
    )


if __name__ == "__main__":
    main()
