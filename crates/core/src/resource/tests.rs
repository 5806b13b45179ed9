use super::*;
use std::collections::BTreeMap;

/// The asterisk example of the Docker RM guide: §4.2 header, §4.2.1
/// properties (two docker_network/docker_ipaddr pairs), §4.2.2 lifecycle and
/// operations, §4.2.3 metrics and policies.
const ASTERISK: &str = r#"name: resource::asterisk::1.0
description: asterisk server
properties:
  docker_network:
    type: string
    description: name of network to attach container on startup
    default: "life_default"
    required: true
  docker_ipaddr:
    type: string
    description: assigned ip address
    read-only: true
  docker_network2:
    type: string
    description: name of network to attach container on startup
    required: true
  docker_ipaddr2:
    type: string
    description: assigned ip address for 2nd network
    read-only: true
  proxyAddress:
    type: string
    description: address of a proxy server, if empty asterisk is standalone
    default: ""
lifecycle:
  - Install
  - Configure
  - Start
  - Integrity
  - Stop
  - Reconfigure
  - Uninstall
operations:
  addAsterisk:
    properties:
      ipaddr:
        type: string
        description: address of the asterisk to add to pool
        required: true
      port:
        type: string
        description: port of the asterisk to add to pool
        default: 5060
        required: true
  removeAsterisk:
    properties:
      ipaddr:
        type: string
        description: address of the asterisk to remove from the pool
        required: true
      port:
        type: string
        description: address of the asterisk to remove from the pool
        default: 5060
        required: true
metrics:
  h_integrity:
    type: "metric::integrity"
    publication-period: "5"
  load:
    type: "metric::load"
policies:
  heal:
    metric: "h_integrity"
    type: "policy::heal"
    properties:
      smoothing:
        value: 3
"#;

/// Docker RM guide §4.2.2.
const ASTERISK_LIFECYCLE: &str = "---
version: 1
lifecycle:
  install: /opt/lifecycle/install.sh
  configure: /opt/lifecycle/configure.sh
  start: /opt/lifecycle/start.sh
  integrity: /opt/lifecycle/integrity.sh
  stop: /opt/lifecycle/stop.sh
  reconfigure: /opt/lifecycle/reconfigure.sh
  uninstall: /opt/lifecycle/uninstall.sh
";

const ASTERISK_OPERATIONS: &str = "---
version: 1
operations:
  addAsterisk: /opt/lifecycle/addAsterisk.py
  removeAsterisk: /opt/lifecycle/removeAsterisk.py
";

/// A small descriptor the rule tests change one thing in.
const SMALL: &str = "name: resource::small::1.0
properties:
  port:
    type: string
    default: 80
lifecycle: [Install, Uninstall]
";

fn descriptor_error(text: &str) -> String {
    parse_descriptor("resource.yaml", text).expect_err("the descriptor must be refused").to_string()
}

fn asterisk_files() -> PackageFiles {
    PackageFiles {
        dir_name: "asterisk".into(),
        resource_yaml: ASTERISK.into(),
        lifecycle_yaml: Some(ASTERISK_LIFECYCLE.into()),
        operations_yaml: Some(ASTERISK_OPERATIONS.into()),
    }
}

