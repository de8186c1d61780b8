"""A checkpoint's policy in a second simulator (`arm-a3c transfer`, `evaluate.py --sim mujoco`): the same
episodes (goals from the same seeds), the same deterministic policy, played in PyBullet, where it was trained,
and in MuJoCo (`envs.mujoco_env`), with success, distance and the safety figures of each side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from arm_a3c.a3c.evaluator import episodes_to_play, load_policy, policy_action
from arm_a3c.envs.episodes import EpisodeProgress, run_episodes
from arm_a3c.envs.mujoco_env import in_simulator
from arm_a3c.sim.mujoco_twin import import_mujoco

FIGURES = ("success_rate", "mean_final_distance_m", "reached_rate", "max_speed_fraction", "over_speed_rate",
           "self_contact_rate", "floor_contact_rate")  # what the table shows of each simulator


def transfer(path: Path, episodes: int | None = None, seed: int | None = None, test: bool = False,
             urdf: str | None = None, motor: str = "constraint",
             say: Callable[[str], None] = lambda line: None) -> dict:
    """The policy of checkpoint `path` on the episodes `evaluate_checkpoint` would play (`episodes_to_play`), in
    PyBullet and in MuJoCo with motor model `motor` (`sim.mujoco_twin.MOTOR_MODELS`): each one's figures (as
    `run_episodes` gives them) and what MuJoCo left out of the arm (`notes`, each also given to `say`)."""
    import_mujoco()  # before the minutes of PyBullet's episodes, not after
    data, cfg, env, model, normalizer = load_policy(path, urdf)
    try:
        twin = in_simulator(env, "mujoco", motor)  # an arm or task MuJoCo cannot take is refused here
        for note in twin.notes:
            say(note)
        episodes, seed = episodes_to_play(data, cfg, episodes, seed, test)
        act = policy_action(model, normalizer)
        figures = {sim: run_episodes(played, act, episodes, seed, EpisodeProgress(episodes, f"playing in {sim}"))
                   for sim, played in (("pybullet", env), ("mujoco", twin))}
    finally:
        env.close()
    return {"checkpoint": str(path), "robot": data["robot"]["name"], "task": cfg.task, "episodes": episodes,
            "seed": seed, "motor": motor, "notes": twin.notes, **figures,
            "success_gap": figures["pybullet"]["success_rate"] - figures["mujoco"]["success_rate"]}


def table(result: dict) -> str:
    """PyBullet's and MuJoCo's figures side by side, as a Markdown table."""
    rows = ["| figure | pybullet | mujoco |", "|---|---|---|"]
    for name in FIGURES:
        pybullet, mujoco = result["pybullet"][name], result["mujoco"][name]
        shown = (lambda v: f"{v:.3f}") if name in ("mean_final_distance_m", "max_speed_fraction") else (
            lambda v: f"{v:.1%}")
        rows.append(f"| {name} | {shown(pybullet)} | {shown(mujoco)} |")
    return "\n".join(rows)
