//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! exactly one runs the controllers (the webhook and metrics run on all of them).
//!
//! The timing follows client-go's defaults: the lease is valid for 15 s after its last renewal;
//! every replica tries to acquire or renew it every 2 s; a leader that could not renew for 10 s
//! stops its controllers before anyone else can take the lease (10 s < 15 s). Every write is a
//! `create` or a `replace` carrying the `resourceVersion` that was read, so two candidates racing
//! for an expired lease cannot both win: the loser gets 409 Conflict.
//!
//! | lease read | decision |
//! |---|---|
//! | absent | create it, holding it |
//! | held by this replica | renew (`renewTime = now`) |
//! | no holder (released), or unchanged for `leaseDurationSeconds` | take over (`leaseTransitions + 1`) |
//! | held by another replica, not expired | wait |
//!
//! Expiry is judged on this replica's clock, as client-go does: a lease held by another replica
//! expires when its `resourceVersion` has not changed for `leaseDurationSeconds` since this
//! replica first saw it. The `renewTime` written by the holder is not compared with the local
//! clock, so clock skew between nodes cannot make two replicas lead at once. (A replica that
//! starts next to an abandoned lease therefore waits one lease duration before taking it.)

use std::{future::Future, time::Duration};

use crds::k8s::jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::{sync::watch, time::Instant};

/// Name of the Lease object.
pub const LEASE_NAME: &str = "smartnic-operator-leader";

/// Timing and identity of a candidate.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Namespace of the Lease (the operator's).
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down (must be below `lease_duration`).
    pub renew_deadline: Duration,
    /// Interval between acquire/renew attempts.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// [`LEASE_NAME`] with 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            name: LEASE_NAME.to_owned(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why an election step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the Lease failed.
    #[error("cannot read Lease {namespace}/{name}: {source}")]
    Get {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Creating, renewing, taking over or releasing the Lease failed (other than a lost race).
    #[error("cannot {action} Lease {namespace}/{name}: {source}")]
    Write {
        /// `create`, `renew`, `take over` or `release`.
        action: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Short label naming the failed call.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Get { .. } => "getlease",
            Self::Write { .. } => "writelease",
        }
    }
}

/// What to do with the lease as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it.
    Create,
    /// This replica holds it: renew.
    Renew,
    /// Released or expired: take it over.
    TakeOver,
    /// Another replica holds it until `until`.
    Wait {
        /// The holder's identity.
        holder: String,
        /// When its lease expires unless renewed.
        until: Timestamp,
    },
}

/// Decides from the lease as read. `observed_since` is when this replica first saw the lease's
/// current `resourceVersion` (its own clock); `default_duration` applies when the lease does not
/// say.
pub fn decide(
    lease: Option<&Lease>,
    identity: &str,
    now: Timestamp,
    observed_since: Timestamp,
    default_duration: Duration,
) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    if holder == identity {
        return Decision::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .map(|s| SignedDuration::from_secs(i64::from(s)))
        .unwrap_or_else(|| {
            SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::ZERO)
        });
    match observed_since.checked_add(duration) {
        Ok(until) if until > now => Decision::Wait { holder, until },
        _ => Decision::TakeOver,
    }
}

/// One candidate for the lease.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// `resourceVersion` of the lease as last read, and when (local clock) it was first seen.
    observed: std::sync::Mutex<Option<(String, Timestamp)>>,
}