fn package_error(files: &PackageFiles) -> String {
    validate_package(files).expect_err("the package must be refused").to_string()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn instance() -> InstanceRef {
    InstanceRef { name: "net1".into(), id: "0f3c".into() }
}

// ---- names ----

#[test]
fn type_names_parse_and_display() {
    let name = TypeName::parse("resource::docker-network::1.0").unwrap();
    assert_eq!((name.name(), name.version()), ("docker-network", "1.0"));
    assert_eq!(name.to_string(), "resource::docker-network::1.0");
    assert_eq!(TypeName::new("a_b-9", "2").unwrap().to_string(), "resource::a_b-9::2");
    assert_eq!(serde_json::to_string(&name).unwrap(), r#""resource::docker-network::1.0""#);
    let back: TypeName = serde_json::from_str(r#""resource::docker-network::1.0""#).unwrap();
    assert_eq!(back, name);
}

#[test]
fn malformed_type_names_are_refused() {
    for bad in ["asterisk", "resource::asterisk", "assembly::a::1.0", "resource::::1.0"] {
        assert!(
            matches!(TypeName::parse(bad), Err(TypeNameError::Shape { .. }) | Err(TypeNameError::BadName { .. })),
            "{bad}"
        );
    }
    for bad in ["resource::9lives::1.0", "resource::my res::1.0", "resource::a.b::1.0", "resource::é::1.0"] {
        assert!(matches!(TypeName::parse(bad), Err(TypeNameError::BadName { .. })), "{bad}");
    }
    for bad in ["resource::a::", "resource::a::1..0", "resource::a::v1", "resource::a::1.0.", "resource::a::1::2"] {
        assert!(matches!(TypeName::parse(bad), Err(TypeNameError::BadVersion { .. })), "{bad}");
    }
    let long = format!("resource::{}::1.0", "a".repeat(MAX_TYPE_NAME_LEN + 1));
    assert!(matches!(TypeName::parse(&long), Err(TypeNameError::TooLong { .. })));
    assert!(serde_json::from_str::<TypeName>(r#""resource::9::1""#).is_err());
}

#[test]
fn transitions_parse_canonically() {
    assert_eq!(Transition::parse("Install").unwrap(), Transition::Install);
    assert_eq!(Transition::parse("Transition::Reconfigure").unwrap(), Transition::Reconfigure);
    assert_eq!(
        Transition::parse("install").unwrap_err().to_string(),
        r#"unknown transition "install"; known are Install, Configure, Start, Integrity, Stop, Reconfigure, Uninstall"#
    );
    assert!(Transition::parse("Transition::").is_err());
    assert_eq!(Transition::from_lifecycle_key("uninstall"), Some(Transition::Uninstall));
    assert_eq!(Transition::from_lifecycle_key("Uninstall"), None);
    assert_eq!(Transition::Integrity.lifecycle_key(), "integrity");
    assert_eq!(serde_json::to_string(&Transition::Stop).unwrap(), r#""Stop""#);
    assert!(Transition::Install < Transition::Uninstall);
}

#[test]
fn property_types_parse() {
    assert_eq!(PropertyType::parse("password").unwrap(), PropertyType::Password);
    assert_eq!(PropertyType::Timestamp.to_string(), "timestamp");
    assert_eq!(
        PropertyType::parse("String").unwrap_err().to_string(),
        r#"unknown property type "String"; known are string, password, integer, float, boolean, timestamp, map, list, key"#
    );
}

// ---- descriptors that parse ----

#[test]
fn seed_asterisk_descriptor_parses() {
    let d = parse_descriptor("resource.yaml", ASTERISK).unwrap();
    assert_eq!(d.name.to_string(), "resource::asterisk::1.0");
    assert_eq!(d.description.as_deref(), Some("asterisk server"));
    let names: Vec<&str> = d.properties.names().collect();
    assert_eq!(names, ["docker_network", "docker_ipaddr", "docker_network2", "docker_ipaddr2", "proxyAddress"]);
    let network = d.property("docker_network").unwrap();
    assert_eq!((network.default.as_deref(), network.required, network.read_only), (Some("life_default"), true, false));
    assert!(d.property("docker_ipaddr2").unwrap().read_only);
    assert_eq!(d.property("proxyAddress").unwrap().default.as_deref(), Some(""));
    assert_eq!(d.lifecycle.len(), 7);
    assert!(d.supports(Transition::Reconfigure));

    let add = d.operation("addAsterisk").unwrap();
    let port = add.properties.get("port").unwrap();
    assert_eq!((port.kind, port.default.as_deref(), port.required), (PropertyType::String, Some("5060"), true));
    assert_eq!(add.properties.names().collect::<Vec<_>>(), ["ipaddr", "port"]);

    assert_eq!(d.metrics["h_integrity"], MetricDef { kind: "metric::integrity".into(), publication_period: Some(5) });
    assert_eq!(d.metrics["load"], MetricDef { kind: "metric::load".into(), publication_period: None });
    assert_eq!(
        d.policies["heal"],
        PolicyDef { metric: "h_integrity".into(), kind: "policy::heal".into(), properties: map(&[("smoothing", "3")]) }
    );
}

#[test]
fn descriptor_round_trips_through_json_in_order() {
    let d = parse_descriptor("resource.yaml", ASTERISK).unwrap();
    let json = serde_json::to_string(&d).unwrap();
    assert!(json.find("docker_network2").unwrap() < json.find("proxyAddress").unwrap());
    assert!(json.contains(r#""read-only":true"#) && json.contains(r#""publication-period":5"#));
    let back: Descriptor = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
}

#[test]
fn header_fields_capabilities_and_requirements_parse() {
    let d = parse_descriptor(
        "resource.yaml",
        "name: resource::lb::1.0
description: load balancer
resource-manager-type: ansible-rm
cloud-target: OpenStack
capabilities:
  out: {type: httpStreamOutput}
requirements:
  net: {type: 'OS::Neutron::Net'}
properties:
  max: {type: integer, default: 10}
  copy: {type: integer, value: '${max}'}
  flag: {type: boolean, default: true, readOnly: true}
  admin: {type: password}
",
    )
    .unwrap();
    assert_eq!(d.resource_manager_type.as_deref(), Some("ansible-rm"));
    assert_eq!(d.cloud_target.as_deref(), Some("OpenStack"));
    assert_eq!(d.capabilities, map(&[("out", "httpStreamOutput")]));
    assert_eq!(d.requirements, map(&[("net", "OS::Neutron::Net")]));
    assert_eq!(d.property("flag").unwrap().default.as_deref(), Some("true"));
    assert!(d.property("flag").unwrap().read_only);
    assert_eq!(d.property("copy").unwrap().value.as_deref(), Some("${max}"));
    assert!(d.lifecycle.is_empty(), "a reference resource may omit its lifecycle");
    assert!(d.is_secret("admin") && !d.is_secret("max") && !d.is_secret("nope"));
}

#[test]
fn builtin_descriptors_parse() {
    let network = parse_descriptor("resource.yaml", DOCKER_NETWORK_DESCRIPTOR).unwrap();
    assert_eq!(network.name.to_string(), "resource::docker-network::1.0");
    assert_eq!(network.lifecycle, [Transition::Install, Transition::Uninstall]);
    let networkname = network.property("networkname").unwrap();
    assert_eq!((networkname.value.as_deref(), networkname.required), (Some("${instance.name}"), true));
    assert_eq!(network.property("subnet").unwrap().default.as_deref(), Some("10.1.1.0/24"));
    assert_eq!(network.property("gateway").unwrap().default.as_deref(), Some("10.1.1.1"));
    assert!(network.property("bridgename").unwrap().read_only && network.property("networkid").unwrap().read_only);

    let volume = parse_descriptor("resource.yaml", DOCKER_VOLUME_DESCRIPTOR).unwrap();
    assert_eq!(volume.name.to_string(), "resource::docker-volume::1.0");
    assert_eq!(volume.property("driver").unwrap().default.as_deref(), Some("local"));
    assert!(volume.property("volumeid").unwrap().read_only);
    assert_eq!(volume.lifecycle, [Transition::Install, Transition::Uninstall]);

    let packages = builtin_packages();
    assert_eq!(packages.len(), 2);
    assert!(packages.iter().all(|p| p.lifecycle_scripts.is_empty() && p.operation_scripts.is_empty()));
    assert_eq!(builtin_package(&volume.name).unwrap().descriptor, volume);
    assert!(builtin_package(&TypeName::parse("resource::asterisk::1.0").unwrap()).is_none());
    // As a package with its own directory and scripts, the network would pass the mapping rules too.
    let files = PackageFiles {
        dir_name: "docker-network".into(),
        resource_yaml: DOCKER_NETWORK_DESCRIPTOR.into(),
        lifecycle_yaml: Some("version: 1\nlifecycle: {install: /i.sh, uninstall: /u.sh}\n".into()),
        operations_yaml: None,
    };
    assert_eq!(validate_package(&files).unwrap().descriptor, network);
}

#[test]
fn seed_builtin_operations_declaration_parses() {
    // Docker RM guide §3.4.
    let text = format!(
        "{SMALL}operations:
  addNetwork:
    properties:
      networkid:
        type: string
        description: built in addnetwork operation
        required: true
  removeNetwork:
    properties:
      networkid:
        type: string
        description: built in remove network operation
        required: true
"
    );
    let d = parse_descriptor("resource.yaml", &text).unwrap();
    assert!(d.operation("addNetwork").unwrap().properties.contains("networkid"));
}

// ---- descriptor rules, one test each ----

#[test]
fn unknown_top_level_key_is_refused() {
    assert_eq!(
        descriptor_error(&format!("{SMALL}lifecylce: [Install]\n")),
        "resource.yaml line 7 (lifecylce): unknown key \"lifecylce\"; allowed are name, description, \
         resource-manager-type, cloud-target, properties, lifecycle, operations, metrics, policies, capabilities, requirements"
    );
}

#[test]
fn unknown_property_key_is_refused() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  port:\n    type: string\n    requierd: true\n"),
        "resource.yaml line 5 (properties.port.requierd): unknown key \"requierd\"; allowed are type, description, \
         required, default, value, read-only, readOnly"
    );
}

#[test]
fn unknown_keys_in_operations_metrics_policies_are_refused() {
    let cases = [
        (
            "operations:\n  op:\n    descr: x\n",
            "line 9 (operations.op.descr): unknown key \"descr\"; allowed are description, properties",
        ),
        (
            "metrics:\n  m:\n    type: t\n    period: 5\n",
            "line 10 (metrics.m.period): unknown key \"period\"; allowed are type, publication-period",
        ),
        (
            "metrics: {m: {type: t}}\npolicies:\n  p: {metric: m, type: t, properties: {s: {val: 3}}}\n",
            "line 9 (policies.p.properties.s.val): unknown key \"val\"; allowed are value",
        ),
        (
            "capabilities:\n  c: {type: t, kind: x}\n",
            "line 8 (capabilities.c.kind): unknown key \"kind\"; allowed are type",
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(descriptor_error(&format!("{SMALL}{extra}")), format!("resource.yaml {expected}"));
    }
}

#[test]
fn unknown_property_type_is_refused() {
    let text =
        "name: resource::a::1.0\ndescription: x\nproperties:\n  host:\n    type: string\n  port:\n    type: strin\n";
    assert_eq!(
        descriptor_error(text),
        "resource.yaml line 7 (properties.port.type): unknown property type \"strin\"; known are string, password, \
         integer, float, boolean, timestamp, map, list, key"
    );
}

#[test]
fn missing_property_type_is_refused() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  port:\n    default: 1\n"),
        "resource.yaml line 3 (properties.port.type): type is missing"
    );
}

#[test]
fn non_boolean_flag_is_refused() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  port: {type: string, required: \"yes\"}\n"),
        "resource.yaml line 3 (properties.port.required): expected true or false, found \"yes\""
    );
}

#[test]
fn read_only_given_twice_is_refused() {
    assert_eq!(
        descriptor_error(
            "name: resource::a::1.0\nproperties:\n  id:\n    type: string\n    read-only: true\n    readOnly: true\n"
        ),
        "resource.yaml line 6 (properties.id.readOnly): read-only is given twice, as read-only and as readOnly"
    );
}

#[test]
fn collection_as_default_is_refused() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  m:\n    type: map\n    default:\n      a: 1\n"),
        "resource.yaml line 6 (properties.m.default): expected a single value, found a mapping"
    );
}

#[test]
fn bad_property_name_is_refused() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  \"my port\": {type: string}\n"),
        "resource.yaml line 3 (properties.my port): property name \"my port\" must start with a letter or '_' and \
         hold only letters, digits, '_', '-' and '.'"
    );
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  instance.name: {type: string}\n"),
        "resource.yaml line 3 (properties.instance.name): property name \"instance.name\" is reserved: \
         ${instance.…} names the instance"
    );
}

