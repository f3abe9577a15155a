//! `meshrouter blob ...`: content-addressed files through the daemon's local API (`/v1/blobs*`).
//! Adding cuts the file here, in the client, and sends the daemon its blocks with their CIDs (the
//! daemon checks each one), so the daemon never needs to read the user's file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Subcommand;
use meshrouter::services::blobs::import::{Importer, Profile};
use meshrouter::services::blobs::{Cid, Codec, FileNode, car};
use serde_json::{Value, json};

use super::client::call;
use super::table::{bytes, cell, print};

/// Blob subcommands.
#[derive(Subcommand)]
pub(crate) enum BlobCommand {
    /// Add a file: prints its CID (the one `ipfs add --cid-version 1` gives it under the
    /// unixfs-v1-2025 profile). Pinned unless --no-pin.
    Add {
        /// The file ("-" for standard input).
        file: PathBuf,
        /// Let the store drop it when it needs room.
        #[arg(long)]
        no_pin: bool,
    },
    /// Write a file to standard output (or --output FILE), every block checked. A file not held
    /// here is fetched first from the neighbours (or the nodes given with --from), several at
    /// once, and kept as a cache (unpinned unless --pin).
    Get {
        /// The file's CID.
        cid: String,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// A node to fetch from (hex key or mesh name), nearest first; may repeat.
        #[arg(long, value_name = "NODE")]
        from: Vec<String>,
        /// Keep the fetched file whatever the store's limit.
        #[arg(long)]
        pin: bool,
    },
    /// List the files held, their sizes and pins, and the bytes the store takes.
    Ls,
    /// Keep a file whatever the store's limit.
    Pin {
        /// The file's CID.
        cid: String,
    },
    /// Let the store drop a file when it needs room.
    Unpin {
        /// The file's CID.
        cid: String,
    },
    /// Forget a file (and the blocks no other file holds).
    Rm {
        /// The file's CID.
        cid: String,
    },
    /// Write files held here to a CAR archive (CARv1, what `ipfs dag export` writes) for a node
    /// with no link: `meshrouter blob export CID > /media/usb/files.car`.
    Export {
        /// The files' CIDs.
        #[arg(required = true)]
        cids: Vec<String>,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Take in the files of a CAR archive (from `blob export` or `ipfs dag export`): every block is
    /// checked against its CID; a file whose blocks are not all there is not recorded.
    Import {
        /// The archive ("-" for standard input).
        file: PathBuf,
        /// Keep the files whatever the store's limit (default: pinned, as added files are).
        #[arg(long)]
        no_pin: bool,
    },
}

pub(crate) fn run(socket: &Path, command: BlobCommand, json_output: bool) -> anyhow::Result<()> {
    let reply = match &command {
        BlobCommand::Add { file, no_pin } => add(socket, file, !no_pin)?,
        BlobCommand::Get {
            cid,
            output,
            from,
            pin,
        } => {
            fetch_if_missing(socket, cid, from, *pin)?;
            return get(socket, cid, output.as_deref());
        }
        BlobCommand::Ls => call(socket, "GET", "/v1/blobs", None)?,
        BlobCommand::Export { cids, output } => return export(socket, cids, output.as_deref()),
        BlobCommand::Import { file, no_pin } => import(socket, file, !no_pin)?,
        BlobCommand::Pin { cid } => pin(socket, cid, true)?,
        BlobCommand::Unpin { cid } => pin(socket, cid, false)?,
        BlobCommand::Rm { cid } => call(
            socket,
            "POST",
            "/v1/blobs/remove",
            Some(&json!({ "cid": cid })),
        )?,
    };
    if json_output {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    match command {
        BlobCommand::Add { .. } => println!("{}", cell(&reply["cid"])),
        BlobCommand::Ls => show(&reply),
        BlobCommand::Pin { .. } | BlobCommand::Unpin { .. } => {
            let state = if reply["pinned"] == true {
                "pinned"
            } else {
                "unpinned"
            };
            println!("{} {state}", cell(&reply["cid"]));
        }
        BlobCommand::Rm { .. } => println!("removed {}", cell(&reply["cid"])),
        BlobCommand::Import { .. } => {
            for root in reply["files"].as_array().into_iter().flatten() {
                println!("{}", cell(root));
            }
        }
        BlobCommand::Get { .. } | BlobCommand::Export { .. } => {}
    }
    Ok(())
}

fn pin(socket: &Path, cid: &str, pinned: bool) -> anyhow::Result<Value> {
    call(
        socket,
        "POST",
        "/v1/blobs/pin",
        Some(&json!({ "cid": cid, "pin": pinned })),
    )
}

/// Reads `file` ("-": standard input) in chunks of `size` bytes, handing each to `take`.
fn each_chunk(
    file: &Path,
    size: usize,
    mut take: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut input: Box<dyn Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?)
    };
    let mut buffer = vec![0u8; size];
    loop {
        let n = input
            .read(&mut buffer)
            .with_context(|| format!("reading {}", file.display()))?;
        if n == 0 {
            return Ok(());
        }
        take(&buffer[..n])?;
    }
}

