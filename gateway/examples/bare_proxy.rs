//! A bare pingora reverse proxy, no authentication: the baseline Guichet's overhead is measured
//! against (see `bench/run.sh` and `docs/benchmarks.md`).
//!
//! Usage: `bare_proxy LISTEN UPSTREAM [THREADS]`, e.g. `bare_proxy 127.0.0.1:18082 127.0.0.1:18090`.
//! One worker thread unless THREADS says otherwise; every request goes to UPSTREAM over plain
//! HTTP/1.1 (pooled connections).

// A benchmark peer, not library code: it may stop on setup errors.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;

struct BareProxy {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for BareProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy LISTEN_ADDR UPSTREAM_ADDR [THREADS]");
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM_ADDR must be ip:port");
    let threads = args
        .next()
        .map_or(1, |t| t.parse().expect("THREADS must be a number"));
    let conf = ServerConf {
        threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let mut proxy =
        pingora::proxy::http_proxy_service(&server.configuration, BareProxy { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.bootstrap();
    server.run_forever();
}