#[test]
fn unknown_transition_is_refused() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nlifecycle:\n  - Install\n  - install\n"),
        "resource.yaml line 4 (lifecycle[1]): unknown transition \"install\"; known are Install, Configure, Start, \
         Integrity, Stop, Reconfigure, Uninstall"
    );
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nlifecycle: [Transition::Install]\n"),
        "resource.yaml line 2 (lifecycle[0]): unknown transition \"Transition::Install\"; known are Install, \
         Configure, Start, Integrity, Stop, Reconfigure, Uninstall"
    );
}

#[test]
fn repeated_transition_is_refused() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nlifecycle:\n  - Install\n  - Uninstall\n  - Install\n"),
        "resource.yaml line 5 (lifecycle[2]): Install is listed twice (first at line 3)"
    );
}

#[test]
fn lifecycle_must_be_a_list() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nlifecycle: Install\n"),
        "resource.yaml line 2 (lifecycle): expected a list of transitions, found a single value"
    );
}

#[test]
fn malformed_name_is_refused() {
    assert_eq!(
        descriptor_error("description: x\nname: resource::my asterisk::1.0\n"),
        "resource.yaml line 2 (name): resource type \"resource::my asterisk::1.0\": the name must start with a \
         letter and hold only letters, digits, '_' and '-'"
    );
    assert_eq!(
        descriptor_error("description: x\n"),
        "resource.yaml line 1 (name): missing: resource::<name>::<version>"
    );
    assert_eq!(descriptor_error("name:\n"), "resource.yaml line 1 (name): a value is missing");
}

#[test]
fn duplicate_key_is_refused() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  port: {type: string}\n  host: {type: string}\n  port: {type: integer}\n"),
        "resource.yaml line 5 (properties.port): duplicate key \"port\" (first at line 3)"
    );
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nname: resource::b::1.0\n"),
        "resource.yaml line 2 (name): duplicate key \"name\" (first at line 1)"
    );
}

#[test]
fn anchors_and_aliases_are_refused() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  a: &p {type: string}\n  b: *p\n"),
        "resource.yaml line 3 (properties.a): anchors (`&name`) are not accepted"
    );
    let laughs = "a: &a [\"lol\",\"lol\"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n";
    assert!(descriptor_error(laughs).starts_with("resource.yaml line 1 (a): anchors"));
    assert!(parse_params(laughs).unwrap_err().to_string().starts_with("params line 1 (a): anchors"));
    // An alias without its anchor is a YAML error of its own.
    assert!(parse_params("a: *x\n").unwrap_err().to_string().starts_with("params line 1: "));
}

