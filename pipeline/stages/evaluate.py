"""Every model's metrics into model_runs, a comparison table in the log, and the champion; a
nightly run stops here (the gate) when the champion is clearly worse than the published one."""

from __future__ import annotations

import logging

from pipeline.core import alerts, warehouse
from pipeline.core.config import EVALUATION
from pipeline.core.run_folder import RunFolder
from pipeline.core.timings import timed
from pipeline.evaluation.champion import (
    RATER_TIE,
    ChampionGateError,
    champion_alert,
    choose_champion,
    choose_rater,
    comparison_table,
    gate,
    like_for_like,
    previous_champion,
    record_model_runs,
)

log = logging.getLogger(__name__)


@timed()
def evaluate(run_dir: str) -> str:
    """The verdict (champion, rater, gate) into champion.json; the model_runs rows of the run."""
    folder = RunFolder(run_dir)
    cfg = folder.load_config()
    results = [folder.read(folder.metrics(n)) for n in cfg.models]
    trained = [r for r in results if "skipped" not in r]
    if not trained:
        reasons = "; ".join(f"{r['model']}: {r['skipped']}" for r in results)
        raise RuntimeError(f"no model could be trained: {reasons}")
    choice = choose_champion(trained, cfg.champion_metric)
    rater = choose_rater(trained)
    log.info(
        "model comparison (%s)\n%s",
        "A: notebooks' protocol, test; B: full ranking, test from a refit on train"
        if cfg.job == EVALUATION
        else "B: full ranking; test figures from the tuned model on test",
        comparison_table(results, choice.model),
    )
    dataset = folder.read(folder.manifest)["folder"]
    with warehouse.connect(cfg.warehouse) as con:
        previous = previous_champion(con, dataset, cfg.run_id, cfg.champion_metric)
        record_model_runs(con, cfg, dataset, results, choice.model, rater[0] if rater else None)
    if cfg.job == EVALUATION:  # publishes nothing: the nightly run's gate is not this job's to apply
        verdict = {**gate(choice, None, cfg.champion_tolerance), "publish": False}
        verdict["message"] = f"{verdict['message']}; an evaluation run publishes nothing"
    else:
        verdict = gate(choice, like_for_like(previous, trained, cfg.champion_metric), cfg.champion_tolerance)
    verdict["rater"] = {"model": rater[0], "val_rmse": rater[1]} if rater else None
    log.info(
        "predicted ratings from %s",
        f"{rater[0]} (validation RMSE {rater[1]:.4f} on the [0, 1] scale: the lowest of the rating models, "
        f"or within {RATER_TIE:.1%} of it and the quickest to fit)"
        if rater
        else "no model (none of this run's models predicts ratings): predicted_rating stays empty",
    )
    folder.write(folder.champion, verdict)
    log.info("%s", verdict["message"])
    if not verdict["publish"] and cfg.job != EVALUATION:
        with warehouse.connect(cfg.warehouse) as con:
            alert = champion_alert(con, cfg.run_id, verdict)
        alerts.notify(alert)
        from pipeline.stages.report import page_before_failing  # only on the way out: it draws plots

        page_before_failing(run_dir)  # the held-back models' plots and metrics
        raise ChampionGateError(verdict["message"])
    return run_dir
