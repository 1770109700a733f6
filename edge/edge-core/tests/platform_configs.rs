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
