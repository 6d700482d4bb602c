"""dsl.importer: a file and a directory of the worker's host (in a path the server allows) become
artifacts, with the metadata the importer gives them, read downstream. The test writes them."""
import os
import tempfile

from kfp import dsl
from kfp.dsl import Dataset, Input

DATA = os.path.join(tempfile.gettempdir(), "sluice-kfp-import")

@dsl.component(base_image="python:3.11-slim")
def read(rows: Input[Dataset], tree: Input[Dataset]) -> str:
    import os
    with open(rows.path) as f:
        n = len(f.read().splitlines())
    return f"{n} rows from {rows.metadata['source']}; files {sorted(os.listdir(tree.path))}"

@dsl.pipeline(name="importer")
def pipeline():
    rows = dsl.importer(artifact_uri=f"file://{DATA}/rows.csv", artifact_class=Dataset,
                        reimport=False, metadata={"source": "the lab"})
    tree = dsl.importer(artifact_uri=f"file://{DATA}/tree", artifact_class=Dataset, reimport=False)
    read(rows=rows.output, tree=tree.output)

EXPECTED = {"state": "succeeded", "tasks": {
    "importer": {"artifacts": {"artifact": {"source": "the lab"}}, "artifact_kinds": {"artifact": "system.Dataset"}},
    "importer-2": {},
    "read": {"outputs": {"Output": "3 rows from the lab; files ['a.txt', 'b.txt']"}},
}}
