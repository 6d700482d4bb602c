"""dsl.ParallelFor over an upstream task's list output: the items are known only at run time."""
from typing import List
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def shards(n: int) -> List[int]:
    return list(range(n))

@dsl.component(base_image="python:3.11-slim")
def work(shard: int) -> int:
    return shard + 100

@dsl.component(base_image="python:3.11-slim")
def count(xs: List[int]) -> int:
    return len(xs)

@dsl.pipeline(name="loop-over-output")
def pipeline(n: int = 3):
    s = shards(n=n)
    with dsl.ParallelFor(s.output) as i:
        w = work(shard=i)
    count(xs=dsl.Collected(w.output))

EXPECTED = {"state": "succeeded", "tasks": {
    "shards": {"outputs": {"Output": [0, 1, 2]}},
    "for-loop-1": {}, "for-loop-1[0]": {}, "for-loop-1[1]": {}, "for-loop-1[2]": {},
    "for-loop-1[0].work": {"outputs": {"Output": 100}},
    "for-loop-1[1].work": {"outputs": {"Output": 101}},
    "for-loop-1[2].work": {"outputs": {"Output": 102}},
    "count": {"outputs": {"Output": 3}},
}}
