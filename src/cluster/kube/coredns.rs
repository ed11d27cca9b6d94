//! devenv's zone in the cluster's CoreDNS: its server block in the Corefile (between marker
//! comments, everything else untouched), its zone file as a key of ConfigMap `kube-system/coredns`,
//! that key mounted into the CoreDNS pods, and a rollout when anything changed.
//!
//! Not for: writing the server block or the zone (that is `render::cluster`, from devenv's record
//! table); this module only places them.
//!
//! How the Deployment is changed, and why so: kubeadm (and so kind) declares CoreDNS's config
//! volume as `config-volume` from ConfigMap `coredns` with `items: [{key: Corefile, path:
//! Corefile}]`, so a new key is not mounted until it is listed there. devenv server-side applies
//! only the fields it owns: the pod template's zone-hash annotation, and that one volume. Pod
//! volumes are an associative list keyed by `name` (`+listType=map`, `+listMapKey=name`), so
//! applying one entry merges into the live list and leaves the other volumes alone. A
//! ConfigMap volume's `items` is `+listType=atomic`: an applier owns the whole list, so devenv
//! sends the live items plus its own (never only its own, which would unmount the Corefile) and
//! takes the list over with `force`. The typed Deployment always carries `spec.selector`
//! (atomic, and immutable in apps/v1), so devenv sends the live selector unchanged; and
//! `containers: []` (an associative list) merges to the live containers.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, KeyToPath, PodSpec, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use sha2::{Digest, Sha256};

use super::{Kube, ObjectName};
use crate::error::Failure;
use crate::render::cluster::coredns::{CONFIG_MAP, COREFILE_KEY, NAMESPACE};

/// The line before devenv's server block in the Corefile.
pub const BLOCK_BEGIN: &str =
    "# BEGIN devenv: the lines up to END devenv are replaced by `devenv up`";
/// The line after devenv's server block in the Corefile.
pub const BLOCK_END: &str = "# END devenv";
/// The CoreDNS pod-template annotation holding a hash of devenv's part of the configuration;
/// changing it is what rolls the pods out.
pub const ZONE_HASH_ANNOTATION: &str = "dev.devenv.zone-hash";

/// The name of both CoreDNS's ConfigMap and its Deployment (as kubeadm creates them).
const COREDNS: &str = CONFIG_MAP;

/// `corefile` with `block` between devenv's marker lines: an earlier devenv block is replaced,
/// otherwise the block is appended. Everything outside the markers stays byte for byte.
///
/// Markers that do not pair up (one without the other, or several) are an error rather than a
/// guess at what to replace.
pub fn merge_corefile(corefile: &str, block: &str) -> anyhow::Result<String> {
    if block
        .lines()
        .any(|l| l.trim() == BLOCK_BEGIN || l.trim() == BLOCK_END)
    {
        anyhow::bail!("devenv's CoreDNS server block must not contain devenv's marker lines");
    }
    let mut section = format!("{BLOCK_BEGIN}\n{block}");
    if !block.ends_with('\n') {
        section.push('\n');
    }
    section.push_str(BLOCK_END);
    section.push('\n');

    let mut begins = Vec::new();
    let mut ends = Vec::new();
    let mut offset = 0;
    for line in corefile.split_inclusive('\n') {
        if line.trim() == BLOCK_BEGIN {
            begins.push(offset);
        } else if line.trim() == BLOCK_END {
            ends.push(offset + line.len());
        }
        offset += line.len();
    }
    match (begins.as_slice(), ends.as_slice()) {
        ([], []) => {
            let mut out = corefile.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&section);
            Ok(out)
        }
        ([begin], [end]) if begin < end => Ok(format!(
            "{}{section}{}",
            &corefile[..*begin],
            &corefile[*end..]
        )),
        _ => anyhow::bail!(
            "the Corefile has {} `{BLOCK_BEGIN}` and {} `{BLOCK_END}` lines, not one pair in order; \
             remove devenv's lines by hand and run again",
            begins.len(),
            ends.len()
        ),
    }
}

/// The annotation value: a hash of everything devenv puts into CoreDNS's configuration.
fn zone_hash(corefile: &str, zone_key: &str, zone: &str) -> String {
    let mut hash = Sha256::new();
    for part in [corefile, zone_key, zone] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..16])
}

