"""dsl.importer of a host path the server does not allow: refused at submit by its policy."""
from kfp import dsl
from kfp.dsl import Dataset, Input

@dsl.component(base_image="python:3.11-slim")
def read(data: Input[Dataset]):
    pass

@dsl.pipeline(name="importer-denied")
def pipeline():
    read(data=dsl.importer(artifact_uri="file:///etc/hostname", artifact_class=Dataset).output)

EXPECTED = {"refused": "imports host path `/etc/hostname`"}