impl LeaderElector {
    /// A candidate using `client`.
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: std::sync::Mutex::new(None),
        }
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    fn write_err(&self, action: &'static str) -> impl FnOnce(kube::Error) -> Error + '_ {
        move |source| Error::Write {
            action,
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.name.clone(),
            source,
        }
    }

    /// Records the lease's resourceVersion; returns when it was first seen (at `now` if new).
    fn observe(&self, lease: Option<&Lease>, now: Timestamp) -> Timestamp {
        let rv = lease
            .and_then(|l| l.metadata.resource_version.clone())
            .unwrap_or_default();
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        match observed.as_ref() {
            Some((seen, since)) if *seen == rv => *since,
            _ => {
                *observed = Some((rv, now));
                now
            }
        }
    }

    /// One acquire-or-renew attempt at time `now` (this replica's clock): `Ok(true)` when this replica holds the lease
    /// afterwards. Losing a race (409 on create or replace) is `Ok(false)`, not an error.
    pub async fn try_acquire_or_renew_at(&self, now: Timestamp) -> Result<bool, Error> {
        let current = self
            .api
            .get_opt(&self.cfg.name)
            .await
            .map_err(|source| Error::Get {
                namespace: self.cfg.namespace.clone(),
                name: self.cfg.name.clone(),
                source,
            })?;
        let observed_since = self.observe(current.as_ref(), now);
        let decision = decide(
            current.as_ref(),
            &self.cfg.identity,
            now,
            observed_since,
            self.cfg.lease_duration,
        );
        let (lease, action) = match (decision, current) {
            (Decision::Wait { holder, until }, _) => {
                tracing::debug!(%holder, %until, "lease held by another replica");
                return Ok(false);
            }
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.cfg.identity.clone()),
                        lease_duration_seconds: Some(self.duration_secs()),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => {
                        tracing::info!(identity = %self.cfg.identity, "created the leader lease");
                        Ok(true)
                    }
                    Err(e) if matches!(crate::controller::api_code(&e), Some(409)) => Ok(false),
                    Err(e) => Err(self.write_err("create")(e)),
                };
            }
            (Decision::Renew, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(self.duration_secs());
                (lease, "renew")
            }
            (Decision::TakeOver, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(self.cfg.identity.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(self.duration_secs());
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
                (lease, "take over")
            }
        };
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                if action == "take over" {
                    tracing::info!(identity = %self.cfg.identity, "took over the leader lease");
                }
                Ok(true)
            }
            Err(e) if matches!(crate::controller::api_code(&e), Some(409)) => Ok(false),
            Err(e) => Err(self.write_err(action)(e)),
        }
    }

    /// Gives the lease up (on shutdown) so that another replica takes over at once instead of
    /// after the lease expires. Only a lease this replica holds is released.
    pub async fn release(&self) -> Result<(), Error> {
        let Some(mut lease) =
            self.api
                .get_opt(&self.cfg.name)
                .await
                .map_err(|source| Error::Get {
                    namespace: self.cfg.namespace.clone(),
                    name: self.cfg.name.clone(),
                    source,
                })?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(crate::controller::api_code(&e), Some(409)) => Ok(()),
            Err(e) => Err(self.write_err("release")(e)),
        }
    }

    /// Campaigns until `shutdown` resolves, publishing leadership on `leader`; releases the lease
    /// on shutdown.
    pub async fn run(&self, leader: watch::Sender<bool>, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_renew: Option<Instant> = None;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep_until(next) => {}
            }
            next = Instant::now() + self.cfg.retry_period;
            let holds = match self.try_acquire_or_renew_at(Timestamp::now()).await {
                Ok(true) => {
                    last_renew = Some(Instant::now());
                    true
                }
                Ok(false) => {
                    last_renew = None;
                    false
                }
                Err(error) => {
                    tracing::warn!(%error, "leader election step failed");
                    // keep leading only while the last renewal is recent enough
                    last_renew.is_some_and(|t| t.elapsed() < self.cfg.renew_deadline)
                }
            };
            let was = leader.send_replace(holds);
            if was != holds {
                tracing::info!(identity = %self.cfg.identity, leader = holds, "leadership changed");
            }
        }
        if *leader.borrow() {
            leader.send_replace(false);
            if let Err(error) = self.release().await {
                tracing::warn!(%error, "cannot release the leader lease");
            }
        }
    }
}