/// What devenv applies to CoreDNS to serve its zone; `None` where the live object already has it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ZoneChanges {
    /// `Corefile` (merged) and the zone key.
    pub config_map: Option<ConfigMap>,
    /// The zone-hash annotation and, when the config volume lists items, those items.
    pub deployment: Option<Deployment>,
}

/// Compare the live ConfigMap and Deployment `kube-system/coredns` with what devenv wants in
/// them, and build only the applies that would change something.
pub(crate) fn zone_changes(
    live_cm: &ConfigMap,
    live: &Deployment,
    server_block: &str,
    zone_key: &str,
    zone: &str,
) -> anyhow::Result<ZoneChanges> {
    let cm_name = ObjectName::new("ConfigMap", Some(NAMESPACE), COREDNS);
    let deploy_name = ObjectName::new("Deployment", Some(NAMESPACE), COREDNS);
    let data = live_cm.data.clone().unwrap_or_default();
    let corefile = data.get(COREFILE_KEY).ok_or_else(|| {
        anyhow::anyhow!("{cm_name} has no `{COREFILE_KEY}` key to add devenv's zone to")
    })?;
    let merged = merge_corefile(corefile, server_block)
        .map_err(|err| anyhow::anyhow!("in {cm_name}: {err:#}"))?;
    let (volume_name, volume) = config_volume(live).ok_or_else(|| {
        Failure::environment(
            format!("{deploy_name} mounts no volume from ConfigMap {COREDNS}, so devenv cannot add its zone"),
            Some("devenv expects the CoreDNS that kubeadm installs; `kubectl -n kube-system get deployment coredns -o yaml` shows what this cluster has".to_string()),
        )
    })?;
    // No items means every key is projected already: then devenv sends no volume at all.
    let items = volume.items.as_ref().map(|items| {
        let mut items = items.clone();
        if !items.iter().any(|i| i.key == zone_key) {
            items.push(KeyToPath {
                key: zone_key.to_string(),
                path: zone_key.to_string(),
                mode: None,
            });
        }
        items
    });
    let hash = zone_hash(&merged, zone_key, zone);
    let live_hash = live
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(ZONE_HASH_ANNOTATION));

    let mut changes = ZoneChanges::default();
    if merged != *corefile || data.get(zone_key).map(String::as_str) != Some(zone) {
        changes.config_map = Some(ConfigMap {
            metadata: coredns_meta(),
            data: Some(BTreeMap::from([
                (COREFILE_KEY.to_string(), merged),
                (zone_key.to_string(), zone.to_string()),
            ])),
            ..ConfigMap::default()
        });
    }
    if live_hash != Some(&hash) || items != volume.items {
        // `selector` cannot be left out of the typed object: the live one goes back unchanged.
        let selector = live
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        changes.deployment = Some(Deployment {
            metadata: coredns_meta(),
            spec: Some(DeploymentSpec {
                selector,
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        annotations: Some(BTreeMap::from([(
                            ZONE_HASH_ANNOTATION.to_string(),
                            hash,
                        )])),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        volumes: items.map(|items| {
                            vec![Volume {
                                name: volume_name.to_string(),
                                config_map: Some(ConfigMapVolumeSource {
                                    name: COREDNS.to_string(),
                                    items: Some(items),
                                    ..ConfigMapVolumeSource::default()
                                }),
                                ..Volume::default()
                            }]
                        }),
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        });
    }
    Ok(changes)
}

impl Kube {
    /// Serve devenv's zone from the cluster's CoreDNS: `server_block` goes into the Corefile
    /// between devenv's markers, `zone` into ConfigMap `kube-system/coredns` under `zone_key`
    /// (mounted as `/etc/coredns/<zone_key>`), the CoreDNS Deployment mounts that key and is
    /// rolled out, and this waits up to `timeout` for the rollout. Returns whether anything
    /// changed; when nothing would, nothing is written.
    pub async fn ensure_zone(
        &self,
        server_block: &str,
        zone_key: &str,
        zone: &str,
        timeout: Duration,
    ) -> anyhow::Result<bool> {
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), NAMESPACE);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), NAMESPACE);
        let cm_name = ObjectName::new("ConfigMap", Some(NAMESPACE), COREDNS);
        let deploy_name = ObjectName::new("Deployment", Some(NAMESPACE), COREDNS);
        let live_cm = config_maps
            .get_opt(COREDNS)
            .await
            .map_err(|err| self.failed(&format!("reading {cm_name}"), &err))?
            .ok_or_else(|| missing_coredns(&cm_name))?;
        let live = deployments
            .get_opt(COREDNS)
            .await
            .map_err(|err| self.failed(&format!("reading {deploy_name}"), &err))?
            .ok_or_else(|| missing_coredns(&deploy_name))?;

        let changes = zone_changes(&live_cm, &live, server_block, zone_key, zone)?;
        if changes == ZoneChanges::default() {
            return Ok(false);
        }
        // The ConfigMap first: the pods the rollout starts must find the key they mount.
        if let Some(config_map) = &changes.config_map {
            self.apply(config_map).await?;
        }
        if let Some(deployment) = &changes.deployment {
            self.apply(deployment).await?;
        }
        // A new template: the pods it counts are new ones, whatever the nodes' past.
        self.wait_rollout(NAMESPACE, COREDNS, timeout, &Default::default())
            .await?;
        Ok(true)
    }
}

