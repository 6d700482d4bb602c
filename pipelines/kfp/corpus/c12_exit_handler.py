"""dsl.ExitHandler: the exit task runs after the group and is told it succeeded."""
from kfp import dsl
from kfp.dsl import PipelineTaskFinalStatus

@dsl.component(base_image="python:3.11-slim")
def work() -> str:
    return "done"

@dsl.component(base_image="python:3.11-slim")
def notify(status: PipelineTaskFinalStatus) -> str:
    return f"{status.state} {status.pipeline_task_name}"

@dsl.pipeline(name="exit-handler")
def pipeline():
    with dsl.ExitHandler(notify()):
        work()

EXPECTED = {"state": "succeeded", "tasks": {
    "exit-handler-1": {},
    "exit-handler-1.work": {"outputs": {"Output": "done"}},
    "exit-handler-1.notify": {"outputs": {"Output": "SUCCEEDED exit-handler-1"}},
}}