#[test]
fn tags_other_than_core_ones_are_refused() {
    assert_eq!(
        descriptor_error("name: !!python/object resource::a::1.0\n"),
        "resource.yaml line 1 (name): the tag !!python/object is not accepted"
    );
    // A core tag is fine; `!!str true` is text, not a boolean.
    assert_eq!(parse_params("a: !!str true\nb: !!int 5\n").unwrap(), map(&[("a", "true"), ("b", "5")]));
    assert!(descriptor_error("name: resource::a::1.0\nproperties:\n  p: {type: string, required: !!str true}\n")
        .ends_with("expected true or false, found \"true\""));
}

#[test]
fn read_only_property_is_never_required() {
    assert_eq!(
        descriptor_error(
            "name: resource::a::1.0\nproperties:\n  id:\n    type: string\n    read-only: true\n    required: true\n"
        ),
        "resource.yaml line 6 (properties.id.required): id is read-only and so cannot be required: the resource \
         manager sets it"
    );
    // The same rule for an operation's properties.
    assert_eq!(
        descriptor_error(
            "name: resource::a::1.0\noperations:\n  op:\n    properties:\n      id: {type: string, readOnly: true, required: true}\n"
        ),
        "resource.yaml line 5 (operations.op.properties.id.required): id is read-only and so cannot be required: \
         the resource manager sets it"
    );
}

#[test]
fn value_reference_must_name_a_declared_property() {
    assert_eq!(
        descriptor_error(
            "name: resource::a::1.0\nproperties:\n  url:\n    type: string\n    value: http://${host}:80\n"
        ),
        "resource.yaml line 5 (properties.url.value): ${host} does not name a declared property"
    );
    assert_eq!(
        descriptor_error(
            "name: resource::a::1.0\nproperties:\n  url:\n    type: string\n    value: \"${balancer.publicIp}\"\n"
        ),
        "resource.yaml line 5 (properties.url.value): ${balancer.publicIp} does not name a declared property"
    );
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  url:\n    type: string\n    value: \"${host\"\n"),
        "resource.yaml line 5 (properties.url.value): \"${host\" has a ${ without its closing }"
    );
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  url:\n    type: string\n    value: \"${}\"\n"),
        "resource.yaml line 5 (properties.url.value): ${} in \"${}\" does not name a property"
    );
}

#[test]
fn value_references_must_not_form_a_cycle() {
    let text = "name: resource::a::1.0
properties:
  x: {type: string}
  a: {type: string, value: '${b}'}
  b: {type: string, value: '${x}-${c}'}
  c: {type: string, value: '${a}'}
";
    assert_eq!(
        descriptor_error(text),
        "resource.yaml line 4 (properties.a.value): value references form a cycle: a -> b -> c -> a"
    );
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  a: {type: string, value: 'x${a}'}\n"),
        "resource.yaml line 3 (properties.a.value): value references form a cycle: a -> a"
    );
}

#[test]
fn docker_network_needs_its_ipaddr() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  docker_network: {type: string}\n  docker_network2: {type: string}\n  docker_ipaddr: {type: string, read-only: true}\n"),
        "resource.yaml line 4 (properties.docker_network2): docker_network2 needs a read-only docker_ipaddr2 property \
         for the address the container gets"
    );
}

#[test]
fn docker_ipaddr_needs_its_network() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  docker_ipaddr3: {type: string, read-only: true}\n"),
        "resource.yaml line 3 (properties.docker_ipaddr3): docker_ipaddr3 has no docker_network3 property to go with it"
    );
}

#[test]
fn docker_ipaddr_is_read_only() {
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties:\n  docker_network: {type: string}\n  docker_ipaddr: {type: string}\n"),
        "resource.yaml line 4 (properties.docker_ipaddr): docker_ipaddr must be read-only: the resource manager sets it"
    );
}

#[test]
fn docker_volume_default_is_volume_colon_path() {
    for bad in ["data", "data:relative", ":/data", "da ta:/data", "data:/a/../etc", "data:/a:ro"] {
        let text = format!(
            "name: resource::a::1.0\nproperties:\n  docker_volume2:\n    type: string\n    default: \"{bad}\"\n"
        );
        assert_eq!(
            descriptor_error(&text),
            format!(
                "resource.yaml line 5 (properties.docker_volume2.default): docker_volume2 default {bad:?} must look \
                 like <volume>:/absolute/path/in/the/container"
            )
        );
    }
    let good =
        "name: resource::a::1.0\nproperties:\n  docker_volume: {type: string, default: 'data-1:/var/lib/data'}\n";
    assert!(parse_descriptor("resource.yaml", good).is_ok());
    assert_eq!(volume_binding("data-1:/var/lib/data"), Some(("data-1", "/var/lib/data")));
}

#[test]
fn builtin_operation_needs_networkid() {
    assert_eq!(
        descriptor_error(&format!("{SMALL}operations:\n  addNetwork:\n    properties:\n      network: {{type: string}}\n")),
        "resource.yaml line 8 (operations.addNetwork): addNetwork is a built-in operation and takes a networkid property"
    );
}

#[test]
fn policy_metric_must_be_declared() {
    assert_eq!(
        descriptor_error(&format!("{SMALL}metrics:\n  load: {{type: metric::load}}\npolicies:\n  heal:\n    metric: h_integrity\n    type: policy::heal\n")),
        "resource.yaml line 11 (policies.heal.metric): metric \"h_integrity\" is not declared under metrics"
    );
}

#[test]
fn publication_period_is_a_positive_integer() {
    for bad in ["0", "\"-5\"", "five", "1.5", "\"\""] {
        let text = format!("{SMALL}metrics:\n  h:\n    type: metric::integrity\n    publication-period: {bad}\n");
        let shown = bad.trim_matches('"');
        assert_eq!(
            descriptor_error(&text),
            format!(
                "resource.yaml line 10 (metrics.h.publication-period): publication-period must be a positive whole \
                 number of seconds, found {shown:?}"
            )
        );
    }
    let text = format!("{SMALL}metrics:\n  h: {{type: metric::integrity, publication-period: 30}}\n");
    assert_eq!(parse_descriptor("resource.yaml", &text).unwrap().metrics["h"].publication_period, Some(30));
}

