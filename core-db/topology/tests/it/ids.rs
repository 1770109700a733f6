//! `RegionId`, `ShardId` and `ShardedId`: round trips, and every malformed
//! form rejected with the variant that names what is wrong.

use std::error::Error as _;

use serde::{Deserialize, Serialize};
use topology::{IdError, NameError, NameKind, RegionId, ShardId, ShardedId, Ulid, ulid};

const ULID: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

fn parse(s: &str) -> Result<ShardedId, IdError> {
    s.parse()
}

#[test]
fn sharded_id_round_trips_through_text() {
    let text = format!("eu.{ULID}");
    let id = parse(&text).unwrap();
    assert_eq!(id.shard().as_str(), "eu");
    assert_eq!(id.ulid(), Ulid::from_string(ULID).unwrap());
    assert_eq!(id.to_string(), text);
    assert_eq!(String::from(id.clone()), text);
    assert_eq!(ShardedId::try_from(text).unwrap(), id);
}

#[test]
fn constructors_agree_with_parsing() {
    let shard: ShardId = "ap".parse().unwrap();
    let ulid = Ulid::from_string(ULID).unwrap();
    let from_new = ShardedId::new(shard.clone(), ulid);
    let from_parts = ShardedId::from_parts(shard, ulid.timestamp_ms(), ulid.random());
    assert_eq!(from_new, from_parts);
    assert_eq!(parse(&from_new.to_string()).unwrap(), from_new);
}

#[test]
fn extreme_ulids_round_trip() {
    let shard: ShardId = "us".parse().unwrap();
    for value in [0, u128::MAX] {
        let id = ShardedId::new(shard.clone(), Ulid(value));
        assert_eq!(parse(&id.to_string()).unwrap(), id);
    }
    assert_eq!(
        parse("us.7ZZZZZZZZZZZZZZZZZZZZZZZZZ").unwrap().ulid(),
        Ulid(u128::MAX)
    );
}

#[test]
fn ids_order_by_shard_then_ulid() {
    let a = parse("ap.7ZZZZZZZZZZZZZZZZZZZZZZZZZ").unwrap();
    let b = parse("eu.00000000000000000000000000").unwrap();
    let c = parse("eu.00000000000000000000000001").unwrap();
    assert!(a < b && b < c);
}

#[test]
fn serde_uses_the_text_form_and_validates() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Doc {
        id: ShardedId,
        shard: ShardId,
        region: RegionId,
    }
    let text = format!("id = \"eu.{ULID}\"\nshard = \"eu\"\nregion = \"eu-west\"\n");
    let doc: Doc = toml::from_str(&text).unwrap();
    assert_eq!(doc.id.to_string(), format!("eu.{ULID}"));
    assert_eq!(toml::to_string(&doc).unwrap(), text);

    for bad in [
        format!("id = \"EU.{ULID}\"\nshard = \"eu\"\nregion = \"eu-west\"\n"),
        format!("id = \"eu.{ULID}\"\nshard = \"e.u\"\nregion = \"eu-west\"\n"),
        format!("id = \"eu.{ULID}\"\nshard = \"eu\"\nregion = \"EU-WEST\"\n"),
    ] {
        assert!(toml::from_str::<Doc>(&bad).is_err(), "{bad}");
    }
}

#[test]
fn empty_is_rejected() {
    assert_eq!(parse(""), Err(IdError::Empty));
}

#[test]
fn missing_separator_is_rejected() {
    assert!(matches!(parse("eu"), Err(IdError::MissingSeparator { id }) if id == "eu"));
    assert!(matches!(parse(ULID), Err(IdError::MissingSeparator { .. })));
}

#[test]
fn empty_shard_is_rejected() {
    let err = parse(&format!(".{ULID}")).unwrap_err();
    assert!(
        matches!(&err, IdError::BadShard { shard, source: NameError::Empty { kind: NameKind::Shard } } if shard.is_empty()),
        "{err:?}"
    );
}

