"""set_retry with every attempt failing: the task fails after 1 + 2 attempts, its dependant never runs."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def always_fails():
    raise SystemExit(3)

@dsl.component(base_image="python:3.11-slim")
def never():
    pass

@dsl.pipeline(name="retry-exhausted")
def pipeline():
    a = always_fails().set_retry(num_retries=2, backoff_duration="0s", backoff_factor=1.0)
    never().after(a)

EXPECTED = {"state": "failed", "tasks": {
    "always-fails": {"state": "failed", "attempts": 3},
    "never": {"state": "skipped"},
}}
