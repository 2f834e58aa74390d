"""Training samples/s of our trainer against a faithful copy of the notebook's loop, same run.

Both train neumf_features (same layers, Adam) on the
train split of a prepared run folder (features.npz, split.parquet; e.g. from
`make run DATASET=../shared/data/ml-1m-users-1-2999`):

- ours: the trainer's loop on the rating task (whole tensors on the device, batches by index),
  a few full epochs at each of `--batch-sizes` (the first is the notebook's
  1024); its epoch time includes the validation pass. With `--converge`
  each batch size trains to early stopping and its best validation RMSE is
  printed, so a faster, larger batch is only adopted if it is as accurate.
  Larger batches use the linear scaling rule (learning rate x batch/1024);
- notebook: a per-sample `torch.utils.data.Dataset` returning (user, movie,
  user features, genre features, rating) tensors, a shuffled `DataLoader` of
  batch 1024, and the usual zero_grad/forward/backward/step loop, timed over
  a number of batches after a short warm-up.

    python bench/train_speed.py var/runs/<run_id> [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import polars as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.core.config import PROJECT_ROOT
from pipeline.core.run_folder import RunFolder
from pipeline.evaluation.split import TRAIN, VAL
from pipeline.ingest.features import Features
from pipeline.ingest.layouts import WHOLE_STARS
from pipeline.models import registry
from pipeline.models.base import FitPlan, Ratings
from pipeline.models.networks import PairMLP
from pipeline.models.neural import RatingTask, seed_everything, train_params
from pipeline.training import loop
from pipeline.training.loop import select_device
from pipeline.training.recipe import ratings


class NotebookRatings(Dataset):
    """The notebook's Dataset: one sample at a time, features looked up per item."""

    def __init__(self, frame: pl.DataFrame, feats: Features) -> None:
        self.users = frame["user_idx"].to_list()
        self.movies = frame["movie_idx"].to_list()
        self.ratings = (frame["rating"] / 5.0).to_list()
        self.user_features = feats.user_features
        self.movie_features = feats.movie_features

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, i: int):
        u, m = self.users[i], self.movies[i]
        return (
            torch.tensor(u, dtype=torch.long),
            torch.tensor(m, dtype=torch.long),
            torch.tensor(self.user_features[u], dtype=torch.float32),
            torch.tensor(self.movie_features[m], dtype=torch.float32),
            torch.tensor(self.ratings[i], dtype=torch.float32),
        )


class NotebookModel(nn.Module):
    """The same network, fed its side features by the loader as the notebook did."""

    def __init__(self, model: PairMLP) -> None:
        super().__init__()
        self.model = model
        for i, layer in enumerate(model.mlp):  # the notebook used torch's own dropout
            if isinstance(layer, nn.Dropout):
                model.mlp[i] = nn.Dropout(layer.p)

    def forward(self, u, m, uf, mf):
        x = torch.cat([self.model.user_embedding(u), uf, self.model.movie_embedding(m), mf], dim=1)
        return torch.sigmoid(self.model.mlp(x)[:, 0])


def notebook_samples_per_s(model: PairMLP, data: Dataset, device, batches: int, warmup: int = 5) -> float:
    loader = DataLoader(data, batch_size=1024, shuffle=True)
    net = NotebookModel(model).to(device).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
    loss_fn = nn.MSELoss()
    seen, started = 0, None
    for i, (u, m, uf, mf, r) in enumerate(loader):
        if i == warmup:
            started, seen = time.perf_counter(), 0
        u, m, uf, mf, r = (t.to(device) for t in (u, m, uf, mf, r))
        optimiser.zero_grad()
        loss = loss_fn(net(u, m, uf, mf), r)
        loss.backward()
        optimiser.step()
        seen += len(r)
        if i + 1 >= warmup + batches:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - started)


def _latest_run() -> Path | None:
    runs = sorted((PROJECT_ROOT / "var" / "runs").glob("*/split.parquet"), key=lambda p: p.stat().st_mtime)
    return runs[-1].parent if runs else None


def fit(network: PairMLP, train: Ratings, val: Ratings, params, device: torch.device):
    """The network on the rating task in the trainer's loop, as the job's fit runs it."""
    seed_everything(params.seed)
    network.to(device)
    return loop.train(network, RatingTask(network, train, val, params, device), params, device, FitPlan(loop.train))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, default=None, help="default: the newest run folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2, help="full epochs of our trainer per batch size")
    parser.add_argument("--batch-sizes", default="1024,4096", help="our trainer's batch sizes (first: the notebook's)")
    parser.add_argument("--notebook-batches", type=int, default=150, help="batches of the notebook loop")
    parser.add_argument(
        "--converge",
        action="store_true",
        help="train each batch size to early stopping and report validation RMSE (accuracy check of larger batches)",
    )
    args = parser.parse_args()
    run = args.run_dir or _latest_run()
    if run is None:
        sys.exit("no run folder: run `make run DATASET=../shared/data/ml-1m-users-1-2999` first")
    feats = Features.load(RunFolder(run).features)
    split = pl.read_parquet(RunFolder(run).notebook_split)
    device = select_device(args.device)
    train_rows = split.filter(pl.col("split") == TRAIN)
    train = ratings(train_rows, WHOLE_STARS)
    val = ratings(split.filter(pl.col("split") == VAL), WHOLE_STARS)

    def parameters(batch_size: int) -> dict:
        # rating-only (negatives 0), as the notebook trained it
        epochs = {} if args.converge else {"max_epochs": args.epochs, "patience": args.epochs + 1}
        # the linear scaling rule: a batch k times the notebook's steps k times fewer, at k times the rate
        lr = registry.model_class("neumf_features").hyper_parameters({})["lr"] * batch_size / 1024
        return registry.model_class("neumf_features").hyper_parameters(
            {"negatives": 0, "batch_size": batch_size, "lr": lr, **epochs}
        )

    def network(params: dict) -> PairMLP:
        torch.manual_seed(0)
        return registry.create("neumf_features", params, feats, device).build(None)

    notebook = notebook_samples_per_s(
        network(parameters(1024)), NotebookRatings(train_rows, feats), device, args.notebook_batches
    )
    ours = {}
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        params = parameters(batch_size)
        result = fit(network(params), train, val, train_params(params), device)
        ours[batch_size] = {
            "samples_per_s": round(result.samples_per_s),
            "speed_up": round(result.samples_per_s / notebook, 1),
            "lr": params["lr"],
            "epochs": len(result.history),
            "best_val_rmse_stars": round(result.best_val_loss**0.5 * WHOLE_STARS.max, 4),
        }
        print(f"batch {batch_size}: {ours[batch_size]}", file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "run": str(run),
                "device": str(device),
                "threads": torch.get_num_threads(),
                "train_samples": len(train_rows),
                "notebook_loop_samples_per_s": round(notebook),
                "ours_by_batch_size": ours,
                "converged": args.converge,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
