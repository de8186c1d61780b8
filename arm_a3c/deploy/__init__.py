"""Driving an arm with an exported policy (`arm-a3c deploy`): the policy file and its description
(`policy_file`), the arm's kinematics for the observation (`kinematics`), the safety shield (`shield`), the
transports that speak to a robot (`transports`), the control loop (`loop`) and its log (`log`)."""
