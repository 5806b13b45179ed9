//! berth's [`ContainerSpec`] as Docker's container configuration.

use berth_core::run_args::{MountSpec, PortSpec};
use berth_core::spec::{ContainerSpec, PRIVATE_MOUNT};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, PortBinding, PortMap, RestartPolicy, RestartPolicyNameEnum,
};
use std::collections::HashMap;

pub fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let o = &spec.options;
    let none_if_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let (binds, anonymous_volumes) = binds(&spec.private_dir, &o.mounts);
    let host_config = HostConfig {
        nano_cpus: Some(spec.nano_cpus),
        memory: spec.memory.map(|m| m as i64),
        binds: Some(binds),
        port_bindings: (!o.ports.is_empty()).then(|| port_bindings(&o.ports)),
        network_mode: o.network.clone(),
        privileged: Some(o.privileged),
        cap_add: none_if_empty(&o.cap_add),
        cap_drop: none_if_empty(&o.cap_drop),
        devices: (!o.devices.is_empty()).then(|| {
            o.devices
                .iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.host_path.clone()),
                    path_in_container: Some(d.container_path.clone()),
                    cgroup_permissions: Some(d.permissions.clone()),
                })
                .collect()
        }),
        readonly_rootfs: Some(o.read_only),
        tmpfs: (!o.tmpfs.is_empty()).then(|| {
            o.tmpfs
                .iter()
                .map(|t| match t.split_once(':') {
                    Some((path, opts)) => (path.to_owned(), opts.to_owned()),
                    None => (t.clone(), String::new()),
                })
                .collect()
        }),
        extra_hosts: none_if_empty(&o.add_hosts),
        dns: none_if_empty(&o.dns),
        shm_size: o.shm_size.map(|s| s as i64),
        init: o.init.then_some(true),
        // berth supervises restarts itself (with backoff and a give-up point),
        // so the engine must not race it.
        restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image_id.clone()),
        hostname: o.hostname.clone(),
        user: o.user.clone(),
        working_dir: o.workdir.clone(),
        entrypoint: o.entrypoint.clone(),
        env: none_if_empty(&o.env),
        labels: Some(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        exposed_ports: (!o.ports.is_empty()).then(|| o.ports.iter().map(port_key).collect()),
        volumes: (!anonymous_volumes.is_empty()).then_some(anonymous_volumes),
        stop_signal: o.stop_signal.clone(),
        stop_timeout: o.stop_timeout,
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The private directory first, then the user's volumes; anonymous volumes are
/// declared separately, as `docker run -v /path` does.
fn binds(private_dir: &str, mounts: &[MountSpec]) -> (Vec<String>, Vec<String>) {
    let mut binds = vec![format!("{private_dir}:{PRIVATE_MOUNT}")];
    let mut anonymous = Vec::new();
    for mount in mounts {
        match &mount.source {
            Some(source) => {
                let mode = if mount.read_only { ":ro" } else { "" };
                binds.push(format!("{source}:{}{mode}", mount.target));
            }
            None => anonymous.push(mount.target.clone()),
        }
    }
    (binds, anonymous)
}

fn port_key(port: &PortSpec) -> String {
    format!("{}/{}", port.container_port, port.protocol)
}

fn port_bindings(ports: &[PortSpec]) -> PortMap {
    let mut map: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in ports {
        let binding = PortBinding { host_ip: port.host_ip.clone(), host_port: port.host_port.map(|p| p.to_string()) };
        map.entry(port_key(port)).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(binding);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::run_args::parse_run_args;

    fn spec(args: &str) -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            image_id: "sha256:1".into(),
            options: parse_run_args(args).unwrap(),
            nano_cpus: 400_000_000,
            memory: Some(64 << 20),
            private_dir: "/data/web".into(),
            labels: [("berth.app".to_string(), "web".to_string())].into(),
        }
    }

    #[test]
    fn maps_every_option() {
        let body = create_body(&spec(
            "-e A=1 -v /srv:/srv:ro -v /cache -p 127.0.0.1:8080:80 -p 53:53/udp --network host -h box -u 1:2 -w /w \
             --entrypoint /bin/sh --privileged --cap-add net_admin --cap-drop ALL --device /dev/null:/dev/x:r -l k=v \
             --read-only --tmpfs /run:size=1m --add-host db:10.0.0.1 --dns 1.1.1.1 --shm-size 1m --init \
             --stop-signal SIGINT --stop-timeout 3",
        ));
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.binds.unwrap(), ["/data/web:/tpc", "/srv:/srv:ro"]);
        assert_eq!(body.volumes.unwrap(), ["/cache"]);
        assert_eq!(host.nano_cpus, Some(400_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        let ports = host.port_bindings.unwrap();
        assert_eq!(ports["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(), Some("8080"));
        assert!(ports.contains_key("53/udp"));
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.privileged, Some(true));
        assert_eq!(host.cap_add.unwrap(), ["NET_ADMIN"]);
        assert_eq!(host.devices.unwrap()[0].path_in_container.as_deref(), Some("/dev/x"));
        assert_eq!(host.tmpfs.unwrap()["/run"], "size=1m");
        assert_eq!(host.extra_hosts.unwrap(), ["db:10.0.0.1"]);
        assert_eq!(host.init, Some(true));
        assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(body.env.unwrap(), ["A=1"]);
        assert_eq!(body.user.as_deref(), Some("1:2"));
        assert_eq!(body.entrypoint.unwrap(), ["/bin/sh"]);
        assert_eq!(body.stop_timeout, Some(3));
        assert_eq!(body.labels.unwrap()["berth.app"], "web");
    }
}
