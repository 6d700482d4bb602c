"""dsl.ParallelFor over a literal list, two at a time, gathered with dsl.Collected."""
from typing import List
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def square(x: int) -> int:
    return x * x

@dsl.component(base_image="python:3.11-slim")
def total(xs: List[int]) -> int:
    return sum(xs)

@dsl.pipeline(name="parallel-for")
def pipeline():
    with dsl.ParallelFor([1, 2, 3], parallelism=2) as x:
        s = square(x=x)
    total(xs=dsl.Collected(s.output))

EXPECTED = {"state": "succeeded", "tasks": {
    "for-loop-2": {"outputs": {"square-Output": [1, 4, 9]}},
    "for-loop-2[0]": {}, "for-loop-2[1]": {}, "for-loop-2[2]": {},
    "for-loop-2[0].square": {"outputs": {"Output": 1}},
    "for-loop-2[1].square": {"outputs": {"Output": 4}},
    "for-loop-2[2].square": {"outputs": {"Output": 9}},
    "total": {"outputs": {"Output": 14}},
}}
