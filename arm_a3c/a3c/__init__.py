"""The A3C algorithm, one module per role in the picture of Mnih et al. (2016) and ikostrikov/pytorch-a3c:

- `config.py`      every hyper-parameter (one typed `TrainConfig`, one flag each)
- `model.py`       the Actor-Critic (torch module, and its numpy twin the workers learn with)
- `optim.py`       `SharedAdam`, the shared optimizer
- `normalizer.py`  shared running observation statistics
- `shared.py`      what every process shares, and the worker's link to it on one machine
- `interfaces.py`  the extension points: `WorkerLink` (a worker's way to the global model), `WorkerSet` and
                   `Backend` (where the workers run; implementations in `arm_a3c.backends`)
- `worker.py`      the worker loop and its loss
- `evaluator.py`   the evaluator process
- `launcher.py`    starts a backend's workers and the evaluator, monitors, stops, writes the summary
- `checkpoint.py`, `metrics.py`, `rundir.py`, `live.py`: what a run writes (checkpoints, metrics, its
  directory, the live board a viewer reads)
"""
