"""Drives a sluice server with Kubeflow's own client (`kfp.Client`, the pinned kfp SDK), as a
notebook or a CI script written for Kubeflow would. Every step asserts what Kubeflow promises.

Usage: python kfp_client.py MODE HOST TOKEN [STATE_FILE]
  flow      the client's calls end to end (runs in real containers)
  schedule  makes a recurring run every 2 s with catch-up; writes its id to STATE_FILE
  fired     prints, as JSON, the scheduled times of the runs the recurring run in STATE_FILE fired
"""
import datetime
import json
import os
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

import kfp  # noqa: E402
from kfp import compiler, dsl  # noqa: E402
from kfp_server_api.exceptions import ApiException  # noqa: E402

MODE, HOST, TOKEN = sys.argv[1], sys.argv[2], sys.argv[3]
STATE = sys.argv[4] if len(sys.argv) > 4 else None


@dsl.component(base_image="python:3.11-slim")
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image="python:3.11-slim")
def nap(seconds: int):
    import time
    time.sleep(seconds)


@dsl.pipeline(name="adder")
def adder(a: int = 1, b: int = 2):
    first = add(a=a, b=b)
    add(a=first.output, b=b)


@dsl.pipeline(name="adder")
def adder_v2(a: int = 10, b: int = 20):
    add(a=a, b=b)


@dsl.pipeline(name="napper")
def napper(seconds: int = 300):
    nap(seconds=seconds)


def client(token=TOKEN):
    return kfp.Client(host=HOST, existing_token=token)


def compiled(func, name):
    path = os.path.join(tempfile.mkdtemp(), name)
    compiler.Compiler().compile(func, path)
    return path


def state(c, run_id):
    return c.get_run(run_id).state


def wait_state(c, run_id, want, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = state(c, run_id)
        if s == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} is {state(c, run_id)}, not {want}, after {timeout} s")