#[test]
fn wrong_shapes_are_refused() {
    assert_eq!(descriptor_error(""), "resource.yaml: the file is empty; a descriptor is expected");
    assert_eq!(descriptor_error("# nothing\n"), "resource.yaml: the file is empty; a descriptor is expected");
    assert_eq!(descriptor_error("- a\n- b\n"), "resource.yaml line 1: expected a descriptor (a mapping), found a list");
    assert_eq!(
        descriptor_error("name: resource::a::1.0\nproperties: [port]\n"),
        "resource.yaml line 2 (properties): expected a mapping, found a list"
    );
    assert_eq!(
        descriptor_error("name: resource::a::1.0\n---\nname: resource::b::1.0\n"),
        "resource.yaml line 2: a second YAML document (`---`); one document is expected"
    );
    assert_eq!(
        descriptor_error("name: resource::a::1.0\n[x]: 1\n"),
        "resource.yaml line 2: a key is a list; keys must be single values"
    );
    let deep = format!("name: resource::a::1.0\nproperties: {}{}\n", "[".repeat(40), "]".repeat(40));
    let deep = descriptor_error(&deep);
    assert!(
        deep.starts_with("resource.yaml line 2 (properties[0][0]")
            && deep.ends_with("]): nested deeper than 32 levels")
    );
    let huge = format!("name: resource::a::1.0\ndescription: \"{}\"\n", "x".repeat(MAX_FILE_BYTES));
    assert_eq!(descriptor_error(&huge), format!("resource.yaml: larger than {MAX_FILE_BYTES} bytes"));
    let broken = descriptor_error("name: resource::a::1.0\nproperties:\n  a: {type: string\n");
    assert!(broken.starts_with("resource.yaml line "), "{broken}");
}

// ---- lifecycle and operations maps ----

#[test]
fn seed_lifecycle_and_operations_maps_parse() {
    let lifecycle = parse_lifecycle_map(LIFECYCLE_FILE, ASTERISK_LIFECYCLE).unwrap();
    assert_eq!(lifecycle.len(), 7);
    assert_eq!(lifecycle[&Transition::Install], "/opt/lifecycle/install.sh");
    assert_eq!(lifecycle[&Transition::Reconfigure], "/opt/lifecycle/reconfigure.sh");
    let operations = parse_operations_map(OPERATIONS_FILE, ASTERISK_OPERATIONS).unwrap();
    assert_eq!(
        operations,
        map(&[
            ("addAsterisk", "/opt/lifecycle/addAsterisk.py"),
            ("removeAsterisk", "/opt/lifecycle/removeAsterisk.py")
        ])
    );
}

#[test]
fn lifecycle_map_rules() {
    let err = |text: &str| parse_lifecycle_map(LIFECYCLE_FILE, text).unwrap_err().to_string();
    assert_eq!(
        err("version: 1\nlifecycle:\n  instal: /opt/i.sh\n"),
        "lifecycle/lifecycle.yaml line 3 (lifecycle.instal): unknown transition \"instal\"; known are install, \
         configure, start, integrity, stop, reconfigure, uninstall"
    );
    assert_eq!(
        err("version: 1\nlifecycle:\n  install: opt/i.sh\n"),
        "lifecycle/lifecycle.yaml line 3 (lifecycle.install): script path \"opt/i.sh\" must be an absolute path \
         inside the container (start with /)"
    );
    assert_eq!(
        err("version: 1\nlifecycle:\n  install: /opt/../etc/i.sh\n"),
        "lifecycle/lifecycle.yaml line 3 (lifecycle.install): script path \"/opt/../etc/i.sh\" must not contain a .. \
         component"
    );
    assert_eq!(
        err("version: 1\nlifecycle:\n  install: \"/opt/i.sh\\0\"\n"),
        "lifecycle/lifecycle.yaml line 3 (lifecycle.install): script path \"/opt/i.sh\\0\" contains a NUL character"
    );
    assert_eq!(
        err("version: 1\nlifecycle:\n  install:\n"),
        "lifecycle/lifecycle.yaml line 3 (lifecycle.install): a value is missing"
    );
    assert_eq!(
        err("version: 2\nlifecycle: {}\n"),
        "lifecycle/lifecycle.yaml line 1 (version): version must be 1, found \"2\""
    );
    assert_eq!(
        err("version: 1\nlifecycle: {}\noperations: {}\n"),
        "lifecycle/lifecycle.yaml line 3 (operations): unknown key \"operations\"; allowed are version, lifecycle"
    );
    assert_eq!(err("version: 1\n"), "lifecycle/lifecycle.yaml line 1 (lifecycle): lifecycle is missing");
    assert_eq!(
        err("version: 1\nlifecycle:\n  install: /a\n  install: /b\n"),
        "lifecycle/lifecycle.yaml line 4 (lifecycle.install): duplicate key \"install\" (first at line 3)"
    );
    // version may be left out.
    assert_eq!(parse_lifecycle_map(LIFECYCLE_FILE, "lifecycle: {install: /i}").unwrap().len(), 1);
}

#[test]
fn operations_map_rules() {
    let err = |text: &str| parse_operations_map(OPERATIONS_FILE, text).unwrap_err().to_string();
    assert_eq!(
        err("version: 1\noperations:\n  add: [/a]\n"),
        "operations/operations.yaml line 3 (operations.add): expected a single value, found a list"
    );
    assert_eq!(
        err("operations:\n  \"add it\": /a\n"),
        "operations/operations.yaml line 2 (operations.add it): \"add it\" is not a valid name"
    );
}

// ---- package cross rules ----

#[test]
fn seed_asterisk_package_validates() {
    let package = validate_package(&asterisk_files()).unwrap();
    assert_eq!(package.lifecycle_script(Transition::Start), Some("/opt/lifecycle/start.sh"));
    assert_eq!(package.operation_script("removeAsterisk"), Some("/opt/lifecycle/removeAsterisk.py"));
    assert_eq!(package.descriptor.name.name(), "asterisk");
}

#[test]
fn install_and_uninstall_are_mandatory() {
    let mut files = asterisk_files();
    files.resource_yaml = ASTERISK.replace("  - Uninstall\n", "");
    files.lifecycle_yaml = Some(ASTERISK_LIFECYCLE.replace("  uninstall: /opt/lifecycle/uninstall.sh\n", ""));
    assert_eq!(
        package_error(&files),
        "resource.yaml line 25 (lifecycle): the lifecycle must list Uninstall (and Install and Uninstall both)"
    );
    files.resource_yaml = SMALL.replace("lifecycle: [Install, Uninstall]\n", "").replace("small", "asterisk");
    files.operations_yaml = None;
    assert_eq!(
        package_error(&files),
        "resource.yaml (lifecycle): the lifecycle must list Install (and Install and Uninstall both)"
    );
}

