"""dsl.ExitHandler around a failing task: the exit task still runs, told it failed, and the run fails."""
from kfp import dsl
from kfp.dsl import PipelineTaskFinalStatus

@dsl.component(base_image="python:3.11-slim")
def boom():
    raise RuntimeError("boom")

@dsl.component(base_image="python:3.11-slim")
def after():
    pass

@dsl.component(base_image="python:3.11-slim")
def notify(status: PipelineTaskFinalStatus) -> str:
    return status.state

@dsl.pipeline(name="exit-handler-failure")
def pipeline():
    with dsl.ExitHandler(notify()):
        b = boom()
        after().after(b)

EXPECTED = {"state": "failed", "tasks": {
    "exit-handler-1": {"state": "failed"},
    "exit-handler-1.boom": {"state": "failed", "attempts": 1},
    "exit-handler-1.after": {"state": "skipped"},
    "exit-handler-1.notify": {"outputs": {"Output": "FAILED"}},
}}
