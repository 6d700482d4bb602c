"""Kubeflow's visual artifact types: Metrics, ClassificationMetrics, Markdown and HTML."""
from kfp import dsl
from kfp.dsl import ClassificationMetrics, HTML, Markdown, Metrics, Output

@dsl.component(base_image="python:3.11-slim")
def evaluate(metrics: Output[Metrics], cm: Output[ClassificationMetrics],
             report: Output[Markdown], page: Output[HTML]):
    metrics.log_metric("accuracy", 0.9)
    metrics.log_metric("loss", 0.25)
    cm.log_confusion_matrix(["cat", "dog"], [[8, 2], [1, 9]])
    cm.log_roc_curve([0.0, 0.5, 1.0], [0.0, 0.8, 1.0], [1.0, 0.5, 0.0])
    with open(report.path, "w") as f:
        f.write("# Report\n\naccuracy **0.9**\n")
    with open(page.path, "w") as f:
        f.write("<h1>Report</h1>")

@dsl.pipeline(name="metrics")
def pipeline():
    evaluate()

EXPECTED = {"state": "succeeded", "tasks": {
    "evaluate": {"artifacts": {"metrics": {"accuracy": 0.9, "loss": 0.25}},
                 "artifact_kinds": {"metrics": "system.Metrics", "cm": "system.ClassificationMetrics",
                                    "report": "system.Markdown", "page": "system.HTML"}},
}}
