//! `ferrokube`: one binary for the whole cluster and for each component.

fn main() -> anyhow::Result<()> {
    Ok(())
}
