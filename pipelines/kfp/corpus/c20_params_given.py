"""Pipeline parameters given at submit time replace their defaults."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def describe(lr: float, epochs: int, tag: str) -> str:
    return f"{tag}: {epochs} epochs at {lr}"

@dsl.pipeline(name="params-given")
def pipeline(lr: float = 0.1, epochs: int = 1, tag: str = "default"):
    describe(lr=lr, epochs=epochs, tag=tag)

EXPECTED = {"state": "succeeded", "params": {"lr": 0.01, "epochs": 20, "tag": "nightly"},
            "tasks": {"describe": {"outputs": {"Output": "nightly: 20 epochs at 0.01"}}}}