fn coredns_meta() -> ObjectMeta {
    ObjectMeta {
        name: Some(COREDNS.to_string()),
        namespace: Some(NAMESPACE.to_string()),
        ..ObjectMeta::default()
    }
}

/// The name and source of the pod volume that projects ConfigMap `coredns`.
fn config_volume(deployment: &Deployment) -> Option<(&str, &ConfigMapVolumeSource)> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find_map(|v| {
            v.config_map
                .as_ref()
                .filter(|c| c.name == COREDNS)
                .map(|c| (v.name.as_str(), c))
        })
}

fn missing_coredns(what: &ObjectName) -> anyhow::Error {
    Failure::environment(
        format!("{what} does not exist, so the cluster has no CoreDNS for devenv's zone"),
        Some(
            "devenv expects the CoreDNS that kubeadm installs (kind clusters have it)".to_string(),
        ),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::mock::{ApiServer, Expect};
    use super::*;

    /// The Corefile kubeadm writes (kind's clusters have it), byte for byte.
    const KUBEADM_COREFILE: &str = ".:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
";

    const BLOCK: &str = "macula.local:53 {
    errors
    file /etc/coredns/devenv.db macula.local
    cache 30
}
";

    #[test]
    fn a_first_merge_appends_the_block_and_keeps_the_rest() {
        let merged = merge_corefile(KUBEADM_COREFILE, BLOCK).unwrap();
        assert_eq!(
            merged,
            format!("{KUBEADM_COREFILE}{BLOCK_BEGIN}\n{BLOCK}{BLOCK_END}\n")
        );
    }

    #[test]
    fn merging_again_changes_nothing() {
        let once = merge_corefile(KUBEADM_COREFILE, BLOCK).unwrap();
        assert_eq!(merge_corefile(&once, BLOCK).unwrap(), once);
    }

    #[test]
    fn an_older_block_is_replaced_and_other_blocks_stay_byte_identical() {
        let other = "example.internal:53 {\r\n\tforward . 10.0.0.53\r\n}\r\n";
        let old = format!(
            "{KUBEADM_COREFILE}\n{BLOCK_BEGIN}\nold.local:53 {{\n    file /etc/coredns/devenv.db old.local\n}}\n{BLOCK_END}\n{other}"
        );
        let merged = merge_corefile(&old, BLOCK).unwrap();
        assert_eq!(
            merged,
            format!("{KUBEADM_COREFILE}\n{BLOCK_BEGIN}\n{BLOCK}{BLOCK_END}\n{other}")
        );
    }

    #[test]
    fn the_rendered_server_block_merges_into_kubeadms_corefile_and_is_replaced_for_another_domain()
    {
        use crate::config::Config;
        use crate::render::cluster::coredns::server_block;
        let kubeadm = ".:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n    forward . /etc/resolv.conf\n    reload\n}\n";
        let once = merge_corefile(kubeadm, &server_block(&Config::default())).unwrap();
        assert!(once.starts_with(kubeadm), "{once}");
        assert!(once.contains("macula.local:53 {"), "{once}");
        assert_eq!(
            merge_corefile(&once, &server_block(&Config::default())).unwrap(),
            once
        );
        let other = Config {
            domain: "dev.test".into(),
            ..Config::default()
        };
        let changed = merge_corefile(&once, &server_block(&other)).unwrap();
        assert!(changed.starts_with(kubeadm));
        assert!(!changed.contains("macula.local"), "{changed}");
        assert_eq!(changed.matches(BLOCK_BEGIN).count(), 1);
    }

    #[test]
    fn a_corefile_without_final_newline_gets_one_before_the_block() {
        let merged = merge_corefile(".:53 {\n    forward . 8.8.8.8\n}", "a.test:53 {\n}").unwrap();
        assert_eq!(
            merged,
            format!(
                ".:53 {{\n    forward . 8.8.8.8\n}}\n{BLOCK_BEGIN}\na.test:53 {{\n}}\n{BLOCK_END}\n"
            )
        );
    }

    #[test]
    fn unpaired_markers_are_an_error_not_a_guess() {
        let begin_only = format!("{KUBEADM_COREFILE}{BLOCK_BEGIN}\nx:53 {{\n}}\n");
        let err = merge_corefile(&begin_only, BLOCK).unwrap_err().to_string();
        assert!(err.contains("1 `# BEGIN devenv"), "{err}");
        let reversed = format!("{BLOCK_END}\n{KUBEADM_COREFILE}{BLOCK_BEGIN}\n");
        assert!(merge_corefile(&reversed, BLOCK).is_err());
        assert!(merge_corefile(KUBEADM_COREFILE, &format!("{BLOCK_END}\n")).is_err());
    }

    const CM: &str = "/api/v1/namespaces/kube-system/configmaps/coredns";
    const DEPLOY: &str = "/apis/apps/v1/namespaces/kube-system/deployments/coredns";
    const ZONE: &str = "$ORIGIN macula.local.\n@ 3600 IN SOA ns.macula.local. hostmaster.macula.local. 1 7200 3600 1209600 3600\nregistry 60 IN CNAME devenv-gateway.\n";

    fn live_config_map(corefile: &str, zone: Option<&str>) -> Value {
        let mut data = json!({"Corefile": corefile});
        if let Some(zone) = zone {
            data["devenv.db"] = json!(zone);
        }
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system", "resourceVersion": "310"},
            "data": data
        })
    }

    /// The CoreDNS Deployment as kubeadm creates it (trimmed to what matters), at `generation`,
    /// rolled out, with the given volume items and zone hash.
    fn live_deployment(generation: i64, items: Value, hash: Option<&str>) -> Value {
        let mut template_meta = json!({"labels": {"k8s-app": "kube-dns"}});
        if let Some(hash) = hash {
            template_meta["annotations"] = json!({ZONE_HASH_ANNOTATION: hash});
        }
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "generation": generation,
                         "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {
                    "metadata": template_meta,
                    "spec": {
                        "containers": [{
                            "name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.12.1",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": true}]
                        }],
                        "dnsPolicy": "Default",
                        "volumes": [
                            {"name": "config-volume", "configMap": {"name": "coredns", "items": items, "defaultMode": 420}}
                        ]
                    }
                }
            },
            "status": {"observedGeneration": generation, "replicas": 2, "updatedReplicas": 2,
                       "availableReplicas": 2, "readyReplicas": 2}
        })
    }

    fn kubeadm_items() -> Value {
        json!([{"key": "Corefile", "path": "Corefile"}])
    }

    fn devenv_items() -> Value {
        json!([{"key": "Corefile", "path": "Corefile"}, {"key": "devenv.db", "path": "devenv.db"}])
    }

    /// The ConfigMap apply devenv must send for `corefile`.
    fn config_map_apply(corefile: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": corefile, "devenv.db": ZONE}
        })
    }

    /// The Deployment apply devenv must send: the live selector, the hash, the one volume.
    fn deployment_apply(hash: &str, volumes: Option<Value>) -> Value {
        let mut spec = json!({"containers": []});
        if let Some(volumes) = volumes {
            spec["volumes"] = volumes;
        }
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {
                    "metadata": {"annotations": {ZONE_HASH_ANNOTATION: hash}},
                    "spec": spec
                }
            }
        })
    }

    fn devenv_volume() -> Value {
        json!([{"name": "config-volume", "configMap": {"name": "coredns", "items": devenv_items()}}])
    }

    #[tokio::test(start_paused = true)]
    async fn first_install_then_a_second_run_that_writes_nothing() {
        let (kube, mut server) = ApiServer::start();
        let merged = format!("{KUBEADM_COREFILE}{BLOCK_BEGIN}\n{BLOCK}{BLOCK_END}\n");
        let (changed, hash) = tokio::join!(
            kube.ensure_zone(BLOCK, "devenv.db", ZONE, Duration::from_secs(60)),
            async {
                server
                    .expect(Expect::get(CM))
                    .await
                    .reply(200, live_config_map(KUBEADM_COREFILE, None));
                server
                    .expect(Expect::get(DEPLOY))
                    .await
                    .reply(200, live_deployment(1, kubeadm_items(), None));
                let cm = server
                    .expect(Expect::apply(CM).body(config_map_apply(&merged)))
                    .await;
                cm.reply(200, live_config_map(&merged, Some(ZONE)));
                let deploy = server.expect(Expect::apply(DEPLOY)).await;
                let hash = deploy.body["spec"]["template"]["metadata"]["annotations"]
                    [ZONE_HASH_ANNOTATION]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert_eq!(deploy.body, deployment_apply(&hash, Some(devenv_volume())));
                let mut rolling = live_deployment(2, devenv_items(), Some(&hash));
                rolling["status"]["observedGeneration"] = json!(1);
                deploy.reply(200, rolling.clone());
                // The rollout: not yet observed, then one new pod of two, then done.
                server
                    .expect(Expect::get(DEPLOY))
                    .await
                    .reply(200, rolling.clone());
                rolling["status"] = json!({"observedGeneration": 2, "replicas": 3,
                    "updatedReplicas": 1, "availableReplicas": 2});
                server.expect(Expect::get(DEPLOY)).await.reply(200, rolling);
                server
                    .expect(Expect::get(DEPLOY))
                    .await
                    .reply(200, live_deployment(2, devenv_items(), Some(&hash)));
                hash
            }
        );
        assert!(changed.unwrap(), "the first run changes CoreDNS");
        assert_eq!(hash.len(), 32);

        // The second run finds what the first one wrote: two reads, no write, no rollout.
        let (changed, ()) = tokio::join!(
            kube.ensure_zone(BLOCK, "devenv.db", ZONE, Duration::from_secs(60)),
            async move {
                server
                    .expect(Expect::get(CM))
                    .await
                    .reply(200, live_config_map(&merged, Some(ZONE)));
                server
                    .expect(Expect::get(DEPLOY))
                    .await
                    .reply(200, live_deployment(2, devenv_items(), Some(&hash)));
            }
        );
        assert!(!changed.unwrap(), "an unchanged zone writes nothing");
    }

    #[tokio::test]
    async fn an_older_block_is_replaced_and_the_rest_of_the_corefile_is_sent_unchanged() {
        let (kube, mut server) = ApiServer::start();
        let other = "corp.example:53 {\n    forward . 192.0.2.53\n}\n";
        let old_block = "macula.local:53 {\n    file /etc/coredns/devenv.db macula.local\n}\n";
        let live = format!("{KUBEADM_COREFILE}{other}{BLOCK_BEGIN}\n{old_block}{BLOCK_END}\n");
        let (changed, ()) = tokio::join!(
            kube.ensure_zone(BLOCK, "devenv.db", ZONE, Duration::from_secs(60)),
            async move {
                server
                    .expect(Expect::get(CM))
                    .await
                    .reply(200, live_config_map(&live, Some("old zone")));
                server
                    .expect(Expect::get(DEPLOY))
                    .await
                    .reply(200, live_deployment(4, devenv_items(), Some("0123")));
                let merged =
                    format!("{KUBEADM_COREFILE}{other}{BLOCK_BEGIN}\n{BLOCK}{BLOCK_END}\n");
                server
                    .expect(Expect::apply(CM).body(config_map_apply(&merged)))
                    .await
                    .reply(200, live_config_map(&merged, Some(ZONE)));
                let deploy = server.expect(Expect::apply(DEPLOY)).await;
                let hash = deploy.body["spec"]["template"]["metadata"]["annotations"]
                    [ZONE_HASH_ANNOTATION]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert_ne!(hash, "0123");
                // The items already list the zone: the same list goes back, so the apply keeps
                // owning it.
                assert_eq!(deploy.body, deployment_apply(&hash, Some(devenv_volume())));
                deploy.reply(200, live_deployment(5, devenv_items(), Some(&hash)));
                server
                    .expect(Expect::get(DEPLOY))
                    .await
                    .reply(200, live_deployment(5, devenv_items(), Some(&hash)));
            }
        );
        assert!(changed.unwrap());
    }

    #[tokio::test]
    async fn a_volume_that_projects_every_key_gets_no_items() {
        let (kube, mut server) = ApiServer::start();
        let merged = format!("{KUBEADM_COREFILE}{BLOCK_BEGIN}\n{BLOCK}{BLOCK_END}\n");
        let (changed, ()) = tokio::join!(
            kube.ensure_zone(BLOCK, "devenv.db", ZONE, Duration::from_secs(60)),
            async move {
                server
                    .expect(Expect::get(CM))
                    .await
                    .reply(200, live_config_map(&merged, Some(ZONE)));
                let mut all_keys = live_deployment(1, Value::Null, None);
                all_keys["spec"]["template"]["spec"]["volumes"][0]["configMap"]
                    .as_object_mut()
                    .unwrap()
                    .remove("items");
                server
                    .expect(Expect::get(DEPLOY))
                    .await
                    .reply(200, all_keys.clone());
                let deploy = server.expect(Expect::apply(DEPLOY)).await;
                let hash = deploy.body["spec"]["template"]["metadata"]["annotations"]
                    [ZONE_HASH_ANNOTATION]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert_eq!(deploy.body, deployment_apply(&hash, None));
                deploy.reply(200, all_keys.clone());
                server
                    .expect(Expect::get(DEPLOY))
                    .await
                    .reply(200, all_keys);
            }
        );
        assert!(changed.unwrap());
    }

    #[test]
    fn a_coredns_without_its_config_volume_is_an_environment_failure() {
        let live_cm: ConfigMap =
            serde_json::from_value(live_config_map(KUBEADM_COREFILE, None)).unwrap();
        let mut live = live_deployment(1, kubeadm_items(), None);
        live["spec"]["template"]["spec"]["volumes"] =
            json!([{"name": "config-volume", "configMap": {"name": "coredns-custom"}}]);
        let live: Deployment = serde_json::from_value(live).unwrap();
        let err = zone_changes(&live_cm, &live, BLOCK, "devenv.db", ZONE).unwrap_err();
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::ENVIRONMENT
        );
        assert_eq!(
            err.to_string(),
            "Deployment kube-system/coredns mounts no volume from ConfigMap coredns, so devenv cannot add its zone"
        );
    }

    #[test]
    fn only_a_changed_zone_changes_the_hash() {
        let live_cm: ConfigMap =
            serde_json::from_value(live_config_map(KUBEADM_COREFILE, None)).unwrap();
        let live: Deployment =
            serde_json::from_value(live_deployment(1, kubeadm_items(), None)).unwrap();
        let hash = |zone: &str| {
            let changes = zone_changes(&live_cm, &live, BLOCK, "devenv.db", zone).unwrap();
            changes
                .deployment
                .unwrap()
                .spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[ZONE_HASH_ANNOTATION]
                .clone()
        };
        assert_eq!(hash(ZONE), hash(ZONE));
        assert_ne!(hash(ZONE), hash("$ORIGIN macula.local.\n"));
    }

    #[tokio::test]
    async fn a_cluster_without_coredns_is_an_environment_failure() {
        let (kube, mut server) = ApiServer::start();
        let (changed, ()) = tokio::join!(
            kube.ensure_zone(BLOCK, "devenv.db", ZONE, Duration::from_secs(60)),
            async move {
                server.expect(Expect::get(CM)).await.reply(
                    404,
                    super::super::mock::status(404, "NotFound", "configmaps \"coredns\" not found"),
                );
            }
        );
        let err = changed.unwrap_err();
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::ENVIRONMENT
        );
        assert!(
            err.to_string()
                .starts_with("ConfigMap kube-system/coredns does not exist")
        );
    }
}
