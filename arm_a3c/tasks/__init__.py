"""Tasks: what the arm should learn, one file per task (`reach.py`). A task asks the robot for random
configurations and forward kinematics, and knows nothing about which URDF is loaded."""
