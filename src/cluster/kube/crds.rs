//! The Gateway API CRDs on the cluster: reading the ones there, installing devenv's bundle
//! (server-side apply, devenv's labels on each, then a wait for Established), and its admission
//! policy where the API server serves admission policies (Kubernetes 1.30 and later).
//!
//! Not for: choosing, verifying or parsing the bundle (`cluster::crds`, pure), or deciding
//! whether to install (`crds::decide`).

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

use super::Kube;
use crate::cluster::crds::{Bundle, crd_name};
use crate::render::cluster::NAMESPACE;
use crate::render::cluster::gateway::{GATEWAY, Gateway};

/// What the cluster says of devenv's Gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayState {
    /// The cluster serves no Gateways: the CRDs are not installed.
    NoCrds,
    /// The CRDs are there, the Gateway is not.
    Missing,
    /// Accepted and Programmed.
    Ready,
    /// What its controller says instead.
    NotReady(String),
}

/// The admission-policy resource of the policy the bundle ships.
const POLICY_GROUP_VERSION: &str = "admissionregistration.k8s.io/v1";
const POLICIES: &str = "validatingadmissionpolicies";

/// `object` with `labels` added to its own.
fn labelled<K>(object: &K, labels: &std::collections::BTreeMap<String, String>) -> K
where
    K: kube::Resource + Clone,
{
    let mut out = object.clone();
    out.meta_mut()
        .labels
        .get_or_insert_with(Default::default)
        .extend(labels.clone());
    out
}

