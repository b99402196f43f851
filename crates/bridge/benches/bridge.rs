//! What the bridge adds: request/response round trips and bulk throughput to one TCP echo
//! server, directly and through parent ingress → Unix-socket "vsock" → enclave ingress
//! forwarder, in the same run.
//!
//! Run: `cargo bench -p daas-bridge --bench bridge` (`-- --quick` for a short run,
//! `--buffer KIB` for the per-direction copy buffer, default the bridge's 16 KiB).
//!
//! The "vsock" here is the Unix-socket stand-in (this machine has no vsock loopback), so the
//! figure is the bridge's own cost (two extra hops, two splices) on top of a local socket, not
//! Nitro's vsock latency. Everything runs in this process on a 2-worker runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench: a failed setup step should panic

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use daas_bridge::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Plan {
    round_trips: usize,
    bulk_bytes: usize,
    bulk_runs: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Round trips of a 64-byte message on one connection; returns sorted latencies.
async fn round_trips(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    // Warm-up.
    for _ in 0..100 {
        s.write_all(&msg).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
    }
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&msg).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    lat
}

/// New connection + one round trip + close; returns sorted latencies.
async fn connects(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    let mut back = [0u8; 64];
    for _ in 0..n {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&[1u8; 64]).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        drop(s);
        lat.push(t.elapsed());
    }
    lat.sort();
    lat
}

/// Uploads `bytes` while reading the echo; returns MiB/s of payload (one direction).
async fn bulk(addr: SocketAddr, bytes: usize) -> f64 {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let chunk = vec![0x5au8; 64 * 1024];
    let t = Instant::now();
    let writer = tokio::spawn(async move {
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            w.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
        w.shutdown().await.unwrap();
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    writer.await.unwrap();
    assert_eq!(got, bytes);
    bytes as f64 / (1024.0 * 1024.0) / t.elapsed().as_secs_f64()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let buffer_kib: usize = args
        .iter()
        .position(|a| a == "--buffer")
        .map(|i| args[i + 1].parse().expect("--buffer KIB"))
        .unwrap_or(Limits::default().buffer_size / 1024);
    let limits = Limits {
        buffer_size: buffer_kib * 1024,
        ..Limits::default()
    };
    let plan = if quick {
        Plan {
            round_trips: 2_000,
            bulk_bytes: 64 << 20,
            bulk_runs: 2,
        }
    } else {
        Plan {
            round_trips: 20_000,
            bulk_bytes: 256 << 20,
            bulk_runs: 5,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let echo = support::echo_server().await;
        let pair = support::Setup {
            service: Some(echo),
            limits,
            ..support::Setup::default()
        }
        .start()
        .await;
        let bridged = pair.parent.ingress_addrs()[0];

        println!(
            "bridge bench{}: TCP echo server directly vs through parent ingress -> unix \"vsock\" -> enclave ingress ({buffer_kib} KiB buffers)",
            if quick { " (--quick)" } else { "" }
        );
        println!();
        println!("{:<28} {:>12} {:>12} {:>12} {:>12}", "", "direct p50", "direct p99", "bridge p50", "bridge p99");
        let d = round_trips(echo, plan.round_trips).await;
        let b = round_trips(bridged, plan.round_trips).await;
        println!(
            "{:<28} {:>10.1}us {:>10.1}us {:>10.1}us {:>10.1}us   (p50 ratio {:.2}x, +{:.1}us)",
            format!("64 B round trip (n={})", plan.round_trips),
            us(percentile(&d, 0.5)),
            us(percentile(&d, 0.99)),
            us(percentile(&b, 0.5)),
            us(percentile(&b, 0.99)),
            us(percentile(&b, 0.5)) / us(percentile(&d, 0.5)),
            us(percentile(&b, 0.5)) - us(percentile(&d, 0.5)),
        );
        let n = plan.round_trips / 10;
        let d = connects(echo, n).await;
        let b = connects(bridged, n).await;
        println!(
            "{:<28} {:>10.1}us {:>10.1}us {:>10.1}us {:>10.1}us   (p50 ratio {:.2}x)",
            format!("connect + round trip (n={n})"),
            us(percentile(&d, 0.5)),
            us(percentile(&d, 0.99)),
            us(percentile(&b, 0.5)),
            us(percentile(&b, 0.99)),
            us(percentile(&b, 0.5)) / us(percentile(&d, 0.5)),
        );
        println!();
        let mut direct = Vec::new();
        let mut through = Vec::new();
        // Alternate, so drift in the machine's load hits both alike.
        for _ in 0..plan.bulk_runs {
            direct.push(bulk(echo, plan.bulk_bytes).await);
            through.push(bulk(bridged, plan.bulk_bytes).await);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (dm, bm) = (median(&mut direct), median(&mut through));
        println!(
            "bulk echo, {} MiB up and back, median of {}: direct {:.0} MiB/s, bridge {:.0} MiB/s (ratio {:.2})",
            plan.bulk_bytes >> 20,
            plan.bulk_runs,
            dm,
            bm,
            bm / dm
        );
        let c = pair.parent.counters().snapshot();
        println!(
            "parent counters: {} ingress connections, {} B in, {} B out, {} failures",
            c.ingress_connections, c.bytes_in, c.bytes_out, c.failures
        );
        pair.shutdown().await;
    });
}
