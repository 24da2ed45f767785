"""The task lifecycle declared in `clicktune.status`: what the store's changes rely on."""

from __future__ import annotations

from clicktune.status import FINISHED_STATUSES, TRANSITIONS, TaskPhase, TaskStatus, may


def test_every_phase_is_reachable_from_create() -> None:
    reached = {TRANSITIONS["create"][1]}
    while True:
        more = {end for starts, end in TRANSITIONS.values() if starts & reached} - reached
        if not more:
            break
        reached |= more
    assert reached == set(TaskPhase)


def test_a_finished_task_only_leaves_by_restart() -> None:
    for status in FINISHED_STATUSES:
        phase = TaskPhase.of(status, completing=False)
        leaving = {name for name in TRANSITIONS if may(name, phase)}
        assert leaving == ({"restart"} if status is not TaskStatus.DONE else set())


def test_the_completing_step_cannot_be_canceled_and_ends_the_task() -> None:
    completing = TaskPhase.of(TaskStatus.PROCESSING, completing=True)
    assert completing is TaskPhase.COMPLETING
    assert not may("cancel", completing) and not may("hand_back", completing)
    assert {TRANSITIONS[name][1] for name in TRANSITIONS if may(name, completing)} == {
        TaskPhase.COMPLETING,
        TaskPhase.DONE,
        TaskPhase.ERROR,
    }
    assert may("cancel", TaskPhase.of(TaskStatus.PROCESSING, completing=False))
