"""Every hyper-parameter of a training run, in one typed object that is saved with the run (`config.json`)
and settable from the command line (`--field-name VALUE`)."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arm_a3c.a3c.stop_rule import CONFIRM_SEED_RANGE
from arm_a3c.envs.arm_env import ENVIRONMENT_SAVED_BEFORE_FIELD_EXISTED, EnvConfig
from arm_a3c.errors import UserError
from arm_a3c.limits import MAX_EPISODES, MAX_HIDDEN_SIZE, MAX_N_STEPS, MAX_SEED, MAX_WORKERS
from arm_a3c.sim.assets import DEFAULT_ROBOT, is_robot_file
from arm_a3c.tasks import TASK_SETTINGS, task_class

LOG_STD_LOWEST, LOG_STD_HIGHEST = -20.0, 2.0  # beyond them the Gaussian's samples are all its mean, or all clipped


def param(default: Any, help: str) -> Any:  # noqa: A002  (the argparse word)
    """A config field with its one-line description (shown by --help)."""
    return field(default=default, metadata={"help": help})


def _overlap(first: int, count: int, other: int, other_count: int) -> bool:
    """Whether seeds first..first+count-1 and other..other+other_count-1 share one (an empty range shares none)."""
    return count > 0 and other_count > 0 and first < other + other_count and other < first + count


# A run saved before a field existed was trained with these values (before homes and tool points, every arm
# started at zero and reached with its end-effector link's origin; before the action cost was a setting,
# actions cost a hundredth of what they cost now).
SAVED_BEFORE_FIELD_EXISTED = {"home": "zero", "ee_offset_m": [0.0, 0.0, 0.0], "action_cost": 0.01, "task": "reach",
                             "log_std_bound": "clamp", "jacobian_observation": False, "linear_policy": False,
                             "eval_screen_episodes": 0, "confirm_episodes": 0,
                             **ENVIRONMENT_SAVED_BEFORE_FIELD_EXISTED}


@dataclass
class CommonTrainConfig:
    """A run's settings but the tasks' own; `TrainConfig` adds those (`Task.settings`)."""

    # what to train
    task: str = param(EnvConfig.task, "what the arm learns")
    robot: str = param(DEFAULT_ROBOT, "robot name in assets/ or path to a .urdf file")
    ee_link: str | None = param(None, "end-effector link (default: the robot's sidecar, else the deepest link)")
    ee_offset_m: list | None = param(None, "tool point x y z (m) in the end-effector link's frame (default: the "
                                           "sidecar's, else the link's origin); the run records the one used")
    robot_file: str | None = param(None, "the robot's file as an absolute path, recorded by the run: used when "
                                         "`robot` (a relative path, say) no longer leads to it where the run is read")
    home: list | str | None = param(None, "start pose: one value per controlled joint, or auto or zero (default: "
                                          "the sidecar's, else auto); the run records the pose used")
    action_cost: float = param(EnvConfig.action_cost, "reward penalty per unit of mean squared action (the "
                                                      "environment's)")
    # the tasks' own settings (each task reads its own; see arm_a3c/tasks/)
    jacobian_observation: bool = param(EnvConfig.jacobian_observation,
                                       "end the observation with the Jacobian transpose of the goal's error (per "
                                       "controlled joint, the direction that closes it; pose adds the orientation's)")
    urdf_speed_limits: bool = param(EnvConfig.urdf_speed_limits,
                                    "each joint moves at most its URDF velocity limit (targets paced, motors capped); "
                                    "--no-urdf-speed-limits: max_joint_step_rad alone, as before")
    self_collision: bool = param(EnvConfig.self_collision,
                                 "the arm's links collide with each other, and a link touching another or the floor "
                                 "ends the episode with --contact-penalty (goals are free of both); "
                                 "--no-self-collision: links pass through each other, as before")
    clearance_observation: str = param(EnvConfig.clearance_observation,
                                       "on: end the observation with how near the arm is to touching itself, the "
                                       "floor or an obstacle, and per joint the direction that takes the nearest "
                                       "pairs apart; off: without, as before; task: the task's choice (on for "
                                       "avoid, off for the others)")
    contact_penalty: float = param(EnvConfig.contact_penalty, "reward of the step where the arm touches itself or "
                                                              "the floor (with self-collision; the episode ends there)")
    latency_steps: int = param(EnvConfig.latency_steps, "each action takes effect this many control periods after "
                                                        "the policy chose it (a real arm answers late)")
    latency_jitter_steps: int = param(EnvConfig.latency_jitter_steps, "... and a random 0 to this many periods "
                                                                      "more, drawn per episode")
    joint_noise: float = param(EnvConfig.joint_noise, "std of Gaussian noise on the observed joint positions (rad, "
                                                      "m for prismatic joints)")
    velocity_noise: float = param(EnvConfig.velocity_noise, "std of Gaussian noise on the observed joint velocities "
                                                            "(rad/s or m/s)")
    goal_noise: float = param(EnvConfig.goal_noise, "std of Gaussian noise on the observed goal position (m), drawn "
                                                    "each step (success is judged on the true goal)")
    mass_scale: float = param(EnvConfig.mass_scale, "every moving link's mass and inertia times this ...")
    mass_range: float = param(EnvConfig.mass_range, "... times a factor drawn per link and episode from [1 - this, "
                                                    "1 + this] (domain randomisation; 0: the URDF's)")
    gain_scale: float = param(EnvConfig.gain_scale, "the motors' position gain times this ...")
    gain_range: float = param(EnvConfig.gain_range, "... times a factor drawn per joint and episode from "
                                                    "[1 - this, 1 + this]")
    damping_range: float = param(EnvConfig.damping_range, "each moving joint's URDF damping times a factor drawn "
                                                          "per joint and episode from [1 - this, 1 + this]")
    # (and each task's own settings, declared in its file: `Task.settings`, added below as `TrainConfig`)
    # how long, and when to stop
    workers: int = param(os.cpu_count() or 1, "worker processes, one per core by default")
    max_steps: int = param(0, "stop after this many environment steps in all (0: no limit)")
    max_minutes: float = param(30.0, "stop after this many minutes of wall-clock time (0: no limit)")
    target_success: float = param(0.95, "stop when the policy's success rate reaches this (0..1; above 1: never): "
                                        "an evaluation at it is confirmed on fresh episodes first (--confirm-episodes)")
    target_streak: int = param(1, "evaluations in a row at --target-success that make the newest a candidate for "
                                  "the confirmation")
    confirm_episodes: int = param(200, "a candidate is played on this many fresh episodes (new seeds each time, "
                                       "never the evaluator's or the held-out test's); the run stops when their "
                                       "success's lower confidence bound reaches --target-success, and the candidate "
                                       "is best.pt. 0: stop on the evaluator's episodes alone")
    confirm_confidence: float = param(0.95, "confidence of that lower bound (one-sided Wilson score interval)")
    confirm_seed: int = param(3_000_000, "seed of the first confirmation episode; confirmations use the 1,000,000 "
                                         "seeds from here on")
    seed: int = param(0, "seed of everything; worker k's environment gets seed + k")
    # A3C
    n_steps: int = param(20, "environment steps per worker update (the n of n-step returns)")
    gamma: float = param(0.95, "discount factor per control step (episodes are only 50 steps)")
    gae_lambda: float = param(0.95, "GAE(lambda) parameter: 1 is the plain n-step return, 0 is one-step TD")
    lr: float = param(6e-4, "learning rate of the shared Adam, at the start")
    lr_final_fraction: float = param(0.1, "learning rate decays linearly to this fraction of --lr ...")
    schedule_steps: int = param(20_000_000, "... over this many global environment steps, then stays")
    adam_eps: float = param(1e-5, "Adam's epsilon")
    value_coef: float = param(0.5, "weight of the value loss")
    entropy_coef: float = param(0.0, "weight of the entropy bonus")
    max_grad_norm: float = param(0.5, "gradients are clipped to this global norm before they are shared")
    reward_scale: float = param(0.1, "rewards are multiplied by this before learning (not in the reported returns)")
    hidden_size: int = param(64, "units in each of the two hidden layers of actor and critic")
    linear_policy: bool = param(True, "the policy's mean also adds a linear map of the observation (starting at "
                                      "zero) to its two hidden layers' output; --no-linear-policy: the layers alone")
    log_std_init: float = param(-0.5, "initial log standard deviation of the Gaussian policy")
    log_std_min: float = param(-1.6, "log standard deviation is kept within [min, max] (std >= 0.2: no collapse)")
    log_std_max: float = param(0.0, "upper bound of the log standard deviation")
    log_std_bound: str = param("tanh", "how the log-std is kept within its bounds: tanh (squashed, its gradient never "
                                       "zero) or clamp (zero gradient outside: a log-std pushed past a bound stays)")
    obs_clip: float = param(10.0, "normalised observations are clipped to +-this")
    lock_updates: bool = param(False, "serialise the shared optimizer's steps with a lock (default: Hogwild, lock-free)")
    # where the workers run
    backend: str = param("local", "local: worker processes on this machine; ray: Ray actors, here or on a cluster")
    ray_address: str | None = param(None, "with --backend ray: the cluster to join ('auto': the one `ray start` "
                                          "made here); default: a new local Ray instance")
    ray_shared_memory: bool = param(True, "with --backend ray: workers on the launcher's machine update the global "
                                          "model in its memory; --no-ray-shared-memory: through the parameter "
                                          "server, as workers on other machines do")
    ray_sync_ms: float = param(50.0, "with --backend ray: workers on other machines train a copy of the global model "
                                     "on their machine, which one sync agent per machine exchanges with the "
                                     "parameter server every this many milliseconds; 0: every worker update is one "
                                     "exchange with the server")
    # evaluation and output
    eval_every_steps: int = param(50_000, "evaluate the shared policy after every this many environment steps")
    eval_episodes: int = param(100, "seeded episodes per evaluation (the same seeds every time; fewer decide a stop "
                                    "on noise)")
    eval_screen_episodes: int = param(25, "from this many episodes on, an evaluation that has failed more episodes "
                                          "than --target-success allows in all of them stops (it could no longer reach "
                                          "the target) and reports the episodes played; 0: every evaluation plays all "
                                          "its episodes (so does every evaluation when the target is above 1)")
    eval_seed: int = param(1_000_000, "seed of the first evaluation episode")
    test_episodes: int = param(200, "held-out test episodes that best.pt plays when the run ends (summary.json's "
                                    "test_* figures; 0: none). They never stop the run or pick best.pt")
    test_seed: int = param(5_000_000, "seed of the first held-out test episode (its seeds must not overlap the "
                                      "evaluator's)")
    run_dir: str | None = param(None, "where the run's files go (default runs/ROBOT-DATE-TIME)")
    view: bool = param(False, "open the pygame viewer on worker 1's arm while training")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def eval_screen(self) -> tuple[int, int] | None:
        """The evaluator's screen (`envs.episodes.run_episodes`): from `eval_screen_episodes` episodes on, stop once
        more have failed than the target allows in all `eval_episodes` (so a screened-out evaluation could not have
        reached it). None when every evaluation plays all its episodes: no screen, a screen as long as the
        evaluation, or a target above 1 (nothing to reach: the evaluations serve best.pt and the curves, at full
        length)."""
        if not 0 < self.eval_screen_episodes < self.eval_episodes or self.target_success > 1:
            return None
        allowed = self.eval_episodes - math.ceil(self.target_success * self.eval_episodes - 1e-9)
        return self.eval_screen_episodes, allowed

    @classmethod
    def from_dict(cls, values: object, source: str | None = None) -> "TrainConfig":
        """The config saved in a run's config.json or a checkpoint. With `source` (the file, in words), it goes
        through the command line's checks, so a damaged or crafted file is one line naming it."""
        if not isinstance(values, dict):
            raise UserError(f"{source or 'the saved config'}: its settings are not a JSON object")
        if source is not None and "robot" not in values:
            raise UserError(f"{source} holds settings without a robot; it is damaged or was not written by arm-a3c")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {**SAVED_BEFORE_FIELD_EXISTED, **values}
        cfg = cls(**{k: v for k, v in values.items() if k in known})
        if source is not None:
            try:
                cfg.check()
            except UserError as err:
                raise UserError(f"{source} holds settings arm-a3c cannot use ({err}); it is damaged or was not "
                                f"written by arm-a3c") from None
        return cfg

    def locate_robot(self, urdf: str | None = None) -> "TrainConfig":
        """This saved config with its robot found again: `urdf` (the user's --urdf: the robot's file moved) if
        given, else `robot` as it was given if that still leads to a file, else the absolute `robot_file` the run
        recorded (a run trained with a relative --urdf, read from another folder)."""
        if urdf is not None:
            return dataclasses.replace(self, robot=str(urdf), robot_file=str(Path(urdf).expanduser().resolve()))
        given = str(self.robot)
        if is_robot_file(given) and not Path(given).expanduser().is_file() and self.robot_file \
                and Path(self.robot_file).is_file():
            return dataclasses.replace(self, robot=self.robot_file)
        return self

    def _check_types(self) -> None:
        """Each field holds what its default is (a number where a number goes): a config read from a file may not."""
        for f in dataclasses.fields(self):
            value, default = getattr(self, f.name), f.default
            flag = "--" + f.name.replace("_", "-")
            if value is None and (default is None or f.name in ("home", "ee_offset_m")):
                continue
            if isinstance(default, bool) or isinstance(value, bool):
                ok = isinstance(value, bool) and isinstance(default, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float))
            elif f.name == "ee_offset_m":
                ok = isinstance(value, list) and len(value) == 3 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            elif f.name == "home":
                ok = value in ("auto", "zero") or isinstance(value, list) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise UserError(f"{flag} cannot be {value!r:.60}")

    def check(self) -> None:
        """Reject settings that cannot work (`UserError` naming the flag to fix)."""
        self._check_types()
        for name, value in self.to_dict().items():
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise UserError(f"--{name.replace('_', '-')} must be a finite number, not {value}")
        task_class(self.task)  # an unknown task: one line listing the known ones
        rules = [
            (self.run_dir != "", "--run-dir is empty; give a folder, or leave it out for runs/ROBOT-DATE-TIME"),
            (1 <= self.workers <= MAX_WORKERS, f"--workers must be between 1 and {MAX_WORKERS}"),
            (self.lr > 0, "--lr must be positive"),
            (1 <= self.n_steps <= MAX_N_STEPS, f"--n-steps must be between 1 and {MAX_N_STEPS:,}"),
            (0 <= self.seed <= MAX_SEED - MAX_WORKERS, f"--seed must be between 0 and {MAX_SEED - MAX_WORKERS:,}"),
            (0 <= self.eval_seed <= MAX_SEED - self.eval_episodes,
             f"--eval-seed must be between 0 and {MAX_SEED:,} less --eval-episodes"),
            (0 <= self.test_seed <= MAX_SEED - self.test_episodes,
             f"--test-seed must be between 0 and {MAX_SEED:,} less --test-episodes"),
            (0 <= self.lr_final_fraction <= 1, "--lr-final-fraction must be in [0, 1]"),
            (self.schedule_steps >= 0, "--schedule-steps must be 0 or positive"),
            (self.adam_eps > 0, "--adam-eps must be positive"),
            (self.value_coef >= 0 and self.entropy_coef >= 0, "--value-coef and --entropy-coef must be 0 or positive"),
            (self.reward_scale > 0, "--reward-scale must be positive"),
            (self.obs_clip > 0, "--obs-clip must be positive"),
            (0 < self.gamma <= 1, "--gamma must be in (0, 1]"),
            (0 <= self.gae_lambda <= 1, "--gae-lambda must be in [0, 1]"),
            (self.max_steps >= 0, "--max-steps must be 0 (no limit) or positive"),
            (self.max_minutes >= 0, "--max-minutes must be 0 (no limit) or positive"),
            (self.max_steps > 0 or self.max_minutes > 0 or self.target_success <= 1,
             "the run would never stop: set --max-steps, --max-minutes or --target-success <= 1"),
            (1 <= self.eval_episodes <= MAX_EPISODES, f"--eval-episodes must be between 1 and {MAX_EPISODES:,}"),
            (self.target_streak >= 1, "--target-streak must be at least 1"),
            (0 <= self.confirm_episodes <= MAX_EPISODES,
             f"--confirm-episodes must be 0 (no confirmation) or up to {MAX_EPISODES:,}"),
            (0.5 <= self.confirm_confidence < 1, "--confirm-confidence must be in [0.5, 1)"),
            (0 <= self.confirm_seed <= MAX_SEED - CONFIRM_SEED_RANGE,
             f"--confirm-seed must be between 0 and {MAX_SEED - CONFIRM_SEED_RANGE:,}"),
            (self.confirm_episodes == 0 or not _overlap(self.confirm_seed, CONFIRM_SEED_RANGE, self.eval_seed,
                                                        self.eval_episodes),
             f"the confirmations' seeds ({self.confirm_seed}..{self.confirm_seed + CONFIRM_SEED_RANGE - 1}) overlap "
             f"the evaluator's: move --confirm-seed or --eval-seed"),
            (self.confirm_episodes == 0 or not _overlap(self.confirm_seed, CONFIRM_SEED_RANGE, self.test_seed,
                                                        self.test_episodes),
             f"the confirmations' seeds ({self.confirm_seed}..{self.confirm_seed + CONFIRM_SEED_RANGE - 1}) overlap "
             f"the held-out test's: move --confirm-seed or --test-seed"),
            (self.eval_every_steps >= 1, "--eval-every-steps must be at least 1"),
            (self.eval_screen_episodes >= 0, "--eval-screen-episodes must be 0 or more"),
            (0 <= self.test_episodes <= MAX_EPISODES,
             f"--test-episodes must be 0 (no held-out test) or up to {MAX_EPISODES:,}"),
            (not _overlap(self.test_seed, self.test_episodes, self.eval_seed, self.eval_episodes),
             f"the held-out test's seeds ({self.test_seed}..{self.test_seed + self.test_episodes - 1}) overlap the "
             f"evaluator's ({self.eval_seed}..{self.eval_seed + self.eval_episodes - 1}): move --test-seed or --eval-seed"),
            (1 <= self.hidden_size <= MAX_HIDDEN_SIZE, f"--hidden-size must be between 1 and {MAX_HIDDEN_SIZE}"),
            (self.log_std_min <= self.log_std_max, "--log-std-min must not exceed --log-std-max"),
            (LOG_STD_LOWEST <= self.log_std_min and self.log_std_max <= LOG_STD_HIGHEST
             and LOG_STD_LOWEST <= self.log_std_init <= LOG_STD_HIGHEST,
             f"--log-std-init, --log-std-min and --log-std-max must be in [{LOG_STD_LOWEST:g}, {LOG_STD_HIGHEST:g}] "
             f"(a standard deviation of e^{LOG_STD_HIGHEST:g} is already {math.exp(LOG_STD_HIGHEST):.1f} action ranges)"),
            (self.log_std_bound in ("tanh", "clamp"), "--log-std-bound must be tanh or clamp"),
            (self.max_grad_norm > 0, "--max-grad-norm must be positive"),
            (self.ray_sync_ms >= 0, "--ray-sync-ms must be 0 (an exchange per update) or positive"),
        ]
        for ok, message in rules:
            if not ok:
                raise UserError(message)
        # the environment's own settings, checked where they are declared
        EnvConfig.check_values({f.name: getattr(self, f.name) for f in dataclasses.fields(EnvConfig)
                                if hasattr(self, f.name)}, lambda name: "--" + name.replace("_", "-"))

    def lr_at(self, global_steps: int) -> float:
        """The scheduled learning rate after `global_steps` environment steps."""
        progress = min(global_steps / self.schedule_steps, 1.0) if self.schedule_steps > 0 else 0.0
        return self.lr * (1.0 - progress * (1.0 - self.lr_final_fraction))


# Every setting of a run: the common ones, then each task's own, declared in its file with its help and check.
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(setting.name, type(setting.default), param(setting.default, setting.help))
                    for setting in TASK_SETTINGS],
    bases=(CommonTrainConfig,),
    namespace={"__module__": __name__, "__doc__": "Every setting of a run, one flag each: the common ones "
                                                  "(`CommonTrainConfig`), then each task's own (`Task.settings`)."})
