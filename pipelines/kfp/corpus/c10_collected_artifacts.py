"""Artifacts made in a loop, gathered with dsl.Collected into one List[Input[Model]]."""
from typing import List
from kfp import dsl
from kfp.dsl import Input, Model, Output

@dsl.component(base_image="python:3.11-slim")
def fit(seed: int, model: Output[Model]):
    with open(model.path, "w") as f:
        f.write(f"model-{seed}")
    model.metadata["seed"] = seed

@dsl.component(base_image="python:3.11-slim")
def pick(models: Input[List[Model]]) -> str:
    out = []
    for m in models:
        with open(m.path) as f:
            out.append(f"{f.read()}/{m.metadata['seed']}")
    return ",".join(sorted(out))

@dsl.pipeline(name="collected-artifacts")
def pipeline():
    with dsl.ParallelFor([1, 2]) as s:
        f = fit(seed=s)
    pick(models=dsl.Collected(f.outputs["model"]))

EXPECTED = {"state": "succeeded", "tasks": {
    "for-loop-2": {}, "for-loop-2[0]": {}, "for-loop-2[1]": {},
    "for-loop-2[0].fit": {"artifacts": {"model": {"seed": 1}}},
    "for-loop-2[1].fit": {"artifacts": {"model": {"seed": 2}}},
    "pick": {"outputs": {"Output": "model-1/1,model-2/2"}},
}}
