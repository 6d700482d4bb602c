"""A Dataset written by one task and read by the next, with its metadata passed along."""
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

@dsl.component(base_image="python:3.11-slim")
def produce(rows: int, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("".join(f"{i}\n" for i in range(rows)))
    data.metadata["rows"] = rows

@dsl.component(base_image="python:3.11-slim")
def consume(data: Input[Dataset]) -> str:
    with open(data.path) as f:
        n = len(f.read().splitlines())
    return f"{n} lines, metadata says {data.metadata['rows']}, uri is path: {data.uri == data.path}"

@dsl.pipeline(name="artifacts")
def pipeline():
    consume(data=produce(rows=5).outputs["data"])

EXPECTED = {"state": "succeeded", "tasks": {
    "produce": {"artifacts": {"data": {"rows": 5}}},
    "consume": {"outputs": {"Output": "5 lines, metadata says 5, uri is path: True"}},
}}
