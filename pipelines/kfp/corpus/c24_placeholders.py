"""The run's and task's names as KFP's placeholders give them to a component."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def names(job: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
          task: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER) -> str:
    return f"{job}/{task}"

@dsl.pipeline(name="placeholders")
def pipeline():
    names()

EXPECTED = {"state": "succeeded", "run_name": "placeholders-run",
            "tasks": {"names": {"outputs": {"Output": "placeholders-run/names"}}}}
