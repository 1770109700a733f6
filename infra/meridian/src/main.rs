//! `meridian`: the operator's CLI (see `meridian::cli`).

fn main() -> anyhow::Result<()> {
    meridian::cli::main()
}
