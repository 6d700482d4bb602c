"""PipelineConfig's workspace: a directory every task of the run shares at
{{$.workspace_path}} (dsl.WORKSPACE_PATH_PLACEHOLDER in later kfp versions); one task writes into
it, a later one reads it."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def write(workspace: str = "{{$.workspace_path}}"):
    with open(workspace + "/shared.txt", "w") as f:
        f.write("written by the first task")

@dsl.component(base_image="python:3.11-slim")
def read(workspace: str = "{{$.workspace_path}}") -> str:
    with open(workspace + "/shared.txt") as f:
        return f.read()

@dsl.pipeline(name="workspace", pipeline_config=dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(size="1Gi")))
def pipeline():
    w = write()
    read().after(w)

EXPECTED = {"state": "succeeded", "tasks": {
    "write": {},
    "read": {"outputs": {"Output": "written by the first task"}},
}}
