"""set_env_variable, CPU and memory limits, a display name: the task sees its variable and gets its limits."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def show() -> str:
    import os
    return os.environ["GREETING"]

@dsl.pipeline(name="env-resources")
def pipeline():
    (show().set_env_variable("GREETING", "hi from env")
        .set_cpu_limit("500m").set_memory_limit("256Mi").set_display_name("Show the variable"))

EXPECTED = {"state": "succeeded", "tasks": {
    "show": {"display_name": "Show the variable", "outputs": {"Output": "hi from env"}, "resources": {"cpu_millis": 500, "memory_bytes": 268435456}},
}}
