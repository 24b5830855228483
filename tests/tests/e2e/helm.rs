//! The Helm chart (`helm/guichet`), checked with Helm's own Go SDK (the `helm-python-sdk`
//! wheel from PyPI, which bundles it: no helm binary, nothing downloaded at test time) and the
//! Kubernetes API schemas of `kubernetes-validate`, in strict mode, through
//! `tests/interop/helm/helm_check.py` in the venv the test command prepares. For the chart's
//! defaults and each example values file of `helm/guichet/ci`: the values pass the schema, the
//! chart lints and renders, every object is valid for the oldest and newest supported
//! Kubernetes, and the Guichet configuration in the rendered ConfigMap passes the real
//! `guichet check`, run with only the environment the Deployment sets and the files its volumes
//! provide. A chart that renders a configuration Guichet refuses fails here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use base64::Engine;
use serde_norway::Value;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    workspace().join("helm/guichet")
}

/// The driver, run by the venv's Python.
fn helm_check(args: &[&str]) -> Output {
    let interop = workspace().join("tests/interop/helm");
    let python = interop.join(".venv/bin/python");
    assert!(
        python.exists(),
        "helm-python-sdk and kubernetes-validate are not installed: run scripts/test.sh or \
         scripts/helm-check.sh --setup (they create {})",
        python.display()
    );
    Command::new(python)
        .arg(interop.join("helm_check.py"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("run helm_check.py")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The chart rendered with these arguments (values files, `--set`), after every check of the
/// driver passed: its objects, in the driver's order.
fn render(args: &[&str]) -> Vec<Value> {
    let out = tempfile::tempdir().unwrap();
    let manifests = out.path().join("manifests.yaml");
    let mut all = vec!["check", "--out", manifests.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = helm_check(&all);
    assert!(
        output.status.success(),
        "helm_check.py {}:\n{}{}",
        args.join(" "),
        text(&output.stdout),
        text(&output.stderr)
    );
    let stream = std::fs::read_to_string(&manifests).unwrap();
    format!("\n{stream}")
        .split("\n---\n")
        .filter(|document| !document.trim().is_empty())
        .map(|document| serde_norway::from_str(document).unwrap())
        .collect()
}

/// What the chart refuses: the driver's failure message.
fn refusal(values: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).unwrap();
    let output = helm_check(&["check", "-f", file.to_str().unwrap()]);
    assert!(
        !output.status.success(),
        "values accepted:\n{values}\n{}",
        text(&output.stdout)
    );
    text(&output.stderr)
}

fn str_of<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    lookup(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string", path.join(".")))
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |node, key| match node {
        Value::Sequence(items) => &items[key.parse::<usize>().expect("an index")],
        _ => node
            .get(*key)
            .unwrap_or_else(|| panic!("no {} in {value:?}", path.join("."))),
    })
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| str_of(o, &["kind"]) == kind && str_of(o, &["metadata", "name"]) == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

fn kinds(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                str_of(o, &["kind"]),
                str_of(o, &["metadata", "name"])
            )
        })
        .collect()
}

/// The Guichet container of the release's Deployment.
fn gateway_container(objects: &[Value]) -> &Value {
    let deployment = find(objects, "Deployment", "guichet");
    lookup(deployment, &["spec", "template", "spec", "containers"])
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| str_of(c, &["name"]) == "guichet")
        .expect("the guichet container")
}

/// A plausible value for each variable the Deployment sets, as its Secret would hold it; the
/// Redis URL is a TLS one when the configuration gives Redis a CA.
fn plausible(name: &str, config: &Value) -> String {
    if name.starts_with("GUICHET_SESSION_KEY") {
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    } else if name == "GUICHET_REDIS_URL" {
        let store = lookup(config, &["session", "store"]);
        match store.get("ca_file") {
            Some(_) => "rediss://redis.guichet.test:6380/0".into(),
            None => "redis://redis.guichet.test:6379/0".into(),
        }
    } else {
        format!("test-secret-{}", name.to_lowercase())
    }
}

