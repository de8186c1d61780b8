"""Environments: gymnasium environments that compose a PyBullet client, a robot and a task (`arm_env.py`), the
one loop that plays an episode for everybody (`episodes.py`: the evaluator, `evaluate.py`, the oracle, the
viewer's replay, the benchmark's baselines), the scripted IK oracle, and the robot description that
`inspect_robot.py` prints."""
