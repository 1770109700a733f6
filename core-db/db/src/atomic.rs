//! Atomic mutations: FoundationDB's semantics (little-endian arithmetic,
//! missing values treated as FoundationDB API ≥ 510 does), as one pure
//! function every engine without native atomics applies at commit time.

/// The atomic operations a transaction can apply without reading the key
/// (and so without adding a read conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MutationType {
    /// Little-endian integer addition, wrapping at the parameter's width.
    Add,
    /// Bitwise and; a missing value becomes the parameter.
    BitAnd,
    /// Bitwise or.
    BitOr,
    /// Bitwise xor.
    BitXor,
    /// Little-endian unsigned maximum.
    Max,
    /// Little-endian unsigned minimum; a missing value becomes the parameter.
    Min,
    /// Lexicographic maximum.
    ByteMax,
    /// Lexicographic minimum; a missing value becomes the parameter.
    ByteMin,
    /// Appends the parameter if the result still fits the value limit.
    AppendIfFits,
    /// Clears the key if its value equals the parameter.
    CompareAndClear,
}

/// The existing value resized to the parameter's width, zero padded (the
/// way FoundationDB widens or truncates an operand).
fn resized(existing: &[u8], width: usize) -> Vec<u8> {
    let mut out = vec![0u8; width];
    let n = existing.len().min(width);
    out[..n].copy_from_slice(&existing[..n]);
    out
}

fn le_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    // Equal widths (both resized to the parameter's): compare from the most
    // significant byte, which is the last in little-endian.
    a.iter().rev().cmp(b.iter().rev())
}

/// The key's value after applying `op` with `param` to `existing`;
/// `None` means the key is cleared.
pub fn apply(op: MutationType, existing: Option<&[u8]>, param: &[u8]) -> Option<Vec<u8>> {
    use MutationType::*;
    match op {
        Add => {
            let mut out = resized(existing.unwrap_or(&[]), param.len());
            let mut carry = 0u16;
            for (o, p) in out.iter_mut().zip(param) {
                let sum = u16::from(*o) + u16::from(*p) + carry;
                *o = (sum & 0xff) as u8;
                carry = sum >> 8;
            }
            Some(out)
        }
        BitAnd | BitOr | BitXor => {
            let Some(existing) = existing else {
                return Some(param.to_vec());
            };
            let mut out = resized(existing, param.len());
            for (o, p) in out.iter_mut().zip(param) {
                *o = match op {
                    BitAnd => *o & p,
                    BitOr => *o | p,
                    _ => *o ^ p,
                };
            }
            Some(out)
        }
        Max | Min => {
            let Some(existing) = existing else {
                return Some(param.to_vec());
            };
            let current = resized(existing, param.len());
            let take_param = match op {
                Max => le_cmp(param, &current).is_gt(),
                _ => le_cmp(param, &current).is_lt(),
            };
            Some(if take_param { param.to_vec() } else { current })
        }
        ByteMax | ByteMin => {
            let Some(existing) = existing else {
                return Some(param.to_vec());
            };
            let take_param = match op {
                ByteMax => param > existing,
                _ => param < existing,
            };
            Some(if take_param { param } else { existing }.to_vec())
        }
        AppendIfFits => {
            let existing = existing.unwrap_or(&[]);
            if existing.len() + param.len() > crate::limits::VALUE_SIZE_LIMIT {
                Some(existing.to_vec())
            } else {
                let mut out = existing.to_vec();
                out.extend_from_slice(param);
                Some(out)
            }
        }
        CompareAndClear => match existing {
            Some(v) if v == param => None,
            other => other.map(<[u8]>::to_vec),
        },
    }
}
