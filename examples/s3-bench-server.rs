//! A loopback S3 server for the benchmarks in `bench/`: s3s (SigV4-checking) over s3s-fs (objects
//! are files under a root dir), the same implementation the integration tests use.
//!
//!   cargo build --release --example s3-bench-server
//!   target/release/examples/s3-bench-server <root-dir> <port> <access-key> <secret-key>
//!
//! Every sub-directory of the root is a bucket. It serves plain HTTP on 127.0.0.1 until killed.
//! Not part of the product: only a fixed, local stand-in so benchmark figures are repeatable.

use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, port, access, secret] = args.as_slice() else {
        eprintln!("usage: s3-bench-server <root-dir> <port> <access-key> <secret-key>");
        std::process::exit(2);
    };
    let mut builder =
        s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).expect("s3s-fs root"));
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        access.as_str(),
        secret.as_str(),
    ));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("port")))
        .await
        .expect("bind");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}
