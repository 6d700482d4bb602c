"""dsl.importer, which sluice does not run yet: refused at submit, naming the executor."""
from kfp import dsl
from kfp.dsl import Dataset, Input

@dsl.component(base_image="python:3.11-slim")
def read(data: Input[Dataset]):
    pass

@dsl.pipeline(name="importer-refused")
def pipeline():
    imp = dsl.importer(artifact_uri="gs://bucket/data.csv", artifact_class=Dataset, reimport=False)
    read(data=imp.output)

EXPECTED = {"refused": "dsl.importer"}