fn rewrite_paths(node: &mut Value, from: &str, to: &str) {
    match node {
        Value::String(s) if s.starts_with(from) => *s = format!("{to}{}", &s[from.len()..]),
        Value::Mapping(map) => map.values_mut().for_each(|v| rewrite_paths(v, from, to)),
        Value::Sequence(items) => items.iter_mut().for_each(|v| rewrite_paths(v, from, to)),
        _ => {}
    }
}

/// Runs the real `guichet check` on the configuration the chart rendered, the way the pod
/// would: /etc/guichet holds what the Deployment's configuration volume projects (the
/// ConfigMap's files, and a CA where it mounts one from a Secret or ConfigMap of yours), and
/// the environment is exactly the Deployment's `env`, each secret a plausible value.
fn guichet_check(objects: &[Value]) -> Output {
    let config_map = find(objects, "ConfigMap", "guichet");
    let etc = tempfile::tempdir().unwrap();
    let etc_dir = format!("{}/", etc.path().display());
    let data = lookup(config_map, &["data"]).as_mapping().unwrap();
    for (name, content) in data {
        let name = name.as_str().unwrap();
        if name != "guichet.yaml" {
            std::fs::write(etc.path().join(name), content.as_str().unwrap()).unwrap();
        }
    }
    let deployment = find(objects, "Deployment", "guichet");
    let volumes = lookup(deployment, &["spec", "template", "spec", "volumes"]);
    let config_volume = volumes
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| str_of(v, &["name"]) == "config")
        .expect("the config volume");
    let pki = guichet_tests::tls::TestPki::new();
    for source in lookup(config_volume, &["projected", "sources"])
        .as_sequence()
        .unwrap()
    {
        let items = ["secret", "configMap"]
            .iter()
            .filter_map(|kind| source.get(*kind).and_then(|s| s.get("items")))
            .flat_map(|items| items.as_sequence().unwrap());
        for item in items {
            // Projected from a Secret or ConfigMap the chart does not make: in the chart,
            // only a CA (redis.external.tls.ca).
            let path = etc.path().join(str_of(item, &["path"]));
            assert!(path.ends_with("ca.crt"), "{path:?}");
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &pki.ca_pem).unwrap();
        }
    }
    let mut config: Value =
        serde_norway::from_str(str_of(config_map, &["data", "guichet.yaml"])).unwrap();
    rewrite_paths(&mut config, "/etc/guichet/", &etc_dir);
    let config_file = etc.path().join("guichet.yaml");
    std::fs::write(&config_file, serde_norway::to_string(&config).unwrap()).unwrap();

    let mut env = BTreeMap::new();
    let container = gateway_container(objects);
    for variable in container
        .get("env")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = str_of(variable, &["name"]);
        let value = match variable.get("value") {
            Some(value) => value.as_str().unwrap().to_owned(),
            None => plausible(name, &config),
        };
        env.insert(name.to_owned(), value);
    }
    Command::new(guichet_tests::guichet_binary())
        .args(["check", "--config"])
        .arg(&config_file)
        .env_clear()
        .envs(&env)
        .output()
        .expect("run guichet check")
}

