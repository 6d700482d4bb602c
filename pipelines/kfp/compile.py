"""Compiles every pipeline of the kfp corpus (corpus/*.py) with the kfp SDK, as a Kubeflow user
would, into OUT/NAME.yaml, and writes each one's expected outcome (its EXPECTED) to
OUT/NAME.expected.json. Usage: python compile.py OUT"""
import importlib.util
import json
import pathlib
import sys
import warnings

from kfp import compiler

warnings.filterwarnings("ignore")
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
here = pathlib.Path(__file__).parent
for src in sorted((here / "corpus").glob("c*.py")):
    spec = importlib.util.spec_from_file_location(src.stem, src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    compiler.Compiler().compile(mod.pipeline, str(out / f"{src.stem}.yaml"))
    (out / f"{src.stem}.expected.json").write_text(json.dumps(mod.EXPECTED, indent=1))
print(f"compiled {len(list(out.glob('*.yaml')))} pipelines into {out}")
