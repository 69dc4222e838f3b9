// Package dashboards holds oneshot's operations files: Grafana dashboards and
// provisioning (grafana/), the Prometheus configuration and alert rules
// (prometheus/). It has no Go code of its own; its tests start the API and a
// worker on a real Redis, run a workload through HTTP, and check with a real
// Prometheus that every dashboard query shows data and every alert rule
// parses. They check docker-compose.yml and the Dockerfile too.
// docs/operations.md describes it all.
package dashboards
