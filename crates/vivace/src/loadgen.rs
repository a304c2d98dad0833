//! `vivace gen`: placeholder replaced below.
#[derive(Debug, clap::Args)]
pub(crate) struct GenArgs {}
pub(crate) fn run(_a: GenArgs) -> anyhow::Result<()> {
    Ok(())
}