/// Gives the daemon a block of a file about to be recorded.
fn put_block(socket: &Path, cid: &Cid, data: &[u8]) -> anyhow::Result<()> {
    let body = json!({ "cid": cid.to_string(), "data": BASE64.encode(data) });
    call(socket, "POST", "/v1/blobs/block", Some(&body)).map(drop)
}

fn add(socket: &Path, file: &Path, pinned: bool) -> anyhow::Result<Value> {
    let profile = Profile::UNIXFS_V1_2025;
    let mut importer = Importer::new(profile);
    let upload = |importer: &mut Importer| -> anyhow::Result<()> {
        while let Some(block) = importer.poll_block() {
            put_block(socket, &block.cid, &block.bytes)?;
        }
        Ok(())
    };
    each_chunk(file, profile.chunk, |chunk| {
        importer.write(chunk);
        upload(&mut importer)
    })?;
    let root = importer.finish();
    upload(&mut importer)?;
    call(
        socket,
        "POST",
        "/v1/blobs/add",
        Some(&json!({ "cid": root.to_string(), "pin": pinned })),
    )
}

/// Fetches `root` from other nodes unless it is held here; waits, showing progress on standard
/// error.
fn fetch_if_missing(socket: &Path, root: &str, from: &[String], pin: bool) -> anyhow::Result<()> {
    let held = call(socket, "GET", "/v1/blobs", None)?;
    let is_held = (held["blobs"].as_array().into_iter().flatten()).any(|b| b["cid"] == root);
    if is_held {
        return Ok(());
    }
    let keys = (from.iter())
        .map(|node| super::client::node_key(socket, node))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let body = json!({ "cid": root, "from": keys, "pin": pin });
    call(socket, "POST", "/v1/blobs/fetch", Some(&body))?;
    let started = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(5));
        let status = call(socket, "GET", "/v1/blobs/fetches", None)?;
        let Some(entry) =
            (status["fetches"].as_array().into_iter().flatten()).find(|f| f["cid"] == root)
        else {
            bail!("the fetch of {root} was forgotten (the daemon restarted?)");
        };
        let got = entry["bytes"].as_u64().unwrap_or(0);
        match entry["state"].as_str() {
            Some("fetching") => {
                if started.elapsed().as_secs() >= 2 {
                    eprint!("\rfetching {root}: {}", bytes(got));
                }
            }
            Some("complete") => {
                if started.elapsed().as_secs() >= 2 {
                    eprintln!();
                }
                return Ok(());
            }
            _ => bail!("fetching {root}: {}", cell(&entry["error"])),
        }
    }
}

/// One block held by the daemon, checked against its CID: from its file in `local` (the store's
/// block folder, when this process may read it: no base64 JSON through the API, half of a large
/// `blob get`'s time), else through the API.
fn read_block_from(socket: &Path, local: Option<&Path>, cid: &Cid) -> anyhow::Result<Vec<u8>> {
    if let Some(data) = local.and_then(|dir| std::fs::read(dir.join(cid.to_string())).ok())
        && cid.matches(&data)
    {
        return Ok(data);
    }
    read_block(socket, cid)
}

