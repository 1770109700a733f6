//! Each `*_PATTERN` the API document states accepts exactly what its
//! validator accepts: whatever the pattern generates is valid, and a
//! near miss is valid if and only if the pattern matches it.

use commerce::catalog::{
    self, CURRENCY_PATTERN, IMAGE_PATH_PATTERN, SKU_PATTERN, SLUG_PATTERN, TEXT_PATTERN,
};
use commerce::feed::Cursor;
use commerce::reviews::{LANG_PATTERN, NAME_PATTERN, TITLE_PATTERN};
use proptest::prelude::*;
use regional_api::idempotency;

fn matches(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern).expect("pattern").is_match(text)
}

/// The pattern as a proptest generator (which anchors by itself).
fn generates(pattern: &'static str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(pattern.trim_start_matches('^').trim_end_matches('$'))
        .expect("generator")
}

fn text_ok(text: &str) -> bool {
    catalog::validate_text("t", text, 0, usize::MAX).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn what_a_pattern_generates_is_valid(
        sku in generates(SKU_PATTERN),
        slug in generates(SLUG_PATTERN),
        currency in generates(CURRENCY_PATTERN),
        text in generates(TEXT_PATTERN),
        image in generates(IMAGE_PATH_PATTERN).prop_filter("length", |p| p.len() <= catalog::MAX_IMAGE_PATH_LEN),
        cursor in generates(Cursor::PATTERN),
        key in generates(idempotency::KEY_PATTERN),
        lang in generates(LANG_PATTERN),
        title in generates(TITLE_PATTERN).prop_filter("length", |t| t.chars().count() <= commerce::reviews::MAX_TITLE_LEN),
        name in generates(NAME_PATTERN).prop_filter("length", |t| t.chars().count() <= commerce::reviews::MAX_NAME_LEN),
        job in generates(commerce::recommend::JOB_PATTERN),
    ) {
        prop_assert!(commerce::reviews::validate_lang(&lang).is_ok(), "{:?}", lang);
        prop_assert!(commerce::recommend::validate_job(&job).is_ok(), "{:?}", job);
        prop_assert!(commerce::reviews::validate_title(&title).is_ok(), "{:?}", title);
        prop_assert!(commerce::reviews::validate_name(&name).is_ok(), "{:?}", name);
        prop_assert!(catalog::validate_sku(&sku).is_ok(), "{:?}", sku);
        prop_assert!(catalog::validate_slug(&slug).is_ok(), "{:?}", slug);
        prop_assert!(catalog::validate_currency(&currency).is_ok(), "{:?}", currency);
        prop_assert!(text_ok(&text), "{:?}", text);
        prop_assert!(catalog::image_path_is_valid(&image), "{:?}", image);
        prop_assert!(Cursor::parse(&cursor).is_ok(), "{:?}", cursor);
        prop_assert!(idempotency::validate(&key).is_ok(), "{:?}", key);
    }

    #[test]
    fn a_near_miss_is_valid_iff_the_pattern_matches(
        name in "[A-Za-z0-9 ._+/-]{0,70}",
        path in "[A-Za-z0-9./_-]{0,12}",
        text in "[\\x00-\\x20\\x7E-\\xA1a\u{2028}]{0,6}",
        ascii in "[\\x00-\\x7F]{0,3}[0-9a-fA-F+]{0,25}",
    ) {
        prop_assert_eq!(catalog::validate_sku(&name).is_ok(), matches(SKU_PATTERN, &name), "{:?}", name);
        prop_assert_eq!(catalog::validate_slug(&name).is_ok(), matches(SLUG_PATTERN, &name), "{:?}", name);
        prop_assert_eq!(catalog::validate_currency(&name).is_ok(), matches(CURRENCY_PATTERN, &name), "{:?}", name);
        prop_assert_eq!(catalog::image_path_is_valid(&path), matches(IMAGE_PATH_PATTERN, &path), "{:?}", path);
        prop_assert_eq!(text_ok(&text), matches(TEXT_PATTERN, &text), "{:?}", text);
        prop_assert_eq!(commerce::reviews::validate_title(&text).is_ok(), matches(TITLE_PATTERN, &text), "{:?}", text);
        prop_assert_eq!(commerce::reviews::validate_name(&text).is_ok(), matches(NAME_PATTERN, &text), "{:?}", text);
        prop_assert_eq!(commerce::reviews::validate_lang(&name).is_ok(), matches(LANG_PATTERN, &name), "{:?}", name);
        prop_assert_eq!(commerce::recommend::validate_job(&name).is_ok(), matches(commerce::recommend::JOB_PATTERN, &name), "{:?}", name);
        prop_assert_eq!(Cursor::parse(&ascii).is_ok(), matches(Cursor::PATTERN, &ascii), "{:?}", ascii);
        prop_assert_eq!(idempotency::validate(&ascii).is_ok(), matches(idempotency::KEY_PATTERN, &ascii), "{:?}", ascii);
    }
}

#[test]
fn long_names_are_refused_by_both() {
    let long_sku = "A".repeat(catalog::MAX_SKU_LEN + 1);
    assert!(catalog::validate_sku(&long_sku).is_err());
    assert!(!matches(SKU_PATTERN, &long_sku));
    let long_slug = "a".repeat(catalog::MAX_SLUG_LEN + 1);
    assert!(catalog::validate_slug(&long_slug).is_err());
    assert!(!matches(SLUG_PATTERN, &long_slug));
    let long_job = "j".repeat(commerce::recommend::MAX_JOB_LEN + 1);
    assert!(commerce::recommend::validate_job(&long_job).is_err());
    assert!(!matches(commerce::recommend::JOB_PATTERN, &long_job));
    let long_key = "k".repeat(idempotency::MAX_KEY_LEN + 1);
    assert!(idempotency::validate(&long_key).is_err());
    assert!(!matches(idempotency::KEY_PATTERN, &long_key));
}
