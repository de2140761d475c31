//! Writes a directory as a layer into a scratch store and prints what it
//! wrote and how long it took; used by testdata/bench/layer.sh.
//!
//!     write_layer DIR STORE [gzip|zstd|uncompressed] [THREADS]

use berth_store::layer::{write_layer_from_dir, Compression, LayerOptions};
use berth_store::Store;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: write_layer DIR STORE [gzip|zstd|uncompressed]");
        return ExitCode::from(2);
    }
    let compression = Compression::parse(args.get(3).map(String::as_str).unwrap_or("gzip"))
        .unwrap_or(Compression::Gzip);
    let store = match Store::open(Path::new(&args[2])) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = LayerOptions {
        compression,
        threads: args.get(4).and_then(|t| t.parse().ok()).unwrap_or(0),
        // Measure compression, not reuse of an earlier run's members.
        reuse: false,
        ..LayerOptions::default()
    };
    let t = Instant::now();
    match write_layer_from_dir(store.blobs(), Path::new(&args[1]), &opts) {
        Ok(layer) => {
            println!(
                "{} {} {} {:.3}",
                layer.digest,
                layer.diff_id,
                layer.size,
                t.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