/// One block held by the daemon, checked against its CID.
fn read_block(socket: &Path, cid: &Cid) -> anyhow::Result<Vec<u8>> {
    let reply = call(
        socket,
        "POST",
        "/v1/blobs/read",
        Some(&json!({ "cid": cid.to_string() })),
    )?;
    let data = BASE64
        .decode(reply["data"].as_str().unwrap_or_default())
        .context("the daemon sent a block that is not base64")?;
    if !cid.matches(&data) {
        bail!("block {cid} does not match its CID");
    }
    Ok(data)
}

fn export(socket: &Path, cids: &[String], output: Option<&Path>) -> anyhow::Result<()> {
    let roots = cids
        .iter()
        .map(|c| c.parse::<Cid>().with_context(|| format!("{c}: not a CID")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if roots.len() > car::MAX_ROOTS {
        bail!("an archive carries at most {} files", car::MAX_ROOTS);
    }
    if output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("an archive is binary: redirect it (> files.car) or use --output FILE");
    }
    let (mut out, temporary): (Box<dyn Write>, Option<PathBuf>) = match output {
        Some(path) => {
            // Written whole, then renamed: a crash never leaves half an archive under the name.
            let partial = path.with_extension("car.partial");
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))?;
            (Box::new(std::io::BufWriter::new(file)), Some(partial))
        }
        None => (
            Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            None,
        ),
    };
    out.write_all(&car::header(&roots))?;
    let mut written = std::collections::HashSet::new();
    for root in &roots {
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            if !written.insert(cid) {
                continue;
            }
            let data = read_block(socket, &cid)
                .with_context(|| format!("{root} is not held here whole (blob get it first)"))?;
            if cid.codec == Codec::DagPb {
                let node = FileNode::decode(&data).with_context(|| format!("block {cid}"))?;
                stack.extend(node.links.iter().rev().map(|l| l.cid));
            }
            out.write_all(&car::section(&cid, &data))?;
        }
    }
    out.flush()?;
    drop(out);
    if let (Some(partial), Some(path)) = (temporary, output) {
        std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn import(socket: &Path, file: &Path, pinned: bool) -> anyhow::Result<Value> {
    let mut reader = car::Reader::new();
    let mut blocks = 0u64;
    each_chunk(file, 1 << 20, |chunk| {
        reader.write(chunk);
        while let Some((cid, data)) = reader
            .poll_section()
            .with_context(|| format!("{}", file.display()))?
        {
            put_block(socket, &cid, &data)?;
            blocks += 1;
        }
        Ok(())
    })?;
    reader
        .finish()
        .with_context(|| format!("{}", file.display()))?;
    let roots = reader.roots().unwrap_or_default().to_vec();
    let mut files = Vec::new();
    for root in &roots {
        call(
            socket,
            "POST",
            "/v1/blobs/add",
            Some(&json!({ "cid": root.to_string(), "pin": pinned })),
        )
        .with_context(|| format!("{root}: the archive does not carry all of this file"))?;
        files.push(root.to_string());
    }
    Ok(json!({ "files": files, "blocks": blocks }))
}

fn get(socket: &Path, root: &str, output: Option<&Path>) -> anyhow::Result<()> {
    let root: Cid = root.parse().with_context(|| format!("{root}: not a CID"))?;
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let listing = call(socket, "GET", "/v1/blobs", None)?;
    let local = listing["blocks_dir"].as_str().map(PathBuf::from);
    let mut stack = vec![root];
    while let Some(cid) = stack.pop() {
        let data = read_block_from(socket, local.as_deref(), &cid)?;
        match cid.codec {
            Codec::Raw => out.write_all(&data)?,
            Codec::DagPb => {
                let node = FileNode::decode(&data).with_context(|| format!("block {cid}"))?;
                stack.extend(node.links.iter().rev().map(|l| l.cid));
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn show(reply: &Value) {
    let rows: Vec<Vec<String>> = (reply["blobs"].as_array().into_iter().flatten())
        .map(|b| {
            vec![
                cell(&b["cid"]),
                bytes(b["size"].as_u64().unwrap_or(0)),
                cell(&b["blocks"]),
                if b["pinned"] == true {
                    "pinned".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    print(&["CID", "Size", "Blocks", "Pin"], &rows);
    println!(
        "{} of {} used",
        bytes(reply["used"].as_u64().unwrap_or(0)),
        bytes(reply["max_bytes"].as_u64().unwrap_or(0))
    );
}
