"""Production fits of the champion, of the rater, and of the retriever when scoring is
two-stage; decides how scoring runs (scoring.json)."""

from __future__ import annotations

import logging
import shutil

from pipeline.core.run_folder import RunFolder
from pipeline.core.threads import use_task_threads
from pipeline.core.timings import timed
from pipeline.serving.recommend import needs_two_stage
from pipeline.training.recipe import production_model

log = logging.getLogger(__name__)


@timed()
def fit_champion(run_dir: str) -> str:
    """Each production model fitted once here and saved, so the scoring shards only load them."""
    use_task_threads()
    folder = RunFolder(run_dir)
    cfg = folder.load_config()
    verdict = folder.read(folder.champion)
    name = verdict["model"]
    model = production_model(folder, name)
    retriever = None
    if needs_two_stage(model, cfg.two_stage_from):
        if folder.metrics(cfg.retriever).exists() and cfg.retriever != name:
            retriever = cfg.retriever
            production_model(folder, retriever)
        else:
            log.warning(
                "%s on %d movies: two-stage scoring needs the retriever %s trained in this run; scoring every movie",
                name,
                model.n_movies,
                cfg.retriever,
            )
    rater = (verdict.get("rater") or {}).get("model")  # None: no rating model in the run
    if rater is not None and rater != name:
        log.info("%s ranks, %s rates: its production fit too", name, rater)
        production_model(folder, rater)
    plan = {"model": name, "retriever": retriever, "candidates": cfg.candidates if retriever else None, "rater": rater}
    log.info(
        "scoring with %s: %s",
        name,
        f"two-stage, top {cfg.candidates} candidates from {retriever} re-ranked"
        if retriever
        else f"every movie scored ({model.n_movies} movies)",
    )
    folder.write(folder.scoring, plan)
    shutil.rmtree(folder.scores, ignore_errors=True)  # shards of an earlier attempt
    return run_dir
