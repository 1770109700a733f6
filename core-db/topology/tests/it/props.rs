//! Property tests: the text form round-trips for every valid id, and parsing
//! never panics, whatever it is given.

use proptest::prelude::*;
use topology::{RegionId, ShardId, ShardedId, Ulid};

proptest! {
    #[test]
    fn display_then_parse_is_identity(shard in "[a-z][a-z0-9]{0,7}", value in any::<u128>()) {
        let shard: ShardId = shard.parse().unwrap();
        let id = ShardedId::new(shard, Ulid(value));
        let text = id.to_string();
        prop_assert!(text.len() <= ShardedId::MAX_TEXT_LEN);
        prop_assert_eq!(text.parse::<ShardedId>().unwrap(), id);
    }

    #[test]
    fn parse_then_display_is_identity_when_it_succeeds(s in "[a-zA-Z0-9.]{0,40}") {
        // Canonical-only parsing means an accepted text has one spelling.
        if let Ok(id) = s.parse::<ShardedId>() {
            prop_assert_eq!(id.to_string(), s);
        }
    }

    #[test]
    fn parsing_arbitrary_strings_never_panics(s in any::<String>()) {
        let _ = s.parse::<ShardedId>();
        let _ = s.parse::<ShardId>();
        let _ = s.parse::<RegionId>();
    }

    #[test]
    fn parsing_near_misses_never_panics(s in "[a-zA-Z0-9 .\u{e9}-]{0,80}") {
        let _ = s.parse::<ShardedId>();
    }

    #[test]
    fn region_names_round_trip(name in "[a-z][a-z0-9-]{0,31}") {
        let region: RegionId = name.parse().unwrap();
        prop_assert_eq!(region.to_string(), name);
    }
}

/// The `PATTERN` an API document states for a name or id accepts exactly
/// what parsing accepts: every string the pattern generates parses, and a
/// near-miss parses if and only if the pattern matches it.
mod patterns {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern).expect("pattern").is_match(text)
    }

    proptest! {
        #[test]
        fn what_a_pattern_generates_parses(
            shard in ShardId::PATTERN.trim_start_matches('^').trim_end_matches('$'),
            region in RegionId::PATTERN.trim_start_matches('^').trim_end_matches('$'),
            id in ShardedId::PATTERN.trim_start_matches('^').trim_end_matches('$'),
        ) {
            prop_assert!(shard.parse::<ShardId>().is_ok(), "{}", shard);
            prop_assert!(region.parse::<RegionId>().is_ok(), "{}", region);
            prop_assert!(id.parse::<ShardedId>().is_ok(), "{}", id);
        }

        #[test]
        fn a_near_miss_parses_iff_the_pattern_matches(
            name in "[a-zA-Z0-9_.-]{0,40}",
            id in "[a-z0-9]{0,9}[.]?[0-9A-Za-z]{24,27}",
        ) {
            prop_assert_eq!(name.parse::<ShardId>().is_ok(), matches(ShardId::PATTERN, &name), "{}", name);
            prop_assert_eq!(name.parse::<RegionId>().is_ok(), matches(RegionId::PATTERN, &name), "{}", name);
            prop_assert_eq!(id.parse::<ShardedId>().is_ok(), matches(ShardedId::PATTERN, &id), "{}", id);
        }
    }
}
