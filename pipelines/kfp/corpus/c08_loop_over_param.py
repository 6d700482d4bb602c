"""dsl.ParallelFor over a pipeline parameter holding dicts; each item's fields read apart."""
from typing import List
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def train(depth: int, label: str) -> str:
    return f"{label}:{depth}"

@dsl.component(base_image="python:3.11-slim")
def join(xs: List[str]) -> str:
    return ",".join(xs)

@dsl.pipeline(name="loop-over-param")
def pipeline(configs: List[dict] = [{"depth": 2, "label": "a"}, {"depth": 5, "label": "b"}]):
    with dsl.ParallelFor(configs) as c:
        t = train(depth=c.depth, label=c.label)
    join(xs=dsl.Collected(t.output))

EXPECTED = {"state": "succeeded", "tasks": {
    "for-loop-1": {}, "for-loop-1[0]": {}, "for-loop-1[1]": {},
    "for-loop-1[0].train": {"outputs": {"Output": "a:2"}},
    "for-loop-1[1].train": {"outputs": {"Output": "b:5"}},
    "join": {"outputs": {"Output": "a:2,b:5"}},
}}
