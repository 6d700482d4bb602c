"""A condition inside a loop, on the loop's item: it runs for some items only."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def keep(x: int) -> int:
    return x

@dsl.pipeline(name="condition-in-loop")
def pipeline():
    with dsl.ParallelFor([1, 5, 9]) as x:
        with dsl.If(x > 4):
            keep(x=x)

EXPECTED = {"state": "succeeded", "tasks": {
    "for-loop-2": {}, "for-loop-2[0]": {"state": "skipped"}, "for-loop-2[1]": {}, "for-loop-2[2]": {},
    "for-loop-2[0].condition-3": {"state": "skipped"},
    "for-loop-2[0].condition-3.keep": {"state": "skipped"},
    "for-loop-2[1].condition-3": {},
    "for-loop-2[1].condition-3.keep": {"outputs": {"Output": 5}},
    "for-loop-2[2].condition-3": {},
    "for-loop-2[2].condition-3.keep": {"outputs": {"Output": 9}},
}}
