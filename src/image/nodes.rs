//! Which nodes already have an image: `Node.status.images[].names` lists every name the
//! runtime knows an image by (tags and `@sha256:` digests), fully qualified.

use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use crate::render::ImageRef;

/// `docker.io`'s other names.
fn canonical_registry(registry: &str) -> &str {
    match registry {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

/// True when `name` (as a node lists it) is `image`: same registry and repository, and the
/// same digest when `image` pins one, else the same tag (`latest` when none).
pub fn same_image(image: &ImageRef, name: &str) -> bool {
    let Ok(other) = ImageRef::parse(name) else {
        return false;
    };
    if canonical_registry(&image.registry) != canonical_registry(&other.registry)
        || image.repository != other.repository
    {
        return false;
    }
    match &image.digest {
        Some(digest) => other.digest.as_deref() == Some(digest),
        None => {
            other.digest.is_none()
                && image.tag.as_deref().unwrap_or("latest")
                    == other.tag.as_deref().unwrap_or("latest")
        }
    }
}

/// Where an image is among the nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    pub nodes: usize,
    /// Names of the nodes that have it.
    pub on: Vec<String>,
}

impl Presence {
    /// On every node (and there is at least one).
    pub fn everywhere(&self) -> bool {
        self.nodes > 0 && self.on.len() == self.nodes
    }
}

pub fn presence(image: &ImageRef, nodes: &[Node]) -> Presence {
    let mut out = Presence {
        nodes: nodes.len(),
        on: Vec::new(),
    };
    for node in nodes {
        let images = node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let has = images.iter().any(|i| {
            i.names
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|n| same_image(image, n))
        });
        if has {
            out.on
                .push(node.metadata.name.clone().unwrap_or_else(|| "?".into()));
        }
    }
    out
}

/// Every container image of the rendered objects (pod templates and pods, init containers
/// included), each once, in order of appearance.
pub fn images_of(objects: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for o in objects {
        let spec = if o["kind"] == "Pod" {
            &o["spec"]
        } else if o["kind"] == "CronJob" {
            &o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        } else {
            &o["spec"]["template"]["spec"]
        };
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().map(Vec::as_slice).unwrap_or_default() {
                if let Some(image) = c["image"].as_str() {
                    if !out.iter().any(|i| i == image) {
                        out.push(image.to_string());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn names_match_as_runtimes_write_them() {
        let img = r("registry.k8s.io/metrics-server/metrics-server:v0.9.0");
        assert!(same_image(
            &img,
            "registry.k8s.io/metrics-server/metrics-server:v0.9.0"
        ));
        assert!(!same_image(
            &img,
            "registry.k8s.io/metrics-server/metrics-server:v0.8.0"
        ));
        assert!(!same_image(
            &img,
            "registry.k8s.io/metrics-server/metrics-server@sha256:abc"
        ));
        let hub = r("kaddons/metrics-server:0.1.0");
        assert!(same_image(&hub, "docker.io/kaddons/metrics-server:0.1.0"));
        assert!(same_image(
            &hub,
            "index.docker.io/kaddons/metrics-server:0.1.0"
        ));
        let pinned = r("registry.k8s.io/pause@sha256:abc");
        assert!(same_image(&pinned, "registry.k8s.io/pause@sha256:abc"));
        assert!(!same_image(&pinned, "registry.k8s.io/pause:3.9"));
        assert!(same_image(
            &r("busybox"),
            "docker.io/library/busybox:latest"
        ));
    }

    #[test]
    fn images_of_pod_templates() {
        let objects = vec![
            json!({"kind": "Deployment", "spec": {"template": {"spec": {
                "initContainers": [{"image": "a:1"}],
                "containers": [{"image": "b:1"}, {"image": "a:1"}]}}}}),
            json!({"kind": "Service", "spec": {}}),
            json!({"kind": "Pod", "spec": {"containers": [{"image": "c:1"}]}}),
        ];
        assert_eq!(images_of(&objects), ["a:1", "b:1", "c:1"]);
    }

    #[test]
    fn presence_needs_every_node() {
        let node = |name: &str, names: &[&str]| -> Node {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"images": [{"names": names}]}
            }))
            .unwrap()
        };
        let img = r("docker.io/kaddons/metrics-server:0.1.0");
        let nodes = [
            node("a", &["docker.io/kaddons/metrics-server:0.1.0"]),
            node("b", &["registry.k8s.io/pause:3.9"]),
        ];
        let p = presence(&img, &nodes);
        assert_eq!(p.on, ["a"]);
        assert!(!p.everywhere());
        assert!(presence(&img, &nodes[..1]).everywhere());
        assert!(!presence(&img, &[]).everywhere());
    }
}
