"""Tasks: what the arm should learn, one file per task, each a `base.Task`. Adding a task means adding its file and
one line to `TASKS` below; `--task NAME`, its gym ID, its settings (`Task.settings`: fields of `EnvConfig` and
`TrainConfig`, and flags), the evaluator, the viewer and the metrics then know it."""

from __future__ import annotations

from arm_a3c.errors import UserError
from arm_a3c.tasks.avoid import AvoidTask
from arm_a3c.tasks.base import Setting, Task
from arm_a3c.tasks.pose import PoseTask
from arm_a3c.tasks.push import PushTask
from arm_a3c.tasks.reach import ReachTask
from arm_a3c.tasks.track import TrackTask

TASKS: dict[str, type[Task]] = {task.name: task for task in (ReachTask, PoseTask, TrackTask, AvoidTask, PushTask)}
DEFAULT_TASK = "reach"
TASK_SETTINGS: tuple[Setting, ...] = tuple(setting for task in TASKS.values() for setting in task.settings)
if len({setting.name for setting in TASK_SETTINGS}) != len(TASK_SETTINGS):
    raise RuntimeError("two tasks declare a setting of the same name")


def task_class(name: str) -> type[Task]:
    """The task registered as `name` (`UserError` listing the known ones otherwise)."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        known = ", ".join(f"{n} ({t.summary})" for n, t in TASKS.items())
        raise UserError(f"--task: unknown task {name!r}; the tasks are: {known}") from None
