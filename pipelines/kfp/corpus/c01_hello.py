"""One lightweight component: a string parameter in, a string out."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def greet(name: str) -> str:
    return f"hello {name}"

@dsl.pipeline(name="hello")
def pipeline(name: str = "sluice"):
    greet(name=name)

EXPECTED = {"state": "succeeded", "tasks": {"greet": {"outputs": {"Output": "hello sluice"}}}}
