//! `atomic::apply` against plain integer arithmetic.

use db::MutationType::*;
use db::atomic::apply;
use proptest::prelude::*;

fn u64_of(v: Option<Vec<u8>>) -> u64 {
    u64::from_le_bytes(v.expect("value").try_into().expect("8 bytes"))
}

proptest! {
    #[test]
    fn add_is_wrapping_little_endian(a: u64, b: u64) {
        prop_assert_eq!(u64_of(apply(Add, Some(&a.to_le_bytes()), &b.to_le_bytes())), a.wrapping_add(b));
    }

    #[test]
    fn min_max_are_unsigned(a: u64, b: u64) {
        prop_assert_eq!(u64_of(apply(Max, Some(&a.to_le_bytes()), &b.to_le_bytes())), a.max(b));
        prop_assert_eq!(u64_of(apply(Min, Some(&a.to_le_bytes()), &b.to_le_bytes())), a.min(b));
    }

    #[test]
    fn bitwise_ops(a: u64, b: u64) {
        let (x, y) = (a.to_le_bytes(), b.to_le_bytes());
        prop_assert_eq!(u64_of(apply(BitAnd, Some(&x), &y)), a & b);
        prop_assert_eq!(u64_of(apply(BitOr, Some(&x), &y)), a | b);
        prop_assert_eq!(u64_of(apply(BitXor, Some(&x), &y)), a ^ b);
    }

    #[test]
    fn operands_are_resized_to_the_parameter(existing in proptest::collection::vec(any::<u8>(), 0..16), param in proptest::collection::vec(any::<u8>(), 1..16)) {
        for op in [Add, BitAnd, BitOr, BitXor, Max, Min] {
            let out = apply(op, Some(&existing), &param).expect("a value");
            prop_assert_eq!(out.len(), param.len(), "{:?}", op);
        }
    }
}

#[test]
fn missing_values_follow_api_510() {
    let p = 5u64.to_le_bytes();
    for op in [Add, BitOr, BitXor, Max, Min, BitAnd, ByteMin, ByteMax] {
        assert_eq!(u64_of(apply(op, None, &p)), 5, "{op:?}");
    }
}

#[test]
fn byte_min_max_compare_lexicographically() {
    assert_eq!(
        apply(ByteMax, Some(b"b"), b"ab").as_deref(),
        Some(&b"b"[..])
    );
    assert_eq!(
        apply(ByteMin, Some(b"b"), b"ab").as_deref(),
        Some(&b"ab"[..])
    );
}

#[test]
fn compare_and_clear_only_on_equal() {
    assert_eq!(apply(CompareAndClear, Some(b"x"), b"x"), None);
    assert_eq!(
        apply(CompareAndClear, Some(b"y"), b"x").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(apply(CompareAndClear, None, b"x"), None);
}

#[test]
fn append_if_fits_respects_the_value_limit() {
    let full = vec![0u8; db::limits::VALUE_SIZE_LIMIT];
    assert_eq!(
        apply(AppendIfFits, Some(&full), b"x").map(|v| v.len()),
        Some(full.len())
    );
    assert_eq!(
        apply(AppendIfFits, Some(b"ab"), b"c").as_deref(),
        Some(&b"abc"[..])
    );
}
