//! The Kubernetes overlays and the Dockerfile, checked offline by scripts/validate-k8s.sh:
//! rendered by kustomize, validated against the Kubernetes schemas and memgate's own rules,
//! and each overlay's rendered config accepted by this build's `memgate check-config`.

use std::process::Command;

#[test]
fn manifests_render_validate_and_their_config_loads() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("bash")
        .arg(format!("{root}/scripts/validate-k8s.sh"))
        .env("MEMGATE_BIN", env!("CARGO_BIN_EXE_memgate"))
        .output()
        .expect("run scripts/validate-k8s.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "validate-k8s failed:\n{stdout}\n{stderr}"
    );
    for overlay in ["k8s/overlays/sidecar", "k8s/overlays/gateway-front"] {
        assert!(stdout.contains(overlay), "{overlay} not checked:\n{stdout}");
    }
    assert!(
        !stdout.contains("check-config skipped"),
        "the overlays' configs were not loaded by memgate:\n{stdout}"
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