#[test]
fn uppercase_shard_is_rejected() {
    let err = parse(&format!("EU.{ULID}")).unwrap_err();
    assert!(
        matches!(&err, IdError::BadShard { shard, source: NameError::BadStart { .. } } if shard == "EU"),
        "{err:?}"
    );
    let err = parse(&format!("eU.{ULID}")).unwrap_err();
    assert!(
        matches!(
            &err,
            IdError::BadShard {
                source: NameError::BadChar {
                    ch: 'U',
                    index: 1,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn shard_with_space_is_rejected() {
    let err = parse("e u.x").unwrap_err();
    assert!(
        matches!(&err, IdError::BadShard { shard, source: NameError::BadChar { ch: ' ', index: 1, .. } } if shard == "e u"),
        "{err:?}"
    );
}

#[test]
fn over_long_shard_is_rejected() {
    let err = parse(&format!("abcdefghi.{ULID}")).unwrap_err();
    assert!(
        matches!(
            &err,
            IdError::BadShard {
                source: NameError::TooLong {
                    len_bytes: 9,
                    max_bytes: 8,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn non_ulid_is_rejected_with_the_decode_error_as_source() {
    let err = parse("eu.notaulid").unwrap_err();
    let IdError::BadUlid { ulid: text, source } = &err else {
        panic!("wrong variant: {err:?}");
    };
    assert_eq!(text, "notaulid");
    assert_eq!(source.0, ulid::DecodeError::InvalidLength);
    // The chain keeps the typed error, not a string copy of it.
    let source = err.source().unwrap();
    assert!(source.is::<topology::UlidDecodeError>());

    // Right length, wrong alphabet ('U' is not Crockford base32).
    let err = parse("eu.0UARZ3NDEKTSV4RRFFQ69G5FAV").unwrap_err();
    assert!(
        matches!(&err, IdError::BadUlid { source, .. } if source.0 == ulid::DecodeError::InvalidChar),
        "{err:?}"
    );
    let err = parse("eu.").unwrap_err();
    assert!(matches!(err, IdError::BadUlid { .. }), "{err:?}");
}

#[test]
fn non_canonical_ulids_are_rejected() {
    // Lowercase decodes to the same value, and '8'.. in front overflows 128
    // bits; both would give one id two spellings.
    for ulid in [
        ULID.to_ascii_lowercase(),
        "8ZZZZZZZZZZZZZZZZZZZZZZZZZ".to_owned(),
    ] {
        let err = parse(&format!("eu.{ulid}")).unwrap_err();
        assert!(
            matches!(&err, IdError::NonCanonicalUlid { ulid: text } if *text == ulid),
            "{err:?}"
        );
    }
}

#[test]
fn over_long_input_is_rejected_before_anything_else() {
    let long = format!("eu.{}", "0".repeat(ShardedId::MAX_TEXT_LEN));
    assert_eq!(
        parse(&long),
        Err(IdError::TooLong {
            len_bytes: long.len()
        })
    );
    let long = "x".repeat(10_000);
    assert_eq!(parse(&long), Err(IdError::TooLong { len_bytes: 10_000 }));
}

#[test]
fn extra_dots_are_rejected() {
    for s in [
        format!("eu.{ULID}."),
        format!("eu..{ULID}"),
        format!("e.u.{ULID}"),
        "..".to_owned(),
    ] {
        let err = parse(&s).unwrap_err();
        assert!(
            matches!(&err, IdError::ExtraSeparator { id } if *id == s),
            "{s}: {err:?}"
        );
    }
}

#[test]
fn errors_read_clearly() {
    let err = parse(&format!("EU.{ULID}")).unwrap_err();
    assert_eq!(err.to_string(), "id has a bad shard part \"EU\"");
    assert_eq!(
        err.source().unwrap().to_string(),
        "shard name \"EU\" must start with a lowercase ascii letter"
    );
    assert_eq!(
        parse("eu.notaulid")
            .unwrap_err()
            .source()
            .unwrap()
            .to_string(),
        "invalid length"
    );
}

#[test]
fn region_names_follow_their_rules() {
    for ok in [
        "us-east",
        "a",
        "ap-southeast-1",
        &"a".repeat(RegionId::MAX_LEN),
    ] {
        let region: RegionId = ok.parse().unwrap();
        assert_eq!(region.as_str(), ok);
        assert_eq!(region.to_string(), ok);
    }
    let bad = |s: &str| s.parse::<RegionId>().unwrap_err();
    assert!(matches!(
        bad(""),
        NameError::Empty {
            kind: NameKind::Region
        }
    ));
    assert!(matches!(bad("1us"), NameError::BadStart { .. }));
    assert!(matches!(bad("-us"), NameError::BadStart { .. }));
    assert!(matches!(
        bad("us_east"),
        NameError::BadChar {
            ch: '_',
            index: 2,
            ..
        }
    ));
    assert!(matches!(bad("us.east"), NameError::BadChar { ch: '.', .. }));
    assert!(matches!(
        bad("us-éast"),
        NameError::BadChar {
            ch: 'é',
            index: 3,
            ..
        }
    ));
    assert!(matches!(
        bad(&"a".repeat(RegionId::MAX_LEN + 1)),
        NameError::TooLong {
            kind: NameKind::Region,
            len_bytes: 33,
            max_bytes: 32
        }
    ));
}

#[test]
fn shard_ids_follow_their_rules() {
    for ok in ["us", "eu", "ap", "a", "x1", "abcdefgh"] {
        assert_eq!(ok.parse::<ShardId>().unwrap().as_str(), ok);
    }
    for bad in ["", "1a", "us-east", "e.u", "Eu", "abcdefghi", "e u"] {
        assert!(bad.parse::<ShardId>().is_err(), "{bad:?}");
    }
}