/// Runs `work()` whenever `leader` is true, and drops it (cancelling everything it runs) as soon
/// as leadership is lost; starts it again when leadership comes back. Returns when `leader` is
/// closed.
pub async fn while_leader<F, Fut>(mut leader: watch::Receiver<bool>, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        tracing::info!("leading: starting controllers");
        let fut = work();
        tokio::select! {
            () = fut => tracing::warn!("controllers stopped while leading"),
            r = leader.wait_for(|l| !*l) => {
                if r.is_err() {
                    return;
                }
                tracing::warn!("lost leadership: controllers stopped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::{Value, json};

    use super::*;
    use crate::controller::fixtures::{mock_client, reply};

    const PATH: &str =
        "/apis/coordination.k8s.io/v1/namespaces/smartnic-system/leases/smartnic-operator-leader";

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn lease_json(holder: &str, renewed: Timestamp, transitions: i32) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": "smartnic-system", "resourceVersion": "41"},
            "spec": {
                "holderIdentity": holder, "leaseDurationSeconds": 15,
                "acquireTime": MicroTime(renewed), "renewTime": MicroTime(renewed),
                "leaseTransitions": transitions
            }
        })
    }

    fn elector(client: Client) -> LeaderElector {
        LeaderElector::new(client, LeaseConfig::new("smartnic-system", "operator-a"))
    }

    #[test]
    fn decisions() {
        let l = |v: Value| serde_json::from_value::<Lease>(v).unwrap();
        let d = Duration::from_secs(15);
        assert_eq!(decide(None, "a", at(0), at(0), d), Decision::Create);
        assert_eq!(
            decide(Some(&l(lease_json("a", at(0), 1))), "a", at(100), at(0), d),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&l(lease_json("b", at(0), 1))), "a", at(14), at(0), d),
            Decision::Wait {
                holder: "b".into(),
                until: at(15)
            }
        );
        assert_eq!(
            decide(Some(&l(lease_json("b", at(0), 1))), "a", at(16), at(0), d),
            Decision::TakeOver
        );
        // the holder's clock may be far behind: its renewTime is not compared with ours
        assert_eq!(
            decide(
                Some(&l(lease_json("b", at(-3600), 1))),
                "a",
                at(5),
                at(0),
                d
            ),
            Decision::Wait {
                holder: "b".into(),
                until: at(15)
            }
        );
        assert_eq!(
            decide(Some(&l(lease_json("", at(0), 1))), "a", at(1), at(1), d),
            Decision::TakeOver
        );
    }

    #[tokio::test]
    async fn free_lease_is_acquired_by_create() {
        let (client, mut fake) = mock_client();
        let server = tokio::spawn(async move {
            let (_, send) = fake.expect(Method::GET, PATH).await;
            reply(
                send,
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            );
            let (seen, send) = fake
                .expect(
                    Method::POST,
                    "/apis/coordination.k8s.io/v1/namespaces/smartnic-system/leases",
                )
                .await;
            assert_eq!(seen.body["metadata"]["name"], LEASE_NAME);
            assert_eq!(seen.body["spec"]["holderIdentity"], "operator-a");
            assert_eq!(seen.body["spec"]["leaseDurationSeconds"], 15);
            assert_eq!(seen.body["spec"]["leaseTransitions"], 0);
            reply(send, 201, seen.body);
        });
        assert!(
            elector(client)
                .try_acquire_or_renew_at(at(0))
                .await
                .unwrap()
        );
        tokio::time::timeout(Duration::from_secs(1), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn lease_held_by_another_unexpired_replica_is_not_taken() {
        let (client, mut fake) = mock_client();
        let server = tokio::spawn(async move {
            let (_, send) = fake.expect(Method::GET, PATH).await;
            reply(send, 200, lease_json("operator-b", at(0), 3));
            // no write may follow: the handle is dropped here
        });
        assert!(
            !elector(client)
                .try_acquire_or_renew_at(at(10))
                .await
                .unwrap()
        );
        tokio::time::timeout(Duration::from_secs(1), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn lease_unchanged_for_its_duration_is_taken_over_with_its_resource_version() {
        let (client, mut fake) = mock_client();
        let server = tokio::spawn(async move {
            // first look at t=0: held by b, resourceVersion 41 seen for the first time
            let (_, send) = fake.expect(Method::GET, PATH).await;
            reply(send, 200, lease_json("operator-b", at(0), 3));
            // t=20: still resourceVersion 41, so b has not renewed for 20 s > 15 s
            let (_, send) = fake.expect(Method::GET, PATH).await;
            reply(send, 200, lease_json("operator-b", at(0), 3));
            let (seen, send) = fake.expect(Method::PUT, PATH).await;
            assert_eq!(
                seen.body["metadata"]["resourceVersion"], "41",
                "replace is conditional"
            );
            assert_eq!(seen.body["spec"]["holderIdentity"], "operator-a");
            assert_eq!(seen.body["spec"]["leaseTransitions"], 4);
            assert_eq!(seen.body["spec"]["renewTime"], json!(MicroTime(at(20))));
            reply(send, 200, seen.body);
        });
        let e = elector(client);
        assert!(
            !e.try_acquire_or_renew_at(at(0)).await.unwrap(),
            "held at first sight"
        );
        assert!(
            e.try_acquire_or_renew_at(at(20)).await.unwrap(),
            "expired on our clock"
        );
        tokio::time::timeout(Duration::from_secs(1), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn own_lease_is_renewed_and_a_lost_race_is_not_an_error() {
        let (client, mut fake) = mock_client();
        let server = tokio::spawn(async move {
            let (_, send) = fake.expect(Method::GET, PATH).await;
            reply(send, 200, lease_json("operator-a", at(0), 1));
            let (seen, send) = fake.expect(Method::PUT, PATH).await;
            assert_eq!(seen.body["spec"]["holderIdentity"], "operator-a");
            assert_eq!(
                seen.body["spec"]["leaseTransitions"], 1,
                "a renewal is no transition"
            );
            reply(
                send,
                409,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409}),
            );
        });
        assert!(
            !elector(client)
                .try_acquire_or_renew_at(at(5))
                .await
                .unwrap()
        );
        tokio::time::timeout(Duration::from_secs(1), server)
            .await
            .unwrap()
            .unwrap();
    }

    async fn next(events: &mut tokio::sync::mpsc::UnboundedReceiver<&'static str>) -> &'static str {
        tokio::time::timeout(Duration::from_secs(1), events.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn controllers_run_only_while_leading() {
        struct Stopped(tokio::sync::mpsc::UnboundedSender<&'static str>);
        impl Drop for Stopped {
            fn drop(&mut self) {
                let _ = self.0.send("stopped");
            }
        }
        let (tx, rx) = watch::channel(false);
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(while_leader(rx, move || {
            let events_tx = events_tx.clone();
            async move {
                let _ = events_tx.send("started");
                let _guard = Stopped(events_tx);
                std::future::pending::<()>().await;
            }
        }));
        tokio::task::yield_now().await;
        assert!(events.try_recv().is_err(), "not started while not leading");
        tx.send_replace(true);
        assert_eq!(next(&mut events).await, "started");
        tx.send_replace(false);
        assert_eq!(
            next(&mut events).await,
            "stopped",
            "losing the lease cancels the controllers"
        );
        tx.send_replace(true);
        assert_eq!(next(&mut events).await, "started");
        drop(tx);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }
}
