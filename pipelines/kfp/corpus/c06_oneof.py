"""dsl.OneOf: the output of whichever branch ran, read after the branches."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def coin(seed: int) -> str:
    return "heads" if seed % 2 == 0 else "tails"

@dsl.component(base_image="python:3.11-slim")
def say(msg: str) -> str:
    return msg

@dsl.component(base_image="python:3.11-slim")
def shout(msg: str) -> str:
    return msg.upper()

@dsl.pipeline(name="oneof")
def pipeline(seed: int = 3):
    c = coin(seed=seed)
    with dsl.If(c.output == "heads"):
        a = say(msg="it was heads")
    with dsl.Else():
        b = say(msg="it was tails")
    shout(msg=dsl.OneOf(a.output, b.output))

EXPECTED = {"state": "succeeded", "tasks": {
    "coin": {"outputs": {"Output": "tails"}},
    "condition-branches-1": {"outputs": {"condition-branches-1-oneof-1": "it was tails"}},
    "condition-branches-1.condition-2": {"state": "skipped"},
    "condition-branches-1.condition-2.say": {"state": "skipped"},
    "condition-branches-1.condition-3": {},
    "condition-branches-1.condition-3.say-2": {"outputs": {"Output": "it was tails"}},
    "shout": {"outputs": {"Output": "IT WAS TAILS"}},
}}
