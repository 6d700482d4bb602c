"""A failing task fails the run; what depends on it does not run; an independent task still does."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def bad() -> int:
    raise ValueError("bad input")

@dsl.component(base_image="python:3.11-slim")
def uses(x: int) -> int:
    return x

@dsl.component(base_image="python:3.11-slim")
def independent() -> str:
    return "ran"

@dsl.pipeline(name="failure")
def pipeline():
    uses(x=bad().output)
    independent()

EXPECTED = {"state": "failed", "tasks": {
    "bad": {"state": "failed", "exit_code": 1},
    "uses": {"state": "skipped"},
    "independent": {"outputs": {"Output": "ran"}},
}}
