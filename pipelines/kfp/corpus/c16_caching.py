"""Caching: a task equal to one that already ran is served from its result; one with caching off runs."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def compute(x: int) -> int:
    return x * 3

@dsl.pipeline(name="caching")
def pipeline():
    a = compute(x=4)
    b = compute(x=4).after(a)
    compute(x=4).after(b).set_caching_options(False)

EXPECTED = {"state": "succeeded", "tasks": {
    "compute": {"outputs": {"Output": 12}},
    "compute-2": {"outputs": {"Output": 12}, "cached": True},
    "compute-3": {"outputs": {"Output": 12}, "cached": False},
}}
