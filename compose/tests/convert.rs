//! `berth compose convert --format kubernetes`: the objects a project
//! becomes, checked with Kubernetes' own schemas (PyPI's
//! kubernetes-validate, which testdata/test.sh installs). No containers: it
//! runs as any user. The commands that run containers are tested through
//! `berth compose` in cli/tests/compose.rs.

#[path = "../../testdata/support/compose_projects.rs"]
mod compose_projects;
use compose_projects::project_dir;

use berth_compose::yaml;
use std::process::Command;

#[test]
fn a_project_converts_to_kubernetes_objects_that_validate() {
    // No containers: any user may convert.
    let tmp = tempfile::tempdir().unwrap();
    let dir = project_dir("cluster", tmp.path());
    let o = Command::new(env!("CARGO_BIN_EXE_berth-compose"))
        .arg("--root")
        .arg(tmp.path().join("root"))
        .args(["convert", "--format", "kubernetes"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let yaml = String::from_utf8_lossy(&o.stdout).into_owned();
    let docs: Vec<serde_json::Value> = yaml
        .split("---\n")
        .map(|d| yaml::parse(d).unwrap().remove(0).tree)
        .collect();
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Service/web",
            "Deployment/web",
            "Deployment/worker",
            "PersistentVolumeClaim/data",
            "ConfigMap/app",
            "Secret/token"
        ]
    );
    let web = &docs[1]["spec"];
    assert_eq!(web["replicas"], 2);
    let c = &web["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/cluster/web:1.0");
    assert_eq!(
        c["livenessProbe"]["exec"]["command"][2],
        "wget -qO- http://127.0.0.1:8080/ || exit 1"
    );
    assert_eq!(c["livenessProbe"]["periodSeconds"], 10);
    assert_eq!(c["resources"]["limits"]["memory"], "67108864");
    assert_eq!(docs[5]["data"]["token"], "czNjcjN0Cg==");
    assert_eq!(docs[4]["data"]["app"], "listen 8080\n");
    // Kubernetes' own schemas, strictly (PyPI's kubernetes-validate).
    let file = tmp.path().join("k8s.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let check = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "kubernetes-validate: {}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
