"""Measurements, each behind a script: `env_speed.py` (`bench_env.py`: environment steps per second beside raw
physics), `viewer_speed.py` (`bench_viewer.py`: the viewer's frames per second), `training.py` (`bench.py`: the
training benchmark against the machine's limit and Stable-Baselines3, with `sb3_baseline.py`), and
`ray_backend.py` (`bench_ray.py`: the Ray backend's throughput and the parameter server's capacity)."""
