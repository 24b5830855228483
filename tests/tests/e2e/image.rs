//! The container image, built the way CI builds it (`scripts/image.sh`: the runtime tree of the
//! Dockerfile's last stage, turned into an OCI image by buildah without pulling anything) and
//! run with podman: its binary checks the shipped examples and serves as UID 65532 on a root
//! file system that is read-only with nothing mounted writable, the tree holds no shell and
//! nothing the user may write, the image is the tree, and its configuration is the
//! Dockerfile's. See docs/container.md.
//!
//! The release binary is built by the script (`cargo build --release --locked`, a no-op when it
//! is fresh: the test command builds it before the tests, so that no release build runs beside
//! them).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use guichet_tests::free_port;
use guichet_tests::saml_idp::{SamlIdp, TestKey};
use serde_json::Value as Json;
use serde_norway::Value;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn report(output: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// Fails, naming the Debian package to install, when a tool is missing: never a silent skip.
fn require(tool: &str, package: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| dir.join(tool).is_file());
    assert!(
        found,
        "{tool} is not installed: the image test needs the Debian package {package} \
         (scripts/test.sh installs it: apt-get install {package})"
    );
}

/// The image built by `scripts/image.sh` into a temporary directory, under a name of its own;
/// removed when dropped.
struct Image {
    tag: String,
    dir: tempfile::TempDir,
}

impl Image {
    fn build() -> Image {
        for (tool, package) in [
            ("buildah", "buildah"),
            ("podman", "podman"),
            ("runc", "runc"),
            ("strip", "binutils"),
            ("ldd", "libc-bin"),
            ("dpkg-query", "dpkg"),
        ] {
            require(tool, package);
        }
        remove_images_of_dead_runs();
        let dir = tempfile::tempdir().unwrap();
        let tag = format!("localhost/guichet-e2e-{}:test", std::process::id());
        let image = Image { tag, dir };
        let output = Command::new(workspace().join("scripts/image.sh"))
            .arg("--tree")
            .arg(image.tree())
            .args(["--tag", &image.tag])
            .current_dir(workspace())
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/image.sh");
        assert!(
            output.status.success(),
            "scripts/image.sh: {}",
            report(&output)
        );
        // The script's own run of the image: `check` on the minimal example.
        assert!(
            text(&output.stdout).contains("examples/minimal.yaml: configuration is valid"),
            "scripts/image.sh did not run the image's check: {}",
            report(&output)
        );
        image
    }

    fn tree(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// The images of earlier runs that were killed before removing theirs (their process is gone).
fn remove_images_of_dead_runs() {
    let Ok(images) = Command::new("podman")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .args(["--filter", "reference=localhost/guichet-e2e-*"])
        .output()
    else {
        return;
    };
    for tag in text(&images.stdout).lines() {
        let pid = tag
            .strip_prefix("localhost/guichet-e2e-")
            .and_then(|rest| rest.split(':').next());
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = Command::new("podman")
                .args(["rmi", "--force", tag])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rmi", "--force", &self.tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `podman run` as CI can: runc (crun refuses hybrid cgroup hierarchies), resource limits at
/// most at the current ones (raising them needs CAP_SYS_RESOURCE), no network unless asked, no
/// capability, no privilege gain, and a read-only root with no tmpfs at all (podman mounts one
/// on /tmp, /var/tmp and /run by default): nothing in the container is writable.
fn podman_run(name: Option<&str>, options: &[&str]) -> Command {
    let nofile = soft_limit("Max open files").unwrap_or(1024).min(65536);
    let nproc = soft_limit("Max processes").unwrap_or(1024).min(4096);
    let mut command = Command::new("podman");
    command.args([
        "--runtime",
        "runc",
        "run",
        "--rm",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
    ]);
    command.arg(format!("--ulimit=nofile={nofile}:{nofile}"));
    command.arg(format!("--ulimit=nproc={nproc}:{nproc}"));
    if let Some(name) = name {
        command.args(["--name", name]);
    }
    if !options.contains(&"--network") {
        command.args(["--network", "none"]);
    }
    command.args(options).stdin(Stdio::null());
    command
}

/// This process's soft limit named `name` in /proc/self/limits (`Max open files`...).
fn soft_limit(name: &str) -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with(name))?;
    match line[name.len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        number => number.parse().ok(),
    }
}

/// One entry of a file tree: kind, permission bits, owner, and the link target or file size.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    detail: String,
}

/// Every entry under `root` (not `root` itself), by path relative to it; links not followed.
fn listing(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, entries: &mut BTreeMap<String, Entry>) {
        for item in std::fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            let kind = if metadata.file_type().is_symlink() {
                'l'
            } else if metadata.is_dir() {
                'd'
            } else if metadata.is_file() {
                '-'
            } else {
                '?'
            };
            let detail = match kind {
                'l' => std::fs::read_link(&path).unwrap().display().to_string(),
                '-' => metadata.len().to_string(),
                _ => String::new(),
            };
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            entries.insert(
                relative,
                Entry {
                    kind,
                    mode: metadata.permissions().mode() & 0o7777,
                    uid: metadata.uid(),
                    gid: metadata.gid(),
                    detail,
                },
            );
            if kind == 'd' {
                walk(root, &path, entries);
            }
        }
    }
    let mut entries = BTreeMap::new();
    walk(root, root, &mut entries);
    entries
}

