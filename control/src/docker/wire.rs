//! The JSON of Docker's plugin protocol v1 for network and IPAM drivers, as far as vxnet reads
//! and writes it. Unknown fields are ignored (Docker adds some between versions); every field
//! vxnet needs is checked by the driver, not assumed.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Go encodes a nil map or slice as `null`: read it as empty.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestPool {
    pub pool: String,
    pub sub_pool: String,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamData {
    pub pool: String,
    pub gateway: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, Value>,
    #[serde(rename = "IPv4Data", deserialize_with = "nullable")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(rename = "IPv6Data", deserialize_with = "nullable")]
    pub ipv6_data: Vec<IpamData>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointInterface {
    pub address: String,
    #[serde(rename = "AddressIPv6")]
    pub address_ipv6: String,
    pub mac_address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub interface: Option<EndpointInterface>,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, Value>,
}

/// `DeleteEndpoint`, `Leave`, `EndpointOperInfo`, `RevokeExternalConnectivity`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Join {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub sandbox_key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProgramExternalConnectivity {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(deserialize_with = "nullable")]
    pub options: BTreeMap<String, Value>,
}

/// One entry of `com.docker.network.portmap`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// 6 for TCP, 17 for UDP (IANA protocol numbers).
    pub proto: u8,
    #[serde(rename = "IP")]
    pub ip: String,
    pub port: u16,
    #[serde(rename = "HostIP")]
    pub host_ip: String,
    pub host_port: u16,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    pub src_name: String,
    pub dst_prefix: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinResponse {
    pub interface_name: InterfaceName,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    pub disable_gateway_service: bool,
}

/// The answer to any call that failed: Docker shows `Err` to its user.
pub fn error(message: &str) -> Value {
    serde_json::json!({ "Err": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_nulls_read_as_empty() {
        let r: RequestAddress =
            serde_json::from_str(r#"{"PoolID":"10.0.0.0/24","Address":"","Options":null}"#)
                .expect("null options");
        assert!(r.options.is_empty());
        let n: CreateNetwork = serde_json::from_str(
            r#"{"NetworkID":"n","Options":null,"IPv4Data":[{"Pool":"10.0.0.0/24"}],"IPv6Data":null}"#,
        )
        .expect("null IPv6Data");
        assert_eq!((n.ipv4_data.len(), n.ipv6_data.len()), (1, 0));
    }
}
