"""A component whose image no registry has: the task fails with the registry's answer, not a hang."""
from kfp import dsl

@dsl.component(base_image="python:3.99-nonexistent")
def nowhere():
    pass

@dsl.pipeline(name="missing-image")
def pipeline():
    nowhere()

EXPECTED = {"state": "failed", "tasks": {
    "nowhere": {"state": "failed", "error_contains": "python:3.99-nonexistent"},
}}
