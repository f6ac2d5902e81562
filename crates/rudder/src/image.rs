//! `rudder image`: the node's image store (`DATA_DIR/images`, shared with the agent).
//! `import FILE` reads an OCI image layout or `docker save` archive (`-` for stdin,
//! gzip or not), `ls` lists what is stored, `pull REF` fetches from a registry with the
//! same mirrors and credentials the agent uses.

use anyhow::Context;
use runtime::oci::Platform;
use runtime::{ImageStore, Puller, Reference, RegistryConfig};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand)]
enum ImageCommand {
    /// Import the images of an OCI image layout or `docker save` archive ("-" reads stdin).
    Import {
        file: PathBuf,
        #[arg(long, default_value = "/var/lib/rudder")]
        data_dir: PathBuf,
    },
    /// List the images in this node's store.
    Ls {
        #[arg(long, default_value = "/var/lib/rudder")]
        data_dir: PathBuf,
        /// Only the names.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Pull an image from its registry (or a mirror) into this node's store.
    Pull {
        reference: String,
        #[arg(long, default_value = "/var/lib/rudder")]
        data_dir: PathBuf,
        /// Registry mirrors and credentials (default: DATA_DIR/registries.yaml when present).
        #[arg(long)]
        registry_config: Option<PathBuf>,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        ImageCommand::Import { file, data_dir } => import(&file, &data_dir, &mut out),
        ImageCommand::Ls { data_dir, quiet } => ls(&data_dir, quiet, &mut out),
        ImageCommand::Pull { reference, data_dir, registry_config } => {
            let config_path = registry_config.clone().unwrap_or_else(|| data_dir.join("registries.yaml"));
            let config = match registry_config {
                Some(p) => RegistryConfig::load(&p)?,
                None => RegistryConfig::load_optional(&config_path)?,
            };
            let reference = Reference::parse_normalized(&reference)
                .with_context(|| format!("invalid image reference {reference:?}"))?;
            let store = open(&data_dir)?;
            let image = Puller::new(store, config).pull(&reference, &[]).await?;
            writeln!(out, "{} {}", image.name, image.digest)?;
            Ok(())
        }
    }
}

fn open(data_dir: &Path) -> anyhow::Result<ImageStore> {
    Ok(ImageStore::open(&data_dir.join("images"))?)
}

fn import(file: &Path, data_dir: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open(data_dir)?;
    let images = if file == Path::new("-") {
        runtime::import::import_archive(&store, std::io::stdin().lock(), &Platform::host())
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        runtime::import::import_archive(&store, std::io::BufReader::new(f), &Platform::host())
    }
    .with_context(|| format!("importing {}", file.display()))?;
    for image in images {
        writeln!(out, "imported {} {}", image.name, image.digest)?;
    }
    Ok(())
}

fn ls(data_dir: &Path, quiet: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let images = open(data_dir)?.list()?;
    if quiet {
        for image in images {
            writeln!(out, "{}", image.name)?;
        }
        return Ok(());
    }
    let rows: Vec<[String; 3]> =
        images.iter().map(|i| [i.name.clone(), i.digest.to_string(), human_size(i.size)]).collect();
    let width = |col: usize, title: &str| rows.iter().map(|r| r[col].len()).max().unwrap_or(0).max(title.len());
    let (w0, w1) = (width(0, "IMAGE"), width(1, "DIGEST"));
    writeln!(out, "{:w0$}   {:w1$}   SIZE", "IMAGE", "DIGEST")?;
    for [name, digest, size] in rows {
        writeln!(out, "{name:w0$}   {digest:w1$}   {size}")?;
    }
    Ok(())
}

/// Decimal units with three significant digits, as `crictl images` shows sizes.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes}B");
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::testing::{ImageBuilder, LayerBuilder, LayerCompression};

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1_234_567), "1.23MB");
        assert_eq!(human_size(48_200), "48.2kB");
        assert_eq!(human_size(999_999_999), "1000MB");
        assert_eq!(human_size(250_000_000_000), "250GB");
    }

    #[test]
    fn import_a_docker_archive_then_list_it() {
        let data = tempfile::tempdir().unwrap();
        let image = ImageBuilder::new()
            .layer(LayerBuilder::new().file("hello.txt", 0o644, b"hello").finish(), LayerCompression::None)
            .build();
        let archive = data.path().join("busybox.tar");
        std::fs::write(&archive, image.docker_archive("busybox:imported")).unwrap();

        let mut out = Vec::new();
        import(&archive, data.path(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("imported docker.io/library/busybox:imported sha256:"), "{text}");

        let mut out = Vec::new();
        ls(data.path(), false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("IMAGE ") && lines[0].ends_with("SIZE"), "{text}");
        let fields: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(fields[0], "docker.io/library/busybox:imported");
        assert!(fields[1].starts_with("sha256:") && fields[1].len() == 71, "{text}");
        assert!(fields[2].ends_with("kB") || fields[2].ends_with('B'), "{text}");

        let mut out = Vec::new();
        ls(data.path(), true, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "docker.io/library/busybox:imported\n");

        let bad = data.path().join("bad.tar");
        std::fs::write(&bad, b"not a tar").unwrap();
        let err = import(&bad, data.path(), &mut Vec::new()).unwrap_err();
        assert!(format!("{err:#}").contains("bad.tar"), "{err:#}");
        assert!(import(&data.path().join("missing.tar"), data.path(), &mut Vec::new()).is_err());
    }
}
