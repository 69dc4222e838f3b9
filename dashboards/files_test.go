package dashboards_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v), path)
}

// TestDashboardFiles checks the dashboards' structure: the ${datasource}
// variable and its use by every panel and query, unique ids, a grid of 24
// columns, and the panels the Operations issue asks for.
func TestDashboardFiles(t *testing.T) {
	root := repoRoot(t)
	dashboards := loadDashboards(t, root)
	var files, uids []string
	titles := map[string][]string{}
	for _, d := range dashboards {
		files = append(files, d.file)
		require.NotEmpty(t, d.Title, d.file)
		require.NotEmpty(t, d.UID, d.file)
		require.NotContains(t, uids, d.UID, "%s: uid used twice", d.file)
		uids = append(uids, d.UID)
		var hasDS bool
		for _, v := range d.Templating.List {
			hasDS = hasDS || (v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus")
		}
		require.True(t, hasDS, "%s: no ${datasource} variable of type datasource (prometheus)", d.file)
		ids := map[int]bool{}
		for _, p := range d.panels() {
			where := d.file + ": " + p.Title
			require.NotEmpty(t, p.Title, d.file)
			require.False(t, ids[p.ID], "%s: panel id %d used twice", where, p.ID)
			ids[p.ID] = true
			require.NotNil(t, p.Datasource, where)
			require.Equal(t, "${datasource}", p.Datasource.UID, where)
			require.Positive(t, p.GridPos.W, where)
			require.Positive(t, p.GridPos.H, where)
			require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, where)
			require.NotEmpty(t, p.Targets, where)
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, where)
				require.NotNil(t, tg.Datasource, where)
				require.Equal(t, "${datasource}", tg.Datasource.UID, where)
				require.NotContains(t, promQL(tg.Expr), "$", "%s: a Grafana variable the tests do not replace", where)
			}
			titles[d.file] = append(titles[d.file], p.Title)
		}
	}
	require.ElementsMatch(t, []string{"overview.json", "detail.json"}, files)

	// What each dashboard must show, by words of its panel titles.
	want := map[string][]string{
		"overview.json": {"Requests per second", "Responses by status", "error ratio", "Latency by route",
			"Runs ended by status", "Run duration", "Queue depth", "Queue latency", "Queue wait", "Workers up", "in flight", "Sync requests"},
		"detail.json": {"create latency", "acquire latency", "Warm sandboxes", "misses", "OOM", "timeouts", "create failures",
			"Model calls", "Tokens", "Model retries", "Model errors", "Model call latency", "Tool calls by tool", "Tool errors", "Failed runs by reason"},
	}
	for file, words := range want {
		for _, w := range words {
			require.True(t, slices.ContainsFunc(titles[file], func(title string) bool { return strings.Contains(title, w) }),
				"%s: no panel about %q", file, w)
		}
	}
}

// TestGrafanaProvisioning checks the provisioning files and that the compose
// file mounts them where they point.
func TestGrafanaProvisioning(t *testing.T) {
	root := repoRoot(t)
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, URL, UID string
			Access               string
			IsDefault            bool `yaml:"isDefault"`
		}
	}
	readYAML(t, filepath.Join(root, "dashboards/grafana/provisioning/datasources/prometheus.yml"), &ds)
	require.Equal(t, 1, ds.APIVersion)
	require.Len(t, ds.Datasources, 1)
	require.Equal(t, "prometheus", ds.Datasources[0].Type)
	require.Equal(t, "http://prometheus:9090", ds.Datasources[0].URL, "the compose service")
	require.True(t, ds.Datasources[0].IsDefault)

	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Type string
			Options    struct {
				Path string `yaml:"path"`
			}
		}
	}
	readYAML(t, filepath.Join(root, "dashboards/grafana/provisioning/dashboards/oneshot.yml"), &prov)
	require.Equal(t, 1, prov.APIVersion)
	require.Len(t, prov.Providers, 1)
	require.Equal(t, "file", prov.Providers[0].Type)

	grafana := loadCompose(t, root).Services["grafana"]
	require.Contains(t, grafana.Volumes, "./dashboards/grafana:"+prov.Providers[0].Options.Path+":ro", "the dashboards are mounted where the provider reads them")
	require.Contains(t, grafana.Volumes, "./dashboards/grafana/provisioning:/etc/grafana/provisioning:ro")
}

