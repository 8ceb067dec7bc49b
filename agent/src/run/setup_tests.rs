//! The agent's OVS node setup in its pass, against the mock API server with a recording setup
//! in place of OVS: the setup the inventory asks for (a switchdev PF: hw-offload and
//! hw-tc-offload on it and its representors; none: hw-offload left alone), the events of a
//! setup that changed something (an ovs-vswitchd restart as a warning), nothing said when
//! nothing changed, and an unreachable OVS that leaves the rest of the pass standing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crds::inventory::{EswitchMode, Nic, Vf};
use crds::node_state::NicNodeStateSpec;
use futures::future::BoxFuture;
use http::Method;
use offload::decision::Datapath;
use offload::node::{NodeSetup, SetupOutcome};
use serde_json::json;

use crate::cluster_tests::{call, done, mock, serve};
use crate::run::decide::PassOutcome;
use crate::run::overlay::{NodeSetupApplier, OvsSetup};
use crate::run::tests::{agent, applied_status, get_state, igb, setup, state, status_path};

const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// Records each setup it is asked for and answers from a queue (empty: nothing changed).
#[derive(Clone, Default)]
struct Recording {
    asked: Arc<Mutex<Vec<NodeSetup>>>,
    answers: Arc<Mutex<VecDeque<Result<SetupOutcome, String>>>>,
}

impl Recording {
    fn answering(answers: Vec<Result<SetupOutcome, String>>) -> Self {
        let r = Self::default();
        *r.answers.lock().expect("lock") = answers.into();
        r
    }

    fn asked(&self) -> Vec<NodeSetup> {
        self.asked.lock().expect("lock").clone()
    }
}

impl NodeSetupApplier for Recording {
    fn setup<'a>(&'a self, cfg: &'a NodeSetup) -> BoxFuture<'a, Result<SetupOutcome, String>> {
        self.asked.lock().expect("lock").push(cfg.clone());
        let answer = self
            .answers
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or_else(|| Ok(SetupOutcome::default()));
        Box::pin(async move { answer })
    }
}

fn switchdev_igb() -> Nic {
    Nic {
        eswitch_mode: Some(EswitchMode::Switchdev),
        num_vfs: 2,
        vfs: (0..2)
            .map(|i| Vf {
                vf_id: i,
                pci_address: format!("0000:01:10.{i}"),
                representor: Some(format!("enp1s0_{i}")),
                ..Default::default()
            })
            .collect(),
        ..igb()
    }
}

fn event_ok() -> serde_json::Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null})
}

#[tokio::test]
async fn a_switchdev_node_is_set_up_with_hw_offload_and_a_restart_is_reported_once() {
    let nic = switchdev_igb();
    let s = setup(vec![nic.clone()]);
    let empty = NicNodeStateSpec::default();
    let written = applied_status(vec![nic], None);
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            get_state(&empty, json!({}), None),
            call(
                Method::POST,
                EVENTS,
                |_, body| {
                    assert_eq!(body["reason"], "OvsSetup");
                    assert_eq!(body["type"], "Normal");
                    assert_eq!(body["regarding"]["name"], "n1");
                    let note = body["note"].as_str().unwrap_or_default();
                    assert!(
                        note.contains("created bridge br-int") && note.contains("hw-offload"),
                        "{note}"
                    );
                },
                event_ok(),
            ),
            call(
                Method::POST,
                EVENTS,
                |_, body| {
                    assert_eq!(body["reason"], "OvsRestartRequired");
                    assert_eq!(body["type"], "Warning");
                    let note = body["note"].as_str().unwrap_or_default();
                    assert!(note.contains("restart"), "{note}");
                },
                event_ok(),
            ),
            call(
                Method::PATCH,
                &status_path(),
                |_, _| {},
                state(&empty, json!({}), None),
            ),
            // the second pass: the setup finds everything in place; no event, no write
            get_state(&empty, json!({}), Some(&written)),
        ],
    );
    let rec = Recording::answering(vec![Ok(SetupOutcome {
        changed_other_config: vec!["hw-offload".into()],
        restart_required: true,
        bridge_created: true,
        tc_offload_on: vec!["enp1s0".into(), "enp1s0_0".into(), "enp1s0_1".into()],
        warnings: vec![],
    })]);
    let ovs = OvsSetup::new("br-int", Datapath::System, Box::new(rec.clone()));
    let set_up = ovs.done();
    assert!(!*set_up.borrow());
    let mut a = agent(client, &s).with_ovs_setup(ovs);
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    assert!(*set_up.borrow(), "the peer loop may start");
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    done(task).await;
    let asked = rec.asked();
    assert_eq!(asked.len(), 2, "once per pass: {asked:?}");
    assert_eq!(asked[0], asked[1]);
    assert_eq!(asked[0].bridge, "br-int");
    assert_eq!(asked[0].datapath, Datapath::System);
    assert_eq!(asked[0].hw_offload, Some(true));
    assert_eq!(asked[0].tc_offload, ["enp1s0", "enp1s0_0", "enp1s0_1"]);
}

#[tokio::test]
async fn an_unreachable_ovs_is_logged_and_the_rest_of_the_pass_stands() {
    let s = setup(vec![igb()]);
    let empty = NicNodeStateSpec::default();
    let (client, handle) = mock();
    let task = serve(
        handle,
        vec![
            get_state(&empty, json!({}), None),
            // no event: the status apply only
            call(
                Method::PATCH,
                &status_path(),
                |_, body| {
                    assert_eq!(body["status"]["nics"][0]["pciAddress"], "0000:01:00.0");
                },
                state(&empty, json!({}), None),
            ),
        ],
    );
    let rec = Recording::answering(vec![Err(
        "cannot connect to OVSDB at /run/openvswitch/db.sock: No such file or directory".into(),
    )]);
    let ovs = OvsSetup::new("br-int", Datapath::Netdev, Box::new(rec.clone()));
    let set_up = ovs.done();
    let mut a = agent(client, &s).with_ovs_setup(ovs);
    assert_eq!(a.pass().await.expect("pass"), PassOutcome::InSync);
    done(task).await;
    assert!(!*set_up.borrow(), "the peer loop still waits");
    // a legacy node: hw-offload left as OVS has it, no device touched
    let asked = rec.asked();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].hw_offload, None);
    assert!(asked[0].tc_offload.is_empty());
    assert_eq!(asked[0].datapath, Datapath::Netdev);
}
