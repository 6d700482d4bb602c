"""dsl.If on a boolean pipeline parameter and on a float comparison, nested."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def accuracy() -> float:
    return 0.93

@dsl.component(base_image="python:3.11-slim")
def deploy(acc: float) -> str:
    return f"deployed at {acc}"

@dsl.pipeline(name="bool-condition")
def pipeline(enabled: bool = True):
    a = accuracy()
    with dsl.If(enabled == True):
        with dsl.If(a.output >= 0.9):
            deploy(acc=a.output)

EXPECTED = {"state": "succeeded", "tasks": {
    "accuracy": {"outputs": {"Output": 0.93}},
    "condition-1": {},
    "condition-1.condition-2": {},
    "condition-1.condition-2.deploy": {"outputs": {"Output": "deployed at 0.93"}},
}}
