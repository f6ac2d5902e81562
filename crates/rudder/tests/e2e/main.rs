//! End-to-end: a real `rudder server` driven by the real kubectl (1.27 and 1.33).

mod apply;
mod basics;
mod cluster;
mod deployments;
mod discovery;
mod durability;
mod errors;
mod gc;
mod jobs;
mod netcheck;
mod netlab;
mod network;
mod nodes;
mod pods;
mod satoken;
mod scheduling;
mod services;
mod services_net;
mod services_nodes;
mod sim;
mod streaming;
mod top;
mod watch;
mod workloads;

pub use cluster::{Cluster, KUBECTL_VERSIONS};

pub const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
";
