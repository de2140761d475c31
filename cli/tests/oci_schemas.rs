//! The OCI conformance check itself, tested on the spec's examples and our
//! valid/invalid cases (shared/conformance/oci-image-spec/cases.tsv), and on
//! BuildKit's exporter goldens.

#[path = "../../testdata/support/oci_validate.rs"]
mod oci_validate;

#[test]
fn validator_agrees_with_every_case() {
    let dir = oci_validate::conformance().join("oci-image-spec");
    let table = std::fs::read_to_string(dir.join("cases.tsv")).expect("cases.tsv");
    let schemas = oci_validate::OciSchemas::new();
    let mut ran = 0;
    let mut failures = Vec::new();
    for line in table.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, schema, expected) = (cols[0], cols[1], cols[2]);
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(file)).expect("case file"))
                .expect("case JSON");
        let errors = schemas.errors(schema, &doc);
        ran += 1;
        let valid = errors.is_empty();
        if valid != (expected == "valid") {
            failures.push(format!("{file}: expected {expected}, errors {errors:?}"));
        }
    }
    assert!(ran >= 65, "only {ran} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn buildkit_goldens_validate() {
    let root = oci_validate::conformance().join("buildkit/exporter-goldens");
    let schemas = oci_validate::OciSchemas::new();
    let mut n = 0;
    for e in walkdir::WalkDir::new(&root) {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        let schema = match name.as_str() {
            "manifest.json" => "image-manifest-schema.json",
            "config.json" => "config-schema.json",
            _ => continue,
        };
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let errors = schemas.errors(schema, &doc);
        assert!(errors.is_empty(), "{}: {errors:?}", e.path().display());
        n += 1;
    }
    assert_eq!(n, 58);
}