/// Where `relative` leads inside the tree `root`, symbolic links resolved as the container
/// would (absolute targets from the tree's root), or None when it leads nowhere.
fn resolve_in(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut pending: Vec<String> = relative
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_owned)
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = root.join(resolved.join("/")).join(&component);
        let metadata = std::fs::symlink_metadata(&candidate).ok()?;
        if metadata.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = std::fs::read_link(&candidate).ok()?;
            let target = target.display().to_string();
            if target.starts_with('/') {
                resolved.clear();
            }
            pending.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(str::to_owned),
            );
        } else {
            resolved.push(component);
        }
    }
    let path = root.join(resolved.join("/"));
    path.exists().then_some(path)
}

/// The tree: root's alone, nothing the user 65532 may write but the (empty, sticky) /tmp mount
/// point, no shell or other program, every link resolving inside it, and what the image needs.
fn assert_tree(tree: &Path) {
    let entries = listing(tree);
    assert!(
        entries.contains_key("usr/local/bin/guichet"),
        "no binary: {entries:#?}"
    );
    for (path, entry) in &entries {
        assert_eq!(
            (entry.uid, entry.gid),
            (0, 0),
            "{path} is not owned by root: {entry:?}"
        );
        assert_eq!(entry.mode & 0o6000, 0, "{path} is setuid or setgid");
        if path == "tmp" {
            assert_eq!(
                entry.mode, 0o1777,
                "/tmp is the world-writable, sticky mount point"
            );
            continue;
        }
        if entry.kind != 'l' {
            assert_eq!(
                entry.mode & 0o022,
                0,
                "{path} is writable by others than root: {:o}",
                entry.mode
            );
        }
        let name = path.rsplit('/').next().unwrap();
        assert!(
            !["sh", "bash", "dash", "ash", "zsh", "busybox", "toybox", "nologin"].contains(&name),
            "{path}: the image has no shell"
        );
        if entry.kind == '-' && entry.mode & 0o111 != 0 {
            assert!(
                path == "usr/local/bin/guichet" || name.contains(".so"),
                "{path} is a program other than guichet"
            );
        }
        if entry.kind == 'l' {
            assert!(
                resolve_in(tree, path).is_some(),
                "{path} -> {} leads outside the tree",
                entry.detail
            );
        }
    }
    assert!(
        !entries.keys().any(|path| path.starts_with("tmp/")),
        "/tmp is empty in the image"
    );
    for absent in ["bin", "sbin", "usr/bin", "usr/sbin", "bin/sh"] {
        assert!(
            resolve_in(tree, absent).is_none(),
            "/{absent} exists: the image has no shell nor system programs"
        );
    }
    // The binary's interpreter is where the binary says it is.
    assert!(
        resolve_in(tree, "lib64/ld-linux-x86-64.so.2").is_some() || !cfg!(target_arch = "x86_64"),
        "the dynamic loader"
    );
    let passwd = std::fs::read_to_string(tree.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|line| line.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(tree.join("etc/group")).unwrap();
    assert!(
        group.lines().any(|line| line == "nonroot:x:65532:"),
        "{group}"
    );
    assert!(
        std::fs::metadata(tree.join("etc/ssl/certs/ca-certificates.crt"))
            .unwrap()
            .len()
            > 10_000,
        "CA certificates"
    );
    assert_eq!(
        std::fs::read_dir(tree.join("etc/guichet")).unwrap().count(),
        0,
        "/etc/guichet is the configuration's empty mount point"
    );
    for example in ["minimal.yaml", "guichet.yaml", "users.yaml", "people.yaml"] {
        let shipped = std::fs::read(tree.join("usr/share/guichet/examples").join(example));
        let source = std::fs::read(workspace().join("examples").join(example)).unwrap();
        assert_eq!(
            shipped.ok(),
            Some(source),
            "examples/{example} in the image"
        );
    }
    // Scanners find what was copied from Debian packages.
    for package in [
        "libc6",
        "libssl3",
        "libxml2",
        "libxmlsec1",
        "libxmlsec1-openssl",
    ] {
        let record =
            std::fs::read_to_string(tree.join("var/lib/dpkg/status.d").join(package)).unwrap();
        assert!(
            record.contains(&format!("Package: {package}\n")),
            "{record}"
        );
        assert!(record.contains("\nVersion: "), "{record}");
    }
}

/// The last stage of the Dockerfile, its instructions joined across continuation lines.
fn dockerfile_runtime_stage() -> Vec<(String, String)> {
    let dockerfile = std::fs::read_to_string(workspace().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
        instructions.push((keyword.to_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    let last_from = instructions
        .iter()
        .rposition(|(keyword, _)| keyword == "FROM")
        .expect("a FROM");
    instructions.split_off(last_from)
}

/// `key="value" key2="value2"` of a LABEL instruction.
fn labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').expect("key=value");
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').expect("closing quote");
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        labels.insert(key.trim().to_owned(), value.to_owned());
        rest = next.trim();
    }
    labels
}

/// The image's configuration is the Dockerfile's runtime stage: base, files, user, working
/// directory, ports, entrypoint, command and labels.
fn assert_config_matches_the_dockerfile(config: &Json) {
    let stage = dockerfile_runtime_stage();
    let get = |keyword: &str| -> Vec<&str> {
        stage
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, rest)| rest.as_str())
            .collect()
    };
    assert_eq!(
        get("FROM"),
        ["scratch"],
        "the runtime stage is the tree alone"
    );
    assert_eq!(get("COPY"), ["--from=build /rootfs/ /"]);
    let dockerfile = std::fs::read_to_string(workspace().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("scripts/image.sh --tree-only /rootfs"),
        "the Dockerfile builds /rootfs with scripts/image.sh"
    );
    assert_eq!(config["User"], get("USER")[0], "{config}");
    assert_eq!(config["WorkingDir"], get("WORKDIR")[0], "{config}");
    let ports: Vec<String> = get("EXPOSE")
        .iter()
        .flat_map(|ports| ports.split_whitespace())
        .map(|port| format!("{port}/tcp"))
        .collect();
    let mut exposed: Vec<String> = config["ExposedPorts"]
        .as_object()
        .expect("exposed ports")
        .keys()
        .cloned()
        .collect();
    exposed.sort();
    assert_eq!(exposed, ports);
    for keyword in ["ENTRYPOINT", "CMD"] {
        let declared: Json = serde_json::from_str(get(keyword)[0]).unwrap();
        let key = if keyword == "CMD" {
            "Cmd"
        } else {
            "Entrypoint"
        };
        assert_eq!(config[key], declared, "{keyword}");
    }
    assert_eq!(config["Entrypoint"][0], "/usr/local/bin/guichet");
    assert!(
        get("HEALTHCHECK").is_empty(),
        "no HEALTHCHECK: Kubernetes probes"
    );
    assert!(config.get("Healthcheck").is_none_or(Json::is_null));

    let declared = labels(&get("LABEL").join(" "));
    let image_labels = config["Labels"].as_object().expect("labels");
    for (key, value) in &declared {
        let built = image_labels
            .get(key)
            .and_then(Json::as_str)
            .unwrap_or_else(|| panic!("label {key} missing from the built image: {config}"));
        if !value.contains("${") {
            assert_eq!(built, value, "label {key}");
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(image_labels["org.opencontainers.image.version"], version);
    assert!(
        get("ARG").contains(&format!("VERSION={version}").as_str()),
        "the Dockerfile's default VERSION is the workspace's ({version})"
    );
}

/// What the production example reads besides its file: its environment (as a Secret would give
/// it) and the files of its Secret mounted at /run/secrets/guichet, written into `secrets`;
/// and the `--set` that point its SAML provider at the federation metadata in that Secret.
fn production_inputs(saml: &SamlIdp, secrets: &Path) -> (Vec<String>, Vec<String>) {
    let example = workspace().join("examples/guichet.yaml");
    let document: Value =
        serde_norway::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let write = |name: &str, content: String| {
        let path = secrets.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    write("fcplus-enc-2026-07.pem", guichet_tests::keys::ec_pem());
    write(
        "federation-metadata-signer.pem",
        saml.metadata_signing_certificate_pem(),
    );
    write("saml-sp.key", TestKey::sp().private_key_pem());
    write("saml-sp.crt", TestKey::sp().cert_pem());
    write(
        "federation-metadata.xml",
        saml.signed_federation_metadata_xml(),
    );
    std::fs::set_permissions(secrets, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut env = Vec::new();
    collect_env(&document, &mut env);
    let env = env
        .into_iter()
        .map(|name| {
            let value = if name.ends_with("REDIS_URL") {
                "redis://redis:6379/0".to_owned()
            } else if name.ends_with("SESSION_KEY") {
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()
            } else {
                format!("value-of-{name}")
            };
            format!("{name}={value}")
        })
        .collect();
    let saml_index = document["providers"]
        .as_sequence()
        .unwrap()
        .iter()
        .position(|provider| provider["kind"].as_str() == Some("saml"))
        .expect("the production example has a SAML provider");
    let overrides = vec![
        format!(
            "providers[{saml_index}].idp_metadata={{ file: /run/secrets/guichet/federation-metadata.xml }}"
        ),
        format!("providers[{saml_index}].idp_entity_id={}", saml.entity_id()),
    ];
    (env, overrides)
}

fn collect_env(node: &Value, names: &mut Vec<String>) {
    match node {
        Value::Mapping(map) => {
            if let (1, Some(Value::String(name))) = (map.len(), map.get("env")) {
                names.push(name.clone());
            }
            map.values().for_each(|value| collect_env(value, names));
        }
        Value::Sequence(items) => items.iter().for_each(|value| collect_env(value, names)),
        _ => {}
    }
}

/// The status code of `GET http://address/path`, or None when nothing answers.
fn http_status(address: &str, path: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut status_line = Vec::new();
    let mut byte = [0u8; 1];
    while !status_line.ends_with(b"\r\n") && stream.read(&mut byte).ok()? == 1 {
        status_line.push(byte[0]);
    }
    text(&status_line).split_whitespace().nth(1)?.parse().ok()
}

/// A `podman run` in the background, stopped and removed when dropped.
struct Running {
    name: String,
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "--force", "--time", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_built_without_a_registry_runs_as_nonroot_on_a_read_only_root() {
    let saml = SamlIdp::start().await;
    tokio::task::spawn_blocking(move || image_checks(&saml))
        .await
        .unwrap();
}

fn image_checks(saml: &SamlIdp) {
    let image = Image::build();
    let tree = image.tree();
    assert_tree(&tree);

    // The image is the tree, file for file, with the Dockerfile's configuration.
    let inspect = Command::new("podman")
        .args(["image", "inspect", &image.tag])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", report(&inspect));
    let inspected: Json = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_config_matches_the_dockerfile(&inspected[0]["Config"]);
    let mount = Command::new("podman")
        .args(["image", "mount", &image.tag])
        .output()
        .unwrap();
    assert!(mount.status.success(), "{}", report(&mount));
    let root = PathBuf::from(text(&mount.stdout).trim());
    let in_image = listing(&root);
    let _ = Command::new("podman")
        .args(["image", "unmount", &image.tag])
        .output();
    let in_tree = listing(&tree);
    assert_eq!(
        in_image.keys().collect::<Vec<_>>(),
        in_tree.keys().collect::<Vec<_>>(),
        "the image's files are the tree's"
    );
    for (path, entry) in &in_tree {
        assert_eq!(&in_image[path], entry, "{path} in the image");
    }

    // `guichet --version`, with nothing writable and no network.
    let version = podman_run(None, &[&image.tag, "--version"])
        .output()
        .unwrap();
    assert!(version.status.success(), "{}", report(&version));
    assert_eq!(
        text(&version.stdout).trim(),
        format!("guichet {}", env!("CARGO_PKG_VERSION"))
    );

    // `check` on the minimal example, from the examples' directory (they name files relative
    // to the repository root).
    let check = podman_run(None, &["--workdir", "/usr/share/guichet", &image.tag])
        .args(["check", "--config", "examples/minimal.yaml"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", report(&check));

    // `check` on the production example with its Secret mounted and its environment set: the
    // SAML federation metadata is verified (xmlsec and OpenSSL from the image), the keys read.
    let secrets = tempfile::tempdir().unwrap();
    let (env, overrides) = production_inputs(saml, secrets.path());
    let volume = format!("{}:/run/secrets/guichet:ro", secrets.path().display());
    let mut options = vec!["--workdir", "/usr/share/guichet", "--volume", &volume];
    for variable in &env {
        options.extend(["--env", variable]);
    }
    options.push(&image.tag);
    let mut production = podman_run(None, &options);
    production.args([
        "check",
        "--config",
        "/usr/share/guichet/examples/guichet.yaml",
    ]);
    for set in &overrides {
        production.args(["--set", set]);
    }
    let production = production.output().unwrap();
    assert!(
        production.status.success(),
        "check of the production example in the image: {}",
        report(&production)
    );
    assert!(text(&production.stdout).contains("configuration is valid"));

    // A wrong key is refused in the image too (the check is real).
    std::fs::write(secrets.path().join("saml-sp.key"), "not a key").unwrap();
    let mut refused = podman_run(None, &options);
    refused.args([
        "check",
        "--config",
        "/usr/share/guichet/examples/guichet.yaml",
    ]);
    for set in &overrides {
        refused.args(["--set", set]);
    }
    let refused = refused.output().unwrap();
    assert!(!refused.status.success(), "{}", report(&refused));

    // `run`: serves as 65532, writing nothing (no tmpfs), until SIGTERM stops it cleanly.
    let (port, admin_port) = (free_port(), free_port());
    let name = format!("guichet-e2e-run-{}", std::process::id());
    let listen = format!("listen[0].address=127.0.0.1:{port}");
    let admin = format!("admin=127.0.0.1:{admin_port}");
    let child = podman_run(
        Some(&name),
        &[
            "--network",
            "host",
            "--workdir",
            "/usr/share/guichet",
            &image.tag,
            "run",
            "--config",
            "examples/minimal.yaml",
            "--set",
            &listen,
            "--set",
            &admin,
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut running = Running { name, child };
    let admin_address = format!("127.0.0.1:{admin_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(&admin_address, "/readyz") != Some(200) {
        if let Some(status) = running.child.try_wait().unwrap() {
            let mut output = String::new();
            let _ = running
                .child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut output);
            panic!("guichet run in the image exited ({status}): {output}");
        }
        assert!(
            Instant::now() < deadline,
            "guichet run in the image is not ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = Command::new("podman")
        .args(["inspect", "--format", "{{.State.Pid}}", &running.name])
        .output()
        .unwrap();
    let pid = text(&pid.stdout).trim().to_owned();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .unwrap();
    assert_eq!(
        uid.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4],
        "the process runs as the image's user"
    );
    let answer = http_status(&format!("127.0.0.1:{port}"), "/");
    assert!(
        answer.is_some_and(|status| status < 500),
        "the proxy answers: {answer:?}"
    );
    let stop = Command::new("podman")
        .args(["kill", "--signal", "TERM", &running.name])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{}", report(&stop));
    let exit = wait_for_exit(&mut running.child, Duration::from_secs(30))
        .expect("guichet stops on SIGTERM");
    let mut output = String::new();
    let _ = running
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output);
    assert!(exit.success(), "exit after SIGTERM: {exit}: {output}");
    assert!(
        !output.contains("Read-only file system"),
        "guichet tried to write: {output}"
    );
}
