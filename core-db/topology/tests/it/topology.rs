//! The topology file: the shipped local topology parses and validates, every
//! validation rule has a failing case, and lookups behave.

use std::error::Error as _;

use topology::{LOCAL_TOPOLOGY, RegionId, ShardId, ShardedId, Topology, TopologyError};

const REGIONS: &str = r#"
[[regions]]
name = "us-east"
latitude = 39.0
longitude = -77.5

[[regions]]
name = "eu-west"
latitude = 53.3
longitude = -6.3
"#;

const SHARDS: &str = r#"
[[shards]]
id = "us"
home = "us-east"
standbys = ["eu-west"]
"#;

fn parse(text: &str) -> Result<Topology, TopologyError> {
    Topology::from_toml_str(text)
}

fn region(name: &str) -> RegionId {
    name.parse().expect("test region name is valid")
}

fn shard(id: &str) -> ShardId {
    id.parse().expect("test shard id is valid")
}

fn shard_block(id: &str, home: &str, standbys: &str) -> String {
    format!("[[shards]]\nid = \"{id}\"\nhome = \"{home}\"\nstandbys = {standbys}\n")
}

fn region_block(name: &str, latitude: &str, longitude: &str) -> String {
    format!("[[regions]]\nname = \"{name}\"\nlatitude = {latitude}\nlongitude = {longitude}\n")
}

#[test]
fn shipped_local_topology_parses_and_validates() {
    let topo = parse(LOCAL_TOPOLOGY).unwrap();
    let names: Vec<&str> = topo.regions().iter().map(|r| r.name().as_str()).collect();
    assert_eq!(names, ["us-east", "eu-west", "ap-southeast"]);

    let expected = [
        ("us", ["us-east", "eu-west", "ap-southeast"]),
        ("eu", ["eu-west", "us-east", "ap-southeast"]),
        ("ap", ["ap-southeast", "us-east", "eu-west"]),
    ];
    assert_eq!(topo.shards().len(), expected.len());
    for (id, candidates) in expected {
        let s = topo.shard(&shard(id)).unwrap();
        let got: Vec<&str> = s.candidates().map(RegionId::as_str).collect();
        assert_eq!(got, candidates, "shard {id}");
        assert_eq!(s.home().as_str(), candidates[0]);
    }

    let dublin = topo.region(&region("eu-west")).unwrap();
    assert!((dublin.latitude() - 53.35).abs() < 0.5);
    assert!((dublin.longitude() - -6.26).abs() < 0.5);
}

#[test]
fn shipped_file_on_disk_is_the_embedded_one() {
    // hickory-style: every config shipped in infra/ is parsed by a test.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/local/topology.toml"
    );
    let on_disk = std::fs::read_to_string(path).unwrap();
    assert_eq!(on_disk, LOCAL_TOPOLOGY);
}

#[test]
fn serde_deserialize_runs_the_same_checks() {
    let topo: Topology = toml::from_str(LOCAL_TOPOLOGY).unwrap();
    assert_eq!(topo, parse(LOCAL_TOPOLOGY).unwrap());
    let bad = format!("{REGIONS}{}", shard_block("us", "mars", "[]"));
    assert!(toml::from_str::<Topology>(&bad).is_err());
    // And what it serializes parses back to the same value.
    let again = parse(&toml::to_string(&topo).unwrap()).unwrap();
    assert_eq!(again, topo);
}

#[test]
fn lookups() {
    let topo = parse(&format!("{REGIONS}{SHARDS}")).unwrap();
    assert!(topo.region(&region("ap-southeast")).is_none());
    assert!(topo.shard(&shard("eu")).is_none());

    let id: ShardedId = "us.01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    assert_eq!(topo.shard_for(&id).unwrap().id().as_str(), "us");

    let id: ShardedId = "eu.01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let err = topo.shard_for(&id).unwrap_err();
    assert_eq!(err, TopologyError::UnknownShard { shard: shard("eu") });
    assert_eq!(err.to_string(), "shard eu is not in the topology");
}

#[test]
fn empty_standbys_are_allowed_but_must_be_written() {
    let topo = parse(&format!("{REGIONS}{}", shard_block("us", "us-east", "[]"))).unwrap();
    let only: Vec<_> = topo.shards()[0].candidates().collect();
    assert_eq!(only, [&region("us-east")]);

    let missing = format!("{REGIONS}[[shards]]\nid = \"us\"\nhome = \"us-east\"\n");
    assert!(matches!(parse(&missing), Err(TopologyError::Parse { .. })));
}

#[test]
fn no_regions() {
    let text = format!("regions = []\n{SHARDS}");
    assert_eq!(parse(&text), Err(TopologyError::NoRegions));
}

#[test]
fn no_shards() {
    let text = format!("shards = []\n{REGIONS}");
    assert_eq!(parse(&text), Err(TopologyError::NoShards));
}

#[test]
fn too_many_regions() {
    let mut text = String::new();
    for i in 0..=Topology::MAX_REGIONS {
        text.push_str(&region_block(&format!("r{i}"), "0.0", "0.0"));
    }
    text.push_str(&shard_block("us", "r0", "[]"));
    assert_eq!(
        parse(&text),
        Err(TopologyError::TooManyRegions {
            count: Topology::MAX_REGIONS + 1
        })
    );
}

