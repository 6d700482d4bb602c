"""A NamedTuple of outputs, each read downstream by its name."""
from typing import NamedTuple
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def divmod_(a: int, b: int) -> NamedTuple("Out", [("q", int), ("r", int)]):
    from collections import namedtuple
    return namedtuple("Out", ["q", "r"])(a // b, a % b)

@dsl.component(base_image="python:3.11-slim")
def add(x: int, y: int) -> int:
    return x + y

@dsl.pipeline(name="named-outputs")
def pipeline(a: int = 17, b: int = 5):
    t = divmod_(a=a, b=b)
    add(x=t.outputs["q"], y=t.outputs["r"])

EXPECTED = {"state": "succeeded", "tasks": {
    "divmod": {"outputs": {"q": 3, "r": 2}},
    "add": {"outputs": {"Output": 5}},
}}