#[test]
fn listed_transition_needs_a_script() {
    let mut files = asterisk_files();
    files.lifecycle_yaml = Some(ASTERISK_LIFECYCLE.replace("  configure: /opt/lifecycle/configure.sh\n", ""));
    assert_eq!(
        package_error(&files),
        "lifecycle/lifecycle.yaml line 3 (lifecycle): no script for Configure (configure), which resource.yaml lists at line 27"
    );
}

#[test]
fn script_needs_a_listed_transition() {
    let mut files = asterisk_files();
    files.resource_yaml = ASTERISK.replace("  - Integrity\n", "");
    assert_eq!(
        package_error(&files),
        "lifecycle/lifecycle.yaml line 7 (lifecycle.integrity): a script for Integrity, which resource.yaml does not list in its lifecycle"
    );
}

#[test]
fn missing_lifecycle_file_is_refused() {
    let mut files = asterisk_files();
    files.lifecycle_yaml = None;
    assert_eq!(
        package_error(&files),
        "lifecycle/lifecycle.yaml: the file is missing; resource.yaml lists the transitions Install, Configure, Start, \
         Integrity, Stop, Reconfigure, Uninstall, each needs a script"
    );
}

#[test]
fn declared_operation_needs_a_script() {
    let mut files = asterisk_files();
    files.operations_yaml =
        Some(ASTERISK_OPERATIONS.replace("  removeAsterisk: /opt/lifecycle/removeAsterisk.py\n", ""));
    assert_eq!(
        package_error(&files),
        "operations/operations.yaml line 3 (operations): no script for the operation removeAsterisk, which resource.yaml declares at line 45"
    );
    files.operations_yaml = None;
    assert_eq!(
        package_error(&files),
        "operations/operations.yaml: the file is missing; resource.yaml declares the operations addAsterisk, \
         removeAsterisk, each needs a script"
    );
}

#[test]
fn script_needs_a_declared_operation() {
    let mut files = asterisk_files();
    files.operations_yaml = Some(format!("{ASTERISK_OPERATIONS}  dropAsterisk: /opt/lifecycle/drop.py\n"));
    assert_eq!(
        package_error(&files),
        "operations/operations.yaml line 6 (operations.dropAsterisk): a script for the operation dropAsterisk, which resource.yaml does not declare"
    );
}

#[test]
fn builtin_operations_take_no_script() {
    let declared = ASTERISK.replace(
        "metrics:\n",
        "  addNetwork:\n    properties:\n      networkid: {type: string, required: true}\nmetrics:\n",
    );
    let mut files = asterisk_files();
    files.resource_yaml = declared;
    let package = validate_package(&files).unwrap();
    assert!(package.descriptor.operation("addNetwork").is_some() && package.operation_script("addNetwork").is_none());
    files.operations_yaml = Some(format!("{ASTERISK_OPERATIONS}  addNetwork: /opt/lifecycle/add.sh\n"));
    assert_eq!(
        package_error(&files),
        "operations/operations.yaml line 6 (operations.addNetwork): addNetwork is built into the resource manager and takes no script"
    );
    assert!(is_builtin_operation("removeNetwork") && !is_builtin_operation("addAsterisk"));
}

#[test]
fn package_name_matches_its_directory() {
    let mut files = asterisk_files();
    files.dir_name = "asterisk2".into();
    assert_eq!(
        package_error(&files),
        "resource.yaml line 1 (name): the type resource::asterisk::1.0 does not match the package directory \
         \"asterisk2\"; it must be resource::asterisk2::<version>"
    );
}

#[test]
fn descriptor_errors_come_through_validate_package() {
    let mut files = asterisk_files();
    files.resource_yaml = ASTERISK.replace("    read-only: true\n  docker_network2", "  docker_network2");
    assert_eq!(
        package_error(&files),
        "resource.yaml line 9 (properties.docker_ipaddr): docker_ipaddr must be read-only: the resource manager sets it"
    );
}

// ---- property resolution ----

fn defs(text: &str) -> PropertyDefs {
    parse_descriptor("resource.yaml", &format!("name: resource::a::1.0\nproperties:\n{text}")).unwrap().properties
}

#[test]
fn defaults_fill_what_is_missing() {
    let defs = defs("  port: {type: string, default: 80}\n  host: {type: string, default: localhost}\n");
    let got = resolve_properties(&defs, &map(&[("port", "8080")]), &BTreeMap::new(), &instance()).unwrap();
    assert_eq!(got, map(&[("host", "localhost"), ("port", "8080")]));
}

#[test]
fn current_values_stay_and_requests_override_them() {
    let defs = defs("  port: {type: string, default: 80}\n  host: {type: string}\n");
    let current = map(&[("port", "81"), ("host", "a")]);
    let got = resolve_properties(&defs, &map(&[("host", "b")]), &current, &instance()).unwrap();
    assert_eq!(got, map(&[("host", "b"), ("port", "81")]));
}

#[test]
fn read_only_requests_are_ignored() {
    let defs = defs("  networkid: {type: string, read-only: true}\n");
    let current = map(&[("networkid", "abc")]);
    let got = resolve_properties(&defs, &map(&[("networkid", "forged")]), &current, &instance()).unwrap();
    assert_eq!(got, map(&[("networkid", "abc")]));
    let got = resolve_properties(&defs, &map(&[("networkid", "forged")]), &BTreeMap::new(), &instance()).unwrap();
    assert!(got.is_empty());
}

#[test]
fn value_expressions_use_instance_and_other_properties() {
    let defs = defs(
        "  url: {type: string, value: 'http://${host}:${port}/${instance.id}'}\n  \
         host: {type: string, value: '${instance.name}.local'}\n  port: {type: string, default: 80}\n  \
         cost: {type: string, value: '$5 ${port}'}\n",
    );
    let got = resolve_properties(&defs, &BTreeMap::new(), &BTreeMap::new(), &instance()).unwrap();
    assert_eq!(got["host"], "net1.local");
    assert_eq!(got["url"], "http://net1.local:80/0f3c");
    assert_eq!(got["cost"], "$5 80");
    // A requested value wins over the expression.
    let got = resolve_properties(&defs, &map(&[("host", "h")]), &BTreeMap::new(), &instance()).unwrap();
    assert_eq!(got["url"], "http://h:80/0f3c");
}

