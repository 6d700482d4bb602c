"""set_retry: a task that fails on its first two attempts succeeds on its third."""
from kfp import dsl

@dsl.component(base_image="python:3.11-slim")
def flaky(task_id: str = dsl.PIPELINE_TASK_ID_PLACEHOLDER) -> int:
    attempt = int(task_id.rsplit(".", 1)[1])
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt

@dsl.pipeline(name="retry")
def pipeline():
    flaky().set_retry(num_retries=3, backoff_duration="0s", backoff_factor=1.0)

EXPECTED = {"state": "succeeded", "tasks": {"flaky": {"outputs": {"Output": 3}, "attempts": 3}}}
