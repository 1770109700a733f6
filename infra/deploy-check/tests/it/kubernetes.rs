//! Every built-in object of every rendered overlay parses into
//! k8s-openapi's struct for its kind and serializes back to the same
//! document; the objects agree with each other (selectors, ports, probes,
//! the HPA's metric) and with what Meridian serves.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::Value;

use crate::render::{Region, regions, round_trip};

/// Objects created outside the manifests (infra/README.md says how), by
/// kind and name, with the keys the manifests read.
pub const OUT_OF_BAND: &[(&str, &str, &[&str])] = &[
    (
        "Secret",
        "meridian-secrets",
        &[
            "edge-key",
            "session-key",
            "admin-token",
            "edge-key-secondary",
            "session-key-secondary",
            "admin-token-secondary",
            "routing-admin-token",
            "routing-admin-token-secondary",
        ],
    ),
    ("Secret", "meridian-geoip", &["account-id", "license-key"]),
    ("Secret", "meridian-edge-kv", &["url"]),
    (
        "ConfigMap",
        "meridian-fdb-cluster-files",
        &["us.cluster", "eu.cluster", "ap.cluster"],
    ),
];

fn check(object: &Value) -> Result<(), String> {
    let api = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    match (api, kind) {
        ("v1", "Namespace") => round_trip::<Namespace>(object),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(object),
        ("v1", "Service") => round_trip::<Service>(object),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(object),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(object),
        ("batch/v1", "CronJob") => round_trip::<k8s_openapi::api::batch::v1::CronJob>(object),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            round_trip::<HorizontalPodAutoscaler>(object)
        }
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(object),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(object),
        ("apps.foundationdb.org/v1beta2", "FoundationDBCluster") => {
            round_trip::<crate::crds::FoundationDbCluster>(object)
        }
        ("core.spinkube.dev/v1alpha1", "SpinApp") => round_trip::<crate::crds::SpinApp>(object),
        _ => Err(format!("{api} {kind} is not a kind these checks know")),
    }
}

