//! Strict decoding of our objects from files: unknown fields and kinds, empty input, near misses
//! and the SR-IOV network operator's spellings are refused with the document, the line and the
//! field, the way the API server refuses them.

use crds::strict::{DecodeError, Problem, decode_objects, decode_spec};

const WANTED: &[&str] = &["NicPolicy", "NicOperatorConfig"];

fn problems(text: &str) -> Vec<Problem> {
    match decode_objects(text, WANTED) {
        Err(DecodeError::Invalid(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

const POLICY: &str = "apiVersion: smartnic.io/v1alpha1
kind: NicPolicy
metadata:
  name: a
spec:
  nodeSelector: {}
  nicSelector:
    vendor: \"15b3\"
  numVfs: 4
  resourceName: a
";

#[test]
fn a_valid_policy_decodes() {
    let d = decode_objects(POLICY, WANTED).expect("valid");
    assert_eq!(d.objects.len(), 1);
    assert_eq!(d.objects[0].kind, "NicPolicy");
    assert_eq!(d.objects[0].name, "a");
    assert_eq!(d.objects[0].value["spec"]["numVfs"], 4);
}

#[test]
fn an_unknown_field_names_field_document_and_line() {
    let text = format!("{POLICY}  mtuu: 9000\n");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].document, 1);
    assert_eq!(p[0].line, 11);
    assert_eq!(p[0].field, "spec.mtuu");
    assert!(p[0].message.contains("did you mean \"mtu\""), "{}", p[0]);
    assert_eq!(
        p[0].to_string(),
        "document 1, line 11, spec.mtuu: unknown field \"mtuu\" (did you mean \"mtu\"?)"
    );
}

#[test]
fn the_sriov_operator_spellings_are_named() {
    let text = format!(
        "---\n{}",
        POLICY.replace("    vendor: \"15b3\"\n", "    deviceID: \"101d\"\n")
    )
    .replace("  numVfs: 4\n", "  numVf: 4\n");
    let p = problems(&format!("{POLICY}---\n{text}"));
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].document, 2);
    assert_eq!(p[0].field, "spec.nicSelector.deviceID");
    assert!(
        p[0].message.contains("did you mean \"deviceId\"")
            && p[0].message.contains("SR-IOV network operator's spelling"),
        "{}",
        p[0]
    );
    assert_eq!(p[1].field, "spec.numVf");
    assert!(p[1].message.contains("did you mean \"numVfs\""), "{}", p[1]);
}

#[test]
fn a_field_with_no_near_miss_lists_the_fields() {
    let text = POLICY.replace("    vendor: \"15b3\"\n", "    netFilter: x\n");
    let p = problems(&text);
    assert_eq!(p[0].field, "spec.nicSelector.netFilter");
    assert!(p[0].message.contains("deviceId"), "{}", p[0]);
}

#[test]
fn metadata_fields_are_checked_too() {
    let text = POLICY.replace("  name: a\n", "  name: a\n  label: {x: y}\n");
    let p = problems(&text);
    assert_eq!(p[0].field, "metadata.label");
    assert!(p[0].message.contains("did you mean \"labels\""), "{}", p[0]);
}

#[test]
fn an_unknown_kind_is_an_error_with_the_kind_meant() {
    let p = problems(&POLICY.replace("kind: NicPolicy", "kind: NicPolicies"));
    assert_eq!(p[0].field, "kind");
    assert_eq!(p[0].line, 2);
    assert!(
        p[0].message.contains("did you mean \"NicPolicy\""),
        "{}",
        p[0]
    );
    let p = problems(&POLICY.replace("kind: NicPolicy", "kind: NicPolcy"));
    assert!(
        p[0].message.contains("did you mean \"NicPolicy\""),
        "{}",
        p[0]
    );
    let p = problems(&POLICY.replace("kind: NicPolicy", "kind: Something"));
    assert!(
        p[0].message.contains("not a kind of smartnic.io"),
        "{}",
        p[0]
    );
    let p = problems(&POLICY.replace("kind: NicPolicy", "kind: SriovNetworkNodePolicy"));
    assert!(p[0].message.contains("smartnicctl convert"), "{}", p[0]);
}

#[test]
fn other_objects_are_passed_over_with_a_note() {
    let text = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\n{POLICY}");
    let d = decode_objects(&text, WANTED).expect("valid");
    assert_eq!(d.objects.len(), 1);
    assert_eq!(d.objects[0].document, 2);
    assert_eq!(d.ignored.len(), 1);
    assert!(d.ignored[0].contains("Namespace"), "{:?}", d.ignored);
}

#[test]
fn empty_input_is_an_error() {
    for text in ["", "\n", "---\n", "# only a comment\n", "---\n---\n"] {
        match decode_objects(text, WANTED) {
            Err(DecodeError::Empty { .. }) => {}
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn an_explicit_empty_list_means_no_objects_on_purpose() {
    for text in ["apiVersion: v1\nkind: List\nitems: []\n", "kind: List\n"] {
        let d = decode_objects(text, WANTED).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(d.objects.is_empty(), "{text:?}: {d:?}");
    }
}

#[test]
fn wrong_types_and_enum_values_are_errors() {
    let text = POLICY
        .replace("    vendor: \"15b3\"\n", "    vendor: 8086\n")
        .replace("  numVfs: 4\n", "  numVfs: 4\n  eswitchMode: switchdevv\n");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].field, "spec.nicSelector.vendor");
    assert!(p[0].message.contains("quote it: \"8086\""), "{}", p[0]);
    assert_eq!(p[1].field, "spec.eswitchMode");
    assert!(
        p[1].message.contains("did you mean \"switchdev\""),
        "{}",
        p[1]
    );
}

#[test]
fn list_items_are_checked() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: smartnic.io/v1alpha1\n  kind: NicPolicy\n  metadata: {name: a}\n  spec: {nodeSelector: {}, nicSelector: {pfNames: [x]}, numVfs: 1, resourceName: a, mtuu: 1}\n";
    let p = problems(text);
    assert_eq!(p[0].field, "spec.mtuu");
    assert_eq!(p[0].line, 7);
}

#[test]
fn a_spec_file_is_checked_against_the_spec_schema() {
    assert!(decode_spec("interfaces: []\n", "NicNodeState").is_ok());
    match decode_spec("interfaces: []\ninterface: []\n", "NicNodeState") {
        Err(DecodeError::Invalid(p)) => {
            assert_eq!(p[0].field, "interface");
            assert_eq!(p[0].line, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        decode_spec("", "NicNodeState"),
        Err(DecodeError::Empty { .. })
    ));
}

#[test]
fn a_duplicate_key_is_a_syntax_error_without_parser_advice() {
    match decode_objects(&format!("{POLICY}  numVfs: 2\n"), WANTED) {
        Err(DecodeError::Syntax(m)) => {
            assert!(m.contains("duplicate mapping key: numVfs"), "{m}");
            assert!(
                !m.contains("DuplicateKeyPolicy") && !m.starts_with("error:"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
}
