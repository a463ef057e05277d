//! RabbitMQ isolation for tests: each test gets a vhost of its own (made
//! with `rabbitmqctl`), so it sees the real queue names of SPEC §6 without
//! sharing them, and the vhost (queues, messages and all) is deleted when
//! the test ends.

use std::process::Command;

use lapin::options::BasicGetOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};

pub struct TestVhost {
    pub name: String,
}

pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(["-q"])
        .args(args)
        .output()
        .expect("running rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl TestVhost {
    pub fn create() -> Self {
        use rand::Rng;
        let name = format!("etl_test_{:016x}", rand::thread_rng().gen::<u64>());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Self { name }
    }

    /// The AMQP URL of this vhost on `host:port` (the broker, or a proxy).
    pub fn url_at(&self, address: &str) -> String {
        format!("amqp://guest:guest@{address}/{}", self.name)
    }

    pub fn url(&self) -> String {
        self.url_at("127.0.0.1:5672")
    }

    /// Applies a policy to queues of this vhost matching `pattern` (the
    /// vhost, and the policy with it, goes when the test ends).
    pub fn set_queue_policy(&self, name: &str, pattern: &str, definition: &str) {
        rabbitmqctl(&[
            "set_policy",
            "-p",
            &self.name,
            "--apply-to",
            "queues",
            name,
            pattern,
            definition,
        ]);
    }

    /// Messages ready in each queue of the vhost.
    pub fn depths(&self) -> Vec<(String, u64)> {
        rabbitmqctl(&["list_queues", "-p", &self.name, "name", "messages"])
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let name = parts.next()?.to_owned();
                let count = parts.next()?.parse().ok()?;
                Some((name, count))
            })
            .filter(|(name, _)| name != "name")
            .collect()
    }

    pub fn depth(&self, queue: &str) -> u64 {
        self.depths()
            .into_iter()
            .find(|(name, _)| name == queue)
            .map_or(0, |(_, n)| n)
    }

    /// A plain connection, as any client would open.
    pub async fn connect(&self) -> Connection {
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        Connection::connect(&self.url(), properties)
            .await
            .expect("connecting to the test vhost")
    }

    /// Takes (and acks) the next message of `queue`, if any.
    pub async fn get(&self, queue: &str) -> Option<(Vec<u8>, BasicProperties)> {
        let connection = self.connect().await;
        let channel = connection.create_channel().await.expect("channel");
        let message = channel
            .basic_get(queue, BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")?;
        let delivery = message.delivery;
        let _ = connection.close(200, "done").await;
        Some((delivery.data, delivery.properties))
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.name])
            .output();
    }
}
