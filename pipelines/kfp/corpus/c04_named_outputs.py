"""A NamedTuple of outputs, each read downstream by its name; the pipeline returns the sum and
the divmod task's report (pipeline outputs)."""
from typing import NamedTuple
from kfp import dsl
from kfp.dsl import Dataset, Output

@dsl.component(base_image="python:3.11-slim")
def divmod_(a: int, b: int) -> NamedTuple("Out", [("q", int), ("r", int)]):
    from collections import namedtuple
    return namedtuple("Out", ["q", "r"])(a // b, a % b)

@dsl.component(base_image="python:3.11-slim")
def add(x: int, y: int, report: Output[Dataset]) -> int:
    with open(report.path, "w") as f:
        f.write(f"{x}+{y}")
    return x + y

@dsl.pipeline(name="named-outputs")
def pipeline(a: int = 17, b: int = 5) -> NamedTuple("Out", [("total", int), ("report", Dataset)]):
    t = divmod_(a=a, b=b)
    s = add(x=t.outputs["q"], y=t.outputs["r"])
    from collections import namedtuple
    return namedtuple("Out", ["total", "report"])(s.outputs["Output"], s.outputs["report"])

EXPECTED = {"state": "succeeded", "outputs": {"total": 5}, "output_artifacts": ["report"], "tasks": {
    "divmod": {"outputs": {"q": 3, "r": 2}},
    "add": {"outputs": {"Output": 5}},
}}