/// `"20"`, `"27+"` as 20, 27.
fn minor_of(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl Kube {
    /// What the cluster says of devenv's Gateway (`devenv/devenv`). The CRD is read first: an
    /// API server asked for a kind it does not serve answers a bare `404 page not found`.
    pub async fn gateway_state(&self) -> anyhow::Result<GatewayState> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let name = crd_name("gateways");
        match crds.get_opt(&name).await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(GatewayState::NoCrds),
            Err(e) => {
                return Err(self.failed(&format!("reading CustomResourceDefinition {name}"), &e));
            }
        }
        let api: Api<Gateway> = Api::namespaced(self.client.clone(), NAMESPACE);
        match api.get_opt(GATEWAY).await {
            Ok(Some(g)) => Ok(match g.readiness() {
                Ok(()) => GatewayState::Ready,
                Err(why) => GatewayState::NotReady(why),
            }),
            Ok(None) => Ok(GatewayState::Missing),
            Err(e) => Err(self.failed(&format!("reading Gateway {NAMESPACE}/{GATEWAY}"), &e)),
        }
    }

    /// The API server's minor version (1.x) from `GET /version`; a managed cluster's `"27+"`
    /// reads as 27.
    pub async fn server_minor(&self) -> anyhow::Result<u32> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| self.failed("reading the API server's version", &e))?;
        minor_of(&info.minor).ok_or_else(|| {
            anyhow::anyhow!(
                "the API server names its minor version {:?}, not a number",
                info.minor
            )
        })
    }

    /// Every CRD of the Gateway API group the cluster has (not only those Traefik reads: a
    /// ListenerSet or any other of the group that another tool installed makes the set
    /// theirs). The names come from a metadata-only list, then each is read whole.
    pub async fn gateway_crds(&self) -> anyhow::Result<Vec<CustomResourceDefinition>> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let suffix = format!(".{}", crate::render::cluster::gateway::GROUP);
        let names: Vec<String> = api
            .list_metadata(&kube::api::ListParams::default())
            .await
            .map_err(|e| self.failed("listing CustomResourceDefinitions", &e))?
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .filter(|n| n.ends_with(&suffix))
            .collect();
        let mut out = Vec::new();
        for name in names {
            match api.get_opt(&name).await {
                Ok(Some(crd)) => out.push(crd),
                Ok(None) => {}
                Err(e) => {
                    return Err(
                        self.failed(&format!("reading CustomResourceDefinition {name}"), &e)
                    );
                }
            }
        }
        Ok(out)
    }

    /// Apply `bundle`'s CRDs with `labels` added, wait up to `wait` for each to be Established,
    /// then apply its admission policy and binding where the server serves them. Returns a note
    /// when the policy was left out.
    pub async fn install_gateway_crds(
        &self,
        bundle: &Bundle,
        labels: &std::collections::BTreeMap<String, String>,
        wait: Duration,
    ) -> anyhow::Result<Option<String>> {
        for crd in &bundle.crds {
            self.apply(&labelled(crd, labels)).await?;
        }
        let deadline = Instant::now() + wait;
        for crd in &bundle.crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            self.wait_established(&name, deadline, wait).await?;
        }
        if bundle.policies.is_empty() && bundle.bindings.is_empty() {
            return Ok(None);
        }
        let serves = match self
            .client
            .list_api_group_resources(POLICY_GROUP_VERSION)
            .await
        {
            Ok(list) => list.resources.iter().any(|r| r.name == POLICIES),
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(e) => return Err(self.failed(&format!("reading {POLICY_GROUP_VERSION}"), &e)),
        };
        if !serves {
            return Ok(Some(format!(
                "this API server serves no {POLICIES} ({POLICY_GROUP_VERSION}, Kubernetes 1.30+): the Gateway API bundle's safe-upgrades policy was left out"
            )));
        }
        // Another tool's policy or binding of the same name (it installed Gateway API's
        // bundle before): left as it is, with its binding.
        for policy in &bundle.policies {
            if let Some(manager) = self.foreign(policy).await? {
                return Ok(Some(format!(
                    "ValidatingAdmissionPolicy {} is managed by {manager}: devenv left it and its binding as they are",
                    policy.metadata.name.as_deref().unwrap_or_default()
                )));
            }
        }
        for binding in &bundle.bindings {
            if let Some(manager) = self.foreign(binding).await? {
                return Ok(Some(format!(
                    "ValidatingAdmissionPolicyBinding {} is managed by {manager}: devenv left it and its policy as they are",
                    binding.metadata.name.as_deref().unwrap_or_default()
                )));
            }
        }
        for policy in &bundle.policies {
            self.apply(&labelled(policy, labels)).await?;
        }
        for binding in &bundle.bindings {
            self.apply(&labelled(binding, labels)).await?;
        }
        Ok(None)
    }

    /// Wait until CRD `name` has `Established=True`, up to `deadline`.
    async fn wait_established(
        &self,
        name: &str,
        deadline: Instant,
        wait: Duration,
    ) -> anyhow::Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        loop {
            let crd = api.get(name).await.map_err(|e| {
                self.failed(&format!("reading CustomResourceDefinition {name}"), &e)
            })?;
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let said: Vec<String> = conditions
                    .iter()
                    .map(|c| {
                        format!(
                            "{}={} {}",
                            c.type_,
                            c.status,
                            c.message.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                anyhow::bail!(
                    "CustomResourceDefinition {name} was not Established within {} s ({})",
                    wait.as_secs(),
                    if said.is_empty() {
                        "no conditions yet".to_string()
                    } else {
                        said.join("; ")
                    }
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::super::mock::{ApiServer, Expect};
    use super::*;

    const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

    fn crd(plural: &str) -> CustomResourceDefinition {
        serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": crd_name(plural),
                "annotations": {"gateway.networking.k8s.io/bundle-version": "v1.5.1"}},
            "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
                "names": {"plural": plural, "kind": plural},
                "versions": [{"name": "v1", "served": true, "storage": true}]}
        }))
        .unwrap()
    }

    fn established(body: &Value, status: &str) -> Value {
        let mut out = body.clone();
        out["status"] = json!({"conditions": [{"type": "Established", "status": status,
            "reason": "InitialNamesAccepted", "message": "", "lastTransitionTime": "2026-12-07T00:00:00Z"}]});
        out
    }

    #[test]
    fn a_minor_version_reads_with_or_without_a_plus() {
        assert_eq!(minor_of("20"), Some(20));
        assert_eq!(minor_of("27+"), Some(27));
        assert_eq!(minor_of(""), None);
    }

    /// Each CRD applied as devenv with devenv's labels and the bundle's annotations kept, then
    /// read until Established; the admission policy left out (and said) where the server
    /// serves none.
    #[tokio::test]
    async fn the_crds_are_applied_with_devenvs_labels_then_waited_for() {
        let (kube, mut server) = ApiServer::start();
        let bundle = Bundle {
            version: "v1.5.1".into(),
            crds: vec![crd("gateways"), crd("httproutes")],
            policies: vec![serde_json::from_value(json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": "safe-upgrades.gateway.networking.k8s.io"}, "spec": {}
            }))
            .unwrap()],
            bindings: Vec::new(),
            validation_rules: false,
        };
        let labels = BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "devenv".to_string(),
        )]);
        let (done, ()) = tokio::join!(
            kube.install_gateway_crds(&bundle, &labels, Duration::from_secs(5)),
            async {
                for plural in ["gateways", "httproutes"] {
                    let name = crd_name(plural);
                    let mut want = serde_json::to_value(crd(plural)).unwrap();
                    want["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "devenv"});
                    let x = server
                        .expect(Expect::apply(&format!("{CRDS}/{name}")).body(want.clone()))
                        .await;
                    x.reply(200, want);
                }
                // The first is not Established at the first read: read again.
                let first = serde_json::to_value(crd("gateways")).unwrap();
                let name = crd_name("gateways");
                server
                    .expect(Expect::get(&format!("{CRDS}/{name}")))
                    .await
                    .reply(200, established(&first, "False"));
                server
                    .expect(Expect::get(&format!("{CRDS}/{name}")))
                    .await
                    .reply(200, established(&first, "True"));
                let second = serde_json::to_value(crd("httproutes")).unwrap();
                server
                    .expect(Expect::get(&format!("{CRDS}/{}", crd_name("httproutes"))))
                    .await
                    .reply(200, established(&second, "True"));
                // A v1.20 server: the group version serves no validatingadmissionpolicies.
                server
                    .expect(Expect::get("/apis/admissionregistration.k8s.io/v1"))
                    .await
                    .reply(200, json!({"kind": "APIResourceList", "apiVersion": "v1",
                        "groupVersion": "admissionregistration.k8s.io/v1",
                        "resources": [{"name": "validatingwebhookconfigurations", "namespaced": false,
                            "kind": "ValidatingWebhookConfiguration", "verbs": ["get"], "singularName": ""}]}));
            }
        );
        let note = done.unwrap().expect("a note that the policy was left out");
        assert!(note.contains("safe-upgrades policy was left out"), "{note}");
    }
}