def expect_api_error(status, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        assert e.status == status, f"{fn.__name__}: status {e.status}, expected {status}: {e.body}"
        body = json.loads(e.body)
        assert isinstance(body.get("code"), int) and body.get("message"), body
        return body
    raise AssertionError(f"{fn.__name__} succeeded; expected {status}")


def flow():
    # Without the token nothing is served.
    expect_api_error(401, client(token="not-the-token").list_runs)
    c = client()
    assert c.get_kfp_healthz().multi_user is False

    # A run straight from a pipeline function, into a new experiment.
    r = c.create_run_from_pipeline_func(
        adder, arguments={"a": 3, "b": 4}, experiment_name="kfp-client", run_name="from-func"
    )
    done = r.wait_for_run_completion(timeout=300)
    assert done.state == "SUCCEEDED", done
    assert done.display_name == "from-func"
    exp = c.get_experiment(experiment_name="kfp-client")
    assert done.experiment_id == exp.experiment_id
    tasks = done.run_details.task_details
    assert len(tasks) >= 2 and all(t.state == "SUCCEEDED" for t in tasks), tasks
    assert done.runtime_config.parameters == {"a": 3, "b": 4}, done.runtime_config

    # Pipelines and versions.
    package = compiled(adder, "adder.yaml")
    p = c.upload_pipeline(package, pipeline_name="adder-kfp", description="adds")
    assert p.display_name == "adder-kfp" and p.pipeline_id
    assert c.get_pipeline_id("adder-kfp") == p.pipeline_id
    assert c.get_pipeline(p.pipeline_id).display_name == "adder-kfp"
    expect_api_error(409, c.upload_pipeline, package, pipeline_name="adder-kfp")
    v2 = c.upload_pipeline_version(
        compiled(adder_v2, "adder_v2.yaml"), "second", pipeline_id=p.pipeline_id
    )
    assert v2.display_name == "second" and v2.pipeline_id == p.pipeline_id
    versions = c.list_pipeline_versions(p.pipeline_id).pipeline_versions
    assert sorted(v.display_name for v in versions) == ["adder-kfp", "second"], versions
    got = c.get_pipeline_version(p.pipeline_id, v2.pipeline_version_id)
    assert got.pipeline_spec["pipelineInfo"]["name"] == "adder", got.pipeline_spec

    # A run from a package, into the Default experiment, and one from a stored version.
    pkg = c.create_run_from_pipeline_package(package, arguments={"a": 5}, run_name="from-package")
    from_version = c.run_pipeline(
        experiment_id=exp.experiment_id,
        job_name="from-version",
        pipeline_id=p.pipeline_id,
        version_id=v2.pipeline_version_id,
        params={"b": 1},
    )
    for run_id in (pkg.run_id, from_version.run_id):
        assert c.wait_for_run_completion(run_id, timeout=300).state == "SUCCEEDED"
    default = c.get_experiment(experiment_name="Default")
    assert c.get_run(pkg.run_id).experiment_id == default.experiment_id
    ref = c.get_run(from_version.run_id).pipeline_version_reference
    assert ref.pipeline_version_id == v2.pipeline_version_id, ref

    # Listing runs in pages.
    seen, token = [], ""
    while True:
        page = c.list_runs(page_token=token, page_size=2, sort_by="created_at desc")
        assert len(page.runs or []) <= 2
        seen += [x.run_id for x in page.runs or []]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) >= 3, seen
    in_exp = c.list_runs(experiment_id=exp.experiment_id).runs
    assert {x.display_name for x in in_exp} == {"from-func", "from-version"}, in_exp
    by_name = c.list_runs(
        filter=json.dumps(
            {"predicates": [{"key": "display_name", "operation": "EQUALS", "stringValue": "from-package"}]}
        )
    ).runs
    assert [x.run_id for x in by_name] == [pkg.run_id]
    bad = expect_api_error(
        400,
        c.list_runs,
        filter=json.dumps(
            {"predicates": [{"key": "pod_name", "operation": "EQUALS", "stringValue": "x"}]}
        ),
    )
    assert "pod_name" in bad["message"], bad

    # Experiments.
    e2 = c.create_experiment("kfp-client-2", description="second")
    assert c.create_experiment("kfp-client-2").experiment_id == e2.experiment_id
    names = [x.display_name for x in c.list_experiments(page_size=100).experiments]
    assert {"Default", "kfp-client", "kfp-client-2"} <= set(names), names
    c.archive_experiment(e2.experiment_id)
    assert c.get_experiment(experiment_id=e2.experiment_id).storage_state == "ARCHIVED"
    c.unarchive_experiment(e2.experiment_id)
    c.delete_experiment(e2.experiment_id)
    expect_api_error(404, c.get_experiment, experiment_id=e2.experiment_id)

    # Terminating a run that is still going.
    long = c.create_run_from_pipeline_func(napper, arguments={"seconds": 300}, run_name="napper")
    deadline = time.time() + 120
    while not any(t.state == "RUNNING" for t in (c.get_run(long.run_id).run_details.task_details or [])):
        assert time.time() < deadline, c.get_run(long.run_id)
        time.sleep(0.5)
    c.terminate_run(long.run_id)
    wait_state(c, long.run_id, "CANCELED")

    # Archiving and deleting.
    c.archive_run(pkg.run_id)
    assert c.get_run(pkg.run_id).storage_state == "ARCHIVED"
    c.unarchive_run(pkg.run_id)
    assert c.get_run(pkg.run_id).storage_state == "AVAILABLE"
    c.delete_run(long.run_id)
    expect_api_error(404, c.get_run, long.run_id)

    # A recurring run: fires every second, one at a time; disabled, it stops.
    job = c.create_recurring_run(
        experiment_id=exp.experiment_id,
        job_name="every-second",
        interval_second=1,
        pipeline_package_path=package,
        params={"a": 1},
        max_concurrency=1,
        no_catchup=True,
    )
    assert c.get_recurring_run(job.recurring_run_id).status == "ENABLED"
    fired = json.dumps(
        {"predicates": [{"key": "recurring_run_id", "operation": "EQUALS", "stringValue": job.recurring_run_id}]}
    )
    deadline = time.time() + 120
    while len(c.list_runs(filter=fired).runs or []) < 2:
        assert time.time() < deadline, "the recurring run fired fewer than 2 runs in 120 s"
        time.sleep(0.5)
    runs = c.list_runs(filter=fired, page_size=100).runs
    assert sum(1 for x in runs if x.state in ("RUNNING", "PENDING")) <= 1, runs
    c.disable_recurring_run(job.recurring_run_id)
    assert c.get_recurring_run(job.recurring_run_id).status == "DISABLED"
    listed = c.list_recurring_runs(experiment_id=exp.experiment_id).recurring_runs
    assert [j.recurring_run_id for j in listed] == [job.recurring_run_id], listed
    c.delete_recurring_run(job.recurring_run_id)
    expect_api_error(404, c.get_recurring_run, job.recurring_run_id)
    print("kfp client flow: ok")


def schedule():
    c = client()
    path = compiled(adder, "adder.yaml")
    exp = c.create_experiment("restarts")
    job = c.create_recurring_run(
        experiment_id=exp.experiment_id,
        job_name="every-2s",
        interval_second=2,
        pipeline_package_path=path,
        max_concurrency=50,
        no_catchup=False,
    )
    with open(STATE, "w") as f:
        f.write(job.recurring_run_id)
    print(job.recurring_run_id)


def fired():
    c = client()
    with open(STATE) as f:
        job = f.read().strip()
    flt = json.dumps(
        {"predicates": [{"key": "recurring_run_id", "operation": "EQUALS", "stringValue": job}]}
    )
    times, token = [], ""
    while True:
        page = c.list_runs(filter=flt, page_size=100, page_token=token)
        times += [x.scheduled_at.astimezone(datetime.timezone.utc).timestamp() for x in page.runs or []]
        token = page.next_page_token
        if not token:
            break
    print(json.dumps(sorted(times)))


{"flow": flow, "schedule": schedule, "fired": fired}[MODE]()
