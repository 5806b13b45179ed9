//! The resource manager's logic against the complete fake engine: a scripted
//! type's Install through its scripts and params files, and the journal's
//! rule at every crash point of an Install and an Uninstall.

use crate::config::Settings;
use crate::resources::onboarding::{LABEL_DIGEST, PUBLISHED};
use crate::resources::packages::image_tag;
use crate::testing::{at_every_crash_point, boxed, Fixture, Given};
use berth_api::RmTransitionRequest;
use berth_core::resource::{validate_package, PackageFiles, TypeName};
use berth_store::{now_ms, StoredType};
use berth_testkit::fake::{ExecScript, FakeImage};
use std::collections::BTreeMap;
use std::sync::Arc;

const TYPE: &str = "resource::unit::1.0";
const DESCRIPTOR: &str = "name: resource::unit::1.0\nproperties:\n  color:\n    type: string\n    required: true\n  pass:\n    type: password\n    default: pw\nlifecycle:\n  - Install\n  - Start\n  - Uninstall\n";
const LIFECYCLE: &str = "version: 1\nlifecycle:\n  install: /opt/l/install.sh\n  start: /opt/l/start.sh\n  uninstall: /opt/l/uninstall.sh\n";

/// A fixture whose store has the type and whose engine has its image; the
/// install script "writes" a property back through the params file.
fn fixture() -> Fixture {
    let f = Fixture::new(Settings::default());
    let files = PackageFiles {
        dir_name: "unit".into(),
        resource_yaml: DESCRIPTOR.into(),
        lifecycle_yaml: Some(LIFECYCLE.into()),
        operations_yaml: None,
    };
    let package = validate_package(&files).unwrap();
    let stored = StoredType {
        name: TYPE.into(),
        descriptor: DESCRIPTOR.into(),
        state: PUBLISHED.into(),
        digest: "d1".into(),
        image: image_tag(&TypeName::parse(TYPE).unwrap()),
        package: serde_json::to_value(&package).unwrap(),
        created_at: now_ms(),
        updated_at: now_ms(),
    };
    f.store().put_type(&stored).unwrap();
    f.engine.add_image(FakeImage::new("sha256:unit").tag("dockerrm_unit:latest").label(LABEL_DIGEST, "d1").dir("/opt"));
    let engine = f.engine.clone();
    f.engine.on_exec_default(move |request| {
        if request.argv == ["/opt/l/install.sh"] {
            // What `setProperty installed yes` leaves in the file.
            for c in engine.containers() {
                engine.put_file(
                    &c.id,
                    "/opt/rmparams",
                    "\"color\": \"blue\"\n\"installed\": \"yes\"\n\"pass\": \"pw\"\n",
                );
            }
        }
        ExecScript::exit(0)
    });
    f
}

fn install() -> RmTransitionRequest {
    RmTransitionRequest {
        deployment_location: Some("local".into()),
        resource_type: Some(TYPE.into()),
        transition_name: Some("Install".into()),
        resource_name: Some("one".into()),
        properties: BTreeMap::from([("color".to_owned(), serde_json::json!("blue"))]),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_install_runs_its_script_and_reads_the_properties_back() {
    let f = fixture();
    let daemon = f.started(crate::journal::crash::CrashPoints::off()).await;
    let accepted = daemon.resources.accept(install(), BTreeMap::new()).await.unwrap();
    daemon.resources.running.idle().await;
    let request = f.store().resource_request(&accepted.request_id).unwrap().unwrap();
    assert_eq!(request.state, "COMPLETED", "{request:?}");
    assert_eq!(request.properties.get("pass"), None, "only what was asked is recorded");
    let instance = f.store().resource_instance(&accepted.resource_id).unwrap().unwrap();
    assert_eq!(instance.properties["installed"], "yes");
    assert_eq!(instance.state, "Inactive");
    let container = f.engine.container(instance.container.as_deref().unwrap()).unwrap();
    assert!(container.config.options.env.contains(&"RM_PROP_color=blue".to_owned()));
    // The params were written before the script ran, as YAML.
    let execs: Vec<_> = f.engine.execs().into_iter().map(|e| e.argv).collect();
    assert_eq!(execs, vec![vec!["/opt/l/install.sh".to_owned()]]);
    // A second Install of the name is refused; so is an unknown transition.
    assert!(daemon.resources.accept(install(), BTreeMap::new()).await.is_err());
}

#[tokio::test]
async fn install_and_uninstall_at_every_crash_point() {
    at_every_crash_point(
        fixture,
        |_| Arc::new(()) as Given,
        |_, daemon, _| {
            boxed(async move {
                if let Ok(accepted) = daemon.resources.accept(install(), BTreeMap::new()).await {
                    daemon.resources.running.idle().await;
                    let uninstall = RmTransitionRequest {
                        resource_id: Some(accepted.resource_id),
                        transition_name: Some("Uninstall".into()),
                        ..Default::default()
                    };
                    if let Ok(_accepted) = daemon.resources.accept(uninstall, BTreeMap::new()).await {
                        daemon.resources.running.idle().await;
                    }
                }
            })
        },
        |f, point, _committed, _| {
            let store = f.store();
            let instances: Vec<_> =
                store.resource_instances(None).unwrap().into_iter().filter(|i| !i.discovered).collect();
            // Every request has ended; none is left open.
            for i in &instances {
                for r in store.requests_of(&i.id).unwrap() {
                    assert!(r.is_finished(), "{point}: {r:?}");
                }
            }
            match instances.as_slice() {
                // Nothing is left, or the installed instance with its one container.
                [] => assert!(f.engine.containers().is_empty(), "{point}: {:?}", f.engine.containers()),
                [one] => {
                    assert_eq!(f.engine.containers().len(), 1, "{point}: {one:?}");
                    assert_eq!(one.state, "Inactive", "{point}");
                }
                more => panic!("{point}: {more:?}"),
            }
        },
    )
    .await;
}
