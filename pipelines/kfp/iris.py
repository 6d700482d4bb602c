"""sluice's demo as a Kubeflow pipeline of lightweight components, written with the kfp SDK and
run by sluice unchanged: prepare the iris dataset, train a random forest, evaluate it, and log
its accuracy, confusion matrix and a Markdown report as Kubeflow's visual artifacts.

    python iris.py                 # writes iris.yaml beside this file
    sluice submit iris.yaml --wait

The components run on the scikit-learn image that scripts/images serves on 127.0.0.1:5000 (it has
pip and this kfp version, so the components' own `pip install kfp` is satisfied offline)."""
import pathlib

from kfp import compiler, dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

IMAGE = "127.0.0.1:5000/sluice/sklearn:1"


@dsl.component(base_image=IMAGE)
def prepare(test_size: float, seed: int, dataset: Output[Dataset]) -> int:
    import os
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    frame = load_iris(as_frame=True).frame
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame["target"])
    os.makedirs(dataset.path, exist_ok=True)
    train.to_csv(f"{dataset.path}/train.csv", index=False)
    test.to_csv(f"{dataset.path}/test.csv", index=False)
    dataset.metadata.update({"train_rows": len(train), "test_rows": len(test)})
    return len(frame)


@dsl.component(base_image=IMAGE)
def train(dataset: Input[Dataset], n_estimators: int, max_depth: int, seed: int, model: Output[Model]):
    import pickle
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    data = pd.read_csv(f"{dataset.path}/train.csv")
    clf = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed)
    clf.fit(data.drop(columns="target"), data["target"])
    with open(model.path, "wb") as f:
        pickle.dump(clf, f)
    model.metadata["framework"] = "scikit-learn"


@dsl.component(base_image=IMAGE)
def evaluate(dataset: Input[Dataset], model: Input[Model], metrics: Output[Metrics],
             confusion: Output[ClassificationMetrics], report: Output[Markdown]) -> float:
    import pickle
    import pandas as pd
    from sklearn.metrics import accuracy_score, confusion_matrix

    test = pd.read_csv(f"{dataset.path}/test.csv")
    with open(model.path, "rb") as f:
        clf = pickle.load(f)
    predicted = clf.predict(test.drop(columns="target"))
    accuracy = float(accuracy_score(test["target"], predicted))
    metrics.log_metric("accuracy", accuracy)
    metrics.log_metric("test_rows", len(test))
    names = ["setosa", "versicolor", "virginica"]
    confusion.log_confusion_matrix(names, confusion_matrix(test["target"], predicted).tolist())
    with open(report.path, "w") as f:
        f.write(f"# iris\n\nA random forest scores **{accuracy:.3f}** on {len(test)} held-out rows.\n")
    print(f"accuracy {accuracy:.3f}")
    return accuracy


@dsl.pipeline(name="iris-kfp", description="the iris demo as kfp lightweight components")
def iris(test_size: float = 0.3, n_estimators: int = 100, max_depth: int = 3, seed: int = 42) -> float:
    data = prepare(test_size=test_size, seed=seed).set_display_name("Prepare the data")
    model = train(dataset=data.outputs["dataset"], n_estimators=n_estimators, max_depth=max_depth, seed=seed)
    scores = evaluate(dataset=data.outputs["dataset"], model=model.outputs["model"])
    return scores.outputs["Output"]


if __name__ == "__main__":
    out = pathlib.Path(__file__).with_suffix(".yaml")
    compiler.Compiler().compile(iris, str(out))
    print(f"wrote {out}")
