//! The custom resources, as structs of their own: the fields the
//! fdb-kubernetes-operator (`apps.foundationdb.org/v1beta2`) and SpinKube
//! (`core.spinkube.dev/v1alpha1`) define that these manifests use, with
//! unknown fields refused. Inside them, Kubernetes' own types
//! (k8s-openapi) where the CRD embeds one. Then the FoundationDB layout
//! checked across every region: one database per shard, surviving the loss
//! of its home region.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    EnvVarSource, PersistentVolumeClaimSpec, PodTemplateSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::render::regions;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FoundationDbCluster {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: FdbSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FdbSpec {
    pub version: String,
    pub data_center: String,
    #[serde(rename = "processGroupIDPrefix")]
    pub process_group_id_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_connection_string: Option<String>,
    pub database_configuration: DatabaseConfiguration,
    pub process_counts: BTreeMap<ProcessClass, i64>,
    pub fault_domain: FaultDomain,
    pub automation_options: AutomationOptions,
    pub main_container: ContainerOverrides,
    pub processes: BTreeMap<ProcessClass, ProcessSettings>,
}

/// The operator's process classes (ProcessCounts' fields; `general` for
/// settings shared by every class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessClass {
    General,
    Storage,
    Log,
    Stateless,
    Transaction,
    Coordinator,
    ClusterController,
    Resolution,
    CommitProxy,
    GrvProxy,
    Ratekeeper,
    DataDistributor,
    Router,
}

