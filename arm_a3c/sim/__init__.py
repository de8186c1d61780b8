"""Simulation: PyBullet clients, reading URDFs, finding robots, the robot itself and rendering.

Nothing here knows about tasks or learning: a `Robot` is built from any URDF and knows its joints, its end
effector and how to apply a motor command; what the arm should do is `arm_a3c.tasks`' business.
"""
