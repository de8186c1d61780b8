"""The pygame viewer: `window.py` (the window, its sources of episodes, keys, HUD, GIF recording, and `show`,
which the scripts and `train_arm.py --view` open), `scene.py` (the software renderer that draws the robot's URDF
visuals) and `meshes.py` (the URDF's meshes and primitives as simplified triangles)."""
