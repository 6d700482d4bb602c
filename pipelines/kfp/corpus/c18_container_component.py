"""A container component: Concat and IfPresent placeholders, an OutputPath, an optional input given or not."""
from kfp import dsl

@dsl.container_component
def echo(text: str, out: dsl.OutputPath(str), suffix: str = None):
    return dsl.ContainerSpec(
        image="python:3.11-slim",
        command=["sh", "-c", 'printf "%s" "$0$1$2" > "$3"'],
        args=[
            dsl.ConcatPlaceholder(["<", text, ">"]),
            dsl.IfPresentPlaceholder(input_name="suffix", then=[suffix], else_=["-none"]),
            "!",
            out,
        ],
    )

@dsl.pipeline(name="container-component")
def pipeline():
    echo(text="plain")
    echo(text="given", suffix="-yes")

EXPECTED = {"state": "succeeded", "tasks": {
    "echo": {"outputs": {"out": "<plain>-none!"}},
    "echo-2": {"outputs": {"out": "<given>-yes!"}},
}}