#[test]
fn every_rendered_object_survives_a_round_trip_through_its_type() {
    let mut failures = Vec::new();
    for region in regions() {
        assert!(
            region.objects.len() >= 15,
            "{}: too few objects",
            region.name
        );
        for object in region.all() {
            if let Err(why) = check(object) {
                failures.push(format!(
                    "{}: {} {}: {why}",
                    region.name, object["kind"], object["metadata"]["name"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_misspelt_field_is_caught() {
    // The check the test above relies on: k8s-openapi drops unknown fields,
    // so only the round trip sees them.
    let region = &regions()[0];
    let mut deployment = region.find("Deployment", "meridian-regional").clone();
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] =
        deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].clone();
    assert!(check(&deployment).is_err());
    let mut fdb = region
        .of_kind("FoundationDBCluster")
        .next()
        .unwrap()
        .clone();
    fdb["spec"]["databaseConfiguration"]["usable_region"] = 2.into();
    assert!(check(&fdb).is_err());
}

fn pod_labels(deployment: &Value) -> &serde_json::Map<String, Value> {
    deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap()
}

fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn the_regional_service_is_probed_scaled_and_budgeted_as_it_serves() {
    for region in regions() {
        let deployment = region.find("Deployment", "meridian-regional");
        let labels = pod_labels(deployment);
        assert!(selects(&deployment["spec"]["selector"], labels));
        let regional = container(deployment, "regional");
        assert_eq!(regional["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(regional["livenessProbe"]["httpGet"]["path"], "/healthz");
        let service = region.find("Service", "meridian-regional");
        let selector = service["spec"]["selector"].as_object().unwrap();
        assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
        let pdb = region.find("PodDisruptionBudget", "meridian-regional");
        assert!(selects(&pdb["spec"]["selector"], labels));
        let hpa = region.find("HorizontalPodAutoscaler", "meridian-regional");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "meridian-regional");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
        let metrics = hpa["spec"]["metrics"].as_array().unwrap();
        assert!(metrics.iter().any(|m| m["resource"]["name"] == "cpu"));
        // The queue metric is the one the service exports (region.rs
        // checks a running region's /metrics for it too).
        let queue = hpa_queue_metric(region);
        assert_eq!(queue, regional_server::metrics::IN_FLIGHT);
    }
}

/// The HPA's Pods metric (the request queue's length).
pub fn hpa_queue_metric(region: &Region) -> String {
    let hpa = region.find("HorizontalPodAutoscaler", "meridian-regional");
    hpa["spec"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "Pods")
        .and_then(|m| m["pods"]["metric"]["name"].as_str())
        .unwrap()
        .to_owned()
}

#[test]
fn routing_serves_dns_on_udp_and_tcp() {
    for region in regions() {
        let deployment = region.find("Deployment", "meridian-routing");
        let routing = container(deployment, "routing");
        let ports = routing["ports"].as_array().unwrap();
        let dns = |protocol: &str| {
            ports
                .iter()
                .find(|p| p["protocol"] == protocol && p["containerPort"] == 5353)
                .and_then(|p| p["name"].as_str())
                .unwrap_or_else(|| panic!("no {protocol} 5353"))
                .to_owned()
        };
        let service = region.find("Service", "meridian-dns");
        for protocol in ["UDP", "TCP"] {
            let name = dns(protocol);
            let port = service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["protocol"] == protocol)
                .unwrap();
            assert_eq!(port["port"], 53);
            assert_eq!(port["targetPort"], name.as_str());
        }
    }
}

#[test]
fn only_the_edges_routing_the_recommendations_job_ingress_and_prometheus_reach_the_regions() {
    for region in regions() {
        let policy = region.find("NetworkPolicy", "meridian-regional-ingress");
        let regional = pod_labels(region.find("Deployment", "meridian-regional"));
        assert!(selects(&policy["spec"]["podSelector"], regional));
        let edge_labels = region.find("SpinApp", "meridian-edge")["spec"]["podLabels"]
            .as_object()
            .unwrap()
            .clone();
        let routing = pod_labels(region.find("Deployment", "meridian-routing"));
        let job =
            region.find("CronJob", "meridian-recommend")["spec"]["jobTemplate"]["spec"]["template"]
                ["metadata"]["labels"]
                .as_object()
                .unwrap()
                .clone();
        let rules = policy["spec"]["ingress"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "one rule, one port");
        let from = rules[0]["from"].as_array().unwrap();
        let pods: Vec<&Value> = from.iter().filter_map(|p| p.get("podSelector")).collect();
        assert_eq!(pods.len(), 3);
        assert!(pods.iter().any(|s| selects(s, &edge_labels)), "the edge");
        assert!(pods.iter().any(|s| selects(s, routing)), "routing");
        assert!(pods.iter().any(|s| selects(s, &job)), "the job");
        // The job finds the regions through the routing API.
        let routing_policy = region.find("NetworkPolicy", "meridian-routing-ingress");
        let api_rule = routing_policy["spec"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ports"][0]["port"] == 7000)
            .expect("the routing API's rule");
        assert!(
            api_rule["from"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p.get("podSelector"))
                .any(|s| selects(s, &job)),
            "the job reaches the routing API"
        );
        let namespaces: Vec<&str> = from
            .iter()
            .filter_map(|p| {
                p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as_str()
            })
            .collect();
        assert_eq!(namespaces, ["ingress-nginx", "monitoring"]);
        assert!(from.iter().all(|p| p.get("ipBlock").is_none()));
        assert_eq!(rules[0]["ports"][0]["port"], 8080);
    }
}

#[test]
fn every_secret_and_config_map_used_is_rendered_or_documented() {
    let readme = std::fs::read_to_string(crate::render::infra().join("README.md")).unwrap();
    for (kind, name, keys) in OUT_OF_BAND {
        assert!(
            readme.contains(name),
            "infra/README.md does not say how to create {kind} {name}"
        );
        for key in *keys {
            assert!(
                readme.contains(key),
                "infra/README.md does not name {name}'s key {key}"
            );
        }
    }
    for region in regions() {
        let text = serde_json::to_string(&region.objects).unwrap();
        let refs: Vec<Value> = region.objects.iter().flat_map(references).collect();
        assert!(!refs.is_empty(), "{text}");
        for reference in refs {
            let kind = reference["kind"].as_str().unwrap();
            let name = reference["name"].as_str().unwrap();
            let key = reference["key"].as_str();
            let rendered = kind == "ConfigMap"
                && region.of_kind("ConfigMap").any(|c| {
                    c["metadata"]["name"] == name && key.is_none_or(|k| c["data"].get(k).is_some())
                });
            let documented = OUT_OF_BAND.iter().any(|(k, n, keys)| {
                *k == kind && *n == name && key.is_none_or(|key| keys.contains(&key))
            });
            assert!(
                rendered || documented,
                "{}: {kind} {name} {key:?} is neither rendered nor in OUT_OF_BAND",
                region.name
            );
        }
    }
}

/// Every Secret and ConfigMap an object reads: `{kind, name, key?}`.
fn references(value: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    walk(value, &mut found);
    found
}

fn walk(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            for (field, kind) in [("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")] {
                if let Some(r) = map.get(field) {
                    found.push(
                        serde_json::json!({"kind": kind, "name": r["name"], "key": r["key"]}),
                    );
                }
            }
            if let Some(c) = map.get("configMap") {
                found.push(serde_json::json!({"kind": "ConfigMap", "name": c["name"]}));
            }
            if let Some(s) = map.get("secret") {
                found.push(serde_json::json!({"kind": "Secret", "name": s["secretName"]}));
            }
            for v in map.values() {
                walk(v, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
        _ => {}
    }
}

#[test]
fn meridians_pods_meet_the_restricted_pod_security_standard() {
    for region in regions() {
        let deployments = region
            .of_kind("Deployment")
            .map(|d| (&d["metadata"]["name"], &d["spec"]["template"]["spec"]));
        let jobs = region.of_kind("CronJob").map(|j| {
            (
                &j["metadata"]["name"],
                &j["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            )
        });
        for (name, spec) in deployments.chain(jobs) {
            assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
            assert_eq!(
                spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{name}"
            );
            assert_eq!(spec["automountServiceAccountToken"], false, "{name}");
            let containers = spec["containers"]
                .as_array()
                .unwrap()
                .iter()
                .chain(spec["initContainers"].as_array().into_iter().flatten());
            for container in containers {
                let context = &container["securityContext"];
                let which = format!("{name}/{}", container["name"]);
                assert_eq!(context["allowPrivilegeEscalation"], false, "{which}");
                assert_eq!(context["readOnlyRootFilesystem"], true, "{which}");
                assert_eq!(
                    context["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{which}"
                );
            }
        }
    }
}