fn assert_guichet_accepts(objects: &[Value], what: &str) {
    let output = guichet_check(objects);
    assert!(
        output.status.success(),
        "guichet check refuses the configuration the chart renders from {what}:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn ci_values(name: &str) -> String {
    chart().join("ci").join(name).display().to_string()
}

#[test]
fn the_defaults_install_a_trial_with_the_embedded_redis() {
    let objects = render(&[]);
    assert_guichet_accepts(&objects, "the default values");
    let redis = find(&objects, "Deployment", "guichet-redis");
    let pod = lookup(redis, &["spec", "template", "spec"]);
    assert_eq!(
        str_of(pod, &["containers", "0", "image"]),
        "docker.io/library/redis:7-alpine"
    );
    assert_eq!(
        lookup(pod, &["securityContext", "runAsNonRoot"]),
        &Value::Bool(true)
    );
    // Redis sessions, the URL and the key from chart-made Secrets.
    let config: Value = serde_norway::from_str(str_of(
        find(&objects, "ConfigMap", "guichet"),
        &["data", "guichet.yaml"],
    ))
    .unwrap();
    assert_eq!(str_of(&config, &["session", "store", "kind"]), "redis");
    assert_eq!(str_of(&config, &["listen", "0", "address"]), "0.0.0.0:8080");
    assert_eq!(str_of(&config, &["admin"]), "0.0.0.0:9180");
    let session = find(&objects, "Secret", "guichet-session");
    let key = base64::engine::general_purpose::STANDARD
        .decode(str_of(session, &["data", "session-key"]))
        .unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("the session key is base64");
    assert_eq!(key.len(), 32);
}

#[test]
fn the_minimal_values_render_a_configuration_guichet_accepts() {
    let objects = render(&["-f", &ci_values("minimal-values.yaml")]);
    assert_guichet_accepts(&objects, "ci/minimal-values.yaml");
    let ingress = find(&objects, "Ingress", "guichet");
    assert_eq!(
        str_of(ingress, &["spec", "rules", "0", "host"]),
        "wiki.example.org"
    );
}

#[test]
fn the_production_ha_values_render_a_configuration_guichet_accepts() {
    let objects = render(&["-f", &ci_values("production-ha-values.yaml")]);
    // The shape the values promise.
    let hpa = find(&objects, "HorizontalPodAutoscaler", "guichet");
    assert_eq!(lookup(hpa, &["spec", "minReplicas"]).as_u64(), Some(3));
    let pdb = find(&objects, "PodDisruptionBudget", "guichet");
    assert_eq!(lookup(pdb, &["spec", "minAvailable"]).as_u64(), Some(2));
    find(&objects, "NetworkPolicy", "guichet");
    find(&objects, "ServiceMonitor", "guichet");
    let ingress = find(&objects, "Ingress", "guichet");
    assert_eq!(
        str_of(ingress, &["spec", "tls", "0", "secretName"]),
        "guichet-tls"
    );
    let deployment = find(&objects, "Deployment", "guichet");
    assert!(
        lookup(deployment, &["spec"]).get("replicas").is_none(),
        "the HPA owns the count"
    );
    let pod = lookup(deployment, &["spec", "template", "spec"]);
    let spread: Vec<&str> = lookup(pod, &["topologySpreadConstraints"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| str_of(c, &["topologyKey"]))
        .collect();
    assert_eq!(
        spread,
        ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    );
    let container = gateway_container(&objects);
    assert_eq!(
        lookup(container, &["lifecycle", "preStop", "sleep", "seconds"]).as_u64(),
        Some(15)
    );
    assert_eq!(
        lookup(container, &["securityContext", "readOnlyRootFilesystem"]),
        &Value::Bool(true)
    );
    assert!(
        !kinds(&objects).iter().any(|k| k.starts_with("Secret/")),
        "every secret is an existing one: {:?}",
        kinds(&objects)
    );
    let config: Value = serde_norway::from_str(str_of(
        find(&objects, "ConfigMap", "guichet"),
        &["data", "guichet.yaml"],
    ))
    .unwrap();
    assert_eq!(
        str_of(&config, &["session", "store", "sentinel", "master_name"]),
        "guichet"
    );
    assert_guichet_accepts(&objects, "ci/production-ha-values.yaml");
}

#[test]
fn the_existing_secret_values_render_a_configuration_guichet_accepts() {
    let objects = render(&["-f", &ci_values("existing-secret-values.yaml")]);
    assert!(
        !kinds(&objects).iter().any(|k| k.starts_with("Secret/")),
        "no Secret made by the chart: {:?}",
        kinds(&objects)
    );
    let container = gateway_container(&objects);
    let refs: Vec<(String, String)> = lookup(container, &["env"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                str_of(e, &["name"]).to_owned(),
                str_of(e, &["valueFrom", "secretKeyRef", "name"]).to_owned(),
            )
        })
        .collect();
    for (variable, secret) in [
        ("GUICHET_SESSION_KEY", "guichet-session-keys"),
        ("GUICHET_SESSION_KEY_PREVIOUS", "guichet-session-keys"),
        ("GUICHET_REDIS_URL", "guichet-redis"),
        ("GUICHET_REDIS_USERNAME", "guichet-redis"),
        ("GUICHET_REDIS_PASSWORD", "guichet-redis"),
        ("GUICHET_STAFF_SSO_SECRET", "guichet-idp"),
        ("GUICHET_SCIM_TOKEN", "guichet-idp"),
    ] {
        assert!(
            refs.contains(&(variable.to_owned(), secret.to_owned())),
            "{variable} from {secret}: {refs:?}"
        );
    }
    assert_guichet_accepts(&objects, "ci/existing-secret-values.yaml");
}

#[test]
fn values_the_schema_refuses_fail_with_the_path_of_the_bad_value() {
    let error = refusal("replicaCount: three\n");
    assert!(error.contains("at '/replicaCount'"), "{error}");
    assert!(error.contains("want integer"), "{error}");
    // A typo in a key, at the top and deeper.
    let error = refusal("replicaCunt: 3\n");
    assert!(
        error.contains("additional properties 'replicaCunt' not allowed"),
        "{error}"
    );
    let error = refusal("redis:\n  external:\n    sentinel:\n      masterNmae: guichet\n");
    assert!(
        error.contains("at '/redis/external/sentinel': additional properties 'masterNmae'"),
        "{error}"
    );
    let error = refusal("sessionKey:\n  value: not-32-bytes\n");
    assert!(error.contains("at '/sessionKey/value'"), "{error}");
    let error = refusal("ingress:\n  hosts:\n    - host: a.example.org\n      paths:\n        - { path: /, pathType: Prefixe }\n");
    assert!(
        error.contains("at '/ingress/hosts/0/paths/0/pathType'"),
        "{error}"
    );
}

#[test]
fn contradictory_values_fail_with_a_message_naming_them() {
    let error = refusal("redis:\n  external:\n    enabled: true\n    url: redis://r:6379/0\n");
    assert!(
        error.contains("redis.embedded.enabled and redis.external.enabled are both true"),
        "{error}"
    );
    let error = refusal("replicaCount: 3\nredis:\n  embedded:\n    enabled: false\n");
    assert!(
        error.contains("sessions in memory cannot be shared by several replicas"),
        "{error}"
    );
    let error = refusal("config:\n  listen: [{ address: '0.0.0.0:80' }]\n");
    assert!(
        error.contains("config.listen is set by the chart"),
        "{error}"
    );
    // The grace period must cover the preStop sleep and Guichet's own drain after SIGTERM.
    let error = refusal("preStop:\n  sleepSeconds: 30\nterminationGracePeriodSeconds: 20\n");
    assert!(
        error.contains(
            "terminationGracePeriodSeconds (20) must exceed preStop.sleepSeconds (30) + \
             config.shutdown (10 s"
        ),
        "{error}"
    );
    let error = refusal("config:\n  shutdown: { drain_timeout: 1m }\n");
    assert!(
        error.contains(
            "terminationGracePeriodSeconds (45) must exceed preStop.sleepSeconds (10) + \
             config.shutdown (60 s"
        ),
        "{error}"
    );
}

#[test]
fn a_configuration_change_rolls_the_pods_and_generated_secrets_do_not() {
    fn checksums(objects: &[Value]) -> (String, String) {
        let annotations = lookup(
            find(objects, "Deployment", "guichet"),
            &["spec", "template", "metadata", "annotations"],
        );
        (
            str_of(annotations, &["checksum/config"]).to_owned(),
            str_of(annotations, &["checksum/secret"]).to_owned(),
        )
    }
    fn session_key(objects: &[Value]) -> String {
        str_of(
            find(objects, "Secret", "guichet-session"),
            &["data", "session-key"],
        )
        .to_owned()
    }
    let (first, second) = (render(&[]), render(&[]));
    // Offline, each render generates a new session key (a cluster's would be read back), yet
    // the pods are the same: generated secrets never roll them.
    assert_ne!(session_key(&first), session_key(&second));
    assert_eq!(
        checksums(&first),
        checksums(&second),
        "same values, same pods"
    );
    let changed = render(&["--set", "config.log.level=debug"]);
    assert_ne!(
        checksums(&first).0,
        checksums(&changed).0,
        "a new configuration rolls the pods"
    );
    let new_secret = render(&[
        "--set",
        "sessionKey.value=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ]);
    assert_ne!(
        checksums(&first).1,
        checksums(&new_secret).1,
        "a secret given to the chart rolls the pods"
    );
}

#[test]
fn the_chart_readme_lists_every_value() {
    let readme = chart().join("README.md");
    let output = helm_check(&["values-table", "--check", readme.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}
