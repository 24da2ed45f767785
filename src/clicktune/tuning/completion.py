"""Completing an iteration: the decision about the best model and its side effects.

The decision is made first; every side effect waits until the task wins the completing step
(`TaskContext.begin_completing`): the live decision's alias moves, the promotion (re-checked
against the champion now) or the new challenger, the decision on the best run and the
iteration's completion, the previous iterations retired, the temporary folders removed.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from clicktune.evaluation.comparison import Comparison, paired_comparison
from clicktune.evaluation.evidence import CLICKS
from clicktune.tracking.iterations import trial_run_name
from clicktune.tracking.models import model_uri
from clicktune.tracking.registry import CHAMPION, AliasMove
from clicktune.tuning.decision import (
    Decision,
    alias_evidence,
    decide,
    decision_tags,
    recheck_promotion,
)
from clicktune.tuning.live_decision import apply_live
from clicktune.tuning.plugin import TaskResult
from clicktune.tuning.progress import AFTER_TRAINING

if TYPE_CHECKING:
    from clicktune.tuning.judged_set import JudgedSet
    from clicktune.tuning.opening import OpenedIteration
    from clicktune.tuning.scores import Scored


def complete_iteration(opened: OpenedIteration, baseline: Scored, best: Scored) -> TaskResult:
    """Decide, apply the decision once the completing step is won, and clean up."""
    scope, tracking, iteration = opened.scope, opened.tracking, opened.iteration
    context, task, config = scope.context, scope.task, scope.config
    scope.progress.stage(
        "completing", "Deciding and completing the iteration", percent=AFTER_TRAINING
    )
    comparison = None
    if opened.judged is not None:
        assert baseline.per_query is not None and best.per_query is not None
        comparison = paired_comparison(
            config.main_metric, baseline.per_query, best.per_query, seed=config.seed
        )
    run = trial_run_name(best.number)
    decision = decide(
        task.promotion,
        comparison,
        min_gain=config.min_gain,
        run=run,
        judged_set=task.validation_set,
    )
    # Every side effect from here on happens only once the completing step is won.
    context.begin_completing()
    online = None
    if opened.live is not None:
        online = apply_live(opened.live, tracking.registry, task.task_id)
    decision = recheck_promotion(
        decision,
        task.promotion,
        expected_champion=opened.expected_champion,
        current_champion=lambda: _champion_version(opened),
        run=run,
    )
    metrics = task_metrics(
        config.main_metric, baseline, best, comparison, decision, online, opened.judged
    )
    move = AliasMove(task.task_id, decision.reason, alias_evidence(metrics))
    context.raise_if_canceled()  # the heartbeat found the lease lost: apply no more
    version = None
    if decision.promoted:
        version = tracking.registry.promote(best.run_id, move)
    elif decision.challenger:
        version = tracking.registry.make_challenger(best.run_id, move)
    iteration.complete(
        best.run_id,
        decision_tags(decision, comparison, version),
        promoted=decision.promoted,
        challenger=decision.challenger,
    )
    context.add_event(
        decision.reason
        + (
            f" Version {version} of {tracking.registered_model_name!r} is now the "
            f"{'champion' if decision.promoted else 'challenger'}."
            if version
            else ""
        ),
        level="info" if decision.promoted or decision.challenger else "warning",
        promoted=decision.promoted,
        challenger=decision.challenger,
        evidence=decision.evidence,
        version=version,
        best_run_id=best.run_id,
        **({"comparison": comparison.as_dict()} if comparison is not None else {}),
    )
    context.raise_if_canceled()
    retired = tracking.retire_previous_iterations(iteration.experiment_id)
    if retired:
        context.add_event(
            f"Removed the previous iteration's experiment {', '.join(retired)} (soft delete)",
            retired=retired,
        )
    scope.progress.stage("cleanup", "Removing temporary folders", percent=99.0)
    shutil.rmtree(scope.root, ignore_errors=True)
    scope.progress.report("done", percent=100.0)
    scope.log.info(
        "iteration_done",
        promoted=decision.promoted,
        challenger=decision.challenger,
        evidence=decision.evidence,
        best=best.value,
        baseline=baseline.value,
    )
    return TaskResult(
        metrics=metrics,
        best_run_id=best.run_id,
        best_model_uri=model_uri(best.run_id),
        promoted=decision.promoted,
        challenger=decision.challenger,
        mlflow_experiment=iteration.name,
    )


def _champion_version(opened: OpenedIteration) -> str | None:
    champion = opened.tracking.registry.version(CHAMPION)
    return None if champion is None else str(champion.version)


def task_metrics(
    main_metric: str,
    baseline: Scored,
    best: Scored,
    comparison: Comparison | None,
    decision: Decision,
    online: dict[str, Any] | None,
    judged: JudgedSet | None,
) -> dict[str, Any]:
    """The task's `metrics`: what was decided, on which evidence, with the click figures
    beside it as diagnostics."""
    clicks = f"{CLICKS}_{main_metric}"
    metrics: dict[str, Any] = {
        "main_metric": main_metric,
        "evidence": decision.evidence,
        "promotion_reason": decision.reason,
        "clicks_baseline": baseline.metrics.get(clicks),
        "clicks_best": best.metrics.get(clicks),
    }
    if online is not None:
        metrics["online"] = online
    if comparison is not None and judged is not None:
        metrics |= {
            "baseline": baseline.value,
            "best": best.value,
            "gain": comparison.gain,
            "gain_interval": list(comparison.interval),
            "queries": comparison.queries,
            "wins": comparison.wins,
            "ties": comparison.ties,
            "losses": comparison.losses,
            "validation_set": judged.set_id,
            "validation_set_digest": judged.digest,
            "judged_items": len(judged.corpus),
            "judged_pooled": judged.pooled,
        }
    return metrics
