"""Every parameter type in and out; an int default compiled as 4.0 arrives as the integer 4. The
numbers inside a list or a dict constant are doubles, as in KFP's IR (protobuf's Value): 6.0, 9.0."""
from typing import Dict, List
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def types(i: int, f: float, b: bool, l: List[int], d: Dict[str, int], s: str = "x") -> str:
    assert type(i) is int and type(f) is float and type(b) is bool, (i, f, b)
    return f"{i} {f} {b} {sum(l)} {d['k']} {s}"

@dsl.component(base_image="python:3.11-slim")
def make() -> int:
    return 7

@dsl.component(base_image="python:3.11-slim")
def halve(n: int) -> float:
    return n / 2

@dsl.pipeline(name="types")
def pipeline(i: int = 4, f: float = 0.5, b: bool = True):
    types(i=i, f=f, b=b, l=[1, 2, 3], d={"k": 9})
    halve(n=make().output)

EXPECTED = {"state": "succeeded", "tasks": {
    "types": {"outputs": {"Output": "4 0.5 True 6.0 9.0 x"}},
    "make": {"outputs": {"Output": 7}},
    "halve": {"outputs": {"Output": 3.5}},
}}
