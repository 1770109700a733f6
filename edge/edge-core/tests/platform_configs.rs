//! The platforms' shipped settings agree with edge-core's one parser: every
//! setting is declared by the Spin manifest and the Worker's vars, and
//! the defaults they ship are edge-core's defaults (so a POP behaves the
//! same whichever platform runs it).

use std::path::Path;

use edge_core::EdgeConfig;

fn read(relative: &str) -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path).expect("read");
    text.parse().expect("toml")
}

/// edge-core's defaults, rendered as the platforms write them.
fn defaults() -> EdgeConfig {
    EdgeConfig::from_lookup("x", |name| match name {
        "edge_key" => Some("k".into()),
        "routing_url" => Some("http://r".into()),
        _ => None,
    })
    .expect("defaults")
}

fn tunable(config: &EdgeConfig) -> [(&'static str, f64); 8] {
    let r = &config.rate_limits;
    [
        ("table_max_age_ms", config.table_max_age_ms as f64),
        ("rate_per_s", r.read.per_s),
        ("rate_burst", r.read.burst),
        ("write_rate_per_s", r.write.per_s),
        ("write_rate_burst", r.write.burst),
        ("session_rate_per_s", r.session.per_s),
        ("session_rate_burst", r.session.burst),
        ("address_rate_factor", r.address_factor),
    ]
}

#[test]
fn spin_manifest_declares_every_setting_with_edge_cores_defaults() {
    let spin = read("../edge-spin/spin.toml");
    let variables = spin["variables"].as_table().expect("[variables]");
    let component = spin["component"]["edge"]["variables"]
        .as_table()
        .expect("[component.edge.variables]");
    for name in EdgeConfig::SETTINGS {
        assert!(
            variables.contains_key(name),
            "spin.toml lacks variable {name}"
        );
        assert!(
            component.contains_key(name),
            "the component does not read {name}"
        );
    }
    for (name, value) in tunable(&defaults()) {
        let shipped: f64 = variables[name]["default"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} has no numeric default"));
        assert_eq!(shipped, value, "spin.toml's {name}");
    }
}

#[test]
fn worker_vars_declare_every_setting_with_edge_cores_defaults() {
    let wrangler = read("../edge-worker/wrangler.toml");
    let vars = wrangler["vars"].as_table().expect("[vars]");
    for name in EdgeConfig::SETTINGS {
        // The edge key is a secret, never a var.
        if name == "edge_key" {
            assert!(!vars.contains_key("EDGE_KEY"), "EDGE_KEY must be a secret");
            continue;
        }
        assert!(
            vars.contains_key(&name.to_uppercase()),
            "wrangler.toml lacks {}",
            name.to_uppercase()
        );
    }
    for (name, value) in tunable(&defaults()) {
        let shipped: f64 = vars[&name.to_uppercase()]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} is not numeric"));
        assert_eq!(shipped, value, "wrangler.toml's {name}");
    }
}

/// Settings a global Worker leaves unset: each request's colo and client
/// coordinates stand in.
const FROM_THE_REQUEST: [&str; 3] = ["pop", "latitude", "longitude"];

#[test]
fn every_worker_stage_declares_its_vars_and_leaves_location_to_the_request() {
    let wrangler = read("../edge-worker/wrangler.toml");
    let top = wrangler["vars"].as_table().expect("[vars]");
    let stages = wrangler["env"].as_table().expect("[env.*] stages");
    for wanted in ["staging", "production"] {
        assert!(stages.contains_key(wanted), "no [env.{wanted}]");
    }
    for (stage, table) in stages {
        // wrangler does not inherit vars into an environment.
        let vars = table["vars"]
            .as_table()
            .unwrap_or_else(|| panic!("[env.{stage}.vars]"));
        for name in EdgeConfig::SETTINGS {
            let upper = name.to_uppercase();
            if name == "edge_key" || FROM_THE_REQUEST.contains(&name) {
                assert!(!vars.contains_key(&upper), "{stage} must not set {upper}");
                continue;
            }
            assert!(vars.contains_key(&upper), "{stage} lacks {upper}");
        }
        for (name, value) in tunable(&defaults()) {
            let shipped: f64 = vars[&name.to_uppercase()]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{stage}: {name} is not numeric"));
            assert_eq!(shipped, value, "{stage}'s {name}");
        }
        // Every var outside edge-core's settings is the Worker's own, and
        // declared at the top level too.
        for key in vars.keys() {
            assert!(
                top.contains_key(key),
                "{stage} sets {key}, unknown at the top level"
            );
        }
        let routing = vars["ROUTING_URL"].as_str().unwrap_or_default();
        assert!(
            routing.starts_with("https://"),
            "{stage}: ROUTING_URL {routing}"
        );
    }
}

#[test]
fn the_production_spin_manifest_is_spin_toml_with_production_hosts() {
    let local = read("../edge-spin/spin.toml");
    let production = read("../edge-spin/spin.production.toml");
    let keys = |t: &toml::Table, path: &[&str]| -> Vec<String> {
        let mut v = &toml::Value::Table(t.clone());
        for p in path {
            v = &v[*p];
        }
        v.as_table().expect("table").keys().cloned().collect()
    };
    for path in [&["variables"][..], &["component", "edge", "variables"][..]] {
        assert_eq!(keys(&local, path), keys(&production, path), "{path:?}");
    }
    let variables = production["variables"].as_table().expect("[variables]");
    for (name, value) in tunable(&defaults()) {
        let shipped: f64 = variables[name]["default"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} has no numeric default"));
        assert_eq!(shipped, value, "spin.production.toml's {name}");
    }
    // Where each POP is and what it calls are the deployment's to say.
    for name in ["pop", "latitude", "longitude", "routing_url", "edge_key"] {
        assert_eq!(variables[name]["required"].as_bool(), Some(true), "{name}");
    }
    let component = &production["component"]["edge"];
    assert_eq!(component["source"], local["component"]["edge"]["source"]);
    assert_eq!(
        component["key_value_stores"],
        local["component"]["edge"]["key_value_stores"]
    );
    let hosts = component["allowed_outbound_hosts"]
        .as_array()
        .expect("hosts");
    for host in hosts.iter().filter_map(|h| h.as_str()) {
        assert!(
            host.starts_with("https://") || host.ends_with(".svc.cluster.local"),
            "{host}: production calls leave the cluster over TLS only"
        );
        assert!(!host.contains("127.0.0.1"), "{host}");
    }
}
