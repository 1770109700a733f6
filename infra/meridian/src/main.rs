//! `meridian`: the operator's CLI (see `meridian::cli`).

/// mimalloc: glibc malloc spent about 30 % of a bulk import's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    meridian::cli::main()
}
