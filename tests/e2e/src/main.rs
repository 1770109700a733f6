//! `meridian-e2e`: the operator's CLI (`meridian::cli`) built inside the
//! end-to-end tests' package, so they can run `meridian up` as a process
//! and kill it (Cargo hands a package's tests only its own binaries).

fn main() -> anyhow::Result<()> {
    meridian::cli::main()
}
