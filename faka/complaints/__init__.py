"""Complaints: the workflow, its steps and deadlines."""