/// `databaseConfiguration`: fdbcli's configuration, in its own snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfiguration {
    pub redundancy_mode: RedundancyMode,
    pub storage_engine: StorageEngine,
    pub usable_regions: u8,
    pub logs: i64,
    pub remote_logs: i64,
    pub log_routers: i64,
    pub regions: Vec<FdbRegion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedundancyMode {
    Single,
    Double,
    Triple,
    ThreeDataHall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageEngine {
    #[serde(rename = "ssd-2")]
    Ssd2,
    #[serde(rename = "ssd-redwood-1")]
    SsdRedwood1,
    #[serde(rename = "ssd-rocksdb-v1")]
    SsdRocksdbV1,
    #[serde(rename = "memory")]
    Memory,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdbRegion {
    pub datacenters: Vec<FdbDataCenter>,
    pub satellite_logs: i64,
    pub satellite_redundancy_mode: SatelliteRedundancy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdbDataCenter {
    pub id: String,
    pub priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satellite: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SatelliteRedundancy {
    OneSatelliteSingle,
    OneSatelliteDouble,
    OneSatelliteTriple,
    TwoSatelliteSafe,
    TwoSatelliteFast,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultDomain {
    pub key: String,
    pub value_from: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AutomationOptions {
    pub replacements: Enabled,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerOverrides {
    pub enable_liveness_probe: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessSettings {
    pub pod_template: PodTemplateSpec,
    pub volume_claim_template: VolumeClaimTemplate,
}

/// The operator embeds a PersistentVolumeClaim without its apiVersion and
/// kind (which k8s-openapi's type always writes): its metadata and spec.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeClaimTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    pub spec: PersistentVolumeClaimSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinApp {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: SpinAppSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinAppSpec {
    pub image: String,
    pub executor: String,
    pub replicas: i32,
    pub pod_labels: BTreeMap<String, String>,
    pub resources: ResourceRequirements,
    pub checks: SpinChecks,
    pub variables: Vec<SpinVariable>,
    pub runtime_config: RuntimeConfig,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinChecks {
    pub readiness: SpinProbe,
    pub liveness: SpinProbe,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinProbe {
    pub http_get: HttpPath,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpPath {
    pub path: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinVariable {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeConfig {
    pub key_value_stores: Vec<KeyValueStore>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyValueStore {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub options: Vec<SpinVariable>,
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap()
}

/// Every FoundationDBCluster of every region: (region, object).
fn data_centres() -> Vec<(&'static str, FoundationDbCluster)> {
    regions()
        .iter()
        .flat_map(|r| r.of_kind("FoundationDBCluster").map(|o| (r.name, typed(o))))
        .collect()
}

#[test]
fn each_shard_is_one_database_across_its_home_and_first_standby() {
    let topology = topology::Topology::from_toml_str(
        &std::fs::read_to_string(crate::render::infra().join("k8s/base/config/topology.toml"))
            .unwrap(),
    )
    .unwrap();
    let all = data_centres();
    for shard in topology.shards() {
        let id = shard.id().as_str();
        let home = shard.home().as_str();
        let remote = shard.candidates().nth(1).unwrap().as_str();
        let mine: Vec<&(&str, FoundationDbCluster)> = all
            .iter()
            .filter(|(_, c)| {
                c.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("meridian.shop.example/shard"))
                    .map(String::as_str)
                    == Some(id)
            })
            .collect();
        assert_eq!(
            mine.len(),
            4,
            "{id}: primary, satellite, remote, remote satellite"
        );
        // One creates the database, in the home region; the rest join it.
        let creators: Vec<_> = mine
            .iter()
            .filter(|(_, c)| c.spec.seed_connection_string.is_none())
            .collect();
        assert_eq!(
            creators.len(),
            1,
            "{id}: exactly one data centre creates the database"
        );
        assert_eq!(creators[0].0, home);
        for (_, c) in &mine {
            if let Some(seed) = &c.spec.seed_connection_string {
                assert!(
                    seed.starts_with(&format!("meridian_{id}:")),
                    "{id}: seed {seed}"
                );
            }
        }
        // One configuration, shared by every data centre.
        let config = &mine[0].1.spec.database_configuration;
        for (_, c) in &mine {
            assert_eq!(&c.spec.database_configuration, config, "{id}");
            assert_eq!(c.spec.version, mine[0].1.spec.version);
        }
        assert_eq!(
            config.usable_regions, 2,
            "{id}: survives the loss of a region"
        );
        assert_eq!(config.regions.len(), 2);
        // Region 0 (higher priority) is home, region 1 the first standby;
        // each has a main data centre and a satellite, in that region.
        for (fdb_region, (name, priority)) in config.regions.iter().zip([(home, 1), (remote, 0)]) {
            let main: Vec<_> = fdb_region
                .datacenters
                .iter()
                .filter(|d| d.satellite.is_none())
                .collect();
            let satellites: Vec<_> = fdb_region
                .datacenters
                .iter()
                .filter(|d| d.satellite == Some(1))
                .collect();
            assert_eq!((main.len(), satellites.len()), (1, 1), "{id} {name}");
            assert_eq!(main[0].priority, priority, "{id} {name}");
            assert!(fdb_region.satellite_logs > 0);
            for dc in main.iter().chain(&satellites) {
                let hosted: Vec<_> = mine
                    .iter()
                    .filter(|(_, c)| c.spec.data_center == dc.id)
                    .collect();
                assert_eq!(
                    hosted.len(),
                    1,
                    "{id}: data centre {} has one FoundationDBCluster",
                    dc.id
                );
                assert_eq!(hosted[0].0, name, "{id}: {} runs in {name}", dc.id);
                assert_eq!(hosted[0].1.spec.process_group_id_prefix, dc.id);
                let storage = hosted[0]
                    .1
                    .spec
                    .process_counts
                    .get(&ProcessClass::Storage)
                    .copied()
                    .unwrap_or(0);
                if dc.satellite.is_some() {
                    assert_eq!(storage, -1, "{id}: satellite {} keeps logs only", dc.id);
                } else {
                    assert!(storage >= 3, "{id}: {} stores the data", dc.id);
                }
            }
        }
        // The same regions as the fdbcli install's JSON.
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(crate::render::infra().join(format!("fdb/{id}.regions.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            json["regions"],
            serde_json::to_value(&config.regions).unwrap(),
            "infra/fdb/{id}.regions.json"
        );
    }
    let prefixes: BTreeSet<_> = all.iter().map(|(_, c)| c.metadata.name.clone()).collect();
    assert_eq!(
        prefixes.len(),
        all.len(),
        "FoundationDBCluster names are unique"
    );
}

#[test]
fn the_edge_spinapp_sets_edge_cores_settings_and_sits_in_its_region() {
    let topology = topology::Topology::from_toml_str(topology::LOCAL_TOPOLOGY).unwrap();
    for region in regions() {
        let app: SpinApp = typed(region.find("SpinApp", "meridian-edge"));
        let names: BTreeSet<&str> = app.spec.variables.iter().map(|v| v.name.as_str()).collect();
        let wanted: BTreeSet<&str> = edge_core::EdgeConfig::SETTINGS.into_iter().collect();
        assert_eq!(names, wanted, "{}: the SpinApp's variables", region.name);
        let value = |name: &str| {
            app.spec
                .variables
                .iter()
                .find(|v| v.name == name)
                .and_then(|v| v.value.clone())
                .unwrap_or_default()
        };
        let key = app
            .spec
            .variables
            .iter()
            .find(|v| v.name == "edge_key")
            .unwrap();
        assert!(key.value.is_none(), "edge_key comes from the Secret");
        assert!(
            key.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .is_some()
        );
        // The POP is where its region is.
        let home = topology.region(&region.name.parse().unwrap()).unwrap();
        let latitude: f64 = value("latitude").parse().unwrap();
        let longitude: f64 = value("longitude").parse().unwrap();
        assert!((latitude - home.latitude()).abs() < 1.0, "{}", region.name);
        assert!(
            (longitude - home.longitude()).abs() < 1.0,
            "{}",
            region.name
        );
        // Every setting edge-core parses is one it accepts.
        let config = edge_core::EdgeConfig::from_lookup("x", |name| match name {
            "edge_key" => Some("k".into()),
            other => Some(value(other)).filter(|v| !v.is_empty()),
        })
        .unwrap();
        assert_eq!(config.pop, value("pop"));
        assert_eq!(app.spec.runtime_config.key_value_stores[0].name, "default");
        assert_eq!(app.spec.checks.readiness.http_get.path, "/healthz");
    }
}
