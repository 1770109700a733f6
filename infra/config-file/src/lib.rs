//! Reads a config file with a bound. Every Meridian service (edge-host,
//! routing, the regional service, `meridian`) reads its TOML config and the
//! files it names (topology, DNS) through [`read`], so the bound and the
//! error messages are one rule.
//!
//! The bound holds while reading, not only on the size the file reports: a
//! FIFO, a device or a file that grows after `stat` still stops at
//! [`MAX_BYTES`] + 1.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// Largest config file read, in bytes.
pub const MAX_BYTES: u64 = 1 << 20;

/// The file at `path` as UTF-8 text, at most [`MAX_BYTES`].
pub fn read(path: &Path) -> anyhow::Result<String> {
    read_at_most(path, MAX_BYTES)
}

fn read_at_most(path: &Path, max: u64) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= max,
        "{} is over the {max}-byte limit of a config file",
        path.display()
    );
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_bound_and_refuses_past_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "a = 1\n").expect("write");
        assert_eq!(read(&path).expect("read"), "a = 1\n");
        std::fs::write(&path, vec![b'#'; 16]).expect("write");
        assert!(read_at_most(&path, 16).is_ok());
        let err = read_at_most(&path, 15).expect_err("over");
        assert!(
            format!("{err:#}").contains("over the 15-byte limit"),
            "{err:#}"
        );
        std::fs::write(&path, vec![b'#'; MAX_BYTES as usize + 1]).expect("write");
        assert!(read(&path).is_err());
    }

    #[test]
    fn a_file_that_never_ends_stops_at_the_bound() {
        // /dev/zero reports a size of 0 and never ends.
        let zero = Path::new("/dev/zero");
        if zero.exists() {
            let err = read_at_most(zero, 1024).expect_err("endless");
            assert!(format!("{err:#}").contains("limit"), "{err:#}");
        }
    }

    #[test]
    fn errors_name_the_file() {
        let err = read(Path::new("/nonexistent/meridian.toml")).expect_err("missing");
        assert!(format!("{err:#}").contains("/nonexistent/meridian.toml"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bin.toml");
        std::fs::write(&path, [0xff, 0xfe]).expect("write");
        assert!(format!("{:#}", read(&path).expect_err("utf8")).contains("not UTF-8"));
    }
}
