"""A pipeline used as a component inside another (a sub-DAG), with its output read outside."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def double(x: int) -> int:
    return 2 * x

@dsl.component(base_image="python:3.11-slim")
def inc(x: int) -> int:
    return x + 1

@dsl.pipeline(name="inner")
def inner(x: int) -> int:
    return inc(x=double(x=x).output).output

@dsl.pipeline(name="nested-pipeline")
def pipeline(x: int = 5):
    first = inner(x=x)
    inc(x=first.output)

EXPECTED = {"state": "succeeded", "tasks": {
    "inner": {"outputs": {"Output": 11}},
    "inner.double": {"outputs": {"Output": 10}},
    "inner.inc": {"outputs": {"Output": 11}},
    "inc": {"outputs": {"Output": 12}},
}}