// TestPrometheusFiles checks the compose Prometheus configuration against the
// compose file, and both files with promtool when Debian's prometheus package
// is installed.
func TestPrometheusFiles(t *testing.T) {
	root := repoRoot(t)
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(root, "dashboards/prometheus/prometheus.yml"), &cfg)
	require.Equal(t, []string{"alerts.yml"}, cfg.RuleFiles, "relative: mounted beside prometheus.yml")
	jobs := map[string]int{}
	for i, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = i
	}
	require.Contains(t, jobs, "oneshot-api")
	require.Contains(t, jobs, "oneshot-worker")
	require.Equal(t, []string{"api:8080"}, cfg.ScrapeConfigs[jobs["oneshot-api"]].StaticConfigs[0].Targets)
	workers := cfg.ScrapeConfigs[jobs["oneshot-worker"]].DNSSDConfigs
	require.Len(t, workers, 1, "workers are found by DNS, so they scale")
	require.Equal(t, []string{"worker"}, workers[0].Names)
	require.Equal(t, 9091, workers[0].Port)
	require.Equal(t, "0.0.0.0:9091", loadCompose(t, root).Services["worker"].Environment["ONESHOT_WORKER_ADDR"])

	for _, r := range loadAlertRules(t, root) {
		require.NotEmpty(t, r.Alert)
		require.NotEmpty(t, r.Expr, r.Alert)
		require.NotEmpty(t, r.For, r.Alert)
		require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
		require.NotEmpty(t, r.Annotations["summary"], r.Alert)
		require.Greater(t, len(r.Annotations["runbook"]), 40, "%s: a runbook says what to do", r.Alert)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus): files not checked by promtool")
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(root, "dashboards/prometheus/alerts.yml")},
		{"check", "config", "--syntax-only", filepath.Join(root, "dashboards/prometheus/prometheus.yml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// compose is the part of docker-compose.yml the tests read.
type compose struct {
	Services map[string]struct {
		Image         string            `yaml:"image"`
		Build         any               `yaml:"build"`
		Command       []string          `yaml:"command"`
		Entrypoint    []string          `yaml:"entrypoint"`
		ContainerName string            `yaml:"container_name"`
		Environment   map[string]string `yaml:"environment"`
		Ports         []string          `yaml:"ports"`
		Volumes       []string          `yaml:"volumes"`
		Healthcheck   struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		Privileged  bool     `yaml:"privileged"`
		CapAdd      []string `yaml:"cap_add"`
		SecurityOpt []string `yaml:"security_opt"`
		Cgroup      string   `yaml:"cgroup"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func loadCompose(t *testing.T, root string) compose {
	t.Helper()
	var c compose
	readYAML(t, filepath.Join(root, "docker-compose.yml"), &c)
	return c
}

// TestComposeFile checks docker-compose.yml without Docker: the services and
// their settings, health checks, that every mounted file exists, and that the
// worker can scale.
func TestComposeFile(t *testing.T) {
	root := repoRoot(t)
	c := loadCompose(t, root)
	for _, name := range []string{"redis", "api", "worker", "prometheus", "grafana"} {
		require.Contains(t, c.Services, name)
		require.NotEmpty(t, c.Services[name].Healthcheck.Test, "%s has a health check", name)
	}

	redis := c.Services["redis"]
	cmd := strings.Join(redis.Command, " ")
	require.Contains(t, cmd, "--appendonly yes")
	require.Contains(t, cmd, "--maxmemory-policy noeviction", "Asynq's keys must never be evicted")
	require.Contains(t, strings.Join(redis.Healthcheck.Test, " "), "redis-cli ping")

	api := c.Services["api"]
	require.Equal(t, "redis://redis:6379/0", api.Environment["ONESHOT_REDIS_URL"])
	require.Equal(t, "0.0.0.0:8080", api.Environment["ONESHOT_HTTP_ADDR"])
	require.Equal(t, "http://prometheus:9090", api.Environment["ONESHOT_PROMETHEUS_URL"])
	require.Contains(t, api.Ports, "8080:8080")
	require.Contains(t, strings.Join(api.Healthcheck.Test, " "), "/readyz")
	require.Equal(t, []string{"api"}, api.Command)

	worker := c.Services["worker"]
	require.Empty(t, worker.ContainerName, "a container_name would stop `--scale worker=N`")
	require.Empty(t, worker.Ports, "a host port would stop `--scale worker=N`")
	require.Equal(t, "redis://redis:6379/0", worker.Environment["ONESHOT_REDIS_URL"])
	require.Contains(t, strings.Join(worker.Healthcheck.Test, " "), ":9091/readyz")
	require.True(t, worker.Privileged || (slices.Contains(worker.CapAdd, "SYS_ADMIN") && worker.Cgroup == "private"),
		"the worker needs the privileges of namespaces and cgroups")
	require.Equal(t, api.Image, worker.Image, "one image")
	require.NotNil(t, api.Build)

	require.Contains(t, c.Services["prometheus"].Ports, "9090:9090")
	require.Contains(t, c.Services["grafana"].Ports, "3000:3000")

	// Every bind mount's source exists in the repository; every named volume
	// is declared.
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			require.True(t, ok, "%s: volume %q", name, v)
			if strings.HasPrefix(src, "./") {
				_, err := os.Stat(filepath.Join(root, src))
				require.NoError(t, err, "%s mounts %s", name, src)
			} else {
				require.Contains(t, c.Volumes, src, "%s: named volume %q is not declared", name, src)
			}
		}
	}
	require.Contains(t, c.Services["redis"].Volumes, "redis-data:/data")
	require.Contains(t, c.Services["prometheus"].Volumes, "./dashboards/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro")

	// The worker's entry point is one the image has.
	require.Len(t, worker.Entrypoint, 1)
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	require.Contains(t, string(dockerfile), " "+worker.Entrypoint[0]+"\n")
}

// TestDockerfile checks the Dockerfile's shape without Docker: a build stage,
// a run stage that copies the binary from it, and that what it copies from
// the repository exists.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	var froms, copies []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, line)
		case "COPY":
			copies = append(copies, line)
		}
	}
	require.Len(t, froms, 2, "multi-stage: build, then run")
	require.Regexp(t, `(?i)^FROM golang:\S+ AS build$`, froms[0])
	require.Regexp(t, `^FROM debian:\S+-slim$`, froms[1])
	require.Contains(t, string(b), "bash coreutils", "sandbox tools need them under /usr")
	fromBuild := regexp.MustCompile(`^COPY --from=build (?:--chmod=\S+ )?(\S+) (\S+)$`)
	var binary, runtime bool
	for _, line := range copies {
		m := fromBuild.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		binary = binary || m[2] == "/usr/local/bin/oneshot"
		runtime = runtime || m[2] == "/usr/local/bin/oneshot-runtime"
		if rel, ok := strings.CutPrefix(m[1], "/src/"); ok {
			_, err := os.Stat(filepath.Join(root, rel))
			require.NoError(t, err, line)
		}
	}
	require.True(t, binary, "the run stage copies the binary from the build stage to /usr/local/bin/oneshot")
	require.True(t, runtime, "the run stage installs oneshot-runtime beside oneshot, where workers look for it")
	require.Contains(t, string(b), "-o /out/oneshot-runtime ./cmd/oneshot-runtime")
	require.Contains(t, string(b), `ENTRYPOINT ["/usr/local/bin/oneshot"]`)

	sh, err := exec.LookPath("sh")
	if err == nil {
		out, err := exec.Command(sh, "-n", filepath.Join(root, "cmd/oneshot/worker-entrypoint.sh")).CombinedOutput()
		require.NoError(t, err, "worker-entrypoint.sh: %s", out)
	}
}
