//! Times the compressed save's encoder alone on a file: the parallel zip writer
//! (`snapshot::zipstream`) against flate2's Deflate level 1 on one thread, the writer's encoding
//! before it went parallel. A measuring aid for `BENCHMARKS.md`, not a benchmark of a whole
//! save.
//!
//!   cargo build --release --example zip-throughput
//!   python3 bench/gen-values.py k8s 500 > k8s.txt
//!   target/release/examples/zip-throughput k8s.txt [parallel|single] [workers] [block-KiB]
//!
//! The input is read in 64 KiB pieces (etcd's stream arrives in pieces of that order) and the
//! archive is counted, not kept, so memory is the encoder's own (see `/usr/bin/time -v`).

use std::io::{self, Read, Write};
use std::time::Instant;

use etcd_snapshot::snapshot::zipstream::{BLOCK_SIZE, ZipEntry, ZipStreamWriter};

/// Counts the bytes written to it and drops them.
#[derive(Default)]
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Feeds `input` to `sink` 64 KiB at a time; returns the bytes read.
fn feed(input: &mut impl Read, sink: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        sink.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (path, mode) = match args.as_slice() {
        [_, path] => (path, "parallel"),
        [_, path, mode, ..] => (path, mode.as_str()),
        _ => {
            eprintln!("usage: zip-throughput <file> [parallel|single] [workers] [block-KiB]");
            std::process::exit(2);
        }
    };
    let workers = args.get(3).and_then(|w| w.parse().ok()).unwrap_or(2);
    let block = args
        .get(4)
        .and_then(|k| k.parse::<usize>().ok())
        .map_or(BLOCK_SIZE, |kib| kib * 1024);
    let mut input = io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let start = Instant::now();
    let (read, written, detail) = match mode {
        "parallel" => {
            let entry = ZipEntry {
                name: "snapshot".into(),
                unix_mtime: 0,
                mode: 0o600,
            };
            let mut zip =
                ZipStreamWriter::with_tuning(Count::default(), &entry, 1, block, workers)?;
            let read = feed(&mut input, &mut zip)?;
            let (_, summary) = zip.finish()?;
            (
                read,
                summary.compressed_size,
                format!(
                    "{workers} workers, {} KiB blocks, {:?}",
                    block / 1024,
                    summary.encoded
                ),
            )
        }
        "single" => {
            let mut deflate =
                flate2::write::DeflateEncoder::new(Count::default(), flate2::Compression::new(1));
            let read = feed(&mut input, &mut deflate)?;
            (
                read,
                deflate.finish()?.0,
                "flate2 level 1, one thread".into(),
            )
        }
        other => {
            eprintln!("unknown mode {other:?}: expected parallel or single");
            std::process::exit(2);
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{mode}: {read} bytes in {seconds:.2} s = {:.0} MB/s, Deflate data {written} bytes = {:.2}% ({detail})",
        read as f64 / seconds / 1e6,
        written as f64 * 100.0 / read as f64
    );
    Ok(())
}