#[test]
fn builtin_network_name_defaults_to_the_instance_name() {
    let network = builtin_package(&TypeName::parse("resource::docker-network::1.0").unwrap()).unwrap();
    let got =
        resolve_properties(&network.descriptor.properties, &BTreeMap::new(), &BTreeMap::new(), &instance()).unwrap();
    assert_eq!(got, map(&[("gateway", "10.1.1.1"), ("networkname", "net1"), ("subnet", "10.1.1.0/24")]));
}

#[test]
fn missing_required_property_is_refused_with_the_reference_message() {
    let defs = defs("  host: {type: string}\n  ipaddr: {type: string, required: true}\n");
    let err = resolve_properties(&defs, &map(&[("host", "x")]), &BTreeMap::new(), &instance()).unwrap_err();
    assert_eq!(err, PropertyError::MissingRequired { name: "ipaddr".into() });
    assert_eq!(err.to_string(), "Missing mandatory property: ipaddr");
    // An empty value is a value.
    assert!(resolve_properties(&defs, &map(&[("ipaddr", "")]), &BTreeMap::new(), &instance()).is_ok());
}

#[test]
fn expression_over_a_missing_property_stays_missing() {
    let defs = defs("  host: {type: string}\n  url: {type: string, value: 'http://${host}', required: true}\n");
    let err = resolve_properties(&defs, &BTreeMap::new(), &BTreeMap::new(), &instance()).unwrap_err();
    assert_eq!(err.to_string(), "Missing mandatory property: url");
}

#[test]
fn cycles_are_refused_at_resolution_too() {
    // Definitions that did not come through parse_descriptor.
    let def = |value: &str| PropertyDef {
        kind: PropertyType::String,
        description: None,
        required: false,
        default: None,
        value: Some(value.into()),
        read_only: false,
    };
    let defs: PropertyDefs = [("a".to_owned(), def("${b}")), ("b".to_owned(), def("${a}"))].into_iter().collect();
    let err = resolve_properties(&defs, &BTreeMap::new(), &BTreeMap::new(), &instance()).unwrap_err();
    assert_eq!(err.to_string(), "the value expressions of properties form a cycle: a -> b -> a");
    // A requested value breaks the cycle.
    let got = resolve_properties(&defs, &map(&[("a", "1")]), &BTreeMap::new(), &instance()).unwrap();
    assert_eq!(got, map(&[("a", "1"), ("b", "1")]));
    let bad: PropertyDefs = [("a".to_owned(), def("${"))].into_iter().collect();
    assert!(matches!(
        resolve_properties(&bad, &BTreeMap::new(), &BTreeMap::new(), &instance()),
        Err(PropertyError::BadValue { .. })
    ));
}

#[test]
fn undeclared_requested_properties_pass_through() {
    let defs = defs("  host: {type: string}\n");
    let got = resolve_properties(&defs, &map(&[("extra", "1")]), &BTreeMap::new(), &instance()).unwrap();
    assert_eq!(got, map(&[("extra", "1")]));
}

#[test]
fn operation_properties_resolve_the_same_way() {
    let d = parse_descriptor("resource.yaml", ASTERISK).unwrap();
    let op = &d.operation("addAsterisk").unwrap().properties;
    let got = resolve_properties(op, &map(&[("ipaddr", "10.0.0.5")]), &BTreeMap::new(), &instance()).unwrap();
    assert_eq!(got, map(&[("ipaddr", "10.0.0.5"), ("port", "5060")]));
    let err = resolve_properties(op, &BTreeMap::new(), &BTreeMap::new(), &instance()).unwrap_err();
    assert_eq!(err.to_string(), "Missing mandatory property: ipaddr");
}

#[test]
fn secrets_are_masked() {
    let defs = defs("  user: {type: string}\n  pass: {type: password}\n");
    let shown = mask_secrets(&defs, &map(&[("user", "admin"), ("pass", "s3cret"), ("other", "x")]));
    assert_eq!(shown, map(&[("other", "x"), ("pass", SECRET_MASK), ("user", "admin")]));
    assert_eq!(SECRET_MASK, "********");
    assert!(defs.is_secret("pass") && !defs.is_secret("user"));
}

// ---- params files ----

/// What a std-only reader of [`render_params`]'s output needs: split each
/// line at `": "` between the two quoted strings and undo the escapes.
fn tiny_reader(text: &str) -> BTreeMap<String, String> {
    fn unquote(chars: &mut std::str::Chars<'_>) -> String {
        assert_eq!(chars.next(), Some('"'));
        let mut out = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => return out,
                '\\' => match chars.next().unwrap() {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        panic!("unterminated string");
    }
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut chars = line.chars();
        let key = unquote(&mut chars);
        assert_eq!((chars.next(), chars.next()), (Some(':'), Some(' ')));
        let value = unquote(&mut chars);
        assert_eq!(chars.next(), None);
        out.insert(key, value);
    }
    out
}