#[test]
fn too_many_shards() {
    let mut text = REGIONS.to_owned();
    for i in 0..=Topology::MAX_SHARDS {
        text.push_str(&shard_block(&format!("s{i}"), "us-east", "[]"));
    }
    assert_eq!(
        parse(&text),
        Err(TopologyError::TooManyShards {
            count: Topology::MAX_SHARDS + 1
        })
    );
}

#[test]
fn too_large() {
    let text = format!("{REGIONS}{SHARDS}#{}", " ".repeat(Topology::MAX_TOML_BYTES));
    assert!(matches!(parse(&text), Err(TopologyError::TooLarge { .. })));
}

#[test]
fn duplicate_region() {
    let text = format!("{REGIONS}{}{SHARDS}", region_block("eu-west", "0.0", "0.0"));
    assert_eq!(
        parse(&text),
        Err(TopologyError::DuplicateRegion {
            region: region("eu-west")
        })
    );
}

#[test]
fn latitude_out_of_range() {
    for latitude in ["90.5", "-91", "nan", "inf"] {
        let text = format!("{REGIONS}{}{SHARDS}", region_block("ap", latitude, "0.0"));
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(&err, TopologyError::BadLatitude { region: r, .. } if r.as_str() == "ap"),
            "{latitude}: {err:?}"
        );
    }
    // The bounds themselves are fine.
    let text = format!("{REGIONS}{}{SHARDS}", region_block("ap", "-90", "180"));
    parse(&text).unwrap();
}

#[test]
fn longitude_out_of_range() {
    for longitude in ["180.01", "-181", "nan", "-inf"] {
        let text = format!("{REGIONS}{}{SHARDS}", region_block("ap", "0.0", longitude));
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(&err, TopologyError::BadLongitude { region: r, .. } if r.as_str() == "ap"),
            "{longitude}: {err:?}"
        );
    }
}

#[test]
fn duplicate_shard() {
    let text = format!("{REGIONS}{SHARDS}{}", shard_block("us", "eu-west", "[]"));
    assert_eq!(
        parse(&text),
        Err(TopologyError::DuplicateShard { shard: shard("us") })
    );
}

#[test]
fn unknown_home() {
    let text = format!(
        "{REGIONS}{}",
        shard_block("ap", "ap-southeast", "[\"us-east\"]")
    );
    assert_eq!(
        parse(&text),
        Err(TopologyError::UnknownHome {
            shard: shard("ap"),
            region: region("ap-southeast")
        })
    );
}

#[test]
fn unknown_standby() {
    let text = format!(
        "{REGIONS}{}",
        shard_block("us", "us-east", "[\"eu-west\", \"ap-southeast\"]")
    );
    let err = parse(&text).unwrap_err();
    assert_eq!(
        err,
        TopologyError::UnknownStandby {
            shard: shard("us"),
            region: region("ap-southeast")
        }
    );
    assert_eq!(
        err.to_string(),
        "shard us has standby ap-southeast, which is not a defined region"
    );
}

#[test]
fn standby_is_home() {
    let text = format!(
        "{REGIONS}{}",
        shard_block("us", "us-east", "[\"eu-west\", \"us-east\"]")
    );
    assert_eq!(
        parse(&text),
        Err(TopologyError::StandbyIsHome {
            shard: shard("us"),
            region: region("us-east")
        })
    );
}

#[test]
fn duplicate_standby() {
    let text = format!(
        "{REGIONS}{}",
        shard_block("us", "us-east", "[\"eu-west\", \"eu-west\"]")
    );
    assert_eq!(
        parse(&text),
        Err(TopologyError::DuplicateStandby {
            shard: shard("us"),
            region: region("eu-west")
        })
    );
}

#[test]
fn unknown_fields_are_rejected_everywhere() {
    let cases = [
        format!("{REGIONS}{SHARDS}pops = []\n"),
        format!("{REGIONS}{SHARDS}").replace("longitude = -6.3", "longitude = -6.3\nlat = 1.0"),
        format!("{REGIONS}{SHARDS}")
            .replace("home = \"us-east\"", "home = \"us-east\"\nhomes = []"),
    ];
    for text in cases {
        let err = parse(&text).unwrap_err();
        let TopologyError::Parse { source } = &err else {
            panic!("wrong variant: {err:?}");
        };
        assert!(source.to_string().contains("unknown field"), "{source}");
        // The toml error is kept as the source, not flattened into a string.
        assert!(err.source().unwrap().is::<toml::de::Error>());
    }
}

#[test]
fn bad_names_and_syntax_are_parse_errors() {
    for text in [
        format!("{}{SHARDS}", region_block("US-East", "0.0", "0.0")),
        format!("{REGIONS}{}", shard_block("u.s", "us-east", "[]")),
        format!("{REGIONS}{}", shard_block("us", "Eu-West", "[]")),
        "this is not toml".to_owned(),
        SHARDS.to_owned(),
    ] {
        assert!(
            matches!(parse(&text), Err(TopologyError::Parse { .. })),
            "{text}"
        );
    }
}
