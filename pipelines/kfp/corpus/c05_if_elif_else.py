"""dsl.If / dsl.Elif / dsl.Else on an upstream output: exactly one branch runs."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def score(n: int) -> int:
    return n * 10

@dsl.component(base_image="python:3.11-slim")
def say(msg: str) -> str:
    return msg

@dsl.pipeline(name="if-elif-else")
def pipeline(n: int = 5):
    s = score(n=n)
    with dsl.If(s.output > 80):
        say(msg="high")
    with dsl.Elif(s.output > 30):
        say(msg="middle")
    with dsl.Else():
        say(msg="low")

EXPECTED = {"state": "succeeded", "tasks": {
    "score": {"outputs": {"Output": 50}},
    "condition-branches-1": {},
    "condition-branches-1.condition-2": {"state": "skipped"},
    "condition-branches-1.condition-2.say": {"state": "skipped"},
    "condition-branches-1.condition-3": {},
    "condition-branches-1.condition-3.say-2": {"outputs": {"Output": "middle"}},
    "condition-branches-1.condition-4": {"state": "skipped"},
    "condition-branches-1.condition-4.say-3": {"state": "skipped"},
}}
