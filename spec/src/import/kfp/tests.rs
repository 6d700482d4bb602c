use crate::load;

const IR: &str = r#"components:
  comp-echo:
    executorLabel: exec-echo
    inputDefinitions:
      parameters:
        n:
          parameterType: NUMBER_INTEGER
deploymentSpec:
  executors:
    exec-echo:
      container:
        image: python:3.11-slim
        command: [echo]
        args: ["{{$.inputs.parameters['n']}}"]
pipelineInfo:
  name: p
root:
  dag:
    tasks:
      echo:
        componentRef:
          name: comp-echo
        inputs:
          parameters:
            n:
              runtimeValue:
                constant: 3.0
        taskInfo:
          name: Echo it
schemaVersion: 2.1.0
sdkVersion: kfp-2.14.3
"#;

#[test]
fn a_pipelinespec_is_recognised_from_its_fields_and_imported() {
    let p = load("anything.txt", IR).unwrap_or_else(|d| panic!("{}", d.render(IR)));
    let s = p.step("echo").unwrap();
    assert_eq!(s.display_name.as_deref(), Some("Echo it"));
    // The constant compiled as 3.0 is the integer 3.
    assert_eq!(s.params[0].value, serde_json::json!(3));
    let t = p.template_of(s).unwrap();
    assert!(t.command.is_none());
    assert_eq!(
        t.kfp.as_ref().unwrap().args,
        ["{{$.inputs.parameters['n']}}"]
    );
}

#[test]
fn an_unknown_field_from_a_newer_kfp_is_an_error_naming_it_and_its_place() {
    let src = IR.replace(
        "        taskInfo:\n          name: Echo it\n",
        "        taskInfo:\n          name: Echo it\n        futureField: 1\n",
    );
    let e = load("p.yaml", &src).unwrap_err().render(&src);
    assert!(
        e.contains("unknown field `futureField` in task `echo`"),
        "{e}"
    );
    assert!(e.contains("p.yaml:30:9"), "{e}");
    assert_eq!(e.matches("error:").count(), 1, "reported once: {e}");
}

#[test]
fn what_sluice_does_not_run_is_refused_with_its_place() {
    let src = IR.replace(
        "        image: python:3.11-slim\n",
        "        image: python:3.11-slim\n        lifecycle: {}\n",
    );
    let e = load("p.yaml", &src).unwrap_err().render(&src);
    assert!(e.contains("lifecycle"), "{e}");
    let src = IR.replace("        taskInfo:\n          name: Echo it\n", "        taskInfo:\n          name: Echo it\n        triggerPolicy:\n          condition: size(inputs.parameter_values['x']) > 1\n");
    let e = load("p.yaml", &src).unwrap_err().render(&src);
    assert!(e.contains("condition"), "{e}");
}

#[test]
fn a_kfp_v1_file_is_refused_saying_so() {
    let src = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: p-}\nspec: {}\n";
    let e = load("p.yaml", src).unwrap_err().render(src);
    assert!(e.contains("Kubeflow Pipelines v1"), "{e}");
}

#[test]
fn a_platform_spec_document_is_read_after_the_pipelinespec() {
    let src = format!("{IR}---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-echo:\n          secretAsEnv:\n          - secretName: hf\n            keyToEnv:\n            - secretKey: token\n              envVar: HF_TOKEN\n          nodeSelector:\n            labels: {{gpu: a100}}\n");
    let p = load("p.yaml", &src).unwrap_or_else(|d| panic!("{}", d.render(&src)));
    let t = &p.components[0].template;
    let selector: Vec<(&str, &str)> = t
        .node_selector
        .iter()
        .map(|(k, v)| (k.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(selector, [("gpu", "a100")]);
    // A selector given as a run parameter is not known before the run.
    let by_param = src.replace(
        "            labels: {gpu: a100}\n",
        "            nodeSelectorJson: {componentInputParameter: sel}\n",
    );
    let e = load("p.yaml", &by_param).unwrap_err().render(&by_param);
    assert!(
        e.contains("nodeSelectorJson") && e.contains("p.yaml:44:31"),
        "{e}"
    );
    let secrets = &t.secrets;
    assert_eq!(secrets[0].secret, "hf-token");
    assert_eq!(secrets[0].env.as_deref(), Some("HF_TOKEN"));
}

#[test]
fn an_importer_of_a_uri_sluice_cannot_reach_is_refused_at_its_place() {
    let src = "components:
  comp-importer:
    executorLabel: exec-importer
    inputDefinitions: {parameters: {uri: {parameterType: STRING}}}
    outputDefinitions:
      artifacts: {artifact: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}}
deploymentSpec:
  executors:
    exec-importer:
      importer:
        artifactUri: {constant: 'gs://bucket/data.csv'}
        typeSchema: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}
pipelineInfo: {name: p}
root:
  dag:
    tasks:
      importer:
        componentRef: {name: comp-importer}
        inputs: {parameters: {uri: {runtimeValue: {constant: 'gs://bucket/data.csv'}}}}
schemaVersion: 2.1.0
";
    let e = load("p.yaml", src).unwrap_err().render(src);
    assert!(e.contains("p.yaml:11:33"), "{e}");
    assert!(
        e.contains("`gs://bucket/data.csv` (gs://) is not one"),
        "{e}"
    );
    let ok = src.replace("gs://bucket/data.csv", "file:///srv/data.csv");
    let p = load("p.yaml", &ok).unwrap_or_else(|d| panic!("{}", d.render(&ok)));
    let launch = p.components[0].template.kfp.as_ref().unwrap();
    assert_eq!(
        launch.importer.as_ref().unwrap().uri.as_deref(),
        Some("file:///srv/data.csv")
    );
}

#[test]
fn a_pipelines_input_artifacts_are_given_to_each_run() {
    let src = "components:
  comp-count:
    executorLabel: exec-count
    inputDefinitions:
      artifacts: {rows: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}}
deploymentSpec:
  executors:
    exec-count:
      container: {image: busybox, command: [wc, -l, '{{$.inputs.artifacts[''rows''].path}}']}
pipelineInfo: {name: p}
root:
  inputDefinitions:
    artifacts: {data: {artifactType: {schemaTitle: system.Dataset, schemaVersion: 0.0.1}}}
  dag:
    tasks:
      count:
        componentRef: {name: comp-count}
        inputs: {artifacts: {rows: {componentInputArtifact: data}}}
schemaVersion: 2.1.0
";
    let p = load("p.yaml", src).unwrap_or_else(|d| panic!("{}", d.render(src)));
    assert_eq!(p.artifacts.len(), 1);
    assert_eq!(p.artifacts[0].name, "data");
    let count = p.step("count").unwrap();
    assert_eq!(
        count.artifacts[0].value,
        serde_json::json!("{{artifacts.data}}")
    );
}