fn hostile_params() -> BTreeMap<String, String> {
    map(&[
        ("plain", "hello world"),
        ("quotes", r#"it's "quoted""#),
        ("colon", "a: b, c:d"),
        ("hash", "# not a comment #x"),
        ("spaces", "  leading and trailing  "),
        ("newlines", "line1\nline2\r\nline3\n"),
        ("tabs", "\tcol1\tcol2\t"),
        ("backslash", r"C:\path\to\n and \\ and \u0041"),
        ("emoji", "caf\u{e9} \u{1F600} \u{4E2D}\u{6587} \u{0928}\u{092E}\u{0938}\u{094D}\u{0924}\u{0947}"),
        ("empty", ""),
        ("key.with.dots", "v"),
        ("controls", "\u{0}\u{7}\u{1b}[0m\u{7f}\u{85}\u{2028}\u{2029}\u{feff}"),
        ("yamlish", "- [a, {b: c}] & *alias !tag %YAML ---"),
        ("number", "007"),
        ("bool", "true"),
        ("null", "null"),
        ("tilde", "~"),
        ("", "empty key"),
        ("key with \"quotes\" and: colon", "x"),
    ])
}

#[test]
fn params_round_trip() {
    let params = hostile_params();
    let text = render_params(&params);
    assert!(text.starts_with("# written by berth\n"));
    assert_eq!(parse_params(&text).unwrap(), params);
    assert_eq!(tiny_reader(&text), params);
    assert_eq!(text.lines().count(), params.len() + 1, "one line per entry");
    assert_eq!(parse_params(&render_params(&BTreeMap::new())).unwrap(), BTreeMap::new());
}

#[test]
fn params_render_canonically() {
    let text = render_params(&map(&[("b", "caf\u{e9} \"x\"\\\n\u{1}"), ("a", "1")]));
    assert_eq!(text, "# written by berth\n\"a\": \"1\"\n\"b\": \"caf\u{e9} \\\"x\\\"\\\\\\n\\u0001\"\n");
}

#[test]
fn params_read_any_yaml_mapping_of_single_values() {
    let text = "# rewritten by setProperty
port: 5060
ratio: 1.50
enabled: true
nothing:
tilde: ~
'single': 'it''s'
folded: >
  a
  b
literal: |
  x
  y
flow: {inner: 1}
";
    assert_eq!(
        parse_params(text).unwrap_err().to_string(),
        "params line 14 (flow): the value is a mapping; params hold single values only"
    );
    let got = parse_params(&text.replace("flow: {inner: 1}\n", "")).unwrap();
    assert_eq!(
        got,
        map(&[
            ("enabled", "true"),
            ("folded", "a b\n"),
            ("literal", "x\ny\n"),
            ("nothing", ""),
            ("port", "5060"),
            ("ratio", "1.50"),
            ("single", "it's"),
            ("tilde", ""),
        ])
    );
    assert_eq!(parse_params("{a: 1, b: two}").unwrap(), map(&[("a", "1"), ("b", "two")]));
    assert_eq!(parse_params("").unwrap(), BTreeMap::new());
    assert_eq!(
        parse_params("a: [1]\n").unwrap_err().to_string(),
        "params line 1 (a): the value is a list; params hold single values only"
    );
    assert_eq!(
        parse_params("- a\n").unwrap_err().to_string(),
        "params line 1: expected a mapping of names to values, found a list"
    );
    assert_eq!(
        parse_params("a: 1\na: 2\n").unwrap_err().to_string(),
        "params line 2 (a): duplicate key \"a\" (first at line 1)"
    );
}

#[test]
fn a_large_descriptor_costs_linear_time() {
    // 20,000 properties, each computed from the next one: near the size limit.
    let count = 20_000;
    let mut text = String::from("name: resource::big::1.0\nproperties:\n");
    for i in 0..count {
        text.push_str(&format!("  p{i}: {{type: string, value: '${{p{}}}'}}\n", i + 1));
    }
    text.push_str(&format!("  p{count}: {{type: string, default: end}}\n"));
    assert!(text.len() < MAX_FILE_BYTES);
    let started = std::time::Instant::now();
    let d = parse_descriptor("resource.yaml", &text).unwrap();
    let got = resolve_properties(&d.properties, &BTreeMap::new(), &BTreeMap::new(), &instance()).unwrap();
    assert_eq!(got["p0"], "end");
    // Generous even for an unoptimised build on a busy machine; a quadratic pass would take minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
}

#[test]
fn expressions_that_repeat_each_other_are_bounded() {
    let mut text = String::from("name: resource::laughs::1.0\nproperties:\n  p40: {type: string, default: lol}\n");
    for i in (0..40).rev() {
        text.push_str(&format!("  p{i}: {{type: string, value: '${{p{n}}}${{p{n}}}'}}\n", n = i + 1));
    }
    let d = parse_descriptor("resource.yaml", &text).unwrap();
    let err = resolve_properties(&d.properties, &BTreeMap::new(), &BTreeMap::new(), &instance()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("property p22: the value expressions produce more than {MAX_COMPUTED_BYTES} bytes")
    );
}

// ---- hostile input never panics ----

#[test]
fn bad_input_never_panics() {
    let mut inputs: Vec<String> = [
        "",
        "\0",
        "\u{feff}",
        ":",
        "- -",
        "? ",
        "!!",
        "&",
        "*",
        "%YAML 1.2\n---\n",
        "%TAG ! tag:x,2000:\n--- !a b",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "|",
        ">",
        "a: |\n b\nc",
        "a:\n\t- b",
        "a: b: c",
        "---\n...\n---\n",
        "\u{85}\u{2028}",
        "a: \"\\",
        "a: \"\\u12\"",
        "a: \"\\UFFFFFFFF\"",
        "? [a]\n: b",
        "a: !<tag:yaml.org,2002:str> b",
        "name: resource::a::1.0\nlifecycle: [Install, [Uninstall]]\n",
        "name: [resource::a::1.0]\n",
        "name: resource::a::1.0\nproperties:\n  p: 1\n",
        "name: resource::a::1.0\noperations: [a]\n",
        "name: resource::a::1.0\npolicies: {p: {metric: [m]}}\n",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // Every prefix of the real descriptor, cut at a character boundary.
    inputs.extend(ASTERISK.char_indices().map(|(i, _)| ASTERISK[..i].to_owned()));
    // Pseudo-random YAML-ish noise (a fixed LCG, so failures reproduce).
    let alphabet: Vec<char> = "ab: -[]{},'\"\\\n\t#&*!|>?%@`~0.$é😀".chars().collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..2000 {
        let len = (seed >> 59) as usize + 1;
        let mut s = String::new();
        for _ in 0..len * 4 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            s.push(alphabet[(seed >> 33) as usize % alphabet.len()]);
        }
        inputs.push(s);
    }
    for input in &inputs {
        let _ = parse_descriptor("resource.yaml", input);
        let _ = parse_lifecycle_map(LIFECYCLE_FILE, input);
        let _ = parse_operations_map(OPERATIONS_FILE, input);
        let _ = parse_params(input);
        let _ = validate_package(&PackageFiles {
            dir_name: "a".into(),
            resource_yaml: input.clone(),
            lifecycle_yaml: Some(input.clone()),
            operations_yaml: Some(input.clone()),
        });
    }
}
