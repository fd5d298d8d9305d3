//! The Docker engine's API, as the driver asks it: `GET /networks/{id}` over the engine's Unix
//! socket (`--docker-host`, default `/var/run/docker.sock`), with hyper's HTTP/1 client.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::driver::{DockerNetwork, Engine};

/// How long one question to the engine may take.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(5);

/// The engine at a Unix socket.
#[derive(Debug, Clone)]
pub struct EngineSocket(pub PathBuf);

impl EngineSocket {
    async fn get(&self, path: &str) -> Result<Value, String> {
        let exchange = async {
            let stream = tokio::net::UnixStream::connect(&self.0)
                .await
                .map_err(|e| format!("connect to {}: {e}", self.0.display()))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let request = hyper::Request::get(path)
                .header("Host", "docker")
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if !status.is_success() {
                return Err(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body).trim()
                ));
            }
            serde_json::from_slice(&body).map_err(|e| e.to_string())
        };
        tokio::time::timeout(ENGINE_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                format!(
                    "no answer from {} within {ENGINE_TIMEOUT:?}",
                    self.0.display()
                )
            })?
    }
}

impl Engine for EngineSocket {
    async fn network(&self, id: &str) -> Result<DockerNetwork, String> {
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("{id:?} is not a network id"));
        }
        Ok(network_from(&self.get(&format!("/networks/{id}")).await?))
    }

    async fn endpoint_names(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<(String, Vec<String>)>, String> {
        if !network_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("{network_id:?} is not a network id"));
        }
        // filters={"network":["<id>"]}, URL-encoded.
        let listed = self
            .get(&format!(
                "/containers/json?all=1&filters=%7B%22network%22%3A%5B%22{network_id}%22%5D%7D"
            ))
            .await?;
        let Some(id) = container_with_endpoint(&listed, endpoint_id) else {
            return Ok(None);
        };
        let inspected = self.get(&format!("/containers/{id}/json")).await?;
        Ok(names_of(&inspected, endpoint_id))
    }
}

/// The id of the container in a `GET /containers/json` list whose endpoint is `endpoint_id`.
pub fn container_with_endpoint(listed: &Value, endpoint_id: &str) -> Option<String> {
    listed.as_array()?.iter().find_map(|c| {
        let networks = c["NetworkSettings"]["Networks"].as_object()?;
        networks
            .values()
            .any(|n| n["EndpointID"] == endpoint_id)
            .then(|| c["Id"].as_str().map(str::to_string))
            .flatten()
    })
}

/// A container's name (without Docker's leading `/`) and its aliases on the network where its
/// endpoint is `endpoint_id`, from `GET /containers/{id}/json`; the name is not repeated among
/// the aliases.
pub fn names_of(container: &Value, endpoint_id: &str) -> Option<(String, Vec<String>)> {
    let name = container["Name"]
        .as_str()?
        .trim_start_matches('/')
        .to_string();
    let network = container["NetworkSettings"]["Networks"]
        .as_object()?
        .values()
        .find(|n| n["EndpointID"] == endpoint_id)?;
    let aliases = network["Aliases"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|a| *a != name)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some((name, aliases))
}

/// The parts of `GET /networks/{id}` the driver needs.
pub fn network_from(v: &Value) -> DockerNetwork {
    let config = &v["IPAM"]["Config"][0];
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    DockerNetwork {
        name: v["Name"].as_str().unwrap_or_default().to_string(),
        subnet: text(&config["Subnet"]),
        gateway: text(&config["Gateway"]),
        internal: v["Internal"].as_bool().unwrap_or(false),
        // `-o encrypted` (any value): Docker keeps driver options as strings.
        encrypted: v["Options"].get("encrypted").is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_subnet_gateway_and_internal() {
        let v = serde_json::json!({
            "Name": "shop", "Id": "abc", "Driver": "vxnet", "Internal": true,
            "IPAM": {"Driver": "vxnet", "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]}
        });
        assert_eq!(
            network_from(&v),
            DockerNetwork {
                name: "shop".into(),
                subnet: Some("10.9.0.0/24".into()),
                gateway: Some("10.9.0.1".into()),
                internal: true,
                encrypted: false,
            }
        );
        let encrypted = serde_json::json!({"Name": "x", "Options": {"encrypted": ""}});
        assert!(network_from(&encrypted).encrypted);
        assert_eq!(network_from(&serde_json::json!({"Name": "x"})).subnet, None);
    }

    #[test]
    fn finds_the_container_of_an_endpoint_and_its_names() {
        let listed = serde_json::json!([
            {"Id": "c1", "NetworkSettings": {"Networks": {"shop": {"EndpointID": "e1"}}}},
            {"Id": "c2", "NetworkSettings": {"Networks": {"shop": {"EndpointID": "e2"}}}}
        ]);
        assert_eq!(
            container_with_endpoint(&listed, "e2").as_deref(),
            Some("c2")
        );
        assert_eq!(container_with_endpoint(&listed, "e3"), None);
        let inspected = serde_json::json!({
            "Name": "/web",
            "NetworkSettings": {"Networks": {"shop": {"EndpointID": "e2", "Aliases": ["web", "www", "0123456789ab"]}}}
        });
        assert_eq!(
            names_of(&inspected, "e2"),
            Some((
                "web".to_string(),
                vec!["www".to_string(), "0123456789ab".to_string()]
            ))
        );
        assert_eq!(names_of(&inspected, "e1"), None);
    }
}
