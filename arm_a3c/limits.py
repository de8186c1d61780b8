"""Bounds on the counts a user gives, checked at the door (the command line, `TrainConfig.check`, a saved config):
beyond them a run would exhaust the memory or never end. Here, apart from everything, so a script's flags can be
checked before torch or PyBullet load."""

MAX_WORKERS = 1024  # worker processes or Ray actors
MAX_HIDDEN_SIZE = 4096  # units per hidden layer (4096 x 4096 floats is 64 MB per layer, before Adam's two copies)
MAX_N_STEPS = 10_000  # steps per rollout (its buffers are n x observation floats)
MAX_EPISODES = 10_000  # episodes of one evaluation or held-out test (about 5 minutes of one core at 10,000)
MAX_OBSTACLES = 16
MAX_REWARD_WEIGHT = 1e6  # a cost, bonus or penalty above this makes returns meaningless (and then infinite)
MAX_SEED = 2**31 - 1  # seeds are non-negative (gymnasium's rule); seed + k for worker k must stay in range too
MAX_FRAMES = 30 * 60 * 60  # view.py --record: an hour at 30 frames per second
