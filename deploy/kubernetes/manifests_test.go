package kubernetes_test

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/kelseyhightower/envconfig"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/oneshot-dev/oneshot/internal/system"
)

// object is one YAML document of the manifests.
type object struct {
	File       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Resources  []string          `yaml:"resources"` // a Kustomization's
	Spec       yaml.Node         `yaml:"spec"`
}

func (o *object) String() string { return o.File + ": " + o.Kind + " " + o.Metadata.Name }

type selector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// workload is the spec of a Deployment or StatefulSet.
type workload struct {
	Replicas    *int     `yaml:"replicas"`
	ServiceName string   `yaml:"serviceName"`
	Selector    selector `yaml:"selector"`
	Template    struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
	InitContainers                []container `yaml:"initContainers"`
	Containers                    []container `yaml:"containers"`
	Volumes                       []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	SecurityContext struct {
		Privileged bool `yaml:"privileged"`
	} `yaml:"securityContext"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port's name
	} `yaml:"httpGet"`
}

type service struct {
	ClusterIP string            `yaml:"clusterIP"`
	Selector  map[string]string `yaml:"selector"`
	Ports     []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
	} `yaml:"ports"`
}

type hpa struct {
	ScaleTargetRef struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Name       string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas int `yaml:"minReplicas"`
	MaxReplicas int `yaml:"maxReplicas"`
	Metrics     []struct {
		Type     string `yaml:"type"`
		External *struct {
			Metric struct {
				Name     string   `yaml:"name"`
				Selector selector `yaml:"selector"`
			} `yaml:"metric"`
		} `yaml:"external"`
		Pods *struct {
			Metric struct {
				Name string `yaml:"name"`
			} `yaml:"metric"`
		} `yaml:"pods"`
	} `yaml:"metrics"`
}

// manifests are the YAML files of this directory.
type manifests struct {
	files   []string // base names of the .yaml files
	objects []*object
}

func load(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	m := &manifests{files: paths}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "%s: document %d", path, i)
			if o.Kind == "" && o.APIVersion == "" && o.Metadata.Name == "" {
				continue // an empty document (a trailing ---)
			}
			o.File = path
			m.objects = append(m.objects, &o)
		}
	}
	return m
}

func (m *manifests) get(t *testing.T, kind, name string) *object {
	t.Helper()
	for _, o := range m.objects {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	t.Fatalf("no %s named %q in the manifests", kind, name)
	return nil
}

func (m *manifests) all(kind string) []*object {
	var out []*object
	for _, o := range m.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func spec[T any](t *testing.T, o *object) T {
	t.Helper()
	var v T
	require.NoError(t, o.Spec.Decode(&v), o.String())
	return v
}

func (m *manifests) workload(t *testing.T, kind, name string) workload {
	t.Helper()
	return spec[workload](t, m.get(t, kind, name))
}

// env is the environment a container gets: its envFrom sources in order,
// then its env entries, which win.
func (m *manifests) env(t *testing.T, c container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			maps.Copy(env, m.get(t, "ConfigMap", from.ConfigMapRef.Name).Data)
		case from.SecretRef != nil:
			maps.Copy(env, m.get(t, "Secret", from.SecretRef.Name).StringData)
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// settings parses the environment of a oneshot container the way
// `oneshot api` and `oneshot worker` do, and validates it.
func settings(t *testing.T, env map[string]string) system.Config {
	t.Helper()
	for _, kv := range os.Environ() { // only the manifest's settings count
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "ONESHOT_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var cfg system.Config
	require.NoError(t, envconfig.Process("oneshot", &cfg))
	require.NoError(t, cfg.Validate())
	return cfg
}

// settingNames are the environment variables oneshot reads: the envconfig
// tags of system.Config and of the structs it embeds (model.Config), with
// the ONESHOT_ prefix, as envconfig.Process("oneshot", ...) reads them.
func settingNames() map[string]bool {
	names := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if tag := f.Tag.Get("envconfig"); tag != "" {
				names["ONESHOT_"+tag] = true
			}
		}
	}
	walk(reflect.TypeFor[system.Config]())
	return names
}

func containerOf(t *testing.T, w workload, name string) container {
	t.Helper()
	for _, c := range w.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return container{}
}

// portOf resolves a probe's or a service's port (a number or a name).
func portOf(t *testing.T, c container, port string) int {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, port)
	return 0
}

func isOneshot(c container) bool { return strings.HasPrefix(c.Image, "oneshot:") }

func sentinelMaster(t *testing.T, script string) string {
	t.Helper()
	match := regexp.MustCompile(`(?m)^sentinel monitor (\S+) (\S+) (\d+) (\d+)$`).FindStringSubmatch(script)
	require.NotNil(t, match, "no `sentinel monitor` line in the sentinel's init script")
	return match[1]
}

func TestManifests(t *testing.T) {
	m := load(t)
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"every document is a named object", func(t *testing.T) {
			for _, o := range m.objects {
				require.NotEmpty(t, o.APIVersion, "%s: no apiVersion", o.File)
				require.NotEmpty(t, o.Kind, "%s: no kind", o.File)
				if o.Kind != "Kustomization" {
					require.NotEmpty(t, o.Metadata.Name, "%s: a %s without metadata.name", o.File, o.Kind)
				}
			}
			seen := map[string]string{}
			for _, o := range m.objects {
				key := o.Kind + "/" + o.Metadata.Name
				require.NotContains(t, seen, key, "%s: also in %s", key, seen[key])
				seen[key] = o.File
			}
		}},
		{"the kustomization lists every file but the examples", func(t *testing.T) {
			k := m.get(t, "Kustomization", "")
			require.Equal(t, "kustomization.yaml", k.File)
			for _, r := range k.Resources {
				require.FileExists(t, r, "listed in kustomization.yaml")
				require.False(t, strings.HasSuffix(r, ".example.yaml"), "%s is an example, applied by hand: it must not be in kustomization.yaml", r)
			}
			var want []string
			for _, f := range m.files {
				if f != "kustomization.yaml" && !strings.HasSuffix(f, ".example.yaml") {
					want = append(want, f)
				}
			}
			require.ElementsMatch(t, want, k.Resources, "kustomization.yaml resources")
		}},
		{"selectors match their pods", func(t *testing.T) {
			var podLabels []map[string]string
			for _, o := range append(m.all("Deployment"), m.all("StatefulSet")...) {
				w := spec[workload](t, o)
				require.NotEmpty(t, w.Selector.MatchLabels, o.String())
				require.Subset(t, w.Template.Metadata.Labels, w.Selector.MatchLabels, "%s: the selector does not match the pod template", o)
				podLabels = append(podLabels, w.Template.Metadata.Labels)
			}
			matches := func(sel map[string]string) int {
				n := 0
				for _, labels := range podLabels {
					if len(sel) > 0 && reflect.DeepEqual(sel, filter(labels, sel)) {
						n++
					}
				}
				return n
			}
			for _, o := range m.all("Service") {
				require.Equal(t, 1, matches(spec[service](t, o).Selector), "%s selects the pods of exactly one workload", o)
			}
			for _, o := range m.all("PodDisruptionBudget") {
				require.Equal(t, 1, matches(spec[struct {
					Selector selector `yaml:"selector"`
				}](t, o).Selector.MatchLabels), "%s selects the pods of exactly one workload", o)
			}
		}},
		{"every oneshot env var is a setting", func(t *testing.T) {
			known := settingNames()
			require.Contains(t, known, "ONESHOT_REDIS_URL")
			require.Contains(t, known, "ONESHOT_ANTHROPIC_API_KEY") // from the embedded model.Config
			var checked int
			for _, o := range append(m.all("Deployment"), m.all("StatefulSet")...) {
				for _, c := range spec[workload](t, o).Template.Spec.Containers {
					if !isOneshot(c) {
						for _, e := range c.Env {
							require.False(t, strings.HasPrefix(e.Name, "ONESHOT_"), "%s: %s is set on %s, which is not oneshot", o, e.Name, c.Image)
						}
						continue
					}
					for name := range m.env(t, c) {
						require.True(t, known[name], "%s, container %s: %s is no oneshot setting (a typo?): see internal/system/config.go", o, c.Name, name)
						checked++
					}
				}
			}
			require.Positive(t, checked)
			for _, o := range m.all("ConfigMap") {
				for name := range o.Data {
					if strings.HasPrefix(name, "ONESHOT_") {
						require.True(t, known[name], "%s: %s is no oneshot setting", o, name)
					}
				}
			}
		}},
		{"oneshot pods use the oneshot image and their settings are valid", func(t *testing.T) {
			for _, name := range []string{"oneshot-api", "oneshot-worker"} {
				w := m.workload(t, "Deployment", name)
				require.Len(t, w.Template.Spec.Containers, 1, name)
				c := w.Template.Spec.Containers[0]
				require.Equal(t, "oneshot:latest", c.Image, name)
				settings(t, m.env(t, c))
			}
		}},
		{"the API is ready on /readyz at ONESHOT_HTTP_ADDR", func(t *testing.T) {
			w := m.workload(t, "Deployment", "oneshot-api")
			require.Equal(t, 2, *w.Replicas)
			c := containerOf(t, w, "api")
			require.Equal(t, []string{"api"}, c.Args)
			cfg := settings(t, m.env(t, c))
			port := listenPort(t, cfg.HTTPAddr, "ONESHOT_HTTP_ADDR")
			checkProbes(t, c, port)
			svc := spec[service](t, m.get(t, "Service", "oneshot-api"))
			require.Len(t, svc.Ports, 1)
			require.Equal(t, port, portOf(t, c, svc.Ports[0].TargetPort), "the Service's targetPort")
			m.get(t, "PodDisruptionBudget", "oneshot-api")
		}},
		{"the worker is ready on /readyz at ONESHOT_WORKER_ADDR", func(t *testing.T) {
			w := m.workload(t, "Deployment", "oneshot-worker")
			c := containerOf(t, w, "worker")
			require.Equal(t, []string{"/usr/local/bin/oneshot-worker-entrypoint"}, c.Command, "the entrypoint prepares the cgroup tree")
			cfg := settings(t, m.env(t, c))
			checkProbes(t, c, listenPort(t, cfg.WorkerAddr, "ONESHOT_WORKER_ADDR"))
			require.Equal(t, "linux", cfg.SandboxDriver)
			require.True(t, c.SecurityContext.Privileged, "the linux sandbox driver needs namespaces, mounts and a writable cgroup tree")
		}},
		{"only the worker is privileged", func(t *testing.T) {
			for _, o := range append(m.all("Deployment"), m.all("StatefulSet")...) {
				w := spec[workload](t, o)
				for _, c := range slices.Concat(w.Template.Spec.InitContainers, w.Template.Spec.Containers) {
					if o.Metadata.Name != "oneshot-worker" {
						require.False(t, c.SecurityContext.Privileged, "%s, container %s", o, c.Name)
					}
				}
			}
		}},
		{"the worker's grace period outlasts its shutdown", func(t *testing.T) {
			w := m.workload(t, "Deployment", "oneshot-worker")
			cfg := settings(t, m.env(t, containerOf(t, w, "worker")))
			require.NotNil(t, w.Template.Spec.TerminationGracePeriodSeconds, "terminationGracePeriodSeconds is not set (the default 30s)")
			grace := time.Duration(*w.Template.Spec.TerminationGracePeriodSeconds) * time.Second
			// cmd/oneshot gives the whole shutdown ShutdownTimeout+10s: runs
			// finish or are handed back, then sandboxes and Redis close.
			require.Greater(t, grace, cfg.ShutdownTimeout+10*time.Second,
				"terminationGracePeriodSeconds (%s) must exceed ONESHOT_SHUTDOWN_TIMEOUT (%s) + 10s, or SIGKILL cuts runs short", grace, cfg.ShutdownTimeout)
		}},
		{"the HPA scales the workers on queue latency", func(t *testing.T) {
			h := spec[hpa](t, m.get(t, "HorizontalPodAutoscaler", "oneshot-worker"))
			require.Equal(t, "apps/v1", h.ScaleTargetRef.APIVersion)
			require.Equal(t, "Deployment", h.ScaleTargetRef.Kind)
			require.Equal(t, "oneshot-worker", h.ScaleTargetRef.Name)
			m.get(t, h.ScaleTargetRef.Kind, h.ScaleTargetRef.Name)
			require.Positive(t, h.MinReplicas)
			require.Greater(t, h.MaxReplicas, h.MinReplicas)
			adapter := m.get(t, "ConfigMap", "prometheus-adapter").Data["config.yaml"]
			var latency bool
			for _, metric := range h.Metrics {
				var name string
				switch metric.Type {
				case "External":
					require.NotNil(t, metric.External)
					name = metric.External.Metric.Name
					if name == "asynq_queue_latency_seconds" {
						require.Equal(t, map[string]string{"queue": "execute"}, metric.External.Metric.Selector.MatchLabels)
						latency = true
					}
				case "Pods":
					require.NotNil(t, metric.Pods)
					name = metric.Pods.Metric.Name
				default:
					t.Fatalf("metric type %q", metric.Type)
				}
				require.Contains(t, adapter, "as: "+name, "prometheus-adapter.example.yaml serves no metric %s", name)
			}
			require.True(t, latency, "no External metric asynq_queue_latency_seconds{queue=execute}")
		}},
		{"the Sentinel URL names the sentinel pods", func(t *testing.T) {
			raw := m.get(t, "ConfigMap", "oneshot-config").Data["ONESHOT_REDIS_URL"]
			u, err := url.Parse(raw)
			require.NoError(t, err)
			require.Equal(t, "redis-sentinel", u.Scheme)
			// The Asynq UI reads the same URL with Asynq's own parser.
			opt, err := asynq.ParseRedisURI(raw)
			require.NoError(t, err)
			failover, ok := opt.(asynq.RedisFailoverClientOpt)
			require.True(t, ok, "%T", opt)

			sts := m.workload(t, "StatefulSet", "redis-sentinel")
			svc := spec[service](t, m.get(t, "Service", sts.ServiceName))
			require.Equal(t, "None", svc.ClusterIP, "the sentinel Service must be headless: pods get DNS names")
			require.Subset(t, sts.Template.Metadata.Labels, svc.Selector)
			c := containerOf(t, sts, "sentinel")
			require.Len(t, svc.Ports, 1)
			port := portOf(t, c, svc.Ports[0].TargetPort)
			require.Equal(t, port, svc.Ports[0].Port)
			var want []string
			for i := range *sts.Replicas {
				want = append(want, net.JoinHostPort("redis-sentinel-"+strconv.Itoa(i)+"."+sts.ServiceName, strconv.Itoa(port)))
			}
			require.Equal(t, want, failover.SentinelAddrs)
			require.Equal(t, "/0", u.Path, "database 0: the Asynq UI ignores the database of a sentinel URL")

			scripts := m.get(t, "ConfigMap", "redis-sentinel-config").Data["init.sh"]
			master := sentinelMaster(t, scripts)
			require.Equal(t, master, failover.MasterName, "?master= must be the name the sentinels monitor")
			require.Contains(t, m.get(t, "ConfigMap", "redis-config").Data["init.sh"], "get-master-addr-by-name "+master)
		}},
		{"Redis keeps every key on three pods", func(t *testing.T) {
			redis := m.workload(t, "StatefulSet", "redis")
			require.Equal(t, 3, *redis.Replicas)
			svc := spec[service](t, m.get(t, "Service", redis.ServiceName))
			require.Equal(t, "None", svc.ClusterIP, "the redis Service must be headless: replicas and sentinels use the pods' names")
			conf := m.get(t, "ConfigMap", "redis-config").Data["redis.conf"]
			require.Regexp(t, `(?m)^appendonly yes$`, conf)
			require.Regexp(t, `(?m)^maxmemory-policy noeviction$`, conf)
			init := m.get(t, "ConfigMap", "redis-config").Data["init.sh"]
			require.Contains(t, init, "redis-0."+redis.ServiceName, "at first start, ordinal 0 is the primary")

			sentinels := m.workload(t, "StatefulSet", "redis-sentinel")
			require.Equal(t, 3, *sentinels.Replicas)
			match := regexp.MustCompile(`(?m)^sentinel monitor \S+ \S+ (\d+) (\d+)$`).FindStringSubmatch(m.get(t, "ConfigMap", "redis-sentinel-config").Data["init.sh"])
			require.NotNil(t, match)
			quorum, _ := strconv.Atoi(match[2])
			require.Equal(t, "6379", match[1])
			require.Greater(t, quorum, *sentinels.Replicas/2, "the quorum must be a majority of the sentinels")
			require.LessOrEqual(t, quorum, *sentinels.Replicas)
		}},
		{"examples are marked and placeholders obvious", func(t *testing.T) {
			for _, f := range m.files {
				if !strings.HasSuffix(f, ".example.yaml") {
					continue
				}
				b, err := os.ReadFile(f)
				require.NoError(t, err)
				require.True(t, strings.HasPrefix(string(b), "# EXAMPLE"), "%s must say first that it is an example", f)
			}
			secret := m.get(t, "Secret", "oneshot-secrets")
			require.Equal(t, "secret.example.yaml", secret.File)
			for k, v := range secret.StringData {
				require.Contains(t, v, "REPLACE-ME", "%s: every value of the example Secret is a placeholder", k)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// listenPort checks that a listen address is reachable from outside the pod
// and returns its port.
func listenPort(t *testing.T, addr, setting string) int {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	require.NoError(t, err, setting)
	require.Contains(t, []string{"", "0.0.0.0", "::"}, host, "%s=%s listens on loopback only: probes and Prometheus could not reach it", setting, addr)
	port, err := strconv.Atoi(p)
	require.NoError(t, err, setting)
	return port
}

// checkProbes checks readiness on /readyz and liveness on /healthz, on the port.
func checkProbes(t *testing.T, c container, port int) {
	t.Helper()
	for _, p := range []struct {
		name  string
		probe *probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		require.NotNil(t, p.probe, "%s: no %s", c.Name, p.name)
		require.NotNil(t, p.probe.HTTPGet, "%s: %s is not an httpGet", c.Name, p.name)
		require.Equal(t, p.path, p.probe.HTTPGet.Path, "%s: %s", c.Name, p.name)
		require.Equal(t, port, portOf(t, c, p.probe.HTTPGet.Port), "%s: %s port", c.Name, p.name)
	}
}

// filter returns the labels that sel names.
func filter(labels, sel map[string]string) map[string]string {
	out := map[string]string{}
	for k := range sel {
		if v, ok := labels[k]; ok {
			out[k] = v
		}
	}
	return out
}
