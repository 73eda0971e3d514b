//! The shipped manifests parse as YAML and keep their security properties: the DaemonSet mounts
//! only what the server uses (nothing of RKE2's data dir writable but the snapshot dir and its
//! state dirs), drops every capability, runs under RuntimeDefault seccomp on a read-only root
//! filesystem; RBAC grants nothing on CustomResourceDefinitions.

use serde_json::Value;

fn documents(file: &str) -> Vec<Value> {
    let path = format!("{}/manifests/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).unwrap();
    assert!(!docs.is_empty(), "{path} holds no document");
    docs
}

#[test]
fn the_daemonset_mounts_only_what_the_server_uses_and_drops_all_privileges() {
    let docs = documents("daemonset.yaml");
    let pod = &docs[0]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(security["capabilities"]["add"].is_null());
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert!(security["privileged"].is_null() || security["privileged"] == false);

    let data = "/var/lib/rancher/rke2/server";
    let mounts: Vec<(String, bool)> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let path = m["mountPath"].as_str().unwrap().to_string();
            (path, m["readOnly"] == true)
        })
        .collect();
    let writable = [
        data.to_string(),
        format!("{data}/db/snapshots"),
        format!("{data}/db/.metadata"),
        format!("{data}/db/.s3-pending"),
    ];
    let read_only = [
        format!("{data}/token"),
        format!("{data}/tls/etcd/server-ca.crt"),
        format!("{data}/tls/etcd/client.crt"),
        format!("{data}/tls/etcd/client.key"),
    ];
    let mut expected: Vec<(String, bool)> = writable.iter().map(|p| (p.clone(), false)).collect();
    expected.extend(read_only.iter().map(|p| (p.clone(), true)));
    assert_eq!(mounts, expected);

    // The only writable mount that is not one of the snapshot dirs is an emptyDir, and every
    // host path is exactly the file or dir mounted (nothing above them).
    let volumes = pod["volumes"].as_array().unwrap();
    let by_name = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let volume = by_name(mount["name"].as_str().unwrap());
        let path = mount["mountPath"].as_str().unwrap();
        if path == data {
            assert!(volume["emptyDir"].is_object(), "{volume}");
        } else {
            assert_eq!(volume["hostPath"]["path"], path, "{volume}");
        }
    }
    // The args point at the mounted etcd client files.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for file in ["server-ca.crt", "client.crt", "client.key"] {
        assert!(
            args.iter()
                .any(|a| a.ends_with(&format!("{data}/tls/etcd/{file}")))
        );
    }
}

#[test]
fn rbac_grants_nothing_on_custom_resource_definitions() {
    let docs = documents("rbac.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"ClusterRole"), "{kinds:?}");
    for doc in &docs {
        for rule in doc["rules"].as_array().into_iter().flatten() {
            let groups = rule["apiGroups"].as_array().unwrap();
            assert!(
                !groups
                    .iter()
                    .any(|g| g == "apiextensions.k8s.io" || g == "*"),
                "{rule}"
            );
            let verbs = rule["verbs"].as_array().unwrap();
            assert!(!verbs.iter().any(|v| v == "*"), "{rule}");
        }
    }
}

/// The PrometheusRule's groups are valid Prometheus rules (`promtool check rules`, from
/// Debian's `prometheus`) and alert on the metric names the server exports.
#[test]
fn the_prometheus_rule_passes_promtool_and_uses_exported_metrics() {
    let docs = documents("prometheusrule.yaml");
    let rule = &docs[0];
    assert_eq!(rule["kind"], "PrometheusRule");
    let groups = serde_json::json!({ "groups": rule["spec"]["groups"] });
    let alerts: Vec<&str> = groups["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    for alert in [
        "EtcdSnapshotNoRecentSave",
        "EtcdSnapshotNoVerifiedSnapshot",
        "EtcdSnapshotDrillFailed",
    ] {
        assert!(alerts.contains(&alert), "{alert} in {alerts:?}");
    }
    let exported = etcd_snapshot::telemetry::metrics::Metrics::new();
    exported.set_newest("local", Some(1), Some(1));
    let exposition = exported.render();
    for name in [
        "etcd_snapshot_newest_age_seconds",
        "etcd_snapshot_newest_verified_age_seconds",
        "etcd_snapshot_schedule_period_seconds",
    ] {
        assert!(
            exposition.contains(&format!("# TYPE {name} gauge")),
            "{name}"
        );
        assert!(groups.to_string().contains(name), "{name} is alerted on");
    }
    // The drill failure counter the EtcdSnapshotDrillFailed alert reads, as a drill counts it.
    exported.inc_drill_failure("local");
    let exposition = exported.render();
    let failures = "etcd_snapshot_drill_failures_total";
    assert!(
        exposition.contains(&format!("# TYPE {failures} counter")),
        "{exposition}"
    );
    assert!(
        exposition.contains(&format!("{failures}{{storage=\"local\"}} 1")),
        "{exposition}"
    );
    assert!(
        groups.to_string().contains(failures),
        "{failures} is alerted on"
    );
    let Some(promtool) = crate::support::require_binary("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.json");
    // JSON is YAML: promtool reads the groups exactly as the operator would hand them over.
    std::fs::write(&file, serde_json::to_vec(&groups).unwrap()).unwrap();
    let out = std::process::Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("SUCCESS: 4 rules found"), "{stdout}");
}
