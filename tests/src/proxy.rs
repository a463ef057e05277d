//! A TCP proxy that forwards to a dependency (PostgreSQL, RabbitMQ) and can
//! be cut and restored, to test outages without stopping the real service
//! other tests share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub address: SocketAddr,
    up: Arc<AtomicBool>,
    // Bumped on every cut: open connections watch it and close.
    cut: watch::Sender<u64>,
}

impl TcpProxy {
    /// Starts forwarding `127.0.0.1:<ephemeral>` to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let address = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0_u64);
        let accept_up = up.clone();
        let accept_cut = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    // Down: refuse by closing at once.
                    drop(inbound);
                    continue;
                }
                let mut cut_seen = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_seen.changed() => {}
                    }
                });
            }
        });
        Self { address, up, cut }
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
