//! The API server's defaults in a ReplicaSet's pod template, taken out again.
//!
//! A revision is identified by the hash of its template as the user wrote
//! it, but a ReplicaSet's stored template carries the defaults the API
//! server filled in (`imagePullPolicy`, `dnsPolicy`, `protocol: TCP`, …),
//! and server-side apply even records them as the applier's fields. So
//! `undo` removes the fields that hold their default value — keeping those
//! the current template also spells out, since a user who writes a default
//! tends to write it everywhere — and checks the result against the
//! revision's hash.

use serde_json::{Map, Value, json};

/// Pod-level defaults.
const POD: &[(&str, &str)] = &[
    ("dnsPolicy", "\"ClusterFirst\""),
    ("restartPolicy", "\"Always\""),
    ("schedulerName", "\"default-scheduler\""),
    ("securityContext", "{}"),
    ("terminationGracePeriodSeconds", "30"),
];
/// Container defaults (`imagePullPolicy` is handled apart: it depends on the tag).
const CONTAINER: &[(&str, &str)] = &[
    ("terminationMessagePath", "\"/dev/termination-log\""),
    ("terminationMessagePolicy", "\"File\""),
    ("resources", "{}"),
];
/// Probe defaults.
const PROBE: &[(&str, &str)] = &[
    ("timeoutSeconds", "1"),
    ("periodSeconds", "10"),
    ("successThreshold", "1"),
    ("failureThreshold", "3"),
];

/// `template` without its defaulted fields; with `reference` (the current
/// template), a default it also writes at the same place is kept.
pub fn strip(template: &Value, reference: Option<&Value>) -> Value {
    let mut out = template.clone();
    let empty = Value::Null;
    let reference = reference.unwrap_or(&empty);
    let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) else {
        return out;
    };
    let ref_spec = &reference["spec"];
    remove(spec, ref_spec, POD);
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut() {
            let name = container["name"].clone();
            let ref_container = by(&ref_spec[list], "name", &name);
            let Some(c) = container.as_object_mut() else {
                continue;
            };
            remove(c, ref_container, CONTAINER);
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let pull = if image_is_latest(image) {
                "Always"
            } else {
                "IfNotPresent"
            };
            remove(
                c,
                ref_container,
                &[("imagePullPolicy", &format!("{pull:?}"))],
            );
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut() {
                    let ref_port = by(
                        &ref_container["ports"],
                        "containerPort",
                        &port["containerPort"],
                    );
                    if let Some(p) = port.as_object_mut() {
                        remove(p, ref_port, &[("protocol", "\"TCP\"")]);
                    }
                }
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let ref_probe = &ref_container[probe];
                if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
                    remove(p, ref_probe, PROBE);
                    if let Some(get) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                        remove(get, &ref_probe["httpGet"], &[("scheme", "\"HTTP\"")]);
                    }
                }
            }
            if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
                for var in env.iter_mut() {
                    let ref_var = by(&ref_container["env"], "name", &var["name"]);
                    if let Some(field) = var
                        .pointer_mut("/valueFrom/fieldRef")
                        .and_then(Value::as_object_mut)
                    {
                        remove(
                            field,
                            &ref_var["valueFrom"]["fieldRef"],
                            &[("apiVersion", "\"v1\"")],
                        );
                    }
                }
            }
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for volume in volumes.iter_mut() {
            let ref_volume = by(&ref_spec["volumes"], "name", &volume["name"]).clone();
            for source in ["configMap", "secret", "projected", "downwardAPI"] {
                if let Some(s) = volume.get_mut(source).and_then(Value::as_object_mut) {
                    remove(s, &ref_volume[source], &[("defaultMode", "420")]);
                }
            }
        }
    }
    out
}

/// Remove each `(key, default)` of `object` whose value is the default,
/// unless `reference` has the same key with the same value.
fn remove(object: &mut Map<String, Value>, reference: &Value, defaults: &[(&str, &str)]) {
    for (key, default) in defaults {
        let default: Value = serde_json::from_str(default).unwrap_or(json!(null));
        if object.get(*key) == Some(&default) && reference.get(*key) != Some(&default) {
            object.remove(*key);
        }
    }
}

/// The element of the list `list` whose `key` is `value`, or null.
fn by<'a>(list: &'a Value, key: &str, value: &Value) -> &'a Value {
    const NULL: &Value = &Value::Null;
    list.as_array()
        .and_then(|items| items.iter().find(|i| i.get(key) == Some(value)))
        .unwrap_or(NULL)
}

/// Kubernetes pulls `:latest` and untagged images always.
fn image_is_latest(image: &str) -> bool {
    let name = image.split('@').next().unwrap_or(image);
    if image.contains('@') {
        return false;
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_go_unless_the_current_template_writes_them_too() {
        let stored = json!({"metadata": {"labels": {"app": "api"}}, "spec": {
            "containers": [{"name": "api", "image": "api:2.4.0", "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}], "resources": {},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 5}}],
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "securityContext": {}, "terminationGracePeriodSeconds": 30}});
        let written = json!({"metadata": {"labels": {"app": "api"}}, "spec": {
            "containers": [{"name": "api", "image": "api:2.4.0",
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5}}]}});
        assert_eq!(strip(&stored, None), written);
        // The current template writes `terminationGracePeriodSeconds: 30`: kept.
        let mut current = written.clone();
        current["spec"]["terminationGracePeriodSeconds"] = json!(30);
        assert_eq!(strip(&stored, Some(&current)), current);
        // Not a default: kept.
        let mut grace = stored.clone();
        grace["spec"]["terminationGracePeriodSeconds"] = json!(5);
        assert_eq!(
            strip(&grace, None)["spec"]["terminationGracePeriodSeconds"],
            5
        );
    }

    #[test]
    fn latest_and_untagged_images_are_pulled_always() {
        for (image, latest) in [
            ("web", true),
            ("web:latest", true),
            ("r:5000/web", true),
            ("r:5000/web:1", false),
            ("web@sha256:ab", false),
        ] {
            assert_eq!(image_is_latest(image), latest, "{image}");
        }
    }
}
