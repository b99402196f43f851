//! Prometheus metrics of the worker path (served with the proxy's on the admin listener).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    pub(crate) result: &'static str,
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StepLabels {
    pub(crate) step: &'static str,
    pub(crate) result: &'static str,
}

/// Counters and gauges of joins, the :6443 front, CSR decisions and node lifecycle steps.
#[derive(Debug)]
pub struct WorkerMetrics {
    pub(crate) joins: Family<ResultLabels, Counter>,
    pub(crate) front: Family<ResultLabels, Counter>,
    pub(crate) csrs: Family<ResultLabels, Counter>,
    pub(crate) lifecycle: Family<StepLabels, Counter>,
    pub(crate) nodes: Family<StateLabels, Gauge>,
    /// From the first sight of a lapsed record to the Node's deletion.
    pub(crate) drain_seconds: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabels {
    pub(crate) state: &'static str,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics {
            joins: Family::default(),
            front: Family::default(),
            csrs: Family::default(),
            lifecycle: Family::default(),
            nodes: Family::default(),
            // 0.1 s … ~30 min.
            drain_seconds: Histogram::new(exponential_buckets(0.1, 2.0, 15)),
        }
    }
}

impl WorkerMetrics {
    pub(crate) fn join(&self, result: &'static str, reason: &'static str) {
        self.joins
            .get_or_create(&ResultLabels { result, reason })
            .inc();
    }

    pub(crate) fn front(&self, result: &'static str, reason: &'static str) {
        self.front
            .get_or_create(&ResultLabels { result, reason })
            .inc();
    }

    pub(crate) fn csr(&self, result: &'static str, reason: &'static str) {
        self.csrs
            .get_or_create(&ResultLabels { result, reason })
            .inc();
    }

    pub(crate) fn step(&self, step: &'static str, result: &'static str) {
        self.lifecycle
            .get_or_create(&StepLabels { step, result })
            .inc();
    }

    /// Adds the worker metrics to `registry` (prefix `daas_workers`).
    pub(crate) fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("daas_workers");
        sub.register(
            "joins",
            "Join requests, by result and reason",
            self.joins.clone(),
        );
        sub.register(
            "front_requests",
            "Requests at the :6443 front, by result and reason",
            self.front.clone(),
        );
        sub.register(
            "csr_decisions",
            "Kubelet CSRs approved or denied, by reason",
            self.csrs.clone(),
        );
        sub.register(
            "lifecycle_steps",
            "Node lifecycle steps taken (taint, cordon, evict, delete, …), by result",
            self.lifecycle.clone(),
        );
        sub.register(
            "bindings",
            "Node name bindings, by state",
            self.nodes.clone(),
        );
        sub.register(
            "drain_duration_seconds",
            "From the first sight of a lapsed stake record to the deletion of its Node",
            self.drain_seconds.clone(),
        );
    }
}
