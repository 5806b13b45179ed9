//! berth's [`ContainerConfig`] as Docker's container configuration.

use berth_core::engine::ContainerConfig;
use berth_core::run_args::{MountSpec, PortSpec};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, PortBinding, PortMap, RestartPolicy, RestartPolicyNameEnum,
};
use std::collections::HashMap;

pub fn create_body(config: &ContainerConfig) -> ContainerCreateBody {
    let o = &config.options;
    let none_if_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let (binds, anonymous_volumes) = binds(config.mounts.iter().chain(&o.mounts));
    // The effective limits, else the options' own `--cpus`/`--memory` (as `docker run` takes them).
    let nano_cpus = config.nano_cpus.or_else(|| o.cpus.map(|cpus| (cpus * 1e9).round() as i64));
    let memory = config.memory.or(o.memory);
    let log_config = config.log_rotation.as_ref().map(|r| bollard::models::HostConfigLogConfig {
        typ: Some("json-file".to_owned()),
        config: Some(HashMap::from([
            ("max-size".to_owned(), r.max_size.clone()),
            ("max-file".to_owned(), r.max_files.to_string()),
        ])),
    });
    let host_config = HostConfig {
        log_config,
        nano_cpus,
        memory: memory.map(|m| m as i64),
        binds: (!binds.is_empty()).then_some(binds),
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
        image: Some(config.image.clone()),
        hostname: o.hostname.clone(),
        user: o.user.clone(),
        working_dir: o.workdir.clone(),
        entrypoint: o.entrypoint.clone(),
        env: none_if_empty(&o.env),
        labels: Some(config.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        exposed_ports: (!o.ports.is_empty()).then(|| o.ports.iter().map(port_key).collect()),
        volumes: (!anonymous_volumes.is_empty()).then_some(anonymous_volumes),
        stop_signal: o.stop_signal.clone(),
        stop_timeout: o.stop_timeout,
        // `docker run -i` (no tty): stdin stays open for the entry point to read.
        open_stdin: config.open_stdin.then_some(true),
        attach_stdin: config.open_stdin.then_some(false),
        stdin_once: config.open_stdin.then_some(false),
        tty: config.open_stdin.then_some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Bind mounts and named volumes as `source:target[:ro]`, in order; anonymous
/// volumes are declared separately, as `docker run -v /path` does.
fn binds<'a>(mounts: impl Iterator<Item = &'a MountSpec>) -> (Vec<String>, Vec<String>) {
    let mut binds = Vec::new();
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
    use berth_core::spec::ContainerSpec;

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
            "-e A=1 -v /srv:/srv:ro -v cache:/var/cache -v /cache -p 127.0.0.1:8080:80 -p 53:53/udp --network host \
             -h box -u 1:2 -w /w --entrypoint /bin/sh --privileged --cap-add net_admin --cap-drop ALL \
             --device /dev/null:/dev/x:r -l k=v --read-only --tmpfs /run:size=1m --add-host db:10.0.0.1 \
             --dns 1.1.1.1 --shm-size 1m --init --stop-signal SIGINT --stop-timeout 3",
        )
        .config());
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.binds.unwrap(), ["/data/web:/tpc", "/srv:/srv:ro", "cache:/var/cache"]);
        assert_eq!(body.volumes.unwrap(), ["/cache"]);
        assert_eq!(host.nano_cpus, Some(400_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        let ports = host.port_bindings.unwrap();
        assert_eq!(ports["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(), Some("8080"));
        assert_eq!(ports["80/tcp"].as_ref().unwrap()[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert!(ports.contains_key("53/udp"));
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.privileged, Some(true));
        assert_eq!(host.cap_add.unwrap(), ["NET_ADMIN"]);
        assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
        assert_eq!(host.devices.unwrap()[0].path_in_container.as_deref(), Some("/dev/x"));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.tmpfs.unwrap()["/run"], "size=1m");
        assert_eq!(host.extra_hosts.unwrap(), ["db:10.0.0.1"]);
        assert_eq!(host.dns.unwrap(), ["1.1.1.1"]);
        assert_eq!(host.shm_size, Some(1 << 20));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(body.env.unwrap(), ["A=1"]);
        assert_eq!(body.hostname.as_deref(), Some("box"));
        assert_eq!(body.user.as_deref(), Some("1:2"));
        assert_eq!(body.working_dir.as_deref(), Some("/w"));
        assert_eq!(body.entrypoint.unwrap(), ["/bin/sh"]);
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(body.stop_timeout, Some(3));
        assert_eq!(body.labels.as_ref().unwrap()["berth.app"], "web");
        assert_eq!(body.image.as_deref(), Some("sha256:1"));
        assert_eq!(body.open_stdin, None);
    }

    #[test]
    fn an_execution_container_keeps_stdin_open_without_a_tty() {
        let config = ContainerConfig {
            image: "sra:1".into(),
            options: parse_run_args("--cpus 0.5 -m 32m").unwrap(),
            mounts: vec![MountSpec { source: Some("/host/tmp".into()), target: "/tmp".into(), read_only: true }],
            open_stdin: true,
            ..Default::default()
        };
        let body = create_body(&config);
        assert_eq!(
            (body.open_stdin, body.attach_stdin, body.stdin_once, body.tty),
            (Some(true), Some(false), Some(false), Some(false))
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.binds.unwrap(), ["/host/tmp:/tmp:ro"]);
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(32 << 20));
        assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::NO));
    }
}
